//! Commits built to exhaust the agent (issue 12 item 4): a 300 MB blob, 50,000 files, a tree 5,000 directories
//! deep, a YAML alias bomb and 10,000 levels of nesting. For each, the agent reports the cap it broke and the
//! path, applies and prunes nothing (the commit also deletes one synced ConfigMap and changes another; both
//! stay as they were), and its peak memory stays under the chart's agent memory limit
//! (`resources.agent.limits.memory` in charts/outpost/values.yaml, 256Mi).
//!
//! The inputs are generated on the fly with `git fast-import` straight into the served repository: nothing large
//! is committed to our own repository, and no 300 MB file is ever written outside the Git server's pack.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use outpost_tests::agent::{AgentCommand, Transport, create_namespace};
use outpost_tests::{TestRepo, git_servers, kube_env, unique};

use crate::common::{Seen, config_value, eventually, log_tail};
use crate::fixtures;

/// How long the agent has to notice and report a hostile commit (one fetch of up to --max-fetch-bytes on a
/// busy machine).
const REPORTED: Duration = Duration::from_secs(90);

/// What a file of a hostile commit holds.
enum Content {
    /// These bytes.
    Text(String),
    /// This many random bytes (incompressible: the pack is as large as the blob).
    Random(u64),
    /// This many zero bytes (the pack holds a few hundred KiB that inflate to the whole blob).
    Zeros(u64),
}

/// The chart's memory limit for the agent container, in KiB, read from the chart's values.
fn chart_agent_memory_limit_kib() -> Result<u64> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/outpost/values.yaml");
    let text = std::fs::read_to_string(path).with_context(|| format!("read {path}"))?;
    let values: serde_json::Value = serde_saphyr::from_str(&text)?;
    let limit = values["resources"]["agent"]["limits"]["memory"]
        .as_str()
        .ok_or_else(|| anyhow!("{path} sets no resources.agent.limits.memory"))?;
    let mib: u64 = limit
        .strip_suffix("Mi")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow!("resources.agent.limits.memory {limit:?} is not in Mi"))?;
    Ok(mib * 1024)
}

/// Commit `files` (and the deletion of `deleted`) on top of `main` in the served repository, with `git
/// fast-import`: one shared blob may back many paths, so 50,000 files cost one object.
fn fast_import(repo: &TestRepo, files: &[(String, &Content)], deleted: &[String]) -> Result<()> {
    // Random bytes do not compress: storing them saves the time of trying.
    let level = if files.iter().any(|(_, c)| matches!(c, Content::Random(_))) {
        "0"
    } else {
        "-1"
    };
    let mut child = Command::new("git")
        .args(["-c", &format!("pack.compression={level}")])
        .args(["-c", &format!("core.compression={level}")])
        .arg("--git-dir")
        .arg(&repo.bare)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .context("start git fast-import")?;
    let mut input = std::io::BufWriter::new(child.stdin.take().expect("piped"));
    let mut marks = Vec::new();
    let mut blobs = std::collections::HashMap::new();
    for (i, (_, content)) in files.iter().enumerate() {
        // Paths that share a content share its blob (by address: the callers pass one Content for many paths).
        let address = *content as *const Content as usize;
        if let Some(mark) = blobs.get(&address) {
            marks.push(*mark);
            continue;
        }
        let mark = i + 1;
        blobs.insert(address, mark);
        marks.push(mark);
        match content {
            Content::Text(text) => {
                write!(input, "blob\nmark :{mark}\ndata {}\n{text}\n", text.len())?;
            }
            Content::Random(size) | Content::Zeros(size) => {
                write!(input, "blob\nmark :{mark}\ndata {size}\n")?;
                let mut source: Box<dyn std::io::Read> = match content {
                    Content::Random(_) => Box::new(std::fs::File::open("/dev/urandom")?),
                    _ => Box::new(std::io::repeat(0)),
                };
                let copied = std::io::copy(&mut std::io::Read::take(&mut source, *size), &mut input)?;
                anyhow::ensure!(copied == *size, "short read of generated content");
                writeln!(input)?;
            }
        }
    }
    let parent = repo.head()?;
    write!(
        input,
        "commit refs/heads/main\ncommitter Outpost Test <test@outpost.invalid> 1700000000 +0000\ndata 7\nhostile\nfrom {parent}\n"
    )?;
    for path in deleted {
        writeln!(input, "D {path}")?;
    }
    for ((path, _), mark) in files.iter().zip(&marks) {
        writeln!(input, "M 100644 :{mark} {path}")?;
    }
    writeln!(input, "done")?;
    drop(input);
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "git fast-import failed: {status}");
    Ok(())
}

