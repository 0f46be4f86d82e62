//! The end of a sync: prune what left Git (in bundles that applied cleanly), then record the outcome in the
//! inventories (shrinking member lists only after deletes succeeded).

use std::collections::BTreeSet;

use futures::StreamExt;
use tracing::{info, warn};

use super::run::Run;
use super::{MAX_LISTED, Reconciler};
use crate::inventory::store::StoreError;
use crate::inventory::{Inventory, SyncResult, SyncState};
use crate::live::LiveIndex;
use crate::plan::Plan;
use crate::prune::{self, Candidate, Outcome as PruneOutcome};

/// One inventory write of [`Reconciler::record`].
enum Write {
    Save(String, Box<Inventory>),
    Delete(String),
}

impl Reconciler {
    /// Delete what left Git, in bundles that applied cleanly (and in bundles that left Git).
    pub(super) async fn prune(&mut self, run: &mut Run, plan: &Plan, live: &LiveIndex) {
        let mut candidates = Vec::new();
        for (bundle, bp) in &plan.bundles {
            if bp.prune.is_empty() {
                continue;
            }
            if run.failed_bundles.contains(bundle) || run.skipped.contains(bundle) {
                info!(bundle = %bundle, objects = bp.prune.len(), "Prune postponed until the bundle applies cleanly");
                continue;
            }
            for (key, member) in &bp.prune {
                candidates.push(Candidate {
                    bundle: bundle.clone(),
                    applyset_id: self.store.applyset_id(bundle),
                    key: key.clone(),
                    member: member.clone(),
                });
            }
        }
        if candidates.is_empty() {
            return;
        }
        let outcomes = prune::prune(
            &self.client,
            &mut self.resolver,
            candidates,
            live,
            self.settings.apply.concurrency,
        )
        .await;
        for (c, outcome) in outcomes {
            match &outcome {
                PruneOutcome::Deleted => {
                    run.pruned += 1;
                    run.pruned_in
                        .entry(c.bundle.clone())
                        .and_modify(|n| *n += 1)
                        .or_insert(1);
                    if let Some(m) = &self.metrics {
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
                    let text = self.scrubber.scrub(&format!("prune {}: {e}", c.key));
                    warn!(bundle = %c.bundle, error = %text, "Prune failed");
                    run.fail(&c.bundle, text);
                }
            }
            if outcome.settled() {
                run.inventory(&c.bundle).members.remove(&c.key);
            }
        }
    }

    /// Shrink inventories, write sync results, and remove parents of bundles that left Git and are empty.
    pub(super) async fn record(&mut self, run: &mut Run, plan: &Plan) {
        let now = jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or_else(|_| jiff::Timestamp::now());
        let bundles: Vec<String> = plan
            .bundles
            .keys()
            .chain(run.infos.keys())
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut writes = Vec::new();
        for bundle in bundles {
            if run.corrupt.contains(&bundle) {
                continue;
            }
            let bp = plan.bundles.get(&bundle);
            if let Some(bp) = bp {
                for key in &bp.moved {
                    run.inventory(&bundle).members.remove(key);
                }
            }
            let removed = bp.is_some_and(|bp| bp.removed);
            let errors = run.errors_in.get(&bundle).cloned().unwrap_or_default();
            let state = if run.waiting.contains(&bundle) {
                SyncState::Waiting
            } else if !errors.is_empty() || run.skipped.contains(&bundle) {
                SyncState::Failed
            } else {
                SyncState::Synced
            };
            let applied = run.applied_in.get(&bundle).copied().unwrap_or(0);
            let pruned = run.pruned_in.get(&bundle).copied().unwrap_or(0);
            let revision = run.revision.clone();
            let inv = run.inventory(&bundle);
            inv.sync = SyncResult {
                revision: Some(revision),
                time: Some(now.to_string()),
                state,
                applied,
                pruned,
                errors: errors
                    .iter()
                    .take(MAX_LISTED)
                    .map(|e| self.scrubber.scrub(e))
                    .collect(),
            };
            let members = inv.members.len() as u64;
            if removed && inv.members.is_empty() {
                run.inventories.remove(&bundle);
                if let Some(m) = &self.metrics {
                    m.forget_bundle(&bundle);
                }
                writes.push(Write::Delete(bundle));
            } else {
                if state == SyncState::Synced
                    && let Some(m) = &self.metrics
                {
                    m.synced(&bundle, now.as_millisecond() as f64 / 1000.0, members);
                }
                writes.push(Write::Save(bundle, Box::new(inv.clone())));
            }
        }
        // Parents are independent: write them concurrently.
        let store = &self.store;
        let results: Vec<(String, Result<(), StoreError>)> = futures::stream::iter(writes)
            .map(|w| async move {
                match w {
                    Write::Delete(bundle) => {
                        let r = store.delete(&bundle).await;
                        (bundle, r)
                    }
                    Write::Save(bundle, inv) => {
                        let r = store.save(&inv).await;
                        (bundle, r)
                    }
                }
            })
            .buffer_unordered(self.settings.apply.concurrency.max(1))
            .collect()
            .await;
        for (bundle, result) in results {
            if let Err(e) = result {
                let text = self.scrubber.scrub(&e.to_string());
                warn!(bundle = %bundle, error = %text, "Inventory write failed");
                run.fail(&bundle, text);
            }
        }
    }
}
