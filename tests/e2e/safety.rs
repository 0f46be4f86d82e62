//! Safety: what the agent refuses to delete, what it keeps, and how it handles immutable fields.

use anyhow::Result;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use outpost_tests::agent::{AgentCommand, Transport, create_namespace, output_text};
use outpost_tests::{git_servers, kube_env, unique};

use crate::common::{config_value, managed_config_maps};
use crate::fixtures;

/// An immutable ConfigMap, optionally with `outpost.dev/force: "true"`.
fn immutable_config_map(ns: &str, name: &str, value: &str, force: bool) -> String {
    let annotations = if force {
        "  annotations:\n    outpost.dev/force: \"true\"\n"
    } else {
        ""
    };
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\n{annotations}immutable: true\ndata:\n  key: {value:?}\n"
    )
}

#[tokio::test]
async fn an_emptied_or_missing_cluster_path_deletes_nothing_unless_allowed() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "empty").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("empty"))?;
    let base = format!("clusters/{cluster}");
    repo.write(
        &format!("{base}/app/a.yaml"),
        &fixtures::config_map(&ns, "a", "1"),
    )?
    .write(
        &format!("{base}/app/b.yaml"),
        &fixtures::config_map(&ns, "b", "1"),
    )?;
    repo.commit("two objects")?;
    let mut agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    let out = agent.once()?;
    assert!(out.status.success(), "{}", output_text(&out));

    // The path still exists but holds no manifests.
    repo.remove(&format!("{base}/app"))?
        .write(&format!("{base}/README.md"), "moved elsewhere")?;
    repo.commit("no manifests")?;
    let out = agent.once()?;
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("holds no manifests") && text.contains("--allow-empty"),
        "{text}"
    );
    assert_eq!(managed_config_maps(&client, &ns).await?, ["a", "b"]);

    // The path is gone altogether (a typo in --cluster looks the same).
    repo.remove(&base)?
        .write("clusters/other/x.yaml", &fixtures::config_map(&ns, "x", "1"))?;
    repo.commit("cluster path removed")?;
    let out = agent.once()?;
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains(&format!("{base} does not exist")), "{text}");
    assert_eq!(managed_config_maps(&client, &ns).await?, ["a", "b"]);

    // Asked for explicitly, the empty source prunes everything.
    agent.arg("--allow-empty");
    let out = agent.once()?;
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(managed_config_maps(&client, &ns).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn max_prune_ratio_refuses_a_commit_that_deletes_too_much() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "ratio").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("ratio"))?;
    let base = format!("clusters/{cluster}/app");
    for name in ["a", "b", "c", "d"] {
        repo.write(
            &format!("{base}/{name}.yaml"),
            &fixtures::config_map(&ns, name, "1"),
        )?;
    }
    repo.commit("four")?;
    let mut agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    agent.arg("--max-prune-ratio").arg("0.5");
    assert!(agent.once()?.status.success());
    for name in ["b", "c", "d"] {
        repo.remove(&format!("{base}/{name}.yaml"))?;
    }
    repo.write(&format!("{base}/a.yaml"), &fixtures::config_map(&ns, "a", "2"))?;
    repo.commit("delete three of four")?;
    let out = agent.once()?;
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("would delete 3 of 4") && text.contains("--max-prune-ratio"),
        "{text}"
    );
    assert_eq!(managed_config_maps(&client, &ns).await?, ["a", "b", "c", "d"]);
    assert_eq!(
        config_value(&client, &ns, "a").await?.as_deref(),
        Some("1"),
        "a refused reconcile applied a change"
    );
    Ok(())
}

#[tokio::test]
async fn objects_marked_prune_disabled_or_no_longer_ours_are_left_in_place() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "keep").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("keep"))?;
    let base = format!("clusters/{cluster}/app");
    let keep = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keep\n  namespace: {ns}\n  annotations:\n    outpost.dev/prune: disabled\ndata:\n  key: k\n"
    );
    repo.write(&format!("{base}/keep.yaml"), &keep)?
        .write(
            &format!("{base}/adopted.yaml"),
            &fixtures::config_map(&ns, "adopted", "1"),
        )?
        .write(
            &format!("{base}/gone.yaml"),
            &fixtures::config_map(&ns, "gone", "1"),
        )?
        .write(
            &format!("{base}/stay.yaml"),
            &fixtures::config_map(&ns, "stay", "1"),
        )?;
    repo.commit("four")?;
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    assert!(agent.once()?.status.success());
    // Someone else takes `adopted` over: it now belongs to another ApplySet.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let relabel = serde_json::json!({"metadata": {"labels": {"applyset.kubernetes.io/part-of": "applyset-someone-else-v1"}}});
    cms.patch("adopted", &PatchParams::default(), &Patch::Merge(&relabel))
        .await?;
    for name in ["keep", "adopted", "gone"] {
        repo.remove(&format!("{base}/{name}.yaml"))?;
    }
    repo.commit("remove three")?;
    let out = agent.once()?;
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        cms.get_opt("gone").await?.is_none(),
        "an object that left Git was not pruned"
    );
    assert!(
        cms.get_opt("keep").await?.is_some(),
        "an object with outpost.dev/prune: disabled was deleted"
    );
    assert!(
        cms.get_opt("adopted").await?.is_some(),
        "an object owned by another ApplySet was deleted"
    );
    assert!(cms.get_opt("stay").await?.is_some());
    Ok(())
}

