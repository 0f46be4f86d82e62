//! Signed status (issue 14 item 5): the status writer signs each commit with the cluster's own SSH key (keys
//! from the real `ssh-keygen`), real `git verify-commit` accepts the commits naming the cluster as principal,
//! and the hub-side `outpost-status-writer verify` agrees with git on good, foreign-key, unsigned and tampered
//! status commits. With signing on carrying is off; its cost (branch pushes, lost races) is measured against
//! carrying on with six writers racing on one control repository.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use outpost_tests::agent::{AgentCommand, RunningAgent, Transport, output_text};
use outpost_tests::process::run;
use outpost_tests::{TestRepo, git_servers, kube_env, scratch_dir, tools, unique};

use crate::common::{Seen, eventually};
use crate::status::{file_on_branch, synced_emco_app};

/// Long enough for debounce, push retries and lost races of six writers on a busy machine.
const LANDS: Duration = Duration::from_secs(120);

/// A fresh ed25519 key pair from the real ssh-keygen: (private key file, public key line).
fn keygen(dir: &Path, name: &str, kind: &str) -> Result<(PathBuf, String)> {
    let key = dir.join(name);
    let mut args = vec!["-q", "-t", kind, "-N", "", "-C", name, "-f"];
    let path = key.to_str().context("path")?;
    args.push(path);
    if kind == "rsa" {
        args.extend(["-b", "2048"]);
    }
    run("ssh-keygen", &args, None)?;
    let public = std::fs::read_to_string(key.with_extension("pub"))?;
    Ok((key, public.trim().to_owned()))
}

/// The base64 body lines of a private key file: none of them may ever show up anywhere.
fn key_body(key: &Path) -> Result<Vec<String>> {
    Ok(std::fs::read_to_string(key)?
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(str::to_owned)
        .collect())
}

fn assert_no_key(body: &[String], what: &str, text: &str) {
    for line in body {
        assert!(
            !text.contains(line.as_str()),
            "the private key shows in {what}:\n{text}"
        );
    }
}

/// `principal keytype base64` lines.
fn allowed_signers(dir: &Path, entries: &[(&str, &str)]) -> Result<PathBuf> {
    let file = dir.join(format!("allowed-{}", unique("signers")));
    let text: String = entries.iter().map(|(p, k)| format!("{p} {k}\n")).collect();
    std::fs::write(&file, text)?;
    Ok(file)
}

/// Real `git verify-commit` of `commit` in `repo` with `allowed` as the allowed signers.
fn git_verify(repo: &Path, allowed: &Path, commit: &str) -> Result<Output> {
    Ok(Command::new("git")
        .arg("-C")
        .arg(repo)
        .arg("-c")
        .arg(format!("gpg.ssh.allowedSignersFile={}", allowed.display()))
        .args(["verify-commit", "--verbose", commit])
        .output()?)
}

/// `outpost-status-writer verify` on `repo`.
fn hub_verify(repo: &Path, allowed: &Path, reference: &str, clusters: &[&str]) -> Result<Output> {
    let mut cmd = Command::new(tools::outpost_bin("outpost-status-writer")?);
    cmd.env_clear()
        .arg("verify")
        .arg("--allowed-signers")
        .arg(allowed)
        .arg("--repo")
        .arg(repo)
        .arg("--ref")
        .arg(reference);
    for c in clusters {
        cmd.arg("--cluster").arg(c);
    }
    Ok(cmd.output()?)
}

/// The line `verify` printed for `cluster`.
fn line_for(out: &Output, cluster: &str) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with(&format!("{cluster}: ")))
        .unwrap_or_default()
        .to_owned()
}

fn git(repo: &Path, args: &[&str]) -> Result<String> {
    let mut all = vec!["-C", repo.to_str().context("path")?];
    all.extend(args);
    Ok(run("git", &all, None)?.trim().to_owned())
}

/// Commit everything in `repo`'s work clone signed with `key` (git's own SSH signing) and push it to main.
fn signed_commit(repo: &TestRepo, key: &Path, message: &str) -> Result<String> {
    let key = format!("user.signingkey={}", key.display());
    git(&repo.work, &["add", "-A"])?;
    git(
        &repo.work,
        &[
            "-c",
            "gpg.format=ssh",
            "-c",
            &key,
            "commit",
            "-q",
            "-S",
            "-m",
            message,
        ],
    )?;
    git(&repo.work, &["push", "-q", "origin", "HEAD:refs/heads/main"])?;
    git(&repo.work, &["rev-parse", "HEAD"])
}

