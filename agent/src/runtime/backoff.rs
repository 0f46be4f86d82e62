//! How long a work loop waits: after errors ([`ErrorBackoff`], exponential with jitter and a cap) and between
//! rounds ([`jittered`], so processes started together drift apart).
//!
//! The numbers are each binary's policy and stay with it: this module only knows the shapes.

use std::time::Duration;

use backon::BackoffBuilder;

/// Waits after consecutive errors: from `min`, doubling, capped at `max` (with jitter), never giving up.
#[derive(Debug)]
pub struct ErrorBackoff {
    /// First wait after a success.
    min: Duration,
    /// Longest wait; also the answer once the schedule runs out (it never does, but it is the safe one).
    max: Duration,
    /// The schedule since the last success.
    schedule: backon::ExponentialBackoff,
}

impl ErrorBackoff {
    /// A schedule from `min` to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        ErrorBackoff {
            min,
            max,
            schedule: schedule(min, max),
        }
    }

    /// The wait after one more consecutive error.
    pub fn next_wait(&mut self) -> Duration {
        self.schedule.next().unwrap_or(self.max)
    }

    /// Starts over from `min`: the work succeeded.
    pub fn reset(&mut self) {
        self.schedule = schedule(self.min, self.max);
    }
}

/// Exponential backoff with jitter, capped, never giving up.
fn schedule(min: Duration, max: Duration) -> backon::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_jitter()
        .without_max_times()
        .build()
}

/// `base` ± `share` of it, uniformly at random (`share` 0.1: 27 s to 33 s for 30 s).
pub fn jittered(base: Duration, share: f64) -> Duration {
    base.mul_f64(1.0 + share * (fastrand::f64() * 2.0 - 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_secs(30), 0.10);
            assert!(
                d >= Duration::from_secs(27) && d <= Duration::from_secs(33),
                "{d:?}"
            );
        }
    }

    #[test]
    fn jitter_of_a_fifth_stays_between_eight_and_twelve_tenths() {
        let window = Duration::from_secs(5);
        for _ in 0..1000 {
            let d = jittered(window, 0.20);
            assert!(d >= window.mul_f64(0.8) && d <= window.mul_f64(1.2), "{d:?}");
        }
    }

    #[test]
    fn error_backoff_grows_and_is_capped() {
        let max = Duration::from_secs(300);
        let mut backoff = ErrorBackoff::new(Duration::from_secs(2), max);
        let waits: Vec<Duration> = (0..20).map(|_| backoff.next_wait()).collect();
        assert!(waits[0] < Duration::from_secs(5), "{waits:?}");
        assert!(waits.iter().all(|w| *w <= max * 2), "{waits:?}");
        assert!(waits[19] >= max / 2, "{waits:?}");
    }

    #[test]
    fn error_backoff_starts_over_after_a_reset() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(120));
        let mut backoff = ErrorBackoff::new(min, max);
        for _ in 0..20 {
            backoff.next_wait();
        }
        assert!(backoff.next_wait() >= max / 2);
        backoff.reset();
        // The first wait is min plus at most min of jitter.
        assert!(backoff.next_wait() <= min * 2);
    }
}
