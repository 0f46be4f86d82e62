//! Carrying on a control repository whose receive-pack does not advertise `atomic`
//! (`receive.advertiseAtomic=false`, as some Git hosts and proxies behave): two clusters' status writers race
//! for `main` of one repository through the real nginx + git-http-backend. A `pre-receive` hook holds the first
//! two pushes to `main` until both have arrived, so the writers always contend for the same tip and the loser
//! publishes its status ref; the hook logs every ref command the server receives, and may refuse pushes that
//! remove status refs (as a hook protecting refs would), so a removal fails after its branch update landed.
//!
//! Without atomic pushes the branch update and the removal of the status refs it settled cannot land together.
//! Neither may be lost: no status ref may stay behind once its status is on the branch, and a status ref left
//! behind must never bring a cluster's older status back over the newer one it wrote since.

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use outpost_tests::agent::{AgentCommand, Transport, output_text};
use outpost_tests::process::run;
use outpost_tests::{TestRepo, git_servers, kube_env, unique};

use crate::common::{Seen, eventually};
use crate::status::{file_on_branch, synced_emco_app};

/// Long enough for a writer's fallback and retries on a busy machine.
const SETTLES: Duration = Duration::from_secs(30);

/// One cluster writing its status into the shared control repository.
struct Writer {
    cluster: String,
    /// Namespace of its app (the Deployment whose status we change).
    ns: String,
    /// Namespace of its agent's inventories.
    agent_ns: String,
}

impl Writer {
    /// Where its app's status lands.
    fn path(&self) -> String {
        format!("clusters/{}/status/100/app/web/100-web-status.yaml", self.cluster)
    }

    /// Set its Deployment's `unavailableReplicas` to `n`.
    async fn set(&self, client: &kube::Client, n: u32) -> Result<()> {
        let deploys: Api<Deployment> = Api::namespaced(client.clone(), &self.ns);
        let status = serde_json::json!({"status": {"unavailableReplicas": n}});
        deploys
            .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
            .await?;
        Ok(())
    }

    /// Its status writer, once, against `control`.
    fn command(&self, control: &TestRepo) -> Result<AgentCommand> {
        AgentCommand::status_writer(
            git_servers(),
            kube_env(),
            control,
            &self.cluster,
            &self.agent_ns,
            Transport::Https,
        )
    }
}

