//! The agent as a daemon: drift correction, fights, probes and metrics, local-path reaction, dependencies,
//! and graceful shutdown.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use outpost_tests::agent::{AgentCommand, RunningAgent, Transport, create_namespace};
use outpost_tests::{git_servers, kube_env, unique};

use crate::common::{Seen, config_value, config_value_exists, config_value_is, eventually, metric};
use crate::fixtures;

/// Generous bound for "reverted within a second": machines here are shared and slow; the benchmark measures
/// the real latency.
const SOON: Duration = Duration::from_secs(10);

/// A Deployment that leaves `replicas` to others (an HPA).
fn deployment(ns: &str, name: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: main\n        image: {image}\n"
    )
}

/// The body of `/readyz` (it names the role: leader, standby, single).
async fn readyz(agent: &RunningAgent) -> String {
    agent
        .get("/readyz")
        .await
        .map(|(_, body)| body)
        .unwrap_or_default()
}

fn other_manager() -> PatchParams {
    PatchParams::apply("someone-else").force()
}

#[tokio::test]
async fn hand_edits_and_deletions_are_reverted_but_fields_of_other_managers_are_not() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "drift").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("drift"))?;
    let base = format!("clusters/{cluster}/app");
    repo.write(
        &format!("{base}/cm.yaml"),
        &fixtures::config_map(&ns, "settings", "ours"),
    )?
    .write(
        &format!("{base}/deploy.yaml"),
        &deployment(&ns, "web", "nginx:1.27"),
    )?;
    repo.commit("app")?;
    // An hour between polls: anything reverted below was reverted by the drift watch, not a poll.
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?.spawn("1h")?;
    agent.wait_ready(Duration::from_secs(60)).await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &ns);

    // Someone edits data by hand.
    let edit = serde_json::json!({"data": {"key": "theirs"}});
    cms.patch("settings", &PatchParams::default(), &Patch::Merge(&edit))
        .await?;
    eventually(SOON, "the ConfigMap edit to be reverted", || {
        config_value_is(&client, &ns, "settings", "ours")
    })
    .await?;

    // Someone deletes it.
    cms.delete("settings", &DeleteParams::default()).await?;
    eventually(SOON, "the deleted ConfigMap to come back", || {
        config_value_is(&client, &ns, "settings", "ours")
    })
    .await?;

    // Someone changes the Deployment's image.
    let image = serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "evil:1"}]}}}});
    deploys
        .patch("web", &PatchParams::default(), &Patch::Strategic(&image))
        .await?;
    eventually(SOON, "the image edit to be reverted", || async {
        let d = deploys.get("web").await?;
        let v = serde_json::to_value(&d)?;
        let image = v
            .pointer("/spec/template/spec/containers/0/image")
            .and_then(|i| i.as_str());
        Ok(Seen::done_if(
            image == Some("nginx:1.27"),
            format!("image={image:?}"),
        ))
    })
    .await?;
    // The metric is counted once the re-apply has returned, a moment after the object is back.
    eventually(SOON, "the drift metric to count three reverts", || async {
        let reverted = metric(&agent, "outpost_drift_reverted_total", "bundle=\"app\"").await?;
        Ok(Seen::done_if(
            reverted >= 3.0,
            format!("outpost_drift_reverted_total={reverted}"),
        ))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", agent.logs()))?;
    let reverted = metric(&agent, "outpost_drift_reverted_total", "bundle=\"app\"").await?;

    // An HPA owns replicas (our manifest leaves them out): not a fight, not reverted.
    let hpa = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 5}});
    deploys
        .patch(
            "web",
            &PatchParams::apply("hpa-controller").force(),
            &Patch::Apply(&hpa),
        )
        .await?;
    // And a controller updates status: not drift either.
    let status = serde_json::json!({"status": {"observedGeneration": 99, "replicas": 5}});
    deploys
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let d = deploys.get("web").await?;
    let replicas = serde_json::to_value(&d)?
        .pointer("/spec/replicas")
        .and_then(|r| r.as_i64());
    assert_eq!(
        replicas,
        Some(5),
        "the agent fought the HPA; log:\n{}",
        agent.logs()
    );
    let after = metric(&agent, "outpost_drift_reverted_total", "bundle=\"app\"").await?;
    assert_eq!(
        after,
        reverted,
        "replicas or status changes were counted as drift; log:\n{}",
        agent.logs()
    );
    Ok(())
}

