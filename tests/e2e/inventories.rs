//! Inventory parents per cluster: agents of different clusters sharing one namespace keep their own parents and
//! ApplySet ids, and parents named by the previous layout (without the cluster) are taken over.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use outpost_agent::inventory::{applyset, store};
use outpost_tests::agent::{AgentCommand, Transport, create_namespace, output_text};
use outpost_tests::{git_servers, kube_env, tools, unique};
use sha2::{Digest, Sha256};

use crate::common::managed_config_maps;
use crate::fixtures;

/// The parent Secrets of `cluster`'s `bundle` in `agent_ns` (by their annotations, whatever their names).
async fn parents_of(
    client: &kube::Client,
    agent_ns: &str,
    cluster: &str,
    bundle: &str,
) -> Result<Vec<Secret>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), agent_ns);
    let list = api
        .list(&ListParams::default().labels("outpost.dev/inventory=v1"))
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter(|s| {
            let a = s.metadata.annotations.clone().unwrap_or_default();
            a.get(store::CLUSTER_ANNOTATION).map(String::as_str) == Some(cluster)
                && a.get(store::BUNDLE_ANNOTATION).map(String::as_str) == Some(bundle)
        })
        .collect())
}

/// The only parent of `cluster`'s `bundle`.
async fn parent_of(client: &kube::Client, agent_ns: &str, cluster: &str, bundle: &str) -> Result<Secret> {
    let mut parents = parents_of(client, agent_ns, cluster, bundle).await?;
    let names: Vec<_> = parents.iter().map(|s| s.metadata.name.clone()).collect();
    anyhow::ensure!(
        parents.len() == 1,
        "{cluster}/{bundle} has parents {names:?}, not one"
    );
    Ok(parents.remove(0))
}

/// Names of the ConfigMap members a parent records, sorted.
fn member_names(parent: &Secret) -> Result<Vec<String>> {
    let inv = store::decode(parent)?;
    Ok(inv.members.keys().map(|k| k.name.clone()).collect())
}

/// The parent's ApplySet id label.
fn id_of(parent: &Secret) -> String {
    parent.metadata.labels.clone().unwrap_or_default()[applyset::ID_LABEL].clone()
}

/// The `part-of` label of each named ConfigMap in `ns`.
async fn part_of(client: &kube::Client, ns: &str, names: &[&str]) -> Result<BTreeMap<String, String>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let mut labels = BTreeMap::new();
    for name in names {
        let cm = api.get(name).await?;
        let label = cm
            .metadata
            .labels
            .unwrap_or_default()
            .remove(applyset::PART_OF_LABEL);
        labels.insert(name.to_string(), label.unwrap_or_default());
    }
    Ok(labels)
}

#[tokio::test]
async fn agents_of_two_clusters_in_one_namespace_keep_their_own_inventories() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "shared").await?;
    // EMCO-style names: both clusters have a bundle `app`.
    let (c1, c2) = (format!("p+{}", unique("one")), format!("p+{}", unique("two")));
    let repo = git_servers().create_repo(&unique("two-clusters"))?;
    repo.write(
        &format!("clusters/{c1}/app/a.yaml"),
        &fixtures::config_map(&ns, "a1", "1"),
    )?
    .write(
        &format!("clusters/{c1}/app/b.yaml"),
        &fixtures::config_map(&ns, "b1", "1"),
    )?
    .write(
        &format!("clusters/{c2}/app/a.yaml"),
        &fixtures::config_map(&ns, "a2", "2"),
    )?;
    repo.commit("two clusters, one bundle name")?;
    let agent1 = AgentCommand::new(env, &repo, &c1, &agent_ns, Transport::Https)?;
    let agent2 = AgentCommand::new(env, &repo, &c2, &agent_ns, Transport::Https)?;
    let sync = |agent: &AgentCommand| -> Result<()> {
        let out = agent.once()?;
        anyhow::ensure!(out.status.success(), "{}", output_text(&out));
        Ok(())
    };
    // Interleaved, as two daemons would run.
    for agent in [&agent1, &agent2, &agent1, &agent2] {
        sync(agent)?;
    }
    let p1 = parent_of(&client, &agent_ns, &c1, "app").await?;
    let p2 = parent_of(&client, &agent_ns, &c2, "app").await?;
    assert_ne!(p1.metadata.name, p2.metadata.name);
    assert_ne!(id_of(&p1), id_of(&p2), "two clusters share one ApplySet id");
    assert_eq!(member_names(&p1)?, ["a1", "b1"]);
    assert_eq!(member_names(&p2)?, ["a2"]);
    let labels = part_of(&client, &ns, &["a1", "b1", "a2"]).await?;
    assert_eq!(
        labels,
        BTreeMap::from([
            ("a1".to_owned(), id_of(&p1)),
            ("b1".to_owned(), id_of(&p1)),
            ("a2".to_owned(), id_of(&p2)),
        ])
    );

    // Each prunes only its own: b1 leaves cluster 1, cluster 2's agent runs after and changes nothing.
    let a2_version = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get("a2")
        .await?
        .metadata
        .resource_version;
    repo.remove(&format!("clusters/{c1}/app/b.yaml"))?;
    repo.commit("b1 leaves cluster 1")?;
    for agent in [&agent1, &agent2] {
        sync(agent)?;
    }
    assert_eq!(managed_config_maps(&client, &ns).await?, ["a1", "a2"]);
    let a2 = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get("a2")
        .await?;
    assert_eq!(
        a2.metadata.resource_version, a2_version,
        "cluster 2's object was touched"
    );
    assert_eq!(
        member_names(&parent_of(&client, &agent_ns, &c1, "app").await?)?,
        ["a1"]
    );
    assert_eq!(
        member_names(&parent_of(&client, &agent_ns, &c2, "app").await?)?,
        ["a2"]
    );
    Ok(())
}

