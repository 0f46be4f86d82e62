//! A polite agent: it honours the Git server's `429`/`503` and `Retry-After`, keeps to its request cap, and
//! places its first poll at its cluster's phase. A throttling proxy in front of the real Git HTTPS server
//! answers what each test chooses and records every request, so the tests count requests, never time them.

use std::time::{Duration, SystemTime};

use anyhow::{Result, ensure};
use outpost_tests::agent::{AgentCommand, RunningAgent, Transport, create_namespace};
use outpost_tests::throttling_proxy::{Refusal, ThrottlingProxy};
use outpost_tests::{git_servers, kube_env, unique};
use sha2::{Digest, Sha256};

use crate::common::{Seen, config_value_exists, eventually, metric};
use crate::fixtures;

/// Generous: a sync on a loaded machine, after a wait the test itself asked for.
const PATIENCE: Duration = Duration::from_secs(180);

/// A repository holding one ConfigMap for `cluster` in `ns`.
fn repo_with_config_map(cluster: &str, ns: &str) -> Result<outpost_tests::TestRepo> {
    let repo = git_servers().create_repo(&unique("polite"))?;
    repo.write(
        &format!("clusters/{cluster}/app/cm.yaml"),
        &fixtures::config_map(ns, "settings", "v1"),
    )?;
    repo.commit("app")?;
    Ok(repo)
}

/// Start an agent polling `repo` every second through `proxy`, with `extra` flags; wait for its ConfigMap.
async fn sync_through(
    proxy: &ThrottlingProxy,
    repo: &outpost_tests::TestRepo,
    cluster: &str,
    ns: &str,
    extra: &[&str],
) -> Result<RunningAgent> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let url = proxy.url(repo);
    let flags = [&["--interval", "1s"][..], extra].concat();
    let agent = AgentCommand::new(env, repo, cluster, &agent_ns, Transport::Url(url))?.spawn_with(&flags)?;
    eventually(PATIENCE, "the ConfigMap synced through the proxy", || {
        config_value_exists(&client, ns, "settings")
    })
    .await
    .map_err(|e| e.context(agent.logs()))?;
    Ok(agent)
}

/// Every request after the refused one arrived no earlier than `until`; returns how many came after it.
fn none_before(proxy: &ThrottlingProxy, until: SystemTime) -> Result<usize> {
    let seen = proxy.seen();
    ensure!(
        seen.first().is_some_and(|s| s.status == 429 || s.status == 503),
        "the first request was not the refused one: {seen:?}"
    );
    let early: Vec<_> = seen[1..].iter().filter(|s| s.at < until).collect();
    ensure!(
        early.is_empty(),
        "{} Git request(s) during Retry-After: {early:?}",
        early.len()
    );
    Ok(seen.len() - 1)
}

#[tokio::test]
async fn retry_after_in_seconds_holds_every_git_request_then_the_sync_goes_through() -> Result<()> {
    let client = kube_env().client().await?;
    let ns = create_namespace(&client, "polite").await?;
    let cluster = unique("edge");
    let repo = repo_with_config_map(&cluster, &ns)?;
    let proxy = ThrottlingProxy::start(git_servers())?;
    proxy.refuse_next(Refusal {
        status: 429,
        retry_after: Some("20".into()),
    });
    let agent = sync_through(&proxy, &repo, &cluster, &ns, &[]).await?;
    // Polled every second, an agent that ignored Retry-After would have sent about twenty polls in it.
    let refused_at = proxy.seen()[0].at;
    let after = none_before(&proxy, refused_at + Duration::from_secs(20))?;
    ensure!(after >= 2, "the sync went through in {after} requests");
    let throttled = metric(
        &agent,
        "outpost_git_throttled_total",
        "reason=\"too_many_requests\"",
    )
    .await?;
    ensure!(
        throttled == 1.0,
        "outpost_git_throttled_total{{too_many_requests}} = {throttled}"
    );
    let logs = agent.logs();
    ensure!(
        logs.contains("Git server asked us to slow down") && logs.contains("status=429"),
        "the hold is not logged: {logs}"
    );
    Ok(())
}

