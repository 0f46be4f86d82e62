//! Reading and writing inventory parents (Secrets in the agent's namespace) with server-side apply, in the
//! current [`format`](super::format); parents of older formats are read, those of newer ones refused.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use serde_json::json;

use super::{Error, Inventory, SyncResult, applyset, decode_members, encode_members, format};
use crate::apply::FIELD_MANAGER;

pub use super::applyset::{INVENTORY_LABEL, SECRET_TYPE};
/// Its value on every parent. It never changes: older agents select parents by it, and one they did not see
/// they would overwrite as a new bundle's. Data layouts are told apart by the [`format`] marker instead.
pub const INVENTORY_VERSION: &str = format::LABEL_VALUE;
/// Annotation with the readable bundle name.
pub const BUNDLE_ANNOTATION: &str = "outpost.dev/bundle";
/// Annotation with the readable cluster name (label values cannot hold `+`).
pub const CLUSTER_ANNOTATION: &str = "outpost.dev/cluster";
/// Annotation with the last sync result (JSON).
pub const SYNC_ANNOTATION: &str = "outpost.dev/sync";
/// Annotation with the last applied commit.
pub const REVISION_ANNOTATION: &str = "outpost.dev/revision";
/// Data key: gzip(JSON) member list.
const MEMBERS_KEY: &str = "members.json.gz";
/// Data key: JSON bundle info (layout, trackers, dependsOn).
const INFO_KEY: &str = "bundle.json";

/// Errors talking to the API server about parents.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The agent namespace does not exist.
    #[error("namespace {namespace} does not exist: create it or point --namespace at the agent's namespace")]
    NamespaceMissing {
        /// The agent namespace.
        namespace: String,
    },
    /// A member's `part-of` label could not be moved to its parent's new id while migrating a parent of the
    /// previous layout; the old parent stays until a later sync finishes the migration.
    #[error("moving {object} to its inventory's per-cluster ApplySet id: {source}; the migration is retried")]
    Relabel {
        /// `Kind/namespace/name`.
        object: String,
        /// Client error.
        #[source]
        source: kube::Error,
    },
    /// A member kept changing while its `part-of` label was being moved; the migration is retried.
    #[error(
        "moving {object} to its inventory's per-cluster ApplySet id: it kept changing; the migration is retried"
    )]
    RelabelContended {
        /// `Kind/namespace/name`.
        object: String,
    },
    /// The API server refused or failed.
    #[error("inventory Secret {name} in namespace {namespace}: {source}")]
    Api {
        /// Secret name (or `*` for a list).
        name: String,
        /// The agent namespace.
        namespace: String,
        /// Client error.
        #[source]
        source: kube::Error,
    },
}

impl StoreError {
    /// The kind of failure, as a bounded metric label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            StoreError::NamespaceMissing { .. } => "namespace_missing",
            StoreError::Api { .. } => "api",
            StoreError::Relabel { .. } | StoreError::RelabelContended { .. } => "relabel",
        }
    }
}

/// What was found in the namespace.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Readable inventories by bundle name.
    pub inventories: BTreeMap<String, Inventory>,
    /// Parents that could not be read (corrupt, or of a newer format), by bundle name: never pruned from, never
    /// overwritten.
    pub corrupt: BTreeMap<String, Error>,
}

/// Whether a Secret was applied from Git (it carries a bundle's `part-of` label, which our parents never do): such
/// a Secret is never read as an inventory, whatever labels it claims.
fn applied_from_git(secret: &Secret) -> bool {
    secret
        .metadata
        .labels
        .as_ref()
        .is_some_and(|labels| labels.contains_key(applyset::PART_OF_LABEL))
}

/// One parent Secret of this cluster, as listed.
#[derive(Debug)]
pub struct Parent {
    /// Its bundle (annotation).
    pub bundle: String,
    /// Named by the previous layout, which did not include the cluster: to be migrated.
    pub legacy: bool,
    /// The Secret.
    pub secret: Secret,
}

/// Parents of one agent (one cluster) in its namespace.
#[derive(Clone)]
pub struct Store {
    /// Secrets in the agent namespace.
    api: Api<Secret>,
    /// The agent namespace.
    namespace: String,
    /// `--cluster`, to ignore parents of another agent sharing the namespace.
    cluster: String,
}

impl Store {
    /// A store in `namespace` for `cluster`.
    pub fn new(client: Client, namespace: &str, cluster: &str) -> Self {
        Store {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            cluster: cluster.to_owned(),
        }
    }

