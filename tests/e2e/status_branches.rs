//! Status on the branch EMCO reads: `--git-branch` as a template, with the real agent and the real status writer
//! (both `--once`) against the real API server and Git server. EMCO's rsync reads status only from the branch
//! named after the cluster in its git2go mode (`{cluster}`), and from one branch per app in its github mode
//! (`{cluster}-{cid}-{app}`); the repository holds what rsync writes, with its file names (tracker
//! `<cid>-<app>.yaml`, resources `<name>+<Kind>.yaml`, single-line JSON).

use anyhow::{Context, Result};
use outpost_tests::agent::{AgentCommand, Transport, create_namespace, output_text};
use outpost_tests::process::run;
use outpost_tests::{TestRepo, git_servers, kube_env, unique};
use serde_json::{Value, json};

use crate::status::file_on_branch;

/// An EMCO context id (rsync's are large decimal numbers).
const CID: &str = "7268104236591027761";

/// The cluster's repository with its agent and status writer.
struct Edge {
    repo: TestRepo,
    cluster: String,
    /// Namespace of the apps' objects.
    ns: String,
    /// Namespace of the agent's inventories.
    agent_ns: String,
}

impl Edge {
    /// A fresh repository (with a README on main) for a new cluster named `cluster`.
    async fn new(client: &kube::Client, cluster: String) -> Result<Edge> {
        let repo = git_servers().create_repo(&unique("control"))?;
        repo.write("README.md", "resources and status\n")?;
        repo.commit("init")?;
        Ok(Edge {
            repo,
            cluster,
            ns: create_namespace(client, "apps").await?,
            agent_ns: create_namespace(client, "agent").await?,
        })
    }

    /// Write app `app` of context `CID` as rsync does: a ConfigMap and the status tracker, tagged
    /// `emco/deployment-id: <cid>-<app>`, namespace injected.
    fn emco_app(&self, app: &str) -> Result<()> {
        let dir = format!("clusters/{}/context/{CID}/app/{app}", self.cluster);
        let id = format!("{CID}-{app}");
        let config = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("{app}-config"), "namespace": self.ns, "labels": {"emco/deployment-id": id}},
            "data": {"app": app}});
        let tracker = json!({"apiVersion": "k8splugin.io/v1alpha1", "kind": "ResourceBundleState",
            "metadata": {"creationTimestamp": null, "name": id, "namespace": self.ns,
                "labels": {"emco/deployment-id": id}},
            "spec": {"selector": {"matchLabels": {"emco/deployment-id": id}}},
            "status": {"ready": false, "resourceCount": 0}});
        self.repo
            .write(&format!("{dir}/{app}-config+ConfigMap.yaml"), &config.to_string())?
            .write(&format!("{dir}/{id}.yaml"), &tracker.to_string())?;
        Ok(())
    }

    /// Where the status writer puts the status of EMCO app `app`.
    fn emco_status_path(&self, app: &str) -> String {
        format!(
            "clusters/{}/status/{CID}/app/{app}/{CID}-{app}-status.yaml",
            self.cluster
        )
    }

    /// Run the agent once.
    fn sync(&self) -> Result<()> {
        let env = kube_env();
        let out = AgentCommand::with_servers(
            git_servers(),
            env,
            &self.repo,
            &self.cluster,
            &self.agent_ns,
            Transport::Https,
        )?
        .once()?;
        anyhow::ensure!(out.status.success(), "agent: {}", output_text(&out));
        Ok(())
    }

    /// Run the status writer once with `--git-branch template`; its output when it failed.
    fn write_status(&self, template: &str) -> Result<std::result::Result<(), String>> {
        let env = kube_env();
        let mut cmd = AgentCommand::status_writer(
            git_servers(),
            env,
            &self.repo,
            &self.cluster,
            &self.agent_ns,
            Transport::Https,
        )?;
        cmd.arg("--git-branch").arg(template);
        let out = cmd.once()?;
        Ok(if out.status.success() {
            Ok(())
        } else {
            Err(output_text(&out))
        })
    }

    /// `git` in the served repository.
    fn git(&self, args: &[&str]) -> Result<String> {
        let bare = self.repo.bare.to_str().context("path")?;
        let mut all = vec!["-C", bare];
        all.extend_from_slice(args);
        Ok(run("git", &all, None)?.trim().to_owned())
    }

    /// Branches of the served repository, sorted.
    fn branches(&self) -> Result<Vec<String>> {
        let mut branches: Vec<String> = self
            .git(&["for-each-ref", "--format=%(refname:short)", "refs/heads/"])?
            .lines()
            .map(str::to_owned)
            .collect();
        branches.sort();
        Ok(branches)
    }

    /// Commits on `branch` that are not on main.
    fn commits_beyond_main(&self, branch: &str) -> Result<usize> {
        Ok(self
            .git(&[
                "rev-list",
                "--count",
                &format!("refs/heads/main..refs/heads/{branch}"),
            ])?
            .parse()?)
    }
}