#[tokio::test]
async fn an_object_fought_over_is_reported_and_then_left_alone() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "fight").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("fight"))?;
    repo.write(
        &format!("clusters/{cluster}/app/cm.yaml"),
        &fixtures::config_map(&ns, "contested", "ours"),
    )?;
    repo.commit("app")?;
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?.spawn("1h")?;
    agent.wait_ready(Duration::from_secs(60)).await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let theirs = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"key": "theirs"}});
    // Another actor keeps writing the same field; each time we revert it.
    for round in 0..outpost_agent::drift::FIGHT_THRESHOLD + 1 {
        cms.patch("contested", &other_manager(), &Patch::Apply(&theirs))
            .await?;
        eventually(SOON, &format!("revert {round}"), || {
            config_value_is(&client, &ns, "contested", "ours")
        })
        .await?;
    }
    eventually(SOON, "the fight to be reported", || async {
        let fights = metric(&agent, "outpost_drift_fights_total", "bundle=\"app\"").await?;
        Ok(Seen::done_if(
            fights >= 1.0,
            format!("outpost_drift_fights_total={fights}"),
        ))
    })
    .await?;
    assert!(agent.logs().contains("Drift fight"), "{}", agent.logs());
    // Now the agent backs off instead of looping.
    cms.patch("contested", &other_manager(), &Patch::Apply(&theirs))
        .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        config_value(&client, &ns, "contested").await?.as_deref(),
        Some("theirs")
    );
    Ok(())
}

#[tokio::test]
async fn probes_and_metrics_are_served_and_sigterm_stops_the_agent() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "probe").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("probe"))?;
    repo.write(
        &format!("clusters/{cluster}/app/cm.yaml"),
        &fixtures::config_map(&ns, "c", "1"),
    )?;
    repo.commit("app")?;
    let mut agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?.spawn("1s")?;
    assert_eq!(agent.get("/healthz").await.map(|r| r.0).unwrap_or(200), 200);
    agent.wait_ready(Duration::from_secs(60)).await?;
    // A few polls of an unchanged commit.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (code, body) = agent.get("/metrics").await?;
    assert_eq!(code, 200);
    for name in [
        "outpost_reconcile_duration_seconds_count{result=\"success\"} 1",
        "outpost_reconcile_duration_seconds_count{result=\"unchanged\"}",
        "outpost_objects_applied_total{bundle=\"app\"} 1",
        "outpost_git_requests_total{operation=\"ref_check\",result=\"success\"}",
        "outpost_last_successful_sync_timestamp_seconds{bundle=\"app\"}",
        "outpost_bundle_objects{bundle=\"app\"} 1",
    ] {
        assert!(body.contains(name), "{name} missing from /metrics:\n{body}");
    }
    let servers = git_servers();
    assert!(!body.contains(&servers.http_password), "the token is in /metrics");
    assert!(
        !agent.logs().contains(&servers.http_password),
        "the token is in the log"
    );
    assert!(
        agent.terminate(Duration::from_secs(10))?,
        "agent ignored SIGTERM; log:\n{}",
        agent.logs()
    );
    assert!(agent.logs().contains("Stopped"), "{}", agent.logs());
    Ok(())
}

#[tokio::test]
async fn a_local_path_repository_is_applied_as_soon_as_it_changes() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "local").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("mirror"))?;
    repo.write(
        &format!("clusters/{cluster}/app/a.yaml"),
        &fixtures::config_map(&ns, "a", "1"),
    )?;
    repo.commit("one")?;
    // Polling once an hour: only the filesystem watch can bring the second commit in.
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::File)?.spawn("1h")?;
    agent.wait_ready(Duration::from_secs(60)).await?;
    repo.write(
        &format!("clusters/{cluster}/app/b.yaml"),
        &fixtures::config_map(&ns, "b", "2"),
    )?;
    repo.commit("two")?;
    eventually(
        SOON,
        "the new commit of the local repository to be applied",
        || config_value_exists(&client, &ns, "b"),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", agent.logs()))?;
    Ok(())
}

