//! Operator controls (issue 13): suspend and resume, "sync now", and the drift mode, set through the API server
//! because the pod opens no port.
//!
//! The whole agent is controlled by annotations on one ConfigMap in its namespace ([`configmap_name`]), a
//! bundle by annotations on its inventory parent; a bundle's `outpost.yaml` may say the same from Git
//! ([`crate::policy::BundleSettings`]). An operator's explicit value wins over Git's: Git never suspends what
//! an operator resumed by hand (`outpost.dev/suspend: "false"`), and the status says that Git asked.
//! [`watch`] keeps a [`Controls`] handle current within a second of a change (two watches, no polling);
//! reconcile rounds and drift correction ask it what each bundle may do ([`Policy`]).

pub mod marks;
pub mod metrics;
pub mod resolve;
pub mod rounds;
pub mod watch;
pub mod windows;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};
use tokio::sync::Notify;

pub use marks::{
    DRIFT_ANNOTATION, HANDLED_AT_ANNOTATION, Marks, REQUESTED_AT_ANNOTATION, SUSPEND_ANNOTATION,
};
pub use resolve::{Defaults, Policy, Suspension};

use crate::policy::BundleSettings;

/// The agent's control ConfigMap for `cluster` (several agents may share a namespace).
pub fn configmap_name(cluster: &str) -> String {
    let hash = crate::manifest::digest::hex(&Sha256::digest(cluster.as_bytes())[..6]);
    let readable: String = cluster
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    let readable = readable.trim_matches('-');
    if readable.is_empty() {
        format!("outpost-control-{hash}")
    } else {
        format!("outpost-control-{readable}-{hash}")
    }
}

/// What operators set that changes what a sync does: per bundle (`""` for the agent), suspend and drift mode.
pub type OperatorState = Vec<(String, Option<bool>, Option<crate::policy::DriftMode>)>;

/// What a control object asks for, and where: the agent, or one bundle.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// The control ConfigMap.
    Agent,
    /// A bundle's parent.
    Bundle(String),
}

/// What the controls say, shared by the watches that fill it and the rounds and drift that obey it.
#[derive(Default)]
struct State {
    /// The control ConfigMap's marks.
    agent: Marks,
    /// Each parent's marks, by bundle.
    bundles: BTreeMap<String, Marks>,
    /// Each bundle's `outpost.yaml` settings in the last parsed commit.
    git: BTreeMap<String, BundleSettings>,
}

/// Handle on the controls; cloning shares them.
#[derive(Clone, Default)]
pub struct Controls {
    /// The marks and Git's settings.
    state: Arc<RwLock<State>>,
    /// Woken on every change an operator makes (suspend, resume, a sync request, a drift mode).
    changed: Arc<Notify>,
    /// Flag defaults for what neither Git nor an operator set.
    defaults: Defaults,
    /// `outpost_suspended`, drift detected, orphaned, requests (the daemon only).
    metrics: Option<metrics::ControlMetrics>,
    /// `--sync-window`: when new commits may be applied and members pruned.
    windows: Arc<windows::SyncWindows>,
}

impl Controls {
    /// Controls with these defaults and nothing set yet.
    pub fn new(defaults: Defaults) -> Self {
        Controls {
            defaults,
            ..Default::default()
        }
    }

    /// Count and show states in these metrics.
    pub fn with_metrics(mut self, metrics: metrics::ControlMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Hold new commits back outside these sync windows.
    pub fn with_windows(mut self, windows: windows::SyncWindows) -> Self {
        self.windows = Arc::new(windows);
        self
    }

    /// The sync windows (empty: always open).
    pub fn windows(&self) -> &windows::SyncWindows {
        &self.windows
    }

    /// The metrics, when served.
    pub fn metrics(&self) -> Option<&metrics::ControlMetrics> {
        self.metrics.as_ref()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// What `bundle` may do now.
    pub fn policy(&self, bundle: &str) -> Policy {
        let state = self.read();
        resolve::policy(
            &state.agent,
            state.bundles.get(bundle),
            state.git.get(bundle),
            self.defaults,
        )
    }

    /// Why the whole agent is suspended, if it is.
    pub fn agent_suspended(&self) -> Option<Suspension> {
        resolve::agent(&self.read().agent)
    }

    /// Take the `outpost.yaml` settings of a newly parsed commit.
    pub fn set_git(&self, settings: BTreeMap<String, BundleSettings>) {
        self.write().git = settings;
    }

    /// The control ConfigMap now carries `marks` (default when it is gone).
    pub fn set_agent(&self, marks: Marks) {
        let mut state = self.write();
        if state.agent != marks {
            state.agent = marks;
            drop(state);
            self.changed.notify_one();
        }
    }

    /// `bundle`'s parent now carries `marks` (`None`: the parent is gone).
    pub fn set_bundle(&self, bundle: &str, marks: Option<Marks>) {
        let mut state = self.write();
        let before = state.bundles.get(bundle).cloned().unwrap_or_default();
        let after = marks.clone().unwrap_or_default();
        match marks {
            Some(m) => state.bundles.insert(bundle.to_owned(), m),
            None => state.bundles.remove(bundle),
        };
        drop(state);
        if before.operator_view() != after.operator_view() {
            self.changed.notify_one();
        }
    }

    /// Replace every parent's marks at once (a watch's relist).
    pub fn set_bundles(&self, bundles: BTreeMap<String, Marks>) {
        let mut state = self.write();
        let changed = state.bundles.len() != bundles.len()
            || state
                .bundles
                .iter()
                .zip(&bundles)
                .any(|((a, ma), (b, mb))| a != b || ma.operator_view() != mb.operator_view());
        state.bundles = bundles;
        drop(state);
        if changed {
            self.changed.notify_one();
        }
    }

    /// Wait for an operator's change.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Sync requests not handled yet: the target and the `requested-at` value to copy to `handled-at`.
    pub fn pending_requests(&self) -> Vec<(Target, String)> {
        let state = self.read();
        let mut pending = Vec::new();
        if let Some(value) = state.agent.pending_request() {
            pending.push((Target::Agent, value.to_owned()));
        }
        for (bundle, marks) in &state.bundles {
            if let Some(value) = marks.pending_request() {
                pending.push((Target::Bundle(bundle.clone()), value.to_owned()));
            }
        }
        pending
    }

    /// What operators set that changes what a sync does (suspensions and drift modes, the agent's first as
    /// bundle `""`), to tell when a full sync is due.
    pub fn operator_state(&self) -> OperatorState {
        let state = self.read();
        // Bundles nobody set anything on are left out: a new parent appearing is no operator's change.
        std::iter::once((String::new(), state.agent.suspend, None))
            .chain(state.bundles.iter().map(|(b, m)| (b.clone(), m.suspend, m.drift)))
            .filter(|(_, suspend, drift)| suspend.is_some() || drift.is_some())
            .collect()
    }

    /// Marks an operator set that the agent cannot read, with where: shown by `status`, logged by the watch.
    pub fn invalid(&self) -> Vec<String> {
        let state = self.read();
        let mut out: Vec<String> = state
            .agent
            .invalid
            .iter()
            .map(|e| format!("agent: {e}"))
            .collect();
        for (bundle, marks) in &state.bundles {
            out.extend(marks.invalid.iter().map(|e| format!("bundle {bundle}: {e}")));
        }
        out
    }
}
