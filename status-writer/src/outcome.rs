//! What one write did, or why it failed: the [`Report`] of [`Written`] per branch, and [`Error`] with a bounded
//! [`Error::metric_label`] that `outpost_status_write_failures_total` counts by.
//!
//! The stages of a write ([`crate::target`], [`crate::land`], [`crate::fanout`]) return these; the writer hands
//! them to its caller.

use std::collections::BTreeMap;

use gix::ObjectId;
use outpost_agent::source;

use crate::{commit, push};

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Fetching the control branch failed.
    #[error(transparent)]
    Source(#[from] source::Error),
    /// Building the commit failed.
    #[error(transparent)]
    Commit(#[from] commit::Error),
    /// Pushing failed.
    #[error(transparent)]
    Push(#[from] push::Error),
    /// Still rejected after every attempt.
    #[error(
        "push to {url} still rejected after {attempts} attempts (other writers keep moving the branch): {reason}"
    )]
    Contended {
        /// Control repository, without credentials.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last rejection.
        reason: String,
    },
    /// A blocking task died.
    #[error("internal task failed: {0}")]
    Task(String),
}

impl Error {
    /// A bounded label for metrics: the `kind` of `outpost_status_write_failures_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Source(source::Error::Interrupted) => "interrupted",
            Error::Source(source::Error::Stalled { .. }) => "timeout",
            Error::Source(source::Error::Unavailable { .. }) => "unavailable",
            Error::Source(_) => "fetch",
            Error::Commit(e) => e.metric_label(),
            Error::Push(e) => e.metric_label(),
            Error::Contended { .. } => "contended",
            Error::Task(_) => "task",
        }
    }
}

/// What one write did on one branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Written {
    /// The branch already holds exactly this status.
    Unchanged,
    /// A commit was pushed.
    Pushed {
        /// The commit.
        commit: ObjectId,
        /// Bundles whose status changed.
        bundles: Vec<String>,
        /// Rejections before it landed.
        retries: u32,
    },
}

/// What one write did, per branch it visited (a branch whose status had not changed may be left out).
pub type Report = BTreeMap<String, Written>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_has_a_short_bounded_label() {
        let contended = Error::Contended {
            url: "https://git.example/control".into(),
            attempts: 12,
            reason: "moved".into(),
        };
        assert_eq!(contended.metric_label(), "contended");
        assert_eq!(Error::Task("panicked".into()).metric_label(), "task");
        assert_eq!(
            Error::Push(push::Error::Interrupted).metric_label(),
            "interrupted"
        );
        assert_eq!(
            Error::Source(source::Error::Interrupted).metric_label(),
            "interrupted"
        );
        let unauthorized = push::Error::Unauthorized {
            url: "https://git.example/control".into(),
        };
        assert_eq!(Error::Push(unauthorized).metric_label(), "push_unauthorized");
        let refused = source::Error::Unauthorized {
            url: "https://git.example/control".into(),
        };
        assert_eq!(Error::Source(refused).metric_label(), "fetch");
    }
}
