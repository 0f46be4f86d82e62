//! Git servers that stop answering in the middle of a conversation (issue 12 item 1): the fetch frozen while
//! the client waits for the pack, the push frozen while it waits for the report, over HTTPS and SSH. The agent
//! and the status writer give up after `--git-timeout`, say so, are not ready while it lasts, and land the
//! change once the server answers again.

use std::process::Output;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use outpost_tests::agent::{AgentCommand, Transport, create_namespace, output_text};
use outpost_tests::{git_servers, kube_env, unique};

use crate::common::{Seen, config_value, config_value_is, eventually, log_tail};
use crate::fixtures;
use crate::status::{file_on_branch, synced_emco_app};

/// The stall limit the tests give: short, so a stall is noticed quickly.
const LIMIT: &str = "3s";
/// How long a run may take before the test calls it hung: far beyond the limit, and beyond the HTTP client's
/// own 30 s read timeout, so only our deadline can end the run in time.
const HUNG: Duration = Duration::from_secs(25);
/// Long enough for a few polls with error backoff on a busy machine.
const CONVERGE: Duration = Duration::from_secs(90);

/// Run `cmd` to its end on a thread; `None` when it did not end within [`HUNG`].
fn run_bounded(cmd: AgentCommand) -> Result<Option<Output>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(cmd.once());
    });
    match rx.recv_timeout(HUNG) {
        Ok(out) => Ok(Some(out?)),
        Err(_) => Ok(None),
    }
}

fn assert_stalled(out: Option<Output>, what: &str) -> Result<()> {
    let out = out
        .ok_or_else(|| anyhow!("{what} hung on the frozen server for {HUNG:?} with --git-timeout {LIMIT}"))?;
    let text = output_text(&out);
    anyhow::ensure!(
        !out.status.success(),
        "{what} succeeded against a frozen server: {text}"
    );
    anyhow::ensure!(
        text.contains("stalled") && text.contains("--git-timeout"),
        "{what} did not report the stall: {text}"
    );
    Ok(())
}

async fn a_frozen_fetch_is_abandoned_and_the_change_lands_after(transport: fn() -> Transport) -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "stall").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("stall"))?;
    let file = format!("clusters/{cluster}/app/a.yaml");
    repo.write(&file, &fixtures::config_map(&ns, "a", "1"))?;
    repo.commit("one")?;
    let mut agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, transport())?;
    agent.arg("--git-timeout").arg(LIMIT);
    let out = agent.once()?;
    anyhow::ensure!(out.status.success(), "{}", output_text(&out));

    // The next fetch stops in pack-objects: the refs were listed, the pack never comes.
    repo.write(&file, &fixtures::config_map(&ns, "a", "2"))?;
    repo.commit("two")?;
    repo.freeze_next()?;
    let cache = outpost_tests::scratch_dir("stall-cache")?;
    let mut first = AgentCommand::new(env, &repo, &cluster, &agent_ns, transport())?;
    first.arg("--git-timeout").arg(LIMIT).set_cache_dir(&cache);
    let result = run_bounded(first);
    repo.wait_frozen(Duration::from_secs(5))
        .context("the fetch never reached the server's pack-objects")?;
    let verdict = assert_stalled(result?, "the agent's fetch");
    repo.thaw()?;
    verdict?;
    assert_eq!(config_value(&client, &ns, "a").await?.as_deref(), Some("1"));

    // The server answers again: the change lands.
    let out = agent.once()?;
    anyhow::ensure!(out.status.success(), "{}", output_text(&out));
    assert_eq!(config_value(&client, &ns, "a").await?.as_deref(), Some("2"));
    Ok(())
}

#[tokio::test]
async fn a_fetch_frozen_mid_transfer_over_https_is_abandoned_and_caught_up() -> Result<()> {
    a_frozen_fetch_is_abandoned_and_the_change_lands_after(|| Transport::Https).await
}

#[tokio::test]
async fn a_fetch_frozen_mid_transfer_over_ssh_is_abandoned_and_caught_up() -> Result<()> {
    a_frozen_fetch_is_abandoned_and_the_change_lands_after(|| Transport::Ssh).await
}

