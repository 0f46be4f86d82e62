//! EMCO interop: rsync's real sequences of commits (see `emco_rsync`) replayed against the real API server and
//! Git server — a fresh install before EMCO's first deployment, terminating a cluster's last app step by step
//! and with the steps missed, app updates under a new context id, and pre-install / delete hooks.

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use outpost_tests::agent::{AgentCommand, Transport, create_namespace, output_text};
use outpost_tests::{TestRepo, git_servers, kube_env, unique};
use serde_json::Value;

use crate::common::{Seen, eventually, inventory_bundles, labelled_config_maps};
use crate::emco_rsync::{self, PREINSTALL_HOOK, Rsync};
use crate::status::file_on_branch;

/// The status writer as EMCO's git2go mode needs it: status on the branch named after the cluster (rsync
/// force-pushes main from its own clone, which would erase status commits there).
fn status_writer(repo: &TestRepo, cluster: &str, agent_ns: &str) -> Result<AgentCommand> {
    let mut writer = AgentCommand::status_writer(
        git_servers(),
        kube_env(),
        repo,
        cluster,
        agent_ns,
        Transport::Https,
    )?;
    writer.arg("--git-branch").arg(cluster);
    Ok(writer)
}

/// Run the agent once and require success; returns its output.
fn once_ok(agent: &AgentCommand) -> Result<String> {
    let out = agent.once()?;
    let text = output_text(&out);
    anyhow::ensure!(out.status.success(), "agent failed:\n{text}");
    Ok(text)
}

/// Run the status writer once and require success.
fn write_status(writer: &AgentCommand) -> Result<()> {
    let out = writer.once()?;
    anyhow::ensure!(
        out.status.success(),
        "status writer failed:\n{}",
        output_text(&out)
    );
    Ok(())
}

/// The status document of bundle `<cid>-<app>` on the cluster's branch, where rsync reads it, parsed.
fn status_doc(repo: &TestRepo, cluster: &str, cid: &str, app: &str) -> Option<Value> {
    let path = format!("clusters/{cluster}/status/{cid}/app/{app}/{cid}-{app}-status.yaml");
    serde_saphyr::from_str(&file_on_branch(repo, cluster, &path)?).ok()
}

/// Names of the ConfigMaps in `ns` that rsync labelled as an app's, sorted.
async fn app_config_maps(client: &kube::Client, ns: &str) -> Result<Vec<String>> {
    labelled_config_maps(client, ns, emco_rsync::DEPLOYMENT_ID).await
}

/// uid of ConfigMap `ns/name`.
async fn uid(client: &kube::Client, ns: &str, name: &str) -> Result<String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    api.get(name).await?.metadata.uid.context("uid")
}

/// A cluster name as EMCO writes it.
fn emco_cluster() -> String {
    format!("{}+{}", unique("provider"), unique("edge"))
}

/// A fresh EMCO cluster to test with: (client, agent namespace, app namespace, cluster, repository).
async fn scene(repo_prefix: &str) -> Result<(kube::Client, String, String, String, TestRepo)> {
    let client = kube_env().client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "emco").await?;
    let repo = git_servers().create_repo(&unique(repo_prefix))?;
    Ok((client, agent_ns, ns, emco_cluster(), repo))
}

