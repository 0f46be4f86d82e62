//! The end of a sync: prune what left Git (in bundles that applied cleanly), then record the outcome in the
//! inventories (shrinking member lists only after deletes succeeded).

use tracing::{info, warn};

use super::parts::Parts;
use super::progress::Progress;
use crate::inventory::record::{self, Write};
use crate::live::LiveIndex;
use crate::plan::Plan;
use crate::prune::{self, Outcome as PruneOutcome};

/// Delete what left Git, in bundles that applied cleanly (and in bundles that left Git).
pub(crate) async fn prune(parts: &mut Parts, progress: &mut Progress, plan: &Plan, live: &LiveIndex) {
    let store = &parts.store;
    let candidates = prune::candidates(plan, |b| progress.clean(b), |b| store.applyset_id(b));
    if candidates.is_empty() {
        return;
    }
    let concurrency = parts.settings.apply.concurrency;
    let outcomes = prune::prune(&parts.client, &mut parts.resolver, candidates, live, concurrency).await;
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
            PruneOutcome::NotOurs => {
                info!(bundle = %c.bundle, object = %c.key, "Not pruned: no longer ours")
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
}

/// Shrink inventories, write sync results, and remove parents of bundles that left Git and are empty.
pub(crate) async fn record(parts: &Parts, progress: &mut Progress, plan: &Plan, revision: &str) {
    let now = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now());
    let time = now.to_string();
    let mut writes = Vec::new();
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
