//! Per-bundle identity in a sync ([`crate::identity`]): which ServiceAccount each bundle acts as this time,
//! and the gate a bundle passes before anything of it is applied — its cluster-scoped objects against
//! `--no-cluster-scoped`, and, when it acts as a ServiceAccount, a dry run of what it is about to send as that
//! account. A bundle stopped at the gate fails with one error per object; nothing of it is applied, and since
//! it did not apply cleanly, nothing of it is pruned.

use std::collections::{BTreeMap, BTreeSet};

use tracing::warn;

use super::parts::Parts;
use super::progress::Progress;
use crate::desired::{DesiredSet, Failure, ObjectError};
use crate::inventory::store::Loaded;
use crate::manifest::Bundle;
use crate::plan::BundlePlan;

/// Tell the controls and the identities what Git's `outpost.yaml` files say this sync; a bundle that left Git
/// keeps the ServiceAccount its inventory recorded, so its prune acts as the same account.
pub(crate) fn learn(parts: &Parts, bundles: &[Bundle], loaded: &Loaded) {
    let settings = bundles.iter().map(|b| (b.name.clone(), b.settings.clone()));
    parts.controls.set_git(settings.collect());
    let Some(identities) = parts.applier.identities() else {
        return;
    };
    let in_git: BTreeSet<&str> = bundles.iter().map(|b| b.name.as_str()).collect();
    let mut accounts: BTreeMap<String, String> = loaded
        .inventories
        .iter()
        .filter(|(bundle, _)| !in_git.contains(bundle.as_str()))
        .filter_map(|(bundle, inv)| Some((bundle.clone(), inv.info.service_account.clone()?)))
        .collect();
    accounts.extend(
        bundles
            .iter()
            .filter_map(|b| Some((b.name.clone(), b.settings.service_account.clone()?))),
    );
    identities.assign(accounts);
}

/// Whether `bundle` may go ahead: none of its objects is a refused cluster-scoped kind, and the ServiceAccount
/// it acts as may apply everything in `bp`. When not, its failures are recorded in `progress`.
pub(crate) async fn admit(
    parts: &Parts,
    progress: &mut Progress,
    bundle: &str,
    bp: &BundlePlan,
    desired: &DesiredSet,
) -> bool {
    let Some(identities) = parts.applier.identities() else {
        return true;
    };
    let mut refused = Vec::new();
    let objects = desired.objects.get(bundle).map(Vec::as_slice).unwrap_or_default();
    for o in objects {
        if let Some(why) = identities.cluster_scoped().refusal(&o.key) {
            refused.push(failure(o, ObjectError::ClusterScoped(why)));
        }
    }
    if refused.is_empty()
        && let Some(account) = identities.account(bundle)
    {
        let sending: Vec<_> = bp.apply.iter().map(|a| a.object.clone()).collect();
        match identities.acting(bundle) {
            Ok(acting) => {
                let options = parts.applier.options();
                let forbidden = crate::identity::forbidden_in(
                    &acting.client,
                    &sending,
                    &options.field_manager,
                    options.concurrency,
                )
                .await;
                for (o, reason) in forbidden {
                    let text = format!(
                        "{}; nothing of this bundle was applied",
                        account.forbidden(&reason)
                    );
                    refused.push(failure(&o, ObjectError::ForbiddenAs(text)));
                }
            }
            Err(e) => {
                let text = parts.scrubber.scrub(&e.to_string());
                warn!(bundle = %bundle, error = %text, "Bundle not applied");
                progress.fail(bundle, text);
                return false;
            }
        }
    }
    for f in &refused {
        if let Some(m) = &parts.metrics {
            m.apply_error(bundle);
            m.object_failed("apply", f.error.metric_label());
        }
        let text = parts.scrubber.scrub(&f.to_string());
        warn!(bundle = %bundle, error = %text, "Apply refused");
        progress.fail(bundle, text);
    }
    refused.is_empty()
}

/// A failure of `o`.
fn failure(o: &crate::desired::DesiredObject, error: ObjectError) -> Failure {
    Failure {
        bundle: o.bundle.clone(),
        object: o.key.to_string(),
        origin: o.origin.clone(),
        error,
    }
}
