//! The writer: render every bundle, group the files by the branch `--git-branch` names for each bundle
//! ([`crate::branch`]), and land each branch's files on it ([`crate::fanout`] visits the branches,
//! [`crate::land`] makes one commit on a branch's tip, pushed fast-forward only, rebuilt on the new tip after a
//! lost race, carried by or carrying other clusters' writers). Never force-pushes; our paths are this cluster's
//! only, so rebuilding never touches another cluster's status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use gix::ObjectId;
use outpost_agent::metrics::StatusMetrics;
use outpost_agent::secret::Scrubber;
use outpost_agent::source::{self, Auth, GitRef, RepoUrl, Source};
use tracing::warn;

use crate::branch::BranchTemplate;
use crate::commit::{self, Author};
use crate::fanout::Fanout;
use crate::memory::Memory;
use crate::push;
use crate::watch::{Snapshot, bundle_pods};
use crate::{carry, paths, render};

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

/// Where and how to write.
#[derive(Clone, Debug)]
pub struct Target {
    /// Control repository.
    pub url: RepoUrl,
    /// Credentials.
    pub auth: Auth,
    /// Which branch each bundle's status goes to (`--git-branch`).
    pub branch: BranchTemplate,
    /// This cluster.
    pub cluster: String,
    /// Agent namespace (documents default to it).
    pub namespace: String,
    /// Commit author.
    pub author: Author,
    /// Cache directory.
    pub cache_dir: std::path::PathBuf,
}

/// Status files of one branch: path relative to the cluster's status root → (bundle, bytes).
pub type Files = BTreeMap<String, (String, Vec<u8>)>;

/// Status files by branch.
pub type Branches = BTreeMap<String, Files>;

/// What one write did, per branch it visited (a branch whose status had not changed may be left out).
pub type Report = BTreeMap<String, Written>;

/// Renders status documents.
#[derive(Clone)]
pub struct Renderer {
    namespace: String,
    branch: BranchTemplate,
    metrics: Option<StatusMetrics>,
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
            branches.entry(branch).or_default().insert(
                paths::relative_path(&inventory.info),
                (bundle.clone(), render::render(&view)),
            );
            rendered += 1;
        }
        if let Some(m) = &self.metrics {
            m.rendered(rendered);
        }
        branches
    }
}

/// Renders and pushes status.
pub struct Writer {
    target: Arc<Target>,
    scrubber: Scrubber,
    metrics: Option<StatusMetrics>,
    interrupt: Arc<AtomicBool>,
    /// What the writer remembers between writes.
    memory: Arc<Memory>,
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
        }
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
        tokio::task::spawn_blocking(move || {
            Fanout {
                target: &target,
                scrubber: &scrubber,
                metrics: metrics.as_ref(),
                interrupt: &interrupt,
                memory: &memory,
                latest: &latest,
            }
            .run()
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?
    }
}

/// The control repository as a network source (a local path is fetched from and pushed to through file://, so
/// the new objects go into our cache, never straight into the repository).
pub(crate) fn source_for(target: &Target, scrubber: &Scrubber, reference: GitRef) -> Result<Source, Error> {
    let url = match &target.url {
        RepoUrl::Local(path) => {
            let text = format!("file://{}", path.display());
            let url = gix::url::parse(gix::bstr::BStr::new(text.as_bytes())).map_err(|e| {
                Error::Source(source::Error::Open {
                    path: path.clone(),
                    reason: e.to_string(),
                })
            })?;
            RepoUrl::Remote { url, embedded: None }
        }
        remote => remote.clone(),
    };
    Ok(Source::new(
        source::Config {
            url,
            reference,
            auth: target.auth.clone(),
            cache_dir: target.cache_dir.clone(),
        },
        scrubber.clone(),
    ))
}

/// The control branch as one fetch found it.
pub(crate) struct Tip {
    /// The source the objects came through (its cache is where we build).
    pub(crate) source: Source,
    /// The branch's tip, `None` when the branch does not exist yet.
    pub(crate) old: Option<ObjectId>,
    /// What to build on: the tip, or the default branch's tip for a new branch.
    pub(crate) base: ObjectId,
    /// Status refs published for this branch: cluster → commit.
    pub(crate) published: BTreeMap<String, ObjectId>,
}

/// Fetch the tip of `name` and, when `carrying`, every status ref published for the branch (one ref listing,
/// one pack). When the branch does not exist, the default branch's tip (the branch is then created).
pub(crate) fn fetch_tip(
    target: &Target,
    name: &str,
    scrubber: &Scrubber,
    interrupt: &AtomicBool,
    carrying: bool,
) -> Result<Tip, Error> {
    let branch = source_for(target, scrubber, GitRef::Branch(name.to_owned()))?;
    let (old, published) = if carrying {
        let specs = [
            format!(
                "+{}:{}",
                GitRef::Branch(name.to_owned()).remote_name(),
                source::TRACKING_REF
            ),
            carry::refspec(name),
        ];
        let refs = branch.fetch_refs(&specs, interrupt)?;
        let old = refs.iter().find(|r| r.spec == 0).map(|r| r.id.object_id());
        let published = refs
            .iter()
            .filter(|r| r.spec == 1)
            .filter_map(|r| Some((carry::cluster_of(name, &r.name)?.to_owned(), r.id.object_id())))
            .collect();
        (old, published)
    } else {
        match branch.update(interrupt) {
            Ok(u) => (Some(u.revision.object_id()), BTreeMap::new()),
            Err(source::Error::RefNotFound { .. }) => (None, BTreeMap::new()),
            Err(e) => return Err(e.into()),
        }
    };
    if let Some(tip) = old {
        return Ok(Tip {
            source: branch,
            old: Some(tip),
            base: tip,
            published,
        });
    }
    let head = source_for(target, scrubber, GitRef::Head)?;
    let u = head.update(interrupt)?;
    Ok(Tip {
        source: head,
        old: None,
        base: u.revision.object_id(),
        published,
    })
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
