//! One reconcile (DESIGN §3): source → manifests → desired set → plan → apply → prune → record.
//!
//! The reconciler remembers the last commit it synced completely; a poll that finds the same commit stops right
//! after the ref check, without a single API-server request. Inventories grow before objects are applied and
//! shrink only after deletes succeed, so a crash at any point leaves every object we created recorded.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use kube::Client;
use tracing::info;

use crate::apply::Applier;
use crate::desired::{self, DesiredObject, DesiredSet};
use crate::inventory::Inventory;
use crate::inventory::source_state::{Phase, SourceState, SourceStateStore};
use crate::inventory::store::{Loaded, Store, StoreError};
use crate::live::{self, LiveIndex};
use crate::manifest::{Bundle, contest, layout};
use crate::metrics::Metrics;
use crate::plan::{self, Plan, Refusal, Safety};
use crate::resolve::Resolver;
use crate::secret::Scrubber;
use crate::source::{self, Revision, Upstream};

mod finish;
mod history;
mod run;
mod waves;

use run::Run;

/// Errors listed in one message or sync result before "and N more".
const MAX_LISTED: usize = 5;

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

/// What a successful reconcile did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The ref still points at the commit synced last time: nothing was sent to the API server.
    Unchanged {
        /// The commit.
        commit: Revision,
    },
    /// The commit was synced.
    Synced {
        /// The commit.
        commit: Revision,
        /// Number of bundles.
        bundles: usize,
        /// Objects sent.
        applied: usize,
        /// Objects deleted.
        pruned: usize,
    },
    /// The cluster path is missing or has nothing to apply, and nothing is managed: waiting for content (every
    /// install before EMCO's first deployment). Not an error.
    Empty {
        /// The commit.
        commit: Revision,
        /// The path does not exist at all (rather than existing without manifests).
        missing: bool,
    },
    /// Some bundles wait for dependencies to become healthy; reconcile again soon.
    Waiting {
        /// The commit.
        commit: Revision,
        /// Bundles still waiting.
        bundles: Vec<String>,
    },
}

/// Settings of the reconciler that are not the source's.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `--cluster`: the directory under `clusters/` to follow.
    pub cluster: String,
    /// `--namespace`: where inventories live.
    pub namespace: String,
    /// Server-side apply options.
    pub apply: crate::apply::Options,
    /// Safety checks.
    pub safety: Safety,
}

/// The result of syncing one set of bundles (shared by the Git path and tests that bypass Git).
#[derive(Debug, Default)]
pub struct SyncReport {
    /// Objects sent.
    pub applied: usize,
    /// Objects deleted.
    pub pruned: usize,
    /// Bundles waiting for dependencies.
    pub waiting: Vec<String>,
    /// Problems, scrubbed.
    pub errors: Vec<String>,
    /// The desired objects of this commit, by key (for drift correction).
    pub desired: BTreeMap<crate::object::ObjectKey, Arc<DesiredObject>>,
    /// The inventories after the sync.
    pub inventories: BTreeMap<String, Inventory>,
}

/// What `plan` shows: the commit, the plan, and objects that cannot be resolved.
#[derive(Debug)]
pub struct Preview {
    /// The commit.
    pub commit: Revision,
    /// What a sync would do.
    pub plan: Plan,
    /// Objects whose kind is unknown.
    pub failures: Vec<String>,
}

