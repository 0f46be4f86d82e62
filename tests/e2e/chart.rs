//! The Helm chart, linted and rendered by Helm v4 (helm_python_sdk), checked against the real API server.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use outpost_agent::resolve::Resolver;
use outpost_tests::agent::{AgentCommand, Transport, create_namespace, output_text};
use outpost_tests::process::run;
use outpost_tests::{git_servers, kube_env, tools, unique};
use serde_json::Value;

use crate::chart_rbac::workload_of;
use crate::common::config_value;
use crate::fixtures;

/// A value that must never leave the Secret.
const TOKEN: &str = "chart-test-token-9f8e7d6c5b4a";

fn chart_dir() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/outpost")).to_owned()
}

fn helm_script() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/env/helm_render.py")).to_owned()
}

/// Write `values` (YAML) to a file for the Helm scripts.
pub(crate) fn values_file(values: &str) -> Result<PathBuf> {
    let path = outpost_tests::scratch_dir("values")?.join("values.yaml");
    std::fs::write(&path, values)?;
    Ok(path)
}

/// `helm lint` (strict) with these values.
pub(crate) fn lint(values: &Path) -> Result<()> {
    let py = tools::helm_python()?;
    run(
        py.to_str().context("path")?,
        &[s(&helm_script()), "lint", s(&chart_dir()), s(values)],
        None,
    )
    .map(|_| ())
}

/// Render the chart: every manifest as JSON.
pub(crate) fn render(release: &str, namespace: &str, values: &Path) -> Result<Vec<Value>> {
    render_layers(release, namespace, &[values])
}

/// Render the chart with several values files, later ones overriding earlier ones (as `helm -f a -f b`).
fn render_layers(release: &str, namespace: &str, values: &[&Path]) -> Result<Vec<Value>> {
    let (py, script, chart) = (tools::helm_python()?, helm_script(), chart_dir());
    let mut args = vec![s(&script), "template", s(&chart), release, namespace];
    args.extend(values.iter().map(|v| s(v)));
    let out = run(py.to_str().context("path")?, &args, None)?;
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&out).with_context(|| format!("rendered YAML:\n{out}"))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Base values every case starts from.
pub(crate) fn base(extra: &str) -> String {
    format!(
        "git:\n  repo: https://git.example.invalid/fleet/resources.git\n  token: {TOKEN}\n  clustername: provider1+edge-7\n{extra}"
    )
}

/// Apply every document with server-side dry-run into `namespace`; namespaced objects without a namespace go
/// there, as `helm install -n` would do.
pub(crate) async fn dry_run(client: &kube::Client, docs: &[Value], namespace: &str) -> Result<()> {
    let mut resolver = Resolver::new(client.clone());
    for doc in docs {
        let api_version = doc["apiVersion"].as_str().context("apiVersion")?;
        let kind = doc["kind"].as_str().context("kind")?;
        let name = doc["metadata"]["name"].as_str().context("name")?;
        let resolved = resolver.resolve(api_version, kind).await?;
        let api: Api<DynamicObject> = if resolved.namespaced() {
            let ns = doc["metadata"]["namespace"].as_str().unwrap_or(namespace);
            Api::namespaced_with(client.clone(), ns, &resolved.resource)
        } else {
            Api::all_with(client.clone(), &resolved.resource)
        };
        api.patch(
            name,
            &PatchParams::apply("helm-test").dry_run(),
            &Patch::Apply(doc),
        )
        .await
        .with_context(|| format!("server-side dry-run of {kind}/{name}"))?;
    }
    Ok(())
}

/// Create the ServiceMonitor CRD (Prometheus operator) once, so its objects can be dry-run.
async fn ensure_service_monitor_crd(client: &kube::Client) -> Result<()> {
    let crd = serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
        "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced",
            "names": {"plural": "servicemonitors", "singular": "servicemonitor", "kind": "ServiceMonitor"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
    let api: Api<
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    > = Api::all(client.clone());
    api.patch(
        "servicemonitors.monitoring.coreos.com",
        &PatchParams::apply("chart-test").force(),
        &Patch::Apply(&crd),
    )
    .await?;
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        kube::runtime::wait::await_condition(
            api,
            "servicemonitors.monitoring.coreos.com",
            kube::runtime::wait::conditions::is_crd_established(),
        ),
    )
    .await??;
    Ok(())
}

