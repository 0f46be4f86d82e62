//! Full syncs: the EMCO layout, a sequence of commits that add, change, delete and move things, and kubectl's
//! view of our ApplySet inventories.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use outpost_agent::inventory::applyset;
use outpost_tests::agent::{AgentCommand, Transport, create_namespace, output_text};
use outpost_tests::{git_servers, kube_env, tools, unique};

use crate::common::{Seen, config_value, eventually, inventory_bundles, managed_config_maps};
use crate::fixtures;

/// A YAML fixture as the single-line JSON EMCO's rsync writes.
fn emco_json(yaml: &str) -> String {
    let docs =
        outpost_agent::manifest::parse::parse_file("fixture.yaml", yaml.as_bytes()).expect("fixture parses");
    serde_json::to_string(&docs[0].body).expect("json")
}

#[tokio::test]
async fn an_emco_layout_with_two_contexts_syncs_completely() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    // EMCO names cluster directories provider+cluster.
    let cluster = format!("{}+{}", unique("provider"), unique("edge"));
    let (ns_web, ns_db) = (unique("web"), unique("db"));
    let group = format!("{}.outpost.test", unique("mon"));
    let role = unique("role");
    let repo = git_servers().create_repo(&unique("emco"))?;
    let root = format!("clusters/{cluster}");
    let app = |cid: &str, app: &str, file: &str| format!("{root}/context/{cid}/app/{app}/{file}");
    let tracker = format!(
        "apiVersion: k8splugin.io/v1alpha1\nkind: ResourceBundleState\nmetadata:\n  name: web-status\n  namespace: {ns_web}\n  labels: {{emco/deployment-id: 100-web}}\nspec:\n  selector:\n    matchLabels: {{emco/deployment-id: 100-web}}\n"
    );
    repo.write(&app("100", "web", "ns+Namespace.yaml"), &emco_json(&fixtures::namespace(&ns_web)))?
        .write(&app("100", "web", "web+ConfigMap.yaml"), &emco_json(&fixtures::config_map(&ns_web, "web", "w")))?
        .write(&app("100", "web", "web+Service.yaml"), &emco_json(&fixtures::service(&ns_web, "web")))?
        .write(&app("100", "web", "reader+ClusterRole.yaml"), &fixtures::cluster_role_with_namespace(&role, &ns_web))?
        .write(&app("100", "web", "web-status+ResourceBundleState.yaml"), &emco_json(&tracker))?
        .write(&app("100", "monitor", "crd+CustomResourceDefinition.yaml"), &emco_json(&fixtures::widget_crd(&group)))?
        .write(&app("100", "monitor", "gizmo+Widget.yaml"), &emco_json(&fixtures::widget(&group, &ns_web, "gizmo", 2)))?
        .write(&app("200", "db", "ns+Namespace.yaml"), &emco_json(&fixtures::namespace(&ns_db)))?
        .write(&app("200", "db", "db+ConfigMap.yaml"), &emco_json(&fixtures::config_map(&ns_db, "db", "d")))?
        // What rsync writes for Flux at the cluster root (a GitRepository and a Kustomization whose path points
        // into this cluster's context/), and Flux's own directory: never applied (the Flux kinds do not even
        // exist in this API server, so applying them would fail the sync).
        .write(&format!("{root}/100.yaml"), "{\"apiVersion\":\"source.toolkit.fluxcd.io/v1beta1\",\"kind\":\"GitRepository\",\"metadata\":{\"name\":\"100\",\"namespace\":\"flux-system\"}}")?
        .write(&format!("{root}/kust100.yaml"), &format!("{{\"apiVersion\":\"kustomize.toolkit.fluxcd.io/v1beta2\",\"kind\":\"Kustomization\",\"metadata\":{{\"name\":\"kust100\",\"namespace\":\"flux-system\"}},\"spec\":{{\"path\":\"{root}/context/100\",\"sourceRef\":{{\"kind\":\"GitRepository\",\"name\":\"100\"}}}}}}"))?
        .write(&format!("{root}/flux-system/gotk-components.yaml"), "{\"apiVersion\":\"source.toolkit.fluxcd.io/v1\",\"kind\":\"GitRepository\",\"metadata\":{\"name\":\"y\"}}")?
        .write(&format!("{root}/status/100/app/web/100-web-status.yaml"), &fixtures::config_map(&ns_web, "from-status-dir", "x"))?;
    repo.commit("EMCO rsync output")?;

    let out = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?.once()?;
    assert!(out.status.success(), "{}", output_text(&out));

    assert_eq!(config_value(&client, &ns_web, "web").await?.as_deref(), Some("w"));
    assert_eq!(config_value(&client, &ns_db, "db").await?.as_deref(), Some("d"));
    assert_eq!(
        config_value(&client, &ns_web, "from-status-dir").await?,
        None,
        "status/ was applied"
    );
    let cr = Api::<ClusterRole>::all(client.clone()).get(&role).await?;
    assert_eq!(cr.metadata.namespace, None);
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(&group, "v1", "Widget"), "widgets");
    let widget = Api::<DynamicObject>::namespaced_with(client.clone(), &ns_web, &ar)
        .get("gizmo")
        .await?;
    assert_eq!(widget.data["spec"]["size"], 2);
    // The tracker is kept for the status writer, not applied (its CRD does not exist here).
    assert_eq!(
        inventory_bundles(&client, &agent_ns).await?,
        ["100-monitor", "100-web", "200-db"]
    );
    let parents: Api<Secret> = Api::namespaced(client.clone(), &agent_ns);
    let web_parent = parents.get(&applyset::parent_name(&cluster, "100-web")).await?;
    let info = web_parent.data.clone().unwrap_or_default()["bundle.json"]
        .0
        .clone();
    let info: serde_json::Value = serde_json::from_slice(&info)?;
    assert_eq!(info["context"], "100");
    assert_eq!(info["app"], "web");
    assert_eq!(info["cluster"], cluster);
    assert_eq!(info["trackers"][0]["kind"], "ResourceBundleState");
    let annotations = web_parent.metadata.annotations.unwrap_or_default();
    assert_eq!(annotations["outpost.dev/cluster"], cluster);
    assert_eq!(
        annotations[applyset::GROUP_KINDS_ANNOTATION],
        "ClusterRole.rbac.authorization.k8s.io,ConfigMap,Namespace,Service"
    );
    assert_eq!(annotations[applyset::ADDITIONAL_NAMESPACES_ANNOTATION], ns_web);
    // Every member carries its bundle's ApplySet id.
    let id = applyset::id(&applyset::parent_name(&cluster, "100-web"), &agent_ns);
    let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns_web)
        .get("web")
        .await?;
    assert_eq!(
        cm.metadata.labels.unwrap_or_default()[applyset::PART_OF_LABEL],
        id
    );
    Ok(())
}

