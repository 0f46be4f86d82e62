//! Applying a commit's plan bundle by bundle, in dependency waves: bundles whose dependencies are not healthy
//! wait; inventories grow before anything new exists in the cluster.

use std::collections::BTreeMap;

use futures::StreamExt;
use tracing::{info, warn};

use super::run::Run;
use super::{Reconciler, Result};
use crate::apply::Report;
use crate::deps;
use crate::desired::DesiredSet;
use crate::inventory::Member;
use crate::inventory::store::StoreError;
use crate::manifest::Bundle;
use crate::plan::Plan;

impl Reconciler {
    /// Apply bundle by bundle in dependency waves; bundles whose dependencies are not healthy wait.
    pub(super) async fn apply_in_waves(
        &mut self,
        run: &mut Run,
        bundles: &[Bundle],
        plan: &Plan,
        desired: &DesiredSet,
    ) -> Result<()> {
        let graph: BTreeMap<String, Vec<String>> = bundles
            .iter()
            .map(|b| (b.name.clone(), b.depends_on.clone()))
            .collect();
        let (waves, blocked) = deps::waves(&graph);
        for (bundle, e) in blocked {
            run.fail(&bundle, e.to_string());
            run.skipped.insert(bundle);
        }
        for wave in waves {
            let mut objects = Vec::new();
            let mut in_wave = Vec::new();
            for bundle in &wave {
                let deps_of = graph.get(bundle).cloned().unwrap_or_default();
                if let Some(waiting_on) = self.unhealthy_dependency(run, &deps_of, desired).await {
                    run.waiting.insert(bundle.clone());
                    run.skipped.insert(bundle.clone());
                    info!(bundle = %bundle, dependency = %waiting_on, "Waiting for dependency");
                    continue;
                }
                let Some(bp) = plan.bundles.get(bundle) else {
                    continue;
                };
                in_wave.push(bundle.clone());
                objects.extend(bp.apply.iter().map(|a| a.object.clone()));
            }
            // Grow inventories before anything new exists in the cluster (concurrently: parents are independent).
            let mut grown = Vec::new();
            for bundle in &in_wave {
                let Some(bp) = plan.bundles.get(bundle) else {
                    continue;
                };
                let inv = run.inventory(bundle);
                let mut grew = false;
                for a in &bp.apply {
                    if !inv.members.contains_key(&a.object.key) {
                        inv.members.insert(
                            a.object.key.clone(),
                            Member {
                                api_version: a.object.api_version.clone(),
                                ..Default::default()
                            },
                        );
                        grew = true;
                    }
                }
                if grew {
                    grown.push(inv.clone());
                }
            }
            let store = &self.store;
            let saved: Vec<Result<(), StoreError>> = futures::stream::iter(grown.iter())
                .map(|inv| store.save(inv))
                .buffer_unordered(self.settings.apply.concurrency.max(1))
                .collect()
                .await;
            saved.into_iter().collect::<Result<Vec<()>, StoreError>>()?;
            let report = self.applier.apply(&mut self.resolver, objects).await;
            self.note_applied(run, report);
        }
        Ok(())
    }

    /// The first dependency that is not healthy, if any.
    async fn unhealthy_dependency(&self, run: &Run, deps: &[String], desired: &DesiredSet) -> Option<String> {
        for dep in deps {
            if run.waiting.contains(dep) || run.failed_bundles.contains(dep) {
                return Some(format!("{dep} (not synced)"));
            }
            let objects = desired.objects.get(dep).map(Vec::as_slice).unwrap_or_default();
            let health = deps::bundle_health(&self.client, objects).await;
            if !health.is_ready() {
                return Some(format!("{dep}: {} ({})", health.status, health.message));
            }
        }
        None
    }

    /// Record apply results in the run's inventories, metrics and errors.
    fn note_applied(&self, run: &mut Run, report: Report) {
        for a in report.applied {
            if let Some(m) = &self.metrics {
                m.applied(&a.bundle, 1);
            }
            run.applied += 1;
            run.applied_in
                .entry(a.bundle.clone())
                .and_modify(|n| *n += 1)
                .or_insert(1);
            let inv = run.inventory(&a.bundle);
            inv.members.insert(
                a.key,
                Member {
                    api_version: a.api_version,
                    digest: a.digest,
                    generation: a.generation,
                    resource_version: a.resource_version,
                },
            );
        }
        for f in report.failed {
            if let Some(m) = &self.metrics {
                m.apply_error(&f.bundle);
            }
            let text = self.scrubber.scrub(&f.to_string());
            warn!(bundle = %f.bundle, error = %text, "Apply failed");
            run.fail(&f.bundle, text);
        }
    }
}
