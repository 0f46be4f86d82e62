//! The chart's namespaced RBAC end to end: the rendered ServiceAccounts, Roles and bindings installed for real,
//! the daemons run with the tokens of those ServiceAccounts and the env the chart gives their containers.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use outpost_agent::resolve::Resolver;
use outpost_tests::agent::{AgentCommand, RunningAgent, Transport, create_namespace, output_text};
use outpost_tests::{KubeEnv, git_servers, kube_env, unique};
use serde_json::Value;

use crate::chart::{base, env_var, render, values_file};
use crate::common::{Seen, config_value_is, eventually};
use crate::fixtures;
use crate::status::file_on_branch;

/// Generous bound for a drift revert or a first status commit on a shared, slow machine.
const SOON: Duration = Duration::from_secs(60);

/// Install the rendered identities and permissions (ServiceAccounts, Roles, ClusterRoles and their bindings)
/// with the admin client, as `helm install` would.
pub(crate) async fn install_rbac(admin: &kube::Client, docs: &[Value], release_ns: &str) -> Result<()> {
    let mut resolver = Resolver::new(admin.clone());
    let rbac = [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
    ];
    for doc in docs.iter().filter(|d| rbac.iter().any(|k| d["kind"] == *k)) {
        let resolved = resolver
            .resolve(
                doc["apiVersion"].as_str().context("apiVersion")?,
                doc["kind"].as_str().context("kind")?,
            )
            .await?;
        let name = doc["metadata"]["name"].as_str().context("name")?;
        let api: Api<DynamicObject> = if resolved.namespaced() {
            let ns = doc["metadata"]["namespace"].as_str().unwrap_or(release_ns);
            Api::namespaced_with(admin.clone(), ns, &resolved.resource)
        } else {
            Api::all_with(admin.clone(), &resolved.resource)
        };
        api.patch(name, &PatchParams::apply("chart-test"), &Patch::Apply(doc))
            .await
            .with_context(|| format!("install {}/{name}", doc["kind"]))?;
    }
    Ok(())
}

/// A kubeconfig holding a token of `service_account` (in `release_ns`).
pub(crate) async fn kubeconfig_of(
    env: &KubeEnv,
    admin: &kube::Client,
    release_ns: &str,
    service_account: &str,
) -> Result<PathBuf> {
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), release_ns);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(vec!["https://kubernetes.default.svc".into()]),
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let token = sas
        .create_token_request(service_account, &Default::default(), &request)
        .await?
        .status
        .context("token status")?
        .token
        .context("no token issued")?;
    let path = outpost_tests::scratch_dir("sa-kubeconfig")?.join("kubeconfig");
    env.write_kubeconfig(&path, &token, release_ns)?;
    Ok(path)
}

/// The rendered workload running `container`, and that container.
pub(crate) fn workload_of<'a>(docs: &'a [Value], container: &str) -> Result<(&'a Value, &'a Value)> {
    docs.iter()
        .filter(|d| matches!(d["kind"].as_str(), Some("Deployment" | "DaemonSet")))
        .find_map(|d| {
            let cs = d["spec"]["template"]["spec"]["containers"].as_array()?;
            cs.iter().find(|c| c["name"] == container).map(|c| (d, c))
        })
        .with_context(|| format!("no workload runs a {container} container"))
}

