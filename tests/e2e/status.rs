//! The status writer against the real API server and Git servers: EMCO paths and schema, readiness that
//! follows the workloads, coalesced commits, racing writers, rewritten history, and failures.

use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use outpost_tests::agent::{AgentCommand, Transport, create_namespace, output_text};
use outpost_tests::process::run;
use outpost_tests::{GitServers, TestRepo, git_servers, kube_env, unique};
use serde_json::Value;

use crate::common::{Seen, eventually, log_tail};
use crate::fixtures;

/// Long enough for debounce, push retries and polls on a busy machine.
const LANDS: Duration = Duration::from_secs(60);

/// The file at `path` on `main` of the served repository, if any.
pub(crate) fn file_on_branch(repo: &TestRepo, branch: &str, path: &str) -> Option<String> {
    let bare = repo.bare.to_str()?;
    run(
        "git",
        &["-C", bare, "show", &format!("refs/heads/{branch}:{path}")],
        None,
    )
    .ok()
    .inspect(|text| outpost_tests::oracle::record_status(path, text))
}

/// What `branch` of the served repository holds, for a wait that times out: its head commit and the status
/// files on it.
fn branch_summary(repo: &TestRepo, branch: &str) -> String {
    let Some(bare) = repo.bare.to_str() else {
        return format!("{} is not UTF-8", repo.bare.display());
    };
    let branch_ref = format!("refs/heads/{branch}");
    let head = run(
        "git",
        &["-C", bare, "log", "-1", "--format=%h %s", &branch_ref],
        None,
    );
    let files = run(
        "git",
        &["-C", bare, "ls-tree", "-r", "--name-only", &branch_ref],
        None,
    );
    match (head, files) {
        (Ok(head), Ok(files)) => {
            let status: Vec<&str> = files.lines().filter(|f| f.contains("/status/")).collect();
            format!("{branch} at {:?}, status files {status:?}", head.trim())
        }
        (Err(e), _) | (_, Err(e)) => format!("cannot read {branch}: {e:#}"),
    }
}

/// `Done` once the file at `path` on `main` exists (with its text); otherwise what the branch holds.
fn status_file(repo: &TestRepo, path: &str) -> Seen<String> {
    file_on_branch(repo, "main", path).map_or_else(|| Seen::Not(branch_summary(repo, "main")), Seen::Done)
}

/// `Done` once the file at `path` on `main` has a line `line`; otherwise its lines that start like it (up to
/// the colon), or what the branch holds if the file is not there.
fn status_file_has(repo: &TestRepo, path: &str, line: &str) -> Seen<()> {
    let Some(text) = file_on_branch(repo, "main", path) else {
        return Seen::Not(branch_summary(repo, "main"));
    };
    let key = line.split_once(':').map_or(line, |(k, _)| k);
    let like: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with(key))
        .collect();
    Seen::done_if(text.contains(line), format!("{path}: {like:?}"))
}

/// Number of commits on a branch.
pub(crate) fn commit_count(repo: &TestRepo, branch: &str) -> Result<usize> {
    let bare = repo.bare.to_str().context("path")?;
    Ok(run(
        "git",
        &["-C", bare, "rev-list", "--count", &format!("refs/heads/{branch}")],
        None,
    )?
    .trim()
    .parse()?)
}

fn deployment(ns: &str, name: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{emco/deployment-id: 100-web}}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}, emco/deployment-id: 100-web}}\n    spec:\n      containers:\n      - name: main\n        image: nginx:1.27\n"
    )
}

fn tracker(ns: &str) -> String {
    format!(
        "apiVersion: k8splugin.io/v1alpha1\nkind: ResourceBundleState\nmetadata:\n  name: web-status\n  namespace: {ns}\n  labels: {{emco/deployment-id: 100-web}}\nspec:\n  selector:\n    matchLabels: {{emco/deployment-id: 100-web}}\n"
    )
}

fn parse_yaml(text: &str) -> Result<Value> {
    Ok(serde_saphyr::from_str(text)?)
}