#[tokio::test]
async fn every_commit_leaves_the_cluster_equal_to_git() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "seq").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("sequence"))?;
    let dir = |bundle: &str| format!("clusters/{cluster}/{bundle}");
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    let sync = || -> Result<()> {
        let out = agent.once()?;
        anyhow::ensure!(out.status.success(), "{}", output_text(&out));
        Ok(())
    };

    repo.write(
        &format!("{}/a1.yaml", dir("alpha")),
        &fixtures::config_map(&ns, "a1", "1"),
    )?
    .write(
        &format!("{}/a2.yaml", dir("alpha")),
        &fixtures::config_map(&ns, "a2", "1"),
    )?
    .write(
        &format!("{}/b1.yaml", dir("beta")),
        &fixtures::config_map(&ns, "b1", "1"),
    )?;
    repo.commit("alpha and beta")?;
    sync()?;
    assert_eq!(managed_config_maps(&client, &ns).await?, ["a1", "a2", "b1"]);

    // Change a file.
    repo.write(
        &format!("{}/a1.yaml", dir("alpha")),
        &fixtures::config_map(&ns, "a1", "2"),
    )?;
    repo.commit("change a1")?;
    sync()?;
    assert_eq!(config_value(&client, &ns, "a1").await?.as_deref(), Some("2"));

    // Delete a file: its object is pruned.
    repo.remove(&format!("{}/a2.yaml", dir("alpha")))?;
    repo.commit("delete a2")?;
    sync()?;
    assert_eq!(managed_config_maps(&client, &ns).await?, ["a1", "b1"]);

    // Delete a bundle directory (how EMCO terminates an app): its objects and its inventory go.
    repo.remove(&dir("beta"))?;
    repo.commit("terminate beta")?;
    sync()?;
    assert_eq!(managed_config_maps(&client, &ns).await?, ["a1"]);
    assert_eq!(inventory_bundles(&client, &agent_ns).await?, ["alpha"]);

    // Add a bundle, and move a1 into it: it is adopted, not deleted and recreated.
    let uid_before = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get("a1")
        .await?
        .metadata
        .uid;
    repo.remove(&format!("{}/a1.yaml", dir("alpha")))?
        .write(
            &format!("{}/a1.yaml", dir("gamma")),
            &fixtures::config_map(&ns, "a1", "2"),
        )?
        .write(
            &format!("{}/g1.yaml", dir("gamma")),
            &fixtures::config_map(&ns, "g1", "1"),
        )?
        .write(
            &format!("{}/keep.yaml", dir("alpha")),
            &fixtures::config_map(&ns, "a3", "1"),
        )?;
    repo.commit("add gamma, move a1")?;
    sync()?;
    assert_eq!(managed_config_maps(&client, &ns).await?, ["a1", "a3", "g1"]);
    let a1 = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get("a1")
        .await?;
    assert_eq!(a1.metadata.uid, uid_before, "a1 was recreated instead of adopted");
    let gamma_id = applyset::id(&applyset::parent_name(&cluster, "gamma"), &agent_ns);
    assert_eq!(
        a1.metadata.labels.unwrap_or_default()[applyset::PART_OF_LABEL],
        gamma_id
    );
    assert_eq!(inventory_bundles(&client, &agent_ns).await?, ["alpha", "gamma"]);

    // A second sync of the same commit sends nothing and changes nothing.
    let rv = a1.metadata.resource_version;
    sync()?;
    let again = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get("a1")
        .await?;
    assert_eq!(again.metadata.resource_version, rv);
    Ok(())
}

