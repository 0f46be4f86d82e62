//! `make demo`: a real run of Outpost's main job on this machine.
//!
//! Starts etcd + kube-apiserver and the HTTPS Git server, commits `examples/` to a new repository, runs
//! `outpost-agent --once` against it, shows `kubectl get` of what it applied, then keeps everything running
//! (with the agent polling) until Ctrl-C so you can look around and push changes.

use std::process::Command;

use anyhow::{Context, Result};
use outpost_tests::{git_servers, kube_env, tools};

const CLUSTER: &str = "demo-edge";

fn main() -> Result<()> {
    println!("Starting etcd + kube-apiserver and the Git servers on loopback ...");
    let kube = kube_env();
    let git = git_servers();
    let repo = git.create_repo("demo")?;
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    copy_tree(&examples, &repo.work)?;
    let commit = repo.commit("Demo resources from examples/")?;
    println!("Committed examples/ as {commit} to {}", repo.https_url());

    let agent = tools::outpost_bin("outpost-agent")?;
    let cache = outpost_tests::scratch_dir("demo-cache")?;
    let agent_args = |once: bool| {
        let mut cmd = Command::new(&agent);
        cmd.env("KUBECONFIG", &kube.kubeconfig)
            .args([
                "--cluster",
                CLUSTER,
                "--git-url",
                &repo.https_url(),
                "--git-username",
                &git.http_user,
            ])
            .arg("--git-token-file")
            .arg(&git.token_file)
            .arg("--git-ca-file")
            .arg(&git.ca_file)
            .arg("--cache-dir")
            .arg(&cache)
            .args(["--interval", "5s", "--metrics-addr", "127.0.0.1:0"]);
        if once {
            cmd.arg("--once");
        }
        cmd
    };
    println!(
        "\n$ outpost-agent --once --cluster {CLUSTER} --git-url {} ...",
        repo.https_url()
    );
    let status = agent_args(true).status().context("run outpost-agent")?;
    anyhow::ensure!(status.success(), "outpost-agent --once failed");

    let kubectl = tools::kubectl()?;
    for args in [
        vec!["get", "namespace", "demo-web"],
        vec![
            "-n",
            "demo-web",
            "get",
            "configmaps,deployments,services,probes.demo.outpost.dev",
        ],
        vec!["get", "clusterrole", "demo-probe-reader"],
    ] {
        println!("\n$ kubectl {}", args.join(" "));
        Command::new(&kubectl)
            .env("KUBECONFIG", &kube.kubeconfig)
            .args(&args)
            .status()?;
    }

    println!("\nThe agent now polls every 5s. To look around and change things:");
    println!("  export KUBECONFIG={}", kube.kubeconfig.display());
    println!("  {} -n demo-web get all,configmaps -o wide", kubectl.display());
    println!(
        "  cd {} && edit clusters/{CLUSTER}/... && git commit -am change && git push origin HEAD:main",
        repo.work.display()
    );
    println!("Press Ctrl-C to stop everything.");
    let mut daemon = agent_args(false).spawn().context("start outpost-agent")?;
    let _ = daemon.wait();
    Ok(())
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    for entry in std::fs::read_dir(from).with_context(|| format!("read {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&target)?;
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
