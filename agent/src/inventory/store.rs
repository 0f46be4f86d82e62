//! Reading and writing inventory parents (Secrets in the agent's namespace) with server-side apply.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

use super::{Error, Inventory, SyncResult, applyset, decode_members, encode_members};
use crate::apply::FIELD_MANAGER;

/// Label selecting our parents.
pub const INVENTORY_LABEL: &str = "outpost.dev/inventory";
/// Its value; bumped if the data layout ever changes incompatibly.
pub const INVENTORY_VERSION: &str = "v1";
/// Annotation with the readable bundle name.
pub const BUNDLE_ANNOTATION: &str = "outpost.dev/bundle";
/// Annotation with the readable cluster name (label values cannot hold `+`).
pub const CLUSTER_ANNOTATION: &str = "outpost.dev/cluster";
/// Annotation with the last sync result (JSON).
pub const SYNC_ANNOTATION: &str = "outpost.dev/sync";
/// Annotation with the last applied commit.
pub const REVISION_ANNOTATION: &str = "outpost.dev/revision";
/// Secret type of our parents, so `kubectl get secrets` shows what they are.
pub const SECRET_TYPE: &str = "outpost.dev/inventory";
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
        }
    }
}

/// What was found in the namespace.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Readable inventories by bundle name.
    pub inventories: BTreeMap<String, Inventory>,
    /// Parents whose data could not be decoded, by bundle name: never pruned from, never overwritten.
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

    /// The ApplySet id of a bundle's parent.
    pub fn applyset_id(&self, bundle: &str) -> String {
        applyset::id(&applyset::parent_name(bundle), &self.namespace)
    }

    /// All parents of this cluster.
    pub async fn load(&self) -> Result<Loaded, StoreError> {
        let list = self
            .api
            .list(&ListParams::default().labels(&format!("{INVENTORY_LABEL}={INVENTORY_VERSION}")))
            .await
            .map_err(|source| self.err("*", source))?;
        let mut loaded = Loaded::default();
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
            match decode(&secret) {
                Ok(inv) => {
                    loaded.inventories.insert(bundle, inv);
                }
                Err(e) => {
                    loaded.corrupt.insert(bundle, e);
                }
            }
        }
        Ok(loaded)
    }

    /// Write a parent (create or update) with server-side apply.
    pub async fn save(&self, inv: &Inventory) -> Result<(), StoreError> {
        let name = inv.parent_name();
        let id = applyset::id(&name, &self.namespace);
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let info = serde_json::to_vec(&inv.info).unwrap_or_default();
        let sync = serde_json::to_string(&inv.sync).unwrap_or_default();
        let body = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {
                    applyset::ID_LABEL: id,
                    INVENTORY_LABEL: INVENTORY_VERSION,
                    "app.kubernetes.io/managed-by": "outpost",
                },
                "annotations": {
                    applyset::TOOLING_ANNOTATION: applyset::TOOLING,
                    applyset::GROUP_KINDS_ANNOTATION: applyset::group_kinds(inv.members.keys()),
                    applyset::ADDITIONAL_NAMESPACES_ANNOTATION:
                        applyset::additional_namespaces(inv.members.keys(), &self.namespace),
                    BUNDLE_ANNOTATION: inv.info.bundle,
                    CLUSTER_ANNOTATION: self.cluster,
                    REVISION_ANNOTATION: inv.sync.revision.clone().unwrap_or_default(),
                    SYNC_ANNOTATION: sync,
                },
            },
            "type": SECRET_TYPE,
            "data": {
                MEMBERS_KEY: b64(&encode_members(&inv.members)),
                INFO_KEY: b64(&info),
            },
        });
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
        let name = applyset::parent_name(bundle);
        match self.api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(source) => Err(self.err(&name, source)),
        }
    }

    fn err(&self, name: &str, source: kube::Error) -> StoreError {
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

/// Decode a parent Secret.
pub fn decode(secret: &Secret) -> Result<Inventory, Error> {
    let name = secret.metadata.name.clone().unwrap_or_default();
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