    /// The namespace parents live in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The cluster whose parents these are.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The name of a bundle's parent.
    pub fn parent_name(&self, bundle: &str) -> String {
        applyset::parent_name(&self.cluster, bundle)
    }

    /// The ApplySet id of a bundle's parent.
    pub fn applyset_id(&self, bundle: &str) -> String {
        applyset::id(&self.parent_name(bundle), &self.namespace)
    }

    /// All parents of this cluster (see [`Store::load_from`]).
    pub async fn load(&self) -> Result<Loaded, StoreError> {
        Ok(self.load_from(self.list().await?))
    }

    /// Every parent Secret of this cluster, by bundle, with its name and layout: current names, and names of
    /// the previous layout (not yet migrated, [`super::migrate`]). Parents of other clusters sharing the
    /// namespace, and Secrets named neither way, are not ours. Any value of the inventory label is listed, so
    /// that a parent a newer agent labelled otherwise is refused ([`format::of`]) rather than overwritten.
    pub async fn list(&self) -> Result<Vec<Parent>, StoreError> {
        let list = self
            .api
            .list(&ListParams::default().labels(INVENTORY_LABEL))
            .await
            .map_err(|source| self.err("*", source))?;
        let mut parents = Vec::new();
        for secret in list.items {
            let annotations = secret.metadata.annotations.clone().unwrap_or_default();
            if annotations.get(CLUSTER_ANNOTATION) != Some(&self.cluster) {
                continue;
            }
            if applied_from_git(&secret) {
                tracing::warn!(
                    secret = secret.metadata.name.as_deref().unwrap_or_default(),
                    "A Secret applied from Git poses as an inventory; ignored"
                );
                continue;
            }
            let Some(bundle) = annotations.get(BUNDLE_ANNOTATION).cloned() else {
                continue;
            };
            let name = secret.metadata.name.clone().unwrap_or_default();
            let legacy = if name == self.parent_name(&bundle) {
                false
            } else if name == applyset::legacy_parent_name(&bundle) {
                true
            } else {
                continue;
            };
            parents.push(Parent {
                bundle,
                legacy,
                secret,
            });
        }
        Ok(parents)
    }

    /// The inventories in `parents`: a bundle's current parent wins over one of the previous layout that a
    /// migration has not removed yet.
    pub fn load_from(&self, mut parents: Vec<Parent>) -> Loaded {
        // Current parents last, so they overwrite legacy ones of the same bundle.
        parents.sort_by_key(|p| !p.legacy);
        let mut loaded = Loaded::default();
        for parent in parents {
            match decode(&parent.secret) {
                Ok(inv) => {
                    loaded.corrupt.remove(&parent.bundle);
                    loaded.inventories.insert(parent.bundle, inv);
                }
                Err(e) => {
                    loaded.inventories.remove(&parent.bundle);
                    loaded.corrupt.insert(parent.bundle, e);
                }
            }
        }
        loaded
    }

    /// Write a parent (create or update) with server-side apply, in the current format.
    pub async fn save(&self, inv: &Inventory) -> Result<(), StoreError> {
        let name = self.parent_name(&inv.info.bundle);
        let body = body(&name, &self.namespace, &self.cluster, inv);
        self.api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
            .map_err(|source| self.err(&name, source))?;
        Ok(())
    }

    /// Remove a bundle's parent once all its members are gone.
    pub async fn delete(&self, bundle: &str) -> Result<(), StoreError> {
        self.delete_named(&self.parent_name(bundle), None).await
    }

    /// Remove the parent Secret `name`, only if its uid is still `uid` (when given); gone already is fine.
    pub(crate) async fn delete_named(&self, name: &str, uid: Option<String>) -> Result<(), StoreError> {
        let params = DeleteParams {
            preconditions: uid.map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..Default::default()
        };
        match self.api.delete(name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(source) => Err(self.err(name, source)),
        }
    }

    pub(crate) fn err(&self, name: &str, source: kube::Error) -> StoreError {
        if let kube::Error::Api(s) = &source
            && s.code == 404
            && s.message.contains("namespaces")
        {
            return StoreError::NamespaceMissing {
                namespace: self.namespace.clone(),
            };
        }
        StoreError::Api {
            name: name.to_owned(),
            namespace: self.namespace.clone(),
            source,
        }
    }
}

