//! The writer: render every bundle, build one commit on the control branch's tip, push it fast-forward only,
//! and on rejection fetch the new tip, rebuild on it and retry with jittered backoff. Never force-pushes; our
//! paths are this cluster's only, so rebuilding never touches another cluster's status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use gix::ObjectId;
use outpost_agent::metrics::StatusMetrics;
use outpost_agent::secret::Scrubber;
use outpost_agent::source::{self, Auth, GitRef, RepoUrl, Source};
use tracing::{info, warn};

use crate::commit::{self, Author};
use crate::push::{self, PushOutcome, PushRequest};
use crate::watch::{Snapshot, bundle_pods};
use crate::{paths, render};

/// Push attempts per write before giving up until the next change (each rejection means someone else pushed in
/// between; with a few dozen writers on one branch a handful of rounds is plenty).
const MAX_ATTEMPTS: u32 = 12;
/// First retry delay after a rejection; doubled each time, with jitter, capped at [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(50);
/// Longest delay between attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(2);

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

/// What one write did.
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
    /// Branch to push to.
    pub branch: String,
    /// This cluster.
    pub cluster: String,
    /// Agent namespace (documents default to it).
    pub namespace: String,
    /// Commit author.
    pub author: Author,
    /// Cache directory.
    pub cache_dir: std::path::PathBuf,
}

