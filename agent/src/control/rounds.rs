//! The controls around the daemon's rounds: before a round, whether the agent is suspended (no round at all)
//! and whether operators changed something that needs a full sync (a resume, a drift mode, a sync request);
//! after it, the requests marked handled, and suspensions shown in metrics and Events as they change.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use tracing::{info, warn};

use super::metrics::AGENT;
use super::{Controls, HANDLED_AT_ANNOTATION, Suspension, Target, configmap_name};
use crate::events::Events;
use crate::inventory::applyset::parent_name;

/// What a round should be.
#[derive(Debug, Default)]
pub struct Before {
    /// The whole agent is suspended: run no round.
    pub skip: bool,
    /// Sync everything again, even an unchanged commit.
    pub force: bool,
    /// Requests this round answers, marked handled once it got through.
    pub requests: Vec<(Target, String)>,
}

/// The controls' bookkeeping across rounds.
pub struct Obedience {
    /// The controls.
    controls: Controls,
    /// To mark requests handled.
    client: Client,
    /// The agent's namespace.
    namespace: String,
    /// `--cluster`.
    cluster: String,
    /// Events on the control ConfigMap and parents.
    events: Option<Events>,
    /// What operators had set at the last round (suspensions and drift modes), to tell a change.
    seen: Option<super::OperatorState>,
    /// Bundles suspended at the last round, and by whom.
    suspended: BTreeMap<String, Suspension>,
    /// The agent was suspended at the last round.
    agent_suspended: bool,
}

impl Obedience {
    /// Bookkeeping for `controls` of `cluster`'s agent in `namespace`.
    pub fn new(
        controls: Controls,
        client: Client,
        namespace: &str,
        cluster: &str,
        events: Option<Events>,
    ) -> Self {
        Obedience {
            controls,
            client,
            namespace: namespace.to_owned(),
            cluster: cluster.to_owned(),
            events,
            seen: None,
            suspended: BTreeMap::new(),
            agent_suspended: false,
        }
    }

    /// Before a round.
    pub async fn before(&mut self) -> Before {
        let suspended = self.controls.agent_suspended().is_some();
        if suspended != self.agent_suspended {
            self.agent_suspended = suspended;
            let (reason, note) = if suspended {
                ("Suspended", Suspension::Agent.describe().to_owned())
            } else {
                (
                    "Resumed",
                    "the agent applies, prunes and reverts again".to_owned(),
                )
            };
            info!("{reason}: {note}");
            if let Some(events) = &self.events {
                events.agent(reason, "Control", &note).await;
            }
        }
        if let Some(m) = self.controls.metrics() {
            m.set_suspended(AGENT, suspended);
        }
        if suspended {
            return Before {
                skip: true,
                ..Default::default()
            };
        }
        let now = self.controls.operator_state();
        let changed = self.seen.as_ref().is_some_and(|seen| *seen != now);
        self.seen = Some(now);
        let requests = self.controls.pending_requests();
        Before {
            skip: false,
            force: changed || !requests.is_empty(),
            requests,
        }
    }

    /// After a round that got through: mark `requests` handled, and show which of `bundles` are suspended.
    pub async fn after<'a>(
        &mut self,
        requests: &[(Target, String)],
        bundles: impl Iterator<Item = &'a String>,
    ) {
        for (target, value) in requests {
            self.mark_handled(target, value).await;
            if let Some(m) = self.controls.metrics() {
                m.sync_requested();
            }
        }
        let mut now = BTreeMap::new();
        for bundle in bundles {
            let suspended = self.controls.policy(bundle).suspended;
            if let Some(m) = self.controls.metrics() {
                m.set_suspended(bundle, suspended.is_some());
            }
            if let Some(by) = suspended {
                now.insert(bundle.clone(), by);
            }
        }
        for (bundle, by) in &now {
            if self.suspended.get(bundle) != Some(by) {
                self.publish(bundle, "Suspended", by.describe()).await;
            }
        }
        for bundle in self.suspended.keys() {
            if !now.contains_key(bundle) {
                self.publish(bundle, "Resumed", "applied, pruned and reverted again")
                    .await;
            }
        }
        self.suspended = now;
    }

    /// Log and publish a bundle's suspension change.
    async fn publish(&self, bundle: &str, reason: &str, note: &str) {
        info!(bundle = %bundle, "{reason}: {note}");
        if let Some(events) = &self.events {
            events.normal(bundle, reason, "Control", note).await;
        }
    }

    /// Copy `value` to `handled-at` on the object that asked (a merge patch: the annotation is the agent's
    /// answer, not a field it manages).
    async fn mark_handled(&self, target: &Target, value: &str) {
        let patch = serde_json::json!({"metadata": {"annotations": {HANDLED_AT_ANNOTATION: value}}});
        let params = PatchParams::default();
        let ns = &self.namespace;
        let result = match target {
            Target::Agent => {
                let name = configmap_name(&self.cluster);
                Api::<ConfigMap>::namespaced(self.client.clone(), ns)
                    .patch(&name, &params, &Patch::Merge(&patch))
                    .await
                    .map(drop)
            }
            Target::Bundle(bundle) => {
                let name = parent_name(&self.cluster, bundle);
                Api::<Secret>::namespaced(self.client.clone(), ns)
                    .patch(&name, &params, &Patch::Merge(&patch))
                    .await
                    .map(drop)
            }
        };
        match result {
            Ok(()) => info!(?target, requested_at = value, "Sync request handled"),
            Err(e) => warn!(?target, error = %e, "Sync request handled, but not marked so"),
        }
    }
}