#[tokio::test]
async fn kubectl_recognises_our_applyset_and_refuses_it_until_the_tooling_is_kubectl() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("kubectl"))?;
    // kubectl applies only into its parent's namespace, so this bundle lives in the agent namespace.
    let base = format!("clusters/{cluster}/local");
    repo.write(
        &format!("{base}/one.yaml"),
        &fixtures::config_map(&agent_ns, "one", "1"),
    )?
    .write(
        &format!("{base}/two.yaml"),
        &fixtures::config_map(&agent_ns, "two", "2"),
    )?;
    repo.commit("two config maps")?;
    // Git writing into the agent's namespace has to be allowed explicitly.
    let mut agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    let out = agent.arg("--allow-own-namespace").once()?;
    assert!(out.status.success(), "{}", output_text(&out));

    let parent = applyset::parent_name(&cluster, "local");
    let file = repo.work.join(format!("{base}/one.yaml"));
    let kubectl = |expect_ok: bool| -> Result<String> {
        let out = std::process::Command::new(tools::kubectl()?)
            .env("KUBECTL_APPLYSET", "true")
            .env("KUBECONFIG", &env.kubeconfig)
            .args(["apply", "--server-side", "--prune", "-n", &agent_ns])
            .arg(format!("--applyset=secret/{parent}"))
            .arg("-f")
            .arg(&file)
            .output()?;
        let text = output_text(&out);
        anyhow::ensure!(out.status.success() == expect_ok, "kubectl: {text}");
        Ok(text)
    };
    let refused = kubectl(false)?;
    assert!(
        refused.contains("managed by tooling \"outpost\" instead of \"kubectl\""),
        "kubectl did not refuse for the right reason: {refused}"
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &agent_ns);
    let relabel =
        serde_json::json!({"metadata": {"annotations": {applyset::TOOLING_ANNOTATION: "kubectl/v1.32.3"}}});
    secrets
        .patch(&parent, &PatchParams::default(), &Patch::Merge(&relabel))
        .await?;
    // Now kubectl's id check passes (a wrong id, part-of label or group-kind list would fail here) and it
    // prunes the member missing from its file.
    let accepted = kubectl(true)?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &agent_ns);
    assert!(cms.get_opt("one").await?.is_some(), "{accepted}");
    assert!(
        cms.get_opt("two").await?.is_none(),
        "kubectl did not prune our member: {accepted}"
    );
    Ok(())
}

