//! `make bench`: Outpost's agent against `kubectl apply --server-side`, measured in the same run against the
//! same real API server, printed as a table with ratios. kubectl is the one the tests pair with that server
//! ([`tools::kubectl`]): built from the same release for the current version, Debian trixie's 1.32 for
//! `OUTPOST_TEST_KUBE_VERSION=1.20`; the `Peer:` line under the table names its version.
//!
//! Scenarios (issue 3): initial sync of 1,000 mixed objects and of 10,000 ConfigMaps; a poll with no new
//! commit (with the agent's API request count); a commit changing 1%; drift revert latency; pruning 10%; the
//! agent's peak RSS; status commits with no change in Git ([`churn`]). Each side gets its own namespaces with
//! identical content. Not a test: nothing here asserts timings; it prints figures. [`trust`] adds what commit
//! verification and SOPS decryption cost; [`idle`] what an idle poll of a repository with 10,001 refs costs the
//! Git server, beside `git ls-remote`; [`footprint`] the size of the image's one binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use outpost_tests::agent::{AgentCommand, RunningAgent, Transport, output_text};
use outpost_tests::{GitServers, KubeEnv, TestRepo, tools};

mod churn;
mod footprint;
mod idle;
mod trust;

/// Bundles (and namespaces) per scenario.
const BUNDLES: usize = 10;
/// Drift edits measured.
const DRIFT_EDITS: usize = 20;

/// One row of the result table.
struct Row {
    scenario: String,
    outpost: String,
    kubectl: String,
    ratio: String,
    target: String,
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn ratio(kubectl: Duration, outpost: Duration) -> String {
    format!("{:.1}x", kubectl.as_secs_f64() / outpost.as_secs_f64().max(1e-6))
}

/// The objects of one side (`prefix` names its namespaces): (bundle, file name, YAML).
fn mixed_objects(prefix: &str, version: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for b in 0..BUNDLES {
        let ns = format!("{prefix}-{b:02}");
        let bundle = format!("b{b:02}");
        for i in 0..80 {
            out.push((
                bundle.clone(),
                format!("cm-{i:03}.yaml"),
                config_map(&ns, &format!("cm-{i:03}"), version),
            ));
        }
        for i in 0..10 {
            let name = format!("svc-{i:03}");
            out.push((bundle.clone(), format!("{name}.yaml"), format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  selector: {{app: {name}}}\n  ports: [{{port: 80, targetPort: 8080, protocol: TCP}}]\n"
            )));
            let name = format!("deploy-{i:03}");
            out.push((bundle.clone(), format!("{name}.yaml"), format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      containers:\n      - name: main\n        image: nginx:1.27\n        ports: [{{containerPort: 8080, protocol: TCP}}]\n"
            )));
        }
    }
    out
}

fn config_maps(prefix: &str, per_bundle: usize) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for b in 0..BUNDLES {
        let ns = format!("{prefix}-{b:02}");
        for i in 0..per_bundle {
            out.push((
                format!("b{b:02}"),
                format!("cm-{i:04}.yaml"),
                config_map(&ns, &format!("cm-{i:04}"), "1"),
            ));
        }
    }
    out
}

fn config_map(ns: &str, name: &str, version: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}, labels: {{bench: outpost}}}}\ndata:\n  version: \"{version}\"\n  payload: \"{}\"\n  mode: standard\n",
        "x".repeat(64)
    )
}

/// Write objects into `root/<bundle>/<file>`, replacing what was there.
fn write_tree(root: &Path, objects: &[(String, String, String)]) -> Result<()> {
    if root.exists() {
        std::fs::remove_dir_all(root)?;
    }
    for (bundle, file, yaml) in objects {
        let dir = root.join(bundle);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(file), yaml)?;
    }
    Ok(())
}

async fn create_namespaces(client: &kube::Client, prefix: &str) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    for b in 0..BUNDLES {
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": format!("{prefix}-{b:02}")}}))?;
        api.create(&PostParams::default(), &ns).await?;
    }
    Ok(())
}

