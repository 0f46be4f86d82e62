//! Issue 13 item 4: uninstalling. `helm uninstall` removes only what the chart rendered (the agent's
//! workloads, RBAC, Secret, Service): the inventories and labels are not part of the release, so the workloads
//! keep running and an install later takes them over unchanged. `outpost-agent uninstall` lets go of every
//! object (running, without our label); `--prune` deletes them in reverse stage order behind a prune's guards.

use anyhow::Result;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::Api;
use outpost_agent::inventory::applyset::PART_OF_LABEL;
use outpost_tests::agent::{AgentCommand, Transport, create_namespace, output_text};
use outpost_tests::{git_servers, kube_env, unique};

use crate::chart::{base, render, values_file};
use crate::common::inventory_bundles;
use crate::fixtures;

/// A bundle with a Namespace (a cascading prune), two ConfigMaps in it and one that asks to be kept.
fn repo_for(cluster: &str, ns: &str) -> Result<outpost_tests::TestRepo> {
    let repo = git_servers().create_repo(&unique("uninstall"))?;
    let base = format!("clusters/{cluster}/app");
    let kept = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keep\n  namespace: {ns}\n  annotations:\n    outpost.dev/prune: disabled\ndata:\n  key: k\n"
    );
    repo.write(&format!("{base}/ns.yaml"), &fixtures::namespace(ns))?
        .write(&format!("{base}/a.yaml"), &fixtures::config_map(ns, "a", "1"))?
        .write(&format!("{base}/b.yaml"), &fixtures::config_map(ns, "b", "1"))?
        .write(&format!("{base}/keep.yaml"), &kept)?;
    repo.commit("a namespace and three ConfigMaps")?;
    Ok(repo)
}

#[tokio::test]
async fn uninstall_prune_deletes_in_reverse_stage_order_behind_the_guards_of_a_prune() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = unique("uninstall-ns");
    let cluster = unique("edge");
    let repo = repo_for(&cluster, &ns)?;
    let cmd = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    let out = cmd.once()?;
    assert!(out.status.success(), "{}", output_text(&out));

    let mut prune = cmd.clone();
    prune.arg("--prune");
    let out = prune.subcommand("uninstall")?;
    let text = output_text(&out);
    assert!(
        !out.status.success(),
        "a cascading delete went through without consent:\n{text}"
    );
    assert!(text.contains(&format!("Namespace/{ns} refused")), "{text}");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    assert!(
        cms.get_opt("a").await?.is_none() && cms.get_opt("b").await?.is_none(),
        "{text}"
    );
    assert!(
        cms.get_opt("keep").await?.is_some(),
        "outpost.dev/prune: disabled was deleted:\n{text}"
    );
    assert_eq!(
        inventory_bundles(&client, &agent_ns).await?,
        ["app"],
        "the refused member keeps its inventory"
    );
    // Reverse stage order: what lives in the Namespace was settled before the Namespace was judged.
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle));
    let (cm, namespace) = (line_of("ConfigMap"), line_of(&format!("Namespace/{ns}:")));
    assert!(
        cm.is_some() && namespace.is_some() && cm < namespace,
        "not in reverse stage order:\n{text}"
    );

    prune.arg("--allow-cascading-prune");
    let out = prune.subcommand("uninstall")?;
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let gone = namespaces
        .get_opt(&ns)
        .await?
        .is_none_or(|n| n.metadata.deletion_timestamp.is_some());
    assert!(gone, "the Namespace was not deleted:\n{text}");
    assert!(inventory_bundles(&client, &agent_ns).await?.is_empty(), "{text}");
    // The agent stays suspended: an agent still running must not create everything again.
    let control = Api::<ConfigMap>::namespaced(client.clone(), &agent_ns)
        .get(&outpost_agent::control::configmap_name(&cluster))
        .await?;
    let suspend = control
        .metadata
        .annotations
        .unwrap_or_default()
        .get("outpost.dev/suspend")
        .cloned();
    assert_eq!(suspend.as_deref(), Some("true"));
    Ok(())
}

#[tokio::test]
async fn uninstall_lets_go_of_every_object_and_leaves_it_running() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = unique("letgo-ns");
    let cluster = unique("edge");
    let repo = repo_for(&cluster, &ns)?;
    let cmd = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    let out = cmd.once()?;
    assert!(out.status.success(), "{}", output_text(&out));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let uid = cms.get("a").await?.metadata.uid;

    let out = cmd.subcommand("uninstall")?;
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    for name in ["a", "b", "keep"] {
        let cm = cms.get(name).await?;
        let labels = cm.metadata.labels.unwrap_or_default();
        assert!(
            !labels.contains_key(PART_OF_LABEL),
            "{name} still carries our label:\n{text}"
        );
    }
    assert_eq!(cms.get("a").await?.metadata.uid, uid, "recreated");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(namespaces.get(&ns).await?.metadata.deletion_timestamp.is_none());
    assert!(inventory_bundles(&client, &agent_ns).await?.is_empty(), "{text}");
    Ok(())
}

/// `helm uninstall` deletes what the chart rendered. None of it holds an inventory, a managed object or a
/// hook that deletes them, so after it (the agent gone) the workloads run on, and a new install finds its
/// inventories and changes nothing.
#[tokio::test]
async fn helm_uninstall_leaves_workloads_and_inventories_and_a_new_install_changes_nothing() -> Result<()> {
    let docs = render("rel", "outpost-system", &values_file(&base(""))?)?;
    for doc in &docs {
        let labels = &doc["metadata"]["labels"];
        assert!(
            labels.get("outpost.dev/inventory").is_none(),
            "the chart renders an inventory: {doc}"
        );
        assert!(
            doc["metadata"]["annotations"].get("helm.sh/hook").is_none(),
            "a hook: {doc}"
        );
    }

    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = unique("helm-ns");
    let cluster = unique("edge");
    let repo = repo_for(&cluster, &ns)?;
    let cmd = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    let out = cmd.once()?;
    assert!(out.status.success(), "{}", output_text(&out));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let before = cms.get("a").await?.metadata;
    assert_eq!(inventory_bundles(&client, &agent_ns).await?, ["app"]);

    // A new install: a fresh agent with an empty cache.
    let mut again = cmd.clone();
    again.set_cache_dir(&outpost_tests::scratch_dir("reinstall")?);
    let out = again.once()?;
    assert!(out.status.success(), "{}", output_text(&out));
    let after = cms.get("a").await?.metadata;
    assert_eq!(
        (after.uid, after.resource_version),
        (before.uid, before.resource_version),
        "changed on reinstall"
    );
    Ok(())
}
