//! Things going wrong around the agent: a broken commit, a force-pushed branch, the Git server down, a rotated
//! token, the API server restarted. Nothing is lost, errors are clear, and the agent converges once the cause
//! is gone.

use std::time::Duration;

use anyhow::Result;
use outpost_tests::agent::{AgentCommand, Transport, create_namespace};
use outpost_tests::{GitServers, KubeEnv, git_servers, kube_env, unique};

use crate::common::{Seen, config_value, config_value_is, eventually, log_tail, managed_config_maps};
use crate::fixtures;

/// Long enough for a few polls with error backoff on a busy machine.
const CONVERGE: Duration = Duration::from_secs(90);

#[tokio::test]
async fn a_broken_commit_keeps_the_last_good_state_until_it_is_fixed() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "broken").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("broken"))?;
    let base = format!("clusters/{cluster}/app");
    repo.write(&format!("{base}/a.yaml"), &fixtures::config_map(&ns, "a", "1"))?
        .write(&format!("{base}/b.yaml"), &fixtures::config_map(&ns, "b", "1"))?;
    repo.commit("good")?;
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?.spawn("1s")?;
    agent.wait_ready(Duration::from_secs(60)).await?;

    // A broken file, a deletion and a change in one commit: none of it may happen.
    repo.remove(&format!("{base}/b.yaml"))?
        .write(&format!("{base}/a.yaml"), &fixtures::config_map(&ns, "a", "2"))?
        .write(
            &format!("{base}/c.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c\n",
        )?;
    repo.commit("broken")?;
    eventually(CONVERGE, "the parse error in the log", || async {
        let logs = agent.logs();
        Ok(Seen::done_if(
            logs.contains(&format!("{base}/c.yaml")),
            log_tail(&logs, 3),
        ))
    })
    .await?;
    assert_eq!(managed_config_maps(&client, &ns).await?, ["a", "b"]);
    assert_eq!(config_value(&client, &ns, "a").await?.as_deref(), Some("1"));

    repo.write(&format!("{base}/c.yaml"), &fixtures::config_map(&ns, "c", "1"))?;
    repo.commit("fixed")?;
    eventually(CONVERGE, "the fixed commit to be synced", || async {
        let names = managed_config_maps(&client, &ns).await?;
        let a = config_value(&client, &ns, "a").await?;
        Ok(Seen::done_if(
            names == ["a", "c"] && a.as_deref() == Some("2"),
            format!("managed ConfigMaps={names:?}, a key={a:?}"),
        ))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", agent.logs()))?;
    Ok(())
}

#[tokio::test]
async fn a_force_pushed_branch_is_followed() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "force").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("force"))?;
    let file = format!("clusters/{cluster}/app/a.yaml");
    repo.write(&file, &fixtures::config_map(&ns, "a", "1"))?;
    repo.commit("one")?;
    repo.write(&file, &fixtures::config_map(&ns, "a", "2"))?;
    let before = repo.commit("two")?;
    // Rewrites are refused by default (freshness, tests/e2e/freshness.rs): this one is intended.
    let mut agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    agent.arg("--allow-history-rewrite");
    assert!(agent.once()?.status.success());
    assert_eq!(config_value(&client, &ns, "a").await?.as_deref(), Some("2"));
    // History is rewritten: "two" disappears from the branch.
    repo.write(&file, &fixtures::config_map(&ns, "a", "rewritten"))?;
    let after = repo.amend_and_force_push("two, rewritten")?;
    assert_ne!(before, after);
    let out = agent.once()?;
    assert!(
        out.status.success(),
        "{}",
        outpost_tests::agent::output_text(&out)
    );
    assert_eq!(
        config_value(&client, &ns, "a").await?.as_deref(),
        Some("rewritten")
    );
    Ok(())
}