/// Keeps one cluster equal to its path in Git.
pub struct Reconciler {
    /// The repository.
    source: Arc<dyn Upstream>,
    /// The shared client.
    client: Client,
    /// Applies objects.
    applier: Applier,
    /// Discovery cache, kept across reconciles.
    resolver: Resolver,
    /// Inventory parents.
    store: Store,
    /// From the command line.
    settings: Settings,
    /// Removes secrets from error text.
    scrubber: Scrubber,
    /// Counters and gauges, when served.
    metrics: Option<Metrics>,
    /// Kubernetes Events on inventories, in the daemon.
    events: Option<crate::events::Events>,
    /// The last commit synced without error or waiting.
    last_synced: Option<Revision>,
    /// Digest of the applied content of that commit (everything but `status/`), so a commit that only changes
    /// status files costs the API server nothing.
    last_content: Option<String>,
    /// Digest of the content of the commit being synced.
    pending_content: Option<String>,
    /// What the last sync left, for drift correction.
    last_report: Option<Arc<SyncReport>>,
    /// Whether the cluster path was missing in the commit being synced.
    pending_missing: bool,
    /// Shutdown flag of the running reconcile, for blocking Git work started from inside a sync.
    interrupt: Option<Arc<AtomicBool>>,
    /// Where the waiting state is recorded, and the phase recorded last (written only on change).
    source_state: (SourceStateStore, Option<Phase>),
    /// Drift watches run (the daemon): they revert missing and changed objects as it happens, so a sync can
    /// trust the inventories it wrote last and skip re-reading them and listing the live objects.
    watched: bool,
    /// The next sync reloads inventories and lists live objects (first sync, periodic resync, after errors).
    full_sync: bool,
}

impl Reconciler {
    /// A reconciler for one cluster.
    pub fn new(
        source: impl Upstream + 'static,
        client: Client,
        settings: Settings,
        scrubber: Scrubber,
    ) -> Self {
        Reconciler {
            source: Arc::new(source),
            applier: Applier::new(client.clone(), settings.apply.clone()),
            resolver: Resolver::new(client.clone()),
            store: Store::new(client.clone(), &settings.namespace, &settings.cluster),
            source_state: (
                SourceStateStore::new(client.clone(), &settings.namespace, &settings.cluster),
                None,
            ),
            client,
            settings,
            scrubber,
            metrics: None,
            events: None,
            last_synced: None,
            last_content: None,
            pending_content: None,
            pending_missing: false,
            interrupt: None,
            last_report: None,
            watched: false,
            full_sync: true,
        }
    }

    /// Declare that drift watches run alongside (daemon mode): between full resyncs, syncs then trust the last
    /// written inventories instead of re-reading them and listing live objects.
    pub fn with_drift_watches(mut self) -> Self {
        self.watched = true;
        self
    }

    /// Record metrics from now on.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Publish Kubernetes Events for failures and refusals from now on.
    pub fn with_events(mut self, events: crate::events::Events) -> Self {
        self.events = Some(events);
        self
    }

    /// The repository path of this cluster's directory.
    pub fn cluster_path(&self) -> String {
        format!("clusters/{}", self.settings.cluster)
    }

    /// What the last sync left (desired objects and inventories), if any.
    pub fn last_report(&self) -> Option<Arc<SyncReport>> {
        self.last_report.clone()
    }

    /// Forget the synced commit so the next reconcile syncs again even if the ref did not move (periodic full
    /// resync).
    pub fn force_next(&mut self) {
        self.last_synced = None;
        self.last_content = None;
        self.full_sync = true;
    }

    /// Check the ref and, when it moved (or `force`), read and parse the commit's cluster path.
    /// `Ok(Err(commit))` means unchanged.
    async fn fetch_commit(
        &mut self,
        interrupt: Arc<AtomicBool>,
        force: bool,
    ) -> Result<std::result::Result<(Revision, Vec<Bundle>), Revision>> {
        let source = self.source.clone();
        let started = std::time::Instant::now();
        self.interrupt = Some(interrupt.clone());
        let update = tokio::task::spawn_blocking(move || source.update(&interrupt))
            .await
            .map_err(|e| Error::Task(e.to_string()))?;
        if let Some(m) = &self.metrics {
            let ok = update.is_ok();
            let op = match &update {
                Ok(u) if u.fetched => crate::metrics::GitOperation::Fetch,
                _ => crate::metrics::GitOperation::RefCheck,
            };
            m.git_request(op, ok, started.elapsed().as_secs_f64());
        }
        let commit = update?.revision;
        if !force && self.last_synced == Some(commit) {
            return Ok(Err(commit));
        }
        let path = self.cluster_path();
        let source = self.source.clone();
        let dir = path.clone();
        let t_update = started.elapsed();
        let files = tokio::task::spawn_blocking(move || source.read_dir(commit, &dir))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        // A missing path is judged with the inventories (in `sync`): waiting when nothing is managed, refused
        // when objects are and no commit announced their deletion.
        self.pending_missing = files.is_none();
        let files = files.unwrap_or_default();
        let content = content_digest(&files);
        if !force && self.last_content.as_ref() == Some(&content) {
            // Only files the agent never applies changed (status written by status writers).
            self.last_synced = Some(commit);
            return Ok(Err(commit));
        }
        self.pending_content = Some(content);
        let manifests_err = |source| Error::Manifests {
            commit: commit.to_string(),
            source,
        };
        let t_read = started.elapsed();
        let bundles = layout::bundles(&path, &files).map_err(manifests_err)?;
        tracing::debug!(
            git_ms = t_update.as_millis(),
            read_ms = (t_read - t_update).as_millis(),
            parse_ms = (started.elapsed() - t_read).as_millis(),
            files = files.len(),
            "Commit phases"
        );
        // Real duplicates reject the commit; one app's update in flight is settled in `sync`.
        contest::find(&bundles).map_err(manifests_err)?;
        Ok(Ok((commit, bundles)))
    }

