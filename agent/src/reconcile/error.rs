//! Why a reconcile did not finish cleanly. In every case the last good state stays applied.

use crate::inventory::store::StoreError;
use crate::manifest::layout;
use crate::plan::Refusal;
use crate::source;

/// Why a reconcile did not finish cleanly. In every case the last good state stays applied.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The repository could not be read.
    #[error(transparent)]
    Source(#[from] source::Error),
    /// The commit has no directory for this cluster while objects are managed and no commit announced their
    /// deletion.
    #[error(
        "{path} does not exist at commit {commit} but objects are managed and no commit since the last applied one announced their deletion (EMCO leaves an app's status tracker alone first): check --cluster and the repository layout; nothing was changed (set --allow-empty to delete everything instead)"
    )]
    MissingClusterPath {
        /// `clusters/<cluster>`.
        path: String,
        /// The commit.
        commit: String,
    },
    /// Some file did not parse or validate; nothing was applied.
    #[error("commit {commit}: {source}; nothing was applied or pruned")]
    Manifests {
        /// The commit.
        commit: String,
        /// The first problems.
        #[source]
        source: layout::Error,
    },
    /// The plan looked like a mistake; nothing was applied or pruned.
    #[error("commit {commit}: {source}")]
    Refused {
        /// The commit.
        commit: String,
        /// Why.
        #[source]
        source: Refusal,
    },
    /// The new commit does not descend from the last applied one and the freshness policy refuses it
    /// (`freshness`); nothing was applied or pruned.
    #[error(
        "commit {commit} refused: {why}; the last applied commit {last} stays applied, nothing was applied or pruned (if this is intended, run once with --allow-history-rewrite; sources that force-push new commits, such as EMCO, need --history-rewrite=newer)"
    )]
    HistoryRefused {
        /// The new commit.
        commit: String,
        /// The last applied commit.
        last: String,
        /// Bounded label (`rewritten`, `beyond_depth`, `older`, `unknown_time`).
        reason: &'static str,
        /// Why, for a person.
        why: String,
    },
    /// Inventories could not be read or written.
    #[error(transparent)]
    Inventory(#[from] StoreError),
    /// Some objects failed to apply or prune; the others were synced.
    #[error("commit {commit}: {failed} problems: {summary}")]
    Partial {
        /// The commit.
        commit: String,
        /// How many objects or bundles failed.
        failed: usize,
        /// The first problems.
        summary: String,
    },
    /// A blocking task died (panicked or was cancelled).
    #[error("internal task failed: {0}")]
    Task(String),
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The kind of failure, as a bounded metric label (failed reconciles are counted by it).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Source(e) => e.metric_label(),
            Error::MissingClusterPath { .. } => "missing_cluster_path",
            Error::Manifests { .. } => "manifests",
            Error::Refused { .. } => "refused",
            Error::HistoryRefused { .. } => "history_refused",
            Error::Inventory(_) => "inventory",
            Error::Partial { .. } => "partial",
            Error::Task(_) => "task",
        }
    }
}
