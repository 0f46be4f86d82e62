//! What the sync windows hold back in a reconcile ([`super::window`]): the commit held, the outcome saying so,
//! the prunes left out, and the windows' state as last shown, so each change is logged once.

use jiff::Timestamp;
use tracing::{info, warn};

use super::Outcome;
use crate::control::windows::State;
use crate::plan::Plan;
use crate::source::Revision;

/// A new commit held back by a closed window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Held {
    /// The new commit.
    pub(super) tip: Revision,
    /// The last applied commit, synced instead.
    pub(super) kept: Revision,
    /// When a window next opens.
    pub(super) opens: Option<Timestamp>,
}

/// What the windows said last, to log changes once.
#[derive(Debug, Default)]
pub(super) struct Gate {
    /// Open at the last pass (`None`: not checked yet).
    open: Option<bool>,
    /// The commit held by this pass, if one is.
    pub(super) held: Option<Held>,
    /// The last commit logged as held.
    pub(super) logged: Option<Revision>,
}

impl Gate {
    /// This pass syncs the last applied commit in place of a held one: nothing is pruned.
    pub(super) fn leave_prunes_out(&self, plan: &mut Plan) {
        if self.held.is_none() {
            return;
        }
        for (bundle, bp) in plan.bundles.iter_mut().filter(|(_, bp)| !bp.prune.is_empty()) {
            info!(bundle = %bundle, members = bp.prune.len(), "Prune left out: outside the sync windows");
            bp.prune.clear();
        }
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
    pub(super) fn show(&mut self, state: &State, metrics: Option<&crate::control::metrics::ControlMetrics>) {
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
            Some(at) => {
                info!(next_open = %at, "Sync window closed: new commits wait, drift is still reverted")
            }
            None => warn!("Sync window closed, and no window opens within five years: new commits wait"),
        }
    }
}
