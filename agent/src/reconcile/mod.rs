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
use crate::inventory::store::{Loaded, Store, StoreError};
use crate::live::{self, LiveIndex};
use crate::manifest::{Bundle, layout};
use crate::metrics::Metrics;
use crate::plan::{self, Plan, Refusal, Safety};
use crate::resolve::Resolver;
use crate::secret::Scrubber;
use crate::source::{self, ObjectId, Source};

mod finish;
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
    /// The commit has no directory for this cluster.
    #[error(
        "{path} does not exist at commit {commit}: check --cluster and the repository layout; nothing was changed (set --allow-empty to delete everything instead)"
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
        commit: ObjectId,
    },
    /// The commit was synced.
    Synced {
        /// The commit.
        commit: ObjectId,
        /// Number of bundles.
        bundles: usize,
        /// Objects sent.
        applied: usize,
        /// Objects deleted.
        pruned: usize,
    },
    /// Some bundles wait for dependencies to become healthy; reconcile again soon.
    Waiting {
        /// The commit.
        commit: ObjectId,
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
    pub commit: ObjectId,
    /// What a sync would do.
    pub plan: Plan,
    /// Objects whose kind is unknown.
    pub failures: Vec<String>,
}

/// Keeps one cluster equal to its path in Git.
pub struct Reconciler {
    /// The repository.
    source: Arc<Source>,
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
    last_synced: Option<ObjectId>,
    /// Digest of the applied content of that commit (everything but `status/`), so a commit that only changes
    /// status files costs the API server nothing.
    last_content: Option<String>,
    /// Digest of the content of the commit being synced.
    pending_content: Option<String>,
    /// What the last sync left, for drift correction.
    last_report: Option<Arc<SyncReport>>,
    /// Drift watches run (the daemon): they revert missing and changed objects as it happens, so a sync can
    /// trust the inventories it wrote last and skip re-reading them and listing the live objects.
    watched: bool,
    /// The next sync reloads inventories and lists live objects (first sync, periodic resync, after errors).
    full_sync: bool,
}

impl Reconciler {
    /// A reconciler for one cluster.
    pub fn new(source: Source, client: Client, settings: Settings, scrubber: Scrubber) -> Self {
        Reconciler {
            source: Arc::new(source),
            applier: Applier::new(client.clone(), settings.apply.clone()),
            resolver: Resolver::new(client.clone()),
            store: Store::new(client.clone(), &settings.namespace, &settings.cluster),
            client,
            settings,
            scrubber,
            metrics: None,
            events: None,
            last_synced: None,
            last_content: None,
            pending_content: None,
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
    ) -> Result<std::result::Result<(ObjectId, Vec<Bundle>), ObjectId>> {
        let source = self.source.clone();
        let started = std::time::Instant::now();
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
        let commit = update?.commit;
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
        let files = match files {
            Some(files) => files,
            None if self.settings.safety.allow_empty => Vec::new(),
            None => {
                return Err(Error::MissingClusterPath {
                    path,
                    commit: commit.to_string(),
                });
            }
        };
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
        let plan = plan::build(&desired, &loaded, &live, self.settings.safety, |b| {
            store.applyset_id(b)
        })
        .map_err(|source| Error::Refused {
            commit: commit.to_string(),
            source,
        })?;
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
        let store = self.store.clone();
        let desired = desired::build(&mut bundles, &mut self.resolver, |b| store.applyset_id(b)).await;
        let bundles = &bundles[..];
        let t_desired = started.elapsed();
        let live = if trusted {
            trusted_live_index(&loaded, |b| store.applyset_id(b))
        } else {
            self.live_index(&loaded, &desired).await
        };
        let t_live = started.elapsed();
        let plan = match plan::build(&desired, &loaded, &live, self.settings.safety, |b| {
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
                return Err(Error::Refused {
                    commit: revision.to_owned(),
                    source,
                });
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