/// `kubectl apply --server-side -R -f dir` (plus `extra` flags), timed.
fn kubectl_apply(kube: &KubeEnv, dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Result<Duration> {
    let started = Instant::now();
    let mut cmd = Command::new(tools::kubectl()?);
    cmd.env("KUBECONFIG", &kube.kubeconfig)
        .args(["apply", "--server-side", "-R", "-f"])
        .arg(dir)
        .args(extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output()?;
    let took = started.elapsed();
    if !out.status.success() {
        bail!("kubectl failed: {}", output_text(&out));
    }
    Ok(took)
}

/// One `outpost-agent --once`, timed.
fn agent_once(agent: &AgentCommand) -> Result<Duration> {
    let started = Instant::now();
    let out = agent.once()?;
    let took = started.elapsed();
    if !out.status.success() {
        bail!("outpost-agent --once failed: {}", output_text(&out));
    }
    if std::env::var("OUTPOST_BENCH_LOG").is_ok() {
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(took)
}

/// Run `change` (a commit) and return how long the running agent's reconcile of it took, from its
/// `outpost_reconcile_duration_seconds{result="success"}` histogram (the poll wait is not counted).
async fn daemon_reconcile(agent: &RunningAgent, change: impl FnOnce() -> Result<()>) -> Result<Duration> {
    let count = "outpost_reconcile_duration_seconds_count";
    let sum = "outpost_reconcile_duration_seconds_sum";
    let filter = "result=\"success\"";
    let (n0, s0) = (
        metric(agent, count, filter).await?,
        metric(agent, sum, filter).await?,
    );
    change()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n = metric(agent, count, filter).await?;
        if n > n0 {
            let s = metric(agent, sum, filter).await?;
            return Ok(Duration::from_secs_f64((s - s0) / (n - n0)));
        }
        if Instant::now() > deadline {
            bail!(
                "the agent did not reconcile the new commit ({count}{{{filter}}} still {n}); log:\n{}",
                agent.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sum of a metric's samples whose line contains `filter`.
async fn metric(agent: &RunningAgent, name: &str, filter: &str) -> Result<f64> {
    let (_, body) = agent.get("/metrics").await?;
    Ok(body
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

struct Bench {
    kube: KubeEnv,
    git: GitServers,
    client: kube::Client,
    agent_ns: String,
    work: PathBuf,
    rows: Vec<Row>,
}

impl Bench {
    fn row(&mut self, scenario: &str, outpost: String, kubectl: String, ratio: String, target: &str) {
        println!("  {scenario}: outpost {outpost}, kubectl {kubectl} ({ratio})");
        self.rows.push(Row {
            scenario: scenario.into(),
            outpost,
            kubectl,
            ratio,
            target: target.into(),
        });
    }

    fn agent(&self, repo: &TestRepo, cluster: &str, cache: &Path) -> Result<AgentCommand> {
        let mut agent = AgentCommand::with_servers(
            &self.git,
            &self.kube,
            repo,
            cluster,
            &self.agent_ns,
            Transport::Https,
        )?;
        agent.set_cache_dir(cache).arg("--apply-concurrency").arg("64");
        agent.env(
            "RUST_LOG",
            std::env::var("OUTPOST_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        );
        // As the image sets it (see Dockerfile).
        agent.env(
            "MALLOC_ARENA_MAX",
            std::env::var("MALLOC_ARENA_MAX").unwrap_or_else(|_| "2".into()),
        );
        Ok(agent)
    }

    async fn mixed(&mut self) -> Result<()> {
        println!(
            "1,000 mixed objects (800 ConfigMaps, 100 Services, 100 Deployments) in {BUNDLES} namespaces"
        );
        create_namespaces(&self.client, "agent-mixed").await?;
        create_namespaces(&self.client, "kubectl-mixed").await?;
        let repo = self.git.create_repo("bench-mixed")?;
        let cluster = "bench-mixed";
        let tree = repo.work.join(format!("clusters/{cluster}"));
        let kdir = self.work.join("kubectl-mixed");
        write_tree(&tree, &mixed_objects("agent-mixed", "1"))?;
        write_tree(&kdir, &mixed_objects("kubectl-mixed", "1"))?;
        repo.commit("1,000 objects")?;
        let cache = self.work.join("cache-mixed");
        let agent = self.agent(&repo, cluster, &cache)?;

        let k = kubectl_apply(&self.kube, &kdir, &[], &[])?;
        let o = agent_once(&agent)?;
        self.row(
            "initial sync, 1,000 objects",
            secs(o),
            secs(k),
            ratio(k, o),
            ">= 4x",
        );

        // A poll with no new commit: the daemon on the same cache, unchanged commit.
        let daemon = agent.spawn("1s")?;
        daemon.wait_ready(Duration::from_secs(120)).await?;
        let requests_before = metric(&daemon, "outpost_kube_requests_total", "").await?;
        let polls_before = metric(&daemon, "outpost_reconcile_duration_seconds_count", "unchanged").await?;
        let sum_before = metric(&daemon, "outpost_reconcile_duration_seconds_sum", "unchanged").await?;
        tokio::time::sleep(Duration::from_secs(6)).await;
        let requests = metric(&daemon, "outpost_kube_requests_total", "").await? - requests_before;
        let polls =
            metric(&daemon, "outpost_reconcile_duration_seconds_count", "unchanged").await? - polls_before;
        let poll_secs = (metric(&daemon, "outpost_reconcile_duration_seconds_sum", "unchanged").await?
            - sum_before)
            / polls.max(1.0);
        let k = kubectl_apply(&self.kube, &kdir, &[], &[])?;
        self.row(
            "poll, no new commit",
            format!(
                "{:.0} ms, {requests} API requests in {polls} polls",
                poll_secs * 1000.0
            ),
            secs(k),
            ratio(k, Duration::from_secs_f64(poll_secs)),
            "0 requests, ~25 ms",
        );

        // Drift: edit or delete 20 ConfigMaps by hand, time until each is back.
        let mut latencies = Vec::new();
        for i in 0..DRIFT_EDITS {
            let ns = format!("agent-mixed-{:02}", i % BUNDLES);
            let name = format!("cm-{:03}", 40 + i);
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &ns);
            let started = Instant::now();
            if i % 2 == 0 {
                let edit = serde_json::json!({"data": {"version": "edited"}});
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&edit))
                    .await?;
            } else {
                api.delete(&name, &DeleteParams::default()).await?;
            }
            loop {
                let back = api
                    .get_opt(&name)
                    .await?
                    .and_then(|c| c.data)
                    .and_then(|d| d.get("version").cloned());
                if back.as_deref() == Some("1") {
                    break;
                }
                if started.elapsed() > Duration::from_secs(30) {
                    bail!(
                        "drift on {ns}/{name} not reverted in 30 s (version still {back:?}); log:\n{}",
                        daemon.logs()
                    );
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            latencies.push(started.elapsed());
        }
        latencies.sort();
        let median = latencies[latencies.len() / 2];
        let max = latencies[latencies.len() - 1];
        self.row(
            "drift revert latency (20 edits/deletes)",
            format!(
                "median {:.0} ms, max {:.0} ms",
                median.as_secs_f64() * 1000.0,
                max.as_secs_f64() * 1000.0
            ),
            "n/a (no drift correction)".into(),
            String::new(),
            "< 1 s median",
        );
        // A commit changing 1% of the objects, picked up by the running agent.
        let mut changed = mixed_objects("agent-mixed", "1");
        let mut kchanged = mixed_objects("kubectl-mixed", "1");
        for list in [&mut changed, &mut kchanged] {
            for (i, obj) in list
                .iter_mut()
                .filter(|(_, f, _)| f.starts_with("cm-"))
                .enumerate()
            {
                if i % 80 == 0 {
                    obj.2 = obj.2.replace("version: \"1\"", "version: \"2\"");
                }
            }
        }
        write_tree(&tree, &changed)?;
        write_tree(&kdir, &kchanged)?;
        let o = daemon_reconcile(&daemon, || repo.commit("1% changed").map(|_| ())).await?;
        let k = kubectl_apply(&self.kube, &kdir, &[], &[])?;
        self.row("commit changing 1%", secs(o), secs(k), ratio(k, o), ">= 30x");

        // Prune 10%: kubectl needs an ApplySet per namespace; create them first (not timed).
        let ns_args = |b: usize| (format!("kubectl-mixed-{b:02}"), format!("secret/kbench-{b:02}"));
        for b in 0..BUNDLES {
            let (ns, set) = ns_args(b);
            let dir = kdir.join(format!("b{b:02}"));
            let flags = ["--prune", "-n", &ns, &format!("--applyset={set}")];
            kubectl_apply(&self.kube, &dir, &flags, &[("KUBECTL_APPLYSET", "true")])?;
        }
        let dropped = [
            "cm-000",
            "cm-001",
            "cm-002",
            "cm-003",
            "cm-004",
            "cm-005",
            "cm-006",
            "cm-007",
            "svc-000",
            "deploy-000",
        ];
        let drop_tenth = |list: &[(String, String, String)]| -> Vec<(String, String, String)> {
            list.iter()
                .filter(|(_, f, _)| !dropped.iter().any(|d| f == &format!("{d}.yaml")))
                .cloned()
                .collect()
        };
        write_tree(&tree, &drop_tenth(&changed))?;
        write_tree(&kdir, &drop_tenth(&kchanged))?;
        let o = daemon_reconcile(&daemon, || repo.commit("10% removed").map(|_| ())).await?;
        let mut k = Duration::ZERO;
        for b in 0..BUNDLES {
            let (ns, set) = ns_args(b);
            let dir = kdir.join(format!("b{b:02}"));
            let flags = ["--prune", "-n", &ns, &format!("--applyset={set}")];
            k += kubectl_apply(&self.kube, &dir, &flags, &[("KUBECTL_APPLYSET", "true")])?;
        }
        self.row("prune 10% of 1,000", secs(o), secs(k), ratio(k, o), ">= 20x");
        let rss = daemon.peak_rss_kib().unwrap_or(0);
        drop(daemon);
        self.row(
            "agent peak RSS, 1,000 objects",
            format!("{:.1} MiB", rss as f64 / 1024.0),
            String::new(),
            String::new(),
            "< 64 MiB at 10,000",
        );
        Ok(())
    }

    async fn ten_thousand(&mut self) -> Result<()> {
        println!("10,000 ConfigMaps in {BUNDLES} namespaces");
        create_namespaces(&self.client, "agent-many").await?;
        create_namespaces(&self.client, "kubectl-many").await?;
        let repo = self.git.create_repo("bench-many")?;
        let cluster = "bench-many";
        write_tree(
            &repo.work.join(format!("clusters/{cluster}")),
            &config_maps("agent-many", 1000),
        )?;
        let kdir = self.work.join("kubectl-many");
        write_tree(&kdir, &config_maps("kubectl-many", 1000))?;
        repo.commit("10,000 config maps")?;
        let agent = self.agent(&repo, cluster, &self.work.join("cache-many"))?;
        let k = kubectl_apply(&self.kube, &kdir, &[], &[])?;
        let o = agent_once(&agent)?;
        self.row(
            "initial sync, 10,000 ConfigMaps",
            secs(o),
            secs(k),
            ratio(k, o),
            ">= 4x",
        );
        let daemon = agent.spawn("30s")?;
        daemon.wait_ready(Duration::from_secs(300)).await?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss = daemon.peak_rss_kib().unwrap_or(0);
        self.row(
            "agent peak RSS, 10,000 objects",
            format!("{:.1} MiB", rss as f64 / 1024.0),
            String::new(),
            String::new(),
            "< 64 MiB",
        );
        Ok(())
    }
}

/// Status writers for this many clusters push to one control repository at once.
const WRITERS: usize = 50;
/// Bundles per cluster whose status changes.
const WRITER_BUNDLES: usize = 10;
/// How long statuses keep changing (one change per bundle per second).
const CHANGE_SECONDS: u64 = 30;

impl Bench {
    async fn status_writers(&mut self) -> Result<()> {
        println!(
            "{WRITERS} status writers, {WRITER_BUNDLES} bundles each, one control repository over HTTPS"
        );
        let resources = self.git.create_repo("bench-status-resources")?;
        let control = self.git.create_repo("bench-status-control")?;
        control.write("README.md", "control repository\n")?;
        control.commit("init")?;
        let ns = "bench-status".to_owned();
        let nsobj: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}))?;
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &nsobj)
            .await?;
        for c in 0..WRITERS {
            for b in 0..WRITER_BUNDLES {
                resources.write(
                    &format!("clusters/w{c:02}/b{b}/cm.yaml"),
                    &config_map(&ns, &format!("w{c:02}-b{b}"), "1"),
                )?;
            }
        }
        resources.commit("clusters")?;
        // One agent run per cluster creates the inventories the writers watch; each simulated cluster has its
        // own agent namespace, as each real cluster has its own agent.
        for c in 0..WRITERS {
            let agent_ns = format!("outpost-w{c:02}");
            let nsobj: Namespace =
                serde_json::from_value(serde_json::json!({"metadata": {"name": agent_ns}}))?;
            Api::<Namespace>::all(self.client.clone())
                .create(&PostParams::default(), &nsobj)
                .await?;
            let cluster = format!("w{c:02}");
            let mut agent = AgentCommand::with_servers(
                &self.git,
                &self.kube,
                &resources,
                &cluster,
                &agent_ns,
                Transport::Https,
            )?;
            agent.set_cache_dir(&self.work.join(format!("cache-w{c:02}")));
            agent_once(&agent)?;
        }
        let mut writers = Vec::new();
        for c in 0..WRITERS {
            let agent_ns = format!("outpost-w{c:02}");
            let cluster = format!("w{c:02}");
            let mut cmd = AgentCommand::status_writer(
                &self.git,
                &self.kube,
                &control,
                &cluster,
                &agent_ns,
                Transport::Https,
            )?;
            cmd.env(
                "RUST_LOG",
                std::env::var("OUTPOST_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
            );
            cmd.env("MALLOC_ARENA_MAX", "2");
            writers.push(cmd.spawn_with(&[])?);
        }
        let bare = control.bare.clone();
        let count = |bare: &Path| -> Result<u64> {
            let out = Command::new("git")
                .arg("-C")
                .arg(bare)
                .args(["rev-list", "--count", "refs/heads/main"])
                .output()?;
            Ok(String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0))
        };
        // Wait for every writer's first status, then start changing.
        self.wait_statuses(&bare, "t0", Duration::from_secs(300))
            .await
            .context("first statuses")?;
        let commits_before = count(&bare)?;
        let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), &ns);
        let mut last = String::new();
        for tick in 1..=CHANGE_SECONDS {
            let started = Instant::now();
            last = format!("t{tick}");
            let patch = serde_json::json!({"metadata": {"labels": {"bench-tick": last}}});
            let names: Vec<String> = (0..WRITERS)
                .flat_map(|c| (0..WRITER_BUNDLES).map(move |b| format!("w{c:02}-b{b}")))
                .collect();
            use futures::StreamExt;
            futures::stream::iter(names)
                .map(|name| {
                    let cms = cms.clone();
                    let patch = patch.clone();
                    async move {
                        cms.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                            .await
                    }
                })
                .buffer_unordered(32)
                .collect::<Vec<_>>()
                .await;
            if let Some(rest) = Duration::from_secs(1).checked_sub(started.elapsed()) {
                tokio::time::sleep(rest).await;
            }
        }
        let ended = Instant::now();
        self.wait_statuses(&bare, &last, Duration::from_secs(300))
            .await
            .context("final statuses")?;
        let landed = ended.elapsed();
        let commits = count(&bare)? - commits_before;
        let mut retries = 0.0;
        for w in &writers {
            retries += metric(w, "outpost_status_push_retries_total", "")
                .await
                .unwrap_or(0.0);
        }
        drop(writers);
        self.row(
            &format!("{WRITERS} status writers x {WRITER_BUNDLES} bundles, changes every 1 s for {CHANGE_SECONDS} s"),
            format!("{commits} commits, {:.2} retries/commit, all final statuses on the branch {:.1} s after the last change, none lost",
                retries / commits.max(1) as f64, landed.as_secs_f64()),
            String::new(),
            String::new(),
            "final status within 10 s, no lost update",
        );
        Ok(())
    }

    /// Wait until every bench status file on the control branch mentions `tick` (the ConfigMap label value).
    async fn wait_statuses(&self, bare: &Path, tick: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let expected = WRITERS * WRITER_BUNDLES;
        loop {
            let out = Command::new("git")
                .arg("-C")
                .arg(bare)
                .args([
                    "grep",
                    "-l",
                    "-e",
                    &format!("bench-tick: {tick}$"),
                    "refs/heads/main",
                    "--",
                    "clusters",
                ])
                .output()?;
            let found = String::from_utf8_lossy(&out.stdout).lines().count();
            let first = tick == "t0";
            let done = if first {
                let out = Command::new("git")
                    .arg("-C")
                    .arg(bare)
                    .args(["ls-tree", "-r", "--name-only", "refs/heads/main", "clusters"])
                    .output()?;
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter(|l| l.ends_with("-status.yaml"))
                    .count()
                    >= expected
            } else {
                found >= expected
            };
            if done {
                return Ok(());
            }
            if Instant::now() > deadline {
                let out = Command::new("git")
                    .arg("-C")
                    .arg(bare)
                    .args(["ls-tree", "-r", "--name-only", "refs/heads/main", "clusters"])
                    .output()?;
                let files = String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter(|l| l.ends_with("-status.yaml"))
                    .count();
                bail!(
                    "not every one of the {expected} status files shows {tick} after {timeout:?} ({found} do; {files} status files on the branch)"
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn machine(kube: &KubeEnv) -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .and_then(|kib| kib.parse::<u64>().ok())
        .unwrap_or(0);
    format!(
        "{cpus} cores, {} GiB; etcd, kube-apiserver {}, kubectl and the agent share them",
        mem / 1024 / 1024,
        kube.version.apiserver
    )
}

#[tokio::main]
async fn main() -> Result<()> {
    println!(
        "Starting etcd + kube-apiserver {} and the Git servers ...",
        tools::kube_version()?.apiserver
    );
    let kube = std::thread::spawn(KubeEnv::start).join().expect("start kube")?;
    let git = std::thread::spawn(GitServers::start).join().expect("start git")?;
    let client = kube.client().await?;
    let agent_ns = "outpost-bench".to_owned();
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": agent_ns}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    let kubectl_version = Command::new(tools::kubectl()?)
        .args(["version", "--client"])
        .output()?;
    let work = outpost_tests::scratch_dir("bench")?;
    let mut bench = Bench {
        kube,
        git,
        client,
        agent_ns,
        work,
        rows: Vec::new(),
    };
    // OUTPOST_BENCH_ONLY=mixed,many,status,churn,trust,idle,footprint runs a subset.
    let only = std::env::var("OUTPOST_BENCH_ONLY")
        .unwrap_or_else(|_| "mixed,many,status,churn,trust,idle,footprint".into());
    if only.contains("mixed") {
        bench.mixed().await.context("1,000-object scenarios")?;
    }
    if only.contains("many") {
        bench.ten_thousand().await.context("10,000-object scenarios")?;
    }
    if only.contains("status") {
        bench.status_writers().await.context("status writer scenario")?;
    }
    if only.contains("churn") {
        bench.churn().await.context("status churn scenario")?;
    }
    if only.contains("trust") {
        bench.trust().await.context("trusted-source scenarios")?;
    }
    if only.contains("idle") {
        bench.idle().await.context("idle-poll scenarios")?;
    }
    if only.contains("footprint") {
        bench.footprint().await.context("footprint")?;
    }

    println!();
    println!("Machine: {}", machine(&bench.kube));
    println!(
        "Peer: {}",
        String::from_utf8_lossy(&kubectl_version.stdout)
            .lines()
            .next()
            .unwrap_or("kubectl")
    );
    println!();
    println!("| scenario | outpost | kubectl | kubectl/outpost | target |");
    println!("|---|---|---|---|---|");
    for r in &bench.rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.scenario, r.outpost, r.kubectl, r.ratio, r.target
        );
    }
    Ok(())
}
