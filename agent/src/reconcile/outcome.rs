//! What a reconcile produces: its outcome, the sync report drift correction starts from, the plan preview, and
//! the settings it runs with.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::desired::DesiredObject;
use crate::inventory::Inventory;
use crate::plan::{Plan, Safety};
use crate::source::Revision;

/// What a successful reconcile did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The ref still points at the commit synced last time: nothing was sent to the API server.
    Unchanged {
        /// The commit.
        commit: Revision,
    },
    /// The commit was synced.
    Synced {
        /// The commit.
        commit: Revision,
        /// Number of bundles.
        bundles: usize,
        /// Objects sent.
        applied: usize,
        /// Objects deleted.
        pruned: usize,
    },
    /// The cluster path is missing or has nothing to apply, and nothing is managed: waiting for content (every
    /// install before EMCO's first deployment). Not an error.
    Empty {
        /// The commit.
        commit: Revision,
        /// The path does not exist at all (rather than existing without manifests).
        missing: bool,
    },
    /// A closed sync window holds a new commit back: the cluster stays at the last applied commit (synced
    /// again when a full resync is due, without prunes). Not an error.
    Held {
        /// The new commit.
        commit: Revision,
        /// The last applied commit, kept.
        kept: Revision,
        /// When a sync window next opens (`None`: not within five years).
        opens: Option<jiff::Timestamp>,
    },
    /// Some bundles wait for dependencies to become healthy; reconcile again soon.
    Waiting {
        /// The commit.
        commit: Revision,
        /// Bundles still waiting.
        bundles: Vec<String>,
    },
}

/// Settings of the reconciler that are not the source's.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `--cluster`: the directory under `clusters/` to follow.
    pub cluster: String,
    /// `--namespace`: where inventories live.
    pub namespace: String,
    /// Server-side apply options.
    pub apply: crate::apply::Options,
    /// Safety checks.
    pub safety: Safety,
    /// `--allow-own-namespace`: Git may write into `namespace`.
    pub allow_own_namespace: bool,
}

impl Settings {
    /// What Git may not write, by these settings.
    pub fn fence(&self) -> crate::desired::Fence {
        crate::desired::Fence {
            namespace: self.namespace.clone(),
            allow_own_namespace: self.allow_own_namespace,
        }
    }
}

/// The result of syncing one set of bundles (shared by the Git path and tests that bypass Git).
#[derive(Debug, Default)]
pub struct SyncReport {
    /// Objects sent.
    pub applied: usize,
    /// Objects deleted.
    pub pruned: usize,
    /// Bundles waiting for dependencies.
    pub waiting: Vec<String>,
    /// Problems, scrubbed.
    pub errors: Vec<String>,
    /// The desired objects of this commit, by key (for drift correction).
    pub desired: BTreeMap<crate::object::ObjectKey, Arc<DesiredObject>>,
    /// The inventories after the sync.
    pub inventories: BTreeMap<String, Inventory>,
}

impl SyncReport {
    /// What drift correction compares the cluster with after this sync.
    pub fn synced(&self) -> crate::drift::Synced<'_> {
        crate::drift::Synced {
            desired: &self.desired,
            inventories: &self.inventories,
        }
    }
}

/// What `plan` shows: the commit, the plan, and objects that cannot be resolved.
#[derive(Debug)]
pub struct Preview {
    /// The commit.
    pub commit: Revision,
    /// What a sync would do.
    pub plan: Plan,
    /// Objects whose kind is unknown.
    pub failures: Vec<String>,
}
