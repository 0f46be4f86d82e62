//! No status churn: the agent records every sync on the inventory (resyncs included), yet status is committed
//! only when something a reader acts on changes, or, with `--status-heartbeat`, when the sync time it holds is a
//! heartbeat old. Agent daemon and status writer run against the real API server and Git servers.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams};
use outpost_tests::agent::{AgentCommand, RunningAgent, Transport};
use outpost_tests::{TestRepo, git_servers, kube_env};
use serde_json::Value;

use crate::common::{Seen, eventually};
use crate::status::{commit_count, file_on_branch, synced_emco_app};

/// Long enough for debounce, pushes and a few resyncs on a busy machine.
const LANDS: Duration = Duration::from_secs(120);
/// The agent's shortest resync interval.
const RESYNC: &str = "10s";

/// The status file of the EMCO app `synced_emco_app` makes.
fn status_path(cluster: &str) -> String {
    format!("clusters/{cluster}/status/100/app/web/100-web-status.yaml")
}

/// The sync result the inventory of bundle 100-web records (`outpost.dev/sync`).
async fn inventory_sync(client: &kube::Client, agent_ns: &str) -> Result<Value> {
    let api: Api<Secret> = Api::namespaced(client.clone(), agent_ns);
    let parents = api
        .list(&ListParams::default().labels("outpost.dev/inventory=v1"))
        .await?;
    let annotations = parents
        .items
        .into_iter()
        .filter_map(|s| s.metadata.annotations)
        .find(|a| a.get("outpost.dev/bundle").map(String::as_str) == Some("100-web"))
        .context("no inventory of 100-web")?;
    let sync = annotations
        .get("outpost.dev/sync")
        .context("no sync annotation")?;
    Ok(serde_json::from_str(sync)?)
}

/// The status document's sync annotation (JSON) and the document without it.
fn split_status(text: &str) -> Result<(Value, Value)> {
    let mut doc: Value = serde_saphyr::from_str(text)?;
    let annotations = doc["metadata"]["annotations"]
        .as_object_mut()
        .context("no annotations")?;
    let sync = annotations
        .remove("outpost.dev/sync")
        .and_then(|s| s.as_str().map(str::to_owned))
        .context("no sync annotation")?;
    Ok((serde_json::from_str(&sync)?, doc))
}

/// `lastSync` of a sync annotation, as a timestamp.
fn last_sync(sync: &Value) -> Result<jiff::Timestamp> {
    Ok(sync["lastSync"]
        .as_str()
        .with_context(|| format!("no lastSync in {sync}"))?
        .parse()?)
}