pub(crate) fn containers(docs: &[Value]) -> Vec<&Value> {
    docs.iter()
        .filter(|d| matches!(d["kind"].as_str(), Some("Deployment" | "DaemonSet")))
        .flat_map(|d| {
            d["spec"]["template"]["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .collect()
}

pub(crate) fn env_var(container: &Value, name: &str) -> Option<String> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn the_chart_lints_renders_and_passes_server_side_dry_run_for_every_mode() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    ensure_service_monitor_crd(&client).await?;
    let (ns_a, ns_b) = (
        create_namespace(&client, "rbac-a").await?,
        create_namespace(&client, "rbac-b").await?,
    );
    let cases = [
        ("deployment", base("")),
        ("daemonset", base("kind: DaemonSet\n")),
        ("namespaced-rbac", base(&format!("rbac:\n  mode: namespaced\n  namespaces: [{ns_a}, {ns_b}]\n"))),
        (
            "existing-secret",
            "git:\n  repo: https://git.example.invalid/r.git\n  existingSecret: my-git\n  existingSecretKeys: [token, ca.crt]\n  clustername: c1\n".to_owned(),
        ),
        (
            "separate-control-repo",
            base("statusGit:\n  repo: https://control.example.invalid/status.git\n  token: other-control-token\n  branch: provider1+edge-7\n"),
        ),
        ("monitoring", base("metrics:\n  serviceMonitor: {enabled: true}\ngrafana:\n  dashboard: {enabled: true}\n")),
        (
            "ssh",
            "git:\n  repo: ssh://git@git.example.invalid/fleet.git\n  clustername: c1\n  ssh:\n    privateKey: KEY\n    knownHosts: 'git.example.invalid ssh-ed25519 AAAA'\n".to_owned(),
        ),
        ("replicas", base("replicas: 2\nproxy: \"\"\n").replace("proxy: \"\"\n", "")),
        ("cascading-prune", base("allowCascadingPrune: true\n")),
    ];
    for (name, values) in cases {
        let file = values_file(&values)?;
        lint(&file).with_context(|| format!("lint {name}"))?;
        let release = unique(name);
        let ns = create_namespace(&client, "release").await?;
        let docs = render(&release, &ns, &file).with_context(|| format!("render {name}"))?;
        let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        let workload = if name == "daemonset" {
            "DaemonSet"
        } else {
            "Deployment"
        };
        assert!(kinds.contains(&workload), "{name}: no {workload} in {kinds:?}");
        if name == "monitoring" {
            assert!(
                kinds.contains(&"ServiceMonitor") && kinds.contains(&"ConfigMap"),
                "{name}: {kinds:?}"
            );
            let dashboard = docs
                .iter()
                .find(|d| d["kind"] == "ConfigMap")
                .context("dashboard")?;
            let json: Value =
                serde_json::from_str(dashboard["data"]["outpost.json"].as_str().context("json")?)?;
            assert!(
                json["panels"].as_array().is_some_and(|p| p.len() >= 6),
                "{name}: dashboard panels"
            );
        }
        if name == "namespaced-rbac" {
            let roles: Vec<&str> = docs
                .iter()
                .filter(|d| d["kind"] == "Role")
                .filter_map(|d| d["metadata"]["namespace"].as_str())
                .collect();
            assert!(
                roles.contains(&ns_a.as_str()) && roles.contains(&ns_b.as_str()),
                "{roles:?}"
            );
            assert!(
                !kinds.contains(&"ClusterRoleBinding"),
                "namespaced mode must not bind cluster-wide"
            );
        }
        let leader = env_var(workload_of(&docs, "agent")?.1, "OUTPOST_LEADER_ELECTION");
        let expected = if matches!(name, "daemonset" | "replicas") {
            "true"
        } else {
            "false"
        };
        assert_eq!(
            leader.as_deref(),
            Some(expected),
            "{name}: the agent's leader election"
        );
        crate::chart_rbac::assert_status_writer_on_its_own(&docs).with_context(|| name.to_owned())?;
        let cascade = containers(&docs)
            .iter()
            .filter_map(|c| env_var(c, "OUTPOST_ALLOW_CASCADING_PRUNE"))
            .collect::<Vec<_>>();
        let expected = if name == "cascading-prune" {
            "true"
        } else {
            "false"
        };
        assert_eq!(cascade, [expected], "{name}: the agent's --allow-cascading-prune");
        dry_run(&client, &docs, &ns)
            .await
            .with_context(|| format!("dry-run {name}"))?;
    }
    Ok(())
}

#[tokio::test]
async fn the_token_stays_in_the_secret_and_pods_run_locked_down() -> Result<()> {
    let file = values_file(&base(
        "statusGit:\n  token: second-secret-token-1234\n  repo: https://c.example.invalid/s.git\n",
    ))?;
    let docs = render("tok", "outpost-system", &file)?;
    for doc in &docs {
        let text = serde_json::to_string(doc)?;
        for secret in [TOKEN, "second-secret-token-1234"] {
            if text.contains(secret) {
                assert_eq!(
                    doc["kind"], "Secret",
                    "the token appears in a {}: {text}",
                    doc["kind"]
                );
            }
        }
    }
    let secrets = docs.iter().filter(|d| d["kind"] == "Secret").count();
    assert_eq!(secrets, 2, "one Secret per repository's credentials");
    for name in ["agent", "status-writer"] {
        let pod = &workload_of(&docs, name)?.0["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{name}"
        );
    }
    let cs = containers(&docs);
    assert_eq!(
        cs.len(),
        2,
        "the agent and the status writer, each in its own pod"
    );
    for c in cs {
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{c}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{c}");
        assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]), "{c}");
        assert!(
            env_var(c, "OUTPOST_GIT_TOKEN_FILE").is_some_and(|f| f.ends_with("/token")),
            "{c}"
        );
        assert!(c["args"].is_null(), "no args: {c}");
    }
    // Missing required values are refused with a message naming them.
    let bad = values_file("git:\n  repo: https://x.invalid/r.git\n")?;
    let err = render("bad", "ns", &bad).expect_err("clustername is required");
    assert!(format!("{err:#}").contains("clustername"), "{err:#}");
    Ok(())
}

