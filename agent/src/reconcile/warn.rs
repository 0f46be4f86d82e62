//! Warning Events of a sync: on every inventory when a whole sync is refused, on each bundle that had problems.

use super::Reconciler;
use super::progress::{MAX_LISTED, Progress};
use crate::inventory::store::Loaded;

impl Reconciler {
    /// A Warning Event on every loaded inventory (a refused sync concerns them all).
    pub(super) async fn warn_all(&self, loaded: &Loaded, reason: &str, action: &str, note: &str) {
        if let Some(events) = &self.parts.events {
            for bundle in loaded.inventories.keys() {
                events.warn(bundle, reason, action, note).await;
            }
        }
    }

    /// A Warning Event on each bundle that had problems, listing the first ones.
    pub(super) async fn warn_failures(&self, progress: &Progress) {
        let Some(events) = &self.parts.events else {
            return;
        };
        for (bundle, errors) in progress.errors_by_bundle() {
            let note = errors
                .iter()
                .take(MAX_LISTED)
                .map(|e| self.parts.scrubber.scrub(e))
                .collect::<Vec<_>>()
                .join("; ");
            events.warn(bundle, "SyncFailed", "Apply", &note).await;
        }
    }
}