/// A control repository without atomic pushes, with the racing hook refusing the first `refusals` pushes that
/// remove status refs, and two synced clusters whose writers have raced once (each with
/// `unavailableReplicas: 1`).
async fn raced(client: &kube::Client, refusals: u32) -> Result<(TestRepo, Vec<Writer>)> {
    let servers = git_servers();
    let control = servers.create_repo(&unique("non-atomic"))?;
    control.write("README.md", "control repository\n")?;
    control.commit("init")?;
    let bare = control.bare.to_str().context("path")?;
    run(
        "git",
        &["-C", bare, "config", "receive.advertiseAtomic", "false"],
        None,
    )?;
    let hook = control.bare.join("hooks").join("pre-receive");
    let race = control.bare.join("race");
    let log = control.bare.join("commands.log");
    let refused = control.bare.join("refused");
    std::fs::write(
        &hook,
        format!(
            r#"#!/bin/sh
mkdir -p '{race}'
touch '{refused}'
removes=
while read old new ref; do
  echo "$old $new $ref" >> '{log}'
  case "$ref" in refs/outpost/*) [ "$new" = {zero} ] && removes=1 ;; esac
  if [ "$ref" = refs/heads/main ]; then
    touch '{race}'/$$
    i=0
    while [ "$(ls '{race}' | wc -l)" -lt 2 ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
  fi
done
if [ -n "$removes" ] && [ "$(wc -l < '{refused}')" -lt {refusals} ]; then
  echo x >> '{refused}'
  echo REFUSED >> '{log}'
  echo "status ref removals are refused here" >&2
  exit 1
fi
exit 0
"#,
            race = race.display(),
            refused = refused.display(),
            log = log.display(),
            zero = "0".repeat(40),
        ),
    )?;
    run("chmod", &["+x", hook.to_str().context("path")?], None)?;
    let mut writers = Vec::new();
    for _ in 0..2 {
        let (cluster, ns, agent_ns, _) = synced_emco_app(client, servers).await?;
        let writer = Writer {
            cluster,
            ns,
            agent_ns,
        };
        writer.set(client, 1).await?;
        writers.push(writer);
    }
    let handles: Vec<_> = writers
        .iter()
        .map(|w| {
            let cmd = w.command(&control);
            std::thread::spawn(move || cmd?.once())
        })
        .collect();
    for h in handles {
        let out = h.join().expect("writer thread")?;
        anyhow::ensure!(out.status.success(), "racing writer: {}", output_text(&out));
    }
    let commands = std::fs::read_to_string(&log)?;
    anyhow::ensure!(
        commands.contains("refs/outpost/main.status/"),
        "the writers did not contend (no status ref was published); the server received:\n{commands}"
    );
    for w in &writers {
        let text = file_on_branch(&control, "main", &w.path()).context("raced status missing")?;
        anyhow::ensure!(
            text.lines().any(|l| l.trim() == "unavailableReplicas: 1"),
            "{text}"
        );
    }
    Ok((control, writers))
}

/// The status refs on the server.
fn status_refs(control: &TestRepo) -> Result<String> {
    let bare = control.bare.to_str().context("path")?;
    run(
        "git",
        &["-C", bare, "for-each-ref", "--format=%(refname)", "refs/outpost/"],
        None,
    )
}

/// `Done` once no status ref is left on the server.
async fn no_status_refs_left(control: &TestRepo) -> Result<()> {
    eventually(SETTLES, "no status refs left", || async {
        let left = status_refs(control)?;
        Ok(Seen::done_if(left.trim().is_empty(), left))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; the server received:\n{}", received(control)))
}

/// The ref commands the server received (and the refusals).
fn received(control: &TestRepo) -> String {
    std::fs::read_to_string(control.bare.join("commands.log")).unwrap_or_default()
}

#[tokio::test]
async fn without_atomic_pushes_no_status_ref_removal_is_dropped() -> Result<()> {
    let client = kube_env().client().await?;
    let (control, _writers) = raced(&client, 0).await?;
    // Both writers exited after their status landed: every status ref they settled must be gone.
    no_status_refs_left(&control).await
}

#[tokio::test]
async fn without_atomic_pushes_a_refused_status_ref_removal_is_retried_by_the_next_write() -> Result<()> {
    let client = kube_env().client().await?;
    let (control, writers) = raced(&client, 1).await?;
    let log = received(&control);
    anyhow::ensure!(
        log.contains("REFUSED"),
        "no status ref removal reached the server; it received:\n{log}"
    );
    // The next write, even one with nothing new to land, removes what the refused removal left.
    let out = writers[0].command(&control)?.once()?;
    anyhow::ensure!(out.status.success(), "{}", output_text(&out));
    no_status_refs_left(&control).await
}

#[tokio::test]
async fn without_atomic_pushes_a_stale_status_is_never_carried_over_a_newer_one() -> Result<()> {
    let client = kube_env().client().await?;
    // Every removal of a status ref is refused: the loser's ref stays, and must never bring its status back.
    let (control, writers) = raced(&client, u32::MAX).await?;
    anyhow::ensure!(
        !status_refs(&control)?.trim().is_empty(),
        "no status ref was left to go stale; the server received:\n{}",
        received(&control)
    );
    let mut latest = [1, 1];
    // Each cluster in turn writes a newer status alone; after every write both clusters' newest must be there.
    for (step, who) in [0, 1, 0, 1].into_iter().enumerate() {
        let n = 10 + step as u32;
        writers[who].set(&client, n).await?;
        let out = writers[who].command(&control)?.once()?;
        anyhow::ensure!(out.status.success(), "step {step}: {}", output_text(&out));
        latest[who] = n;
        for (w, want) in writers.iter().zip(latest) {
            let text = file_on_branch(&control, "main", &w.path()).context("status missing")?;
            let seen: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with("unavailableReplicas"))
                .collect();
            let newest = format!("unavailableReplicas: {want}");
            anyhow::ensure!(
                seen == [newest.as_str()],
                "step {step} (writer {who} wrote {n}): {} went back to {seen:?}, its newest is {want}; status refs: {:?}; log:\n{}",
                w.cluster,
                status_refs(&control)?,
                output_text(&out)
            );
        }
    }
    Ok(())
}
