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
        let mut note = note.to_owned();
        if note.len() > MAX_NOTE {
            let mut cut = MAX_NOTE;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
        }
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Secret".into()),
            name: Some(parent_name(&self.cluster, bundle)),
            namespace: Some(self.namespace.clone()),
            ..Default::default()
        };
        let event = Event {
            type_: EventType::Warning,
            reason: reason.to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &reference).await {
            debug!(error = %e, bundle, reason, "Event not published");
        }
    }
}