#[tokio::test]
async fn a_bundle_waits_until_its_dependencies_are_healthy() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "deps").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("deps"))?;
    let base = format!("clusters/{cluster}");
    repo.write(
        &format!("{base}/db/deploy.yaml"),
        &deployment(&ns, "db", "postgres:16"),
    )?
    .write(
        &format!("{base}/app/cm.yaml"),
        &fixtures::config_map(&ns, "app-config", "x"),
    )?
    .write(&format!("{base}/app/outpost.yaml"), "dependsOn: [db]\n")?;
    repo.commit("app depends on db")?;
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?.spawn("1h")?;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    eventually(Duration::from_secs(60), "db to be applied", || async {
        if deploys.get_opt("db").await?.is_some() {
            return Ok(Seen::Done(()));
        }
        let names: Vec<String> = deploys
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .filter_map(|d| d.metadata.name)
            .collect();
        Ok(Seen::Not(format!("no Deployment db; Deployments: {names:?}")))
    })
    .await?;
    // No controllers run here: db never becomes available by itself, so app must wait.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        config_value(&client, &ns, "app-config").await?,
        None,
        "app did not wait for db"
    );
    // Play the Deployment controller: db becomes available.
    let generation = deploys.get("db").await?.metadata.generation.unwrap_or(1);
    let status = serde_json::json!({"status": {
        "observedGeneration": generation, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1,
        "availableReplicas": 1,
        "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                       {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}});
    deploys
        .patch_status("db", &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    eventually(
        Duration::from_secs(30),
        "app to be applied once db is healthy",
        || config_value_exists(&client, &ns, "app-config"),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", agent.logs()))?;
    agent.wait_ready(Duration::from_secs(30)).await?;
    Ok(())
}

/// Issue 12 item 3: a dependency that stays unhealthy is retried less and less often (5 s, 10 s, 20 s, up to a
/// minute), not every 5 s: each retry reads and parses the commit again. Over 40 s a fixed 5 s retry makes 8 or
/// 9 rounds; the backoff makes 4 (fewer on a slow machine, never more).
#[tokio::test]
async fn a_bundle_waiting_on_an_unhealthy_dependency_is_retried_less_and_less_often() -> Result<()> {
    const WATCHED: Duration = Duration::from_secs(40);
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "backoff").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("backoff"))?;
    let base = format!("clusters/{cluster}");
    repo.write(
        &format!("{base}/db/deploy.yaml"),
        &deployment(&ns, "db", "postgres:16"),
    )?
    .write(
        &format!("{base}/app/cm.yaml"),
        &fixtures::config_map(&ns, "app-config", "x"),
    )?
    .write(&format!("{base}/app/outpost.yaml"), "dependsOn: [db]\n")?;
    repo.commit("app depends on db, which never becomes available here")?;
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?.spawn("1h")?;
    let rounds = || agent.logs().matches("Waiting for dependencies").count();
    eventually(Duration::from_secs(60), "the first waiting round", || async {
        Ok(Seen::done_if(rounds() > 0, agent.logs()))
    })
    .await?;
    let first = rounds();
    tokio::time::sleep(WATCHED).await;
    let retries = rounds() - first;
    assert!(
        (1..=4).contains(&retries),
        "{retries} waiting rounds in {WATCHED:?} (a fixed 5 s retry makes 8); log:\n{}",
        agent.logs()
    );
    assert_eq!(
        config_value(&client, &ns, "app-config").await?,
        None,
        "app did not wait"
    );
    Ok(())
}

#[tokio::test]
async fn failures_are_published_as_events_on_the_bundle_inventory() -> Result<()> {
    use k8s_openapi::api::events::v1::Event;
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "events").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("events"))?;
    let base = format!("clusters/{cluster}/app");
    repo.write(&format!("{base}/ok.yaml"), &fixtures::config_map(&ns, "ok", "1"))?
        .write(
            &format!("{base}/bad.yaml"),
            &format!(
                "apiVersion: nowhere.example/v1\nkind: Gadget\nmetadata:\n  name: g\n  namespace: {ns}\n"
            ),
        )?;
    repo.commit("one good, one unknown kind")?;
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?.spawn("1h")?;
    let events: Api<Event> = Api::namespaced(client.clone(), &agent_ns);
    let parent = outpost_agent::inventory::applyset::parent_name(&cluster, "app");
    let event = eventually(Duration::from_secs(60), "a SyncFailed event", || async {
        let items = events.list(&Default::default()).await?.items;
        let seen: Vec<(Option<String>, Option<String>)> = items
            .iter()
            .map(|e| {
                let regarding = e.regarding.as_ref().and_then(|r| r.name.clone());
                (e.reason.clone(), regarding)
            })
            .collect();
        Ok(items
            .into_iter()
            .find(|e| {
                e.reason.as_deref() == Some("SyncFailed")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(parent.as_str())
            })
            .map_or_else(
                || Seen::Not(format!("events (reason, regarding): {seen:?}")),
                Seen::Done,
            ))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", agent.logs()))?;
    let note = event.note.unwrap_or_default();
    assert!(
        note.contains("Gadget") && note.contains(&format!("{base}/bad.yaml")),
        "{note}"
    );
    assert_eq!(config_value(&client, &ns, "ok").await?.as_deref(), Some("1"));
    Ok(())
}

#[tokio::test]
async fn a_status_only_commit_costs_the_api_server_nothing() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "statusonly").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("statusonly"))?;
    repo.write(
        &format!("clusters/{cluster}/app/a.yaml"),
        &fixtures::config_map(&ns, "a", "1"),
    )?;
    repo.commit("app")?;
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?.spawn("1s")?;
    agent.wait_ready(Duration::from_secs(60)).await?;
    // Let the drift watches settle, then count.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let requests = metric(&agent, "outpost_kube_requests_total", "").await?;
    let fetches = metric(&agent, "outpost_git_requests_total", "operation=\"fetch\"").await?;
    repo.write(
        &format!("clusters/{cluster}/status/app/app-status.yaml"),
        "status: written by a status writer\n",
    )?;
    repo.commit("status only")?;
    eventually(SOON, "the agent to fetch the status commit", || async {
        let now = metric(&agent, "outpost_git_requests_total", "operation=\"fetch\"").await?;
        Ok(Seen::done_if(
            now > fetches,
            format!("fetches={now} (before the commit: {fetches})"),
        ))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = metric(&agent, "outpost_kube_requests_total", "").await?;
    assert_eq!(
        after,
        requests,
        "a status-only commit caused API requests; log:\n{}",
        agent.logs()
    );
    // A real change still goes through.
    repo.write(
        &format!("clusters/{cluster}/app/a.yaml"),
        &fixtures::config_map(&ns, "a", "2"),
    )?;
    repo.commit("real change")?;
    eventually(SOON, "the real change", || {
        config_value_is(&client, &ns, "a", "2")
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn with_leader_election_only_one_agent_acts_and_a_standby_takes_over() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "lease").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("lease"))?;
    let file = format!("clusters/{cluster}/app/a.yaml");
    repo.write(&file, &fixtures::config_map(&ns, "a", "1"))?;
    repo.commit("one")?;
    let start = |pod: &str| -> Result<RunningAgent> {
        let mut cmd = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
        cmd.arg("--leader-election")
            .arg("--lease-name")
            .arg("agent-lease")
            .arg("--lease-duration")
            .arg("3s");
        cmd.env("POD_NAME", pod);
        cmd.spawn("1s")
    };
    let mut first = start("agent-0")?;
    first.wait_ready(Duration::from_secs(60)).await?;
    // A standby answers /readyz too: wait until the first holds the Lease, or the second could win it.
    eventually(
        Duration::from_secs(60),
        "the first agent to hold the Lease",
        || async {
            Ok(match first.get("/readyz").await {
                Ok((code, body)) => {
                    Seen::done_if(body.contains("leader"), format!("/readyz {code} {body:?}"))
                }
                Err(e) => Seen::Not(format!("/readyz failed: {e:#}")),
            })
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", first.logs()))?;
    let second = start("agent-1")?;
    second.wait_ready(Duration::from_secs(60)).await?;
    assert!(readyz(&first).await.contains("leader"), "{}", first.logs());
    assert!(readyz(&second).await.contains("standby"), "{}", second.logs());
    assert_eq!(metric(&second, "outpost_leader", "").await?, 0.0);
    assert_eq!(metric(&first, "outpost_leader", "").await?, 1.0);
    eventually(SOON, "the leader to sync", || {
        config_value_exists(&client, &ns, "a")
    })
    .await?;
    assert!(
        !second.logs().contains("Synced"),
        "the standby acted:\n{}",
        second.logs()
    );

    // The leader dies; the standby takes over within the lease duration and syncs the next commit.
    first.terminate(Duration::from_secs(10))?;
    repo.write(&file, &fixtures::config_map(&ns, "a", "2"))?;
    repo.commit("two")?;
    eventually(
        Duration::from_secs(30),
        "the standby to take over and sync",
        || config_value_is(&client, &ns, "a", "2"),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}; standby log:\n{}", second.logs()))?;
    assert!(second.logs().contains("Became leader"), "{}", second.logs());
    assert!(readyz(&second).await.contains("leader"));
    Ok(())
}

#[tokio::test]
async fn zero_or_absurd_durations_are_refused_naming_the_flag_before_anything_is_applied() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "flags").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("flags"))?;
    repo.write(
        &format!("clusters/{cluster}/app/a.yaml"),
        &fixtures::config_map(&ns, "a", "1"),
    )?;
    repo.commit("one object")?;
    let refused = [
        ("outpost-agent", "--interval", "0s", "busy loop"),
        ("outpost-agent", "--resync-interval", "1s", "needless load"),
        ("outpost-agent", "--lease-duration", "0s", "renewals"),
        ("outpost-status-writer", "--debounce", "0s", "commit per change"),
    ];
    for (binary, flag, value, why) in refused {
        let mut cmd = if binary == "outpost-agent" {
            AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::File)?
        } else {
            AgentCommand::status_writer(git_servers(), env, &repo, &cluster, &agent_ns, Transport::File)?
        };
        cmd.arg(flag).arg(value);
        let out = cmd.once()?;
        let text = outpost_tests::agent::output_text(&out);
        assert!(
            !out.status.success(),
            "{binary} {flag} {value} was accepted:\n{text}"
        );
        assert!(
            text.contains(flag) && text.contains(&format!("{value} is outside")) && text.contains(why),
            "{binary} {flag} {value}:\n{text}"
        );
    }
    assert_eq!(
        config_value(&client, &ns, "a").await?,
        None,
        "a refused command line applied"
    );
    Ok(())
}