    /// What a sync of the current commit would do, changing nothing (for `outpost-agent plan`).
    pub async fn preview(&mut self, interrupt: Arc<AtomicBool>) -> Result<Preview> {
        let (commit, bundles) = match self.fetch_commit(interrupt, true).await? {
            Ok(parsed) => parsed,
            Err(_) => unreachable!("forced fetch never reports unchanged"),
        };
        let loaded = self.store.load().await?;
        let store = self.store.clone();
        let mut bundles = bundles;
        let desired = desired::build(&mut bundles, &mut self.resolver, |b| store.applyset_id(b)).await;
        let live = self.live_index(&loaded, &desired).await;
        let announced = self
            .announced_if_empty(&commit.to_string(), &bundles, &loaded)
            .await;
        let plan = plan::build(&desired, &loaded, &live, self.settings.safety, &announced, |b| {
            store.applyset_id(b)
        })
        .map_err(|source| self.refusal(&commit.to_string(), source))?;
        let failures = desired
            .failures
            .values()
            .flatten()
            .map(|f| self.scrubber.scrub(&f.to_string()))
            .collect();
        Ok(Preview {
            commit,
            plan,
            failures,
        })
    }

    /// One pass: check the ref, and when it moved (or the last pass did not finish), sync the commit.
    pub async fn reconcile(&mut self, interrupt: Arc<AtomicBool>) -> Result<Outcome> {
        let (commit, bundles) = match self.fetch_commit(interrupt, false).await? {
            Ok(parsed) => parsed,
            Err(commit) => return Ok(Outcome::Unchanged { commit }),
        };
        let bundle_count = bundles.len();
        let report = self.sync(&commit.to_string(), bundles).await?;
        if bundle_count == 0 && report.errors.is_empty() && report.inventories.is_empty() {
            let missing = self.pending_missing;
            self.last_synced = Some(commit);
            self.last_content = self.pending_content.take();
            self.last_report = Some(Arc::new(report));
            let message = if missing {
                format!(
                    "{} does not exist at commit {commit}; nothing is managed: waiting for content",
                    self.cluster_path()
                )
            } else {
                format!(
                    "{} holds nothing to apply at commit {commit}; nothing is managed: waiting for content",
                    self.cluster_path()
                )
            };
            self.record_phase(Phase::Waiting, &commit.to_string(), message.clone())
                .await;
            info!(commit = %commit, "{message}");
            return Ok(Outcome::Empty { commit, missing });
        }
        if report.errors.is_empty() {
            let message = format!("following {}", self.cluster_path());
            self.record_phase(Phase::Following, &commit.to_string(), message)
                .await;
        }
        let outcome = if !report.errors.is_empty() {
            let mut summary = report
                .errors
                .iter()
                .take(MAX_LISTED)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ");
            if report.errors.len() > MAX_LISTED {
                summary.push_str(&format!("; and {} more", report.errors.len() - MAX_LISTED));
            }
            let err = Error::Partial {
                commit: commit.to_string(),
                failed: report.errors.len(),
                summary,
            };
            self.last_report = Some(Arc::new(report));
            return Err(err);
        } else if !report.waiting.is_empty() {
            Outcome::Waiting {
                commit,
                bundles: report.waiting.clone(),
            }
        } else {
            self.last_synced = Some(commit);
            self.last_content = self.pending_content.take();
            info!(commit = %commit, bundles = bundle_count, applied = report.applied, pruned = report.pruned, "Synced");
            Outcome::Synced {
                commit,
                bundles: bundle_count,
                applied: report.applied,
                pruned: report.pruned,
            }
        };
        self.last_report = Some(Arc::new(report));
        Ok(outcome)
    }

