//! Vanished kinds: a managed object whose apiVersion is no longer served (a CRD version switched to
//! `served: false`, as an upgrade removing an API looks) is still pruned, at a version that is served; a CRD
//! deleted by hand took its objects with it, so its members are dropped; and an object committed before its
//! CRD exists applies once the CRD appears, without restarting the agent.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::{await_condition, conditions};
use outpost_agent::inventory::applyset;
use outpost_tests::agent::{AgentCommand, Transport, create_namespace, output_text};
use outpost_tests::{git_servers, kube_env, unique};
use serde_json::{Value, json};

use crate::common::{Seen, eventually};
use crate::fixtures;

/// The schema both versions of the Gadget CRD share (no conversion needed between them).
fn gadget_version(name: &str, served: bool, storage: bool) -> Value {
    json!({"name": name, "served": served, "storage": storage, "schema": {"openAPIV3Schema": {
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}})
}

/// `gadgets.<group>` with `versions`.
fn crd_with(group: &str, versions: Vec<Value>) -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("gadgets.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
            "versions": versions}})
}

/// `gadgets.<group>` serving v1alpha1 (unless `alpha_served` is false) and v1, stored as v1.
fn gadget_crd(group: &str, alpha_served: bool) -> Value {
    crd_with(
        group,
        vec![
            gadget_version("v1alpha1", alpha_served, false),
            gadget_version("v1", true, true),
        ],
    )
}

/// Patch CRD `gadgets.<group>` to `versions`.
async fn set_versions(client: &kube::Client, group: &str, versions: Vec<Value>) -> Result<()> {
    let patch = json!({"spec": {"versions": versions}});
    Api::<CustomResourceDefinition>::all(client.clone())
        .patch(
            &format!("gadgets.{group}"),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(())
}

/// Wait until discovery serves `group/version` (`true`) or not (`false`).
async fn await_served(client: &kube::Client, group: &str, version: &str, served: bool) -> Result<()> {
    eventually(
        Duration::from_secs(30),
        &format!("{group}/{version} served: {served}"),
        || async {
            let now = client
                .list_api_group_resources(&format!("{group}/{version}"))
                .await
                .is_ok();
            Ok(Seen::done_if(now == served, format!("served: {now}")))
        },
    )
    .await
}

/// A Gadget written at `version`.
fn gadget(group: &str, version: &str, ns: &str, name: &str) -> String {
    format!(
        "apiVersion: {group}/{version}\nkind: Gadget\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  size: 1\n"
    )
}

/// Create a CRD (as another tool would install it) and wait until it is Established.
async fn install_crd(client: &kube::Client, crd: Value) -> Result<()> {
    let crd: CustomResourceDefinition = serde_json::from_value(crd)?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &crd).await?;
    let name = crd.metadata.name.unwrap_or_default();
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(crds, &name, conditions::is_crd_established()),
    )
    .await??;
    Ok(())
}

/// The dynamic API of `kind` (plural `plural`) at `group/version` in `ns`.
fn api(
    client: &kube::Client,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    ns: &str,
) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    Api::namespaced_with(client.clone(), ns, &ar)
}

/// The group-kinds bundle `bundle`'s inventory lists (kubectl's ApplySet annotation).
async fn inventory_kinds(
    client: &kube::Client,
    agent_ns: &str,
    cluster: &str,
    bundle: &str,
) -> Result<String> {
    let parent = Api::<Secret>::namespaced(client.clone(), agent_ns)
        .get(&applyset::parent_name(cluster, bundle))
        .await?;
    let annotations = parent.metadata.annotations.unwrap_or_default();
    Ok(annotations
        .get(applyset::GROUP_KINDS_ANNOTATION)
        .cloned()
        .unwrap_or_default())
}

