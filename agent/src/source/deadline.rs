//! A deadline of our own around blocking Git work (`--git-timeout`).
//!
//! Library timeouts bound only part of a conversation: a connection, one HTTP read. A server that accepts and
//! then stops answering inside a Git process (a frozen `upload-pack`, a `receive-pack` that never reports, an
//! SSH server whose session is alive while the command behind it is not) would hold a poll forever. [`run`]
//! runs the work on the blocking pool and watches it: when no progress was reported for the limit, it raises the
//! work's interrupt flag (gix stops at its next check) and returns [`Stalled`] at once, so the loop goes on,
//! reports the stall and tries again. The abandoned thread ends by itself when the library gives up or the
//! flag is seen; work that shares a cache takes [`super::cache_lock::CacheLock`] so a straggler never races its
//! successor.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often the watcher looks at the clock and at the shutdown flag.
const TICK: Duration = Duration::from_millis(100);

/// The work made no progress for the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no progress for {}s", .after.as_secs())]
pub struct Stalled {
    /// The limit that passed.
    pub after: Duration,
}

/// Why [`run`] returned no result.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The deadline passed.
    #[error(transparent)]
    Stalled(#[from] Stalled),
    /// The blocking task panicked or was cancelled.
    #[error("blocking Git task failed: {0}")]
    Task(String),
}

/// What the work sees: its interrupt flag, and a way to say it moved on (which restarts the limit).
#[derive(Debug)]
pub struct Watchdog {
    started: Instant,
    /// Milliseconds after `started` of the last progress.
    fed: AtomicU64,
    interrupt: AtomicBool,
}

impl Watchdog {
    fn new() -> Self {
        Watchdog {
            started: Instant::now(),
            fed: AtomicU64::new(0),
            interrupt: AtomicBool::new(false),
        }
    }

    /// The flag to hand to gix: raised on shutdown and when the deadline passes.
    pub fn interrupt(&self) -> &AtomicBool {
        &self.interrupt
    }

    /// Report progress (one of several operations finished): the limit counts again from now.
    pub fn feed(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.fed.store(now, Ordering::Relaxed);
    }

    /// Time since the last progress (or the start).
    fn idle(&self) -> Duration {
        let fed = Duration::from_millis(self.fed.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(fed)
    }
}

/// Run `work` on the blocking pool. Without a `limit` it only forwards `shutdown`; with one, it gives up after
/// `limit` without progress, raising the work's interrupt flag.
pub async fn run<T: Send + 'static>(
    limit: Option<Duration>,
    shutdown: Arc<AtomicBool>,
    work: impl FnOnce(&Watchdog) -> T + Send + 'static,
) -> Result<T, Error> {
    let dog = Arc::new(Watchdog::new());
    let handle = tokio::task::spawn_blocking({
        let dog = dog.clone();
        move || work(&dog)
    });
    tokio::pin!(handle);
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            joined = &mut handle => return joined.map_err(|e| Error::Task(e.to_string())),
            _ = tick.tick() => {
                if shutdown.load(Ordering::Relaxed) {
                    dog.interrupt.store(true, Ordering::Relaxed);
                }
                if let Some(after) = limit.filter(|l| dog.idle() >= *l) {
                    dog.interrupt.store(true, Ordering::Relaxed);
                    return Err(Stalled { after }.into());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_without_progress_is_abandoned_at_the_limit_with_its_flag_raised() {
        let (seen_tx, seen_rx) = std::sync::mpsc::channel();
        let limit = Duration::from_millis(300);
        let started = Instant::now();
        let result = run(Some(limit), Arc::new(AtomicBool::new(false)), move |dog| {
            while !dog.interrupt().load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(10));
            }
            seen_tx.send(()).unwrap();
        })
        .await;
        assert!(matches!(result, Err(Error::Stalled(Stalled { after })) if after == limit));
        assert!(started.elapsed() >= limit);
        seen_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the work saw its interrupt flag");
    }

    #[tokio::test]
    async fn progress_restarts_the_limit_and_shutdown_reaches_the_work() {
        let fed = run(
            Some(Duration::from_millis(300)),
            Arc::new(AtomicBool::new(false)),
            |dog| {
                for _ in 0..8 {
                    std::thread::sleep(Duration::from_millis(100));
                    dog.feed();
                }
                7
            },
        )
        .await;
        assert_eq!(fed.unwrap(), 7, "fed work must not be abandoned");
        let shutdown = Arc::new(AtomicBool::new(true));
        let stopped = run(None, shutdown, |dog| {
            while !dog.interrupt().load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(10));
            }
            "stopped"
        })
        .await;
        assert_eq!(stopped.unwrap(), "stopped");
    }
}