    /// Sync `bundles` (already parsed from commit `revision`) to the cluster.
    pub async fn sync(&mut self, revision: &str, mut bundles: Vec<Bundle>) -> Result<SyncReport> {
        let started = std::time::Instant::now();
        let trusted = self.watched && !self.full_sync;
        let cached = self.last_report.as_ref().filter(|_| trusted).map(|r| Loaded {
            inventories: r.inventories.clone(),
            corrupt: Default::default(),
        });
        let loaded = match cached {
            Some(loaded) => loaded,
            None => self.store.load().await?,
        };
        let t_load = started.elapsed();
        self.settle_contested(&mut bundles, &loaded);
        let store = self.store.clone();
        let desired = desired::build(&mut bundles, &mut self.resolver, |b| store.applyset_id(b)).await;
        let bundles = &bundles[..];
        let t_desired = started.elapsed();
        let announced = self.announced_if_empty(revision, bundles, &loaded).await;
        let live = if trusted {
            trusted_live_index(&loaded, |b| store.applyset_id(b))
        } else {
            self.live_index(&loaded, &desired).await
        };
        let t_live = started.elapsed();
        let plan = match plan::build(&desired, &loaded, &live, self.settings.safety, &announced, |b| {
            store.applyset_id(b)
        }) {
            Ok(plan) => plan,
            Err(source) => {
                if let Some(events) = &self.events {
                    for bundle in loaded.inventories.keys() {
                        events
                            .warn(bundle, "SyncRefused", "Prune", &source.to_string())
                            .await;
                    }
                }
                return Err(self.refusal(revision, source));
            }
        };
        let mut run = Run::new(revision, &loaded, bundles, &self.settings.cluster);
        for (bundle, failures) in &desired.failures {
            for f in failures {
                run.fail(bundle, f.to_string());
            }
        }
        let t_plan = started.elapsed();
        self.apply_in_waves(&mut run, bundles, &plan, &desired).await?;
        let t_apply = started.elapsed();
        self.prune(&mut run, &plan, &live).await;
        let t_prune = started.elapsed();
        self.record(&mut run, &plan).await;
        tracing::debug!(
            load_ms = t_load.as_millis(),
            desired_ms = (t_desired - t_load).as_millis(),
            live_ms = (t_live - t_desired).as_millis(),
            plan_ms = (t_plan - t_live).as_millis(),
            apply_ms = (t_apply - t_plan).as_millis(),
            prune_ms = (t_prune - t_apply).as_millis(),
            record_ms = (started.elapsed() - t_prune).as_millis(),
            "Sync phases"
        );
        if let Some(events) = &self.events {
            for (bundle, errors) in &run.errors_in {
                let note = errors
                    .iter()
                    .take(MAX_LISTED)
                    .map(|e| self.scrubber.scrub(e))
                    .collect::<Vec<_>>()
                    .join("; ");
                events.warn(bundle, "SyncFailed", "Apply", &note).await;
            }
        }

        let mut report = SyncReport {
            applied: run.applied,
            pruned: run.pruned,
            waiting: run.waiting.iter().cloned().collect(),
            errors: run.errors.iter().map(|e| self.scrubber.scrub(e)).collect(),
            ..Default::default()
        };
        for objects in desired.objects.into_values() {
            for o in objects {
                report.desired.insert(o.key.clone(), o);
            }
        }
        report.inventories = run.inventories;
        // Trust this result next time only if nothing went wrong.
        self.full_sync = !report.errors.is_empty();
        Ok(report)
    }

