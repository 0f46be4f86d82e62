//! Disconnected sites ("sneakernet"): the agent follows a bare repository on removable media and the status
//! writer writes to another bare repository on the same media. The test plays the hub with the git CLI (it
//! pushes to the media and reads status from it), unplugs the media (renames its directory away), commits at
//! the hub into the media while it is away, and plugs it back.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use outpost_tests::agent::{AgentCommand, create_namespace};
use outpost_tests::process::run;
use outpost_tests::{kube_env, scratch_dir, unique};

use crate::common::{Seen, config_value, config_value_is, eventually, log_tail, metric};
use crate::fixtures;

/// Long enough for polls, debounce and writes on a busy machine.
const LANDS: Duration = Duration::from_secs(90);
/// Rounds the agent must have run with the media away before the test judges how it behaved then.
const ROUNDS_AWAY: f64 = 3.0;

fn s(path: &Path) -> Result<&str> {
    path.to_str().context("scratch paths are UTF-8")
}

/// `git` with the hub's identity, in `dir` when given.
fn git(dir: Option<&Path>, args: &[&str]) -> Result<String> {
    let mut all = vec!["-c", "user.name=Hub", "-c", "user.email=hub@outpost.invalid"];
    if let Some(dir) = dir {
        all.extend(["-C", s(dir)?]);
    }
    all.extend_from_slice(args);
    Ok(run("git", &all, None)?.trim().to_owned())
}

/// Commit everything in the hub's work clone `work` and push it to the bare repository `bare` (the media, as
/// the hub's operator does); returns the commit.
fn commit_and_push(work: &Path, bare: &Path, message: &str) -> Result<String> {
    git(Some(work), &["add", "-A"])?;
    git(Some(work), &["commit", "-q", "--allow-empty", "-m", message])?;
    git(Some(work), &["push", "-q", s(bare)?, "HEAD:refs/heads/main"])?;
    git(Some(work), &["rev-parse", "HEAD"])
}

/// The file at `path` on `main` of the bare repository `bare`, read as the hub reads it.
fn on_main(bare: &Path, path: &str) -> Option<String> {
    git(Some(bare), &["show", &format!("refs/heads/main:{path}")]).ok()
}