#[tokio::test]
async fn plan_previews_the_next_sync_and_status_lists_bundles() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "plan").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("plan"))?;
    let base = format!("clusters/{cluster}/app");
    repo.write(&format!("{base}/a.yaml"), &fixtures::config_map(&ns, "a", "1"))?
        .write(&format!("{base}/b.yaml"), &fixtures::config_map(&ns, "b", "1"))?;
    let first = repo.commit("a and b")?;
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    assert!(agent.once()?.status.success());

    repo.write(&format!("{base}/a.yaml"), &fixtures::config_map(&ns, "a", "2"))?
        .remove(&format!("{base}/b.yaml"))?
        .write(&format!("{base}/c.yaml"), &fixtures::config_map(&ns, "c", "1"))?;
    repo.commit("change a, delete b, add c")?;
    let out = agent.subcommand("plan")?;
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    for line in [
        format!("~ update ConfigMap/{ns}/a"),
        "data.key: \"1\" -> \"2\"".to_owned(),
        format!("+ create ConfigMap/{ns}/c"),
        format!("- prune ConfigMap/{ns}/b"),
        "1 to create, 1 to update, 1 to prune, 0 invalid.".to_owned(),
    ] {
        assert!(text.contains(&line), "plan output lacks {line:?}:\n{text}");
    }
    // plan changed nothing.
    assert_eq!(managed_config_maps(&client, &ns).await?, ["a", "b"]);
    assert_eq!(config_value(&client, &ns, "a").await?.as_deref(), Some("1"));

    let out = agent.subcommand("status")?;
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("app "))
        .unwrap_or_else(|| panic!("no row for bundle app:\n{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1], &first[..12], "{row}");
    assert_eq!(cells[2], "2", "{row}");
    assert_eq!(cells[3], "Current", "{row}");
    assert_eq!(cells[4], "Synced", "{row}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().next().is_some_and(|h| h.starts_with("BUNDLE")),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn plan_masks_secret_values_and_names_only_the_keys_that_change() -> Result<()> {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "plan-secret").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("plan-secret"))?;
    let path = format!("clusters/{cluster}/app/creds.yaml");
    let secret = |data: serde_json::Value, string_data: serde_json::Value| {
        serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": ns},
            "data": data, "stringData": string_data})
        .to_string()
    };
    let (old, new, added, same) = (
        "old-password-do-not-show",
        "new-password-do-not-show",
        "added-token-do-not-show",
        "unchanged-do-not-show",
    );
    repo.write(
        &path,
        &secret(
            serde_json::json!({"password": b64(old), "same": b64(same)}),
            serde_json::json!({}),
        ),
    )?;
    repo.commit("a secret")?;
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    let out = agent.once()?;
    anyhow::ensure!(out.status.success(), "{}", output_text(&out));

    // One key changes, one is added through stringData (the server turns it into data), one stays.
    repo.write(
        &path,
        &secret(
            serde_json::json!({"password": b64(new), "same": b64(same)}),
            serde_json::json!({"token": added}),
        ),
    )?;
    repo.commit("rotate the password, add a token")?;
    let out = agent.subcommand("plan")?;
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    for line in [
        format!("~ update Secret/{ns}/creds"),
        "data.password: <masked, changed>".to_owned(),
        "data.token: <masked, added>".to_owned(),
        "0 to create, 1 to update, 0 to prune, 0 invalid.".to_owned(),
    ] {
        assert!(text.contains(&line), "plan output lacks {line:?}:\n{text}");
    }
    assert!(!text.contains("data.same"), "an unchanged key is listed:\n{text}");
    for value in [old, new, added, same] {
        assert!(
            !text.contains(value) && !text.contains(&b64(value)),
            "plan shows the value {value}:\n{text}"
        );
    }
    Ok(())
}

/// A Deployment whose container port leaves `protocol` to its default.
fn deployment_with_port(ns: &str, name: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: main\n        image: {image}\n        ports:\n        - containerPort: 8080\n"
    )
}