#[tokio::test]
async fn a_member_whose_version_is_no_longer_served_is_pruned_and_one_whose_crd_was_deleted_is_dropped()
-> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "vanish").await?;
    let gadgets = format!("{}.outpost.test", unique("gadget"));
    let widgets = format!("{}.outpost.test", unique("widget"));
    install_crd(&client, gadget_crd(&gadgets, true)).await?;
    install_crd(&client, serde_yaml_crd(&fixtures::widget_crd(&widgets))?).await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("vanish"))?;
    let base = format!("clusters/{cluster}/app");
    repo.write(
        &format!("{base}/gadget.yaml"),
        &gadget(&gadgets, "v1alpha1", &ns, "old"),
    )?
    .write(
        &format!("{base}/widget.yaml"),
        &fixtures::widget(&widgets, &ns, "w", 1),
    )?
    .write(
        &format!("{base}/cm.yaml"),
        &fixtures::config_map(&ns, "stay", "1"),
    )?;
    repo.commit("a gadget at v1alpha1 and a widget")?;
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    let out = agent.once()?;
    assert!(out.status.success(), "{}", output_text(&out));

    // An upgrade stops serving v1alpha1 (v1 still serves the same objects); someone deletes the Widget CRD.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let unserve = json!({"spec": {"versions": gadget_crd(&gadgets, false)["spec"]["versions"]}});
    crds.patch(
        &format!("gadgets.{gadgets}"),
        &PatchParams::default(),
        &Patch::Merge(&unserve),
    )
    .await?;
    crds.delete(&format!("widgets.{widgets}"), &DeleteParams::default())
        .await?;
    eventually(
        Duration::from_secs(30),
        "v1alpha1 unserved and the Widget CRD gone",
        || async {
            let alpha = client
                .list_api_group_resources(&format!("{gadgets}/v1alpha1"))
                .await
                .is_ok();
            let crd = crds.get_opt(&format!("widgets.{widgets}")).await?.is_some();
            Ok(Seen::done_if(
                !alpha && !crd,
                format!("v1alpha1 served: {alpha}, Widget CRD present: {crd}"),
            ))
        },
    )
    .await?;

    repo.remove(&format!("{base}/gadget.yaml"))?
        .remove(&format!("{base}/widget.yaml"))?;
    repo.commit("the gadget and the widget leave Git")?;
    let out = agent.once()?;
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    let v1 = api(&client, &gadgets, "v1", "Gadget", "gadgets", &ns);
    assert!(
        v1.get_opt("old").await?.is_none(),
        "the Gadget recorded at an unserved version was dropped without being deleted\n{text}"
    );
    let kinds = inventory_kinds(&client, &agent_ns, &cluster, "app").await?;
    assert_eq!(kinds, "ConfigMap", "members left in the inventory\n{text}");
    Ok(())
}

/// A CRD fixture in YAML as a JSON value.
fn serde_yaml_crd(yaml: &str) -> Result<Value> {
    let docs = outpost_agent::manifest::parse::parse_file("crd.yaml", yaml.as_bytes())?;
    Ok(docs.into_iter().next().expect("one document").value())
}

#[tokio::test]
async fn a_custom_resource_committed_before_its_crd_applies_once_the_crd_appears_without_a_restart()
-> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "early").await?;
    let group = format!("{}.outpost.test", unique("early"));
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("early"))?;
    let base = format!("clusters/{cluster}/app");
    repo.write(
        &format!("{base}/widget.yaml"),
        &fixtures::widget(&group, &ns, "early", 3),
    )?
    .write(
        &format!("{base}/cm.yaml"),
        &fixtures::config_map(&ns, "beside", "1"),
    )?;
    repo.commit("a widget before its CRD")?;
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    let daemon = agent.spawn("1s")?;
    eventually(
        Duration::from_secs(60),
        "a failed sync about the unknown kind",
        || async {
            let logs = daemon.logs();
            Ok(Seen::done_if(
                logs.contains("Reconcile failed") && logs.contains("no kind Widget"),
                crate::common::log_tail(&logs, 5),
            ))
        },
    )
    .await?;

    // Another tool installs the CRD; the agent was not restarted.
    install_crd(&client, serde_yaml_crd(&fixtures::widget_crd(&group))?).await?;
    let widgets = api(&client, &group, "v1", "Widget", "widgets", &ns);
    eventually(Duration::from_secs(90), "the widget applied", || async {
        Ok(Seen::done_if(
            widgets.get_opt("early").await?.is_some(),
            "no widget yet",
        ))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", daemon.logs()))?;
    Ok(())
}

#[tokio::test]
async fn a_member_whose_crd_serves_no_version_stays_until_one_is_served_again() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "unserved").await?;
    let group = format!("{}.outpost.test", unique("unserved"));
    install_crd(&client, crd_with(&group, vec![gadget_version("v1", true, true)])).await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("unserved"))?;
    let base = format!("clusters/{cluster}/app");
    repo.write(&format!("{base}/gadget.yaml"), &gadget(&group, "v1", &ns, "kept"))?
        .write(
            &format!("{base}/cm.yaml"),
            &fixtures::config_map(&ns, "stay", "1"),
        )?;
    repo.commit("a gadget")?;
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    let out = agent.once()?;
    assert!(out.status.success(), "{}", output_text(&out));

    // Its only version stops being served: the object still exists, nothing can reach it.
    set_versions(&client, &group, vec![gadget_version("v1", false, true)]).await?;
    await_served(&client, &group, "v1", false).await?;
    repo.remove(&format!("{base}/gadget.yaml"))?;
    repo.commit("the gadget leaves Git")?;
    let out = agent.once()?;
    let text = output_text(&out);
    assert!(!out.status.success(), "an unreachable member was dropped\n{text}");
    assert!(text.contains("serves no version"), "{text}");

    // Served again, the member is still recorded and is pruned.
    set_versions(&client, &group, vec![gadget_version("v1", true, true)]).await?;
    await_served(&client, &group, "v1", true).await?;
    let out = agent.once()?;
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    let v1 = api(&client, &group, "v1", "Gadget", "gadgets", &ns);
    assert!(
        v1.get_opt("kept").await?.is_none(),
        "not pruned once served again\n{text}"
    );
    Ok(())
}