/// Sum of the series of the writer's metric `name`.
async fn metric(writer: &RunningAgent, name: &str) -> Result<f64> {
    let (_, text) = writer.get("/metrics").await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// A control repository of its own: the agent reads `resources`, the writer writes here. (With one repository
/// for both, EMCO's default, every status commit moves the branch the agent follows; a resync of the same content
/// records the revision that brought it, so status does not loop: the `shared` variant of the test.)
fn control_repo(servers: &outpost_tests::GitServers) -> Result<TestRepo> {
    let control = servers.create_repo(&outpost_tests::unique("status"))?;
    control.write("README.md", "control repository\n")?;
    control.commit("init")?;
    Ok(control)
}

/// Wait for the agent to record `n` more syncs of 100-web (their times appended to `times`), each rendered by
/// `writer` afterwards.
async fn recorded_syncs(
    client: &kube::Client,
    agent_ns: &str,
    writer: &RunningAgent,
    times: &mut Vec<Value>,
    n: usize,
) -> Result<()> {
    const RENDERED: &str = "outpost_status_documents_rendered_total";
    let deadline = Instant::now() + LANDS;
    let want = times.len() + n;
    while times.len() < want {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the agent recorded only the syncs at {times:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let time = inventory_sync(client, agent_ns).await?["time"].clone();
        if times.last() == Some(&time) {
            continue;
        }
        times.push(time);
        let rendered = metric(writer, RENDERED).await?;
        eventually(LANDS, "the writer rendering the recorded sync", || async {
            let now = metric(writer, RENDERED).await?;
            Ok(Seen::done_if(now > rendered, format!("rendered {now}")))
        })
        .await?;
    }
    Ok(())
}

/// Wait for the first status file on `main`.
async fn first_status(repo: &TestRepo, path: &str, writer: &RunningAgent) -> Result<String> {
    eventually(LANDS, "the first status", || async {
        Ok(file_on_branch(repo, "main", path).map_or(Seen::Not("no status file".into()), Seen::Done))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", writer.logs()))
}

#[tokio::test]
async fn resyncs_that_change_nothing_commit_no_status_and_a_real_change_does() -> Result<()> {
    no_churn(false).await
}

#[tokio::test]
async fn with_status_in_the_resource_repository_resyncs_still_commit_nothing() -> Result<()> {
    no_churn(true).await
}

/// Resyncs with nothing changed commit no status; a real change does. `shared`: the writer writes to the
/// repository the agent follows (each status commit moves its branch), as with EMCO's default layout.
async fn no_churn(shared: bool) -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let servers = git_servers();
    let (cluster, ns, agent_ns, resources) = synced_emco_app(&client, servers).await?;
    let own;
    let repo: &TestRepo = if shared {
        &resources
    } else {
        own = control_repo(servers)?;
        &own
    };
    let path = status_path(&cluster);
    let _agent = AgentCommand::with_servers(servers, env, &resources, &cluster, &agent_ns, Transport::Https)?
        .spawn_with(&["--interval", "2s", "--resync-interval", RESYNC])?;
    let writer = AgentCommand::status_writer(servers, env, repo, &cluster, &agent_ns, Transport::Https)?
        .spawn_with(&["--debounce", "200ms", "--status-heartbeat", "0"])?;
    first_status(repo, &path, &writer).await?;

    // Syncs the agent records with nothing changed in Git, each seen by the writer: up to the third, the
    // writer may still commit what the daemon's first sync changed; from there on the branch must not move.
    let mut times = vec![inventory_sync(&client, &agent_ns).await?["time"].clone()];
    recorded_syncs(&client, &agent_ns, &writer, &mut times, 3).await?;
    let before = commit_count(repo, "main")?;
    let text = file_on_branch(repo, "main", &path).context("status file")?;
    let (sync, doc) = split_status(&text)?;
    assert_eq!(sync["state"], "Synced", "{sync}");
    recorded_syncs(&client, &agent_ns, &writer, &mut times, 2).await?;
    assert_eq!(
        commit_count(repo, "main")?,
        before,
        "resyncs at {times:?} with nothing changed committed status; log:\n{}",
        writer.logs()
    );
    assert_eq!(
        file_on_branch(repo, "main", &path).as_deref(),
        Some(text.as_str())
    );

    // A change a reader acts on: one commit, carrying the newest sync time.
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let status = serde_json::json!({"status": {"unavailableReplicas": 3}});
    deploys
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    let changed = eventually(LANDS, "the changed status", || async {
        Ok(match file_on_branch(repo, "main", &path) {
            Some(t) if t.contains("unavailableReplicas: 3") => Seen::Done(t),
            _ => Seen::Not(format!("{} commits", commit_count(repo, "main")?)),
        })
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", writer.logs()))?;
    assert!(commit_count(repo, "main")? > before);
    let (new_sync, new_doc) = split_status(&changed)?;
    assert_ne!(new_doc, doc);
    let newest: jiff::Timestamp = times
        .last()
        .and_then(Value::as_str)
        .context("no sync time")?
        .parse()?;
    assert!(
        last_sync(&new_sync)? >= newest && last_sync(&new_sync)? > last_sync(&sync)?,
        "the changed status says lastSync {} (unchanged: {}), the inventory {newest}",
        new_sync["lastSync"],
        sync["lastSync"]
    );
    Ok(())
}

#[tokio::test]
async fn with_a_heartbeat_unchanged_status_is_committed_once_the_sync_time_it_holds_is_that_old() -> Result<()>
{
    let env = kube_env();
    let client = env.client().await?;
    let servers = git_servers();
    let (cluster, _ns, agent_ns, resources) = synced_emco_app(&client, servers).await?;
    let repo = control_repo(servers)?;
    let path = status_path(&cluster);
    let heartbeat = Duration::from_secs(25);
    let _agent = AgentCommand::with_servers(servers, env, &resources, &cluster, &agent_ns, Transport::Https)?
        .spawn_with(&["--interval", "2s", "--resync-interval", RESYNC])?;
    let writer = AgentCommand::status_writer(servers, env, &repo, &cluster, &agent_ns, Transport::Https)?
        .spawn_with(&["--debounce", "200ms", "--status-heartbeat", "25s"])?;
    let text = first_status(&repo, &path, &writer).await?;
    let (sync, doc) = split_status(&text)?;
    let first = last_sync(&sync)?;
    let before = commit_count(&repo, "main")?;
    let beat = eventually(LANDS, "a heartbeat commit", || async {
        Ok(match file_on_branch(&repo, "main", &path) {
            Some(t) if t != text => Seen::Done(t),
            _ => Seen::Not(format!(
                "lastSync {first}, inventory {}",
                inventory_sync(&client, &agent_ns).await?["time"]
            )),
        })
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", writer.logs()))?;
    assert_eq!(
        commit_count(&repo, "main")?,
        before + 1,
        "one commit per heartbeat"
    );
    let (beat_sync, beat_doc) = split_status(&beat)?;
    assert_eq!(beat_doc, doc, "only the sync time moved");
    let mut unchanged = beat_sync.clone();
    unchanged["lastSync"] = sync["lastSync"].clone();
    assert_eq!(unchanged, sync, "only the sync time moved");
    let gap = last_sync(&beat_sync)?.duration_since(first);
    assert!(
        gap >= jiff::SignedDuration::try_from(heartbeat)?,
        "heartbeat after {gap:?}, before the {heartbeat:?} it was set to"
    );
    Ok(())
}
