//! Freshness (rollback protection, issue 14 item 2): a ref moved to a commit that does not descend from the last
//! applied one — an older commit served again, a rewritten history — is refused by default: nothing applied or
//! pruned, the last good state stays. `--history-rewrite=newer` (what the chart sets in EMCO mode) accepts a
//! rewrite only when its commit is newer; `--allow-history-rewrite` accepts it. The shallow cache is deepened
//! only as far as needed, never past `--max-history-depth`. Real HTTPS Git server, real API server.

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use outpost_tests::agent::{AgentCommand, Transport, create_namespace, output_text};
use outpost_tests::{TestRepo, git_servers, kube_env, unique};

use crate::chart::{base, containers, env_var, render, values_file};
use crate::common::{Seen, config_value, eventually};
use crate::fixtures;

/// `git args…` in the work clone of `repo`, committer (and author) date `date` when given (RFC 3339 or
/// `@<seconds>`), so that "newer" does not depend on the seconds a test happens to run in.
fn git(repo: &TestRepo, args: &[&str], date: Option<&str>) -> Result<String> {
    let mut cmd = std::process::Command::new("git");
    cmd.arg("-C").arg(&repo.work).args(args);
    if let Some(date) = date {
        cmd.env("GIT_COMMITTER_DATE", date).env("GIT_AUTHOR_DATE", date);
    }
    let out = cmd.output().context("run git")?;
    anyhow::ensure!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Commit everything in the work clone at `date` and push it to `main` (forced: rewrites are the point here).
fn commit_at(repo: &TestRepo, message: &str, date: &str) -> Result<String> {
    git(repo, &["add", "-A"], None)?;
    git(
        repo,
        &["commit", "-q", "--allow-empty", "-m", message],
        Some(date),
    )?;
    git(
        repo,
        &["push", "-q", "-f", "origin", "HEAD:refs/heads/main"],
        None,
    )?;
    git(repo, &["rev-parse", "HEAD"], None)
}

/// Serve `commit` (an older one) as `main` again, as a stale or hostile mirror would.
fn replay(repo: &TestRepo, commit: &str) -> Result<()> {
    git(repo, &["reset", "-q", "--hard", commit], None)?;
    git(
        repo,
        &["push", "-q", "-f", "origin", "HEAD:refs/heads/main"],
        None,
    )?;
    Ok(())
}

/// Run the agent once; its output text, and whether it succeeded.
fn once(agent: &AgentCommand) -> Result<(bool, String)> {
    let out = agent.once()?;
    Ok((out.status.success(), output_text(&out)))
}

/// A fresh setup: agent namespace, target namespace, cluster name, repository.
struct Setup {
    client: kube::Client,
    agent_ns: String,
    ns: String,
    cluster: String,
    repo: TestRepo,
}

async fn setup(name: &str) -> Result<Setup> {
    let env = kube_env();
    let client = env.client().await?;
    Ok(Setup {
        agent_ns: create_namespace(&client, "agent").await?,
        ns: create_namespace(&client, name).await?,
        cluster: unique("edge"),
        repo: git_servers().create_repo(&unique(name))?,
        client,
    })
}

impl Setup {
    fn file(&self, name: &str) -> String {
        format!("clusters/{}/app/{name}.yaml", self.cluster)
    }

    fn write(&self, name: &str, value: &str) -> Result<()> {
        self.repo
            .write(&self.file(name), &fixtures::config_map(&self.ns, name, value))?;
        Ok(())
    }

    fn agent(&self, extra: &[&str]) -> Result<AgentCommand> {
        let mut agent = AgentCommand::new(
            kube_env(),
            &self.repo,
            &self.cluster,
            &self.agent_ns,
            Transport::Https,
        )?;
        for arg in extra {
            agent.arg(*arg);
        }
        Ok(agent)
    }

    async fn value(&self, name: &str) -> Result<Option<String>> {
        config_value(&self.client, &self.ns, name).await
    }
}

#[tokio::test]
async fn an_older_commit_served_again_is_refused_and_nothing_is_pruned() -> Result<()> {
    let s = setup("replay").await?;
    s.write("a", "1")?;
    let old = s.repo.commit("one")?;
    s.write("a", "2")?;
    s.write("b", "2")?;
    let new = s.repo.commit("two")?;
    let agent = s.agent(&[])?;
    let (ok, text) = once(&agent)?;
    assert!(ok, "{text}");
    assert_eq!(s.value("b").await?.as_deref(), Some("2"));

    replay(&s.repo, &old)?;
    let (ok, text) = once(&agent)?;
    assert!(!ok, "the replayed commit was accepted:\n{text}");
    assert!(
        text.contains(&format!("commit {old} refused"))
            && text.contains(&format!("last applied commit {new}")),
        "{text}"
    );
    assert!(text.contains("--allow-history-rewrite"), "{text}");
    // Nothing applied (a stays at 2), nothing pruned (b, absent in the old commit, stays).
    assert_eq!(s.value("a").await?.as_deref(), Some("2"));
    assert_eq!(s.value("b").await?.as_deref(), Some("2"));
    // The refusal holds on the next poll too (the base comes from the inventories, not from memory).
    let (ok, _) = once(&agent)?;
    assert!(!ok);
    assert_eq!(s.value("b").await?.as_deref(), Some("2"));
    Ok(())
}

#[tokio::test]
async fn a_rewritten_history_is_refused_by_default_and_applied_when_allowed() -> Result<()> {
    let s = setup("rewrite").await?;
    s.write("a", "1")?;
    s.repo.commit("one")?;
    s.write("a", "2")?;
    let before = s.repo.commit("two")?;
    let agent = s.agent(&[])?;
    let (ok, text) = once(&agent)?;
    assert!(ok, "{text}");

    // A new commit unrelated to the applied one: "two" leaves the branch.
    s.write("a", "rewritten")?;
    let after = s.repo.amend_and_force_push("two, rewritten")?;
    let (ok, text) = once(&agent)?;
    assert!(!ok, "the rewrite was accepted:\n{text}");
    assert!(
        text.contains(&format!("commit {after} refused")) && text.contains(&before),
        "{text}"
    );
    assert!(
        text.contains("does not descend from the last applied commit"),
        "{text}"
    );
    assert_eq!(s.value("a").await?.as_deref(), Some("2"));

    // Recovery: the operator allows it once; the next run (default policy again) follows the new history.
    let (ok, text) = once(&s.agent(&["--allow-history-rewrite"])?)?;
    assert!(ok, "{text}");
    assert_eq!(s.value("a").await?.as_deref(), Some("rewritten"));
    s.write("a", "3")?;
    s.repo.commit("three")?;
    let (ok, text) = once(&agent)?;
    assert!(ok, "{text}");
    assert_eq!(s.value("a").await?.as_deref(), Some("3"));
    Ok(())
}

#[tokio::test]
async fn newer_refuses_an_older_replay_and_applies_a_newer_rewrite() -> Result<()> {
    let s = setup("newer").await?;
    s.write("a", "1")?;
    let old = commit_at(&s.repo, "one", "2026-01-01T00:00:00Z")?;
    s.write("a", "2")?;
    commit_at(&s.repo, "two", "2026-01-01T00:10:00Z")?;
    let agent = s.agent(&["--history-rewrite", "newer"])?;
    let (ok, text) = once(&agent)?;
    assert!(ok, "{text}");
    assert_eq!(s.value("a").await?.as_deref(), Some("2"));

    // An older commit served again: refused, naming both times.
    replay(&s.repo, &old)?;
    let (ok, text) = once(&agent)?;
    assert!(!ok, "the older commit was accepted:\n{text}");
    assert!(
        text.contains("2026-01-01T00:00:00Z") && text.contains("2026-01-01T00:10:00Z"),
        "{text}"
    );
    assert_eq!(s.value("a").await?.as_deref(), Some("2"));

    // EMCO's case: a new commit from another clone (not a descendant), made later: applied.
    git(&s.repo, &["checkout", "-q", "--orphan", "emco"], None)?;
    s.write("a", "emco")?;
    commit_at(&s.repo, "from another clone", "2026-01-01T00:20:00Z")?;
    let (ok, text) = once(&agent)?;
    assert!(ok, "{text}");
    assert_eq!(s.value("a").await?.as_deref(), Some("emco"));
    Ok(())
}

#[tokio::test]
async fn a_fast_forward_is_applied_deepening_the_shallow_cache_and_beyond_the_bound_it_is_refused()
-> Result<()> {
    let s = setup("depth").await?;
    s.write("a", "0")?;
    s.repo.commit("zero")?;
    let agent = s.agent(&[])?;
    let (ok, text) = once(&agent)?;
    assert!(ok, "{text}");

    // Ten commits at once: the depth-1 cache does not reach the applied commit; deepening finds it.
    for i in 1..=10 {
        s.write("a", &i.to_string())?;
        s.repo.commit(&format!("c{i}"))?;
    }
    let (ok, text) = once(&agent)?;
    assert!(ok, "{text}");
    assert_eq!(s.value("a").await?.as_deref(), Some("10"));

    // With a bound of 5, a descendant 10 commits ahead cannot be shown to be one: refused, naming the bound.
    let bounded = s.agent(&["--max-history-depth", "5"])?;
    for i in 11..=20 {
        s.write("a", &i.to_string())?;
        s.repo.commit(&format!("c{i}"))?;
    }
    let (ok, text) = once(&bounded)?;
    assert!(!ok, "accepted beyond the bound:\n{text}");
    assert!(text.contains("--max-history-depth=5"), "{text}");
    assert_eq!(s.value("a").await?.as_deref(), Some("10"));
    // Within the bound it is applied.
    let (ok, text) = once(&agent)?;
    assert!(ok, "{text}");
    assert_eq!(s.value("a").await?.as_deref(), Some("20"));
    Ok(())
}

#[tokio::test]
async fn the_daemon_reports_a_refusal_as_an_event_and_a_metric() -> Result<()> {
    let s = setup("refusal").await?;
    s.write("a", "1")?;
    let old = s.repo.commit("one")?;
    s.write("a", "2")?;
    let new = s.repo.commit("two")?;
    let daemon = s.agent(&[])?.spawn("1s")?;
    daemon.wait_ready(Duration::from_secs(60)).await?;
    replay(&s.repo, &old)?;
    let events: Api<Event> = Api::namespaced(s.client.clone(), &s.agent_ns);
    let note = eventually(Duration::from_secs(60), "a HistoryRefused Event", || async {
        let notes: Vec<String> = events
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("HistoryRefused"))
            .filter_map(|e| e.note)
            .collect();
        Ok(match notes.first() {
            Some(n) => Seen::Done(n.clone()),
            None => Seen::Not("no HistoryRefused Event".into()),
        })
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", daemon.logs()))?;
    assert!(note.contains(&old) && note.contains(&new), "{note}");
    let (_, body) = daemon.get("/metrics").await?;
    assert!(
        body.contains(r#"outpost_history_refusals_total{reason="rewritten"} 1"#),
        "{body}"
    );
    assert!(daemon.logs().contains("Commit refused by freshness"));
    assert_eq!(s.value("a").await?.as_deref(), Some("2"));
    Ok(())
}

#[test]
fn the_chart_refuses_by_default_and_accepts_newer_rewrites_in_emco_mode() -> Result<()> {
    let policy = |values: &str| -> Result<Option<String>> {
        let docs = render("fresh", "outpost", &values_file(values)?)?;
        let agent = containers(&docs)
            .into_iter()
            .find(|c| c["name"] == "agent")
            .context("agent container")?;
        assert_eq!(
            env_var(agent, "OUTPOST_MAX_HISTORY_DEPTH").as_deref(),
            Some("500")
        );
        Ok(env_var(agent, "OUTPOST_HISTORY_REWRITE"))
    };
    assert_eq!(policy(&base(""))?.as_deref(), Some("refuse"));
    let emco = "git:\n  giturl: https://git.example.invalid/o/r\n  repo: r\n  clustername: c1\n";
    assert_eq!(policy(emco)?.as_deref(), Some("newer"));
    let github = "git:\n  gittype: github\n  repo: r\n  username: o\n  clustername: c1\n";
    assert_eq!(policy(github)?.as_deref(), Some("newer"));
    assert_eq!(
        policy(&format!("{emco}historyRewrite: refuse\n"))?.as_deref(),
        Some("refuse")
    );
    Ok(())
}
