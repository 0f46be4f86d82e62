//! Adoption without recreation: objects another tool created — real `kubectl apply` (client-side), `kubectl
//! apply --server-side` as Helm's field manager, a server-side apply as Flux's kustomize-controller — are taken
//! over by the agent's first sync: same uid, no field Git declares lost or duplicated, the other tools' fields
//! ours, kubectl's last-applied annotation gone; a later commit that drops a field removes it, and one that drops
//! the object prunes it. Fields of managers that are not deployment tools (a controller) stay theirs.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};
use kube::api::{Api, Patch, PatchParams};
use outpost_tests::agent::{AgentCommand, Transport, create_namespace, output_text};
use outpost_tests::{TestRepo, git_servers, kube_env, scratch_dir, tools, unique};

/// kubectl's annotation holding what it last applied.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A ConfigMap with labels and data, as YAML.
fn config_map(ns: &str, name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> String {
    let map = |pairs: &[(&str, &str)]| {
        let items: Vec<String> = pairs.iter().map(|(k, v)| format!("{k:?}: {v:?}")).collect();
        format!("{{{}}}", items.join(", "))
    };
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {}\ndata: {}\n",
        map(labels),
        map(data)
    )
}

/// A Deployment of two containers; the first has a port and the env vars `env`; `extra_label` goes on the
/// Deployment's own labels.
fn deployment(ns: &str, env: &[&str], extra_label: Option<&str>) -> String {
    let env: Vec<String> = env
        .iter()
        .map(|n| format!("        - {{name: {n}, value: \"{n}-value\"}}\n"))
        .collect();
    let extra = extra_label.map_or(String::new(), |l| format!(", {l}: \"yes\""));
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
  labels: {{app: web{extra}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: app
        image: registry.example/app:1
        ports: [{{containerPort: 8080}}]
        env:
{}      - name: sidecar
        image: registry.example/sidecar:1
"#,
        env.concat()
    )
}

/// `kubectl apply` of `manifest` with `flags` (client-side unless they say otherwise); fails on a non-zero exit.
fn kubectl_apply(manifest: &str, flags: &[&str]) -> Result<()> {
    let dir = scratch_dir("kubectl-apply")?;
    let file = dir.join("manifest.yaml");
    std::fs::write(&file, manifest)?;
    let out = std::process::Command::new(tools::kubectl()?)
        .env("KUBECONFIG", &kube_env().kubeconfig)
        .arg("apply")
        .args(flags)
        .arg("-f")
        .arg(&file)
        .output()?;
    anyhow::ensure!(out.status.success(), "kubectl apply: {}", output_text(&out));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// The managers of an object as `manager/Operation`, sorted.
fn managers(meta: &ObjectMeta) -> Vec<String> {
    let mut out: Vec<String> = meta
        .managed_fields
        .iter()
        .flatten()
        .map(|e| {
            format!(
                "{}/{}",
                e.manager.clone().unwrap_or_default(),
                e.operation.clone().unwrap_or_default()
            )
        })
        .collect();
    out.sort();
    out
}

/// Our Apply entry's fields.
fn our_fields(meta: &ObjectMeta) -> Result<serde_json::Value> {
    meta.managed_fields
        .iter()
        .flatten()
        .find(|e: &&ManagedFieldsEntry| {
            e.manager.as_deref() == Some("outpost") && e.operation.as_deref() == Some("Apply")
        })
        .and_then(|e| e.fields_v1.as_ref().map(|f| f.0.clone()))
        .context("no Apply entry of outpost")
}

/// Labels without the ApplySet `part-of` label the agent adds.
fn own_labels(meta: &ObjectMeta) -> BTreeMap<String, String> {
    let mut labels = meta.labels.clone().unwrap_or_default();
    labels.remove("applyset.kubernetes.io/part-of");
    labels
}

/// One `--once` sync that must succeed.
fn sync(agent: &AgentCommand) -> Result<()> {
    let out = agent.once()?;
    anyhow::ensure!(out.status.success(), "{}", output_text(&out));
    Ok(())
}

/// Write `files` (path under the bundle directory, content) and commit them.
fn commit(repo: &TestRepo, dir: &str, files: &[(&str, &str)], message: &str) -> Result<()> {
    for (path, content) in files {
        repo.write(&format!("{dir}/{path}"), content)?;
    }
    repo.commit(message)?;
    Ok(())
}

#[tokio::test]
async fn objects_kubectl_applied_client_side_are_adopted_and_later_removals_take_effect() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "adopt-csa").await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);

    // What a person (or EMCO's Flux before SSA) applied with kubectl: one label more than Git declares.
    let by_kubectl = config_map(
        &ns,
        "settings",
        &[("team", "blue"), ("from-kubectl", "yes")],
        &[("keep", "1"), ("drop", "2")],
    );
    kubectl_apply(&by_kubectl, &[])?;
    kubectl_apply(&deployment(&ns, &["KEEP", "DROP"], Some("from-kubectl")), &[])?;
    let cm_uid = cms.get("settings").await?.metadata.uid;
    let deploy_uid = deployments.get("web").await?.metadata.uid;
    assert!(
        managers(&cms.get("settings").await?.metadata)
            .contains(&"kubectl-client-side-apply/Update".to_owned())
    );

    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("adopt-csa"))?;
    let dir = format!("clusters/{cluster}/app");
    let in_git = config_map(
        &ns,
        "settings",
        &[("team", "blue")],
        &[("keep", "1"), ("drop", "2")],
    );
    commit(
        &repo,
        &dir,
        &[
            ("settings.yaml", &in_git),
            ("web.yaml", &deployment(&ns, &["KEEP", "DROP"], None)),
        ],
        "what kubectl applied, without its extra label",
    )?;
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;

    // plan shows the adoption and what it removes, and changes nothing.
    let out = agent.subcommand("plan")?;
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    for line in [
        format!("~ adopt ConfigMap/{ns}/settings (taking over the fields of kubectl-client-side-apply)"),
        format!("~ adopt Deployment.apps/{ns}/web (taking over the fields of kubectl-client-side-apply)"),
        "metadata.labels.from-kubectl: \"yes\" -> (absent)".to_owned(),
        "0 to create, 2 to update, 0 to prune, 0 invalid.".to_owned(),
    ] {
        assert!(text.contains(&line), "plan output lacks {line:?}:\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.contains(LAST_APPLIED) && l.ends_with("-> (absent)")),
        "plan does not show the last-applied annotation going:\n{text}"
    );
    assert!(
        own_labels(&cms.get("settings").await?.metadata).contains_key("from-kubectl"),
        "plan changed the object"
    );

    sync(&agent)?;
    let cm = cms.get("settings").await?;
    assert_eq!(cm.metadata.uid, cm_uid, "the ConfigMap was recreated");
    assert_eq!(
        cm.data.clone().unwrap_or_default(),
        BTreeMap::from([("keep".into(), "1".into()), ("drop".into(), "2".into())])
    );
    assert_eq!(
        own_labels(&cm.metadata),
        BTreeMap::from([("team".into(), "blue".into())])
    );
    assert!(
        !cm.metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .contains_key(LAST_APPLIED),
        "kubectl's last-applied annotation is still there: {:?}",
        cm.metadata.annotations
    );
    assert_eq!(managers(&cm.metadata), ["outpost/Apply"]);
    assert_eq!(
        our_fields(&cm.metadata)?["f:data"]["f:drop"],
        serde_json::json!({})
    );

    let web = deployments.get("web").await?;
    assert_eq!(web.metadata.uid, deploy_uid, "the Deployment was recreated");
    assert_eq!(managers(&web.metadata), ["outpost/Apply"]);
    assert_eq!(
        own_labels(&web.metadata),
        BTreeMap::from([("app".into(), "web".into())])
    );
    let spec = web.spec.clone();
    assert_eq!(spec.replicas, Some(2));
    let containers = spec.template.spec.context("pod spec")?.containers;
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["app", "sidecar"], "containers lost or duplicated");
    let env_names: Vec<String> = containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| e.name.clone())
        .collect();
    assert_eq!(env_names, ["KEEP", "DROP"], "env lost or duplicated");
    let ports: Vec<i32> = containers[0]
        .ports
        .iter()
        .flatten()
        .map(|p| p.container_port)
        .collect();
    assert_eq!(ports, [8080], "ports lost or duplicated");

    // Git drops a data key, a label and an env var: they leave the live objects, which stay the same objects.
    let trimmed = config_map(&ns, "settings", &[], &[("keep", "1")]);
    commit(
        &repo,
        &dir,
        &[
            ("settings.yaml", &trimmed),
            ("web.yaml", &deployment(&ns, &["KEEP"], None)),
        ],
        "drop a key, a label and an env var",
    )?;
    sync(&agent)?;
    let cm = cms.get("settings").await?;
    assert_eq!(cm.metadata.uid, cm_uid);
    assert_eq!(
        cm.data.clone().unwrap_or_default(),
        BTreeMap::from([("keep".into(), "1".into())]),
        "a data key removed from Git is still in the cluster"
    );
    assert_eq!(
        own_labels(&cm.metadata),
        BTreeMap::new(),
        "a label removed from Git is still there"
    );
    let web = deployments.get("web").await?;
    assert_eq!(web.metadata.uid, deploy_uid);
    let containers = web.spec.template.spec.context("pod spec")?.containers;
    let env_names: Vec<String> = containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| e.name.clone())
        .collect();
    assert_eq!(env_names, ["KEEP"], "an env var removed from Git is still there");

    // Git drops the ConfigMap: it is pruned like any member.
    repo.remove(&format!("{dir}/settings.yaml"))?;
    repo.commit("drop the ConfigMap")?;
    sync(&agent)?;
    assert!(
        cms.get_opt("settings").await?.is_none(),
        "the adopted ConfigMap was not pruned"
    );
    assert!(deployments.get_opt("web").await?.is_some());
    Ok(())
}

