//! Obeying the controls in a sync ([`crate::control`]): a suspended bundle leaves the plan (nothing applied,
//! pruned or moved; its inventory keeps its members), a bundle whose drift mode is `report` keeps its new and
//! changed objects but not the re-applies of drift (objects changed or deleted in the cluster), which are
//! counted, logged and published instead; a bundle whose prune policy is `orphan` (in Git now, or recorded when
//! it was last in Git) orphans what leaves it.

use std::collections::{BTreeMap, BTreeSet};

use tracing::info;

use super::parts::Parts;
use crate::control::{Controls, Suspension};
use crate::inventory::store::Loaded;
use crate::object::ObjectKey;
use crate::plan::{Plan, Reason};
use crate::policy::{DriftMode, PrunePolicy};

/// What the controls changed in a plan.
#[derive(Debug, Default)]
pub(crate) struct Obeyed {
    /// Bundles left out, and who suspended them.
    pub(crate) suspended: BTreeMap<String, Suspension>,
    /// Bundles whose removed members are orphaned.
    pub(crate) orphan: BTreeSet<String>,
    /// Drift left in place (mode `report`), by bundle.
    pub(crate) reported: BTreeMap<String, Vec<ObjectKey>>,
}

/// Apply the controls to `plan`.
pub(crate) fn obey(
    plan: &mut Plan,
    controls: &Controls,
    loaded: &Loaded,
    in_git: &BTreeSet<String>,
) -> Obeyed {
    let mut obeyed = Obeyed::default();
    for (bundle, bp) in plan.bundles.iter_mut() {
        let policy = controls.policy(bundle);
        if let Some(by) = policy.suspended {
            obeyed.suspended.insert(bundle.clone(), by);
            continue;
        }
        if let Some(note) = &policy.overridden {
            info!(bundle = %bundle, "{note}");
        }
        if policy.drift == DriftMode::Report {
            let (drift, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut bp.apply)
                .into_iter()
                .partition(|a| matches!(a.reason, Reason::Drifted | Reason::Missing));
            bp.apply = keep;
            if !drift.is_empty() {
                obeyed.reported.insert(
                    bundle.clone(),
                    drift.into_iter().map(|a| a.object.key.clone()).collect(),
                );
            }
        }
        // A bundle that left Git keeps the policy it last had there.
        let recorded = loaded.inventories.get(bundle).and_then(|i| i.info.prune);
        let prune = if in_git.contains(bundle) {
            policy.prune
        } else {
            recorded.unwrap_or(policy.prune)
        };
        if prune == PrunePolicy::Orphan {
            obeyed.orphan.insert(bundle.clone());
        }
    }
    for bundle in obeyed.suspended.keys() {
        plan.bundles.remove(bundle);
    }
    obeyed
}

/// Count, log and publish the drift left in place.
pub(crate) async fn report_drift(
    parts: &Parts,
    controls: &Controls,
    reported: &BTreeMap<String, Vec<ObjectKey>>,
) {
    for (bundle, keys) in reported {
        for key in keys {
            info!(bundle = %bundle, object = %key, "Drift detected, not reverted (drift mode report)");
            if let Some(m) = controls.metrics() {
                m.drift_detected(bundle);
            }
        }
        if let Some(events) = &parts.events {
            let listed: Vec<String> = keys
                .iter()
                .take(super::progress::MAX_LISTED)
                .map(ToString::to_string)
                .collect();
            let note = format!(
                "{} object(s) differ from Git and are left as they are (drift mode report): {}",
                keys.len(),
                listed.join(", ")
            );
            events.normal(bundle, "DriftDetected", "Report", &note).await;
        }
    }
}