/// `cmd` as the rendered `container` runs: the token of its workload's ServiceAccount, and the env that limits
/// its watches and elects its leader (each absent on charts that do not set it). Returns the kubeconfig.
async fn as_rendered(
    env: &KubeEnv,
    admin: &kube::Client,
    docs: &[Value],
    release_ns: &str,
    container: &str,
    cmd: &mut AgentCommand,
) -> Result<PathBuf> {
    let (workload, c) = workload_of(docs, container)?;
    let sa = workload["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .context("serviceAccountName")?;
    let kubeconfig = kubeconfig_of(env, admin, release_ns, sa).await?;
    cmd.env("KUBECONFIG", &kubeconfig);
    for name in [
        "OUTPOST_WATCH_NAMESPACES",
        "OUTPOST_LEADER_ELECTION",
        "OUTPOST_LEASE_NAME",
    ] {
        if let Some(value) = env_var(c, name) {
            cmd.env(name, value);
        }
    }
    Ok(kubeconfig)
}

/// `/readyz` and `/metrics` of a daemon.
async fn probe(daemon: &RunningAgent) -> (String, String) {
    let ready = daemon.get("/readyz").await.map(|(c, b)| format!("{c} {b}"));
    let metrics = daemon.get("/metrics").await.map(|(_, b)| b);
    (ready.unwrap_or_default(), metrics.unwrap_or_default())
}

/// Issue 12 item 10: with `rbac.mode=namespaced`, cluster-wide watches are forbidden. The chart now tells both
/// binaries which namespaces to watch: drift is reverted and status is written. Without that, the 403 is
/// reported on `/readyz` and in a metric instead of being retried in silence.
#[tokio::test]
async fn with_namespaced_rbac_drift_is_reverted_and_status_is_written() -> Result<()> {
    let env = kube_env();
    let admin = env.client().await?;
    let release_ns = create_namespace(&admin, "outpost").await?;
    let allowed = create_namespace(&admin, "allowed").await?;
    let file = values_file(&base(&format!(
        "rbac:\n  mode: namespaced\n  namespaces: [{allowed}]\n"
    )))?;
    let docs = render(&unique("rbac"), &release_ns, &file)?;
    install_rbac(&admin, &docs, &release_ns).await?;

    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("rbac-drift"))?;
    repo.write(
        &format!("clusters/{cluster}/app/cm.yaml"),
        &fixtures::config_map(&allowed, "settings", "ours"),
    )?;
    repo.commit("app")?;
    let mut agent = AgentCommand::new(env, &repo, &cluster, &release_ns, Transport::Https)?;
    as_rendered(env, &admin, &docs, &release_ns, "agent", &mut agent).await?;

    // The agent as an install without the watch list would run it: the 403 is reported, not hidden.
    let mut blind = agent.clone();
    blind.env("OUTPOST_WATCH_NAMESPACES", "");
    let blind = blind.spawn("1h")?;
    eventually(
        SOON,
        "a forbidden drift watch on /readyz and in the metric",
        || async {
            let (ready, metrics) = probe(&blind).await;
            let counted = metrics
                .lines()
                .any(|l| l.starts_with("outpost_drift_watches_unavailable{reason=\"forbidden\"} 1"));
            Ok(Seen::done_if(
                ready.starts_with("503") && ready.contains("forbidden by RBAC") && counted,
                format!("readyz: {ready}; counted: {counted}"),
            ))
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", blind.logs()))?;
    assert!(
        blind.logs().contains("forbidden by RBAC"),
        "no log line: {}",
        blind.logs()
    );
    drop(blind);

    // As the chart runs it: one watch per allowed namespace, and a hand edit is reverted (an hour between
    // polls, so the drift watch did it).
    let agent = agent.spawn("1h")?;
    agent.wait_ready(SOON).await?;
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), &allowed);
    let edit = serde_json::json!({"data": {"key": "theirs"}});
    cms.patch("settings", &PatchParams::default(), &Patch::Merge(&edit))
        .await?;
    eventually(SOON, "the hand edit to be reverted", || {
        config_value_is(&admin, &allowed, "settings", "ours")
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", agent.logs()))?;

    // The status writer, with the chart's RBAC for it, writes the bundle's status.
    let mut writer =
        AgentCommand::status_writer(git_servers(), env, &repo, &cluster, &release_ns, Transport::Https)?;
    as_rendered(env, &admin, &docs, &release_ns, "status-writer", &mut writer).await?;
    let writer = writer.spawn_with(&["--debounce", "500ms"])?;
    let path = format!("clusters/{cluster}/status/app/app-status.yaml");
    let text = eventually(SOON, "the status file", || async {
        Ok(file_on_branch(&repo, "main", &path)
            .map_or_else(|| Seen::Not("no status file".to_owned()), Seen::Done))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; writer log:\n{}", writer.logs()))?;
    assert!(text.contains("settings"), "{text}");
    // Both containers get the list from the chart.
    for name in ["agent", "status-writer"] {
        let (_, c) = workload_of(&docs, name)?;
        assert_eq!(
            env_var(c, "OUTPOST_WATCH_NAMESPACES"),
            Some(allowed.clone()),
            "{name}"
        );
    }
    Ok(())
}

/// The rendered ServiceAccount a workload runs as.
fn service_account(workload: &Value) -> Result<&str> {
    workload["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .context("serviceAccountName")
}

/// Issue 12 item 11, on rendered manifests: the status writer is its own one-replica Deployment with leader
/// election, under its own ServiceAccount, whose Roles and ClusterRoles read only (except its Lease); the
/// agent's pod has no status-writer container, and the writer's pod mounts no Secret but the Git credentials.
pub(crate) fn assert_status_writer_on_its_own(docs: &[Value]) -> Result<()> {
    let (writer, c) = workload_of(docs, "status-writer")?;
    let (agent, _) = workload_of(docs, "agent")?;
    ensure!(
        writer["kind"] == "Deployment",
        "the writer runs in a {}",
        writer["kind"]
    );
    ensure!(
        writer["spec"]["replicas"] == 1,
        "writer replicas: {}",
        writer["spec"]["replicas"]
    );
    let names = |w: &Value| -> Vec<String> {
        w["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect()
    };
    ensure!(
        names(agent) == ["agent"],
        "the agent's pod runs {:?}",
        names(agent)
    );
    ensure!(
        names(writer) == ["status-writer"],
        "the writer's pod runs {:?}",
        names(writer)
    );
    ensure!(
        env_var(c, "OUTPOST_LEADER_ELECTION").as_deref() == Some("true")
            && env_var(c, "OUTPOST_LEASE_NAME").is_some(),
        "the writer elects a leader through a Lease: {}",
        c["env"]
    );
    // The agent's selector must not match the writer's pods.
    let selector = agent["spec"]["selector"]["matchLabels"]
        .as_object()
        .context("selector")?;
    let labels = &writer["spec"]["template"]["metadata"]["labels"];
    ensure!(
        selector.iter().any(|(k, v)| labels[k] != *v),
        "the agent's selector {selector:?} matches the writer's pods {labels}"
    );
    let (sa, agent_sa) = (service_account(writer)?, service_account(agent)?);
    ensure!(
        sa != agent_sa,
        "the writer runs as the agent's ServiceAccount {sa}"
    );
    let pod = &writer["spec"]["template"]["spec"];
    ensure!(
        pod["automountServiceAccountToken"] == true,
        "the writer needs its own token"
    );
    let volumes = pod["volumes"].as_array().context("volumes")?;
    let secrets: Vec<&Value> = volumes.iter().filter(|v| !v["secret"].is_null()).collect();
    ensure!(
        secrets.len() == 1 && volumes.iter().all(|v| v["projected"].is_null()),
        "the writer mounts only the Git credentials Secret: {volumes:?}"
    );
    // Every role bound to the writer's ServiceAccount reads only, except on Leases (and Events).
    let bound = docs.iter().filter(|d| {
        matches!(d["kind"].as_str(), Some("RoleBinding" | "ClusterRoleBinding"))
            && d["subjects"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["name"] == sa))
    });
    let mut roles = 0;
    for binding in bound {
        let role_ref = &binding["roleRef"];
        let role = docs
            .iter()
            .find(|d| {
                d["kind"] == role_ref["kind"]
                    && d["metadata"]["name"] == role_ref["name"]
                    && d["metadata"]["namespace"] == binding["metadata"]["namespace"]
            })
            .with_context(|| format!("{} of {binding}", role_ref["name"]))?;
        roles += 1;
        for rule in role["rules"].as_array().context("rules")? {
            let resources = rule["resources"].as_array().context("resources")?;
            let exempt = resources.iter().all(|r| r == "leases" || r == "events");
            for verb in rule["verbs"].as_array().context("verbs")? {
                ensure!(
                    exempt || matches!(verb.as_str(), Some("get" | "list" | "watch")),
                    "{} {} lets the status writer {verb}: {rule}",
                    role["kind"],
                    role["metadata"]["name"]
                );
            }
        }
    }
    ensure!(roles > 0, "no role is bound to the writer's ServiceAccount {sa}");
    Ok(())
}

/// Issue 12 item 11, end to end with the default (cluster-admin) RBAC: the status writer, with its own
/// ServiceAccount and read-only RBAC as rendered, elects itself through its Lease and writes the status; its
/// token cannot change a managed object.
#[tokio::test]
async fn the_status_writer_writes_status_with_its_own_read_only_service_account() -> Result<()> {
    let env = kube_env();
    let admin = env.client().await?;
    let release_ns = create_namespace(&admin, "outpost").await?;
    let app = create_namespace(&admin, "app").await?;
    let docs = render(&unique("writer"), &release_ns, &values_file(&base(""))?)?;
    install_rbac(&admin, &docs, &release_ns).await?;

    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("rbac-writer"))?;
    repo.write(
        &format!("clusters/{cluster}/web/cm.yaml"),
        &fixtures::config_map(&app, "settings", "ours"),
    )?;
    repo.commit("web")?;
    let mut agent = AgentCommand::new(env, &repo, &cluster, &release_ns, Transport::Https)?;
    as_rendered(env, &admin, &docs, &release_ns, "agent", &mut agent).await?;
    let out = agent.once()?;
    ensure!(out.status.success(), "{}", output_text(&out));

    let mut writer =
        AgentCommand::status_writer(git_servers(), env, &repo, &cluster, &release_ns, Transport::Https)?;
    let kubeconfig = as_rendered(env, &admin, &docs, &release_ns, "status-writer", &mut writer).await?;
    let writer = writer.spawn_with(&["--debounce", "500ms"])?;
    let path = format!("clusters/{cluster}/status/web/web-status.yaml");
    let text = eventually(SOON, "the status file", || async {
        Ok(file_on_branch(&repo, "main", &path)
            .map_or_else(|| Seen::Not("no status file".to_owned()), Seen::Done))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; writer log:\n{}", writer.logs()))?;
    ensure!(text.contains("settings"), "{text}");

    // Its token reads, and writes nothing it could reach.
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig)?,
        &Default::default(),
    )
    .await?;
    let client = kube::Client::try_from(config)?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &app);
    ensure!(
        cms.get("settings").await.is_ok(),
        "the writer cannot read members"
    );
    let edit = serde_json::json!({"data": {"key": "theirs"}});
    let denied = cms
        .patch("settings", &PatchParams::default(), &Patch::Merge(&edit))
        .await;
    ensure!(
        matches!(&denied, Err(kube::Error::Api(s)) if s.code == 403),
        "the writer's token changed a managed object: {denied:?}"
    );
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client, &release_ns);
    let denied = secrets.delete("anything", &Default::default()).await;
    ensure!(
        matches!(&denied, Err(kube::Error::Api(s)) if s.code == 403),
        "the writer's token may delete Secrets in the agent's namespace: {denied:?}"
    );
    let (_, ready) = writer.get("/readyz").await?;
    ensure!(ready.contains("leader"), "the writer holds its Lease: {ready}");
    Ok(())
}