/// The parent name the previous layout gave a bundle: `outpost-<readable bundle>-<hex of the first 4 bytes of
/// sha256(bundle)>`, written out here so the fixture does not depend on the code under test.
fn previous_layout_name(bundle: &str) -> String {
    let readable: String = bundle
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let hash: String = Sha256::digest(bundle.as_bytes())[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("outpost-{}-{hash}", readable.trim_matches('-'))
}

/// Rewrite `cluster`'s parent of `bundle` as the previous layout wrote it: the same Secret under the old name
/// and id, and every member labelled with the old id.
async fn rewrite_as_previous_layout(
    client: &kube::Client,
    agent_ns: &str,
    cluster: &str,
    bundle: &str,
    members: &[(&str, &str)],
) -> Result<String> {
    let legacy = previous_layout_name(bundle);
    let legacy_id = applyset::id(&legacy, agent_ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), agent_ns);
    let current = parent_of(client, agent_ns, cluster, bundle).await?;
    let current_name = current.metadata.name.clone().unwrap_or_default();
    if current_name != legacy {
        let mut labels = current.metadata.labels.clone().unwrap_or_default();
        labels.insert(applyset::ID_LABEL.to_owned(), legacy_id.clone());
        let old = Secret {
            metadata: ObjectMeta {
                name: Some(legacy.clone()),
                namespace: Some(agent_ns.to_owned()),
                labels: Some(labels),
                annotations: current.metadata.annotations.clone(),
                ..Default::default()
            },
            type_: current.type_.clone(),
            data: current.data.clone(),
            ..Default::default()
        };
        secrets.create(&PostParams::default(), &old).await?;
        secrets.delete(&current_name, &Default::default()).await?;
    }
    let relabel = serde_json::json!({"metadata": {"labels": {applyset::PART_OF_LABEL: legacy_id}}});
    for (ns, name) in members {
        Api::<ConfigMap>::namespaced(client.clone(), ns)
            .patch(name, &PatchParams::default(), &Patch::Merge(&relabel))
            .await
            .with_context(|| format!("relabel {ns}/{name}"))?;
    }
    Ok(legacy)
}

#[tokio::test]
async fn a_parent_of_the_previous_layout_is_taken_over_without_losing_members() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let cluster = format!("p+{}", unique("edge"));
    let repo = git_servers().create_repo(&unique("migrate"))?;
    // kubectl applies only into its parent's namespace, so this bundle lives in the agent namespace.
    let base = format!("clusters/{cluster}/local");
    for name in ["one", "two", "three"] {
        repo.write(
            &format!("{base}/{name}.yaml"),
            &fixtures::config_map(&agent_ns, name, "1"),
        )?;
    }
    repo.commit("three config maps")?;
    let mut agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    // Git writes into the agent's namespace here, which needs consent.
    agent.arg("--allow-own-namespace");
    let out = agent.once()?;
    assert!(out.status.success(), "{}", output_text(&out));
    let members: Vec<(&str, &str)> = ["one", "two", "three"].map(|n| (agent_ns.as_str(), n)).to_vec();
    let legacy = rewrite_as_previous_layout(&client, &agent_ns, &cluster, "local", &members).await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &agent_ns);
    let uids = |names: [&'static str; 2]| {
        let cms = cms.clone();
        async move {
            let mut uids = Vec::new();
            for n in names {
                uids.push(cms.get(n).await?.metadata.uid);
            }
            anyhow::Ok(uids)
        }
    };
    let uids_before = uids(["one", "two"]).await?;

    // The next commit drops `three`: only a parent that still holds it, with `three` still labelled for it,
    // prunes it.
    repo.remove(&format!("{base}/three.yaml"))?;
    repo.commit("three leaves")?;
    let out = agent.once()?;
    assert!(out.status.success(), "{}", output_text(&out));
    let parent = parent_of(&client, &agent_ns, &cluster, "local").await?;
    let name = parent.metadata.name.clone().unwrap_or_default();
    assert_ne!(
        name, legacy,
        "the parent still has the name of the previous layout"
    );
    assert!(
        name.contains("edge"),
        "the parent name {name} does not name the cluster"
    );
    assert_eq!(member_names(&parent)?, ["one", "two"]);
    assert!(
        cms.get_opt("three").await?.is_none(),
        "the migrated set no longer prunes"
    );
    assert_eq!(uids(["one", "two"]).await?, uids_before, "members were recreated");
    let labels = part_of(&client, &agent_ns, &["one", "two"]).await?;
    assert!(
        labels.values().all(|l| *l == id_of(&parent)),
        "{labels:?} against {}",
        id_of(&parent)
    );

    // kubectl's ApplySet check passes on the migrated set: with the tooling handed to kubectl, it prunes a
    // member missing from its file.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &agent_ns);
    let tooling =
        serde_json::json!({"metadata": {"annotations": {applyset::TOOLING_ANNOTATION: "kubectl/v1.32.3"}}});
    secrets
        .patch(&name, &PatchParams::default(), &Patch::Merge(&tooling))
        .await?;
    let out = std::process::Command::new(tools::kubectl()?)
        .env("KUBECTL_APPLYSET", "true")
        .env("KUBECONFIG", &env.kubeconfig)
        .args(["apply", "--server-side", "--prune", "-n", &agent_ns])
        .arg(format!("--applyset=secret/{name}"))
        .arg("-f")
        .arg(repo.work.join(format!("{base}/one.yaml")))
        .output()?;
    assert!(out.status.success(), "kubectl: {}", output_text(&out));
    assert!(cms.get_opt("one").await?.is_some());
    assert!(
        cms.get_opt("two").await?.is_none(),
        "kubectl did not see two as a member"
    );
    Ok(())
}