/// Renders and pushes status.
pub struct Writer {
    target: Arc<Target>,
    scrubber: Scrubber,
    metrics: Option<StatusMetrics>,
    interrupt: Arc<AtomicBool>,
    /// Our status subtree as we last pushed it, to notice someone else rewriting it.
    last_pushed: Arc<std::sync::Mutex<Option<ObjectId>>>,
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
            last_pushed: Arc::default(),
        }
    }

    /// Render every bundle of `snapshot` into status files (paths relative to the cluster's status root).
    pub fn render_all(&self, snapshot: &Snapshot) -> BTreeMap<String, (String, Vec<u8>)> {
        let mut files = BTreeMap::new();
        for (bundle, inventory) in &snapshot.inventories {
            let pods = bundle_pods(snapshot, inventory);
            let live: BTreeMap<_, _> = inventory
                .members
                .keys()
                .filter_map(|k| snapshot.objects.get(k).map(|v| (k.clone(), v.clone())))
                .collect();
            let view = render::BundleView {
                inventory,
                agent_namespace: &self.target.namespace,
                live: &live,
                pods: &pods,
            };
            files.insert(
                paths::relative_path(&inventory.info),
                (bundle.clone(), render::render(&view)),
            );
        }
        if let Some(m) = &self.metrics {
            m.rendered(files.len() as u64);
        }
        files
    }

    /// Write `files` to the branch: commit if anything changed, push, retry on rejection. Blocking work runs
    /// on the blocking pool.
    pub async fn write(&self, files: BTreeMap<String, (String, Vec<u8>)>) -> Result<Written, Error> {
        let target = self.target.clone();
        let scrubber = self.scrubber.clone();
        let metrics = self.metrics.clone();
        let interrupt = self.interrupt.clone();
        let last_pushed = self.last_pushed.clone();
        tokio::task::spawn_blocking(move || {
            write_blocking(
                &target,
                &scrubber,
                metrics.as_ref(),
                &interrupt,
                &last_pushed,
                &files,
            )
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?
    }
}

/// The control repository as a network source (a local path is fetched from and pushed to through file://, so
/// the new objects go into our cache, never straight into the repository).
fn source_for(target: &Target, scrubber: &Scrubber, reference: GitRef) -> Result<Source, Error> {
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

/// Fetch the branch tip; when the branch does not exist, the default branch's tip (the branch is then created).
fn fetch_tip(
    target: &Target,
    scrubber: &Scrubber,
    interrupt: &AtomicBool,
) -> Result<(Source, Option<ObjectId>, ObjectId), Error> {
    let branch = source_for(target, scrubber, GitRef::Branch(target.branch.clone()))?;
    match branch.update(interrupt) {
        Ok(u) => Ok((branch, Some(u.commit), u.commit)),
        Err(source::Error::RefNotFound { .. }) => {
            let head = source_for(target, scrubber, GitRef::Head)?;
            let u = head.update(interrupt)?;
            Ok((head, None, u.commit))
        }
        Err(e) => Err(e.into()),
    }
}

fn write_blocking(
    target: &Target,
    scrubber: &Scrubber,
    metrics: Option<&StatusMetrics>,
    interrupt: &AtomicBool,
    last_pushed: &std::sync::Mutex<Option<ObjectId>>,
    files: &BTreeMap<String, (String, Vec<u8>)>,
) -> Result<Written, Error> {
    let root = paths::status_root(&target.cluster);
    let contents: BTreeMap<String, Vec<u8>> = files
        .iter()
        .map(|(p, (_, bytes))| (p.clone(), bytes.clone()))
        .collect();
    let mut delay = FIRST_RETRY_DELAY;
    let mut last_reason = String::new();
    for attempt in 0..MAX_ATTEMPTS {
        let (source, old, base) = fetch_tip(target, scrubber, interrupt)?;
        let repo = source.cache_repo()?;
        let before = commit::subtree(&repo, base, &root)?;
        if attempt == 0 {
            let expected = *last_pushed.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(expected) = expected
                && before != Some(expected)
            {
                warn!(
                    branch = %target.branch,
                    "Our status directory on the branch is not what we last pushed: history was rewritten (force-push) or someone edited it; writing current status on top, never force-pushing"
                );
            }
        }
        let changed = changed_bundles(&repo, base, &root, files);
        let message = format!(
            "outpost status: {}: {}",
            target.cluster,
            if changed.is_empty() {
                "refresh".to_owned()
            } else {
                changed.join(", ")
            }
        );
        let Some(built) = commit::build(&repo, Some(base), &root, &contents, &message, &target.author)?
        else {
            *last_pushed.lock().unwrap_or_else(|e| e.into_inner()) = before;
            return Ok(Written::Unchanged);
        };
        let started = std::time::Instant::now();
        let request = PushRequest {
            url: &target.url,
            auth: &target.auth,
            scrubber,
            branch: &target.branch,
            old,
            new: built.commit,
            repo: &repo,
            objects: &built.objects,
            cache_dir: &target.cache_dir,
        };
        let outcome = push::push(&request, interrupt);
        if let Some(m) = metrics {
            m.observe_push(started.elapsed().as_secs_f64());
        }
        match outcome? {
            PushOutcome::Updated => {
                let bytes: u64 = built
                    .objects
                    .iter()
                    .filter_map(|id| repo.find_object(*id).ok().map(|o| o.data.len() as u64))
                    .sum();
                if let Some(m) = metrics {
                    m.committed();
                    m.pushed(bytes, jiff::Timestamp::now().as_millisecond() as f64 / 1000.0);
                }
                *last_pushed.lock().unwrap_or_else(|e| e.into_inner()) =
                    commit::subtree(&repo, built.commit, &root)?;
                info!(commit = %built.commit, bundles = ?changed, retries = attempt, "Status pushed");
                return Ok(Written::Pushed {
                    commit: built.commit,
                    bundles: changed,
                    retries: attempt,
                });
            }
            PushOutcome::Rejected { reason, .. } => {
                if let Some(m) = metrics {
                    m.push_rejected();
                    m.push_retried();
                }
                last_reason = reason;
                let jitter = delay.mul_f64(fastrand::f64());
                std::thread::sleep(delay + jitter);
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
        }
    }
    Err(Error::Contended {
        url: target.url.to_string(),
        attempts: MAX_ATTEMPTS,
        reason: last_reason,
    })
}

/// Bundles whose status file differs from the one at `base`.
fn changed_bundles(
    repo: &gix::Repository,
    base: ObjectId,
    root: &str,
    files: &BTreeMap<String, (String, Vec<u8>)>,
) -> Vec<String> {
    let mut changed = Vec::new();
    for (path, (bundle, bytes)) in files {
        let current = commit::read_file(repo, base, &format!("{root}/{path}"));
        if current.as_deref() != Some(bytes.as_slice()) {
            changed.push(bundle.clone());
        }
    }
    changed.sort();
    changed
}
