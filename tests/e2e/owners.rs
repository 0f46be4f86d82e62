//! One owner per object: duplicates are judged on settled keys (a namespaced object without a namespace is in
//! `default`, a cluster-scoped one has none), and an object moving between bundles stays recorded by its old
//! bundle until the new one has applied it.

use anyhow::Result;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, ListParams, Patch, PatchParams};
use outpost_agent::inventory::{applyset, store};
use outpost_tests::agent::{AgentCommand, Transport, create_namespace, output_text};
use outpost_tests::{git_servers, kube_env, unique};

use crate::fixtures;

/// `cluster`'s parent of `bundle`, found by its annotations.
async fn parent(
    client: &kube::Client,
    agent_ns: &str,
    cluster: &str,
    bundle: &str,
) -> Result<Option<Secret>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), agent_ns);
    let list = api
        .list(&ListParams::default().labels("outpost.dev/inventory=v1"))
        .await?;
    Ok(list.items.into_iter().find(|s| {
        let a = s.metadata.annotations.clone().unwrap_or_default();
        a.get(store::CLUSTER_ANNOTATION).map(String::as_str) == Some(cluster)
            && a.get(store::BUNDLE_ANNOTATION).map(String::as_str) == Some(bundle)
    }))
}

/// The ApplySet id of `cluster`'s parent of `bundle`.
async fn id_of(client: &kube::Client, agent_ns: &str, cluster: &str, bundle: &str) -> Result<String> {
    let parent = parent(client, agent_ns, cluster, bundle).await?;
    let labels = parent.and_then(|p| p.metadata.labels).unwrap_or_default();
    labels
        .get(applyset::ID_LABEL)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("{bundle} has no parent"))
}

/// Names of the members `cluster`'s parent of `bundle` records as applied (with a digest), sorted; empty when
/// it has no parent.
async fn recorded(client: &kube::Client, agent_ns: &str, cluster: &str, bundle: &str) -> Result<Vec<String>> {
    let Some(parent) = parent(client, agent_ns, cluster, bundle).await? else {
        return Ok(Vec::new());
    };
    let inv = store::decode(&parent)?;
    let mut names: Vec<String> = inv
        .members
        .iter()
        .filter(|(_, m)| !m.digest.is_empty())
        .map(|(k, _)| k.name.clone())
        .collect();
    names.sort();
    Ok(names)
}

/// The `part-of` label and uid of a ConfigMap.
async fn owner_and_uid(client: &kube::Client, ns: &str, name: &str) -> Result<(String, String)> {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns).get(name).await?;
    let label = cm
        .metadata
        .labels
        .unwrap_or_default()
        .remove(applyset::PART_OF_LABEL);
    Ok((label.unwrap_or_default(), cm.metadata.uid.unwrap_or_default()))
}

