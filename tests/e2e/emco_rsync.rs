//! What EMCO's rsync commits to the resource repository, replayed commit by commit with its file names and
//! file contents, as read from EMCO's own source (project-emco/emco-base, `src/rsync/`):
//!
//! - `plugins/fluxv2/config.go` `ApplyConfig`: one commit with `clusters/<p+c>/<cid>.yaml` (a Flux
//!   `GitRepository`) and `kust<cid>.yaml` (a `Kustomization` with `path: clusters/<p+c>/context/<cid>`), both
//!   ghodss/yaml (YAML, not JSON); `DeleteConfig` removes both in one commit.
//! - `plugins/fluxv2/resources.go` `Apply`: each resource as `context/<cid>/app/<app>/<name>+<Kind>.yaml`, the
//!   single-line JSON of `unstructured.MarshalJSON`, namespace injected except on `Namespace`;
//!   `status.TagResource` adds `emco/deployment-id: <statusAcID>-<app>` to metadata and pod templates.
//!   `handleResources` commits all resources of one step together.
//! - `plugins/fluxv2/status.go` `ApplyStatusCR`/`DeleteStatusCR`: the tracker `<statusAcID>-<app>.yaml`, the
//!   JSON of `status.GetStatusCR` (optionally labelled `emco/preinstallHook: "true"`), one commit each.
//! - `gitops/emcogit2go/git2go.go` `PushBranch`: every commit is pushed with `+refs/heads/main` — a force
//!   push from rsync's own clone, which is why status goes to another branch (the cluster's, in git2go mode).
//! - `context/context.go` `UpdateComApp` + `connector.NewProvider(instca.cid)`: an update writes under the Git
//!   path of the context it updates *from*, so a second update lands in a new `context/<cid2>/` directory.

use anyhow::Result;
use outpost_tests::TestRepo;
use serde_json::{Value, json};

/// Label rsync puts on every resource (and pod template) of an app.
pub const DEPLOYMENT_ID: &str = "emco/deployment-id";
/// Extra tracker label while pre-install hooks run.
pub const PREINSTALL_HOOK: &str = "emco/preinstallHook";

/// rsync for one cluster of one repository.
pub struct Rsync<'a> {
    /// The resource repository.
    pub repo: &'a TestRepo,
    /// `provider+cluster`.
    pub cluster: String,
    /// The logical cloud's namespace (injected into resources without one).
    pub namespace: String,
}

impl<'a> Rsync<'a> {
    /// rsync writing `cluster`'s files into `repo`, injecting `namespace`.
    pub fn new(repo: &'a TestRepo, cluster: &str, namespace: &str) -> Self {
        Rsync {
            repo,
            cluster: cluster.to_owned(),
            namespace: namespace.to_owned(),
        }
    }

    /// Commit everything in the work clone and push it as rsync does: `+refs/heads/main`, forced.
    fn commit(&self, message: &str) -> Result<String> {
        self.repo.commit_force_pushed(message)
    }

    /// `clusters/<p+c>/context/<cid>/app/<app>`.
    pub fn app_dir(&self, cid: &str, app: &str) -> String {
        format!("clusters/{}/context/{cid}/app/{app}", self.cluster)
    }

    /// `ApplyConfig`: the Flux root files of context `cid`, one commit.
    pub fn apply_config(&self, cid: &str) -> Result<String> {
        let root = format!("clusters/{}", self.cluster);
        let git_repository = format!(
            "apiVersion: source.toolkit.fluxcd.io/v1beta1\nkind: GitRepository\nmetadata:\n  creationTimestamp: null\n  name: \"{cid}\"\n  namespace: {ns}\nspec:\n  interval: 30s\n  ref:\n    branch: main\n  url: https://git.example/emco/resources\nstatus: {{}}\n",
            ns = self.namespace
        );
        let kustomization = format!(
            "apiVersion: kustomize.toolkit.fluxcd.io/v1beta2\nkind: Kustomization\nmetadata:\n  creationTimestamp: null\n  name: kust{cid}\n  namespace: {ns}\nspec:\n  interval: 5s\n  path: clusters/{cluster}/context/{cid}\n  prune: true\n  retryInterval: 5s\n  sourceRef:\n    kind: GitRepository\n    name: \"{cid}\"\n  timeout: 5s\nstatus: {{}}\n",
            ns = self.namespace,
            cluster = self.cluster
        );
        self.repo
            .write(&format!("{root}/{cid}.yaml"), &git_repository)?
            .write(&format!("{root}/kust{cid}.yaml"), &kustomization)?;
        self.commit(&format!("Commit for {root}/context/{cid}"))
    }

