//! Upgrades and downgrades of the inventory format: a current agent reads and migrates every inventory earlier
//! agents wrote (the fixture holds their exact bytes), and refuses a bundle whose inventory a newer Outpost
//! wrote, neither applying nor pruning it, while other bundles sync.
//!
//! The repository has no release tags, so "the previous release" is represented by
//! `tests/fixtures/inventory-previous-formats.yaml`: parents and members written by the agent at two earlier
//! commits (its header says how). The wire contract is spelt out here (`outpost.dev/inventory-format`, `"2"`)
//! rather than taken from the code under test.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use outpost_agent::inventory::{SyncState, applyset, store};
use outpost_tests::agent::{AgentCommand, Transport, create_namespace, output_text};
use outpost_tests::{git_servers, kube_env, unique};
use serde_json::{Value, json};

use crate::common::{Seen, config_value, eventually, managed_config_maps};
use crate::fixtures;

/// Parents and members as earlier agents wrote them.
const FIXTURE: &str = include_str!("../fixtures/inventory-previous-formats.yaml");
/// The fixture's cluster, agent namespace and member namespace (its bytes name them, so they are fixed; no
/// other test uses them).
const CLUSTER: &str = "edge-upgrade";
const AGENT_NS: &str = "outpost-upgrade";
const WORK_NS: &str = "upgrade-work";
/// The annotation and value every parent this agent writes carries.
const FORMAT_ANNOTATION: &str = "outpost.dev/inventory-format";
const CURRENT_FORMAT: &str = "2";
/// The name the first agent gave bundle `api`'s parent (in the fixture).
const FIRST_LAYOUT_API_PARENT: &str = "outpost-api-14c2529e";

/// Create the fixture's namespaces and objects as the earlier agents left them (server-side apply under the
/// agent's field manager, as they wrote them).
async fn create_fixture(client: &kube::Client) -> Result<()> {
    for name in [AGENT_NS, WORK_NS] {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        Api::<Namespace>::all(client.clone())
            .create(&Default::default(), &ns)
            .await
            .with_context(|| format!("create namespace {name} (the fixture's, fixed)"))?;
    }
    let docs: Vec<Value> = serde_saphyr::from_multiple(FIXTURE).context("fixture YAML")?;
    let params = PatchParams::apply(outpost_agent::apply::FIELD_MANAGER);
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        let name = doc["metadata"]["name"]
            .as_str()
            .context("fixture name")?
            .to_owned();
        match doc["kind"].as_str() {
            Some("Secret") => {
                Api::<Secret>::namespaced(client.clone(), AGENT_NS)
                    .patch(&name, &params, &Patch::Apply(&doc))
                    .await?;
            }
            Some("ConfigMap") => {
                Api::<ConfigMap>::namespaced(client.clone(), WORK_NS)
                    .patch(&name, &params, &Patch::Apply(&doc))
                    .await?;
            }
            other => anyhow::bail!("fixture document {name} of kind {other:?}"),
        }
    }
    Ok(())
}

/// The parent Secrets of `cluster` in `agent_ns` by name (any label value).
async fn parents(client: &kube::Client, agent_ns: &str, cluster: &str) -> Result<BTreeMap<String, Secret>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), agent_ns);
    let list = api
        .list(&ListParams::default().labels("outpost.dev/inventory"))
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter(|s| {
            let a = s.metadata.annotations.clone().unwrap_or_default();
            a.get("outpost.dev/cluster").map(String::as_str) == Some(cluster)
        })
        .map(|s| (s.metadata.name.clone().unwrap_or_default(), s))
        .collect())
}

/// The ConfigMaps `names` in `ns` by name: each one's uid and the ApplySet it is part of.
async fn members(
    client: &kube::Client,
    ns: &str,
    names: &[&str],
) -> Result<BTreeMap<String, (String, String)>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let mut seen = BTreeMap::new();
    for name in names {
        let cm = api.get(name).await.with_context(|| format!("{ns}/{name}"))?;
        let part_of = cm.metadata.labels.unwrap_or_default()[applyset::PART_OF_LABEL].clone();
        seen.insert(name.to_string(), (cm.metadata.uid.unwrap_or_default(), part_of));
    }
    Ok(seen)
}

/// Names of the members a parent records, sorted.
fn recorded(parent: &Secret) -> Result<Vec<String>> {
    Ok(store::decode(parent)?
        .members
        .keys()
        .map(|k| k.name.clone())
        .collect())
}

/// A parent's format marker, if it has one.
fn format_of(parent: &Secret) -> Option<String> {
    parent
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(FORMAT_ANNOTATION).cloned())
}