#[tokio::test]
async fn a_503_with_an_http_date_holds_until_that_date() -> Result<()> {
    let client = kube_env().client().await?;
    let ns = create_namespace(&client, "polite").await?;
    let cluster = unique("edge");
    let repo = repo_with_config_map(&cluster, &ns)?;
    let proxy = ThrottlingProxy::start(git_servers())?;
    // HTTP-dates have whole seconds: the date written is the deadline.
    let date = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(15);
    let date = jiff::Timestamp::from_second(date.as_second())?;
    proxy.refuse_next(Refusal {
        status: 503,
        retry_after: Some(date.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string()),
    });
    let agent = sync_through(&proxy, &repo, &cluster, &ns, &[]).await?;
    let until = SystemTime::UNIX_EPOCH + Duration::from_secs(date.as_second() as u64);
    let after = none_before(&proxy, until)?;
    ensure!(after >= 2, "the sync went through in {after} requests");
    let throttled = metric(&agent, "outpost_git_throttled_total", "reason=\"unavailable\"").await?;
    ensure!(
        throttled == 1.0,
        "outpost_git_throttled_total{{unavailable}} = {throttled}"
    );
    Ok(())
}

#[tokio::test]
async fn the_request_cap_holds_requests_beyond_it_within_a_minute() -> Result<()> {
    let client = kube_env().client().await?;
    let ns = create_namespace(&client, "polite").await?;
    let cluster = unique("edge");
    let repo = repo_with_config_map(&cluster, &ns)?;
    let proxy = ThrottlingProxy::start(git_servers())?;
    // A first sync costs 3 requests (advertisement, ref listing, fetch); every later poll 2.
    let agent = sync_through(
        &proxy,
        &repo,
        &cluster,
        &ns,
        &["--git-max-requests-per-minute", "3"],
    )
    .await?;
    eventually(PATIENCE, "the cap to hold a poll back", || async {
        let held = metric(&agent, "outpost_git_throttled_total", "reason=\"request_cap\"").await?;
        Ok(Seen::done_if(held >= 1.0, format!("request_cap={held}")))
    })
    .await?;
    let seen = proxy.seen();
    let first = seen.first().map(|s| s.at).expect("requests were seen");
    // Well inside the agent's first minute (which started a moment before the proxy saw its first request).
    let in_first_minute = seen
        .iter()
        .filter(|s| s.at < first + Duration::from_secs(50))
        .count();
    ensure!(
        in_first_minute <= 3,
        "{in_first_minute} requests in the first minute: {seen:?}"
    );
    ensure!(seen.iter().all(|s| s.status == 200), "{seen:?}");
    let sent = metric(&agent, "outpost_git_server_requests_total", "").await?;
    ensure!(sent >= 3.0, "outpost_git_server_requests_total = {sent}");
    Ok(())
}

/// The phase the agent must wait for `cluster`, computed here independently: the first 8 bytes of SHA-256 of
/// the name as a fraction of 2^64, times the interval.
fn expected_phase(cluster: &str, interval: Duration) -> Duration {
    let digest = Sha256::digest(cluster.as_bytes());
    let share = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) as f64 / 2f64.powi(64);
    interval.mul_f64(share)
}

#[tokio::test]
async fn a_restarted_agent_waits_its_clusters_phase_and_a_new_install_does_not() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "polite").await?;
    let cluster = unique("edge");
    let repo = repo_with_config_map(&cluster, &ns)?;
    let command = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;

    // A new install (no inventory) polls at once, even with an hour between polls.
    let phase_on = ["--interval", "1h", "--poll-phase", "cluster"];
    let mut agent = command.spawn_with(&phase_on)?;
    eventually(PATIENCE, "the new install to sync at once", || {
        config_value_exists(&client, &ns, "settings")
    })
    .await
    .map_err(|e| e.context(agent.logs()))?;
    ensure!(agent.logs().contains("No inventory yet"), "{}", agent.logs());
    agent.terminate(Duration::from_secs(30))?;

    // Restarted with an inventory: it waits the phase its cluster name gives, the same at every restart.
    let want = expected_phase(&cluster, Duration::from_secs(3600));
    for _ in 0..2 {
        let mut agent = command.spawn_with(&phase_on)?;
        let got = eventually(Duration::from_secs(60), "the phase to be shown", || async {
            // Not listening yet right after the start: not an error.
            let got = match metric(&agent, "outpost_poll_phase_seconds", "").await {
                Ok(got) => got,
                Err(e) => return Ok(Seen::Not(format!("metrics not served yet: {e}"))),
            };
            Ok(if got > 0.0 {
                Seen::Done(got)
            } else {
                Seen::Not(format!("outpost_poll_phase_seconds={got}"))
            })
        })
        .await?;
        ensure!(
            (got - want.as_secs_f64()).abs() < 1e-3,
            "phase {got} s, the formula gives {want:?}"
        );
        let logged = format!("phase_ms={}", want.as_millis());
        ensure!(agent.logs().contains(&logged), "no {logged} in {}", agent.logs());
        agent.terminate(Duration::from_secs(30))?;
    }
    // Another name, another phase.
    ensure!(expected_phase(&unique("edge"), Duration::from_secs(3600)) != want);
    Ok(())
}
