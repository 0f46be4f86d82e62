//! Issue 13 items 1 and 2: operator controls through the API server (suspend, resume, sync now, drift mode
//! `report`) with `outpost-agent suspend|resume|reconcile`, the same from Git's `outpost.yaml`, and the prune
//! policy `orphan`. Each test runs the daemon against the real API server and Git server.

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams};
use outpost_agent::inventory::applyset::{PART_OF_LABEL, parent_name};
use outpost_tests::agent::{AgentCommand, RunningAgent, Transport, create_namespace, output_text};
use outpost_tests::{TestRepo, git_servers, kube_env, unique};

use crate::common::{Seen, config_value, config_value_is, eventually};
use crate::fixtures;

/// Long enough for a round after a control change or a commit (the daemon polls every 2 s here).
const SOON: Duration = Duration::from_secs(20);
/// How long the tests watch for something that must not happen: several polls and drift watch events.
const QUIET: Duration = Duration::from_secs(6);

/// A control command (`suspend`, `resume`, `reconcile`) for `bundle` (the whole agent without one), run like
/// the agent with its flags; its output.
fn control(agent: &AgentCommand, mode: &str, bundle: Option<&str>) -> Result<String> {
    let mut cmd = agent.clone();
    if let Some(bundle) = bundle {
        cmd.env("OUTPOST_BUNDLE", bundle);
    }
    let out = cmd.subcommand(mode)?;
    let text = output_text(&out);
    anyhow::ensure!(
        out.status.success(),
        "outpost-agent {mode} {bundle:?} failed:\n{text}"
    );
    Ok(text)
}

/// The value of `metric` (a full series name with labels) on the daemon's `/metrics`, if exported.
async fn metric(agent: &RunningAgent, series: &str) -> Result<Option<f64>> {
    let (_, body) = agent.get("/metrics").await?;
    Ok(body
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok()))
}

/// `status -o json` of the agent.
fn status_json(agent: &AgentCommand) -> Result<serde_json::Value> {
    let mut cmd = agent.clone();
    cmd.arg("-o").arg("json");
    let out = cmd.subcommand("status")?;
    serde_json::from_slice(&out.stdout).with_context(|| output_text(&out))
}

/// The bundle named `name` in a status document.
fn bundle_status<'a>(status: &'a serde_json::Value, name: &str) -> Result<&'a serde_json::Value> {
    status["bundles"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["name"] == name))
        .with_context(|| format!("no bundle {name} in {status}"))
}

/// Change `key` of a ConfigMap by hand, as someone with kubectl would.
async fn hand_edit(cms: &Api<ConfigMap>, name: &str, value: &str) -> Result<()> {
    let edit = serde_json::json!({"data": {"key": value}});
    cms.patch(name, &PatchParams::default(), &Patch::Merge(&edit))
        .await?;
    Ok(())
}

/// A repository with bundles `app` (ConfigMaps a and b) and `other` (ConfigMap o) for `cluster`.
fn two_bundles(ns: &str, cluster: &str) -> Result<TestRepo> {
    let repo = git_servers().create_repo(&unique("controls"))?;
    let base = format!("clusters/{cluster}");
    repo.write(&format!("{base}/app/a.yaml"), &fixtures::config_map(ns, "a", "1"))?
        .write(&format!("{base}/app/b.yaml"), &fixtures::config_map(ns, "b", "1"))?
        .write(
            &format!("{base}/other/o.yaml"),
            &fixtures::config_map(ns, "o", "1"),
        )?;
    repo.commit("two bundles")?;
    Ok(repo)
}