#[tokio::test]
async fn namespace_default_and_none_are_one_object_that_only_one_bundle_owns() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "own").await?;
    let cluster = unique("edge");
    let (shared, role) = (unique("shared"), unique("role"));
    let repo = git_servers().create_repo(&unique("duplicates"))?;
    let base = format!("clusters/{cluster}");
    let cm_in_default = |ns_line: &str, value: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {shared}\n{ns_line}data:\n  key: {value}\n"
        )
    };
    // `a` writes the namespace out, `b` leaves it to the default; `a` writes a namespace on a cluster-scoped
    // kind (as EMCO's rsync does), `b` does not. As written these differ; settled they are the same objects.
    repo.write(
        &format!("{base}/a/shared.yaml"),
        &cm_in_default("  namespace: default\n", "from-a"),
    )?
    .write(
        &format!("{base}/a/role.yaml"),
        &fixtures::cluster_role_with_namespace(&role, &ns),
    )?
    .write(&format!("{base}/b/shared.yaml"), &cm_in_default("", "from-b"))?
    .write(
        &format!("{base}/b/role.yaml"),
        &fixtures::cluster_role_with_namespace(&role, &ns).replace(&format!(",\"namespace\":\"{ns}\""), ""),
    )?
    .write(
        &format!("{base}/b/own.yaml"),
        &fixtures::config_map(&ns, "b-own", "1"),
    )?;
    repo.commit("two bundles define the same objects")?;
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    let mut versions = Vec::new();
    for _ in 0..2 {
        let out = agent.once()?;
        let text = output_text(&out);
        assert!(!out.status.success(), "a duplicate was not reported: {text}");
        assert!(
            text.contains(&format!("ConfigMap/default/{shared}"))
                && text.contains("bundle a defines the same object"),
            "{text}"
        );
        let a_id = id_of(&client, &agent_ns, &cluster, "a").await?;
        let cm = Api::<ConfigMap>::namespaced(client.clone(), "default")
            .get(&shared)
            .await?;
        assert_eq!(cm.data.unwrap_or_default()["key"], "from-a");
        assert_eq!(
            cm.metadata.labels.unwrap_or_default()[applyset::PART_OF_LABEL],
            a_id
        );
        let cr = Api::<ClusterRole>::all(client.clone()).get(&role).await?;
        assert_eq!(
            cr.metadata.labels.unwrap_or_default()[applyset::PART_OF_LABEL],
            a_id
        );
        versions.push((cm.metadata.resource_version, cr.metadata.resource_version));
        // Only `a` owns them; `b` still applies the rest.
        assert_eq!(
            recorded(&client, &agent_ns, &cluster, "a").await?,
            [role.clone(), shared.clone()]
        );
        assert_eq!(recorded(&client, &agent_ns, &cluster, "b").await?, ["b-own"]);
    }
    assert_eq!(
        versions[0], versions[1],
        "the objects flapped between the bundles"
    );

    // Once `b` drops its copies, it syncs cleanly and `a` keeps the objects.
    repo.remove(&format!("{base}/b/shared.yaml"))?
        .remove(&format!("{base}/b/role.yaml"))?;
    repo.commit("b drops its copies")?;
    let out = agent.once()?;
    assert!(out.status.success(), "{}", output_text(&out));
    let cm = Api::<ConfigMap>::namespaced(client.clone(), "default")
        .get(&shared)
        .await?;
    assert_eq!(cm.metadata.resource_version, versions[0].0);
    Api::<ConfigMap>::namespaced(client.clone(), "default")
        .delete(&shared, &Default::default())
        .await?;
    Api::<ClusterRole>::all(client.clone())
        .delete(&role, &Default::default())
        .await?;
    Ok(())
}

/// A Deployment that no controller makes available here, until the test writes its status.
fn deployment(ns: &str, name: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: main\n        image: db:1\n"
    )
}

