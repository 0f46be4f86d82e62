//! The end of a sync: prune what left Git (in bundles that applied cleanly), then record the outcome in the
//! inventories (shrinking member lists only after deletes succeeded).

use std::collections::{BTreeMap, BTreeSet};

use tracing::{info, warn};

use super::parts::Parts;
use super::progress::Progress;
use crate::inventory::record::{self, Write};
use crate::live::LiveIndex;
use crate::plan::Plan;
use crate::prune::{self, Candidate, Consent, Outcome as PruneOutcome};

/// Delete what left Git, in bundles that applied cleanly (and in bundles that left Git); cascading deletes
/// only with `consent` or the object's own; in `orphan` bundles, orphan instead of deleting.
pub(crate) async fn prune(
    parts: &mut Parts,
    progress: &mut Progress,
    plan: &Plan,
    live: &LiveIndex,
    (consent, orphan): (&Consent, &BTreeSet<String>),
) {
    let store = &parts.store;
    let candidates = prune::candidates(
        plan,
        |b| progress.clean(b),
        |b| store.applyset_id(b),
        |b| orphan.contains(b),
    );
    if candidates.is_empty() {
        return;
    }
    let concurrency = parts.settings.apply.concurrency;
    let outcomes = prune::prune(
        &parts.client,
        &mut parts.resolver,
        candidates,
        live,
        consent,
        concurrency,
        parts.applier.identities(),
    )
    .await;
    let mut refusals: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (c, outcome) in outcomes {
        match &outcome {
            PruneOutcome::Deleted => {
                progress.pruned(&c.bundle);
                if let Some(m) = &parts.metrics {
                    m.pruned(&c.bundle, 1);
                }
                info!(bundle = %c.bundle, object = %c.key, "Pruned");
            }
            PruneOutcome::Kept => info!(bundle = %c.bundle, object = %c.key, "Kept (prune disabled)"),
            PruneOutcome::Orphaned => {
                if let Some(m) = parts.controls.metrics() {
                    m.orphaned(&c.bundle, 1);
                }
                info!(bundle = %c.bundle, object = %c.key, "Orphaned (prune policy orphan): left running, no longer managed");
            }
            PruneOutcome::NotOurs => {
                info!(bundle = %c.bundle, object = %c.key, "Not pruned: no longer ours")
            }
            PruneOutcome::Refused => {
                refused(parts, progress, &c);
                refusals
                    .entry(c.bundle.clone())
                    .or_default()
                    .push(c.key.to_string());
            }
            PruneOutcome::Gone => {}
            PruneOutcome::Failed(e) => {
                if let Some(m) = &parts.metrics {
                    m.object_failed("prune", e.metric_label());
                }
                let text = parts.scrubber.scrub(&format!("prune {}: {e}", c.key));
                warn!(bundle = %c.bundle, error = %text, "Prune failed");
                progress.fail(&c.bundle, text);
            }
        }
        if outcome.settled() {
            progress.forget(&c.bundle, &c.key);
        }
    }
    warn_refused(parts, refusals).await;
}

/// A cascading prune nobody consented to: the member stays (in the cluster and the inventory) and the bundle
/// reports it.
fn refused(parts: &Parts, progress: &mut Progress, c: &Candidate) {
    if let Some(m) = &parts.metrics {
        m.object_failed("prune", "cascade_refused");
    }
    warn!(bundle = %c.bundle, object = %c.key, "Prune refused: it would cascade and nobody consented");
    progress.fail(
        &c.bundle,
        format!(
            "prune {} refused: deleting it deletes everything it holds; {CONSENT_HINT}",
            c.key
        ),
    );
}

/// How to consent to a refused cascading prune.
const CONSENT_HINT: &str = "annotate it outpost.dev/prune=allow-cascade (or run with --allow-cascading-prune) to delete it, or put it back in Git";

/// One `PruneRefused` Warning per bundle naming its refused objects (Events with the same reason on the same
/// inventory are merged into one series, so one per object would show only the first).
async fn warn_refused(parts: &Parts, refused: BTreeMap<String, Vec<String>>) {
    let Some(events) = &parts.events else {
        return;
    };
    for (bundle, mut objects) in refused {
        objects.sort();
        let note = format!(
            "prune of {} refused: deleting it deletes everything it holds; {CONSENT_HINT}",
            objects.join(", ")
        );
        events.warn(&bundle, "PruneRefused", "Prune", &note).await;
    }
}

/// Shrink inventories, write sync results, and remove parents of bundles that left Git and are empty.
pub(crate) async fn record(parts: &Parts, progress: &mut Progress, plan: &Plan, revision: &str) {
    let now = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now());
    let time = now.to_string();
    let mut writes = Vec::new();
    for (bundle, why) in progress.suspended() {
        let inv = progress.inventory(&bundle);
        if inv.sync.suspended.as_deref() != Some(why.as_str()) {
            inv.sync.suspended = Some(why);
            writes.push(Write::Save(Box::new(inv.clone())));
        }
    }
    for bundle in progress.bundles_to_record(plan.bundles.keys()) {
        let bp = plan.bundles.get(&bundle);
        // A member that moved to another bundle stays here until that bundle has applied it (it may wait for a
        // dependency or fail): otherwise neither inventory would hold it.
        let moved = bp
            .map(|bp| bp.moved.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|key| progress.applied_elsewhere(&bundle, key))
            .collect();
        let removed = bp.is_some_and(|bp| bp.removed);
        let end = progress.end(&bundle, moved, removed, |e| parts.scrubber.scrub(e));
        let write = record::settle(progress.inventory(&bundle), &end, revision, &time);
        match &write {
            Write::Delete(_) => {
                progress.remove_inventory(&bundle);
                if let Some(m) = &parts.metrics {
                    m.forget_bundle(&bundle);
                }
            }
            Write::Save(inv) => {
                if inv.sync.state == crate::inventory::SyncState::Synced
                    && let Some(m) = &parts.metrics
                {
                    m.synced(
                        &bundle,
                        now.as_millisecond() as f64 / 1000.0,
                        inv.members.len() as u64,
                    );
                }
            }
        }
        writes.push(write);
    }
    for (bundle, result) in record::write_all(&parts.store, writes, parts.concurrency()).await {
        if let Err(e) = result {
            let text = parts.scrubber.scrub(&e.to_string());
            warn!(bundle = %bundle, error = %text, "Inventory write failed");
            progress.fail(&bundle, text);
        }
    }
}
