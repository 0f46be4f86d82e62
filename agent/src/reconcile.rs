//! One reconcile (DESIGN §3): source → manifests → desired set → plan → apply → prune → record.
//!
//! The reconciler remembers the last commit it synced completely; a poll that finds the same commit stops right
//! after the ref check, without a single API-server request. Inventories grow before objects are applied and
//! shrink only after deletes succeed, so a crash at any point leaves every object we created recorded.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use futures::StreamExt;
use kube::Client;
use tracing::{info, warn};

use crate::apply::{Applier, Report};
use crate::deps;
use crate::desired::{self, DesiredObject, DesiredSet};
use crate::inventory::store::{Loaded, Store, StoreError};
use crate::inventory::{BundleInfo, Inventory, Member, SyncResult, SyncState};
use crate::live::{self, LiveIndex};
use crate::manifest::{Bundle, Layout, layout};
use crate::metrics::Metrics;
use crate::plan::{self, Plan, Refusal, Safety};
use crate::prune::{self, Candidate, Outcome as PruneOutcome};
use crate::resolve::Resolver;
use crate::secret::Scrubber;
use crate::source::{self, ObjectId, Source};

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

    /// Apply bundle by bundle in dependency waves; bundles whose dependencies are not healthy wait.
    async fn apply_in_waves(
        &mut self,
        run: &mut Run,
        bundles: &[Bundle],
        plan: &Plan,
        desired: &DesiredSet,
    ) -> Result<()> {
        let graph: BTreeMap<String, Vec<String>> = bundles
            .iter()
            .map(|b| (b.name.clone(), b.depends_on.clone()))
            .collect();
        let (waves, blocked) = deps::waves(&graph);
        for (bundle, e) in blocked {
            run.fail(&bundle, e.to_string());
            run.skipped.insert(bundle);
        }
        for wave in waves {
            let mut objects = Vec::new();
            let mut in_wave = Vec::new();
            for bundle in &wave {
                let deps_of = graph.get(bundle).cloned().unwrap_or_default();
                if let Some(waiting_on) = self.unhealthy_dependency(run, &deps_of, desired).await {
                    run.waiting.insert(bundle.clone());
                    run.skipped.insert(bundle.clone());
                    info!(bundle = %bundle, dependency = %waiting_on, "Waiting for dependency");
                    continue;
                }
                let Some(bp) = plan.bundles.get(bundle) else {
                    continue;
                };
                in_wave.push(bundle.clone());
                objects.extend(bp.apply.iter().map(|a| a.object.clone()));
            }
            // Grow inventories before anything new exists in the cluster (concurrently: parents are independent).
            let mut grown = Vec::new();
            for bundle in &in_wave {
                let Some(bp) = plan.bundles.get(bundle) else {
                    continue;
                };
                let inv = run.inventory(bundle);
                let mut grew = false;
                for a in &bp.apply {
                    if !inv.members.contains_key(&a.object.key) {
                        inv.members.insert(
                            a.object.key.clone(),
                            Member {
                                api_version: a.object.api_version.clone(),
                                ..Default::default()
                            },
                        );
                        grew = true;
                    }
                }
                if grew {
                    grown.push(inv.clone());
                }
            }
            let store = &self.store;
            let saved: Vec<Result<(), StoreError>> = futures::stream::iter(grown.iter())
                .map(|inv| store.save(inv))
                .buffer_unordered(self.settings.apply.concurrency.max(1))
                .collect()
                .await;
            saved.into_iter().collect::<Result<Vec<()>, StoreError>>()?;
            let report = self.applier.apply(&mut self.resolver, objects).await;
            self.note_applied(run, report);
        }
        Ok(())
    }

    /// The first dependency that is not healthy, if any.
    async fn unhealthy_dependency(&self, run: &Run, deps: &[String], desired: &DesiredSet) -> Option<String> {
        for dep in deps {
            if run.waiting.contains(dep) || run.failed_bundles.contains(dep) {
                return Some(format!("{dep} (not synced)"));
            }
            let objects = desired.objects.get(dep).map(Vec::as_slice).unwrap_or_default();
            let health = deps::bundle_health(&self.client, objects).await;
            if !health.is_ready() {
                return Some(format!("{dep}: {} ({})", health.status, health.message));
            }
        }
        None
    }

    /// Record apply results in the run's inventories, metrics and errors.
    fn note_applied(&self, run: &mut Run, report: Report) {
        for a in report.applied {
            if let Some(m) = &self.metrics {
                m.applied(&a.bundle, 1);
            }
            run.applied += 1;
            run.applied_in
                .entry(a.bundle.clone())
                .and_modify(|n| *n += 1)
                .or_insert(1);
            let inv = run.inventory(&a.bundle);
            inv.members.insert(
                a.key,
                Member {
                    api_version: a.api_version,
                    digest: a.digest,
                    generation: a.generation,
                    resource_version: a.resource_version,
                },
            );
        }
        for f in report.failed {
            if let Some(m) = &self.metrics {
                m.apply_error(&f.bundle);
            }
            let text = self.scrubber.scrub(&f.to_string());
            warn!(bundle = %f.bundle, error = %text, "Apply failed");
            run.fail(&f.bundle, text);
        }
    }

    /// Delete what left Git, in bundles that applied cleanly (and in bundles that left Git).
    async fn prune(&mut self, run: &mut Run, plan: &Plan, live: &LiveIndex) {
        let mut candidates = Vec::new();
        for (bundle, bp) in &plan.bundles {
            if bp.prune.is_empty() {
                continue;
            }
            if run.failed_bundles.contains(bundle) || run.skipped.contains(bundle) {
                info!(bundle = %bundle, objects = bp.prune.len(), "Prune postponed until the bundle applies cleanly");
                continue;
            }
            for (key, member) in &bp.prune {
                candidates.push(Candidate {
                    bundle: bundle.clone(),
                    applyset_id: self.store.applyset_id(bundle),
                    key: key.clone(),
                    member: member.clone(),
                });
            }
        }
        if candidates.is_empty() {
            return;
        }
        let outcomes = prune::prune(
            &self.client,
            &mut self.resolver,
            candidates,
            live,
            self.settings.apply.concurrency,
        )
        .await;
        for (c, outcome) in outcomes {
            match &outcome {
                PruneOutcome::Deleted => {
                    run.pruned += 1;
                    run.pruned_in
                        .entry(c.bundle.clone())
                        .and_modify(|n| *n += 1)
                        .or_insert(1);
                    if let Some(m) = &self.metrics {
                        m.pruned(&c.bundle, 1);
                    }
                    info!(bundle = %c.bundle, object = %c.key, "Pruned");
                }
                PruneOutcome::Kept => info!(bundle = %c.bundle, object = %c.key, "Kept (prune disabled)"),
                PruneOutcome::NotOurs => {
                    info!(bundle = %c.bundle, object = %c.key, "Not pruned: no longer ours")
                }
                PruneOutcome::Gone => {}
                PruneOutcome::Failed(e) => {
                    let text = self.scrubber.scrub(&format!("prune {}: {e}", c.key));
                    warn!(bundle = %c.bundle, error = %text, "Prune failed");
                    run.fail(&c.bundle, text);
                }
            }
            if outcome.settled() {
                run.inventory(&c.bundle).members.remove(&c.key);
            }
        }
    }

    /// Shrink inventories, write sync results, and remove parents of bundles that left Git and are empty.
    async fn record(&mut self, run: &mut Run, plan: &Plan) {
        let now = jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or_else(|_| jiff::Timestamp::now());
        let bundles: Vec<String> = plan
            .bundles
            .keys()
            .chain(run.infos.keys())
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut writes = Vec::new();
        for bundle in bundles {
            if run.corrupt.contains(&bundle) {
                continue;
            }
            let bp = plan.bundles.get(&bundle);
            if let Some(bp) = bp {
                for key in &bp.moved {
                    run.inventory(&bundle).members.remove(key);
                }
            }
            let removed = bp.is_some_and(|bp| bp.removed);
            let errors = run.errors_in.get(&bundle).cloned().unwrap_or_default();
            let state = if run.waiting.contains(&bundle) {
                SyncState::Waiting
            } else if !errors.is_empty() || run.skipped.contains(&bundle) {
                SyncState::Failed
            } else {
                SyncState::Synced
            };
            let applied = run.applied_in.get(&bundle).copied().unwrap_or(0);
            let pruned = run.pruned_in.get(&bundle).copied().unwrap_or(0);
            let revision = run.revision.clone();
            let inv = run.inventory(&bundle);
            inv.sync = SyncResult {
                revision: Some(revision),
                time: Some(now.to_string()),
                state,
                applied,
                pruned,
                errors: errors
                    .iter()
                    .take(MAX_LISTED)
                    .map(|e| self.scrubber.scrub(e))
                    .collect(),
            };
            let members = inv.members.len() as u64;
            if removed && inv.members.is_empty() {
                run.inventories.remove(&bundle);
                if let Some(m) = &self.metrics {
                    m.forget_bundle(&bundle);
                }
                writes.push(Write::Delete(bundle));
            } else {
                if state == SyncState::Synced
                    && let Some(m) = &self.metrics
                {
                    m.synced(&bundle, now.as_millisecond() as f64 / 1000.0, members);
                }
                writes.push(Write::Save(bundle, Box::new(inv.clone())));
            }
        }
        // Parents are independent: write them concurrently.
        let store = &self.store;
        let results: Vec<(String, Result<(), StoreError>)> = futures::stream::iter(writes)
            .map(|w| async move {
                match w {
                    Write::Delete(bundle) => {
                        let r = store.delete(&bundle).await;
                        (bundle, r)
                    }
                    Write::Save(bundle, inv) => {
                        let r = store.save(&inv).await;
                        (bundle, r)
                    }
                }
            })
            .buffer_unordered(self.settings.apply.concurrency.max(1))
            .collect()
            .await;
        for (bundle, result) in results {
            if let Err(e) = result {
                let text = self.scrubber.scrub(&e.to_string());
                warn!(bundle = %bundle, error = %text, "Inventory write failed");
                run.fail(&bundle, text);
            }
        }
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

/// One inventory write of [`Reconciler::record`].
enum Write {
    Save(String, Box<Inventory>),
    Delete(String),
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

/// State of one sync while it runs.
struct Run {
    /// The commit.
    revision: String,
    /// Inventories as they evolve (loaded ones, plus new ones for new bundles).
    inventories: BTreeMap<String, Inventory>,
    /// Bundle info from Git for desired bundles.
    infos: BTreeMap<String, BundleInfo>,
    applied: usize,
    pruned: usize,
    applied_in: BTreeMap<String, u64>,
    pruned_in: BTreeMap<String, u64>,
    /// Problems in order.
    errors: Vec<String>,
    /// Problems by bundle.
    errors_in: BTreeMap<String, Vec<String>>,
    /// Bundles with any failure (no prune for them).
    failed_bundles: BTreeSet<String>,
    /// Bundles not applied at all this time (blocked or waiting).
    skipped: BTreeSet<String>,
    /// Bundles waiting for dependencies.
    waiting: BTreeSet<String>,
    /// Bundles whose inventory is unreadable: never written.
    corrupt: BTreeSet<String>,
}

impl Run {
    fn new(revision: &str, loaded: &Loaded, bundles: &[Bundle], cluster: &str) -> Self {
        let infos: BTreeMap<String, BundleInfo> = bundles
            .iter()
            .map(|b| {
                let (context, app) = match &b.layout {
                    Layout::Emco { context, app } => (Some(context.clone()), Some(app.clone())),
                    Layout::Plain => (None, None),
                };
                let info = BundleInfo {
                    bundle: b.name.clone(),
                    cluster: cluster.to_owned(),
                    dir: b.dir.clone(),
                    context,
                    app,
                    trackers: b.trackers.iter().map(crate::manifest::Manifest::value).collect(),
                    depends_on: b.depends_on.clone(),
                };
                (b.name.clone(), info)
            })
            .collect();
        let mut inventories = loaded.inventories.clone();
        for (name, info) in &infos {
            if loaded.corrupt.contains_key(name) {
                continue;
            }
            inventories
                .entry(name.clone())
                .and_modify(|inv| inv.info = info.clone())
                .or_insert_with(|| Inventory::new(info.clone()));
        }
        let mut run = Run {
            revision: revision.to_owned(),
            inventories,
            infos,
            applied: 0,
            pruned: 0,
            applied_in: BTreeMap::new(),
            pruned_in: BTreeMap::new(),
            errors: Vec::new(),
            errors_in: BTreeMap::new(),
            failed_bundles: BTreeSet::new(),
            skipped: BTreeSet::new(),
            waiting: BTreeSet::new(),
            corrupt: loaded.corrupt.keys().cloned().collect(),
        };
        for (bundle, e) in &loaded.corrupt {
            run.fail(bundle, e.to_string());
            run.skipped.insert(bundle.clone());
        }
        run
    }

    /// The bundle's inventory, created if new.
    fn inventory(&mut self, bundle: &str) -> &mut Inventory {
        let info = self.infos.get(bundle).cloned().unwrap_or_else(|| BundleInfo {
            bundle: bundle.to_owned(),
            ..Default::default()
        });
        self.inventories
            .entry(bundle.to_owned())
            .or_insert_with(|| Inventory::new(info))
    }

    fn fail(&mut self, bundle: &str, message: String) {
        self.failed_bundles.insert(bundle.to_owned());
        self.errors_in
            .entry(bundle.to_owned())
            .or_default()
            .push(message.clone());
        self.errors.push(message);
    }
}
