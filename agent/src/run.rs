//! The agent process: build the client and source from the flags, then reconcile once (`--once`) or poll
//! forever with jitter and capped exponential backoff on errors, until SIGTERM or Ctrl-C.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backon::BackoffBuilder;
use tracing::{error, info};

use crate::cli::Args;
use crate::reconcile::{self, Outcome, Reconciler, Settings};
use crate::secret::Scrubber;
use crate::source::{self, Source};

/// Longest wait after repeated errors: keeps a thousand failing agents from hammering one Git server while
/// still recovering within minutes.
const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(300);
/// First wait after an error.
const MIN_ERROR_BACKOFF: Duration = Duration::from_secs(2);
/// Share of the interval added or removed at random, so agents started together drift apart.
const INTERVAL_JITTER: f64 = 0.10;

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--git-url` is unusable.
    #[error(transparent)]
    Url(#[from] source::url::Error),
    /// No Kubernetes configuration (in-cluster or KUBECONFIG).
    #[error("cannot configure the Kubernetes client (in-cluster service account or KUBECONFIG): {0}")]
    Kube(#[source] kube::Error),
    /// `--once` and the reconcile failed.
    #[error(transparent)]
    Reconcile(#[from] reconcile::Error),
}

/// Run the agent as the flags say.
pub async fn run(args: Args) -> Result<(), Error> {
    let scrubber = Scrubber::default();
    let source = Source::new(args.source_config()?, scrubber.clone());
    let client = kube::Client::try_default().await.map_err(Error::Kube)?;
    info!(url = %source.url(), cluster = %args.cluster, reference = %args.git_ref, "Starting");
    let settings = Settings {
        cluster: args.cluster.clone(),
        apply: args.apply_options(),
    };
    let mut reconciler = Reconciler::new(source, client, settings, scrubber.clone());
    let interrupt = Arc::new(AtomicBool::new(false));

    if args.once {
        let outcome = reconciler.reconcile(interrupt).await?;
        log_outcome(&outcome);
        return Ok(());
    }

    let shutdown = shutdown_signal(interrupt.clone());
    tokio::pin!(shutdown);
    let mut backoff = error_backoff();
    loop {
        let wait = match reconciler.reconcile(interrupt.clone()).await {
            Ok(outcome) => {
                log_outcome(&outcome);
                backoff = error_backoff();
                jittered(args.interval)
            }
            Err(e) => {
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
            _ = &mut shutdown => break,
        }
    }
    info!("Stopped");
    Ok(())
}

fn log_outcome(outcome: &Outcome) {
    match outcome {
        Outcome::Unchanged { commit } => tracing::debug!(commit = %commit, "Unchanged"),
        Outcome::Synced { .. } => {}
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
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler can be installed");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
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