/// The status document at `path` on `branch`, parsed.
fn status_on(edge: &Edge, branch: &str, path: &str) -> Result<Value> {
    let text = file_on_branch(&edge.repo, branch, path)
        .with_context(|| format!("no {path} on branch {branch}; branches: {:?}", edge.branches()))?;
    Ok(serde_saphyr::from_str(&text)?)
}

#[tokio::test]
async fn the_cluster_template_puts_status_on_the_branch_emco_git2go_reads() -> Result<()> {
    let client = kube_env().client().await?;
    let edge = Edge::new(&client, format!("{}+{}", unique("prov"), unique("edge"))).await?;
    edge.emco_app("web")?;
    edge.repo.commit("rsync: app web")?;
    edge.sync()?;
    edge.write_status("{cluster}")?.map_err(anyhow::Error::msg)?;

    let branch = edge.cluster.clone();
    let path = edge.emco_status_path("web");
    let doc = status_on(&edge, &branch, &path)?;
    assert_eq!(doc["kind"], "ResourceBundleState");
    assert_eq!(doc["metadata"]["name"], format!("{CID}-web"));
    assert_eq!(
        doc["status"]["configMapStatuses"][0]["metadata"]["name"],
        "web-config"
    );
    // The branch was created from main in one commit, and main was not written to.
    assert_eq!(edge.commits_beyond_main(&branch)?, 1);
    assert!(
        file_on_branch(&edge.repo, "main", &path).is_none(),
        "main was written to"
    );
    let mut expected = vec![branch.clone(), "main".to_owned()];
    expected.sort();
    assert_eq!(edge.branches()?, expected);
    Ok(())
}

#[tokio::test]
async fn the_per_app_template_puts_each_app_on_the_branch_emco_github_reads_and_removes_an_app_that_left()
-> Result<()> {
    let client = kube_env().client().await?;
    let edge = Edge::new(&client, format!("{}+{}", unique("prov"), unique("edge"))).await?;
    edge.emco_app("web")?;
    edge.emco_app("db")?;
    edge.repo.commit("rsync: apps web and db")?;
    edge.sync()?;
    let template = "{cluster}-{cid}-{app}";
    edge.write_status(template)?.map_err(anyhow::Error::msg)?;

    // `<provider>+<cluster>-<cid>-<app>`, each holding its app's status and no other.
    let branch = |app: &str| format!("{}-{CID}-{app}", edge.cluster);
    for (app, other) in [("web", "db"), ("db", "web")] {
        let doc = status_on(&edge, &branch(app), &edge.emco_status_path(app))?;
        assert_eq!(doc["metadata"]["name"], format!("{CID}-{app}"));
        assert_eq!(
            doc["status"]["configMapStatuses"][0]["metadata"]["name"],
            format!("{app}-config")
        );
        assert!(
            file_on_branch(&edge.repo, &branch(app), &edge.emco_status_path(other)).is_none(),
            "{other}'s status on {app}'s branch"
        );
        assert_eq!(
            edge.commits_beyond_main(&branch(app))?,
            1,
            "one commit per branch"
        );
        assert!(file_on_branch(&edge.repo, "main", &edge.emco_status_path(app)).is_none());
    }
    let mut expected = vec![branch("db"), branch("web"), "main".to_owned()];
    expected.sort();
    assert_eq!(edge.branches()?, expected);

    // db leaves Git; a writer started afresh removes its status from db's branch (which stays: EMCO deletes
    // it) and web's status stays on web's branch.
    edge.repo
        .remove(&format!("clusters/{}/context/{CID}/app/db", edge.cluster))?;
    let terminated = edge.repo.commit("rsync: terminate db")?;
    edge.sync()?;
    edge.write_status(template)?.map_err(anyhow::Error::msg)?;
    assert!(
        file_on_branch(&edge.repo, &branch("db"), &edge.emco_status_path("db")).is_none(),
        "db's status stayed on its branch"
    );
    assert_eq!(edge.branches()?, expected, "a branch was created or deleted");
    let web = status_on(&edge, &branch("web"), &edge.emco_status_path("web"))?;
    let sync: Value = serde_json::from_str(
        web["metadata"]["annotations"]["outpost.dev/sync"]
            .as_str()
            .context("sync annotation")?,
    )?;
    assert_eq!(sync["revision"].as_str(), Some(terminated.as_str()));
    Ok(())
}