async fn a_frozen_push_is_abandoned_and_the_status_lands_after(transport: fn() -> Transport) -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let servers = git_servers();
    let (cluster, ns, agent_ns, repo) = synced_emco_app(&client, servers).await?;
    let path = format!("clusters/{cluster}/status/100/app/web/100-web-status.yaml");
    let mut writer = AgentCommand::status_writer(servers, env, &repo, &cluster, &agent_ns, transport())?;
    writer.arg("--git-timeout").arg(LIMIT);
    let out = writer.once()?;
    anyhow::ensure!(out.status.success(), "{}", output_text(&out));
    anyhow::ensure!(file_on_branch(&repo, "main", &path).is_some(), "no first status");

    // New status to write; the writer's cache already holds the branch, so only the push meets the server's
    // frozen pre-receive hook (the pack is sent, the report never comes).
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let status = serde_json::json!({"status": {"unavailableReplicas": 7}});
    deploys
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    repo.freeze_next()?;
    let result = run_bounded(writer.clone());
    repo.wait_frozen(Duration::from_secs(10))
        .context("the push never reached the server's pre-receive hook")?;
    let verdict = assert_stalled(result?, "the status writer's push");
    repo.thaw()?;
    verdict?;

    eventually(
        CONVERGE,
        "the new status after the server answered again",
        || async {
            let out = writer.once()?;
            let text = file_on_branch(&repo, "main", &path).unwrap_or_default();
            Ok(Seen::done_if(
                out.status.success() && text.contains("unavailableReplicas: 7"),
                format!("run: {}; status file: {}", out.status, log_tail(&text, 5)),
            ))
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_push_frozen_before_its_report_over_https_is_abandoned_and_lands_later() -> Result<()> {
    a_frozen_push_is_abandoned_and_the_status_lands_after(|| Transport::Https).await
}

#[tokio::test]
async fn a_push_frozen_before_its_report_over_ssh_is_abandoned_and_lands_later() -> Result<()> {
    a_frozen_push_is_abandoned_and_the_status_lands_after(|| Transport::Ssh).await
}

/// The daemon: not ready while its fetch is stalled (the reason on `/readyz`), ready again and synced once the
/// server answers.
#[tokio::test]
async fn a_stalled_daemon_is_not_ready_until_the_server_answers_again() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "stallready").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("stallready"))?;
    let file = format!("clusters/{cluster}/app/a.yaml");
    repo.write(&file, &fixtures::config_map(&ns, "a", "1"))?;
    repo.commit("one")?;
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Ssh)?.spawn_with(&[
        "--interval",
        "1s",
        "--git-timeout",
        LIMIT,
    ])?;
    agent.wait_ready(Duration::from_secs(60)).await?;

    repo.write(&file, &fixtures::config_map(&ns, "a", "2"))?;
    repo.commit("two")?;
    repo.freeze_next()?;
    let waited = eventually(CONVERGE, "/readyz to report the stall", || async {
        let (code, body) = agent.get("/readyz").await?;
        Ok(Seen::done_if(
            code == 503 && body.contains("stalled"),
            format!("{code} {body}"),
        ))
    })
    .await;
    let metric = agent.get("/metrics").await.map(|(_, m)| m).unwrap_or_default();
    repo.thaw()?;
    waited.map_err(|e| anyhow!("{e}; log:\n{}", log_tail(&agent.logs(), 10)))?;
    assert!(
        metric.contains("outpost_reconcile_failures_total{error=\"git_timeout\"}"),
        "no git_timeout failure counted:\n{metric}"
    );
    let (code, body) = agent.get("/healthz").await?;
    assert_eq!(code, 200, "a stalled Git server is not a stuck loop: {body}");

    eventually(CONVERGE, "the change after the server answered again", || async {
        config_value_is(&client, &ns, "a", "2").await
    })
    .await?;
    agent.wait_ready(Duration::from_secs(60)).await?;
    Ok(())
}