    /// Give each object that two bundles of one EMCO app define to the newer bundle ([`contest`]).
    fn settle_contested(&self, bundles: &mut [Bundle], loaded: &Loaded) {
        let Ok(contested) = contest::find(bundles) else {
            return; // rejected in `fetch_commit` already
        };
        if contested.is_empty() {
            return;
        }
        let first_seen = |bundle: &str| {
            loaded.inventories.get(bundle).map(|inv| {
                inv.info
                    .first_seen
                    .clone()
                    .unwrap_or_else(|| crate::inventory::FIRST_SEEN_UNKNOWN.to_owned())
            })
        };
        for (object, winner, losers) in contest::settle(bundles, &contested, first_seen) {
            info!(object = %object, bundle = %winner, from = ?losers, "Taken over by the newer bundle of its app");
        }
    }

    /// When Git holds no bundle at all while objects are managed: the bundles whose deletion a skipped commit
    /// announced ([`history`]). Empty otherwise (nothing to decide, or `--allow-empty` decides).
    async fn announced_if_empty(
        &self,
        revision: &str,
        bundles: &[Bundle],
        loaded: &Loaded,
    ) -> BTreeSet<String> {
        let managed = loaded.inventories.values().any(|i| !i.members.is_empty());
        if !bundles.is_empty() || !managed || self.settings.safety.allow_empty {
            return BTreeSet::new();
        }
        match Revision::parse(revision) {
            Some(tip) => self.announced_deletions(tip, loaded).await,
            None => BTreeSet::new(),
        }
    }

    /// The error for a refused plan: a missing path says so.
    fn refusal(&self, revision: &str, source: Refusal) -> Error {
        match source {
            Refusal::EmptySource { .. } if self.pending_missing => Error::MissingClusterPath {
                path: self.cluster_path(),
                commit: revision.to_owned(),
            },
            source => Error::Refused {
                commit: revision.to_owned(),
                source,
            },
        }
    }

    /// Record the agent's phase where `status` and the status writer read it, when it changed.
    async fn record_phase(&mut self, phase: Phase, revision: &str, message: String) {
        if self.source_state.1 == Some(phase) {
            return;
        }
        let state = SourceState {
            phase,
            revision: revision.to_owned(),
            message,
            time: jiff::Timestamp::now().to_string(),
        };
        match self.source_state.0.save(&state).await {
            Ok(()) => self.source_state.1 = Some(phase),
            Err(e) => {
                tracing::warn!(error = %self.scrubber.scrub(&e.to_string()), "Cannot record the agent's state")
            }
        }
    }

    /// Live metadata of every kind we manage or are about to manage.
    async fn live_index(&mut self, loaded: &Loaded, desired: &DesiredSet) -> LiveIndex {
        let mut kinds = live::Kinds::new();
        for inv in loaded.inventories.values() {
            for (key, member) in &inv.members {
                let entry = kinds
                    .entry((key.group.clone(), key.kind.clone()))
                    .or_insert_with(|| (member.api_version.clone(), BTreeSet::new()));
                entry.1.insert(key.namespace.clone());
            }
        }
        // Only kinds already in an inventory can have live members worth checking; others are all new.
        let _ = desired;
        live::list(&self.client, &mut self.resolver, &kinds).await
    }
}

/// What the live cluster looks like according to the last sync, when drift watches keep it that way: every
/// applied member present exactly as recorded; pending members (empty digest) absent, so they are applied.
fn trusted_live_index(loaded: &Loaded, applyset_id: impl Fn(&str) -> String) -> LiveIndex {
    let mut index = LiveIndex::default();
    for (bundle, inv) in &loaded.inventories {
        let id = applyset_id(bundle);
        for (key, member) in &inv.members {
            index.mark_listed(&key.group, &key.kind);
            if member.digest.is_empty() {
                continue;
            }
            index.insert(
                key.clone(),
                crate::live::LiveMeta {
                    generation: member.generation,
                    resource_version: member.resource_version.clone(),
                    part_of: Some(id.clone()),
                    ..Default::default()
                },
            );
        }
    }
    index
}

/// Digest of the files the agent applies (everything below the cluster path except `status/`).
fn content_digest(files: &[crate::source::SourceFile]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for f in files.iter().filter(|f| !f.path.starts_with("status/")) {
        hasher.update(f.path.as_bytes());
        hasher.update([0]);
        hasher.update(Sha256::digest(&f.data));
    }
    crate::manifest::digest::hex(&hasher.finalize())
}