#[tokio::test]
async fn inventories_of_every_earlier_format_are_read_and_rewritten_in_the_current_one() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    create_fixture(&client).await?;
    let before = members(
        &client,
        WORK_NS,
        &["api-one", "api-two", "web-one", "web-two", "web-three"],
    )
    .await?;
    // Git drops one member of each bundle and keeps the others as they were applied.
    let repo = git_servers().create_repo(&unique("upgrade"))?;
    for (bundle, name) in [("api", "api-one"), ("web", "web-one"), ("web", "web-two")] {
        repo.write(
            &format!("clusters/{CLUSTER}/{bundle}/{name}.yaml"),
            &fixtures::config_map(WORK_NS, name, "1"),
        )?;
    }
    repo.commit("api-two and web-three leave")?;
    // The fixture's inventories record a commit of a repository that no longer exists (as after a move to a
    // new mirror), so freshness would refuse this repository's unrelated history: allow it once, as README
    // says to on such a move.
    let mut agent = AgentCommand::new(env, &repo, CLUSTER, AGENT_NS, Transport::Https)?;
    agent.arg("--allow-history-rewrite");
    let out = agent.once()?;
    assert!(out.status.success(), "{}", output_text(&out));

    // Still managed: removed members pruned, the others kept (not recreated).
    assert_eq!(
        managed_config_maps(&client, WORK_NS).await?,
        ["api-one", "web-one", "web-two"]
    );
    let after = members(&client, WORK_NS, &["api-one", "web-one", "web-two"]).await?;
    for (name, (uid, _)) in &after {
        assert_eq!(*uid, before[name].0, "{name} was recreated");
    }

    // Both parents are in the current format under their per-cluster names; the first layout's name is gone.
    let parents = parents(&client, AGENT_NS, CLUSTER).await?;
    let (api, web) = (
        applyset::parent_name(CLUSTER, "api"),
        applyset::parent_name(CLUSTER, "web"),
    );
    assert_eq!(
        parents.keys().collect::<Vec<_>>(),
        {
            let mut names = vec![&api, &web];
            names.sort();
            names
        },
        "{FIRST_LAYOUT_API_PARENT} should have been migrated"
    );
    for (name, parent) in &parents {
        assert_eq!(
            format_of(parent).as_deref(),
            Some(CURRENT_FORMAT),
            "{name} was not rewritten in the current format"
        );
        let inv = store::decode(parent)?;
        assert_eq!(inv.sync.state, SyncState::Synced, "{name}: {:?}", inv.sync);
        assert_eq!(inv.sync.pruned, 1, "{name}: {:?}", inv.sync);
        // Every member carries its parent's id (the first layout's members were relabelled).
        let id = parent.metadata.labels.clone().unwrap_or_default()[applyset::ID_LABEL].clone();
        for key in inv.members.keys() {
            assert_eq!(after[&key.name].1, id, "{} in {name}", key.name);
        }
    }
    assert_eq!(recorded(&parents[&api])?, ["api-one"]);
    assert_eq!(recorded(&parents[&web])?, ["web-one", "web-two"]);
    // What the earlier inventories recorded is carried over, not started afresh: web's first sighting stays,
    // api's (written before the field existed) reads as older than any.
    let first_seen = |name: &str| store::decode(&parents[name]).map(|inv| inv.info.first_seen);
    assert_eq!(
        first_seen(&web)?.as_deref(),
        Some("2026-12-01T11:22:35.065885884Z")
    );
    assert_eq!(first_seen(&api)?.as_deref(), Some("0"));
    Ok(())
}