#[tokio::test]
async fn a_fresh_install_waits_for_emcos_first_deployment_ready_and_without_events() -> Result<()> {
    let (client, agent_ns, ns, cluster, repo) = scene("fresh").await?;
    // Another cluster is deployed already; ours has no directory at all.
    repo.write("clusters/other+edge/context/1/app/x/x+ConfigMap.yaml", "{}")?;
    repo.commit("another cluster")?;

    let agent = AgentCommand::new(kube_env(), &repo, &cluster, &agent_ns, Transport::Https)?;
    let text = once_ok(&agent)?;
    assert!(
        text.contains("does not exist") && text.contains("waiting"),
        "{text}"
    );
    let status = output_text(&agent.subcommand("status")?);
    assert!(
        status.contains("Waiting:") && status.contains(&format!("clusters/{cluster} does not exist")),
        "{status}"
    );

    // rsync's first commit for the cluster: the Flux root files only, before any context/ directory. They are
    // not applied (this API server has no Flux CRDs: applying them would fail the sync), still waiting.
    let rsync = Rsync::new(&repo, &cluster, &ns);
    rsync.apply_config("8311547307375540033")?;
    let text = once_ok(&agent)?;
    assert!(text.contains("holds nothing to apply"), "{text}");
    assert!(inventory_bundles(&client, &agent_ns).await?.is_empty());

    // The daemon: ready while waiting, and no Event about it.
    let daemon = agent.spawn("1s")?;
    daemon.wait_ready(Duration::from_secs(60)).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let events: Api<Event> = Api::namespaced(client.clone(), &agent_ns);
    let found = events.list(&ListParams::default()).await?.items;
    assert!(found.is_empty(), "events while waiting: {found:?}");
    assert_eq!(daemon.get("/readyz").await?.0, 200);

    // The first deployment arrives and is applied.
    rsync.apply(
        "8311547307375540033",
        "8311547307375540033",
        "web",
        &[("web+ConfigMap", emco_rsync::config_map("web", "1"))],
    )?;
    eventually(Duration::from_secs(60), "the first app applied", || async {
        let names = app_config_maps(&client, &ns).await?;
        Ok(Seen::done_if(
            names == ["web"],
            format!("app ConfigMaps={names:?}"),
        ))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", daemon.logs()))?;
    let status = output_text(&agent.subcommand("status")?);
    assert!(!status.contains("Waiting:"), "{status}");
    Ok(())
}

#[tokio::test]
async fn terminating_a_clusters_last_app_prunes_it_as_rsync_commits_each_step() -> Result<()> {
    let (client, agent_ns, ns, cluster, repo) = scene("terminate").await?;
    let rsync = Rsync::new(&repo, &cluster, &ns);
    let cid = "6723461349578462372";
    rsync.apply_config(cid)?;
    rsync.apply(
        cid,
        cid,
        "web",
        &[
            ("web+Deployment", emco_rsync::deployment("web")),
            ("web+Service", emco_rsync::service("web")),
            ("web-config+ConfigMap", emco_rsync::config_map("web-config", "1")),
        ],
    )?;
    rsync.add_tracker(cid, cid, "web", None)?;
    let agent = AgentCommand::new(kube_env(), &repo, &cluster, &agent_ns, Transport::Https)?;
    once_ok(&agent)?;
    assert_eq!(app_config_maps(&client, &ns).await?, ["web-config"]);
    let writer = status_writer(&repo, &cluster, &agent_ns)?;
    write_status(&writer)?;
    let doc = status_doc(&repo, &cluster, cid, "web").context("status after install")?;
    assert_eq!(doc["status"]["resourceCount"], 3);

    // Step 1: the resources go, the tracker stays — the last app of the cluster is deleted.
    rsync.delete(
        cid,
        "web",
        &["web+Deployment", "web+Service", "web-config+ConfigMap"],
    )?;
    once_ok(&agent)?;
    assert!(app_config_maps(&client, &ns).await?.is_empty());
    assert_eq!(
        inventory_bundles(&client, &agent_ns).await?,
        [format!("{cid}-web")]
    );
    write_status(&writer)?;
    let doc = status_doc(&repo, &cluster, cid, "web").context("status while the tracker stays")?;
    assert_eq!(doc["status"]["resourceCount"], 0, "{doc}");

    // Step 2: the Flux root files go. Step 3 (120 s later in EMCO): the tracker goes, and with it the path.
    rsync.delete_config(cid)?;
    once_ok(&agent)?;
    rsync.delete_tracker(cid, cid, "web")?;
    let text = once_ok(&agent)?;
    assert!(text.contains("waiting"), "{text}");
    assert!(inventory_bundles(&client, &agent_ns).await?.is_empty());
    write_status(&writer)?;
    assert!(
        status_doc(&repo, &cluster, cid, "web").is_none(),
        "the status file goes with its bundle"
    );
    // Polling on is quiet: same commit, nothing to do, no error.
    once_ok(&agent)?;
    Ok(())
}

#[tokio::test]
async fn an_agent_that_missed_the_tracker_only_step_finds_it_in_history_and_a_bare_removal_stays_refused()
-> Result<()> {
    let (client, agent_ns, ns, a, repo) = scene("missed").await?;
    let agent_ns_b = create_namespace(&client, "agent").await?;
    let b = emco_cluster();
    let rsync_a = Rsync::new(&repo, &a, &ns);
    let rsync_b = Rsync::new(&repo, &b, &ns);
    for (rsync, name) in [(&rsync_a, "a-config"), (&rsync_b, "b-config")] {
        rsync.apply_config("42")?;
        rsync.apply(
            "42",
            "42",
            "web",
            &[(&format!("{name}+ConfigMap"), emco_rsync::config_map(name, "1"))],
        )?;
        rsync.add_tracker("42", "42", "web", None)?;
    }
    // HTTPS: the cache is shallow, so finding the skipped commits means deepening the fetch.
    let agent_a = AgentCommand::new(kube_env(), &repo, &a, &agent_ns, Transport::Https)?;
    let agent_b = AgentCommand::new(kube_env(), &repo, &b, &agent_ns_b, Transport::Https)?;
    once_ok(&agent_a)?;
    once_ok(&agent_b)?;
    assert_eq!(app_config_maps(&client, &ns).await?, ["a-config", "b-config"]);

    // Cluster a: all of EMCO's termination steps land while its agent is away, plus unrelated commits.
    rsync_a.delete("42", "web", &["a-config+ConfigMap"])?;
    rsync_a.delete_config("42")?;
    repo.write("clusters/unrelated/x.yaml", "{}")?;
    repo.commit("unrelated")?;
    rsync_a.delete_tracker("42", "42", "web")?;
    // Cluster b: its path vanishes in one commit, with no tracker-only step: that is not EMCO terminating.
    repo.remove(&format!("clusters/{b}"))?;
    repo.commit("cluster b removed by hand")?;

    let text = once_ok(&agent_a)?;
    assert!(text.contains("Deletion announced"), "{text}");
    let out = agent_b.once()?;
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("does not exist") && text.contains("--allow-empty"),
        "{text}"
    );
    assert_eq!(app_config_maps(&client, &ns).await?, ["b-config"]);
    Ok(())
}

#[tokio::test]
async fn an_app_update_under_a_new_context_moves_objects_without_recreating_them() -> Result<()> {
    let (client, agent_ns, ns, cluster, repo) = scene("update").await?;
    let rsync = Rsync::new(&repo, &cluster, &ns);
    // Context ids are random: the newer one sorts first on purpose.
    let (ctx1, ctx2) = ("9000000000000000001", "1000000000000000002");
    rsync.apply_config(ctx1)?;
    rsync.apply(
        ctx1,
        ctx1,
        "web",
        &[
            ("changed+ConfigMap", emco_rsync::config_map("changed", "v1")),
            ("same+ConfigMap", emco_rsync::config_map("same", "v1")),
        ],
    )?;
    rsync.add_tracker(ctx1, ctx1, "web", None)?;
    let agent = AgentCommand::new(kube_env(), &repo, &cluster, &agent_ns, Transport::Https)?;
    once_ok(&agent)?;
    let (changed_uid, same_uid) = (
        uid(&client, &ns, "changed").await?,
        uid(&client, &ns, "same").await?,
    );

    // First update (ctx1 → ctx2): written in place under ctx1's path, tracker re-added.
    rsync.apply(
        ctx1,
        ctx1,
        "web",
        &[("changed+ConfigMap", emco_rsync::config_map("changed", "v2"))],
    )?;
    rsync.add_tracker(ctx1, ctx1, "web", None)?;
    once_ok(&agent)?;
    // Second update (ctx2 → ctx3): under ctx2's path, while ctx1's directory still holds the old version.
    rsync.apply(
        ctx2,
        ctx1,
        "web",
        &[("changed+ConfigMap", emco_rsync::config_map("changed", "v3"))],
    )?;
    rsync.add_tracker(ctx2, ctx1, "web", None)?;
    let text = once_ok(&agent)?;
    assert!(text.contains("Taken over by the newer bundle"), "{text}");
    let value = || async {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        Ok::<_, anyhow::Error>(api.get("changed").await?.data.unwrap_or_default()["key"].clone())
    };
    assert_eq!(value().await?, "v3");
    // Stable: a later full sync (every --once is one) keeps the newer bundle's content, nothing flips back.
    once_ok(&agent)?;
    assert_eq!(value().await?, "v3");
    assert_eq!(
        uid(&client, &ns, "changed").await?,
        changed_uid,
        "never deleted and recreated"
    );
    assert_eq!(uid(&client, &ns, "same").await?, same_uid);
    let inventories: Api<Secret> = Api::namespaced(client.clone(), &agent_ns);
    let list = inventories
        .list(&ListParams::default().labels("outpost.dev/inventory=v1"))
        .await?;
    assert_eq!(list.items.len(), 2);

    // The status of the update's directory is where rsync (watching the directory's context) reads it.
    let writer = status_writer(&repo, &cluster, &agent_ns)?;
    write_status(&writer)?;
    let doc = status_doc(&repo, &cluster, ctx2, "web").context("status of the update directory")?;
    let names: Vec<&str> = doc["status"]["configMapStatuses"]
        .as_array()
        .context("configMapStatuses")?
        .iter()
        .filter_map(|c| c["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["changed"]);

    // The old directory goes: its own objects are pruned, the moved one stays.
    repo.remove(&rsync.app_dir(ctx1, "web"))?;
    repo.commit("old context removed")?;
    once_ok(&agent)?;
    assert_eq!(app_config_maps(&client, &ns).await?, ["changed"]);
    assert_eq!(uid(&client, &ns, "changed").await?, changed_uid);
    assert_eq!(value().await?, "v3");
    Ok(())
}

#[tokio::test]
async fn hooks_keep_status_flowing_and_nothing_is_pruned_before_rsync_removes_it() -> Result<()> {
    let (client, agent_ns, ns, cluster, repo) = scene("hooks").await?;
    let rsync = Rsync::new(&repo, &cluster, &ns);
    let cid = "5555";
    let agent = AgentCommand::new(kube_env(), &repo, &cluster, &agent_ns, Transport::Https)?;
    let writer = status_writer(&repo, &cluster, &agent_ns)?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let job_names = || async {
        let mut names: Vec<String> = jobs
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter_map(|j| j.metadata.name)
            .collect();
        names.sort();
        Ok::<_, anyhow::Error>(names)
    };
    let status = || status_doc(&repo, &cluster, cid, "web");

    // Instantiate with a pre-install hook: tracker marked emco/preinstallHook, the hook Job, wait.
    rsync.apply_config(cid)?;
    rsync.add_tracker(cid, cid, "web", Some(PREINSTALL_HOOK))?;
    once_ok(&agent)?;
    rsync.apply(
        cid,
        cid,
        "web",
        &[("pre+Job", emco_rsync::hook_job("pre", "pre-install"))],
    )?;
    once_ok(&agent)?;
    assert_eq!(job_names().await?, ["pre"]);
    write_status(&writer)?;
    let doc = status().context("status during the pre-install hook")?;
    assert_eq!(doc["metadata"]["labels"][PREINSTALL_HOOK], "true", "{doc}");
    assert_eq!(
        doc["status"]["jobStatuses"][0]["metadata"]["name"], "pre",
        "{doc}"
    );
    // Play the Job controller: the hook succeeds; rsync reads that from the status. Current API servers accept
    // Complete only with the start and completion times and SuccessCriteriaMet beside it, as the controller
    // writes them; 1.20 takes the same status.
    let done = serde_json::json!({"status": {"succeeded": 1,
        "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:00:01Z",
        "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}});
    jobs.patch_status("pre", &PatchParams::default(), &Patch::Merge(&done))
        .await?;
    write_status(&writer)?;
    assert_eq!(
        status().context("status")?["status"]["jobStatuses"][0]["status"]["succeeded"],
        1
    );

    // rsync deletes the marked tracker, installs the main resources, then re-adds the tracker unmarked.
    rsync.delete_tracker(cid, cid, "web")?;
    once_ok(&agent)?;
    assert_eq!(job_names().await?, ["pre"], "a tracker's absence prunes nothing");
    write_status(&writer)?;
    assert!(status().is_some(), "status keeps flowing without the tracker");
    rsync.apply(
        cid,
        cid,
        "web",
        &[("main+ConfigMap", emco_rsync::config_map("main", "1"))],
    )?;
    rsync.add_tracker(cid, cid, "web", None)?;
    once_ok(&agent)?;
    assert_eq!(app_config_maps(&client, &ns).await?, ["main"]);
    write_status(&writer)?;
    let doc = status().context("status after install")?;
    assert!(doc["metadata"]["labels"].get(PREINSTALL_HOOK).is_none(), "{doc}");

    // Terminate: pre-delete hook first (main resources stay until rsync removes them), then the resources,
    // a post-delete hook, then every hook resource; the tracker alone is left.
    rsync.apply(
        cid,
        cid,
        "web",
        &[("pre-delete+Job", emco_rsync::hook_job("pre-delete", "pre-delete"))],
    )?;
    once_ok(&agent)?;
    assert_eq!(
        app_config_maps(&client, &ns).await?,
        ["main"],
        "nothing pruned before rsync removes it"
    );
    assert_eq!(job_names().await?, ["pre", "pre-delete"]);
    rsync.delete(cid, "web", &["main+ConfigMap"])?;
    once_ok(&agent)?;
    assert!(app_config_maps(&client, &ns).await?.is_empty());
    rsync.apply(
        cid,
        cid,
        "web",
        &[(
            "post-delete+Job",
            emco_rsync::hook_job("post-delete", "post-delete"),
        )],
    )?;
    once_ok(&agent)?;
    assert_eq!(job_names().await?, ["post-delete", "pre", "pre-delete"]);
    write_status(&writer)?;
    assert_eq!(
        status().context("status")?["status"]["jobStatuses"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    rsync.delete(cid, "web", &["pre+Job", "pre-delete+Job", "post-delete+Job"])?;
    once_ok(&agent)?;
    eventually(Duration::from_secs(30), "hook Jobs deleted", || async {
        // Jobs are deleted in the background: gone or terminating.
        let left = jobs.list(&ListParams::default()).await?.items;
        let live: Vec<&str> = left
            .iter()
            .filter(|j| j.metadata.deletion_timestamp.is_none())
            .map(|j| j.metadata.name.as_deref().unwrap_or("<unnamed>"))
            .collect();
        Ok(Seen::done_if(
            live.is_empty(),
            format!("Jobs not being deleted: {live:?}"),
        ))
    })
    .await?;
    write_status(&writer)?;
    assert_eq!(status().context("final status")?["status"]["resourceCount"], 0);
    Ok(())
}
