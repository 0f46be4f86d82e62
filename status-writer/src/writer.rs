//! The writer: render every bundle, group the files by the branch `--git-branch` names for each bundle
//! ([`crate::branch`]), and land each branch's files on it ([`crate::fanout`] visits the branches,
//! [`crate::land`] makes one commit on a branch's tip, pushed fast-forward only, rebuilt on the new tip after a
//! lost race, carried by or carrying other clusters' writers). Never force-pushes; our paths are this cluster's
//! only, so rebuilding never touches another cluster's status.
//!
//! The writer's API: [`Writer`] and [`Renderer`] here, with [`Target`] (where to write, [`crate::target`]) and
//! [`Written`], [`Report`] and [`Error`] (what a write did, [`crate::outcome`]) re-exported from their homes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use outpost_agent::secret::Scrubber;
use outpost_agent::source::{self, deadline};
use tracing::warn;

use crate::branch::BranchTemplate;
use crate::fanout::Fanout;
use crate::memory::Memory;
use crate::metrics::StatusMetrics;
use crate::paths;
use crate::render::{self, Branches};
use crate::select::bundle_pods;
use crate::stamp::Stamps;
use crate::watch::Snapshot;

pub use crate::outcome::{Error, Report, Written};
pub use crate::target::Target;

/// Renders status documents.
#[derive(Clone)]
pub struct Renderer {
    /// Agent namespace: documents default to it.
    namespace: String,
    /// Which branch each bundle's status goes to (`--git-branch`).
    branch: BranchTemplate,
    /// `outpost_status_documents_rendered_total`; `None` for `--once`, which serves no metrics.
    metrics: Option<StatusMetrics>,
    /// The sync time each document carries, kept while nothing else in it changes.
    stamps: Arc<Stamps>,
}

impl Renderer {
    /// Render every bundle of `snapshot` into status files (paths relative to the cluster's status root), grouped
    /// by the branch the template names for each bundle. A bundle whose branch name is invalid is reported and
    /// left out.
    pub fn render_all(&self, snapshot: &Snapshot) -> Branches {
        let mut branches = Branches::new();
        let mut rendered = 0;
        for (bundle, inventory) in &snapshot.inventories {
            let branch = match self.branch.expand(&inventory.info) {
                Ok(branch) => branch,
                Err(e) => {
                    warn!(bundle = %bundle, error = %e, "Status not written");
                    continue;
                }
            };
            let pods = bundle_pods(snapshot, inventory);
            let live: BTreeMap<_, _> = inventory
                .members
                .keys()
                .filter_map(|k| snapshot.objects.get(k).map(|v| (k.clone(), v.clone())))
                .collect();
            let view = render::BundleView {
                inventory,
                agent_namespace: &self.namespace,
                live: &live,
                pods: &pods,
            };
            let document = render::document(&view);
            let time = self
                .stamps
                .choose(bundle, document.digest(), inventory.sync.time.as_deref());
            branches.entry(branch).or_default().insert(
                paths::relative_path(&inventory.info),
                (bundle.clone(), document.to_bytes(time.as_deref())),
            );
            rendered += 1;
        }
        self.stamps
            .retain(|bundle| snapshot.inventories.contains_key(bundle));
        if let Some(m) = &self.metrics {
            m.rendered(rendered);
        }
        branches
    }
}

/// Renders and pushes status.
pub struct Writer {
    /// Where to write; shared with the blocking task of each write.
    target: Arc<Target>,
    /// Removes credentials from messages.
    scrubber: Scrubber,
    /// `outpost_status_*`; `None` for `--once`, which serves no metrics.
    metrics: Option<StatusMetrics>,
    /// Raised on shutdown: blocking Git work stops at the next check.
    interrupt: Arc<AtomicBool>,
    /// What the writer remembers between writes.
    memory: Arc<Memory>,
    /// The sync time each document carries (`--status-heartbeat`).
    stamps: Arc<Stamps>,
}

