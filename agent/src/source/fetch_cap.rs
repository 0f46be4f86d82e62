//! `--max-fetch-bytes`: a cap on the pack one fetch receives, enforced while it arrives.
//!
//! gix buffers each pack entry whole while it writes the pack (a 300 MB blob is 300 MB of memory before any
//! check of ours could see it), so the cap must act on the stream. [`Cap`] is the progress gix reports to: its
//! "read pack" child counts the bytes as they are read from the connection, and past the cap raises the flag gix
//! checks between reads, which ends the fetch. gix is handed one flag, so [`Cap::receive`] also forwards the
//! caller's interrupt (shutdown, `--git-timeout`) into it. Half the cap, set as gix's allocation limit
//! (`gitoxide.objects.allocLimit`), stops a small pack that inflates into one huge object (a blob of zeros).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use gix::progress::{Count, Id, MessageLevel, NestedProgress, Progress, Step, StepShared, Unit};

/// How often the caller's interrupt is copied into the flag gix sees.
const FORWARD_EVERY: Duration = Duration::from_millis(20);

/// Counts the pack bytes of one fetch against a cap.
#[derive(Clone)]
pub(super) struct Cap {
    /// Bytes of the pack read so far.
    received: Arc<AtomicU64>,
    /// The cap.
    max: u64,
    /// The flag handed to gix: raised past the cap or when the caller's interrupt is.
    stop: Arc<AtomicBool>,
    /// Whether the cap was what raised `stop`.
    exceeded: Arc<AtomicBool>,
    /// Whether this progress counts (only gix's "read pack" child does).
    counts: bool,
}

impl Cap {
    /// A cap of `max` bytes.
    pub(super) fn new(max: u64) -> Self {
        Cap {
            received: Arc::default(),
            max,
            stop: Arc::default(),
            exceeded: Arc::default(),
            counts: false,
        }
    }

    /// Run `receive` (gix's `Prepare::receive`, given this progress and the flag to check) while the caller's
    /// `interrupt` is forwarded into that flag.
    pub(super) fn receive<T>(
        &self,
        interrupt: &AtomicBool,
        receive: impl FnOnce(Cap, &AtomicBool) -> T,
    ) -> T {
        let done = AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    if interrupt.load(Ordering::Relaxed) {
                        self.stop.store(true, Ordering::Relaxed);
                    }
                    std::thread::sleep(FORWARD_EVERY);
                }
            });
            let result = receive(self.clone(), &self.stop);
            done.store(true, Ordering::Relaxed);
            result
        })
    }

    /// Whether the fetch was stopped for going over the cap.
    pub(super) fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::Relaxed)
    }

    /// Pack bytes received so far.
    pub(super) fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    fn child(&self, id: Id) -> Cap {
        Cap {
            counts: id == Id::from(gix::odb::pack::bundle::write::ProgressId::ReadPackBytes),
            ..self.clone()
        }
    }
}

impl Count for Cap {
    fn set(&self, _step: Step) {}

    fn step(&self) -> Step {
        0
    }

    fn inc_by(&self, step: Step) {
        if !self.counts {
            return;
        }
        let received = self.received.fetch_add(step as u64, Ordering::Relaxed) + step as u64;
        if received > self.max {
            self.exceeded.store(true, Ordering::Relaxed);
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    fn counter(&self) -> StepShared {
        Arc::new(AtomicUsize::default())
    }
}

impl Progress for Cap {
    fn init(&mut self, _max: Option<Step>, _unit: Option<Unit>) {}

    fn set_name(&mut self, _name: String) {}

    fn name(&self) -> Option<String> {
        None
    }

    fn id(&self) -> Id {
        gix::progress::UNKNOWN
    }

    fn message(&self, _level: MessageLevel, _message: String) {}
}

impl NestedProgress for Cap {
    type SubProgress = Cap;

    fn add_child(&mut self, _name: impl Into<String>) -> Cap {
        self.child(gix::progress::UNKNOWN)
    }

    fn add_child_with_id(&mut self, _name: impl Into<String>, id: Id) -> Cap {
        self.child(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pack_bytes_count_and_the_cap_raises_the_flag() {
        let mut cap = Cap::new(100);
        let mut other = cap.add_child_with_id("resolving", *b"XXXX");
        other.add_child("deeper").inc_by(1000);
        assert!(!cap.exceeded());
        let pack = cap.add_child_with_id("read pack", *b"BWRB");
        let seen = cap.receive(&AtomicBool::new(false), |_, flag| {
            pack.inc_by(60);
            let before = flag.load(Ordering::Relaxed);
            pack.inc_by(60);
            (before, flag.load(Ordering::Relaxed))
        });
        assert_eq!(seen, (false, true));
        assert!(cap.exceeded());
        assert_eq!(cap.received(), 120);
    }

    #[test]
    fn the_callers_interrupt_reaches_the_flag_gix_sees() {
        let cap = Cap::new(100);
        let interrupt = AtomicBool::new(true);
        let stopped = cap.receive(&interrupt, |_, flag| {
            let started = std::time::Instant::now();
            while !flag.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(5));
            }
            flag.load(Ordering::Relaxed)
        });
        assert!(stopped);
        assert!(!cap.exceeded());
    }
}
