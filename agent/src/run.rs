//! The agent process: build the client and source from the flags, then reconcile once (`--once`) or run the
//! daemon — poll with jitter, back off on errors, correct drift between polls, serve metrics and probes, react
//! within a second to changes of a local-path repository — until SIGTERM or Ctrl-C.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use tokio::sync::Notify;
use tracing::{Instrument, error, info, info_span, warn};

use crate::admin::{self, AdminState, Readiness};
use crate::apply::Applier;
use crate::cli::{Args, Mode};
use crate::drift::Drift;
use crate::events::Events;
use crate::inventory::applyset;
use crate::metrics::{self, Metrics, ReconcileResult};
use crate::reconcile::{self, Outcome, Reconciler, Settings, SyncReport};
use crate::secret::Scrubber;
use crate::source::{self, RepoUrl, Source};

/// Longest wait after repeated errors: keeps a thousand failing agents from hammering one Git server while
/// still recovering within minutes.
const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(300);
/// First wait after an error.
const MIN_ERROR_BACKOFF: Duration = Duration::from_secs(2);
/// Share of the interval added or removed at random, so agents started together drift apart.
const INTERVAL_JITTER: f64 = 0.10;
/// Retry delay while bundles wait for dependencies to become healthy.
const WAITING_RETRY: Duration = Duration::from_secs(5);
/// Quiet time after a change under a local-path repository before reconciling (a push writes many files).
const LOCAL_DEBOUNCE: Duration = Duration::from_millis(150);

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--git-url` is unusable.
    #[error(transparent)]
    Url(#[from] source::url::Error),
    /// No Kubernetes configuration (in-cluster or KUBECONFIG).
    #[error("cannot configure the Kubernetes client (in-cluster service account or KUBECONFIG): {0}")]
    Kube(#[source] kube::Error),
    /// The metrics address cannot be bound.
    #[error("cannot serve metrics: {0}")]
    Admin(#[source] std::io::Error),
    /// `--once` and the reconcile failed.
    #[error(transparent)]
    Reconcile(#[from] reconcile::Error),
    /// Another replica holds the Lease now; exit so Kubernetes restarts us as a standby.
    #[error("leadership lost: another replica acts now")]
    LeadershipLost,
}

/// Run the agent as the flags say.
pub async fn run(args: Args) -> Result<(), Error> {
    let scrubber = Scrubber::default();
    let source_config = args.source_config()?;
    let local_path = match &source_config.url {
        RepoUrl::Local(path) => Some(path.clone()),
        RepoUrl::Remote { .. } => None,
    };
    let source = Source::new(source_config, scrubber.clone());
    let mut registry = metrics::new_registry();
    let requests = crate::kube_client::RequestCounter::register(&mut registry);
    let daemon = args.mode == Mode::Run && !args.once;
    let client = crate::kube_client::client(daemon.then_some(requests))
        .await
        .map_err(Error::Kube)?;
    info!(url = %source.url(), cluster = %args.cluster, reference = %args.git_ref, "Starting");
    let settings = Settings {
        cluster: args.cluster.clone(),
        namespace: args.namespace.clone(),
        apply: args.apply_options(),
        safety: args.safety(),
    };
    let interrupt = Arc::new(AtomicBool::new(false));

    match args.mode {
        Mode::Run => {}
        Mode::Plan => {
            let mut reconciler = Reconciler::new(source, client.clone(), settings, scrubber.clone());
            crate::cmd::plan::run(
                &mut reconciler,
                client,
                args.apply_options(),
                &mut std::io::stdout(),
            )
            .await?;
            return Ok(());
        }
        Mode::Status => {
            let store = crate::inventory::store::Store::new(client.clone(), &args.namespace, &args.cluster);
            let source_state = crate::inventory::source_state::SourceStateStore::new(
                client.clone(),
                &args.namespace,
                &args.cluster,
            );
            crate::cmd::status::run(client, &store, &source_state, args.output, &mut std::io::stdout())
                .await
                .map_err(reconcile::Error::from)?;
            return Ok(());
        }
    }

    if args.once {
        let mut reconciler = Reconciler::new(source, client, settings, scrubber.clone());
        let outcome = reconciler.reconcile(interrupt).await?;
        if let Outcome::Waiting { bundles, .. } = &outcome {
            warn!(bundles = ?bundles, "Some bundles wait for their dependencies");
        }
        return Ok(());
    }

    let metrics = Metrics::register(&mut registry);
    let readiness = Readiness::new();
    let listener = admin::bind(args.metrics_addr).await.map_err(Error::Admin)?;
    let shutdown_requested = Arc::new(Notify::new());
    let admin_state = AdminState::new(registry, readiness.clone());
    let admin_shutdown = shutdown_requested.clone();
    tokio::spawn(
        async move {
            if let Err(e) = admin::serve(listener, admin_state, admin_shutdown.notified()).await {
                error!(error = %e, "Admin server stopped");
            }
        }
        .instrument(info_span!("admin")),
    );

    // With leader election, wait as a standby (serving probes) until this replica holds the Lease.
    let mut leadership = None;
    if args.lease.leader_election {
        metrics.set_leader(false);
        readiness.set_ready(admin::ROLE_STANDBY);
        let name = args
            .lease
            .lease_name
            .clone()
            .unwrap_or_else(|| "outpost-agent".into());
        let elector = crate::lease::Elector::new(
            client.clone(),
            &args.namespace,
            &name,
            crate::lease::identity(),
            args.lease.lease_duration,
        );
        info!(lease = %name, identity = %elector.identity(), "Waiting for leadership");
        let shutdown = shutdown_signal(interrupt.clone());
        tokio::select! {
            rx = elector.acquire() => leadership = Some(rx),
            _ = shutdown => {
                shutdown_requested.notify_waiters();
                return Ok(());
            }
        }
        metrics.set_leader(true);
        readiness.set_not_ready("leader, first sync pending");
    }
    let role = if leadership.is_some() {
        admin::ROLE_LEADER
    } else {
        admin::ROLE_SINGLE
    };
    let events = Events::new(client.clone(), &args.namespace, std::env::var("POD_NAME").ok());
    let drift = Drift::start(
        client.clone(),
        Applier::new(client.clone(), args.apply_options()),
        Some(metrics.clone()),
        Some(events.clone()),
        scrubber.clone(),
    );
    let mut reconciler = Reconciler::new(source, client, settings, scrubber.clone())
        .with_metrics(metrics.clone())
        .with_events(events)
        .with_drift_watches();
    let changed = Arc::new(Notify::new());
    let _watcher = match &local_path {
        Some(path) => source::local::watch(path, changed.clone()),
        None => None,
    };

    let shutdown = shutdown_signal(interrupt.clone());
    tokio::pin!(shutdown);
    let mut backoff = error_backoff();
    let mut last_report: Option<Arc<SyncReport>> = None;
    let mut last_full_sync = Instant::now();
    let namespace = args.namespace.clone();
    loop {
        if last_full_sync.elapsed() >= args.resync_interval {
            reconciler.force_next();
            last_full_sync = Instant::now();
        }
        let timer = metrics.start_reconcile();
        let mut paused = drift.pause().await;
        let result = reconciler.reconcile(interrupt.clone()).await;
        if let Some(report) = reconciler.last_report()
            && !last_report.as_ref().is_some_and(|r| Arc::ptr_eq(r, &report))
        {
            drift
                .update(&mut paused, report.synced(), |b| {
                    applyset::id(&applyset::parent_name(b), &namespace)
                })
                .await;
            last_report = Some(report);
        }
        drop(paused);
        let wait = match result {
            Ok(outcome) => {
                backoff = error_backoff();
                match outcome {
                    Outcome::Unchanged { .. } => {
                        timer.finish(ReconcileResult::Unchanged);
                        jittered(args.interval)
                    }
                    Outcome::Synced { .. } => {
                        timer.finish(ReconcileResult::Success);
                        readiness.set_ready(role);
                        last_full_sync = Instant::now();
                        jittered(args.interval)
                    }
                    Outcome::Empty { .. } => {
                        // Waiting for content is a healthy state: ready, polled at the normal pace.
                        timer.finish(ReconcileResult::Success);
                        readiness.set_ready(role);
                        last_full_sync = Instant::now();
                        jittered(args.interval)
                    }
                    Outcome::Waiting { bundles, .. } => {
                        timer.finish(ReconcileResult::Success);
                        info!(bundles = ?bundles, "Waiting for dependencies");
                        WAITING_RETRY
                    }
                }
            }
            Err(e) => {
                timer.finish(ReconcileResult::Error);
                let wait = backoff.next().unwrap_or(MAX_ERROR_BACKOFF);
                error!(error = %scrubber.scrub(&e.to_string()), retry_in = ?wait, "Reconcile failed");
                wait
            }
        };
        if interrupt.load(Ordering::Relaxed) {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = changed.notified() => {
                tokio::time::sleep(LOCAL_DEBOUNCE).await;
                info!("Local repository changed");
            }
            lost = lost_leadership(&mut leadership) => {
                if lost {
                    shutdown_requested.notify_waiters();
                    return Err(Error::LeadershipLost);
                }
            }
            _ = &mut shutdown => break,
        }
    }
    shutdown_requested.notify_waiters();
    info!("Stopped");
    Ok(())
}

/// Resolves `true` when leadership is lost; never resolves without leader election.
async fn lost_leadership(leadership: &mut Option<tokio::sync::watch::Receiver<bool>>) -> bool {
    match leadership {
        Some(rx) => {
            let _ = rx.changed().await;
            !*rx.borrow()
        }
        None => std::future::pending().await,
    }
}

/// Exponential backoff with jitter, capped, never giving up.
fn error_backoff() -> backon::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(MIN_ERROR_BACKOFF)
        .with_max_delay(MAX_ERROR_BACKOFF)
        .with_jitter()
        .without_max_times()
        .build()
}

/// `interval` ± 10%.
fn jittered(interval: Duration) -> Duration {
    let factor = 1.0 + INTERVAL_JITTER * (fastrand::f64() * 2.0 - 1.0);
    interval.mul_f64(factor)
}

/// Resolves on SIGTERM or Ctrl-C, after raising `interrupt` so blocking Git work stops too.
async fn shutdown_signal(interrupt: Arc<AtomicBool>) {
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    info!("Shutdown requested");
    interrupt.store(true, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_secs(30));
            assert!(
                d >= Duration::from_secs(27) && d <= Duration::from_secs(33),
                "{d:?}"
            );
        }
    }

    #[test]
    fn error_backoff_grows_and_is_capped() {
        let waits: Vec<Duration> = error_backoff().take(20).collect();
        assert!(waits[0] < Duration::from_secs(5), "{waits:?}");
        assert!(waits.iter().all(|w| *w <= MAX_ERROR_BACKOFF * 2), "{waits:?}");
        assert!(waits[19] >= MAX_ERROR_BACKOFF / 2, "{waits:?}");
    }
}
