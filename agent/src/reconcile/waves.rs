//! Applying a commit's plan bundle by bundle, in dependency waves: bundles whose dependencies are not healthy
//! wait; inventories grow before anything new exists in the cluster.

use std::collections::BTreeMap;

use tracing::{info, warn};

use super::parts::Parts;
use super::progress::Progress;
use crate::apply::Report;
use crate::deps;
use crate::desired::DesiredSet;
use crate::inventory::Member;
use crate::inventory::record::{self, Write};
use crate::inventory::store::StoreError;
use crate::manifest::Bundle;
use crate::plan::Plan;

/// Apply bundle by bundle in dependency waves; bundles whose dependencies are not healthy wait. Fails only
/// when an inventory cannot grow (nothing new is applied then).
pub(crate) async fn apply(
    parts: &mut Parts,
    progress: &mut Progress,
    bundles: &[Bundle],
    plan: &Plan,
    desired: &DesiredSet,
) -> Result<(), StoreError> {
    let graph: BTreeMap<String, Vec<String>> = bundles
        .iter()
        .map(|b| (b.name.clone(), b.depends_on.clone()))
        .collect();
    let (waves, blocked) = deps::waves(&graph);
    for (bundle, e) in blocked {
        progress.block(&bundle, e.to_string());
    }
    for wave in waves {
        let mut objects = Vec::new();
        let mut in_wave = Vec::new();
        for bundle in &wave {
            let deps_of = graph.get(bundle).cloned().unwrap_or_default();
            if let Some(waiting_on) = unhealthy_dependency(parts, progress, &deps_of, desired).await {
                progress.wait(bundle);
                info!(bundle = %bundle, dependency = %waiting_on, "Waiting for dependency");
                continue;
            }
            let Some(bp) = plan.bundles.get(bundle) else {
                continue;
            };
            if !super::acting::admit(parts, progress, bundle, bp, desired).await {
                continue;
            }
            in_wave.push(bundle.clone());
            objects.extend(bp.apply.iter().map(|a| a.object.clone()));
        }
        grow_inventories(parts, progress, &in_wave, plan).await?;
        let report = parts.applier.apply(&mut parts.resolver, objects).await;
        note_applied(parts, progress, report);
    }
    Ok(())
}

/// Record the members about to be applied before anything new exists in the cluster (concurrently: parents
/// are independent).
async fn grow_inventories(
    parts: &Parts,
    progress: &mut Progress,
    in_wave: &[String],
    plan: &Plan,
) -> Result<(), StoreError> {
    let mut grown = Vec::new();
    for bundle in in_wave {
        let Some(bp) = plan.bundles.get(bundle) else {
            continue;
        };
        let inv = progress.inventory(bundle);
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
            grown.push(Write::Save(Box::new(inv.clone())));
        }
    }
    for (_, result) in record::write_all(&parts.store, grown, parts.concurrency()).await {
        result?;
    }
    Ok(())
}

/// The first dependency that is not healthy, if any.
async fn unhealthy_dependency(
    parts: &Parts,
    progress: &Progress,
    deps: &[String],
    desired: &DesiredSet,
) -> Option<String> {
    for dep in deps {
        if progress.unsynced(dep) {
            return Some(format!("{dep} (not synced)"));
        }
        let objects = desired.objects.get(dep).map(Vec::as_slice).unwrap_or_default();
        let health = deps::bundle_health(&parts.client, objects).await;
        if !health.is_ready() {
            return Some(format!("{dep}: {} ({})", health.status, health.message));
        }
    }
    None
}

/// Record apply results in the progress, metrics and errors.
fn note_applied(parts: &Parts, progress: &mut Progress, report: Report) {
    for a in report.applied {
        if let Some(m) = &parts.metrics {
            m.applied(&a.bundle, 1);
        }
        let member = Member {
            api_version: a.api_version,
            digest: a.digest,
            generation: a.generation,
            resource_version: a.resource_version,
        };
        progress.applied(&a.bundle, a.key, member);
    }
    for f in report.failed {
        if let Some(m) = &parts.metrics {
            m.apply_error(&f.bundle);
            m.object_failed("apply", f.error.metric_label());
        }
        let text = parts.scrubber.scrub(&f.to_string());
        warn!(bundle = %f.bundle, error = %text, "Apply failed");
        progress.fail(&f.bundle, text);
    }
}