/// Sync an EMCO-layout app (Deployment, Service, Secret, ConfigMap, an Ingress-like other kind, a tracker) with
/// the agent; returns (cluster, app namespace, agent namespace, repo).
pub(crate) async fn synced_emco_app(
    client: &kube::Client,
    servers: &GitServers,
) -> Result<(String, String, String, TestRepo)> {
    Ok(synced_emco_app_at(client, servers).await?.0)
}

/// Like [`synced_emco_app`], also returning the commit the agent synced.
async fn synced_emco_app_at(
    client: &kube::Client,
    servers: &GitServers,
) -> Result<((String, String, String, TestRepo), String)> {
    let env = kube_env();
    let agent_ns = create_namespace(client, "agent").await?;
    let ns = create_namespace(client, "web").await?;
    let cluster = format!("{}+{}", unique("provider"), unique("edge"));
    let repo = servers.create_repo(&unique("control"))?;
    let app = |f: &str| format!("clusters/{cluster}/context/100/app/web/{f}");
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\n  namespace: {ns}\nstringData:\n  password: hunter2-do-not-leak\n"
    );
    let quota = format!(
        "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: quota\n  namespace: {ns}\nspec:\n  hard: {{pods: \"10\"}}\n"
    );
    repo.write(&app("web+Deployment.yaml"), &deployment(&ns, "web"))?
        .write(&app("web+Service.yaml"), &fixtures::service(&ns, "web"))?
        .write(&app("creds+Secret.yaml"), &secret)?
        .write(&app("quota+ResourceQuota.yaml"), &quota)?
        .write(
            &app("settings+ConfigMap.yaml"),
            &fixtures::config_map(&ns, "settings", "x"),
        )?
        .write(&app("web-status+ResourceBundleState.yaml"), &tracker(&ns))?;
    let commit = repo.commit("EMCO app")?;
    let out =
        AgentCommand::with_servers(servers, env, &repo, &cluster, &agent_ns, Transport::Https)?.once()?;
    anyhow::ensure!(out.status.success(), "{}", output_text(&out));
    Ok(((cluster, ns, agent_ns, repo), commit))
}

