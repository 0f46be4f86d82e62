//! The status writer process: watch, then write once (`--once`) or every time status changes (coalesced over
//! `--debounce`), serving metrics and probes, until SIGTERM or Ctrl-C.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backon::BackoffBuilder;
use outpost_agent::admin::{self, AdminState, Readiness};
use outpost_agent::metrics;
use outpost_agent::secret::Scrubber;
use tracing::{Instrument, error, info, info_span};

use crate::branch::{self, BranchTemplate};
use crate::cli::Args;
use crate::commit::Author;
use crate::metrics::StatusMetrics;
use crate::watch::Index;
use crate::writer::{self, Target, Writer, Written};

/// How long `--once` waits for the watches' initial lists.
const INITIAL_LIST_TIMEOUT: Duration = Duration::from_secs(60);
/// Nothing to retry: wait for a change this long at most (a day, in effect forever).
const IDLE: Duration = Duration::from_secs(86_400);
/// Longest wait between attempts while writing keeps failing (Git server down, credentials wrong).
const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(120);

/// Why the status writer could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--git-branch` is unusable.
    #[error(transparent)]
    Branch(#[from] branch::Error),
    /// `--git-url` is unusable.
    #[error(transparent)]
    Url(#[from] outpost_agent::source::url::Error),
    /// No Kubernetes configuration.
    #[error("cannot configure the Kubernetes client (in-cluster service account or KUBECONFIG): {0}")]
    Kube(#[source] kube::Error),
    /// The metrics address cannot be bound.
    #[error("cannot serve metrics: {0}")]
    Admin(#[source] std::io::Error),
    /// `--once` could not see the cluster in time.
    #[error("the inventories and their objects were not listed within {0:?}")]
    NotListed(Duration),
    /// `--once` and the write failed.
    #[error(transparent)]
    Write(#[from] writer::Error),
    /// Another replica holds the Lease now.
    #[error("leadership lost: another replica writes status now")]
    LeadershipLost,
}

/// Run as the flags say.
pub async fn run(args: Args) -> Result<(), Error> {
    let scrubber = Scrubber::default();
    let target = Target {
        url: args.git.repo_url()?,
        auth: args.git.auth(),
        branch: BranchTemplate::parse(&args.git_branch, &args.cluster)?,
        cluster: args.cluster.clone(),
        namespace: args.namespace.clone(),
        author: Author {
            name: args.author_name.clone(),
            email: args.author_email.clone(),
        },
        cache_dir: args.cache_dir.clone(),
    };
    let client = outpost_agent::kube_client::client(None)
        .await
        .map_err(Error::Kube)?;
    info!(url = %target.url, cluster = %args.cluster, branch = %args.git_branch, "Starting");
    let interrupt = Arc::new(AtomicBool::new(false));
    let index = Arc::new(Index::start(client.clone(), &args.namespace, &args.cluster));

    if args.once {
        let writer = Writer::new(target, scrubber, None, interrupt);
        let deadline = tokio::time::Instant::now() + INITIAL_LIST_TIMEOUT;
        let snapshot = loop {
            let snapshot = index.snapshot();
            if snapshot.complete {
                break snapshot;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::NotListed(INITIAL_LIST_TIMEOUT));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let written = writer.write(writer.render_all(&snapshot)).await?;
        info!(?written, "Done");
        return Ok(());
    }

    let mut registry = metrics::new_registry();
    let metrics = StatusMetrics::register(&mut registry);
    let readiness = Readiness::new();
    let listener = admin::bind(args.metrics_addr).await.map_err(Error::Admin)?;
    let stop_admin = Arc::new(tokio::sync::Notify::new());
    let admin_state = AdminState::new(registry, readiness.clone());
    let admin_stop = stop_admin.clone();
    tokio::spawn(
        async move {
            if let Err(e) = admin::serve(listener, admin_state, admin_stop.notified()).await {
                error!(error = %e, "Admin server stopped");
            }
        }
        .instrument(info_span!("admin")),
    );
    let shutdown = shutdown_signal(interrupt.clone());
    tokio::pin!(shutdown);
    let mut leadership = None;
    let mut role = admin::ROLE_SINGLE;
    if args.lease.leader_election {
        metrics.set_leader(false);
        readiness.set_ready(admin::ROLE_STANDBY);
        let name = args
            .lease
            .lease_name
            .clone()
            .unwrap_or_else(|| "outpost-status-writer".into());
        let elector = outpost_agent::lease::Elector::new(
            client.clone(),
            &args.namespace,
            &name,
            outpost_agent::lease::identity(),
            args.lease.lease_duration,
        );
        tokio::select! {
            rx = elector.acquire() => leadership = Some(rx),
            _ = &mut shutdown => {
                stop_admin.notify_waiters();
                return Ok(());
            }
        }
        metrics.set_leader(true);
        readiness.set_not_ready("leader, first write pending");
        role = admin::ROLE_LEADER;
    }
    let writer = Writer::new(target, scrubber.clone(), Some(metrics), interrupt.clone());
    let mut backoff = error_backoff();
    let mut retry_in: Option<Duration> = None;
    loop {
        // Wait for a change (or the retry of a failed write), then let the burst settle.
        tokio::select! {
            _ = index.changed.notified() => {}
            _ = tokio::time::sleep(retry_in.unwrap_or(IDLE)) => {}
            lost = lost_leadership(&mut leadership) => {
                if lost {
                    stop_admin.notify_waiters();
                    return Err(Error::LeadershipLost);
                }
            }
            _ = &mut shutdown => break,
        }
        tokio::select! {
            _ = tokio::time::sleep(jittered(args.debounce)) => {}
            _ = &mut shutdown => break,
        }
        let snapshot = index.snapshot();
        if !snapshot.complete {
            retry_in = Some(Duration::from_millis(500));
            continue;
        }
        let renderer = writer.renderer();
        let latest = {
            let index = index.clone();
            move || {
                let snapshot = index.snapshot();
                snapshot.complete.then(|| renderer.render_all(&snapshot))
            }
        };
        match writer.write_latest(latest).await {
            Ok(written) => {
                backoff = error_backoff();
                retry_in = None;
                readiness.set_ready(role);
                for (branch, written) in written {
                    if let Written::Pushed { retries, .. } = written
                        && retries > 0
                    {
                        info!(branch = %branch, retries, "Status landed after rejections");
                    }
                }
            }
            Err(e) => {
                let wait = backoff.next().unwrap_or(MAX_ERROR_BACKOFF);
                error!(error = %scrubber.scrub(&e.to_string()), retry_in = ?wait, "Status write failed");
                retry_in = Some(wait);
            }
        }
    }
    stop_admin.notify_waiters();
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

/// The debounce window ±20%: writers of many clusters started together would otherwise push in lockstep and
/// collide on the branch every window.
fn jittered(window: Duration) -> Duration {
    window.mul_f64(0.8 + 0.4 * fastrand::f64())
}

fn error_backoff() -> backon::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(MAX_ERROR_BACKOFF)
        .with_jitter()
        .without_max_times()
        .build()
}

/// Resolves on SIGTERM or Ctrl-C, after raising `interrupt` so blocking Git work stops too.
async fn shutdown_signal(interrupt: Arc<AtomicBool>) {
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
    info!("Shutdown requested");
    interrupt.store(true, Ordering::Relaxed);
}
