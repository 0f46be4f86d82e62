//! Who agreed to prunes that cascade: deleting a Namespace, CRD or volume deletes what it holds, so the prune
//! stage asks for consent ([`crate::prune::Consent`]) besides the object's own `allow-cascade` annotation.
//!
//! `--allow-cascading-prune` consents for every bundle. EMCO's termination of an app consents for its bundle:
//! EMCO cannot annotate objects, and its tracker-only commit is how it asks for the app to be deleted. A bundle
//! whose directory holds only trackers in the commit being synced declared it; a bundle that left Git with
//! cascading members declared it if one of the commits since its last applied one left only its trackers (an
//! agent that was away missed that step; the same reading of history as for an emptied cluster path).

use std::collections::{BTreeMap, BTreeSet};

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::history::announced_deletions;
use crate::inventory::store::Loaded;
use crate::manifest::Bundle;
use crate::plan::Plan;
use crate::prune::{Consent, cascades};
use crate::source::{Revision, Upstream};

/// Bundles whose directory holds status trackers and nothing to apply: EMCO terminating the app. Read before
/// the desired set takes the manifests out of the bundles.
pub(super) fn declared(bundles: &[Bundle]) -> BTreeSet<String> {
    bundles
        .iter()
        .filter(|b| b.manifests.is_empty() && !b.trackers.is_empty())
        .map(|b| b.name.clone())
        .collect()
}

/// Where to read skipped commits from: the repository, the cluster path in it, the reconcile's shutdown flag.
pub(super) struct History<'a> {
    /// The repository.
    pub(super) source: &'a Arc<dyn Upstream>,
    /// `clusters/<cluster>`.
    pub(super) cluster_path: String,
    /// The running reconcile's shutdown flag.
    pub(super) interrupt: Option<Arc<AtomicBool>>,
}

/// The consent to cascading prunes in a sync of commit `revision` planned as `plan`: `all` is
/// `--allow-cascading-prune`, `declared` the bundles the commit terminates ([`declared`]), `announced` those
/// whose deletion the history already showed.
pub(super) async fn consent(
    all: bool,
    mut declared: BTreeSet<String>,
    announced: &BTreeSet<String>,
    (revision, loaded, plan): (&str, &Loaded, &Plan),
    history: History<'_>,
) -> Consent {
    declared.extend(announced.iter().cloned());
    // Bundles gone from Git whose cascading members nobody agreed to delete yet.
    let unclear: BTreeMap<_, _> = plan
        .bundles
        .iter()
        .filter(|(name, bp)| {
            bp.removed && !declared.contains(*name) && bp.prune.iter().any(|(key, _)| cascades(key))
        })
        .filter_map(|(name, _)| Some((name.clone(), loaded.inventories.get(name)?.clone())))
        .collect();
    if !all
        && !unclear.is_empty()
        && let Some(tip) = Revision::parse(revision)
    {
        let unclear = Loaded {
            inventories: unclear,
            corrupt: BTreeMap::new(),
        };
        let source = history.source.clone();
        let path = &history.cluster_path;
        declared.extend(announced_deletions(source, path, history.interrupt, tip, &unclear).await);
    }
    Consent {
        all,
        bundles: declared,
    }
}
