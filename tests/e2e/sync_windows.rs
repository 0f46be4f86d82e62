//! Issue 15 item 2, sync windows (`--sync-window`): outside them a new commit is held back and nothing is
//! pruned while drift is still reverted; a new install's first sync runs anyway; inside an allow window the
//! commit applies; `status` says when the next window opens; the chart's `syncWindows` reach the binary.
//!
//! No test waits for a clock: a deny window of 24 h starting every minute is closed whenever it is read, and
//! windows that must be open or closed at a given time are read at a fixed time (`OUTPOST_SYNC_WINDOW_NOW`).

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use outpost_tests::agent::{AgentCommand, RunningAgent, Transport, create_namespace, output_text};
use outpost_tests::{TestRepo, git_servers, kube_env, unique};

use crate::chart::{base, env_var, lint, render, values_file};
use crate::chart_rbac::workload_of;
use crate::common::{Seen, config_value, config_value_is, eventually};
use crate::fixtures;

/// Long enough for a round after a commit (the daemon polls every 2 s here).
const SOON: Duration = Duration::from_secs(30);
/// Closed whenever it is read: a day-long deny window opens every minute.
const ALWAYS_CLOSED: &str = "deny * * * * * 24h";
/// 22:00-02:00 in Berlin: 21:00-01:00 UTC on 2030-03-10.
const EVENINGS: &str = "allow 0 22 * * * 4h Europe/Berlin";

/// A repository for `cluster` with bundle `app`: ConfigMaps a and b, both "1".
fn app_repo(ns: &str, cluster: &str) -> Result<TestRepo> {
    let repo = git_servers().create_repo(&unique("windows"))?;
    let base = format!("clusters/{cluster}/app");
    repo.write(&format!("{base}/a.yaml"), &fixtures::config_map(ns, "a", "1"))?
        .write(&format!("{base}/b.yaml"), &fixtures::config_map(ns, "b", "1"))?;
    repo.commit("a and b")?;
    Ok(repo)
}

/// The next commit: a becomes "2", b leaves Git.
fn change_a_remove_b(repo: &TestRepo, ns: &str, cluster: &str) -> Result<()> {
    let base = format!("clusters/{cluster}/app");
    repo.write(&format!("{base}/a.yaml"), &fixtures::config_map(ns, "a", "2"))?
        .remove(&format!("{base}/b.yaml"))?;
    repo.commit("a=2, b removed")?;
    Ok(())
}

/// Change `key` of ConfigMap `name` by hand, as someone with kubectl would.
async fn hand_edit(cms: &Api<ConfigMap>, name: &str, value: &str) -> Result<()> {
    let edit = serde_json::json!({"data": {"key": value}});
    cms.patch(name, &PatchParams::default(), &Patch::Merge(&edit))
        .await?;
    Ok(())
}

/// The value of `series` on the daemon's `/metrics`, if exported.
async fn metric(agent: &RunningAgent, series: &str) -> Result<Option<f64>> {
    let (_, body) = agent.get("/metrics").await?;
    Ok(body
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok()))
}

/// `outpost-agent status` of `cmd`, as JSON and as the table.
fn status(cmd: &AgentCommand) -> Result<(serde_json::Value, String)> {
    let mut json = cmd.clone();
    json.arg("-o").arg("json");
    let out = json.subcommand("status")?;
    let doc = serde_json::from_slice(&out.stdout).with_context(|| output_text(&out))?;
    let table = cmd.subcommand("status")?;
    anyhow::ensure!(table.status.success(), "status failed:\n{}", output_text(&table));
    Ok((doc, String::from_utf8_lossy(&table.stdout).into_owned()))
}