impl Writer {
    /// A writer for `target`.
    pub fn new(
        target: Target,
        scrubber: Scrubber,
        metrics: Option<StatusMetrics>,
        interrupt: Arc<AtomicBool>,
    ) -> Self {
        Writer {
            target: Arc::new(target),
            scrubber,
            metrics,
            interrupt,
            memory: Arc::default(),
            stamps: Arc::default(),
        }
    }

    /// Refresh the sync time of unchanged documents every `heartbeat` (`None`, the default: only when a
    /// document changes; see [`crate::stamp`]).
    pub fn with_heartbeat(mut self, heartbeat: Option<std::time::Duration>) -> Self {
        self.stamps = Arc::new(Stamps::new(heartbeat));
        self
    }

    /// Render every bundle of `snapshot` into status files, grouped by branch (see [`Renderer::render_all`]).
    pub fn render_all(&self, snapshot: &Snapshot) -> Branches {
        self.renderer().render_all(snapshot)
    }

    /// A renderer to take along into [`Writer::write_latest`].
    pub fn renderer(&self) -> Renderer {
        Renderer {
            namespace: self.target.namespace.clone(),
            branch: self.target.branch.clone(),
            metrics: self.metrics.clone(),
            stamps: self.stamps.clone(),
        }
    }

    /// Write `branches` (every bundle's files, by branch): on each branch, commit if anything changed, push,
    /// retry on rejection; remove our status from branches whose bundles left. Blocking work runs on the
    /// blocking pool.
    pub async fn write(&self, branches: Branches) -> Result<Report, Error> {
        self.write_latest(move || Some(branches.clone())).await
    }

    /// Like [`Writer::write`], asking `latest` for the files first and again before every retry, so a retry
    /// after a lost race carries the newest status rather than the one the write started with (`None`: the
    /// watches are not complete; write nothing at first, keep the previous files on a retry).
    pub async fn write_latest(
        &self,
        latest: impl Fn() -> Option<Branches> + Send + 'static,
    ) -> Result<Report, Error> {
        let target = self.target.clone();
        let scrubber = self.scrubber.clone();
        let metrics = self.metrics.clone();
        let interrupt = self.interrupt.clone();
        let memory = self.memory.clone();
        let fanout_metrics = metrics.clone();
        if let Some(absent) = self.unplugged() {
            return Err(absent);
        }
        let (limit, url) = (target.auth.timeout, target.url.to_string());
        // No progress (a branch written) for --git-timeout abandons the write: a frozen receive-pack or a server
        // that stopped answering must not hold the writer.
        let joined = deadline::run(limit, interrupt, move |dog| {
            Fanout {
                target: &target,
                scrubber: &scrubber,
                metrics: fanout_metrics.as_ref(),
                interrupt: dog.interrupt(),
                progress: dog,
                memory: &memory,
                latest: &latest,
            }
            .run()
        })
        .await;
        let written = joined.unwrap_or_else(|e| {
            let e = match e {
                deadline::Error::Stalled(s) => Error::Source(source::Error::Stalled { url, after: s.after }),
                deadline::Error::Task(e) => Error::Task(e),
            };
            if let Some(m) = &metrics {
                m.write_failed(e.metric_label());
            }
            Err(e)
        });
        // Media pulled out mid-write is the same absence, whatever the Git error said.
        match (written, self.unplugged()) {
            (Err(_), Some(absent)) => Err(absent),
            (written, _) => written,
        }
    }

    /// [`Error::Source`] `Unavailable` when the control repository is a local path that is absent (unplugged
    /// media): nothing to fetch or push until it returns. The status stays with the watches and is rendered
    /// afresh when it does, so none is lost; what we remember having landed is not trusted on whatever copy
    /// comes back.
    fn unplugged(&self) -> Option<Error> {
        let source::RepoUrl::Local(path) = &self.target.url else {
            return None;
        };
        if source::media::present(path) {
            return None;
        }
        self.memory.distrust_seen();
        Some(Error::Source(source::Error::Unavailable { path: path.clone() }))
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
