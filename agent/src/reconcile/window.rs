//! Obeying the sync windows ([`crate::control::windows`]) in a reconcile: outside them a new commit is held
//! back and the cluster kept at the last applied commit instead. That commit is what polls and full resyncs
//! then sync (re-applying drift, as drift correction does between them), with every prune left out; a new
//! install, which has applied nothing yet, syncs the new commit whatever the windows say.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use jiff::Timestamp;
use tracing::{info, warn};

use super::{Outcome, Reconciler, Result};
use crate::control::windows::State;
use crate::source::Revision;

/// A new commit held back by a closed window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Held {
    /// The new commit.
    tip: Revision,
    /// The last applied commit, synced instead.
    kept: Revision,
    /// When a window next opens.
    opens: Option<Timestamp>,
}

/// What the windows said last, to log changes once.
#[derive(Debug, Default)]
pub(super) struct Gate {
    /// Open at the last pass (`None`: not checked yet).
    open: Option<bool>,
    /// The commit held by this pass, if one is.
    held: Option<Held>,
    /// The last commit logged as held.
    logged: Option<Revision>,
}

impl Gate {
    /// This pass syncs the last applied commit in place of a held one: nothing is pruned.
    pub(super) fn holding(&self) -> bool {
        self.held.is_some()
    }

    /// The outcome of a pass that held its commit back (`None`: nothing held).
    pub(super) fn outcome(&self) -> Option<Outcome> {
        self.held.map(|h| Outcome::Held {
            commit: h.tip,
            kept: h.kept,
            opens: h.opens,
        })
    }

    /// Log and show the windows' state when it changed.
    fn show(&mut self, state: &State, metrics: Option<&crate::control::metrics::ControlMetrics>) {
        let (open, next) = match state {
            State::Open => (true, None),
            State::Closed { next } => (false, *next),
        };
        if let Some(m) = metrics {
            m.set_window(open, next);
        }
        if self.open == Some(open) {
            return;
        }
        self.open = Some(open);
        match next {
            _ if open => info!("Sync window open: new commits are applied and pruned"),
            Some(at) => info!(next_open = %at, "Sync window closed: new commits wait, drift is still reverted"),
            None => warn!("Sync window closed, and no window opens within five years: new commits wait"),
        }
    }
}

impl Reconciler {
    /// The commit this pass syncs for the tip `tip`: `tip` itself, or the last applied commit while a closed
    /// window holds `tip` back.
    pub(super) async fn windowed(&mut self, tip: Revision, interrupt: Arc<AtomicBool>) -> Result<Revision> {
        self.window.held = None;
        let windows = self.parts.controls.windows().clone();
        if windows.is_empty() {
            return Ok(tip);
        }
        let state = windows.state();
        self.window.show(&state, self.parts.controls.metrics());
        let State::Closed { next } = state else {
            return Ok(tip);
        };
        // A new install (nothing applied, or nothing managed yet) syncs whatever the windows say.
        let nothing_managed = self.last_report.as_ref().is_some_and(|r| r.inventories.is_empty());
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

    /// `read` of the commit to sync, or `None` when it is a held commit's last applied one that cannot be read
    /// (a new cache without it): then nothing is synced until a window opens, and drift correction keeps what
    /// it had.
    pub(super) fn tolerate_kept<T>(&self, read: Result<T>) -> Result<Option<T>> {
        match (read, self.window.held) {
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