#[tokio::test]
async fn with_namespaced_rbac_allowed_objects_sync_and_forbidden_ones_fail_clearly() -> Result<()> {
    let env = kube_env();
    let admin = env.client().await?;
    let release_ns = create_namespace(&admin, "outpost").await?;
    let (allowed, forbidden) = (
        create_namespace(&admin, "allowed").await?,
        create_namespace(&admin, "forbidden").await?,
    );
    let file = values_file(&base(&format!(
        "rbac:\n  mode: namespaced\n  namespaces: [{allowed}]\n"
    )))?;
    let release = unique("rbac");
    let docs = render(&release, &release_ns, &file)?;
    // Install the chart's identity and permissions for real.
    let mut resolver = Resolver::new(admin.clone());
    for doc in docs.iter().filter(|d| {
        matches!(
            d["kind"].as_str(),
            Some("ServiceAccount" | "Role" | "RoleBinding")
        )
    }) {
        let resolved = resolver
            .resolve(
                doc["apiVersion"].as_str().context("v")?,
                doc["kind"].as_str().context("k")?,
            )
            .await?;
        let ns = doc["metadata"]["namespace"].as_str().unwrap_or(&release_ns);
        let api: Api<DynamicObject> = Api::namespaced_with(admin.clone(), ns, &resolved.resource);
        let name = doc["metadata"]["name"].as_str().context("name")?;
        api.patch(name, &PatchParams::apply("chart-test"), &Patch::Apply(doc))
            .await?;
    }
    let sa_name = workload_of(&docs, "agent")?.0["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .context("service account")?;
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), &release_ns);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(vec!["https://kubernetes.default.svc".into()]),
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let token = sas
        .create_token_request(sa_name, &Default::default(), &request)
        .await?
        .status
        .context("token status")?
        .token
        .context("no token issued")?;
    let kubeconfig = outpost_tests::scratch_dir("sa-kubeconfig")?.join("kubeconfig");
    env.write_kubeconfig(&kubeconfig, &token, &release_ns)?;

    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("rbac"))?;
    repo.write(
        &format!("clusters/{cluster}/app/ok.yaml"),
        &fixtures::config_map(&allowed, "ok", "1"),
    )?
    .write(
        &format!("clusters/{cluster}/app/nope.yaml"),
        &fixtures::config_map(&forbidden, "nope", "1"),
    )?;
    repo.commit("one allowed, one forbidden")?;
    let mut agent = AgentCommand::new(env, &repo, &cluster, &release_ns, Transport::Https)?;
    agent.env("KUBECONFIG", &kubeconfig);
    let out = agent.once()?;
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("forbidden by RBAC"), "no clear RBAC error: {text}");
    assert!(
        text.contains(&format!("clusters/{cluster}/app/nope.yaml")),
        "the file is not named: {text}"
    );
    assert!(!text.contains("panicked"), "the agent crashed: {text}");
    assert_eq!(
        config_value(&admin, &allowed, "ok").await?.as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(config_value(&admin, &forbidden, "nope").await?, None);
    if text.contains(TOKEN) || text.contains(&token) {
        bail!("a token leaked: {text}");
    }
    Ok(())
}

