//! The agent daemon's unit of work: one round of reconcile, drift bookkeeping and metrics, and how long to
//! wait before the next.
//!
//! [`crate::run`] builds [`Rounds`] once it may act and calls [`Rounds::next`] in its loop; each round pauses
//! drift correction, reconciles (a full re-sync when `--resync-interval` has passed), re-aims drift at what
//! the sync left, times the round, and answers with the wait — the jittered interval, a short retry while
//! bundles wait for dependencies, or the error backoff — and whether the agent is now ready.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use kube::Client;
use tracing::{error, info, warn};

use crate::apply::Applier;
use crate::cli::Args;
use crate::control::Controls;
use crate::control::rounds::Obedience;
use crate::drift::Drift;
use crate::events::Events;
use crate::inventory::applyset;
use crate::metrics::{Metrics, ReconcileResult};
use crate::reconcile::{Outcome, Reconciler, SyncReport};
use crate::runtime::{ErrorBackoff, jittered};
use crate::secret::Scrubber;
use crate::source::Throttle;
use crate::watch_scope::WatchHealth;

/// First wait after an error.
const MIN_ERROR_BACKOFF: Duration = Duration::from_secs(2);
/// Longest wait after repeated errors: keeps a thousand failing agents from hammering one Git server while
/// still recovering within minutes.
const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(300);
/// Share of the interval added or removed at random, so agents started together drift apart.
const INTERVAL_JITTER: f64 = 0.10;
/// First retry while bundles wait for dependencies to become healthy.
const WAITING_RETRY: Duration = Duration::from_secs(5);
/// Longest retry while they keep waiting: each retry re-reads and re-parses the commit, so a dependency that
/// stays unhealthy for hours must not cost a parse every 5 s.
const MAX_WAITING_RETRY: Duration = Duration::from_secs(60);

/// What a round leaves for the loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Next {
    /// How long to wait before the next round (unless the source changes first).
    pub wait: Duration,
    /// The round synced (or found nothing to sync): the agent does its job, mark it ready. `false` leaves
    /// readiness as it was.
    pub ready: bool,
    /// The round's Git work stalled (`--git-timeout`): not ready, for this reason, until a round gets through.
    pub stalled: Option<String>,
}

/// The daemon's rounds and what they carry from one to the next.
pub struct Rounds {
    /// Reconciles the source into the cluster, with metrics, events and drift watches.
    reconciler: Reconciler,
    /// Corrects drift between rounds; paused while a round runs, re-aimed after each new sync.
    drift: Drift,
    /// Times every round by its result.
    metrics: Metrics,
    /// Takes credentials out of error messages before they are logged.
    scrubber: Scrubber,
    /// Namespace of the inventories, to name each bundle's ApplySet for drift.
    namespace: String,
    /// `--cluster`: parent names, and so ApplySet ids, include it.
    cluster: String,
    /// Time between polls (`--interval`), before jitter.
    interval: Duration,
    /// Time between full re-syncs (`--resync-interval`).
    resync_interval: Duration,
    /// Waits after consecutive failed rounds.
    backoff: ErrorBackoff,
    /// Retries while bundles wait for dependencies: from 5 s, doubling, up to a minute.
    waiting: ErrorBackoff,
    /// The sync report drift was last aimed at, so an unchanged report is not handed over again.
    last_report: Option<Arc<SyncReport>>,
    /// When the last full sync ended (or was forced), to schedule the next.
    last_full_sync: Instant,
    /// The last round stalled: the next one that gets through marks the agent ready again, even unchanged.
    stalled: bool,
    /// The operators' controls: suspension, sync requests, and how they show.
    obedience: Obedience,
    /// The local repository's path was absent at the last round (media unplugged): said once, not every round.
    unavailable: bool,
    /// Holds Git requests back (the server's Retry-After, the request cap): no round starts while it does,
    /// and no wait ends before it lets requests go.
    throttle: Throttle,
}

impl Rounds {
    /// Rounds of `reconciler` as `args` configure them, starting drift correction (its unavailable watches
    /// reported to `watch_health`) and event publishing.
    pub fn start(
        args: &Args,
        client: Client,
        reconciler: Reconciler,
        metrics: Metrics,
        scrubber: Scrubber,
        watch_health: WatchHealth,
        controls: Controls,
    ) -> Self {
        let events = Events::new(
            client.clone(),
            &args.namespace,
            &args.cluster,
            std::env::var("POD_NAME").ok(),
        );
        let obedience = Obedience::new(
            controls.clone(),
            client.clone(),
            &args.namespace,
            &args.cluster,
            Some(events.clone()),
        );
        let drift = Drift::start(
            client.clone(),
            match reconciler.identities() {
                Some(identities) => Applier::new(client, args.apply_options()).acting_as(identities),
                None => Applier::new(client, args.apply_options()),
            },
            Some(metrics.clone()),
            Some(events.clone()),
            scrubber.clone(),
            controls.clone(),
        )
        .watching(args.watch.scope(), watch_health);
        let reconciler = reconciler
            .with_controls(controls)
            .with_metrics(metrics.clone())
            .with_events(events)
            .with_drift_watches();
        Rounds {
            reconciler,
            drift,
            metrics,
            scrubber,
            namespace: args.namespace.clone(),
            cluster: args.cluster.clone(),
            interval: args.interval,
            resync_interval: args.resync_interval,
            backoff: ErrorBackoff::new(MIN_ERROR_BACKOFF, MAX_ERROR_BACKOFF),
            waiting: ErrorBackoff::new(WAITING_RETRY, MAX_WAITING_RETRY),
            last_report: None,
            last_full_sync: Instant::now(),
            stalled: false,
            obedience,
            unavailable: false,
            throttle: Throttle::default(),
        }
    }

