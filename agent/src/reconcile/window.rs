//! Obeying the sync windows ([`crate::control::windows`]) in a reconcile: outside them a new commit is held
//! back and the cluster kept at the last applied commit instead. That commit is what polls and full resyncs
//! then sync (re-applying drift, as drift correction does between them), with every prune left out; a new
//! install, which has applied nothing yet, syncs the new commit whatever the windows say.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tracing::{info, warn};

use super::held::Held;
use super::{Reconciler, Result, fetch};
use crate::control::windows::State;
use crate::source::{Revision, SourceFile};

/// The files of a commit's cluster path (`None`: it does not exist there) and their digest.
type Files = (Option<Vec<SourceFile>>, String);

impl Reconciler {
    /// The commit this pass syncs for the tip `tip`: `tip` itself, or the last applied commit while a closed
    /// window holds `tip` back.
    pub(super) async fn windowed(
        &mut self,
        tip: Revision,
        preview: bool,
        interrupt: Arc<AtomicBool>,
    ) -> Result<Revision> {
        self.window.held = None;
        let windows = self.parts.controls.windows().clone();
        if windows.is_empty() || preview {
            return Ok(tip);
        }
        let state = windows.state();
        self.window.show(&state, self.parts.controls.metrics());
        let State::Closed { next } = state else {
            return Ok(tip);
        };
        // A new install (nothing applied, or nothing managed yet) syncs whatever the windows say.
        let nothing_managed = self
            .last_report
            .as_ref()
            .is_some_and(|r| r.inventories.is_empty());
        let base = self.applied_base().await?.filter(|_| !nothing_managed);
        let Some(kept) = base.filter(|b| *b != tip) else {
            if base.is_none() && self.window.logged != Some(tip) {
                self.window.logged = Some(tip);
                info!(commit = %tip, "First sync: runs outside the sync windows, as nothing is applied yet");
            }
            return Ok(tip);
        };
        if self.window.logged != Some(tip) {
            self.window.logged = Some(tip);
            let opens = next.map_or_else(|| "not within five years".to_owned(), |t| t.to_string());
            info!(commit = %tip, kept = %kept, next_open = %opens, "New commit held: outside the sync windows; the cluster stays at the last applied commit");
            if let Some(events) = &self.parts.events {
                let when = next.map_or_else(
                    || "no window opens within five years".to_owned(),
                    |t| format!("the next window opens at {t}"),
                );
                let note = format!(
                    "commit {tip} held outside the sync windows; the cluster stays at {kept}; {when}"
                );
                events.agent("SyncHeld", "Hold", &note).await;
            }
        }
        if self.last_synced != Some(kept) {
            // Judge the tip as ever (a rewrite is refused, held or not); the walk also deepens a shallow cache
            // back to the kept commit, so a new cache can read it.
            self.check_fresh(tip, interrupt).await?;
        }
        self.window.held = Some(Held {
            tip,
            kept,
            opens: next,
        });
        Ok(kept)
    }

    /// The files of `commit` under `path` and their digest ([`fetch::read`]), or `None` when `commit` is a
    /// held commit's last applied one that cannot be read (a new cache without it): then nothing is synced
    /// until a window opens, and drift correction keeps what it had.
    pub(super) async fn read_target(&self, commit: Revision, path: &str) -> Result<Option<Files>> {
        match (fetch::read(&self.source, commit, path).await, self.window.held) {
            (Ok(read), _) => Ok(Some(read)),
            (Err(e), Some(held)) => {
                let error = self.parts.scrubber.scrub(&e.to_string());
                warn!(kept = %held.kept, error = %error, "The last applied commit cannot be read: nothing is synced until a sync window opens");
                Ok(None)
            }
            (Err(e), None) => Err(e),
        }
    }
}
