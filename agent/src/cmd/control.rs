//! `outpost-agent suspend|resume|reconcile [BUNDLE]`: write the control annotations for an operator, through the
//! API server (the pod opens no port), as `kubectl annotate` would — on the agent's control ConfigMap, or on the
//! bundle's inventory parent. `reconcile` then waits for the agent to handle the request.

use std::io::Write;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::cli::Mode;
use crate::control::{self, HANDLED_AT_ANNOTATION, REQUESTED_AT_ANNOTATION, SUSPEND_ANNOTATION};
use crate::inventory::applyset::parent_name;
use crate::inventory::store::{BUNDLE_ANNOTATION, CLUSTER_ANNOTATION, INVENTORY_LABEL};

/// Field manager of the annotations these commands write.
pub const FIELD_MANAGER: &str = "outpost-cli";
/// How long `reconcile` waits for the agent to handle its request.
const WAIT: Duration = Duration::from_secs(120);

/// Why a control command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bundle has no inventory in the namespace.
    #[error(
        "bundle {bundle:?} of cluster {cluster:?} has no inventory in namespace {namespace} (Secret {parent}); bundles there: {known}"
    )]
    NoSuchBundle {
        /// As given.
        bundle: String,
        /// `--cluster`.
        cluster: String,
        /// `--namespace`.
        namespace: String,
        /// The parent name looked for.
        parent: String,
        /// The bundles that have one.
        known: String,
    },
    /// The API server refused.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// The error.
        source: kube::Error,
    },
    /// `reconcile` was not handled in time.
    #[error(
        "the agent has not handled the request within {0:?}: is it running, and is it (or the bundle) suspended? `outpost-agent status` shows"
    )]
    NotHandled(Duration),
    /// Not a control command.
    #[error("not a control command")]
    NotControl,
}

/// Where the annotations go.
struct Target {
    /// `ConfigMap` or `Secret`.
    kind: &'static str,
    /// Its name.
    name: String,
    /// For messages.
    what: String,
}

/// Run `mode` for `bundle` (the whole agent without one) of `cluster`, whose objects live in `namespace`.
pub async fn run(
    client: Client,
    mode: crate::cli::Mode,
    namespace: &str,
    cluster: &str,
    bundle: Option<&str>,
    out: &mut impl Write,
) -> Result<(), Error> {
    let target = match bundle {
        Some(bundle) => bundle_target(&client, namespace, cluster, bundle).await?,
        None => Target {
            kind: "ConfigMap",
            name: control::configmap_name(cluster),
            what: format!("the agent of cluster {cluster}"),
        },
    };
    let now = jiff::Timestamp::now().to_string();
    let (annotation, value, verb) = match mode {
        Mode::Suspend => (SUSPEND_ANNOTATION, "true", "suspended"),
        Mode::Resume => (SUSPEND_ANNOTATION, "false", "resumed"),
        Mode::Reconcile => (REQUESTED_AT_ANNOTATION, now.as_str(), "asked to sync now"),
        _ => return Err(Error::NotControl),
    };
    annotate(&client, namespace, &target, annotation, value).await?;
    let _ = writeln!(
        out,
        "{} {verb} ({annotation}={value} on {} {namespace}/{})",
        target.what, target.kind, target.name
    );
    if mode == Mode::Reconcile {
        wait_handled(&client, namespace, &target, value).await?;
        let _ = writeln!(out, "{} synced", target.what);
    }
    Ok(())
}

/// The parent of `bundle`, which must exist (annotating would otherwise create a stray Secret).
async fn bundle_target(
    client: &Client,
    namespace: &str,
    cluster: &str,
    bundle: &str,
) -> Result<Target, Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let name = parent_name(cluster, bundle);
    let found = secrets
        .get_metadata_opt(&name)
        .await
        .map_err(|source| Error::Api {
            what: format!("reading Secret {namespace}/{name}"),
            source,
        })?;
    if found.is_none() {
        let listed = secrets
            .list_metadata(&kube::api::ListParams::default().labels(INVENTORY_LABEL))
            .await
            .map_err(|source| Error::Api {
                what: format!("listing inventories in {namespace}"),
                source,
            })?;
        let mut known: Vec<String> = listed
            .items
            .iter()
            .filter_map(|p| p.metadata.annotations.as_ref())
            .filter(|a| a.get(CLUSTER_ANNOTATION).map(String::as_str) == Some(cluster))
            .filter_map(|a| a.get(BUNDLE_ANNOTATION).cloned())
            .collect();
        known.sort();
        return Err(Error::NoSuchBundle {
            bundle: bundle.to_owned(),
            cluster: cluster.to_owned(),
            namespace: namespace.to_owned(),
            parent: name,
            known: if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            },
        });
    }
    Ok(Target {
        kind: "Secret",
        name,
        what: format!("bundle {bundle}"),
    })
}

/// Set one annotation on the target with server-side apply (our field manager owns only it).
async fn annotate(
    client: &Client,
    namespace: &str,
    target: &Target,
    annotation: &str,
    value: &str,
) -> Result<(), Error> {
    let body = json!({
        "apiVersion": "v1",
        "kind": target.kind,
        "metadata": {"name": target.name, "namespace": namespace, "annotations": {annotation: value}},
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let result = match target.kind {
        "ConfigMap" => Api::<ConfigMap>::namespaced(client.clone(), namespace)
            .patch(&target.name, &params, &Patch::Apply(&body))
            .await
            .map(drop),
        _ => Api::<Secret>::namespaced(client.clone(), namespace)
            .patch(&target.name, &params, &Patch::Apply(&body))
            .await
            .map(drop),
    };
    result.map_err(|source| Error::Api {
        what: format!("annotating {} {namespace}/{}", target.kind, target.name),
        source,
    })
}

/// Wait until the agent copied `value` to `handled-at` on the target.
async fn wait_handled(client: &Client, namespace: &str, target: &Target, value: &str) -> Result<(), Error> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let annotations = match target.kind {
            "ConfigMap" => Api::<ConfigMap>::namespaced(client.clone(), namespace)
                .get_metadata(&target.name)
                .await
                .map(|m| m.metadata.annotations),
            _ => Api::<Secret>::namespaced(client.clone(), namespace)
                .get_metadata(&target.name)
                .await
                .map(|m| m.metadata.annotations),
        }
        .map_err(|source| Error::Api {
            what: format!("reading {} {namespace}/{}", target.kind, target.name),
            source,
        })?;
        if annotations
            .and_then(|a| a.get(HANDLED_AT_ANNOTATION).cloned())
            .as_deref()
            == Some(value)
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(Error::NotHandled(WAIT));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