#[tokio::test]
async fn an_object_moved_into_a_waiting_or_failing_bundle_stays_in_its_old_inventory_until_applied()
-> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "move").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("moves"))?;
    let dir = |bundle: &str, file: &str| format!("clusters/{cluster}/{bundle}/{file}");
    repo.write(&dir("alpha", "m.yaml"), &fixtures::config_map(&ns, "m1", "1"))?
        .write(&dir("alpha", "n.yaml"), &fixtures::config_map(&ns, "n1", "1"))?
        .write(
            &dir("alpha", "keep.yaml"),
            &fixtures::config_map(&ns, "keep", "1"),
        )?
        .write(&dir("db", "deploy.yaml"), &deployment(&ns, "db"))?;
    repo.commit("alpha holds m and n")?;
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    let sync = |expect_ok: bool| -> Result<String> {
        let out = agent.once()?;
        let text = output_text(&out);
        anyhow::ensure!(out.status.success() == expect_ok, "{text}");
        Ok(text)
    };
    sync(true)?;
    let id = |bundle: &'static str| id_of(&client, &agent_ns, &cluster, bundle);
    let (m_owner, m_uid) = owner_and_uid(&client, &ns, "m1").await?;
    let (_, n_uid) = owner_and_uid(&client, &ns, "n1").await?;
    assert_eq!(m_owner, id("alpha").await?);

    // One commit moves m into beta, which waits for db (never available here), and n into gamma, whose copy
    // the API server rejects (an invalid label value).
    let invalid_n = fixtures::config_map(&ns, "n1", "2").replace(
        "metadata:\n",
        "metadata:\n  labels:\n    broken: \"-not a label value-\"\n",
    );
    repo.remove(&dir("alpha", "m.yaml"))?
        .remove(&dir("alpha", "n.yaml"))?
        .write(&dir("beta", "m.yaml"), &fixtures::config_map(&ns, "m1", "2"))?
        .write(&dir("beta", "outpost.yaml"), "dependsOn: [db]\n")?
        .write(&dir("gamma", "n.yaml"), &invalid_n)?;
    repo.commit("move m to a waiting bundle, n to a failing one")?;
    for _ in 0..2 {
        let text = sync(false)?;
        assert!(text.contains(&format!("ConfigMap/{ns}/n1")), "{text}");
        // Neither pruned nor dropped: alpha still records both, as their labels say.
        assert_eq!(
            recorded(&client, &agent_ns, &cluster, "alpha").await?,
            ["keep", "m1", "n1"]
        );
        assert_eq!(
            owner_and_uid(&client, &ns, "m1").await?,
            (id("alpha").await?, m_uid.clone())
        );
        assert_eq!(
            owner_and_uid(&client, &ns, "n1").await?,
            (id("alpha").await?, n_uid.clone())
        );
        assert!(recorded(&client, &agent_ns, &cluster, "beta").await?.is_empty());
        assert!(recorded(&client, &agent_ns, &cluster, "gamma").await?.is_empty());
    }

    // db becomes available and gamma's copy is fixed: the new bundles take the objects over, alpha lets go.
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let generation = deploys.get("db").await?.metadata.generation.unwrap_or(1);
    let status = serde_json::json!({"status": {
        "observedGeneration": generation, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1,
        "availableReplicas": 1,
        "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                       {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}});
    deploys
        .patch_status("db", &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    repo.write(&dir("gamma", "n.yaml"), &fixtures::config_map(&ns, "n1", "2"))?;
    repo.commit("fix n")?;
    sync(true)?;
    assert_eq!(recorded(&client, &agent_ns, &cluster, "alpha").await?, ["keep"]);
    assert_eq!(recorded(&client, &agent_ns, &cluster, "beta").await?, ["m1"]);
    assert_eq!(recorded(&client, &agent_ns, &cluster, "gamma").await?, ["n1"]);
    assert_eq!(
        owner_and_uid(&client, &ns, "m1").await?,
        (id("beta").await?, m_uid)
    );
    assert_eq!(
        owner_and_uid(&client, &ns, "n1").await?,
        (id("gamma").await?, n_uid)
    );
    Ok(())
}

#[tokio::test]
async fn two_contexts_of_one_app_settled_to_one_object_leave_it_to_the_newer_without_a_failure() -> Result<()>
{
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let (ns_old, ns_new) = (unique("old"), unique("new"));
    let cluster = format!("p+{}", unique("edge"));
    let role = unique("role");
    let repo = git_servers().create_repo(&unique("contexts"))?;
    let file = |cid: &str, name: &str| format!("clusters/{cluster}/context/{cid}/app/web/{name}");
    // rsync writes the namespace of its intent even on a cluster-scoped kind: the update under a new context
    // carries another one, so as written the two differ; settled, they are one ClusterRole.
    repo.write(
        &file("100", "role+ClusterRole.yaml"),
        &fixtures::cluster_role_with_namespace(&role, &ns_old),
    )?
    .write(
        &file("100", "a+ConfigMap.yaml"),
        &fixtures::config_map(&agent_ns, "ctx-a", "1"),
    )?;
    repo.commit("context 100")?;
    let mut agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    // Git writes into the agent's namespace here, which needs consent.
    agent.arg("--allow-own-namespace");
    let out = agent.once()?;
    assert!(out.status.success(), "{}", output_text(&out));
    let uid = Api::<ClusterRole>::all(client.clone())
        .get(&role)
        .await?
        .metadata
        .uid;
    repo.write(
        &file("200", "role+ClusterRole.yaml"),
        &fixtures::cluster_role_with_namespace(&role, &ns_new),
    )?;
    repo.commit("context 200 updates the role")?;
    for _ in 0..2 {
        let out = agent.once()?;
        assert!(out.status.success(), "{}", output_text(&out));
        let cr = Api::<ClusterRole>::all(client.clone()).get(&role).await?;
        assert_eq!(cr.metadata.uid, uid, "the role was recreated");
        assert_eq!(
            cr.metadata.labels.unwrap_or_default()[applyset::PART_OF_LABEL],
            id_of(&client, &agent_ns, &cluster, "200-web").await?
        );
        assert_eq!(
            recorded(&client, &agent_ns, &cluster, "100-web").await?,
            ["ctx-a"]
        );
        assert_eq!(
            recorded(&client, &agent_ns, &cluster, "200-web").await?,
            [role.as_str()]
        );
    }
    Api::<ClusterRole>::all(client.clone())
        .delete(&role, &Default::default())
        .await?;
    Ok(())
}
