//! Cascading prunes: a Namespace (or CRD, or volume) that leaves Git deletes everything it holds, so it is
//! pruned only with consent — its `outpost.dev/prune: allow-cascade` annotation, `--allow-cascading-prune`, or
//! EMCO terminating its app — and otherwise stays, reported with a `PruneRefused` Event.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use outpost_tests::agent::{AgentCommand, Transport, create_namespace, output_text};
use outpost_tests::{git_servers, kube_env, unique};
use serde_json::json;

use crate::common::{Seen, eventually};
use crate::emco_rsync::{self, Rsync};
use crate::fixtures;

/// A Namespace annotated in Git to consent to its own cascading prune.
fn consenting_namespace(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  annotations:\n    outpost.dev/prune: allow-cascade\n"
    )
}

/// Whether Namespace `name` is being deleted or gone (no namespace controller runs here to finish the
/// deletion, so a deleted Namespace stays Terminating).
async fn deleted(client: &kube::Client, name: &str) -> Result<bool> {
    let ns = Api::<Namespace>::all(client.clone()).get_opt(name).await?;
    Ok(ns.is_none_or(|ns| ns.metadata.deletion_timestamp.is_some()))
}

/// Notes of the `PruneRefused` Events in `agent_ns`.
async fn refusals(client: &kube::Client, agent_ns: &str) -> Result<Vec<String>> {
    let events: Api<Event> = Api::namespaced(client.clone(), agent_ns);
    Ok(events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("PruneRefused"))
        .filter_map(|e| e.note)
        .collect())
}

#[tokio::test]
async fn a_namespace_that_left_git_is_pruned_only_with_its_annotation_or_the_flag() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "cascade").await?;
    let (plain, later, annotated) = (unique("plain"), unique("later"), unique("annotated"));
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("cascade"))?;
    let base = format!("clusters/{cluster}/app");
    repo.write(&format!("{base}/plain.yaml"), &fixtures::namespace(&plain))?
        .write(&format!("{base}/later.yaml"), &fixtures::namespace(&later))?
        .write(
            &format!("{base}/annotated.yaml"),
            &consenting_namespace(&annotated),
        )?
        .write(
            &format!("{base}/cm.yaml"),
            &fixtures::config_map(&ns, "stay", "1"),
        )?;
    repo.commit("three namespaces")?;
    let mut agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    let out = agent.once()?;
    assert!(out.status.success(), "{}", output_text(&out));

    for name in ["plain", "later", "annotated"] {
        repo.remove(&format!("{base}/{name}.yaml"))?;
    }
    repo.commit("the namespaces leave Git")?;
    let out = agent.once()?;
    let text = output_text(&out);
    assert!(!out.status.success(), "a refused prune must fail the run: {text}");
    assert!(
        text.contains(&format!("prune Namespace/{plain} refused")) && text.contains("allow-cascade"),
        "{text}"
    );
    assert!(
        deleted(&client, &annotated).await?,
        "the annotated Namespace was not pruned"
    );
    for name in [&plain, &later] {
        assert!(
            !deleted(&client, name).await?,
            "{name} was pruned without consent"
        );
    }

    // The daemon reports the refusal as an Event naming the object and how to consent, and keeps the member:
    // annotating it afterwards is enough.
    let daemon = agent.spawn("1s")?;
    let seen = eventually(Duration::from_secs(60), "a PruneRefused Event", || async {
        let notes = refusals(&client, &agent_ns).await?;
        Ok(
            match notes.iter().find(|n| n.contains(&format!("Namespace/{plain}"))) {
                Some(note) => Seen::Done(note.clone()),
                None => Seen::Not(format!("PruneRefused notes: {notes:?}")),
            },
        )
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", daemon.logs()))?;
    assert!(
        seen.contains("outpost.dev/prune=allow-cascade") && seen.contains("--allow-cascading-prune"),
        "{seen}"
    );
    let consent = json!({"metadata": {"annotations": {"outpost.dev/prune": "allow-cascade"}}});
    Api::<Namespace>::all(client.clone())
        .patch(&plain, &PatchParams::default(), &Patch::Merge(&consent))
        .await?;
    eventually(
        Duration::from_secs(60),
        "the annotated Namespace pruned",
        || async {
            Ok(Seen::done_if(
                deleted(&client, &plain).await?,
                format!("{plain} still there"),
            ))
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", daemon.logs()))?;
    assert!(
        !deleted(&client, &later).await?,
        "{later} was pruned without consent"
    );
    drop(daemon);

    // The flag consents for every object.
    agent.arg("--allow-cascading-prune");
    let out = agent.once()?;
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        deleted(&client, &later).await?,
        "--allow-cascading-prune did not prune {later}"
    );
    Ok(())
}

#[tokio::test]
async fn emco_terminating_an_app_consents_to_pruning_its_namespace_and_an_update_does_not() -> Result<()> {
    let client = kube_env().client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "emco").await?;
    let cluster = format!("{}+{}", unique("provider"), unique("edge"));
    let repo = git_servers().create_repo(&unique("emco-cascade"))?;
    let rsync = Rsync::new(&repo, &cluster, &ns);
    let cid = "5123";
    let (web_ns, db_ns, api_ns) = (unique("web"), unique("db"), unique("api"));
    let namespace = |name: &str| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    rsync.apply_config(cid)?;
    for (app, app_ns) in [("web", &web_ns), ("db", &db_ns), ("api", &api_ns)] {
        rsync.apply(
            cid,
            cid,
            app,
            &[
                ("ns+Namespace", namespace(app_ns)),
                (&format!("{app}+ConfigMap"), emco_rsync::config_map(app, "1")),
            ],
        )?;
        rsync.add_tracker(cid, cid, app, None)?;
    }
    let agent = AgentCommand::new(kube_env(), &repo, &cluster, &agent_ns, Transport::Https)?;
    let out = agent.once()?;
    assert!(out.status.success(), "{}", output_text(&out));

    // An update of db drops its Namespace while the app stays: not a termination, refused.
    rsync.delete(cid, "db", &["ns+Namespace"])?;
    let out = agent.once()?;
    let text = output_text(&out);
    assert!(
        text.contains(&format!("prune Namespace/{db_ns} refused")),
        "{text}"
    );
    assert!(
        !deleted(&client, &db_ns).await?,
        "an app update pruned its Namespace"
    );

    // EMCO terminates web: its resources go, its tracker stays. That is consent. It terminated api too, tracker
    // and all, in commits the agent did not see: the tracker-only one is found in the history.
    rsync.delete(cid, "api", &["ns+Namespace", "api+ConfigMap"])?;
    rsync.delete_tracker(cid, cid, "api")?;
    rsync.delete(cid, "web", &["ns+Namespace", "web+ConfigMap"])?;
    let text = output_text(&agent.once()?);
    assert!(
        deleted(&client, &web_ns).await?,
        "EMCO's termination did not prune the Namespace\n{text}"
    );
    assert!(
        deleted(&client, &api_ns).await?,
        "a termination found in the history did not prune the Namespace\n{text}"
    );
    assert!(text.contains("Deletion announced"), "{text}");
    assert!(!text.contains(&format!("Namespace/{web_ns} refused")), "{text}");
    assert!(
        !deleted(&client, &db_ns).await?,
        "db's Namespace was pruned without consent"
    );
    Ok(())
}