#[tokio::test]
async fn objects_other_server_side_managers_applied_are_adopted_and_controllers_keep_their_fields()
-> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "adopt-ssa").await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);

    // Flux's kustomize-controller applies server-side and adds its own labels, which Git does not hold.
    let by_flux: serde_json::Value = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "flux-made", "namespace": ns, "labels": {
            "kustomize.toolkit.fluxcd.io/name": "kust100", "kustomize.toolkit.fluxcd.io/namespace": ns}},
        "data": {"keep": "1", "drop": "2"}
    });
    cms.patch(
        "flux-made",
        &PatchParams::apply("kustomize-controller").force(),
        &Patch::Apply(&by_flux),
    )
    .await?;
    // A controller (not a deployment tool) writes a field of its own.
    let mark = serde_json::json!({"metadata": {"annotations": {"controller.example/seen": "yes"}}});
    let as_controller = PatchParams {
        field_manager: Some("kube-controller-manager".into()),
        ..Default::default()
    };
    cms.patch("flux-made", &as_controller, &Patch::Merge(&mark))
        .await?;
    // Helm 4 applies server-side as `helm`, with its ownership labels (and the port's protocol, which server-side
    // apply before Kubernetes 1.21 needs; Git leaves it to the agent).
    let by_helm = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: svc\n  namespace: {ns}\n  labels: {{app.kubernetes.io/managed-by: Helm}}\n  annotations: {{meta.helm.sh/release-name: web}}\nspec:\n  selector: {{app: web}}\n  ports:\n  - {{name: http, port: 80, targetPort: 8080, protocol: TCP}}\n"
    );
    kubectl_apply(&by_helm, &["--server-side", "--field-manager=helm"])?;
    let cm_uid = cms.get("flux-made").await?.metadata.uid;
    let svc_uid = services.get("svc").await?.metadata.uid;

    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("adopt-ssa"))?;
    let dir = format!("clusters/{cluster}/app");
    let service = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: svc\n  namespace: {ns}\nspec:\n  selector: {{app: web}}\n  ports:\n  - {{name: http, port: 80, targetPort: 8080}}\n"
    );
    commit(
        &repo,
        &dir,
        &[
            (
                "cm.yaml",
                &config_map(&ns, "flux-made", &[], &[("keep", "1"), ("drop", "2")]),
            ),
            ("svc.yaml", &service),
        ],
        "what the tools applied, without their own labels",
    )?;
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    sync(&agent)?;

    let cm = cms.get("flux-made").await?;
    assert_eq!(cm.metadata.uid, cm_uid, "the ConfigMap was recreated");
    assert_eq!(own_labels(&cm.metadata), BTreeMap::new(), "Flux's labels stayed");
    assert_eq!(
        cm.metadata.annotations.clone().unwrap_or_default(),
        BTreeMap::from([("controller.example/seen".into(), "yes".into())]),
        "the controller's annotation was lost"
    );
    assert_eq!(
        managers(&cm.metadata),
        ["kube-controller-manager/Update", "outpost/Apply"]
    );
    let svc = services.get("svc").await?;
    assert_eq!(svc.metadata.uid, svc_uid, "the Service was recreated");
    assert_eq!(managers(&svc.metadata), ["outpost/Apply"]);
    assert_eq!(own_labels(&svc.metadata), BTreeMap::new(), "Helm's label stayed");
    assert_eq!(svc.metadata.annotations, None, "Helm's annotation stayed");
    let ports: Vec<(i32, Option<String>)> = svc
        .spec
        .and_then(|s| s.ports)
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.port, p.protocol))
        .collect();
    assert_eq!(ports, [(80, Some("TCP".into()))], "ports lost or duplicated");

    // Git drops a data key: it goes; the controller's annotation stays.
    commit(
        &repo,
        &dir,
        &[("cm.yaml", &config_map(&ns, "flux-made", &[], &[("keep", "1")]))],
        "drop a key",
    )?;
    sync(&agent)?;
    let cm = cms.get("flux-made").await?;
    assert_eq!(cm.metadata.uid, cm_uid);
    assert_eq!(
        cm.data.unwrap_or_default(),
        BTreeMap::from([("keep".into(), "1".into())]),
        "a data key removed from Git is still in the cluster"
    );
    assert!(
        cm.metadata
            .annotations
            .unwrap_or_default()
            .contains_key("controller.example/seen")
    );

    // Git drops both objects: both are pruned.
    repo.remove(&format!("{dir}/cm.yaml"))?;
    repo.remove(&format!("{dir}/svc.yaml"))?;
    commit(
        &repo,
        &dir,
        &[("other.yaml", &config_map(&ns, "other", &[], &[("k", "v")]))],
        "drop both",
    )?;
    sync(&agent)?;
    assert!(
        cms.get_opt("flux-made").await?.is_none(),
        "the adopted ConfigMap was not pruned"
    );
    assert!(
        services.get_opt("svc").await?.is_none(),
        "the adopted Service was not pruned"
    );
    Ok(())
}