#[test]
fn a_local_path_mirror_needs_no_url_for_the_agent() -> Result<()> {
    let file = values_file(
        "git:\n  clustername: c1\n  enabled: false\n  localPath:\n    enabled: true\n    path: /srv/git/r.git\n    volume: {hostPath: {path: /var/lib/mirror, type: Directory}}\n",
    )?;
    lint(&file)?;
    let docs = render("local", "outpost-system", &file)?;
    let cs = containers(&docs);
    assert_eq!(cs.len(), 1, "no status writer when git.enabled=false");
    assert_eq!(
        env_var(cs[0], "OUTPOST_GIT_URL").as_deref(),
        Some("/srv/git/r.git")
    );
    let mounts = serde_json::to_string(&cs[0]["volumeMounts"])?;
    assert!(mounts.contains("/srv/git/r.git"), "{mounts}");
    Ok(())
}

#[test]
fn removable_media_is_mounted_into_both_pods_so_media_plugged_in_later_is_seen() -> Result<()> {
    let file = values_file(
        "git:\n  clustername: c1\n  repo: /media/outpost/fleet.git\nstatusGit:\n  repo: /media/outpost/status.git\nmedia:\n  enabled: true\n  hostPath: /media/outpost\n",
    )?;
    lint(&file)?;
    let docs = render("media", "outpost-system", &file)?;
    let (agent, writer) = (container(&docs, "agent")?, container(&docs, "status-writer")?);
    assert_eq!(
        env_var(agent, "OUTPOST_GIT_URL").as_deref(),
        Some("/media/outpost/fleet.git")
    );
    assert_eq!(
        env_var(writer, "OUTPOST_GIT_URL").as_deref(),
        Some("/media/outpost/status.git")
    );
    for (c, read_only) in [(agent, true), (writer, false)] {
        let mount = c["volumeMounts"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["name"] == "media"))
            .with_context(|| format!("no media mount in {c}"))?;
        assert_eq!(mount["mountPath"], "/media/outpost", "{mount}");
        assert_eq!(mount["mountPropagation"], "HostToContainer", "{mount}");
        assert_eq!(mount["readOnly"], read_only, "{mount}");
    }
    let volumes: Vec<&Value> = docs
        .iter()
        .filter_map(|d| d["spec"]["template"]["spec"]["volumes"].as_array())
        .flatten()
        .filter(|v| v["name"] == "media")
        .collect();
    assert_eq!(volumes.len(), 2, "one media volume per pod: {volumes:?}");
    for v in volumes {
        assert_eq!(v["hostPath"]["path"], "/media/outpost", "{v}");
    }
    let refused = values_file("git:\n  clustername: c1\nmedia:\n  enabled: true\n  hostPath: media\n")?;
    assert!(lint(&refused).is_err(), "a relative host path was accepted");
    Ok(())
}