/// Sync two ConfigMaps, then push a commit that deletes one, changes the other and adds `hostile` (paths below
/// the cluster directory) — and check that the agent refuses it with a log line containing every one of
/// `reported`, changes nothing, and stays under the chart's memory limit.
async fn a_hostile_commit_is_refused(
    name: &str,
    hostile: impl FnOnce(&str) -> Vec<(String, &'static Content)>,
    reported: &[&str],
) -> Result<()> {
    let limit_kib = chart_agent_memory_limit_kib()?;
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, name).await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique(name))?;
    let dir = format!("clusters/{cluster}");
    repo.write(
        &format!("{dir}/app/kept.yaml"),
        &fixtures::config_map(&ns, "kept", "1"),
    )?;
    repo.write(
        &format!("{dir}/app/same.yaml"),
        &fixtures::config_map(&ns, "same", "1"),
    )?;
    repo.commit("good")?;
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?.spawn("1s")?;
    agent.wait_ready(Duration::from_secs(60)).await?;

    let changed = Content::Text(fixtures::config_map(&ns, "same", "2"));
    let mut files: Vec<(String, &Content)> = vec![(format!("{dir}/app/same.yaml"), &changed)];
    files.extend(hostile(&dir).into_iter().map(|(p, c)| (p, c as &Content)));
    fast_import(&repo, &files, &[format!("{dir}/app/kept.yaml")])?;

    let waited = eventually(REPORTED, "the agent to report the broken cap", || async {
        let logs = agent.logs();
        let failed = logs
            .lines()
            .filter(|l| l.contains("Reconcile failed"))
            .find(|l| reported.iter().all(|r| l.contains(r)));
        Ok(match failed {
            Some(line) => Seen::Done(line.to_owned()),
            None => Seen::Not(log_tail(&logs, 5)),
        })
    })
    .await;
    let line = match waited {
        Ok(line) => line,
        Err(e) => {
            let peak = agent.peak_rss_kib().map(|k| format!("{} MiB", k / 1024));
            let alive = agent.get("/healthz").await.is_ok();
            anyhow::bail!(
                "{e}; agent peak RSS {peak:?} (chart limit {} MiB), still answering: {alive}; log:\n{}",
                limit_kib / 1024,
                log_tail(&agent.logs(), 20)
            )
        }
    };
    anyhow::ensure!(
        line.contains("nothing was applied or pruned"),
        "the report does not say the commit was left alone: {line}"
    );
    // A second round must not have slipped anything through either.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let kept = config_value(&client, &ns, "kept").await?;
    let same = config_value(&client, &ns, "same").await?;
    anyhow::ensure!(
        kept.as_deref() == Some("1") && same.as_deref() == Some("1"),
        "the refused commit changed the cluster: kept={kept:?} same={same:?}"
    );
    let peak = agent.peak_rss_kib().context("the agent's VmHWM")?;
    anyhow::ensure!(
        peak < limit_kib,
        "the agent peaked at {} MiB, over the chart's agent memory limit of {} MiB",
        peak / 1024,
        limit_kib / 1024
    );
    eprintln!("{name}: refused at peak RSS {} MiB: {line}", peak / 1024);
    // The Git server's copy of a 300 MB blob is the only large file this test made.
    let _ = std::fs::remove_dir_all(&repo.bare);
    Ok(())
}