/// The log lines of `log` after its first `skip` lines that contain `text`.
fn lines_with(log: &str, skip: usize, text: &str) -> Vec<String> {
    log.lines()
        .skip(skip)
        .filter(|l| l.contains(text))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_site_keeps_its_state_while_the_media_is_away_and_returns_status_when_it_comes_back() -> Result<()>
{
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "site").await?;
    let cluster = unique("site");
    let scratch = scratch_dir("sneakernet")?;
    let (media, away) = (scratch.join("media"), scratch.join("away"));
    let (fleet, status) = (media.join("fleet.git"), media.join("status.git"));
    let (fleet_work, status_work) = (scratch.join("hub-fleet"), scratch.join("hub-status"));

    // The hub prepares the media: a bare repository of resources, one for status (with a first commit to
    // build on), and its own work clones.
    for bare in [&fleet, &status] {
        git(None, &["init", "-q", "--bare", "-b", "main", s(bare)?])?;
    }
    for work in [&fleet_work, &status_work] {
        git(None, &["init", "-q", "-b", "main", s(work)?])?;
    }
    let hub_start = commit_and_push(&status_work, &status, "status repository for the site")?;
    let app = |f: &str| fleet_work.join(format!("clusters/{cluster}/app/{f}"));
    std::fs::create_dir_all(app(""))?;
    std::fs::write(app("a.yaml"), fixtures::config_map(&ns, "a", "1"))?;
    std::fs::write(app("b.yaml"), fixtures::config_map(&ns, "b", "1"))?;
    let first = commit_and_push(&fleet_work, &fleet, "first visit")?;

    // The site: agent and status writer on paths on the media.
    let agent = AgentCommand::local(env, &fleet, &cluster, &agent_ns)?.spawn("2s")?;
    let writer = AgentCommand::status_writer_local(env, &status, &cluster, &agent_ns)?
        .spawn_with(&["--debounce", "500ms"])?;
    let status_file = format!("clusters/{cluster}/status/app/app-status.yaml");
    for (name, want) in [("a", "1"), ("b", "1")] {
        eventually(LANDS, &format!("ConfigMap {name} applied from the media"), || {
            config_value_is(&client, &ns, name, want)
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}; agent log:\n{}", agent.logs()))?;
    }
    eventually(LANDS, "status of the first commit on the media", || async {
        let text = on_main(&status, &status_file).unwrap_or_default();
        Ok(Seen::done_if(
            text.contains(&first),
            format!("{status_file}: {text:?}"),
        ))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; writer log:\n{}", writer.logs()))?;

    // Unplugged. While away, someone at the site labels an object (the status changes), and the hub pushes a
    // new commit into the media: one more object, a changed one, one removed.
    let (agent_before, writer_before) = (agent.logs().lines().count(), writer.logs().lines().count());
    let unavailable_before = metric(
        &agent,
        "outpost_reconcile_duration_seconds_count",
        "result=\"unavailable\"",
    )
    .await?;
    std::fs::rename(&media, &away)?;
    let patch = serde_json::json!({"metadata": {"labels": {"site-note": "while-unplugged"}}});
    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .patch("a", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    std::fs::write(app("a.yaml"), fixtures::config_map(&ns, "a", "2"))?;
    std::fs::write(app("c.yaml"), fixtures::config_map(&ns, "c", "1"))?;
    std::fs::remove_file(app("b.yaml"))?;
    let second = commit_and_push(&fleet_work, &away.join("fleet.git"), "second visit")?;
    eventually(LANDS, "rounds of the agent with the media away", || async {
        let rounds = metric(
            &agent,
            "outpost_reconcile_duration_seconds_count",
            "result=\"unavailable\"",
        )
        .await?;
        Ok(Seen::done_if(
            rounds - unavailable_before >= ROUNDS_AWAY,
            format!("{} rounds found the media away", rounds - unavailable_before),
        ))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; agent log:\n{}", agent.logs()))?;
    eventually(LANDS, "the writer finding the status repository away", || async {
        let log = writer.logs();
        Ok(Seen::done_if(
            !lines_with(&log, writer_before, "Status repository unavailable").is_empty(),
            log_tail(&log, 5),
        ))
    })
    .await?;

    // Away: nothing changed, nothing pruned, said once, no failures.
    assert_eq!(config_value(&client, &ns, "a").await?.as_deref(), Some("1"));
    assert_eq!(
        config_value(&client, &ns, "b").await?.as_deref(),
        Some("1"),
        "pruned while the media was away"
    );
    assert_eq!(config_value(&client, &ns, "c").await?, None);
    let agent_log = agent.logs();
    let said = lines_with(&agent_log, agent_before, "Source unavailable");
    assert_eq!(said.len(), 1, "said once per absence: {said:#?}");
    let failed = lines_with(&agent_log, agent_before, "Reconcile failed");
    assert!(
        failed.is_empty(),
        "absent media reported as failures: {failed:#?}"
    );
    let counted = metric(&agent, "outpost_reconcile_failures_total", "").await?;
    assert_eq!(counted, 0.0, "absent media counted as reconcile failures");
    let writer_log = writer.logs();
    let said = lines_with(&writer_log, writer_before, "Status repository unavailable");
    assert_eq!(said.len(), 1, "said once per absence: {said:#?}");
    let failed = lines_with(&writer_log, writer_before, "Status write failed");
    assert!(
        failed.is_empty(),
        "absent media reported as failures: {failed:#?}"
    );

    // Plugged back: the new commit is applied (and what it removed pruned), and the status written while the
    // media was away lands on it, for the hub to read.
    std::fs::rename(&away, &media)?;
    for (name, want) in [("a", "2"), ("c", "1")] {
        eventually(
            LANDS,
            &format!("ConfigMap {name} from the replugged media"),
            || config_value_is(&client, &ns, name, want),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}; agent log:\n{}", agent.logs()))?;
    }
    eventually(LANDS, "b pruned by the second commit", || async {
        let b = config_value(&client, &ns, "b").await?;
        Ok(Seen::done_if(b.is_none(), format!("b = {b:?}")))
    })
    .await?;
    eventually(LANDS, "status of the second commit on the media", || async {
        let text = on_main(&status, &status_file).unwrap_or_default();
        let done = text.contains(&second) && text.contains("site-note: while-unplugged");
        Ok(Seen::done_if(done, format!("{status_file}: {text:?}")))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; writer log:\n{}", writer.logs()))?;
    assert!(
        !lines_with(&agent.logs(), agent_before, "Source available again").is_empty(),
        "{}",
        log_tail(&agent.logs(), 10)
    );

    // The hub reads status as it left it, plus the site's commits: history kept, no commit that repeats its
    // parent's status.
    git(
        Some(&status),
        &["merge-base", "--is-ancestor", &hub_start, "main"],
    )
    .context("the site's status commits do not build on the hub's")?;
    let trees = git(Some(&status), &["log", "--format=%T", "main"])?;
    let trees: Vec<&str> = trees.lines().collect();
    for pair in trees.windows(2) {
        assert_ne!(pair[0], pair[1], "a status commit repeats its parent: {trees:?}");
    }
    Ok(())
}