/// EMCO's monitor chart defaults, verbatim (emco-base `deployments/helm/monitor/values.yaml` at f12558f): an EMCO
/// user's values file is this file edited, or layered under their own.
const EMCO_MONITOR_DEFAULTS: &str = r#"# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2022 Intel Corporation

repository: registry.gitlab.com/project-emco/core/emco-base/
image: emco-monitor
emcoTag: "latest" # can be overridden with $ helm install --set emcoTag=22.03 emco-monitor (...)

workingDir: /opt/emco/monitor
git:
  enabled: false
  gittype: ""

noProxyHosts: ""
httpProxy: ""
httpsProxy: ""
"#;

fn emco_example() -> PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/emco-monitor-values.yaml"
    ))
    .to_owned()
}

/// The container of this name.
fn container<'a>(docs: &'a [Value], name: &str) -> Result<&'a Value> {
    containers(docs)
        .into_iter()
        .find(|c| c["name"] == name)
        .with_context(|| format!("no {name} container"))
}

/// Assert literal env values of one container (`None`: the variable must be absent).
fn assert_env(c: &Value, expected: &[(&str, Option<&str>)]) {
    for (name, value) in expected {
        assert_eq!(
            env_var(c, name).as_deref(),
            *value,
            "{} container, {name}: {}",
            c["name"],
            c["env"]
        );
    }
}

/// The chart's appVersion, the default image tag.
fn app_version() -> Result<String> {
    let chart = std::fs::read_to_string(chart_dir().join("Chart.yaml"))?;
    let chart: Value = serde_saphyr::from_str(&chart)?;
    Ok(chart["appVersion"].as_str().context("appVersion")?.to_owned())
}

/// Lint, render and server-side dry-run one set of values files in a fresh namespace.
async fn render_and_dry_run(client: &kube::Client, name: &str, layers: &[&Path]) -> Result<Vec<Value>> {
    let (py, script, chart) = (tools::helm_python()?, helm_script(), chart_dir());
    let mut args = vec![s(&script), "lint", s(&chart)];
    args.extend(layers.iter().map(|v| s(v)));
    run(py.to_str().context("path")?, &args, None).with_context(|| format!("lint {name}"))?;
    let ns = create_namespace(client, "emco").await?;
    let docs = render_layers(&unique(name), &ns, layers).with_context(|| format!("render {name}"))?;
    dry_run(client, &docs, &ns)
        .await
        .with_context(|| format!("dry-run {name}"))?;
    Ok(docs)
}

