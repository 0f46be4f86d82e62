//! `make demo`: a real run of Outpost's main job on this machine.
//!
//! Starts etcd + kube-apiserver and the HTTPS Git server, commits `examples/` to a new repository, runs
//! `outpost-agent --once` against it and shows `kubectl get` of what it applied, runs
//! `outpost-status-writer --once` and shows the status it committed, then keeps everything running (agent and
//! status writer as daemons) until Ctrl-C so you can look around and push changes.

use std::process::Command;

use anyhow::{Context, Result};
use outpost_tests::{git_servers, kube_env, tools};

const CLUSTER: &str = "demo-edge";
const NAMESPACE: &str = "outpost-system";

fn main() -> Result<()> {
    println!("Starting etcd + kube-apiserver and the Git servers on loopback ...");
    let kube = kube_env();
    let git = git_servers();
    let repo = git.create_repo("demo")?;
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    copy_tree(&examples, &repo.work)?;
    let commit = repo.commit("Demo resources from examples/")?;
    println!("Committed examples/ as {commit} to {}", repo.https_url());

    let kubectl = tools::kubectl()?;
    let kubectl_run = |args: &[&str]| -> Result<()> {
        println!("\n$ kubectl {}", args.join(" "));
        Command::new(&kubectl)
            .env("KUBECONFIG", &kube.kubeconfig)
            .args(args)
            .status()?;
        Ok(())
    };
    kubectl_run(&["create", "namespace", NAMESPACE])?;

    let binary = |name: &str, cache: &str, once: bool| -> Result<Command> {
        let mut cmd = Command::new(tools::outpost_bin(name)?);
        cmd.env("KUBECONFIG", &kube.kubeconfig)
            .args([
                "--cluster",
                CLUSTER,
                "--namespace",
                NAMESPACE,
                "--git-url",
                &repo.https_url(),
            ])
            .args(["--git-username", &git.http_user])
            .arg("--git-token-file")
            .arg(&git.token_file)
            .arg("--git-ca-file")
            .arg(&git.ca_file)
            .arg("--cache-dir")
            .arg(outpost_tests::scratch_dir(cache)?)
            .args(["--metrics-addr", "127.0.0.1:0"]);
        if once {
            cmd.arg("--once");
        }
        Ok(cmd)
    };

    println!(
        "\n$ outpost-agent --once --cluster {CLUSTER} --namespace {NAMESPACE} --git-url {} ...",
        repo.https_url()
    );
    let status = binary("outpost-agent", "demo-agent", true)?
        .status()
        .context("run outpost-agent")?;
    anyhow::ensure!(status.success(), "outpost-agent --once failed");
    kubectl_run(&["get", "namespace", "demo-web"])?;
    kubectl_run(&[
        "-n",
        "demo-web",
        "get",
        "configmaps,deployments,services,probes.demo.outpost.dev",
    ])?;
    kubectl_run(&["get", "clusterrole", "demo-probe-reader"])?;
    kubectl_run(&[
        "-n",
        NAMESPACE,
        "get",
        "secrets",
        "-l",
        "outpost.dev/inventory=v1",
    ])?;

    println!("\n$ outpost-agent status ...");
    let mut status_cmd = binary("outpost-agent", "demo-agent-status", false)?;
    status_cmd.arg("status").status()?;

    println!("\n$ outpost-status-writer --once --cluster {CLUSTER} ...");
    let status = binary("outpost-status-writer", "demo-status", true)?
        .status()
        .context("run outpost-status-writer")?;
    anyhow::ensure!(status.success(), "outpost-status-writer --once failed");
    let path = format!("clusters/{CLUSTER}/status/web/web-status.yaml");
    println!("\n$ git show main:{path} | head -30");
    let out = Command::new("git")
        .arg("-C")
        .arg(&repo.bare)
        .args(["show", &format!("refs/heads/main:{path}")])
        .output()?;
    for line in String::from_utf8_lossy(&out.stdout).lines().take(30) {
        println!("{line}");
    }

    println!("\nThe agent (polling every 5s) and the status writer now run until Ctrl-C. To look around:");
    println!("  export KUBECONFIG={}", kube.kubeconfig.display());
    println!("  {} -n demo-web get all,configmaps -o wide", kubectl.display());
    println!(
        "  cd {} && edit clusters/{CLUSTER}/... && git commit -am change && git push origin HEAD:main",
        repo.work.display()
    );
    println!(
        "  git -C {} log --oneline main   # status commits land here",
        repo.bare.display()
    );
    let mut agent = binary("outpost-agent", "demo-agent-daemon", false)?;
    agent.args(["--interval", "5s"]);
    let mut agent = agent.spawn().context("start outpost-agent")?;
    let mut writer = binary("outpost-status-writer", "demo-status-daemon", false)?
        .spawn()
        .context("start outpost-status-writer")?;
    let _ = agent.wait();
    let _ = writer.wait();
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
