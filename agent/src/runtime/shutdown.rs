//! Graceful shutdown on SIGTERM or Ctrl-C, with a way out when graceful takes too long.
//!
//! Signals enter from the operating system (or, in tests, from a channel). The first one raises the interrupt
//! flag — the `Arc<AtomicBool>` that blocking gix work polls — and resolves [`Shutdown::requested`], so the
//! work loops stop taking new work and let what runs drain. A second signal means the operator is done
//! waiting: the process exits at once with status [`ABORT_EXIT_CODE`], as kubert's shutdown does.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{mpsc, watch};
use tracing::{Instrument, info, info_span, warn};

/// Exit status after a second signal: 128 + SIGINT, what a shell reports for a program stopped by Ctrl-C.
pub const ABORT_EXIT_CODE: i32 = 130;

/// The process's shutdown state. Cloning shares it.
#[derive(Clone, Debug)]
pub struct Shutdown {
    /// Raised by the first signal; handed to blocking Git work, which cannot await a future.
    interrupt: Arc<AtomicBool>,
    /// Turns `true` with the first signal; async work awaits it.
    requested: watch::Receiver<bool>,
}

impl Shutdown {
    /// Listens for SIGTERM and Ctrl-C from now on: the first requests shutdown, the second exits the process
    /// with [`ABORT_EXIT_CODE`].
    pub fn on_signals() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(forward_signals(tx).instrument(info_span!("signals")));
        Shutdown::from_signals(rx, || std::process::exit(ABORT_EXIT_CODE))
    }

    /// Reacts to the signals arriving on `signals`: the first requests shutdown, the second calls `abort`.
    fn from_signals(mut signals: mpsc::UnboundedReceiver<()>, abort: impl FnOnce() + Send + 'static) -> Self {
        let interrupt = Arc::new(AtomicBool::new(false));
        let (tx, requested) = watch::channel(false);
        let raised = interrupt.clone();
        tokio::spawn(
            async move {
                if signals.recv().await.is_none() {
                    return;
                }
                info!("Shutdown requested");
                raised.store(true, Ordering::Relaxed);
                tx.send_replace(true);
                if signals.recv().await.is_some() {
                    warn!("Second shutdown signal: aborting without draining");
                    abort();
                }
            }
            .instrument(info_span!("shutdown")),
        );
        Shutdown { interrupt, requested }
    }

    /// The flag blocking work polls; raised with the first signal.
    pub fn interrupt(&self) -> Arc<AtomicBool> {
        self.interrupt.clone()
    }

    /// Whether a signal has asked the process to stop.
    pub fn is_requested(&self) -> bool {
        *self.requested.borrow()
    }

    /// Resolves once shutdown is requested (at once if it already is); cancel-safe, so it can be raced in a
    /// loop.
    pub async fn requested(&self) {
        let mut requested = self.requested.clone();
        if requested.wait_for(|&stop| stop).await.is_err() {
            // The signal task is gone without a signal (the runtime is shutting down): never resolve, as no
            // signal will come.
            std::future::pending::<()>().await;
        }
    }
}

/// Sends one message per SIGTERM or Ctrl-C until the receiver is gone.
async fn forward_signals(tx: mpsc::UnboundedSender<()>) {
    #[cfg(unix)]
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => Some(term),
        Err(error) => {
            warn!(%error, "Cannot listen for SIGTERM; only Ctrl-C stops the process");
            None
        }
    };
    loop {
        // A Ctrl-C handler that cannot be installed must not count as a signal (that would stop, then abort,
        // the process at once): leave the job to SIGTERM, or to the default disposition.
        let ctrl_c = async {
            if let Err(error) = tokio::signal::ctrl_c().await {
                warn!(%error, "Cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        match term.as_mut() {
            Some(term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    () = ctrl_c => {}
                }
            }
            None => ctrl_c.await,
        }
        #[cfg(not(unix))]
        ctrl_c.await;
        if tx.send(()).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::oneshot;

    use super::*;

    /// Long enough for a loaded CI machine, short enough that a hang fails the test.
    const TEST_TIMEOUT: Duration = Duration::from_secs(10);

    fn shutdown_with_abort_probe() -> (mpsc::UnboundedSender<()>, Shutdown, oneshot::Receiver<()>) {
        let (signal, signals) = mpsc::unbounded_channel();
        let (aborted_tx, aborted) = oneshot::channel();
        let shutdown = Shutdown::from_signals(signals, move || {
            let _ = aborted_tx.send(());
        });
        (signal, shutdown, aborted)
    }

    #[tokio::test]
    async fn the_first_signal_raises_the_interrupt_and_requests_shutdown() {
        let (signal, shutdown, mut aborted) = shutdown_with_abort_probe();
        assert!(!shutdown.is_requested());
        assert!(!shutdown.interrupt().load(Ordering::Relaxed));

        signal.send(()).unwrap();
        tokio::time::timeout(TEST_TIMEOUT, shutdown.requested())
            .await
            .expect("shutdown requested");
        assert!(shutdown.is_requested());
        assert!(shutdown.interrupt().load(Ordering::Relaxed));
        // Asking again answers at once: a loop may race it on every turn.
        tokio::time::timeout(TEST_TIMEOUT, shutdown.requested())
            .await
            .expect("still requested");
        assert!(aborted.try_recv().is_err(), "one signal must not abort");
    }

    #[tokio::test]
    async fn a_second_signal_aborts() {
        let (signal, shutdown, aborted) = shutdown_with_abort_probe();
        signal.send(()).unwrap();
        shutdown.requested().await;
        signal.send(()).unwrap();
        tokio::time::timeout(TEST_TIMEOUT, aborted)
            .await
            .expect("aborted in time")
            .expect("abort called");
    }

    #[tokio::test]
    async fn without_a_signal_nothing_is_requested() {
        let (_signal, shutdown, _aborted) = shutdown_with_abort_probe();
        let waited = tokio::time::timeout(Duration::from_millis(50), shutdown.requested()).await;
        assert!(waited.is_err());
        assert!(!shutdown.is_requested());
    }
}