#[tokio::test]
async fn an_emco_monitor_values_file_installs_outpost_with_the_same_meaning() -> Result<()> {
    let client = kube_env().client().await?;
    let image = format!("ghcr.io/outpost-dev/outpost:{}", app_version()?);
    let defaults = values_file(EMCO_MONITOR_DEFAULTS)?;
    let example = emco_example();
    // The example alone, and layered over EMCO's own chart defaults, mean the same.
    for (name, layers) in [
        ("emco-example", vec![example.as_path()]),
        ("emco-over-defaults", vec![defaults.as_path(), example.as_path()]),
    ] {
        let docs = render_and_dry_run(&client, name, &layers).await?;
        let (agent, writer) = (container(&docs, "agent")?, container(&docs, "status-writer")?);
        // git2go mode: EMCO's monitor clones git.giturl as given; git.repo only names its clone directory.
        let url = "https://git.example.com/fleet-owner/emco-fleet";
        assert_env(
            agent,
            &[
                ("OUTPOST_GIT_URL", Some(url)),
                ("OUTPOST_GIT_REF", Some("main")),
                ("OUTPOST_GIT_USERNAME", Some("fleet-owner")),
                ("OUTPOST_GIT_TOKEN_FILE", Some("/etc/outpost/git/token")),
                ("OUTPOST_CLUSTER", Some("provider1+edge-17")),
            ],
        );
        // One repository holds resources and status; rsync's git2go mode reads the branch named after the cluster.
        assert_env(
            writer,
            &[
                ("OUTPOST_GIT_URL", Some(url)),
                ("OUTPOST_GIT_BRANCH", Some("{cluster}")),
                ("OUTPOST_GIT_USERNAME", Some("fleet-owner")),
                ("OUTPOST_GIT_TOKEN_FILE", Some("/etc/outpost/status-git/token")),
                ("OUTPOST_CLUSTER", Some("provider1+edge-17")),
            ],
        );
        for c in [agent, writer] {
            assert_env(
                c,
                &[
                    ("HTTP_PROXY", Some("http://proxy.example.com:3128")),
                    ("HTTPS_PROXY", Some("http://proxy.example.com:3129")),
                    (
                        "NO_PROXY",
                        Some(
                            "kubernetes.default.svc,.svc,.cluster.local,git.internal.example.com,10.0.0.0/8",
                        ),
                    ),
                ],
            );
            // EMCO's image, repository, emcoTag and workingDir are ignored.
            assert_eq!(c["image"], image.as_str(), "{name}: {c}");
            assert_eq!(c["imagePullPolicy"], "IfNotPresent", "{name}");
            let text = serde_json::to_string(c)?;
            for ignored in ["emco-monitor", "registry.gitlab.com", "/opt/emco", "22.09"] {
                assert!(
                    !text.contains(ignored),
                    "{name}: {ignored} reached the pod: {text}"
                );
            }
        }
        // The token stays in the Secret.
        for doc in docs.iter().filter(|d| d["kind"] != "Secret") {
            assert!(
                !serde_json::to_string(doc)?.contains("replace-with-a-token"),
                "{doc}"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn emco_github_mode_uses_the_owner_and_repository_name_as_emcos_monitor_does() -> Result<()> {
    let client = kube_env().client().await?;
    let example = emco_example();
    // EMCO's monitor in github mode talks to github.com for owner git.username and repository git.repo; it never
    // reads git.giturl. rsync then reads one status branch per cluster and app.
    let github = values_file(
        "git:\n  gittype: GitHub\n  giturl: https://git.example.com/not-read\n  repo: fleet\n  username: owner-1\n  gitbranch: edge\n",
    )?;
    let docs = render_and_dry_run(&client, "emco-github", &[example.as_path(), github.as_path()]).await?;
    let (agent, writer) = (container(&docs, "agent")?, container(&docs, "status-writer")?);
    assert_env(
        agent,
        &[
            ("OUTPOST_GIT_URL", Some("https://github.com/owner-1/fleet")),
            ("OUTPOST_GIT_REF", Some("edge")),
            ("OUTPOST_GIT_USERNAME", Some("owner-1")),
        ],
    );
    assert_env(
        writer,
        &[
            ("OUTPOST_GIT_URL", Some("https://github.com/owner-1/fleet")),
            ("OUTPOST_GIT_BRANCH", Some("{cluster}-{cid}-{app}")),
        ],
    );
    // Our own names override: a status branch and a separate control repository.
    let own = values_file(
        "git:\n  gittype: github\n  repo: fleet\n  username: owner-1\nstatusGit:\n  branch: status-{cluster}\n  repo: https://control.example.invalid/status.git\n",
    )?;
    let docs = render_and_dry_run(&client, "emco-own", &[example.as_path(), own.as_path()]).await?;
    assert_env(
        container(&docs, "agent")?,
        &[("OUTPOST_GIT_URL", Some("https://github.com/owner-1/fleet"))],
    );
    assert_env(
        container(&docs, "status-writer")?,
        &[
            (
                "OUTPOST_GIT_URL",
                Some("https://control.example.invalid/status.git"),
            ),
            ("OUTPOST_GIT_BRANCH", Some("status-{cluster}")),
        ],
    );
    Ok(())
}

#[tokio::test]
async fn emco_git_enabled_false_turns_off_only_the_status_writer() -> Result<()> {
    let client = kube_env().client().await?;
    let example = emco_example();
    let off = values_file("git:\n  enabled: false\n")?;
    let docs = render_and_dry_run(&client, "emco-off", &[example.as_path(), off.as_path()]).await?;
    let names: Vec<&Value> = containers(&docs).iter().map(|c| &c["name"]).collect();
    assert_eq!(names, ["agent"], "the agent alone runs");
    let writer_objects: Vec<&Value> = docs
        .iter()
        .filter(|d| {
            d["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.contains("status-writer") || n.contains("status-metrics"))
        })
        .collect();
    assert!(
        writer_objects.is_empty(),
        "nothing of the status writer: {writer_objects:?}"
    );
    assert_env(
        container(&docs, "agent")?,
        &[
            (
                "OUTPOST_GIT_URL",
                Some("https://git.example.com/fleet-owner/emco-fleet"),
            ),
            ("OUTPOST_GIT_REF", Some("main")),
            ("HTTPS_PROXY", Some("http://proxy.example.com:3129")),
        ],
    );
    Ok(())
}

#[test]
fn misspelt_values_are_rejected_not_ignored() -> Result<()> {
    // EMCO-style values; indented lines go into git:, the others are top-level keys.
    let emco = "git:\n  giturl: https://git.example.invalid/o/r\n  repo: r\n  clustername: c1\n";
    let cases = [
        ("  gitbrach: main\n", "gitbrach"),
        ("  gittype: gihub\n", "gihub"),
        ("  ssh:\n    privatekey: x\n", "privatekey"),
        ("gitt:\n  repo: x\n", "gitt"),
        ("httpsproxy: http://p.invalid\n", "httpsproxy"),
        ("statusGit:\n  brnch: x\n", "brnch"),
        ("outpostImage:\n  tga: v1\n", "tga"),
        ("image:\n  repository: r\n  tga: v1\n", "tga"),
        ("metrics:\n  serviceMonitor:\n    enabeld: true\n", "enabeld"),
        ("resources:\n  agnet: {}\n", "agnet"),
        (
            "securityContext:\n  readOnlyRootFileSystem: true\n",
            "readOnlyRootFileSystem",
        ),
    ];
    for (extra, word) in cases {
        let values = format!("{emco}{extra}");
        let file = values_file(&values)?;
        let err = render("typo", "ns", &file).expect_err(&format!("accepted {word}:\n{values}"));
        assert!(format!("{err:#}").contains(word), "{word}: {err:#}");
        assert!(lint(&file).is_err(), "lint accepted {word}");
    }
    // EMCO's keys, all of them, are accepted (emcoTag as --set makes it: a number).
    let defaults = values_file(EMCO_MONITOR_DEFAULTS)?;
    let tag = values_file("emcoTag: 22.03\n")?;
    let example = emco_example();
    render_layers(
        "emco",
        "ns",
        &[defaults.as_path(), example.as_path(), tag.as_path()],
    )?;
    Ok(())
}

#[test]
fn conflicting_or_misread_emco_values_are_refused_with_the_reason() -> Result<()> {
    let cases = [
        (
            "git:\n  giturl: https://h.invalid/o/r\n  repo: https://h.invalid/o/r\n  clustername: c1\n",
            "repository name",
        ),
        (
            "git:\n  giturl: https://h.invalid/o/r\n  gittype: github\n  clustername: c1\n",
            "git.repo",
        ),
        (
            "git:\n  giturl: https://h.invalid/o/r\n  branch: a\n  gitbranch: b\n  clustername: c1\n",
            "disagree",
        ),
    ];
    for (values, reason) in cases {
        let file = values_file(values)?;
        let err = render("bad", "ns", &file).expect_err(values);
        assert!(format!("{err:#}").contains(reason), "{values}: {err:#}");
    }
    Ok(())
}

#[test]
fn existing_outpost_values_render_as_before() -> Result<()> {
    // Outpost's own names: git.repo a URL, git.branch, git.proxy, statusGit.*, and the image map the chart used
    // before outpostImage. The expected values are what the chart rendered before EMCO's names were added.
    let file = values_file(&format!(
        "git:\n  repo: https://git.example.invalid/fleet/resources.git\n  branch: release-1\n  username: robot\n  token: {TOKEN}\n  clustername: provider1+edge-7\n  proxy: http://proxy.invalid:3128\n  noProxy: git.internal.invalid\nstatusGit:\n  repo: https://control.example.invalid/status.git\nimage:\n  repository: registry.example.invalid/outpost\n  tag: v9\n  pullPolicy: Always\n"
    ))?;
    lint(&file)?;
    let docs = render("rel", "ns", &file)?;
    let proxies = [
        ("HTTPS_PROXY", Some("http://proxy.invalid:3128")),
        ("HTTP_PROXY", Some("http://proxy.invalid:3128")),
        (
            "NO_PROXY",
            Some("kubernetes.default.svc,.svc,.cluster.local,git.internal.invalid"),
        ),
    ];
    let agent = container(&docs, "agent")?;
    assert_env(
        agent,
        &[
            (
                "OUTPOST_GIT_URL",
                Some("https://git.example.invalid/fleet/resources.git"),
            ),
            ("OUTPOST_GIT_REF", Some("release-1")),
            ("OUTPOST_GIT_USERNAME", Some("robot")),
            ("OUTPOST_GIT_TOKEN_FILE", Some("/etc/outpost/git/token")),
        ],
    );
    assert_env(agent, &proxies);
    let writer = container(&docs, "status-writer")?;
    assert_env(
        writer,
        &[
            (
                "OUTPOST_GIT_URL",
                Some("https://control.example.invalid/status.git"),
            ),
            ("OUTPOST_GIT_BRANCH", Some("release-1")),
            ("OUTPOST_GIT_USERNAME", Some("robot")),
        ],
    );
    assert_env(writer, &proxies);
    for c in [agent, writer] {
        assert_eq!(c["image"], "registry.example.invalid/outpost:v9", "{c}");
        assert_eq!(c["imagePullPolicy"], "Always", "{c}");
    }
    let (deployment, _) = workload_of(&docs, "agent")?;
    assert_eq!(
        deployment["spec"]["template"]["metadata"]["annotations"]["checksum/values"], "6f941e1f3f3b1a68",
        "existing installs keep their pod template hash (it changes when a key is added to git.* in values.yaml; it changed once when the token and SSH key left it, and once with git.caOnly in chart 0.3.0, whose pod template changes anyway)"
    );
    // Defaults: one repository and one branch for both, no proxy, Outpost's image.
    let docs = render("rel", "ns", &values_file(&base(""))?)?;
    let url = Some("https://git.example.invalid/fleet/resources.git");
    assert_env(
        container(&docs, "agent")?,
        &[
            ("OUTPOST_GIT_URL", url),
            ("OUTPOST_GIT_REF", Some("main")),
            ("HTTPS_PROXY", None),
            ("NO_PROXY", None),
        ],
    );
    assert_env(
        container(&docs, "status-writer")?,
        &[("OUTPOST_GIT_URL", url), ("OUTPOST_GIT_BRANCH", Some("main"))],
    );
    assert_eq!(
        container(&docs, "agent")?["image"],
        format!("ghcr.io/outpost-dev/outpost:{}", app_version()?).as_str()
    );
    Ok(())
}

/// Issue 12 item 14: no hash of the token or the SSH key in the pod template, where anyone allowed to read
/// pods could test guesses against it; a real setting still rolls the pods.
#[test]
fn pod_annotations_carry_no_hash_of_the_token_or_the_ssh_key() -> Result<()> {
    let annotations = |values: &str| -> Result<Value> {
        let docs = render("rel", "ns", &values_file(values)?)?;
        let mut annotations = Vec::new();
        for name in ["agent", "status-writer"] {
            let (workload, _) = workload_of(&docs, name)?;
            annotations.push(workload["spec"]["template"]["metadata"]["annotations"].clone());
        }
        Ok(Value::Array(annotations))
    };
    let with = |token: &str, key: &str, branch: &str| {
        format!(
            "git:\n  repo: ssh://git@git.example.invalid/fleet/resources.git\n  token: {token}\n  branch: {branch}\n  clustername: provider1+edge-7\n  ssh:\n    privateKey: {key}\n    knownHosts: host ssh-ed25519 AAAA\n"
        )
    };
    let first = annotations(&with("token-one", "key-one", "main"))?;
    let rotated = annotations(&with("token-two", "key-two", "main"))?;
    assert_eq!(
        first, rotated,
        "the pod template changed with the token or the SSH key alone"
    );
    for secret in ["token-one", "key-one"] {
        assert!(!first.to_string().contains(secret), "{first}");
    }
    let moved = annotations(&with("token-one", "key-one", "release-2"))?;
    assert_ne!(first, moved, "a new branch must still roll the pods");
    Ok(())
}