/// Set a cluster's Deployment `unavailableReplicas`.
async fn set_unavailable(client: &kube::Client, ns: &str, n: u32) -> Result<()> {
    let status = serde_json::json!({"status": {"unavailableReplicas": n}});
    Api::<Deployment>::namespaced(client.clone(), ns)
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    Ok(())
}

fn status_path(cluster: &str) -> String {
    format!("clusters/{cluster}/status/100/app/web/100-web-status.yaml")
}

/// A control repository whose pre-receive hook logs every ref command it receives.
fn logged_control() -> Result<TestRepo> {
    let control = git_servers().create_repo(&unique("signed-control"))?;
    control.write("README.md", "control repository\n")?;
    control.commit("init")?;
    let hook = control.bare.join("hooks").join("pre-receive");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nwhile read old new ref; do echo \"$old $new $ref\" >> '{}'; done\nexit 0\n",
            control.bare.join("commands.log").display()
        ),
    )?;
    run("chmod", &["+x", hook.to_str().context("path")?], None)?;
    Ok(control)
}

fn received(control: &TestRepo) -> String {
    std::fs::read_to_string(control.bare.join("commands.log")).unwrap_or_default()
}

#[tokio::test]
async fn status_commits_are_signed_and_git_and_verify_agree_on_good_foreign_unsigned_and_tampered_ones()
-> Result<()> {
    let client = kube_env().client().await?;
    let servers = git_servers();
    let keys = scratch_dir("signing-keys")?;
    let (c1, _, agent1, _) = synced_emco_app(&client, servers).await?;
    let (c2, _, agent2, _) = synced_emco_app(&client, servers).await?;
    let control = logged_control()?;
    let (key1, pub1) = keygen(&keys, "one", "ed25519")?;
    let (key2, pub2) = keygen(&keys, "two", "ed25519")?;
    let (stranger, pub_stranger) = keygen(&keys, "stranger", "ed25519")?;
    let allowed = allowed_signers(
        &keys,
        &[(&c1, &pub1), (&c2, &pub2), ("someone-else", &pub_stranger)],
    )?;
    let bare = control.bare.clone();

    // Both writers at once: with signing on nobody publishes a status ref or carries another's status.
    let writers: Vec<_> = [(&c1, &agent1, &key1), (&c2, &agent2, &key2)]
        .into_iter()
        .map(|(cluster, agent_ns, key)| {
            let mut cmd = AgentCommand::status_writer(
                servers,
                kube_env(),
                &control,
                cluster,
                agent_ns,
                Transport::Https,
            )?;
            cmd.arg("--signing-key-file").arg(key).env("RUST_LOG", "debug");
            Ok(std::thread::spawn(move || cmd.once()))
        })
        .collect::<Result<_>>()?;
    let mut logs = String::new();
    for w in writers {
        let out = w.join().expect("writer thread")?;
        logs.push_str(&output_text(&out));
        anyhow::ensure!(out.status.success(), "signed writer: {}", output_text(&out));
    }
    for key in [&key1, &key2] {
        assert_no_key(&key_body(key)?, "the writers' logs", &logs);
    }
    assert!(logs.contains("carrying other clusters' status is off"), "{logs}");
    let commands = received(&control);
    assert!(
        !commands.contains("refs/outpost/"),
        "a signing writer used a status ref:\n{commands}"
    );

    // Every commit the writers made: signed by its own cluster, touching that cluster's status only.
    let commits = git(&bare, &["rev-list", "main", "--not", "main~2"])?;
    for commit in commits.lines() {
        let touched = git(&bare, &["show", "--format=", "--name-only", commit])?;
        let own = if touched
            .lines()
            .all(|p| p.starts_with(&format!("clusters/{c1}/status/")))
        {
            &c1
        } else {
            &c2
        };
        assert!(
            touched
                .lines()
                .all(|p| p.starts_with(&format!("clusters/{own}/status/"))),
            "a signed commit holds more than one cluster's status (carried?):\n{touched}"
        );
        let out = git_verify(&bare, &allowed, commit)?;
        let said = output_text(&out);
        assert!(
            out.status.success(),
            "git verify-commit refused {commit}:\n{said}"
        );
        assert!(
            said.contains(&format!("Good \"git\" signature for {own} with ED25519 key")),
            "{said}"
        );
        assert_no_key(
            &key_body(&key1)?,
            "a status commit",
            &git(&bare, &["cat-file", "commit", commit])?,
        );
    }
    for c in [&c1, &c2] {
        let text = file_on_branch(&control, "main", &status_path(c)).context("status missing")?;
        assert_no_key(&key_body(&key1)?, "a status file", &text);
    }
    let out = hub_verify(&bare, &allowed, "main", &[])?;
    assert!(out.status.success(), "verify: {}", output_text(&out));
    for c in [&c1, &c2] {
        assert!(
            line_for(&out, c).starts_with(&format!("{c}: ok")),
            "{}",
            output_text(&out)
        );
    }

    // Someone holding another key (listed for another principal) writes c1's status; plain git writes c2's.
    let work = control.work.to_str().context("path")?;
    run(
        "git",
        &["-C", work, "pull", "-q", "--ff-only", "origin", "main"],
        None,
    )?;
    control.write(&format!("clusters/{c1}/status/forged.yaml"), "ready: true\n")?;
    let forged = signed_commit(&control, &stranger, "forged")?;
    control.write(&format!("clusters/{c2}/status/unsigned.yaml"), "ready: true\n")?;
    let unsigned = control.commit("plain git on c2's status")?;
    let out = hub_verify(&bare, &allowed, "main", &[])?;
    assert!(
        !out.status.success(),
        "verify accepted a forged status: {}",
        output_text(&out)
    );
    assert!(
        line_for(&out, &c1).starts_with(&format!("{c1}: wrong signer someone-else")),
        "{}",
        output_text(&out)
    );
    assert!(line_for(&out, &c1).contains(&forged), "{}", output_text(&out));
    assert!(
        line_for(&out, &c2).starts_with(&format!("{c2}: unsigned")),
        "{}",
        output_text(&out)
    );
    // git agrees: the forged commit is good for someone-else (not c1), the plain one is not signed at all.
    let said = output_text(&git_verify(&bare, &allowed, &forged)?);
    assert!(said.contains("Good \"git\" signature for someone-else"), "{said}");
    let out = git_verify(&bare, &allowed, &unsigned)?;
    assert!(
        !out.status.success(),
        "git verify-commit accepted an unsigned commit"
    );

    // A key listed nowhere: good signature, unknown signer — git refuses it too.
    let (unknown, _) = keygen(&keys, "unknown", "ed25519")?;
    control.write(&format!("clusters/{c1}/status/forged.yaml"), "ready: false\n")?;
    signed_commit(&control, &unknown, "unknown key")?;
    let out = hub_verify(&bare, &allowed, "main", &[&c1])?;
    assert!(!out.status.success());
    assert!(
        line_for(&out, &c1).contains("not in the allowed signers"),
        "{}",
        output_text(&out)
    );
    let head = git(&bare, &["rev-parse", "main"])?;
    assert!(
        !git_verify(&bare, &allowed, &head)?.status.success(),
        "git accepted an unknown key"
    );

    // A writer's signed commit with its message changed after signing: both say the signature is bad.
    let signed = commits.lines().next().context("a signed commit")?;
    let raw = git(&bare, &["cat-file", "commit", signed])?;
    let tampered_raw = raw.replacen("outpost status", "outpost statu5", 1);
    anyhow::ensure!(tampered_raw != raw, "{raw}");
    let file = keys.join("tampered");
    std::fs::write(&file, format!("{tampered_raw}\n"))?;
    let tampered = git(
        &bare,
        &[
            "hash-object",
            "-t",
            "commit",
            "-w",
            file.to_str().context("path")?,
        ],
    )?;
    git(&bare, &["update-ref", "refs/heads/tampered", &tampered])?;
    assert!(
        !git_verify(&bare, &allowed, &tampered)?.status.success(),
        "git accepted a tampered commit"
    );
    let owner = if raw.contains(&c1) { &c1 } else { &c2 };
    let out = hub_verify(&bare, &allowed, "tampered", &[owner])?;
    assert!(!out.status.success());
    assert!(
        line_for(&out, owner).contains("bad signature"),
        "{}",
        output_text(&out)
    );
    Ok(())
}