/// A leaked `&'static` for content shared by many paths of one commit.
fn leak(content: Content) -> &'static Content {
    Box::leak(Box::new(content))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_300_mb_blob_is_stopped_by_the_fetch_cap_within_the_memory_limit() -> Result<()> {
    let blob = leak(Content::Random(300 << 20));
    a_hostile_commit_is_refused(
        "blob",
        |dir| vec![(format!("{dir}/app/big.yaml"), blob)],
        &["--max-fetch-bytes", "https://127.0.0.1:"],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_300_mb_blob_of_zeros_is_refused_without_being_inflated() -> Result<()> {
    // Its pack is small: the fetch cap's byte count never trips, gix's allocation limit (half the cap) does.
    let blob = leak(Content::Zeros(300 << 20));
    a_hostile_commit_is_refused(
        "zeros",
        |dir| vec![(format!("{dir}/app/zeros.yaml"), blob)],
        &["--max-fetch-bytes", "inflating beyond half of it (48 MiB)"],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_thousand_files_are_refused_before_any_is_read() -> Result<()> {
    let file = leak(Content::Text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n".into(),
    ));
    a_hostile_commit_is_refused(
        "files",
        |dir| {
            (0..50_000)
                .map(|i| (format!("{dir}/many/f{i:05}.yaml"), file))
                .collect()
        },
        &["--max-files (20000)", "/many", "more than 20000 files"],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tree_five_thousand_levels_deep_is_refused_at_the_depth_cap() -> Result<()> {
    let file = leak(Content::Text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n".into(),
    ));
    a_hostile_commit_is_refused(
        "deep",
        |dir| vec![(format!("{dir}/deep/{}f.yaml", "d/".repeat(5_000)), file)],
        &["--max-tree-depth (64)", "/deep/d/d/d"],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_yaml_alias_bomb_is_refused_naming_its_file_and_document() -> Result<()> {
    let mut bomb = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n");
    bomb.push_str("  a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for (prev, name) in "abcdefgh".chars().zip("bcdefghi".chars()) {
        let refs = vec![format!("*{prev}"); 9].join(",");
        bomb.push_str(&format!("  {name}: &{name} [{refs}]\n"));
    }
    let file = leak(Content::Text(bomb));
    a_hostile_commit_is_refused(
        "bomb",
        |dir| vec![(format!("{dir}/app/bomb.yaml"), file)],
        &["/app/bomb.yaml: document 1", "alias bomb"],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_levels_of_yaml_nesting_are_refused_naming_file_and_document() -> Result<()> {
    let nested = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ok}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: deep}}\ndata:\n  x:\n  {}x\n",
        "- ".repeat(10_000)
    );
    let file = leak(Content::Text(nested));
    a_hostile_commit_is_refused(
        "nesting",
        |dir| vec![(format!("{dir}/app/nested.yaml"), file)],
        &["/app/nested.yaml: document 2", "nested more than 128 levels"],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blob_the_fetch_lets_through_is_refused_by_the_blob_cap_within_the_memory_limit() -> Result<()> {
    // Just under half the fetch cap, the largest object a fetch takes: indexing holds its pack entry and the
    // inflated blob at once. The default caps must still fit the chart's limit.
    let blob = leak(Content::Random(47 << 20));
    a_hostile_commit_is_refused(
        "near",
        |dir| vec![(format!("{dir}/app/near.yaml"), blob)],
        &["/app/near.yaml: a file of 47 MiB", "--max-blob-bytes (16 MiB)"],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_at_the_blob_cap_packed_with_tiny_keys_is_refused_within_the_memory_limit() -> Result<()> {
    // The densest YAML a manifest can be: 16 MiB of one-letter values, a key and a value per 12 bytes. The
    // parser's event budget stops it at about half a million keys, before the value outgrows the memory limit.
    let mut text = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dense}\ndata:\n");
    let mut i = 0u64;
    while text.len() < (16 << 20) - 64 {
        text.push_str(&format!("  k{i:x}: v\n"));
        i += 1;
    }
    let file = leak(Content::Text(text));
    a_hostile_commit_is_refused(
        "dense",
        |dir| vec![(format!("{dir}/app/dense.yaml"), file)],
        &[
            "/app/dense.yaml: document 1",
            "over the YAML budget",
            "400000 parser events",
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_json_file_at_the_blob_cap_packed_with_tiny_keys_is_refused_within_the_memory_limit() -> Result<()>
{
    // EMCO writes single-line JSON into .yaml files: JSON has no parser budget of its own, so its values are
    // counted before it is parsed.
    let mut text =
        String::from(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dense"},"data":{"#);
    let mut i = 0u64;
    while text.len() < (16 << 20) - 64 {
        text.push_str(&format!("\"k{i:x}\":\"v\","));
        i += 1;
    }
    text.push_str("\"end\":\"v\"}}");
    let file = leak(Content::Text(text));
    a_hostile_commit_is_refused(
        "densejson",
        |dir| vec![(format!("{dir}/app/dense+ConfigMap.yaml"), file)],
        &["/app/dense+ConfigMap.yaml: document 1", "over the JSON budget"],
    )
    .await
}