    /// `DeleteConfig`: both Flux root files go, one commit.
    pub fn delete_config(&self, cid: &str) -> Result<String> {
        let root = format!("clusters/{}", self.cluster);
        self.repo
            .remove(&format!("{root}/{cid}.yaml"))?
            .remove(&format!("{root}/kust{cid}.yaml"))?;
        self.commit(&format!("Delete Flux config of {cid}"))
    }

    /// `handleResources` with `OpApply`: resources `(name+Kind, object)` of app `app` tagged with
    /// `<status_acid>-<app>`, written under `context/<dir_cid>/`, one commit.
    pub fn apply(
        &self,
        dir_cid: &str,
        status_acid: &str,
        app: &str,
        resources: &[(&str, Value)],
    ) -> Result<String> {
        let dir = self.app_dir(dir_cid, app);
        let label = format!("{status_acid}-{app}");
        for (name, object) in resources {
            let mut object = object.clone();
            tag(&mut object, &label);
            if object["metadata"].get("namespace").is_none() && object["kind"] != "Namespace" {
                object["metadata"]["namespace"] = json!(self.namespace);
            }
            self.repo
                .write(&format!("{dir}/{name}.yaml"), &serde_json::to_string(&object)?)?;
        }
        self.commit(&format!("Commit for {dir}/"))
    }

    /// `handleResources` with `OpDelete`: the resources' files go, one commit (the tracker stays).
    pub fn delete(&self, dir_cid: &str, app: &str, names: &[&str]) -> Result<String> {
        let dir = self.app_dir(dir_cid, app);
        for name in names {
            self.repo.remove(&format!("{dir}/{name}.yaml"))?;
        }
        self.commit(&format!("Commit for {dir}/"))
    }

    /// `addStatusTracker`: `<status_acid>-<app>.yaml` in `context/<dir_cid>/app/<app>/`, one commit.
    pub fn add_tracker(
        &self,
        dir_cid: &str,
        status_acid: &str,
        app: &str,
        extra_label: Option<&str>,
    ) -> Result<String> {
        let label = format!("{status_acid}-{app}");
        let mut labels = json!({DEPLOYMENT_ID: label});
        if let Some(extra) = extra_label {
            labels[extra] = json!("true");
        }
        let tracker = json!({
            "apiVersion": "k8splugin.io/v1alpha1",
            "kind": "ResourceBundleState",
            "metadata": {"creationTimestamp": null, "labels": labels, "name": label, "namespace": self.namespace},
            "spec": {"selector": {"matchLabels": {DEPLOYMENT_ID: label}}},
            "status": {"ready": false, "resourceCount": 0},
        });
        let dir = self.app_dir(dir_cid, app);
        self.repo
            .write(&format!("{dir}/{label}.yaml"), &serde_json::to_string(&tracker)?)?;
        self.commit(&format!("Commit for {dir}/"))
    }

    /// `deleteStatusTracker` / the timer 120 s after termination: the tracker file goes, one commit.
    pub fn delete_tracker(&self, dir_cid: &str, status_acid: &str, app: &str) -> Result<String> {
        let dir = self.app_dir(dir_cid, app);
        self.repo.remove(&format!("{dir}/{status_acid}-{app}.yaml"))?;
        self.commit(&format!("Commit for {dir}/"))
    }
}

/// `status.TagResource`: the label on metadata and, for workloads, on the pod template.
fn tag(object: &mut Value, label: &str) {
    object["metadata"]["labels"][DEPLOYMENT_ID] = json!(label);
    if object.pointer("/spec/template").is_some() {
        object["spec"]["template"]["metadata"]["labels"][DEPLOYMENT_ID] = json!(label);
    }
}

/// A ConfigMap resource.
pub fn config_map(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"key": value}})
}

/// A Deployment resource.
pub fn deployment(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]}}}})
}

/// A Service resource.
pub fn service(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "protocol": "TCP"}]}})
}

/// A hook Job (Helm's `helm.sh/hook` annotation, as EMCO keeps it on hook resources).
pub fn hook_job(name: &str, hook: &str) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "annotations": {"helm.sh/hook": hook}},
        "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": {"job": name}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "hook", "image": "busybox:1.36"}]}}}})
}