#[tokio::test]
async fn an_interrupted_migration_is_finished_with_every_member_of_both_parents() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "work").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("interrupted"))?;
    let base = format!("clusters/{cluster}/web");
    for name in ["one", "two"] {
        repo.write(
            &format!("{base}/{name}.yaml"),
            &fixtures::config_map(&ns, name, "1"),
        )?;
    }
    repo.commit("two config maps")?;
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    let out = agent.once()?;
    assert!(out.status.success(), "{}", output_text(&out));
    let current = parent_of(&client, &agent_ns, &cluster, "web").await?;
    let members = [(ns.as_str(), "one"), (ns.as_str(), "two")];
    rewrite_as_previous_layout(&client, &agent_ns, &cluster, "web", &members).await?;
    // The crash came after the new parent was written and before anything else: it exists again (here with
    // only `one`), both members still carry the old id.
    let mut partial = store::decode(&current)?;
    partial.members.retain(|k, _| k.name == "one");
    store::Store::new(client.clone(), &agent_ns, &cluster)
        .save(&partial)
        .await?;
    // `two` leaves Git: it must still be pruned, although only the old parent records it.
    repo.remove(&format!("{base}/two.yaml"))?;
    repo.commit("two leaves")?;
    let out = agent.once()?;
    assert!(out.status.success(), "{}", output_text(&out));
    let parent = parent_of(&client, &agent_ns, &cluster, "web").await?;
    assert_eq!(member_names(&parent)?, ["one"]);
    assert_eq!(managed_config_maps(&client, &ns).await?, ["one"]);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    assert!(
        cms.get_opt("two").await?.is_none(),
        "two was orphaned instead of pruned"
    );
    assert_eq!(part_of(&client, &ns, &["one"]).await?["one"], id_of(&parent));
    Ok(())
}

#[tokio::test]
async fn the_status_writer_keeps_reporting_a_bundle_through_its_migration() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "work").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("migrate-status"))?;
    for name in ["one", "two"] {
        repo.write(
            &format!("clusters/{cluster}/web/{name}.yaml"),
            &fixtures::config_map(&ns, name, "1"),
        )?;
    }
    repo.commit("two config maps")?;
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    let writer =
        AgentCommand::status_writer(git_servers(), env, &repo, &cluster, &agent_ns, Transport::Https)?;
    let path = format!("clusters/{cluster}/status/web/web-status.yaml");
    let resource_count = || -> Result<serde_json::Value> {
        let out = writer.once()?;
        anyhow::ensure!(out.status.success(), "{}", output_text(&out));
        let text = crate::status::file_on_branch(&repo, "main", &path).context("no status file")?;
        let doc: serde_json::Value = serde_saphyr::from_str(&text)?;
        Ok(doc["status"]["resourceCount"].clone())
    };
    let out = agent.once()?;
    assert!(out.status.success(), "{}", output_text(&out));
    let members = [(ns.as_str(), "one"), (ns.as_str(), "two")];
    rewrite_as_previous_layout(&client, &agent_ns, &cluster, "web", &members).await?;
    // Upgraded before the agent migrated: the parent of the previous layout still counts.
    assert_eq!(resource_count()?, 2);
    let out = agent.once()?;
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(resource_count()?, 2);
    Ok(())
}