#[tokio::test]
async fn a_suspended_bundle_applies_prunes_and_reverts_nothing_until_resumed() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "suspend").await?;
    let cluster = unique("edge");
    let repo = two_bundles(&ns, &cluster)?;
    let cmd = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    let agent = cmd.spawn("2s")?;
    eventually(SOON, "the first sync", || config_value_is(&client, &ns, "o", "1")).await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);

    let said = control(&cmd, "suspend", Some("app"))?;
    assert!(said.contains("bundle app suspended"), "{said}");
    eventually(SOON, "outpost_suspended{bundle=\"app\"} 1", || async {
        let v = metric(&agent, "outpost_suspended{bundle=\"app\"}").await?;
        Ok(Seen::done_if(v == Some(1.0), format!("{v:?}")))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", agent.logs()))?;

    // Git changes both bundles and removes b; a is edited by hand. Only the other bundle moves.
    let base = format!("clusters/{cluster}");
    repo.write(
        &format!("{base}/app/a.yaml"),
        &fixtures::config_map(&ns, "a", "2"),
    )?
    .remove(&format!("{base}/app/b.yaml"))?
    .write(
        &format!("{base}/other/o.yaml"),
        &fixtures::config_map(&ns, "o", "2"),
    )?;
    repo.commit("change both, remove b")?;
    hand_edit(&cms, "a", "by-hand").await?;
    eventually(SOON, "the other bundle to sync", || {
        config_value_is(&client, &ns, "o", "2")
    })
    .await?;
    hand_edit(&cms, "o", "by-hand").await?;
    eventually(SOON, "drift in the other bundle to be reverted", || {
        config_value_is(&client, &ns, "o", "2")
    })
    .await?;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        config_value(&client, &ns, "a").await?.as_deref(),
        Some("by-hand"),
        "reverted or applied while suspended"
    );
    assert!(
        config_value(&client, &ns, "b").await?.is_some(),
        "pruned while suspended"
    );

    let status = status_json(&cmd)?;
    let app = bundle_status(&status, "app")?;
    assert_eq!(app["state"], "Suspended", "{status}");
    assert!(
        app["suspended"].as_str().is_some_and(|s| s.contains("operator")),
        "{status}"
    );
    assert_eq!(bundle_status(&status, "other")?["state"], "Synced", "{status}");
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &agent_ns);
    let reasons: Vec<String> = events
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.clone()) == Some(parent_name(&cluster, "app")))
        .filter_map(|e| e.reason)
        .collect();
    assert!(reasons.contains(&"Suspended".to_owned()), "{reasons:?}");

    let said = control(&cmd, "resume", Some("app"))?;
    assert!(said.contains("bundle app resumed"), "{said}");
    eventually(SOON, "the held-back commit to land on resume", || {
        config_value_is(&client, &ns, "a", "2")
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", agent.logs()))?;
    eventually(SOON, "b to be pruned on resume", || async {
        let b = config_value(&client, &ns, "b").await?;
        Ok(Seen::done_if(b.is_none(), format!("b = {b:?}")))
    })
    .await?;
    let v = metric(&agent, "outpost_suspended{bundle=\"app\"}").await?;
    assert_eq!(v, Some(0.0));
    Ok(())
}

#[tokio::test]
async fn the_whole_agent_suspends_and_a_sync_request_is_answered_at_once() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "agent-suspend").await?;
    let cluster = unique("edge");
    let repo = two_bundles(&ns, &cluster)?;
    let cmd = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    // An hour between polls: only a control can make this agent sync a new commit in time.
    let agent = cmd.spawn("1h")?;
    eventually(SOON, "the first sync", || config_value_is(&client, &ns, "o", "1")).await?;
    let base = format!("clusters/{cluster}");
    repo.write(
        &format!("{base}/other/o.yaml"),
        &fixtures::config_map(&ns, "o", "2"),
    )?;
    repo.commit("a change the next poll would find in an hour")?;
    let said = control(&cmd, "reconcile", None)?;
    assert!(said.contains("synced"), "{said}");
    assert_eq!(
        config_value(&client, &ns, "o").await?.as_deref(),
        Some("2"),
        "{said}"
    );

    control(&cmd, "suspend", None)?;
    eventually(SOON, "outpost_suspended{bundle=\"*\"} 1", || async {
        let v = metric(&agent, "outpost_suspended{bundle=\"*\"}").await?;
        Ok(Seen::done_if(v == Some(1.0), format!("{v:?}")))
    })
    .await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    hand_edit(&cms, "a", "by-hand").await?;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        config_value(&client, &ns, "a").await?.as_deref(),
        Some("by-hand"),
        "reverted while suspended"
    );
    let status = status_json(&cmd)?;
    assert!(
        status["suspended"]
            .as_str()
            .is_some_and(|s| s.contains("whole agent")),
        "{status}"
    );
    let table = String::from_utf8(cmd.subcommand("status")?.stdout)?;
    assert!(table.starts_with("Suspended: "), "{table}");

    control(&cmd, "resume", None)?;
    eventually(SOON, "drift reverted once resumed", || {
        config_value_is(&client, &ns, "a", "1")
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", agent.logs()))?;
    Ok(())
}

#[tokio::test]
async fn git_suspends_and_an_operators_resume_wins_and_is_shown() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "git-suspend").await?;
    let cluster = unique("edge");
    let repo = two_bundles(&ns, &cluster)?;
    repo.write(&format!("clusters/{cluster}/app/outpost.yaml"), "suspend: true\n")?;
    repo.commit("suspend app from Git")?;
    let cmd = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    let agent = cmd.spawn("2s")?;
    eventually(SOON, "the other bundle", || {
        config_value_is(&client, &ns, "o", "1")
    })
    .await?;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        config_value(&client, &ns, "a").await?,
        None,
        "applied although Git suspends it"
    );
    let status = status_json(&cmd)?;
    let app = bundle_status(&status, "app")?;
    assert!(
        app["suspended"].as_str().is_some_and(|s| s.contains("Git")),
        "{status}"
    );

    control(&cmd, "resume", Some("app"))?;
    eventually(SOON, "app applied over Git's suspend", || {
        config_value_is(&client, &ns, "a", "1")
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", agent.logs()))?;
    let status = status_json(&cmd)?;
    let app = bundle_status(&status, "app")?;
    assert!(app["suspended"].is_null(), "{status}");
    assert!(
        app["overridden"]
            .as_str()
            .is_some_and(|o| o.contains("outpost.dev/suspend=false")),
        "{status}"
    );
    Ok(())
}

#[tokio::test]
async fn drift_in_report_mode_is_counted_and_shown_but_not_reverted() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "report").await?;
    let cluster = unique("edge");
    let repo = two_bundles(&ns, &cluster)?;
    repo.write(&format!("clusters/{cluster}/app/outpost.yaml"), "drift: report\n")?;
    repo.commit("report drift of app")?;
    let cmd = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    let agent = cmd.spawn("2s")?;
    eventually(SOON, "the first sync", || config_value_is(&client, &ns, "a", "1")).await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    hand_edit(&cms, "a", "by-hand").await?;
    eventually(SOON, "outpost_drift_detected_total{bundle=\"app\"}", || async {
        let v = metric(&agent, "outpost_drift_detected_total{bundle=\"app\"}").await?;
        Ok(Seen::done_if(v.is_some_and(|v| v >= 1.0), format!("{v:?}")))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", agent.logs()))?;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        config_value(&client, &ns, "a").await?.as_deref(),
        Some("by-hand"),
        "reverted in report mode"
    );
    let reverted = metric(&agent, "outpost_drift_reverted_total{bundle=\"app\"}").await?;
    assert_eq!(reverted.unwrap_or(0.0), 0.0);
    let status = status_json(&cmd)?;
    assert_eq!(bundle_status(&status, "app")?["driftMode"], "report", "{status}");

    // An operator switches the bundle back to revert on its inventory: the drift goes at once.
    let parents: Api<Secret> = Api::namespaced(client.clone(), &agent_ns);
    let revert = serde_json::json!({"metadata": {"annotations": {"outpost.dev/drift": "revert"}}});
    parents
        .patch(
            &parent_name(&cluster, "app"),
            &PatchParams::default(),
            &Patch::Merge(&revert),
        )
        .await?;
    eventually(SOON, "the drift reverted in mode revert", || {
        config_value_is(&client, &ns, "a", "1")
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", agent.logs()))?;
    Ok(())
}

#[tokio::test]
async fn a_bundle_with_prune_policy_orphan_leaves_what_left_git_running_unlabelled() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "orphan").await?;
    let cluster = unique("edge");
    let repo = two_bundles(&ns, &cluster)?;
    repo.write(&format!("clusters/{cluster}/app/outpost.yaml"), "prune: orphan\n")?;
    repo.commit("orphan what leaves app")?;
    let cmd = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    let agent = cmd.spawn("2s")?;
    eventually(SOON, "the first sync", || config_value_is(&client, &ns, "b", "1")).await?;
    let base = format!("clusters/{cluster}");
    repo.remove(&format!("{base}/app/b.yaml"))?
        .remove(&format!("{base}/other/o.yaml"))?
        .write(
            &format!("{base}/other/p.yaml"),
            &fixtures::config_map(&ns, "p", "1"),
        )?;
    repo.commit("b and o leave Git")?;
    eventually(SOON, "o pruned (policy delete)", || async {
        let o = config_value(&client, &ns, "o").await?;
        Ok(Seen::done_if(o.is_none(), format!("o = {o:?}")))
    })
    .await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    eventually(SOON, "b orphaned: running, without our label", || async {
        let b = cms.get_opt("b").await?;
        let labelled = b
            .as_ref()
            .and_then(|b| b.metadata.labels.as_ref())
            .is_some_and(|l| l.contains_key(PART_OF_LABEL));
        Ok(Seen::done_if(
            b.is_some() && !labelled,
            format!("b exists: {}, labelled: {labelled}", b.is_some()),
        ))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", agent.logs()))?;
    let status = status_json(&cmd)?;
    let app = bundle_status(&status, "app")?;
    assert_eq!(app["prunePolicy"], "orphan", "{status}");
    let members: Vec<&str> = app["objects"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert_eq!(members, ["a"], "b left the inventory: {status}");
    let v = metric(&agent, "outpost_objects_orphaned_total{bundle=\"app\"}").await?;
    assert_eq!(v, Some(1.0));

    // The whole bundle leaves Git: its objects stay, its inventory goes.
    repo.remove(&format!("{base}/app/a.yaml"))?
        .remove(&format!("{base}/app/outpost.yaml"))?;
    repo.commit("app leaves Git")?;
    let parents: Api<Secret> = Api::namespaced(client.clone(), &agent_ns);
    eventually(SOON, "app's inventory gone", || async {
        let parent = parents.get_opt(&parent_name(&cluster, "app")).await?;
        Ok(Seen::done_if(parent.is_none(), "parent still there"))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", agent.logs()))?;
    assert_eq!(
        config_value(&client, &ns, "a").await?.as_deref(),
        Some("1"),
        "a was deleted, not orphaned"
    );
    Ok(())
}

#[tokio::test]
async fn a_control_command_for_an_unknown_bundle_names_the_bundles_there_are() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "unknown").await?;
    let cluster = unique("edge");
    let repo = two_bundles(&ns, &cluster)?;
    let cmd = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    let out = cmd.once()?;
    assert!(out.status.success(), "{}", output_text(&out));
    let mut typo = cmd.clone();
    typo.env("OUTPOST_BUNDLE", "ap");
    let out = typo.subcommand("suspend")?;
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("\"ap\"") && text.contains("app, other"), "{text}");
    let parents: Api<Secret> = Api::namespaced(client.clone(), &agent_ns);
    assert!(
        parents.get_opt(&parent_name(&cluster, "ap")).await?.is_none(),
        "a stray Secret was created"
    );
    Ok(())
}
