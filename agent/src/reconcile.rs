//! One reconcile (DESIGN §3): source → manifests → apply, and what it did.
//!
//! The reconciler remembers the last commit it applied completely; a poll that finds the same commit stops
//! right after the ref check, without a single API-server request.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use kube::Client;
use tracing::{info, warn};

use crate::apply::{self, Applier, Desired};
use crate::manifest::layout;
use crate::resolve::Resolver;
use crate::secret::Scrubber;
use crate::source::{self, ObjectId, Source};

/// Failures listed in one error message before "and N more".
const MAX_LISTED_FAILURES: usize = 5;

/// Why a reconcile did not finish cleanly. In every case the last good state stays applied.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The repository could not be read.
    #[error(transparent)]
    Source(#[from] source::Error),
    /// The commit has no directory for this cluster.
    #[error(
        "{path} does not exist at commit {commit}: check --cluster and the repository layout; nothing was changed"
    )]
    MissingClusterPath {
        /// `clusters/<cluster>`.
        path: String,
        /// The commit.
        commit: String,
    },
    /// Some file did not parse or validate; nothing was applied.
    #[error("commit {commit}: {source}; nothing was applied")]
    Manifests {
        /// The commit.
        commit: String,
        /// The first problems.
        #[source]
        source: layout::Error,
    },
    /// Some objects were rejected; the others were applied.
    #[error("commit {commit}: {failed} of {total} objects failed: {summary}")]
    Apply {
        /// The commit.
        commit: String,
        /// How many failed.
        failed: usize,
        /// How many were tried.
        total: usize,
        /// The first failures.
        summary: String,
    },
    /// A blocking task died (panicked or was cancelled).
    #[error("internal task failed: {0}")]
    Task(String),
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a successful reconcile did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The ref still points at the commit applied last time: nothing was sent to the API server.
    Unchanged {
        /// The commit.
        commit: ObjectId,
    },
    /// The commit was applied.
    Synced {
        /// The commit.
        commit: ObjectId,
        /// Number of bundles.
        bundles: usize,
        /// Number of objects applied.
        applied: usize,
    },
}

/// Settings of the reconciler that are not the source's.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `--cluster`: the directory under `clusters/` to follow.
    pub cluster: String,
    /// Server-side apply options.
    pub apply: apply::Options,
}

/// Keeps one cluster equal to its path in Git.
pub struct Reconciler {
    /// The repository.
    source: Arc<Source>,
    /// Applies objects.
    applier: Applier,
    /// Discovery cache, kept across reconciles.
    resolver: Resolver,
    /// From the command line.
    settings: Settings,
    /// Removes secrets from error text.
    scrubber: Scrubber,
    /// The last commit applied without error.
    last_applied: Option<ObjectId>,
}

impl Reconciler {
    /// A reconciler for one cluster.
    pub fn new(source: Source, client: Client, settings: Settings, scrubber: Scrubber) -> Self {
        Reconciler {
            source: Arc::new(source),
            applier: Applier::new(client.clone(), settings.apply.clone()),
            resolver: Resolver::new(client),
            settings,
            scrubber,
            last_applied: None,
        }
    }

    /// The repository path of this cluster's directory.
    pub fn cluster_path(&self) -> String {
        format!("clusters/{}", self.settings.cluster)
    }

    /// One pass: check the ref, and when it moved (or the last pass failed), apply the commit.
    pub async fn reconcile(&mut self, interrupt: Arc<AtomicBool>) -> Result<Outcome> {
        let source = self.source.clone();
        let update = tokio::task::spawn_blocking(move || source.update(&interrupt))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        if self.last_applied == Some(update.commit) {
            return Ok(Outcome::Unchanged {
                commit: update.commit,
            });
        }
        let commit = update.commit;
        let path = self.cluster_path();
        let source = self.source.clone();
        let dir = path.clone();
        let files = tokio::task::spawn_blocking(move || source.read_dir(commit, &dir))
            .await
            .map_err(|e| Error::Task(e.to_string()))??
            .ok_or_else(|| Error::MissingClusterPath {
                path: path.clone(),
                commit: commit.to_string(),
            })?;
        let manifests_err = |source| Error::Manifests {
            commit: commit.to_string(),
            source,
        };
        let bundles = layout::bundles(&path, &files).map_err(manifests_err)?;
        layout::check_duplicates(bundles.iter().flat_map(|b| &b.manifests), |m| {
            format!(
                "{}/{}/{}/{}",
                m.group(),
                m.kind,
                m.namespace.as_deref().unwrap_or(""),
                m.name
            )
        })
        .map_err(manifests_err)?;

        let desired: Vec<Desired> = bundles
            .iter()
            .flat_map(|b| {
                b.manifests.iter().map(|m| Desired {
                    bundle: b.name.clone(),
                    manifest: m.clone(),
                })
            })
            .collect();
        let total = desired.len();
        let report = self.applier.apply(&mut self.resolver, desired).await;
        for failure in &report.failed {
            warn!(bundle = %failure.bundle, error = %self.scrubber.scrub(&failure.to_string()), "Apply failed");
        }
        if !report.failed.is_empty() {
            let mut summary = report
                .failed
                .iter()
                .take(MAX_LISTED_FAILURES)
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
                .join("; ");
            if report.failed.len() > MAX_LISTED_FAILURES {
                summary.push_str(&format!(
                    "; and {} more",
                    report.failed.len() - MAX_LISTED_FAILURES
                ));
            }
            return Err(Error::Apply {
                commit: commit.to_string(),
                failed: report.failed.len(),
                total,
                summary: self.scrubber.scrub(&summary),
            });
        }
        self.last_applied = Some(commit);
        info!(commit = %commit, bundles = bundles.len(), applied = report.applied.len(), "Synced");
        Ok(Outcome::Synced {
            commit,
            bundles: bundles.len(),
            applied: report.applied.len(),
        })
    }
}