#[tokio::test]
async fn an_unusable_signing_key_stops_the_writer_naming_the_file_never_the_key() -> Result<()> {
    let client = kube_env().client().await?;
    let servers = git_servers();
    let keys = scratch_dir("signing-keys")?;
    let (cluster, _, agent_ns, repo) = synced_emco_app(&client, servers).await?;
    let (rsa, _) = keygen(&keys, "rsa", "rsa")?;
    let out = AgentCommand::status_writer(servers, kube_env(), &repo, &cluster, &agent_ns, Transport::Https)?
        .arg("--signing-key-file")
        .arg(&rsa)
        .once()?;
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("rsa") && text.contains("ed25519"), "{text}");
    assert_no_key(&key_body(&rsa)?, "the writer's error", &text);
    Ok(())
}

/// One measured run: `writers` daemons, three rounds of status changes, on a fresh control repository.
struct Measured {
    branch_pushes: usize,
    landed: usize,
    status_ref_updates: usize,
}

async fn measure(
    client: &kube::Client,
    clusters: &[(String, String, String)],
    sign: Option<&[PathBuf]>,
    base: u32,
) -> Result<(Measured, TestRepo)> {
    let control = logged_control()?;
    let mut daemons: Vec<RunningAgent> = Vec::new();
    for (i, (cluster, ns, agent_ns)) in clusters.iter().enumerate() {
        set_unavailable(client, ns, base).await?;
        let mut cmd = AgentCommand::status_writer(
            git_servers(),
            kube_env(),
            &control,
            cluster,
            agent_ns,
            Transport::Https,
        )?;
        if let Some(keys) = sign {
            cmd.arg("--signing-key-file").arg(&keys[i]);
        }
        daemons.push(cmd.spawn_with(&["--debounce", "500ms"])?);
    }
    let logs = |daemons: &[RunningAgent]| {
        daemons
            .iter()
            .map(RunningAgent::logs)
            .collect::<Vec<_>>()
            .join("\n")
    };
    for round in 0..4 {
        let n = base + round;
        if round > 0 {
            for (_, ns, _) in clusters {
                set_unavailable(client, ns, n).await?;
            }
        }
        let want = format!("unavailableReplicas: {n}");
        eventually(
            LANDS,
            &format!("round {round}: every cluster's status"),
            || async {
                let missing: Vec<&str> = clusters
                    .iter()
                    .filter(|(c, _, _)| {
                        !file_on_branch(&control, "main", &status_path(c))
                            .is_some_and(|t| t.lines().any(|l| l.trim() == want))
                    })
                    .map(|(c, _, _)| c.as_str())
                    .collect();
                Ok(Seen::done_if(missing.is_empty(), format!("{missing:?}")))
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}; logs:\n{}", logs(&daemons)))?;
    }
    drop(daemons);
    let commands = received(&control);
    let measured = Measured {
        branch_pushes: commands
            .lines()
            .filter(|l| l.ends_with(" refs/heads/main"))
            .count(),
        landed: git(&control.bare, &["rev-list", "--count", "main"])?.parse::<usize>()? - 1,
        status_ref_updates: commands.lines().filter(|l| l.contains(" refs/outpost/")).count(),
    };
    Ok((measured, control))
}

#[tokio::test]
async fn six_signing_writers_never_carry_and_the_cost_against_carrying_is_measured() -> Result<()> {
    const WRITERS: usize = 6;
    let client = kube_env().client().await?;
    let servers = git_servers();
    let keys = scratch_dir("signing-keys")?;
    let mut clusters = Vec::new();
    let mut key_files = Vec::new();
    let mut entries = Vec::new();
    for i in 0..WRITERS {
        let (cluster, ns, agent_ns, _) = synced_emco_app(&client, servers).await?;
        let (key, public) = keygen(&keys, &format!("k{i}"), "ed25519")?;
        key_files.push(key);
        entries.push((cluster.clone(), public));
        clusters.push((cluster, ns, agent_ns));
    }
    let (carrying, _) = measure(&client, &clusters, None, 10).await?;
    let (signed, control) = measure(&client, &clusters, Some(&key_files), 20).await?;
    let lost = |m: &Measured| m.branch_pushes - m.landed;
    let report = format!(
        "signed status cost, {WRITERS} writers x 3 rounds (+ first write): carrying on: {} branch pushes, {} landed, {} lost races, {} status ref updates; signing (carrying off): {} branch pushes, {} landed, {} lost races, {} status ref updates",
        carrying.branch_pushes,
        carrying.landed,
        lost(&carrying),
        carrying.status_ref_updates,
        signed.branch_pushes,
        signed.landed,
        lost(&signed),
        signed.status_ref_updates,
    );
    println!("{report}");
    eprintln!("{report}");
    assert_eq!(signed.status_ref_updates, 0, "{report}");
    // Each signed commit holds one cluster's status and every cluster's status verifies.
    let entries: Vec<(&str, &str)> = entries.iter().map(|(c, k)| (c.as_str(), k.as_str())).collect();
    let allowed = allowed_signers(&keys, &entries)?;
    let out = hub_verify(&control.bare, &allowed, "main", &[])?;
    assert!(out.status.success(), "{}", output_text(&out));
    let bare = &control.bare;
    let commits = git(bare, &["rev-list", "main"])?;
    for commit in commits.lines().take(signed.landed) {
        let touched = git(bare, &["show", "--format=", "--name-only", commit])?;
        let dirs: std::collections::BTreeSet<&str> =
            touched.lines().filter_map(|p| p.split('/').nth(1)).collect();
        assert_eq!(
            dirs.len(),
            1,
            "commit {commit} holds several clusters' status:\n{touched}"
        );
    }
    Ok(())
}