#[tokio::test]
async fn status_lands_at_the_emco_path_with_the_emco_schema_and_ready_follows_the_deployment() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let servers = git_servers();
    let ((cluster, ns, agent_ns, repo), synced) = synced_emco_app_at(&client, servers).await?;
    let writer = AgentCommand::status_writer(servers, env, &repo, &cluster, &agent_ns, Transport::Https)?
        .spawn_with(&["--debounce", "500ms"])?;
    let path = format!("clusters/{cluster}/status/100/app/web/100-web-status.yaml");
    let text = eventually(LANDS, "the status file on the branch", || async {
        Ok(status_file(&repo, &path))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", writer.logs()))?;
    assert!(
        !text.contains("hunter2"),
        "Secret data in the status file:\n{text}"
    );
    let doc = parse_yaml(&text)?;
    // Field names as EMCO's rsync reads them.
    assert_eq!(doc["apiVersion"], "k8splugin.io/v1alpha1");
    assert_eq!(doc["kind"], "ResourceBundleState");
    assert_eq!(doc["metadata"]["name"], "web-status");
    assert_eq!(doc["metadata"]["labels"]["emco/deployment-id"], "100-web");
    assert_eq!(
        doc["spec"]["selector"]["matchLabels"]["emco/deployment-id"],
        "100-web"
    );
    assert_eq!(
        doc["status"]["ready"], false,
        "no controller runs: the Deployment is not available"
    );
    assert_eq!(doc["status"]["resourceCount"], 5);
    let deploy = &doc["status"]["deploymentStatuses"][0];
    assert_eq!(deploy["metadata"]["name"], "web");
    assert_eq!(deploy["spec"]["replicas"], 1);
    assert!(
        deploy.get("status").is_some(),
        "deploymentStatuses entries carry the status"
    );
    assert_eq!(deploy["metadata"]["managedFields"], serde_json::json!([]));
    assert_eq!(doc["status"]["serviceStatuses"][0]["metadata"]["name"], "web");
    assert_eq!(
        doc["status"]["configMapStatuses"][0]["metadata"]["name"],
        "settings"
    );
    assert!(
        doc["status"]["configMapStatuses"][0].get("data").is_none(),
        "ConfigMaps are metadata only"
    );
    let others = doc["status"]["resourceStatuses"]
        .as_array()
        .context("resourceStatuses")?;
    let quota = others
        .iter()
        .find(|r| r["kind"] == "ResourceQuota")
        .context("quota entry")?;
    assert_eq!(
        (quota["group"].as_str(), quota["version"].as_str()),
        (Some(""), Some("v1"))
    );
    let res = base64::engine::general_purpose::STANDARD.decode(quota["res"].as_str().context("res")?)?;
    let obj: Value = serde_json::from_slice(&res)?;
    assert_eq!(obj["metadata"]["name"], "quota");
    let secret = others
        .iter()
        .find(|r| r["kind"] == "Secret")
        .context("secret entry")?;
    let res = base64::engine::general_purpose::STANDARD.decode(secret["res"].as_str().context("res")?)?;
    let obj: Value = serde_json::from_slice(&res)?;
    assert!(
        obj.get("data").is_none() && obj.get("stringData").is_none(),
        "{obj}"
    );
    let sync: Value = serde_json::from_str(
        doc["metadata"]["annotations"]["outpost.dev/sync"]
            .as_str()
            .context("sync")?,
    )?;
    assert_eq!(sync["revision"].as_str(), Some(synced.as_str()));
    assert_eq!(sync["state"], "Synced");

    // Play the Deployment controller: the app becomes available, and the status says so.
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let generation = deploys.get("web").await?.metadata.generation.unwrap_or(1);
    let status = serde_json::json!({"status": {"observedGeneration": generation, "replicas": 1, "updatedReplicas": 1,
        "readyReplicas": 1, "availableReplicas": 1,
        "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                       {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}});
    deploys
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    eventually(LANDS, "ready: true on the branch", || async {
        let text = match status_file(&repo, &path) {
            Seen::Done(text) => text,
            Seen::Not(seen) => return Ok(Seen::Not(seen)),
        };
        Ok(match parse_yaml(&text) {
            Ok(d) => Seen::done_if(
                d["status"]["ready"] == true,
                format!("status.ready={}", d["status"]["ready"]),
            ),
            Err(e) => Seen::Not(format!("unparsable status file: {e:#}")),
        })
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", writer.logs()))?;
    Ok(())
}

#[tokio::test]
async fn a_burst_of_status_changes_makes_a_handful_of_commits_and_no_change_makes_none() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let servers = git_servers();
    let (cluster, ns, agent_ns, repo) = synced_emco_app(&client, servers).await?;
    let writer = AgentCommand::status_writer(servers, env, &repo, &cluster, &agent_ns, Transport::Https)?
        .spawn_with(&["--debounce", "2s"])?;
    let path = format!("clusters/{cluster}/status/100/app/web/100-web-status.yaml");
    eventually(LANDS, "the first status", || async {
        Ok(status_file(&repo, &path))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", writer.logs()))?;
    let before = commit_count(&repo, "main")?;
    // 100 status changes as fast as the API server takes them.
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    for i in 0..100 {
        let status = serde_json::json!({"status": {"replicas": i % 3, "unavailableReplicas": i}});
        deploys
            .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
            .await?;
    }
    eventually(LANDS, "the last change on the branch", || async {
        Ok(status_file_has(&repo, &path, "unavailableReplicas: 99"))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", writer.logs()))?;
    let commits = commit_count(&repo, "main")? - before;
    assert!((1..=10).contains(&commits), "100 changes made {commits} commits");
    let (code, metrics) = writer.get("/metrics").await?;
    assert_eq!(code, 200);
    for name in [
        "outpost_status_commits_total",
        "outpost_status_documents_rendered_total",
        "outpost_status_bytes_pushed_total",
        "outpost_status_push_duration_seconds_count",
        "outpost_status_last_successful_push_timestamp_seconds",
    ] {
        let value: f64 = metrics
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert!(value > 0.0, "{name} is {value}:\n{metrics}");
    }
    assert_eq!(writer.get("/readyz").await?.0, 200);
    // Nothing changes: nothing is committed.
    let settled = commit_count(&repo, "main")?;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        commit_count(&repo, "main")?,
        settled,
        "unchanged status was committed again"
    );
    Ok(())
}

/// Two clusters' writers push to one branch at the same time over `transport`; every update of both lands.
async fn two_writers_race(transport: fn() -> Transport) -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let servers = git_servers();
    let control = servers.create_repo(&unique("shared-control"))?;
    control.write("README.md", "control repository\n")?;
    control.commit("init")?;
    let mut clusters = Vec::new();
    for _ in 0..2 {
        let (cluster, ns, agent_ns, _) = synced_emco_app(&client, servers).await?;
        clusters.push((cluster, ns, agent_ns));
    }
    for round in 0..3 {
        // Change both clusters' status, then let both writers race for the branch.
        for (_, ns, _) in &clusters {
            let deploys: Api<Deployment> = Api::namespaced(client.clone(), ns);
            let status = serde_json::json!({"status": {"unavailableReplicas": round + 1}});
            deploys
                .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
                .await?;
        }
        let handles: Vec<_> = clusters
            .iter()
            .map(|(cluster, _, agent_ns)| {
                let cmd = AgentCommand::status_writer(servers, env, &control, cluster, agent_ns, transport());
                std::thread::spawn(move || cmd?.once())
            })
            .collect();
        for h in handles {
            let out = h.join().expect("writer thread")?;
            anyhow::ensure!(out.status.success(), "round {round}: {}", output_text(&out));
        }
        for (cluster, _, _) in &clusters {
            let path = format!("clusters/{cluster}/status/100/app/web/100-web-status.yaml");
            let text = file_on_branch(&control, "main", &path)
                .with_context(|| format!("round {round}: {path} missing"))?;
            assert!(
                text.contains(&format!("unavailableReplicas: {}", round + 1)),
                "round {round}: stale status for {cluster}"
            );
        }
    }
    // Fast-forward only: history is one line, and the first commit is still there.
    let bare = control.bare.to_str().context("path")?;
    let merges = run(
        "git",
        &["-C", bare, "rev-list", "--merges", "--count", "refs/heads/main"],
        None,
    )?;
    assert_eq!(merges.trim(), "0");
    let log = run(
        "git",
        &["-C", bare, "log", "--format=%s", "refs/heads/main"],
        None,
    )?;
    assert!(
        log.lines().last() == Some("init"),
        "history was rewritten:\n{log}"
    );
    assert!(
        log.lines().filter(|l| l.starts_with("outpost status")).count() >= 6,
        "{log}"
    );
    Ok(())
}

#[tokio::test]
async fn two_writers_racing_over_https_both_land_every_update() -> Result<()> {
    two_writers_race(|| Transport::Https).await
}

#[tokio::test]
async fn two_writers_racing_over_ssh_both_land_every_update() -> Result<()> {
    two_writers_race(|| Transport::Ssh).await
}

#[tokio::test]
async fn two_writers_racing_over_file_urls_both_land_every_update() -> Result<()> {
    two_writers_race(|| Transport::File).await
}

#[tokio::test]
async fn a_rewritten_branch_is_reported_and_built_upon_never_force_pushed() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let servers = git_servers();
    let (cluster, ns, agent_ns, repo) = synced_emco_app(&client, servers).await?;
    let writer = AgentCommand::status_writer(servers, env, &repo, &cluster, &agent_ns, Transport::Https)?
        .spawn_with(&["--debounce", "500ms"])?;
    let path = format!("clusters/{cluster}/status/100/app/web/100-web-status.yaml");
    eventually(LANDS, "the first status", || async {
        Ok(status_file(&repo, &path))
    })
    .await?;
    // Someone force-pushes the branch back to before our status commit.
    let bare = repo.bare.to_str().context("path")?;
    let ours = run("git", &["-C", bare, "rev-parse", "refs/heads/main"], None)?
        .trim()
        .to_owned();
    let rewritten = run("git", &["-C", bare, "rev-parse", "refs/heads/main~1"], None)?
        .trim()
        .to_owned();
    run(
        "git",
        &["-C", bare, "update-ref", "refs/heads/main", &rewritten],
        None,
    )?;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deploys
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"status": {"unavailableReplicas": 7}})),
        )
        .await?;
    eventually(LANDS, "the new status on top of the rewritten branch", || async {
        Ok(status_file_has(&repo, &path, "unavailableReplicas: 7"))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", writer.logs()))?;
    assert!(
        writer.logs().contains("force-push"),
        "the rewrite was not reported:\n{}",
        writer.logs()
    );
    // Built on the rewritten history, not forced back to ours.
    let is_ancestor = |a: &str| {
        run(
            "git",
            &["-C", bare, "merge-base", "--is-ancestor", a, "refs/heads/main"],
            None,
        )
        .is_ok()
    };
    assert!(is_ancestor(&rewritten));
    assert!(
        !is_ancestor(&ours),
        "our old commit was forced back onto the branch"
    );
    Ok(())
}

#[tokio::test]
async fn wrong_credentials_a_read_only_repo_and_a_down_server_fail_clearly_and_recover() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let servers = std::thread::spawn(GitServers::start)
        .join()
        .expect("start git servers")?;
    let (cluster, _ns, agent_ns, repo) = synced_emco_app(&client, &servers).await?;
    let path = format!("clusters/{cluster}/status/100/app/web/100-web-status.yaml");

    let wrong = format!("wrong-{}", outpost_tests::random_token());
    let out = AgentCommand::status_writer(
        &servers,
        env,
        &repo,
        &cluster,
        &agent_ns,
        Transport::HttpsWithToken(wrong.clone()),
    )?
    .once()?;
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("authentication") && text.contains(&repo.https_url()),
        "{text}"
    );
    assert!(
        !text.contains(&wrong) && !text.contains(&servers.http_password),
        "a secret leaked: {text}"
    );

    let bare = repo.bare.to_str().context("path")?;
    run("git", &["-C", bare, "config", "http.receivepack", "false"], None)?;
    let out =
        AgentCommand::status_writer(&servers, env, &repo, &cluster, &agent_ns, Transport::Https)?.once()?;
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("does not accept pushes") && text.contains(&repo.https_url()),
        "{text}"
    );
    run("git", &["-C", bare, "config", "http.receivepack", "true"], None)?;

    servers.stop_https();
    let writer = AgentCommand::status_writer(&servers, env, &repo, &cluster, &agent_ns, Transport::Https)?
        .spawn_with(&["--debounce", "200ms"])?;
    eventually(LANDS, "a clear connection error", || async {
        let logs = writer.logs();
        Ok(Seen::done_if(logs.contains("cannot reach"), log_tail(&logs, 3)))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", writer.logs()))?;
    servers.start_https()?;
    eventually(LANDS, "the status after the server came back", || async {
        Ok(status_file(&repo, &path))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", writer.logs()))?;
    Ok(())
}

#[tokio::test]
async fn a_missing_branch_is_created_from_the_default_branch() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let servers = git_servers();
    let (cluster, _ns, agent_ns, repo) = synced_emco_app(&client, servers).await?;
    // EMCO's git2go mode: one branch per cluster.
    let branch = unique("cluster-branch");
    let mut cmd = AgentCommand::status_writer(servers, env, &repo, &cluster, &agent_ns, Transport::Https)?;
    cmd.arg("--git-branch").arg(&branch);
    let out = cmd.once()?;
    assert!(out.status.success(), "{}", output_text(&out));
    let path = format!("clusters/{cluster}/status/100/app/web/100-web-status.yaml");
    assert!(
        file_on_branch(&repo, &branch, &path).is_some(),
        "status not on the new branch"
    );
    let bare = repo.bare.to_str().context("path")?;
    let main = run("git", &["-C", bare, "rev-parse", "refs/heads/main"], None)?
        .trim()
        .to_owned();
    assert!(
        run(
            "git",
            &[
                "-C",
                bare,
                "merge-base",
                "--is-ancestor",
                &main,
                &format!("refs/heads/{branch}")
            ],
            None
        )
        .is_ok()
    );
    assert!(
        file_on_branch(&repo, "main", &path).is_none(),
        "main was written to"
    );
    Ok(())
}