    /// Rounds that respect `throttle` (the one the source asks before each Git request).
    pub fn with_throttle(mut self, throttle: Throttle) -> Self {
        self.throttle = throttle;
        self
    }

    /// Stop drift correction for good: another replica acts now. (A round in flight is stopped by dropping
    /// its future.)
    pub fn stop(&self) {
        self.drift.stop();
    }

    /// A handle that stops drift correction, for a future racing [`Rounds::next`] (which borrows the rounds).
    pub fn drift(&self) -> Drift {
        self.drift.clone()
    }

    /// Runs one round; `interrupt` stops its blocking Git work early. Cancel-safe in the sense that matters:
    /// dropped mid-apply, it leaves inventories as a crash would (grown before objects are applied).
    pub async fn next(&mut self, interrupt: Arc<AtomicBool>) -> Next {
        let next = self.round(interrupt).await;
        let throttled = self.throttle.remaining();
        if throttled > next.wait {
            info!(wait = ?throttled, "Git requests held back: next poll after the wait");
        }
        Next {
            wait: next.wait.max(throttled),
            ..next
        }
    }

    /// [`Rounds::next`] before the throttle's say on the wait.
    async fn round(&mut self, interrupt: Arc<AtomicBool>) -> Next {
        // Woken early (an operator's request, a local change) while Git requests are held: no round yet.
        let held = self.throttle.remaining();
        if !held.is_zero() {
            return Next {
                wait: held,
                ready: false,
                stalled: None,
            };
        }
        let before = self.obedience.before().await;
        if before.skip {
            // The whole agent is suspended: no Git request, no API request; drift is left alone too.
            return Next {
                wait: jittered(self.interval, INTERVAL_JITTER),
                ready: true,
                stalled: None,
            };
        }
        if before.force || self.last_full_sync.elapsed() >= self.resync_interval {
            self.reconciler.force_next();
            self.last_full_sync = Instant::now();
        }
        let timer = self.metrics.start_reconcile();
        let mut paused = self.drift.pause().await;
        let result = self.reconciler.reconcile(interrupt).await;
        if let Some(report) = self.reconciler.last_report()
            && !self.last_report.as_ref().is_some_and(|r| Arc::ptr_eq(r, &report))
        {
            let (namespace, cluster) = (&self.namespace, &self.cluster);
            let inventory = |b: &str| applyset::id(&applyset::parent_name(cluster, b), namespace);
            self.drift.update(&mut paused, report.synced(), inventory).await;
            self.last_report = Some(report);
        }
        drop(paused);
        let interval = self.interval;
        let recovered = std::mem::take(&mut self.stalled);
        let polled = |ready: bool| Next {
            wait: jittered(interval, INTERVAL_JITTER),
            ready: ready || recovered,
            stalled: None,
        };
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(crate::reconcile::Error::Source(e @ crate::source::Error::Unavailable { .. })) => {
                // Unplugged media is the site's normal state between visits: said once, polled at the normal
                // pace (the daemon also looks for the path's return), readiness left as it was.
                timer.finish(ReconcileResult::Unavailable);
                if !std::mem::replace(&mut self.unavailable, true) {
                    warn!(reason = %e, "Source unavailable");
                }
                return Next {
                    wait: jittered(interval, INTERVAL_JITTER),
                    ready: recovered,
                    stalled: None,
                };
            }
            Err(e) => {
                timer.finish(ReconcileResult::Error);
                let wait = self.backoff.next_wait();
                let message = self.scrubber.scrub(&e.to_string());
                error!(error = %message, retry_in = ?wait, "Reconcile failed");
                let stalled = matches!(
                    e,
                    crate::reconcile::Error::Source(crate::source::Error::Stalled { .. })
                );
                self.stalled = stalled;
                return Next {
                    wait,
                    ready: false,
                    stalled: stalled.then_some(message),
                };
            }
        };
        self.backoff.reset();
        if std::mem::take(&mut self.unavailable) {
            info!("Source available again");
        }
        if let Some(report) = self.reconciler.last_report() {
            self.obedience
                .after(&before.requests, report.inventories.keys())
                .await;
        }
        if !matches!(outcome, Outcome::Waiting { .. }) {
            self.waiting.reset();
        }
        match outcome {
            Outcome::Unchanged { .. } => {
                timer.finish(ReconcileResult::Unchanged);
                polled(false)
            }
            // Holding a new commit back outside the sync windows is the job done: ready.
            Outcome::Held { .. } => {
                timer.finish(ReconcileResult::Unchanged);
                polled(true)
            }
            // Waiting for content (Empty) is a healthy state: ready, polled at the normal pace.
            Outcome::Synced { .. } | Outcome::Empty { .. } => {
                timer.finish(ReconcileResult::Success);
                self.last_full_sync = Instant::now();
                polled(true)
            }
            Outcome::Waiting { bundles, .. } => {
                timer.finish(ReconcileResult::Success);
                info!(bundles = ?bundles, "Waiting for dependencies");
                // Never later than the next poll: a new commit lands within the interval, as always.
                Next {
                    wait: self.waiting.next_wait().min(polled(false).wait),
                    ready: recovered,
                    stalled: None,
                }
            }
        }
    }
}
