//! What an operator sees when signature verification refuses the ref's commit or tag: a Warning Event
//! `VerificationFailed` on every bundle's inventory and on the agent's control ConfigMap (there may be no bundle
//! yet), carrying the error — which names the commit or tag and the key. The reconcile error itself is the sync
//! result (logged, `--once` exits non-zero) and `outpost_verification_failures_total{reason}` counts it.

use super::error::{Error, Result};
use super::outcome::{Outcome, SyncReport};
use super::parts::Parts;
use crate::source;

/// Event reason of a refused commit or tag.
const REASON: &str = "VerificationFailed";

/// When `result` is a verification refusal, publish it on the control ConfigMap and on each bundle's inventory:
/// the bundles `last` synced, or those the inventories hold when nothing synced since the agent started.
pub(super) async fn warn(parts: &Parts, last: Option<&SyncReport>, result: &Result<Outcome>) {
    let (Some(events), Err(Error::Source(source::Error::Verify(error)))) = (&parts.events, result) else {
        return;
    };
    let note = parts.scrubber.scrub(&error.to_string());
    events.warn_agent(REASON, "Verify", &note).await;
    let bundles: Vec<String> = match last {
        Some(report) => report.inventories.keys().cloned().collect(),
        None => match parts.store.load().await {
            Ok(loaded) => loaded.inventories.into_keys().collect(),
            Err(e) => {
                tracing::debug!(error = %e, "Inventories not read for verification events");
                Vec::new()
            }
        },
    };
    for bundle in bundles {
        events.warn(&bundle, REASON, "Verify", &note).await;
    }
}