#[tokio::test]
async fn a_bundle_whose_inventory_a_newer_outpost_wrote_is_refused_and_never_pruned_from() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "downgrade").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("downgrade"))?;
    let file = |bundle: &str, name: &str| format!("clusters/{cluster}/{bundle}/{name}.yaml");
    for (bundle, name) in [
        ("ahead", "a-one"),
        ("ahead", "a-two"),
        ("relabelled", "r-one"),
        ("other", "o-one"),
    ] {
        repo.write(&file(bundle, name), &fixtures::config_map(&ns, name, "1"))?;
    }
    repo.commit("three bundles")?;
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    let out = agent.once()?;
    assert!(out.status.success(), "{}", output_text(&out));

    // A newer Outpost rewrites two parents: one with a higher format marker (its data still decodes: the
    // marker alone must stop this agent), one under another inventory label value.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &agent_ns);
    let newer = PatchParams::apply("outpost-future").force();
    let ahead = applyset::parent_name(&cluster, "ahead");
    let relabelled = applyset::parent_name(&cluster, "relabelled");
    let stamp = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"annotations": {FORMAT_ANNOTATION: "3"}}});
    secrets.patch(&ahead, &newer, &Patch::Apply(&stamp)).await?;
    let relabel = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"labels": {"outpost.dev/inventory": "v2"}}});
    secrets
        .patch(&relabelled, &newer, &Patch::Apply(&relabel))
        .await?;
    let versions = |parents: &BTreeMap<String, Secret>| -> Vec<Option<String>> {
        [&ahead, &relabelled]
            .iter()
            .map(|n| parents.get(*n).and_then(|p| p.metadata.resource_version.clone()))
            .collect()
    };
    let stamped = versions(&parents(&client, &agent_ns, &cluster).await?);

    // Git drops a-two and changes a-one and r-one; `other` gains o-two.
    repo.remove(&file("ahead", "a-two"))?
        .write(&file("ahead", "a-one"), &fixtures::config_map(&ns, "a-one", "2"))?
        .write(
            &file("relabelled", "r-one"),
            &fixtures::config_map(&ns, "r-one", "2"),
        )?
        .write(&file("other", "o-two"), &fixtures::config_map(&ns, "o-two", "1"))?;
    repo.commit("a-two leaves, a-one and r-one change, o-two arrives")?;
    let out = agent.once()?;
    let text = output_text(&out);
    assert!(!out.status.success(), "a refused bundle is a failed sync: {text}");
    for expected in [
        format!("inventory {ahead} is in format 3, written by a newer Outpost"),
        format!("inventory {relabelled} is in format \"v2\" (label outpost.dev/inventory)"),
        "this agent reads formats up to 2: upgrade the agent".to_owned(),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in {text}");
    }

    // Nothing of the refused bundles is pruned or applied, and their parents are left as the newer agent wrote
    // them; the other bundle syncs.
    assert_eq!(
        managed_config_maps(&client, &ns).await?,
        ["a-one", "a-two", "o-one", "o-two", "r-one"]
    );
    for name in ["a-one", "r-one"] {
        assert_eq!(
            config_value(&client, &ns, name).await?.as_deref(),
            Some("1"),
            "{name} was applied"
        );
    }
    let now = parents(&client, &agent_ns, &cluster).await?;
    assert_eq!(versions(&now), stamped, "a newer parent was rewritten");
    assert_eq!(format_of(&now[&ahead]).as_deref(), Some("3"));
    let other = &now[&applyset::parent_name(&cluster, "other")];
    assert_eq!(recorded(other)?, ["o-one", "o-two"]);
    assert_eq!(format_of(other).as_deref(), Some(CURRENT_FORMAT));
    assert_eq!(store::decode(other)?.sync.state, SyncState::Synced);

    // `outpost-agent status` names the state and the reason.
    let mut status = agent.clone();
    status.env("OUTPOST_OUTPUT", "json");
    let out = status.subcommand("status")?;
    anyhow::ensure!(out.status.success(), "status: {}", output_text(&out));
    let report: Value = serde_json::from_slice(&out.stdout)?;
    let bundle = |name: &str| -> Value {
        report["bundles"]
            .as_array()
            .and_then(|b| b.iter().find(|b| b["name"] == name).cloned())
            .unwrap_or_default()
    };
    for name in ["ahead", "relabelled"] {
        assert_eq!(bundle(name)["state"], "NewerFormat", "{report:#}");
        let error = bundle(name)["errors"][0].as_str().unwrap_or_default().to_owned();
        assert!(error.contains("newer Outpost"), "{report:#}");
    }
    assert_eq!(bundle("other")["state"], "Synced", "{report:#}");

    // The status writer skips them with a warning instead of misreading them, and reports the other bundle.
    let writer =
        AgentCommand::status_writer(git_servers(), env, &repo, &cluster, &agent_ns, Transport::Https)?;
    let out = writer.once()?;
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("Inventory of a newer Outpost skipped") && text.contains(&ahead),
        "{text}"
    );
    let status_file = |bundle: &str| format!("clusters/{cluster}/status/{bundle}/{bundle}-status.yaml");
    assert!(crate::status::file_on_branch(&repo, "main", &status_file("other")).is_some());
    assert!(crate::status::file_on_branch(&repo, "main", &status_file("ahead")).is_none());

    // The daemon publishes the refusal as a Warning Event on the refused parent, like any bundle failure.
    let mut daemon = agent.spawn("1h")?;
    let events: Api<Event> = Api::namespaced(client.clone(), &agent_ns);
    let note = eventually(
        Duration::from_secs(60),
        "a SyncFailed event on the newer parent",
        || async {
            let items = events.list(&Default::default()).await?.items;
            let found = items.iter().find(|e| {
                e.reason.as_deref() == Some("SyncFailed")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(ahead.as_str())
            });
            Ok(match found {
                Some(e) => Seen::Done(e.note.clone().unwrap_or_default()),
                None => Seen::Not(format!("{} events", items.len())),
            })
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", daemon.logs()))?;
    daemon.terminate(Duration::from_secs(10))?;
    assert!(note.contains("written by a newer Outpost"), "{note}");
    assert!(
        config_value(&client, &ns, "a-two").await?.is_some(),
        "the daemon pruned from a newer inventory"
    );
    Ok(())
}
