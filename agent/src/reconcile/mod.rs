//! One reconcile (DESIGN §3): source → manifests → desired set → plan → apply → prune → record.
//!
//! The [`Reconciler`] is the orchestrator: each pass is a short sequence of stage calls with explicit inputs
//! and outputs (`fetch` reads Git, `view` the cluster, `waves` applies, `finish` prunes and records), while a
//! `Progress` builds the report. It remembers the last commit it synced completely; a poll
//! that finds the same commit stops right after the ref check, without a single API-server request.
//! Inventories grow before objects are applied and shrink only after deletes succeed, so a crash at any point
//! leaves every object we created recorded.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use kube::Client;
use tracing::info;

use crate::apply::Applier;
use crate::inventory::migrate;
use crate::inventory::source_state::{Phase, SourceStateStore};
use crate::inventory::store::{Loaded, Store};
use crate::manifest::Bundle;
use crate::manifest::render::{Identity, Render};
use crate::plan;
use crate::source::{Revision, Upstream};
use crate::{metrics::Metrics, resolve::Resolver, secret::Scrubber};

mod acting;
mod consent;
mod controlled;
mod empty;
mod error;
mod fetch;
mod finish;
pub mod freshness;
mod held;
mod history;
mod outcome;
mod owners;
mod parts;
mod phase;
mod progress;
mod unrendered;
mod unverified;
mod view;
mod warn;
mod waves;
mod window;

pub use error::{Error, Result};
pub use history::MAX_HISTORY;
pub use outcome::{Outcome, Preview, Settings, SyncReport};
use parts::Parts;
use phase::{PhaseRecorder, log_phases};
use progress::{Progress, summary};