#[tokio::test]
async fn the_git_server_going_down_and_a_rotated_token_are_survived() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "gitdown").await?;
    let cluster = unique("edge");
    // Our own Git servers: this test stops them and changes their password.
    let servers = std::thread::spawn(GitServers::start)
        .join()
        .expect("start git servers")?;
    let repo = servers.create_repo(&unique("down"))?;
    let file = format!("clusters/{cluster}/app/a.yaml");
    repo.write(&file, &fixtures::config_map(&ns, "a", "1"))?;
    repo.commit("one")?;
    let token_file = outpost_tests::scratch_dir("token")?.join("token");
    std::fs::write(&token_file, format!("{}\n", servers.http_password))?;
    let agent = AgentCommand::with_servers(
        &servers,
        env,
        &repo,
        &cluster,
        &agent_ns,
        Transport::HttpsWithTokenFile(token_file.clone()),
    )?
    .spawn("1s")?;
    agent.wait_ready(Duration::from_secs(60)).await?;

    servers.stop_https();
    repo.write(&file, &fixtures::config_map(&ns, "a", "2"))?;
    repo.commit("two, while the server is down")?;
    eventually(CONVERGE, "a clear connection error", || async {
        let logs = agent.logs();
        Ok(Seen::done_if(logs.contains("cannot reach"), log_tail(&logs, 3)))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", agent.logs()))?;
    assert_eq!(
        config_value(&client, &ns, "a").await?.as_deref(),
        Some("1"),
        "state changed while Git was down"
    );
    servers.start_https()?;
    eventually(CONVERGE, "the commit after the server came back", || {
        config_value_is(&client, &ns, "a", "2")
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", agent.logs()))?;

    // The server's password changes; the mounted Secret is updated a little later.
    let new_password = outpost_tests::random_token();
    servers.rotate_password(&new_password)?;
    repo.write(&file, &fixtures::config_map(&ns, "a", "3"))?;
    repo.commit("three, after rotation")?;
    eventually(CONVERGE, "an authentication error", || async {
        let logs = agent.logs();
        Ok(Seen::done_if(
            logs.contains("authentication to"),
            log_tail(&logs, 3),
        ))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", agent.logs()))?;
    std::fs::write(&token_file, format!("{new_password}\n"))?;
    eventually(CONVERGE, "the commit with the rotated token", || {
        config_value_is(&client, &ns, "a", "3")
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", agent.logs()))?;
    let logs = agent.logs();
    assert!(
        !logs.contains(&new_password) && !logs.contains(&servers.http_password),
        "a token leaked:\n{logs}"
    );
    Ok(())
}

#[tokio::test]
async fn an_api_server_restart_mid_run_is_survived() -> Result<()> {
    // Our own API server: restarting the shared one would disturb every other test.
    let kube = std::thread::spawn(KubeEnv::start).join().expect("start kube")?;
    let client = kube.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "restart").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("restart"))?;
    let file = format!("clusters/{cluster}/app/a.yaml");
    repo.write(&file, &fixtures::config_map(&ns, "a", "1"))?;
    repo.commit("one")?;
    let agent = AgentCommand::new(&kube, &repo, &cluster, &agent_ns, Transport::Https)?.spawn("1s")?;
    agent.wait_ready(Duration::from_secs(60)).await?;

    repo.write(&file, &fixtures::config_map(&ns, "a", "2"))?;
    repo.commit("two, during the restart")?;
    // Blocking is fine here: the agent is another process, and nothing else runs on this test's runtime.
    kube.restart_apiserver(Duration::from_secs(3))?;
    let client = kube.client().await?;
    eventually(CONVERGE, "the commit after the API server came back", || {
        config_value_is(&client, &ns, "a", "2")
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", agent.logs()))?;
    Ok(())
}

#[tokio::test]
async fn the_git_cache_is_compacted_instead_of_growing_with_every_commit() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "compact").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("compact"))?;
    let file = format!("clusters/{cluster}/app/a.yaml");
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    let packs = |dir: &std::path::Path| -> usize { walk_packs(dir) };
    // Each commit is one shallow fetch and one new pack in the cache.
    for i in 0..20 {
        repo.write(&file, &fixtures::config_map(&ns, "a", &i.to_string()))?;
        repo.commit(&format!("commit {i}"))?;
        let out = agent.once()?;
        assert!(
            out.status.success(),
            "{}",
            outpost_tests::agent::output_text(&out)
        );
    }
    assert_eq!(config_value(&client, &ns, "a").await?.as_deref(), Some("19"));
    let count = packs(&agent.cache_dir);
    assert!(count <= 16, "{count} packs in the cache: it is never compacted");
    assert!(count >= 1);
    Ok(())
}

/// Pack files anywhere below `dir`.
fn walk_packs(dir: &std::path::Path) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            count += walk_packs(&path);
        } else if path.extension().is_some_and(|e| e == "pack") {
            count += 1;
        }
    }
    count
}
