//! `outpost-agent plan`: what the next sync would create, update (with a field-level diff from a server-side
//! dry run) and prune. Changes nothing.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use kube::Client;

use crate::apply::{Applier, Options};
use crate::diff;
use crate::plan::Reason;
use crate::reconcile::{self, Reconciler};
use crate::resolve::Resolver;

/// Counts of what the plan would do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Objects to create.
    pub create: usize,
    /// Objects to update.
    pub update: usize,
    /// Objects to delete.
    pub prune: usize,
    /// Objects the dry run rejected.
    pub invalid: usize,
}

/// Print the plan to `out`.
pub async fn run(
    reconciler: &mut Reconciler,
    client: Client,
    options: Options,
    out: &mut (impl Write + Send),
) -> Result<Summary, reconcile::Error> {
    let preview = reconciler.preview(Arc::new(AtomicBool::new(false))).await?;
    let dry = Applier::new(
        client.clone(),
        Options {
            dry_run: true,
            ..options
        },
    );
    // Each bundle's dry run acts as its ServiceAccount, so the plan shows what that account may not do.
    let dry = match reconciler.identities() {
        Some(identities) => dry.acting_as(identities),
        None => dry,
    };
    let mut resolver = Resolver::new(client.clone());
    let mut summary = Summary::default();
    let _ = writeln!(out, "Plan for commit {}", preview.commit);
    for f in &preview.failures {
        summary.invalid += 1;
        let _ = writeln!(out, "! {f}");
    }
    for (bundle, bp) in &preview.plan.bundles {
        if bp.apply.is_empty() && bp.prune.is_empty() {
            continue;
        }
        let _ = writeln!(out, "bundle {bundle}:");
        for action in &bp.apply {
            let o = &action.object;
            let report = dry.apply(&mut resolver, vec![o.clone()]).await;
            if let Some(failure) = report.failed.first() {
                if o.resolved.is_none() && action.reason == Reason::Create {
                    summary.create += 1;
                    let _ = writeln!(
                        out,
                        "  + create {} ({}; its CRD is created first)",
                        o.key, o.origin.file
                    );
                } else {
                    summary.invalid += 1;
                    let _ = writeln!(out, "  ! {failure}");
                }
                continue;
            }
            let (returned, adopted) = report
                .applied
                .into_iter()
                .next()
                .map(|a| (a.returned, a.adopted))
                .unwrap_or_default();
            // Looked up for new members too: one that exists already (created by kubectl, Helm or Flux) is
            // adopted, and the diff shows what adoption changes.
            let live = match &o.resolved {
                Some(r) => {
                    let api = r.api(&client, o.key.namespace.as_deref());
                    api.get_opt(&o.key.name).await.ok().flatten()
                }
                None => None,
            };
            match live {
                None => {
                    summary.create += 1;
                    let _ = writeln!(out, "  + create {} ({})", o.key, o.origin.file);
                }
                Some(live) => {
                    let before = serde_json::to_value(&live).unwrap_or_default();
                    let after = returned
                        .and_then(|r| serde_json::to_value(r).ok())
                        .unwrap_or_default();
                    let secret = o.key.group.is_empty() && o.key.kind == "Secret";
                    let mut changes = diff::diff(&before, &after, secret);
                    diff::mask(&mut changes, &o.origin.sealed);
                    summary.update += 1;
                    let why = match action.reason {
                        Reason::Drifted => " (changed in the cluster)",
                        Reason::Missing => " (missing)",
                        _ => "",
                    };
                    let verb = if action.reason == Reason::Create {
                        "adopt"
                    } else {
                        "update"
                    };
                    let from = if adopted.is_empty() {
                        String::new()
                    } else {
                        format!(" (taking over the fields of {})", adopted.join(", "))
                    };
                    let _ = writeln!(out, "  ~ {verb} {}{why}{from} ({})", o.key, o.origin.file);
                    for c in changes {
                        let _ = writeln!(out, "      {c}");
                    }
                }
            }
        }
        for (key, _) in &bp.prune {
            summary.prune += 1;
            let _ = writeln!(out, "  - prune {key}");
        }
    }
    let _ = writeln!(
        out,
        "{} to create, {} to update, {} to prune, {} invalid.",
        summary.create, summary.update, summary.prune, summary.invalid
    );
    Ok(summary)
}