/// Keeps one cluster equal to its path in Git.
pub struct Reconciler {
    /// The repository.
    source: Arc<dyn Upstream>,
    /// The tools of the sync stages.
    parts: Parts,
    /// The render step between a bundle's files and their parsing ([`Identity`] unless set).
    renderer: Arc<dyn Render>,
    /// The last commit synced without error or waiting.
    last_synced: Option<Revision>,
    /// Digest of the applied content of that commit (everything but `status/`), so a commit that only changes
    /// status files costs the API server nothing.
    last_content: Option<String>,
    /// Digest of the content of the commit being synced.
    pending_content: Option<String>,
    /// The revision the last complete sync recorded, and its content's digest: a resync of the same content (after
    /// commits that changed only status or other clusters' files) records it again, so status does not churn.
    applied: Option<(String, String)>,
    /// What the last sync left, for drift correction.
    last_report: Option<Arc<SyncReport>>,
    /// Whether the cluster path was missing in the commit being synced.
    pending_missing: bool,
    /// Shutdown flag of the running reconcile, for blocking Git work started from inside a sync.
    interrupt: Option<Arc<AtomicBool>>,
    /// Where the waiting state is recorded.
    phase: PhaseRecorder,
    /// Drift watches run (the daemon): they revert missing and changed objects as it happens, so a sync can
    /// trust the inventories it wrote last and skip re-reading them and listing the live objects.
    watched: bool,
    /// The next sync reloads inventories and lists live objects (first sync, periodic resync, after errors).
    full_sync: bool,
    /// The last applied commit and the policy for new commits that do not descend from it.
    freshness: freshness::Guard,
    /// The sync windows' last state and the commit they hold back.
    window: held::Gate,
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
            phase: PhaseRecorder::new(SourceStateStore::new(
                client.clone(),
                &settings.namespace,
                &settings.cluster,
            )),
            parts: Parts {
                applier: Applier::new(client.clone(), settings.apply.clone()),
                resolver: Resolver::new(client.clone()),
                store: Store::new(client.clone(), &settings.namespace, &settings.cluster),
                client,
                settings,
                scrubber,
                metrics: None,
                events: None,
                controls: crate::control::Controls::default(),
            },
            renderer: Arc::new(Identity),
            last_synced: None,
            last_content: None,
            pending_content: None,
            applied: None,
            pending_missing: false,
            interrupt: None,
            last_report: None,
            watched: false,
            full_sync: true,
            freshness: freshness::Guard::default(),
            window: held::Gate::default(),
        }
    }

    /// Judge new commits that do not descend from the last applied one by `policy`, walking at most `max_depth`
    /// parents back (default: refuse, 500).
    pub fn with_history_rewrite(mut self, policy: freshness::HistoryRewrite, max_depth: usize) -> Self {
        self.freshness = freshness::Guard::new(policy, max_depth);
        self
    }

    /// Declare that drift watches run alongside (daemon mode): between full resyncs, syncs then trust the last
    /// written inventories instead of re-reading them and listing live objects.
    pub fn with_drift_watches(mut self) -> Self {
        self.watched = true;
        self
    }

    /// Pass each bundle's files through `renderer` before parsing (decryption, templating, overlays).
    pub fn with_renderer(mut self, renderer: impl Render + 'static) -> Self {
        self.renderer = Arc::new(renderer);
        self
    }

    /// Write each bundle's objects as the ServiceAccount `identities` name for it (applies, prunes, drift).
    pub fn with_identities(mut self, identities: crate::identity::Identities) -> Self {
        self.parts.applier = self.parts.applier.clone().acting_as(identities);
        self
    }

    /// The identities bundles act as, when set (drift correction shares them).
    pub fn identities(&self) -> Option<crate::identity::Identities> {
        self.parts.applier.identities().cloned()
    }

    /// Obey these controls (suspension, drift mode, prune policy) from now on.
    pub fn with_controls(mut self, controls: crate::control::Controls) -> Self {
        self.parts.controls = controls;
        self
    }

    /// Record metrics from now on.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.parts.metrics = Some(metrics);
        self
    }

    /// Publish Kubernetes Events for failures and refusals from now on.
    pub fn with_events(mut self, events: crate::events::Events) -> Self {
        self.parts.events = Some(events);
        self
    }

    /// The repository path of this cluster's directory.
    pub fn cluster_path(&self) -> String {
        format!("clusters/{}", self.parts.settings.cluster)
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
        self.interrupt = Some(interrupt.clone());
        let started = std::time::Instant::now();
        let commit = fetch::update(&self.source, self.parts.metrics.as_ref(), interrupt.clone()).await?;
        // Outside the sync windows a pass syncs the last applied commit instead; a preview shows the tip.
        let commit = self.windowed(commit, force, interrupt.clone()).await?;
        if !force && self.last_synced == Some(commit) {
            return Ok(Err(commit));
        }
        self.check_fresh(commit, interrupt).await?;
        let path = self.cluster_path();
        let t_update = started.elapsed();
        let Some((files, content)) = self.read_target(commit, &path).await? else {
            return Ok(Err(commit));
        };
        // A missing path is judged with the inventories (in `sync`): waiting when nothing is managed, refused
        // when objects are and no commit announced their deletion.
        self.pending_missing = files.is_none();
        let files = files.unwrap_or_default();
        if !force && self.last_content.as_ref() == Some(&content) {
            // Only files the agent never applies changed (status written by status writers).
            self.last_synced = Some(commit);
            return Ok(Err(commit));
        }
        self.pending_content = Some(content);
        let t_read = started.elapsed();
        let count = files.len();
        let bundles = fetch::parse(path, files, self.renderer.clone(), commit).await?;
        tracing::debug!(
            git_ms = t_update.as_millis(),
            read_ms = (t_read - t_update).as_millis(),
            parse_ms = (started.elapsed() - t_read).as_millis(),
            files = count,
            "Commit phases"
        );
        Ok(Ok((commit, bundles)))
    }

    /// What a sync of the current commit would do, changing nothing (for `outpost-agent plan`).
    pub async fn preview(&mut self, interrupt: Arc<AtomicBool>) -> Result<Preview> {
        let Ok((commit, mut bundles)) = self.fetch_commit(interrupt, true).await? else {
            unreachable!("forced fetch never reports unchanged");
        };
        let loaded = self.parts.store.load().await?;
        acting::learn(&self.parts, &bundles, &loaded);
        owners::settle_contested(&mut bundles, &loaded);
        let store = self.parts.store.clone();
        let mut desired = self.parts.desired(&mut bundles).await;
        owners::settle_duplicates(&mut desired, &bundles, &loaded);
        let held = unrendered::protect(&bundles, &mut desired, &loaded);
        let live = view::listed(&self.parts.client, &mut self.parts.resolver, &loaded).await;
        let revision = commit.to_string();
        let announced = self.announced_if_empty(&revision, &bundles, &loaded).await;
        let safety = self.parts.settings.safety;
        let mut plan = plan::build(&desired, &loaded, &live, safety, &announced, |b| {
            store.applyset_id(b)
        })
        .map_err(|source| self.refusal(&revision, source))?;
        unrendered::hold(&mut plan, &held);
        let failures = held
            .iter()
            .map(|(_, why)| why.clone())
            .chain(desired.failures.values().flatten().map(ToString::to_string))
            .map(|f| self.parts.scrubber.scrub(&f))
            .collect();
        Ok(Preview {
            commit,
            plan,
            failures,
        })
    }

    /// One pass: check the ref, and when it moved (or the last pass did not finish), sync the commit. A failed
    /// pass is counted by its kind.
    pub async fn reconcile(&mut self, interrupt: Arc<AtomicBool>) -> Result<Outcome> {
        let result = self.pass(interrupt).await;
        // Unplugged media is no failure: `outpost_reconcile_duration_seconds{result="unavailable"}` counts it.
        if let (Err(e), Some(m)) = (&result, &self.parts.metrics)
            && !matches!(e, Error::Source(crate::source::Error::Unavailable { .. }))
        {
            m.reconcile_failed(e.metric_label());
        }
        unverified::warn(&self.parts, self.last_report.as_deref(), &result).await;
        result
    }

    /// One pass of [`Reconciler::reconcile`].
    async fn pass(&mut self, interrupt: Arc<AtomicBool>) -> Result<Outcome> {
        let (commit, bundles) = match self.fetch_commit(interrupt, false).await? {
            Ok(parsed) => parsed,
            Err(commit) => return Ok(self.window.outcome().unwrap_or(Outcome::Unchanged { commit })),
        };
        let bundle_count = bundles.len();
        let revision = match (&self.applied, &self.pending_content) {
            (Some((applied, content)), Some(pending)) if content == pending => applied.clone(),
            _ => commit.to_string(),
        };
        let report = self.sync(&revision, bundles).await?;
        self.freshness.settle(commit);
        let scrubber = self.parts.scrubber.clone();
        if bundle_count == 0 && report.errors.is_empty() && report.inventories.is_empty() {
            let missing = self.pending_missing;
            self.finish_commit(commit, &revision, report);
            let what = if missing {
                "does not exist"
            } else {
                "holds nothing to apply"
            };
            let message = format!(
                "{} {what} at commit {commit}; nothing is managed: waiting for content",
                self.cluster_path()
            );
            self.phase
                .record(Phase::Waiting, &revision, message.clone(), &scrubber)
                .await;
            info!(commit = %commit, "{message}");
            return Ok(Outcome::Empty { commit, missing });
        }
        if !report.errors.is_empty() {
            let err = Error::Partial {
                commit: revision,
                failed: report.errors.len(),
                summary: summary(&report.errors),
            };
            self.last_report = Some(Arc::new(report));
            return Err(err);
        }
        let message = format!("following {}", self.cluster_path());
        self.phase
            .record(Phase::Following, &revision, message, &scrubber)
            .await;
        if !report.waiting.is_empty() {
            let bundles = report.waiting.clone();
            self.last_report = Some(Arc::new(report));
            return Ok(Outcome::Waiting { commit, bundles });
        }
        info!(commit = %commit, bundles = bundle_count, applied = report.applied, pruned = report.pruned, "Synced");
        let outcome = Outcome::Synced {
            commit,
            bundles: bundle_count,
            applied: report.applied,
            pruned: report.pruned,
        };
        self.finish_commit(commit, &revision, report);
        Ok(self.window.outcome().unwrap_or(outcome))
    }

    /// Remember `commit` as synced completely (recorded as `revision`), with what its sync left.
    fn finish_commit(&mut self, commit: Revision, revision: &str, report: SyncReport) {
        self.last_synced = Some(commit);
        self.last_content = self.pending_content.take();
        self.applied = self.last_content.clone().map(|c| (revision.to_owned(), c));
        self.last_report = Some(Arc::new(report));
    }

    /// Sync `bundles` (already parsed from commit `revision`) to the cluster.
    pub async fn sync(&mut self, revision: &str, mut bundles: Vec<Bundle>) -> Result<SyncReport> {
        let started = std::time::Instant::now();
        let mut phases = Vec::with_capacity(7);
        let mut lap = |name: &'static str| phases.push((name, started.elapsed()));
        let trusted = self.watched && !self.full_sync;
        let loaded = match self.last_report.as_ref().filter(|_| trusted) {
            Some(last) => Loaded {
                inventories: last.inventories.clone(),
                corrupt: Default::default(),
            },
            None => {
                let parts = &mut self.parts;
                migrate::load_migrating(&parts.store, &parts.client, &mut parts.resolver).await?
            }
        };
        lap("load");
        let in_git: std::collections::BTreeSet<String> = bundles.iter().map(|b| b.name.clone()).collect();
        acting::learn(&self.parts, &bundles, &loaded);
        owners::settle_contested(&mut bundles, &loaded);
        let declared = consent::declared(&bundles);
        let store = self.parts.store.clone();
        let mut desired = self.parts.desired(&mut bundles).await;
        owners::settle_duplicates(&mut desired, &bundles, &loaded);
        let held = unrendered::protect(&bundles, &mut desired, &loaded);
        lap("desired");
        let announced = self.announced_if_empty(revision, &bundles, &loaded).await;
        let live = if trusted {
            view::trusted(&loaded, |b| store.applyset_id(b))
        } else {
            view::listed(&self.parts.client, &mut self.parts.resolver, &loaded).await
        };
        lap("live");
        let safety = self.parts.settings.safety;
        let mut plan = match plan::build(&desired, &loaded, &live, safety, &announced, |b| {
            store.applyset_id(b)
        }) {
            Ok(plan) => plan,
            Err(refusal) => {
                self.warn_all(&loaded, "SyncRefused", "Prune", &refusal.to_string())
                    .await;
                return Err(self.refusal(revision, refusal));
            }
        };
        unrendered::hold(&mut plan, &held);
        self.window.leave_prunes_out(&mut plan);
        let obeyed = controlled::obey(&mut plan, &self.parts.controls, &loaded, &in_git);
        let mut progress = Progress::new(&loaded, &bundles, &self.parts.settings.cluster);
        unrendered::block(&mut progress, held);
        for (bundle, by) in &obeyed.suspended {
            progress.suspend(bundle, by.describe());
        }
        for (bundle, failures) in &desired.failures {
            for f in failures {
                progress.fail(bundle, f.to_string());
            }
        }
        lap("plan");
        waves::apply(&mut self.parts, &mut progress, &bundles, &plan, &desired).await?;
        controlled::report_drift(&self.parts, &self.parts.controls, &obeyed.reported).await;
        lap("apply");
        let history = consent::History {
            source: &self.source,
            cluster_path: self.cluster_path(),
            interrupt: self.interrupt.clone(),
        };
        let all = self.parts.settings.safety.allow_cascading_prune;
        let plan_view = (revision, &loaded, &plan);
        let consent = consent::consent(all, declared, &announced, plan_view, history).await;
        finish::prune(
            &mut self.parts,
            &mut progress,
            &plan,
            &live,
            (&consent, &obeyed.orphan),
        )
        .await;
        lap("prune");
        finish::record(&self.parts, &mut progress, &plan, revision).await;
        lap("record");
        log_phases(&phases);
        self.warn_failures(&progress).await;
        let totals = progress.finish();
        let report = SyncReport {
            applied: totals.applied,
            pruned: totals.pruned,
            waiting: totals.waiting,
            errors: totals
                .errors
                .iter()
                .map(|e| self.parts.scrubber.scrub(e))
                .collect(),
            desired: desired
                .objects
                .into_values()
                .flatten()
                .map(|o| (o.key.clone(), o))
                .collect(),
            inventories: totals.inventories,
        };
        // Trust this result next time only if nothing went wrong.
        self.full_sync = !report.errors.is_empty();
        Ok(report)
    }
}