/// The parent Secret `name` of `cluster`'s inventory `inv` in `namespace`, in the current format.
fn body(name: &str, namespace: &str, cluster: &str, inv: &Inventory) -> serde_json::Value {
    let id = applyset::id(name, namespace);
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let info = serde_json::to_vec(&inv.info).unwrap_or_default();
    let sync = serde_json::to_string(&inv.sync).unwrap_or_default();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                applyset::ID_LABEL: id,
                INVENTORY_LABEL: INVENTORY_VERSION,
                "app.kubernetes.io/managed-by": "outpost",
            },
            "annotations": {
                applyset::TOOLING_ANNOTATION: applyset::TOOLING,
                applyset::GROUP_KINDS_ANNOTATION: applyset::group_kinds(inv.members.keys()),
                applyset::ADDITIONAL_NAMESPACES_ANNOTATION:
                    applyset::additional_namespaces(inv.members.keys(), namespace),
                BUNDLE_ANNOTATION: inv.info.bundle,
                CLUSTER_ANNOTATION: cluster,
                REVISION_ANNOTATION: inv.sync.revision.clone().unwrap_or_default(),
                SYNC_ANNOTATION: sync,
                format::FORMAT_ANNOTATION: format::CURRENT.to_string(),
            },
        },
        "type": SECRET_TYPE,
        "data": {
            MEMBERS_KEY: b64(&encode_members(&inv.members)),
            INFO_KEY: b64(&info),
        },
    })
}

/// Decode a parent Secret of any format up to the current one; a parent of a newer format is refused before
/// any of its data is read.
pub fn decode(secret: &Secret) -> Result<Inventory, Error> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    format::of(
        &name,
        secret.metadata.labels.as_ref(),
        secret.metadata.annotations.as_ref(),
    )?;
    let corrupt = |what: &'static str, reason: String| Error::Corrupt {
        name: name.clone(),
        what,
        reason,
    };
    let data = secret.data.clone().unwrap_or_default();
    let members = match data.get(MEMBERS_KEY) {
        Some(bytes) => decode_members(&bytes.0).map_err(|r| corrupt("member list", r))?,
        None => return Err(corrupt("member list", "missing".into())),
    };
    let info = match data.get(INFO_KEY) {
        Some(bytes) => serde_json::from_slice(&bytes.0).map_err(|e| corrupt("bundle info", e.to_string()))?,
        None => return Err(corrupt("bundle info", "missing".into())),
    };
    let sync: SyncResult = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SYNC_ANNOTATION))
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    Ok(Inventory { info, members, sync })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{BundleInfo, Member, SyncState};
    use crate::object::ObjectKey;

    fn inventory() -> Inventory {
        let mut inv = Inventory::new(BundleInfo {
            bundle: "web".into(),
            cluster: "edge".into(),
            dir: "web".into(),
            ..Default::default()
        });
        inv.members.insert(
            ObjectKey {
                group: String::new(),
                kind: "ConfigMap".into(),
                namespace: Some("work".into()),
                name: "one".into(),
            },
            Member {
                api_version: "v1".into(),
                digest: "d".into(),
                ..Default::default()
            },
        );
        inv.sync.state = SyncState::Synced;
        inv
    }

    fn written(inv: &Inventory) -> Secret {
        serde_json::from_value(body("outpost-edge-web-1a2b", "outpost-system", "edge", inv)).unwrap()
    }

    #[test]
    fn every_write_carries_the_current_format_and_reads_back() {
        let inv = inventory();
        let secret = written(&inv);
        let annotations = secret.metadata.annotations.clone().unwrap();
        assert_eq!(
            annotations[format::FORMAT_ANNOTATION],
            format::CURRENT.to_string()
        );
        assert_eq!(
            secret.metadata.labels.clone().unwrap()[INVENTORY_LABEL],
            INVENTORY_VERSION
        );
        assert_eq!(decode(&secret).unwrap(), inv);
    }

    #[test]
    fn a_parent_without_the_marker_reads_as_before() {
        let inv = inventory();
        let mut secret = written(&inv);
        if let Some(a) = secret.metadata.annotations.as_mut() {
            a.remove(format::FORMAT_ANNOTATION);
        }
        assert_eq!(decode(&secret).unwrap(), inv);
    }

    #[test]
    fn a_parent_of_a_newer_format_is_refused_even_when_its_data_would_decode() {
        let mut secret = written(&inventory());
        let newer = (format::CURRENT + 1).to_string();
        if let Some(a) = secret.metadata.annotations.as_mut() {
            a.insert(format::FORMAT_ANNOTATION.into(), newer);
        }
        let err = decode(&secret).unwrap_err();
        assert!(matches!(err, Error::NewerFormat { .. }), "{err:?}");
        assert!(err.to_string().contains("outpost-edge-web-1a2b"), "{err}");
    }
}