#[tokio::test]
async fn an_immutable_field_change_is_reported_unless_forced_and_the_rest_still_applies() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "immutable").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("immutable"))?;
    let base = format!("clusters/{cluster}/app");
    repo.write(
        &format!("{base}/frozen.yaml"),
        &immutable_config_map(&ns, "frozen", "1", false),
    )?
    .write(
        &format!("{base}/forced.yaml"),
        &immutable_config_map(&ns, "forced", "1", true),
    )?
    .write(
        &format!("{base}/plain.yaml"),
        &fixtures::config_map(&ns, "plain", "1"),
    )?;
    repo.commit("immutable config maps")?;
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    assert!(agent.once()?.status.success());
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let forced_uid = cms.get("forced").await?.metadata.uid;

    repo.write(
        &format!("{base}/frozen.yaml"),
        &immutable_config_map(&ns, "frozen", "2", false),
    )?
    .write(
        &format!("{base}/forced.yaml"),
        &immutable_config_map(&ns, "forced", "2", true),
    )?
    .write(
        &format!("{base}/plain.yaml"),
        &fixtures::config_map(&ns, "plain", "2"),
    )?;
    repo.commit("change all three")?;
    let out = agent.once()?;
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("ConfigMap/") && text.contains("/frozen") && text.contains("immutable"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{base}/frozen.yaml")),
        "the error does not name the file: {text}"
    );
    assert_eq!(config_value(&client, &ns, "frozen").await?.as_deref(), Some("1"));
    assert_eq!(
        config_value(&client, &ns, "plain").await?.as_deref(),
        Some("2"),
        "the rest of the bundle was not applied"
    );
    let forced = cms.get("forced").await?;
    assert_eq!(forced.data.unwrap_or_default()["key"], "2");
    assert_ne!(
        forced.metadata.uid, forced_uid,
        "outpost.dev/force did not recreate the object"
    );
    Ok(())
}

/// Issue 12 item 5: Git may not write into the agent's namespace unless allowed, and never a Secret that would
/// pass for an inventory parent (it would be read back as ours and steer pruning).
#[tokio::test]
async fn the_agent_namespace_and_forged_inventories_are_not_gits_to_write() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "fenced").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("fenced"))?;
    let base = format!("clusters/{cluster}/app");
    let forged = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: forged\n  namespace: {ns}\n  labels:\n    outpost.dev/inventory: v1\n  annotations:\n    outpost.dev/cluster: {cluster}\n    outpost.dev/bundle: ghost\ntype: outpost.dev/inventory\n"
    );
    repo.write(&format!("{base}/ok.yaml"), &fixtures::config_map(&ns, "ok", "1"))?
        .write(
            &format!("{base}/own.yaml"),
            &fixtures::config_map(&agent_ns, "own", "1"),
        )?
        .write(&format!("{base}/forged.yaml"), &forged)?;
    repo.commit("one fine object, one in the agent's namespace, one forged inventory")?;
    let mut agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    let out = agent.once()?;
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    for needle in [
        "own.yaml",
        "metadata.namespace is the agent's own namespace",
        "--allow-own-namespace",
        "forged.yaml",
        "marks it as an Outpost inventory",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert_eq!(managed_config_maps(&client, &ns).await?, ["ok"]);
    assert!(managed_config_maps(&client, &agent_ns).await?.is_empty());
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
    assert!(
        secrets.get_opt("forged").await?.is_none(),
        "a forged inventory was applied"
    );

    // Allowed explicitly, the agent's namespace is writable; a forged inventory never is.
    agent.arg("--allow-own-namespace");
    let out = agent.once()?;
    let text = output_text(&out);
    assert!(
        text.contains("forged.yaml") && !text.contains("own.yaml"),
        "{text}"
    );
    assert_eq!(managed_config_maps(&client, &agent_ns).await?, ["own"]);
    assert!(
        secrets.get_opt("forged").await?.is_none(),
        "a forged inventory was applied"
    );
    Ok(())
}