#[tokio::test]
async fn a_plain_branch_name_gets_every_bundle_and_plain_bundles_follow_the_per_app_template() -> Result<()> {
    let client = kube_env().client().await?;
    let edge = Edge::new(&client, unique("plain-edge")).await?;
    for bundle in ["web", "db"] {
        edge.repo.write(
            &format!("clusters/{}/{bundle}/config.yaml", edge.cluster),
            &crate::fixtures::config_map(&edge.ns, &format!("{bundle}-config"), bundle),
        )?;
    }
    edge.repo.commit("two plain bundles")?;
    edge.sync()?;
    let path = |bundle: &str| format!("clusters/{}/status/{bundle}/{bundle}-status.yaml", edge.cluster);

    // A name without placeholders: one branch for everything, as always.
    edge.write_status("main")?.map_err(anyhow::Error::msg)?;
    for bundle in ["web", "db"] {
        let doc = status_on(&edge, "main", &path(bundle))?;
        assert_eq!(doc["metadata"]["name"], format!("{bundle}-status"));
    }
    assert_eq!(edge.branches()?, ["main"]);

    // The per-app template on plain bundles: the bundle stands in for the app, the empty context id and its
    // separator go.
    edge.write_status("{cluster}-{cid}-{app}")?
        .map_err(anyhow::Error::msg)?;
    for bundle in ["web", "db"] {
        let branch = format!("{}-{bundle}", edge.cluster);
        status_on(&edge, &branch, &path(bundle))?;
        assert_eq!(edge.commits_beyond_main(&branch)?, 1);
    }
    Ok(())
}

#[tokio::test]
async fn an_invalid_branch_template_stops_the_writer_at_startup_naming_the_flag() -> Result<()> {
    let client = kube_env().client().await?;
    let edge = Edge::new(&client, format!("{}+{}", unique("prov"), unique("edge"))).await?;
    for (template, expect) in [
        ("{cluster}-{application}", "unknown placeholder {application}"),
        ("{cluster}-{cid", "unmatched '{'"),
        (
            "{cluster}..{app}",
            "not a valid Git branch name: it contains '..'",
        ),
        ("{cid}", "not a valid Git branch name: it is empty"),
    ] {
        let text = edge
            .write_status(template)?
            .err()
            .with_context(|| format!("{template} was accepted"))?;
        assert!(
            text.contains("--git-branch") && text.contains(expect),
            "{template}: {text}"
        );
    }
    // The same check for the environment variable.
    let mut cmd = AgentCommand::status_writer(
        git_servers(),
        kube_env(),
        &edge.repo,
        &edge.cluster,
        &edge.agent_ns,
        Transport::Https,
    )?;
    cmd.env("OUTPOST_GIT_BRANCH", "status:{cluster}");
    let out = cmd.once()?;
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("OUTPOST_GIT_BRANCH") && text.contains("':'"),
        "{text}"
    );
    assert_eq!(edge.branches()?, ["main"], "a branch was written");
    Ok(())
}