#[tokio::test]
async fn without_adoption_a_key_kubectl_applied_outlives_its_removal_from_git() -> Result<()> {
    // The control for the tests above: with adoption turned off, the forced apply shares the key with
    // kubectl's manager, and dropping it from Git leaves it in the cluster. This is what adoption fixes.
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "no-adopt").await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let both = config_map(&ns, "settings", &[], &[("keep", "1"), ("drop", "2")]);
    kubectl_apply(&both, &[])?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("no-adopt"))?;
    let dir = format!("clusters/{cluster}/app");
    commit(&repo, &dir, &[("settings.yaml", &both)], "both keys")?;
    let mut agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    agent.arg("--adopt-field-managers").arg("none");
    sync(&agent)?;
    commit(
        &repo,
        &dir,
        &[(
            "settings.yaml",
            &config_map(&ns, "settings", &[], &[("keep", "1")]),
        )],
        "drop",
    )?;
    sync(&agent)?;
    let cm = cms.get("settings").await?;
    assert!(
        cm.data.unwrap_or_default().contains_key("drop"),
        "without adoption the key went anyway: the adoption tests prove nothing on this API server"
    );
    assert!(managers(&cm.metadata).contains(&"kubectl-client-side-apply/Update".to_owned()));
    assert!(
        cm.metadata
            .annotations
            .unwrap_or_default()
            .contains_key(LAST_APPLIED),
        "adoption turned off still removed kubectl's annotation"
    );
    Ok(())
}