#[tokio::test]
async fn outside_a_window_a_new_commit_waits_and_drift_is_still_reverted() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "windows").await?;
    let cluster = unique("edge");
    let repo = app_repo(&ns, &cluster)?;
    let mut cmd = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    cmd.env("OUTPOST_SYNC_WINDOW", ALWAYS_CLOSED);
    let mut agent = cmd.spawn("2s")?;
    let logs = |e: anyhow::Error| anyhow::anyhow!("{e}; log:\n{}", agent.logs());

    // A new install syncs although the window is closed.
    eventually(SOON, "the first sync outside the window", || {
        config_value_is(&client, &ns, "b", "1")
    })
    .await
    .map_err(logs)?;
    assert_eq!(config_value(&client, &ns, "a").await?.as_deref(), Some("1"));
    eventually(SOON, "outpost_sync_window_open 0", || async {
        let v = metric(&agent, "outpost_sync_window_open").await?;
        Ok(Seen::done_if(v == Some(0.0), format!("{v:?}")))
    })
    .await
    .map_err(logs)?;

    // The next commit is seen and held back: a keeps "1", b is not pruned.
    change_a_remove_b(&repo, &ns, &cluster)?;
    eventually(SOON, "the new commit held", || async {
        let log = agent.logs();
        Ok(Seen::done_if(log.contains("New commit held"), "not logged yet"))
    })
    .await
    .map_err(logs)?;
    // An operator sees it without the log: a Normal Event on the agent's control ConfigMap.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &agent_ns);
    eventually(SOON, "a SyncHeld event", || async {
        let items = events.list(&Default::default()).await?.items;
        let found = items.iter().any(|e| {
            e.reason.as_deref() == Some("SyncHeld")
                && e.note
                    .as_deref()
                    .is_some_and(|n| n.contains("held outside the sync windows"))
        });
        let reasons: Vec<_> = items.iter().map(|e| e.reason.clone()).collect();
        Ok(Seen::done_if(found, format!("{reasons:?}")))
    })
    .await
    .map_err(logs)?;
    // Drift is reverted to the last applied commit, not to the held one.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    hand_edit(&cms, "a", "by-hand").await?;
    eventually(SOON, "drift reverted to the last applied a=1", || {
        config_value_is(&client, &ns, "a", "1")
    })
    .await
    .map_err(logs)?;
    assert!(
        config_value(&client, &ns, "b").await?.is_some(),
        "b pruned outside the window"
    );

    // status says the window is closed and that none will open.
    let (doc, table) = status(&cmd)?;
    assert_eq!(doc["syncWindows"]["open"], false, "{doc}");
    assert_eq!(doc["syncWindows"]["windows"][0], ALWAYS_CLOSED, "{doc}");
    assert!(doc["syncWindows"].get("nextOpen").is_none(), "{doc}");
    assert!(table.contains("no window opens within five years"), "{table}");
    anyhow::ensure!(
        agent.terminate(Duration::from_secs(20))?,
        "the daemon did not stop"
    );

    // A new process in the same state (a full sync of the kept commit): drift reverted, nothing pruned.
    hand_edit(&cms, "a", "by-hand").await?;
    let out = cmd.once()?;
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("New commit held"), "{text}");
    assert_eq!(
        config_value(&client, &ns, "a").await?.as_deref(),
        Some("1"),
        "{text}"
    );
    assert!(
        config_value(&client, &ns, "b").await?.is_some(),
        "b pruned:\n{text}"
    );

    // Inside an allow window (read at 22:30 in Berlin) the commit applies and b is pruned.
    let mut open = cmd.clone();
    open.env("OUTPOST_SYNC_WINDOW", EVENINGS)
        .env("OUTPOST_SYNC_WINDOW_NOW", "2030-03-10T21:30:00Z");
    let out = open.once()?;
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        config_value(&client, &ns, "a").await?.as_deref(),
        Some("2"),
        "{text}"
    );
    assert_eq!(
        config_value(&client, &ns, "b").await?,
        None,
        "b not pruned:\n{text}"
    );
    Ok(())
}

#[tokio::test]
async fn status_names_the_next_opening_of_the_windows_the_chart_sets() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    // The chart renders syncWindows into the agent's variable.
    let file = values_file(&base(
        "syncWindows:\n  - {kind: allow, schedule: \"0 22 * * *\", duration: 4h, timeZone: Europe/Berlin}\n  - {kind: deny, schedule: \"0 23 10 3 *\", duration: 30m}\n",
    ))?;
    lint(&file)?;
    let docs = render(
        &unique("windows"),
        &create_namespace(&client, "release").await?,
        &file,
    )?;
    let (_, container) = workload_of(&docs, "agent")?;
    let windows = env_var(container, "OUTPOST_SYNC_WINDOW").context("OUTPOST_SYNC_WINDOW")?;
    assert_eq!(windows, format!("{EVENINGS};deny 0 23 10 3 * 30m UTC"));
    // An unknown key is refused by the schema.
    let bad = values_file(&base(
        "syncWindows:\n  - {kind: allow, schedule: \"0 22 * * *\", duration: 4h, zone: UTC}\n",
    ))?;
    assert!(lint(&bad).is_err(), "zone (not timeZone) accepted");

    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "windows").await?;
    let cluster = unique("edge");
    let repo = app_repo(&ns, &cluster)?;
    let mut cmd = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    // 13:00 in Berlin: closed until 22:00 (21:00 UTC).
    cmd.env("OUTPOST_SYNC_WINDOW", &windows)
        .env("OUTPOST_SYNC_WINDOW_NOW", "2030-03-10T12:00:00Z");
    // The first sync of a new install runs outside the windows.
    let out = cmd.once()?;
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("First sync"), "{text}");
    assert_eq!(
        config_value(&client, &ns, "a").await?.as_deref(),
        Some("1"),
        "{text}"
    );
    let (doc, table) = status(&cmd)?;
    assert_eq!(doc["syncWindows"]["open"], false, "{doc}");
    assert_eq!(doc["syncWindows"]["nextOpen"], "2030-03-10T21:00:00Z", "{doc}");
    assert!(
        table.contains("next window opens at 2030-03-10T21:00:00Z"),
        "{table}"
    );
    // Read at 22:05 UTC the deny window (23:00-23:30 UTC) is ahead; at 23:10 it is closed until it ends.
    let mut later = cmd.clone();
    later.env("OUTPOST_SYNC_WINDOW_NOW", "2030-03-10T23:10:00Z");
    let (doc, _) = status(&later)?;
    assert_eq!(doc["syncWindows"]["nextOpen"], "2030-03-10T23:30:00Z", "{doc}");
    let mut open = cmd.clone();
    open.env("OUTPOST_SYNC_WINDOW_NOW", "2030-03-10T22:05:00Z");
    let (doc, table) = status(&open)?;
    assert_eq!(doc["syncWindows"]["open"], true, "{doc}");
    assert!(table.contains("Sync windows: open"), "{table}");
    Ok(())
}