#[tokio::test]
async fn ports_without_a_protocol_sync_on_old_and_new_servers_and_never_show_as_a_change() -> Result<()> {
    // Servers before 1.21 refuse a server-side apply of a port without `protocol` (it is part of the list's
    // key and they do not default it while building the patch); newer ones default it. The agent fills in
    // `TCP` (manifest::normalize) so both work, and must then see no difference on either.
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "ports").await?;
    let info = client.apiserver_version().await?;
    let minor: u32 = info.minor.trim_end_matches('+').parse()?;

    // The server itself, without the agent: which behaviour are we on?
    let raw: serde_json::Value = serde_yaml_fixture(&fixtures::service(&ns, "raw"))?;
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), &ns);
    let raw_apply = services
        .patch("raw", &PatchParams::apply("raw-test"), &Patch::Apply(&raw))
        .await;
    if minor < 21 {
        let err = raw_apply.expect_err("a 1.20 server applied a port without protocol");
        assert!(err.to_string().contains("protocol"), "{err}");
    } else {
        let live = raw_apply?;
        let port = &live.spec.unwrap_or_default().ports.unwrap_or_default()[0];
        assert_eq!(
            port.protocol.as_deref(),
            Some("TCP"),
            "{}: no default",
            info.git_version
        );
    }

    // The agent applies the same manifests on every version.
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("ports"))?;
    let base = format!("clusters/{cluster}/app");
    repo.write(&format!("{base}/svc.yaml"), &fixtures::service(&ns, "web"))?
        .write(
            &format!("{base}/deploy.yaml"),
            &deployment_with_port(&ns, "web", "nginx:1.27"),
        )?;
    repo.commit("ports without protocol")?;
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    let out = agent.once()?;
    anyhow::ensure!(out.status.success(), "{}", output_text(&out));
    let svc = services.get("web").await?;
    assert_eq!(
        svc.spec.clone().unwrap_or_default().ports.unwrap_or_default()[0]
            .protocol
            .as_deref(),
        Some("TCP")
    );
    let deploys: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.clone(), &ns);
    let deploy = deploys.get("web").await?;

    // No difference: plan has nothing to update ...
    let out = agent.subcommand("plan")?;
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("0 to create, 0 to update, 0 to prune"),
        "{}: plan sees a change in what it just applied:\n{text}",
        info.git_version
    );
    // ... and drift correction reverts a hand edit of the port once, then finds nothing more to revert.
    let daemon = agent.spawn("1h")?;
    daemon.wait_ready(Duration::from_secs(60)).await?;
    let edit = serde_json::json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}});
    services
        .patch("web", &PatchParams::default(), &Patch::Strategic(&edit))
        .await?;
    let target = |s: k8s_openapi::api::core::v1::Service| {
        let port = s.spec.unwrap_or_default().ports.unwrap_or_default().remove(0);
        (port.target_port, port.protocol)
    };
    eventually(
        Duration::from_secs(10),
        "the port edit to be reverted",
        || async {
            let now = target(services.get("web").await?);
            Ok(Seen::done_if(
                now == (Some(IntOrString::Int(8080)), Some("TCP".into())),
                format!("(targetPort, protocol)={now:?}"),
            ))
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", daemon.logs()))?;
    let reverted = || async {
        let (_, body) = daemon.get("/metrics").await?;
        anyhow::Ok(
            body.lines()
                .filter(|l| l.starts_with("outpost_drift_reverted_total") && l.contains("bundle=\"app\""))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>(),
        )
    };
    eventually(Duration::from_secs(10), "the revert to be counted", || async {
        let count = reverted().await?;
        Ok(Seen::done_if(
            count >= 1.0,
            format!("outpost_drift_reverted_total={count}"),
        ))
    })
    .await?;
    // Long enough for a spurious re-apply loop to show (the watch reacts within a second).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        reverted().await?,
        1.0,
        "{}: drift loop; log:\n{}",
        info.git_version,
        daemon.logs()
    );
    assert_eq!(
        deploys.get("web").await?.metadata.resource_version,
        deploy.metadata.resource_version,
        "{}: the agent rewrote the Deployment; log:\n{}",
        info.git_version,
        daemon.logs()
    );
    Ok(())
}

/// A YAML fixture as JSON, parsed with the agent's own manifest parser.
fn serde_yaml_fixture(yaml: &str) -> Result<serde_json::Value> {
    Ok(serde_json::from_str(&emco_json(yaml))?)
}
