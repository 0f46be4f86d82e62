//! Crash consistency (issue 12 item 17): the agent killed with SIGKILL at random points while it applies and
//! prunes a thousand objects, then run again to the end. Whatever the point, nothing is orphaned, nothing Git
//! wants is deleted, and the inventory equals the cluster. The seed is printed; `OUTPOST_CRASH_SEED=<n>`
//! replays a run, `OUTPOST_CRASH_RUNS=<n>` changes how many kills there are.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use outpost_agent::inventory::store::Store;
use outpost_tests::agent::{AgentCommand, Transport, create_namespace, output_text};
use outpost_tests::git::TestRepo;
use outpost_tests::{git_servers, kube_env, unique};

use crate::fixtures;

/// Objects in each of the two states the commits switch between; they overlap by half, so every switch
/// applies 500 objects and prunes 500.
const OBJECTS: usize = 1000;
/// Kills by default (the issue asks for at least 20).
const RUNS: usize = 20;

/// The ConfigMap names of state `which` (0 or 1).
fn state(which: usize) -> BTreeSet<String> {
    let start = which * OBJECTS / 2;
    (start..start + OBJECTS).map(|i| format!("cm-{i:05}")).collect()
}

/// Commit state `which` as one bundle, one file per hundred objects.
fn commit_state(repo: &TestRepo, cluster: &str, ns: &str, which: usize) -> Result<()> {
    let dir = format!("clusters/{cluster}/app");
    let _ = repo.remove(&dir);
    let names: Vec<String> = state(which).into_iter().collect();
    for (i, chunk) in names.chunks(100).enumerate() {
        let text: Vec<String> = chunk.iter().map(|n| fixtures::config_map(ns, n, "v")).collect();
        repo.write(&format!("{dir}/part-{i:02}.yaml"), &text.join("---\n"))?;
    }
    repo.commit(&format!("state {which}"))?;
    Ok(())
}

/// ConfigMaps in `ns` other than the API server's own.
async fn config_maps(client: &kube::Client, ns: &str) -> Result<BTreeSet<String>> {
    let list = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .list_metadata(&ListParams::default())
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .filter(|n| n != "kube-root-ca.crt")
        .collect())
}

/// Names the inventory of bundle `app` records in `ns`.
async fn inventory(
    client: &kube::Client,
    agent_ns: &str,
    cluster: &str,
    ns: &str,
) -> Result<BTreeSet<String>> {
    let loaded = Store::new(client.clone(), agent_ns, cluster).load().await?;
    ensure!(
        loaded.corrupt.is_empty(),
        "corrupt inventories: {:?}",
        loaded.corrupt.keys()
    );
    Ok(loaded
        .inventories
        .values()
        .flat_map(|inv| inv.members.keys())
        .filter(|k| k.kind == "ConfigMap" && k.namespace.as_deref() == Some(ns))
        .map(|k| k.name.clone())
        .collect())
}

fn difference(a: &BTreeSet<String>, b: &BTreeSet<String>) -> Vec<String> {
    a.difference(b).take(5).cloned().collect()
}

#[tokio::test]
async fn killed_at_random_points_while_applying_and_pruning_it_orphans_and_loses_nothing() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "crash").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("crash"))?;
    let seed: u64 = match std::env::var("OUTPOST_CRASH_SEED") {
        Ok(s) => s.parse().context("OUTPOST_CRASH_SEED")?,
        Err(_) => fastrand::u64(..),
    };
    let runs: usize = match std::env::var("OUTPOST_CRASH_RUNS") {
        Ok(s) => s.parse().context("OUTPOST_CRASH_RUNS")?,
        Err(_) => RUNS,
    };
    println!("crash consistency: seed {seed} (OUTPOST_CRASH_SEED={seed} replays it), {runs} kills");
    let mut rng = fastrand::Rng::with_seed(seed);
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;

    // One undisturbed switch measures how long a run takes, so kills spread over all of it.
    commit_state(&repo, &cluster, &ns, 0)?;
    let out = agent.once()?;
    ensure!(out.status.success(), "{}", output_text(&out));
    commit_state(&repo, &cluster, &ns, 1)?;
    let started = Instant::now();
    let out = agent.once()?;
    ensure!(out.status.success(), "{}", output_text(&out));
    let span = started.elapsed().max(Duration::from_millis(500));
    println!("crash consistency: an undisturbed switch takes {span:?}");

    let mut which = 1;
    let mut kills = 0;
    for run in 0..runs {
        which = 1 - which;
        commit_state(&repo, &cluster, &ns, which)?;
        let delay = Duration::from_millis(rng.u64(0..=span.as_millis() as u64));
        let victim = agent.spawn_with(&["--once"])?;
        tokio::time::sleep(delay).await;
        // A run that ended before its kill point is still a valid sample of "stopped here".
        let killed = match victim.pid() {
            Some(pid) => std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .is_ok_and(|s| s.success()),
            None => false,
        };
        kills += usize::from(killed);
        drop(victim);

        // Killed at any point, the cluster holds no object that is neither wanted nor recorded.
        let want = state(which);
        let before = state(1 - which);
        let live = config_maps(&client, &ns).await?;
        let recorded = inventory(&client, &agent_ns, &cluster, &ns).await?;
        let unknown: Vec<&String> = live
            .iter()
            .filter(|n| !recorded.contains(*n) && !want.contains(*n))
            .take(5)
            .collect();
        ensure!(
            unknown.is_empty(),
            "run {run} (seed {seed}, kill after {delay:?}): orphaned right after the kill: {unknown:?}"
        );
        let lost: Vec<&String> = before
            .intersection(&want)
            .filter(|n| !live.contains(*n))
            .take(5)
            .collect();
        ensure!(
            lost.is_empty(),
            "run {run} (seed {seed}, kill after {delay:?}): objects wanted by both states deleted: {lost:?}"
        );

        // Run again to the end: the cluster and the inventory both equal Git.
        let out = agent.once()?;
        ensure!(
            out.status.success(),
            "run {run} (seed {seed}, kill after {delay:?}): the restart failed: {}",
            output_text(&out)
        );
        let live = config_maps(&client, &ns).await?;
        let recorded = inventory(&client, &agent_ns, &cluster, &ns).await?;
        ensure!(
            live == want && recorded == want,
            "run {run} (seed {seed}, kill after {delay:?}): after the restart: missing {:?}, orphaned {:?}, \
             inventory missing {:?}, inventory extra {:?}",
            difference(&want, &live),
            difference(&live, &want),
            difference(&want, &recorded),
            difference(&recorded, &want),
        );
        let how = if killed { "killed" } else { "ended before its kill" };
        println!("crash consistency: run {run} {how} after {delay:?}: consistent");
    }
    println!("crash consistency: {kills} of {runs} runs were killed mid-way");
    ensure!(
        kills * 2 >= runs,
        "only {kills} of {runs} runs were killed before they ended"
    );
    Ok(())
}
