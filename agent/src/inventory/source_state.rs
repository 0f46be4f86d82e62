//! The agent's state that belongs to no bundle: whether the cluster path has anything to apply yet.
//!
//! A missing or empty cluster path while nothing is managed is not an error but a waiting state — every
//! install before EMCO's first deployment looks like that. With no bundle there is no inventory to record it
//! on, so it lives in one ConfigMap per cluster in the agent's namespace, where `outpost-agent status` and the
//! status writer read it. It is written only when the state changes.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::store::{CLUSTER_ANNOTATION, StoreError};
use crate::apply::FIELD_MANAGER;

/// Data key holding the JSON state.
const STATE_KEY: &str = "state.json";

/// Where the agent stands with its cluster path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// The cluster path is missing or holds nothing to apply, and nothing is managed: waiting for content.
    Waiting,
    /// The cluster path has bundles and the agent follows it.
    Following,
}

/// The recorded state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceState {
    /// Waiting or following.
    pub phase: Phase,
    /// The commit it was found at.
    pub revision: String,
    /// What a person should read (`clusters/x does not exist at commit …`).
    pub message: String,
    /// When (RFC 3339).
    pub time: String,
}

/// The ConfigMap of one cluster's state.
#[derive(Clone)]
pub struct SourceStateStore {
    /// ConfigMaps in the agent namespace.
    api: Api<ConfigMap>,
    /// `--cluster`.
    cluster: String,
    /// The agent namespace.
    namespace: String,
}

impl SourceStateStore {
    /// The store of `cluster`'s state in `namespace`.
    pub fn new(client: Client, namespace: &str, cluster: &str) -> Self {
        SourceStateStore {
            api: Api::namespaced(client, namespace),
            cluster: cluster.to_owned(),
            namespace: namespace.to_owned(),
        }
    }

    /// `outpost-source-<hash of the cluster name>`: cluster names may hold `+` and be long.
    pub fn name(&self) -> String {
        let digest = Sha256::digest(self.cluster.as_bytes());
        let short: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        format!("outpost-source-{short}")
    }

    /// The recorded state, if any (`None` also when it is unreadable: it is informational only).
    pub async fn load(&self) -> Result<Option<SourceState>, StoreError> {
        let name = self.name();
        let found = self.api.get_opt(&name).await.map_err(|source| StoreError::Api {
            name: name.clone(),
            namespace: self.namespace.clone(),
            source,
        })?;
        Ok(found
            .and_then(|cm| cm.data)
            .and_then(|d| d.get(STATE_KEY).cloned())
            .and_then(|s| serde_json::from_str(&s).ok()))
    }

    /// Record `state` (server-side apply).
    pub async fn save(&self, state: &SourceState) -> Result<(), StoreError> {
        let name = self.name();
        let body = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {"app.kubernetes.io/managed-by": "outpost"},
                "annotations": {CLUSTER_ANNOTATION: self.cluster},
            },
            "data": {STATE_KEY: serde_json::to_string(state).unwrap_or_default()},
        });
        self.api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
            .map_err(|source| StoreError::Api {
                name,
                namespace: self.namespace.clone(),
                source,
            })?;
        Ok(())
    }
}
