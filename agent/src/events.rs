//! Kubernetes Events on a bundle's inventory Secret: failed applies, refused prunes and drift fights show up
//! in `kubectl describe secret <parent>` and in cluster event collectors.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tracing::debug;

use crate::inventory::applyset::parent_name;

/// Longest note the Events API accepts.
const MAX_NOTE: usize = 1000;

/// Publishes Events about bundles.
#[derive(Clone)]
pub struct Events {
    /// kube's recorder (deduplicates repeats into series).
    recorder: Recorder,
    /// The agent namespace, where parents live.
    namespace: String,
    /// `--cluster`, part of parent names.
    cluster: String,
}

impl Events {
    /// A publisher about `cluster`'s bundles reporting as `outpost-agent` from `instance` (the pod name when
    /// known).
    pub fn new(client: Client, namespace: &str, cluster: &str, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: "outpost-agent".into(),
            instance,
        };
        Events {
            recorder: Recorder::new(client, reporter),
            namespace: namespace.to_owned(),
            cluster: cluster.to_owned(),
        }
    }

    /// A Warning on `bundle`'s inventory with a short PascalCase `reason`. Failures to publish are only
    /// logged: events are best effort.
    pub async fn warn(&self, bundle: &str, reason: &str, action: &str, note: &str) {
        self.publish(bundle, EventType::Warning, reason, action, note)
            .await;
    }

    /// A Normal Event on `bundle`'s inventory (a control obeyed: suspended, resumed, drift reported).
    pub async fn normal(&self, bundle: &str, reason: &str, action: &str, note: &str) {
        self.publish(bundle, EventType::Normal, reason, action, note)
            .await;
    }

    /// A Normal Event on the agent's control ConfigMap (the whole agent suspended or resumed).
    pub async fn agent(&self, reason: &str, action: &str, note: &str) {
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("ConfigMap".into()),
            name: Some(crate::control::configmap_name(&self.cluster)),
            namespace: Some(self.namespace.clone()),
            ..Default::default()
        };
        self.send(reference, EventType::Normal, reason, action, note)
            .await;
    }

    /// A Warning on the agent's control ConfigMap: about the whole agent, also before any bundle exists (a
    /// commit refused by signature verification).
    pub async fn warn_agent(&self, reason: &str, action: &str, note: &str) {
        self.send(self.control_reference(), EventType::Warning, reason, action, note)
            .await;
    }

    /// The agent's control ConfigMap, which agent-wide Events are about.
    fn control_reference(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("ConfigMap".into()),
            name: Some(crate::control::configmap_name(&self.cluster)),
            namespace: Some(self.namespace.clone()),
            ..Default::default()
        }
    }

    /// Publish on `bundle`'s inventory.
    async fn publish(&self, bundle: &str, type_: EventType, reason: &str, action: &str, note: &str) {
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Secret".into()),
            name: Some(parent_name(&self.cluster, bundle)),
            namespace: Some(self.namespace.clone()),
            ..Default::default()
        };
        self.send(reference, type_, reason, action, note).await;
    }

    /// Publish on `reference`, the note cut to what the API accepts.
    async fn send(
        &self,
        reference: ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: &str,
    ) {
        let mut note = note.to_owned();
        if note.len() > MAX_NOTE {
            let mut cut = MAX_NOTE;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
        }
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &reference).await {
            debug!(error = %e, object = ?reference.name, reason, "Event not published");
        }
    }
}
