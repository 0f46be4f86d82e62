//! The clock of leader election: how long a claim lasts, when a leader must stop acting, and when a candidate
//! may take the Lease — judged only by this process's own monotonic clock, never by comparing the Lease's
//! `renewTime` (written by another node's wall clock) with ours.
//!
//! A candidate records each change of the Lease's spec it sees ([`Observed::observe`]) with the local instant
//! it saw it; the holder counts as gone only when the spec has not changed for the Lease's duration since then
//! ([`Observed::expired`]). The holder, for its part, stops acting [`Timing::renew_deadline`] after the start
//! of its last successful renewal: since every candidate saw that renewal at or after its start, the holder
//! stops a third of the duration before any candidate may take over, whatever the nodes' clocks say.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::LeaseSpec;
use tokio::time::Instant;

/// The timings of one election, all derived from the Lease duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long a claim lasts without a change a candidate can see (`--lease-duration`).
    pub duration: Duration,
    /// How long after the start of its last successful renewal the holder may still act: two thirds of the
    /// duration (client-go's 10 s of 15 s). The last third is the margin for stopping the work in flight and
    /// for clocks that run at slightly different rates.
    pub renew_deadline: Duration,
    /// Time between renewals, and between attempts of a candidate or of a failing renewal: a sixth of the
    /// duration, so a holder gets several attempts before its deadline.
    pub retry: Duration,
}

impl Timing {
    /// The timings for a Lease of `duration`.
    pub fn new(duration: Duration) -> Self {
        Timing {
            duration,
            renew_deadline: duration * 2 / 3,
            retry: duration / 6,
        }
    }
}

/// What a candidate last saw of the Lease, and when by its own clock.
#[derive(Debug, Default)]
pub struct Observed {
    /// The spec last read, and the local instant it was first seen in that state.
    last: Option<(LeaseSpec, Instant)>,
}

impl Observed {
    /// Record the spec read at `now`: a change (new holder, renewal, any field) restarts the holder's time.
    pub fn observe(&mut self, spec: &LeaseSpec, now: Instant) {
        match &self.last {
            Some((seen, _)) if seen == spec => {}
            _ => self.last = Some((spec.clone(), now)),
        }
    }

    /// Whether the Lease may be taken at `now`: nobody holds it, or the spec has not changed for its duration
    /// (the Lease's own `leaseDurationSeconds`, else `fallback`) since this process first saw it so.
    pub fn expired(&self, now: Instant, fallback: Duration) -> bool {
        let Some((spec, since)) = &self.last else {
            return true;
        };
        if spec.holder_identity.as_deref().unwrap_or_default().is_empty() {
            return true;
        }
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .filter(|s| *s > 0)
            .map_or(fallback, Duration::from_secs);
        now.saturating_duration_since(*since) >= duration
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    use super::*;

    const LEASE: Duration = Duration::from_secs(15);

    fn spec(holder: &str, renewed: Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.to_owned()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(renewed)),
            ..Default::default()
        }
    }

    #[test]
    fn the_renew_deadline_is_two_thirds_of_the_lease() {
        let t = Timing::new(LEASE);
        assert_eq!(t.renew_deadline, Duration::from_secs(10));
        assert_eq!(t.retry, Duration::from_millis(2500));
        assert!(t.retry < t.renew_deadline && t.renew_deadline < t.duration);
    }

    #[test]
    fn a_renew_time_far_in_the_past_does_not_expire_a_lease_that_keeps_changing() {
        // The holder's clock is 30 s behind: every renewTime it writes is "expired" by our wall clock.
        let skewed = Timestamp::now() - jiff::SignedDuration::from_secs(30);
        let start = Instant::now();
        let mut observed = Observed::default();
        for step in 0..10u32 {
            let now = start + Duration::from_secs(5) * step;
            let renewed = skewed + jiff::SignedDuration::from_secs(5 * i64::from(step));
            observed.observe(&spec("other", renewed), now);
            assert!(!observed.expired(now, LEASE), "taken at step {step}");
            assert!(!observed.expired(now + Duration::from_secs(14), LEASE));
        }
    }

    #[test]
    fn an_unchanged_lease_expires_a_duration_after_it_was_first_seen_whatever_its_renew_time() {
        // renewTime 30 s in the future (the holder's clock runs ahead): still only one duration of waiting.
        let ahead = Timestamp::now() + jiff::SignedDuration::from_secs(30);
        let start = Instant::now();
        let mut observed = Observed::default();
        observed.observe(&spec("other", ahead), start);
        observed.observe(&spec("other", ahead), start + Duration::from_secs(10));
        assert!(!observed.expired(start + Duration::from_secs(14), LEASE));
        assert!(observed.expired(start + LEASE, LEASE));
    }

    #[test]
    fn a_free_or_never_seen_lease_may_be_taken_at_once() {
        let now = Instant::now();
        assert!(Observed::default().expired(now, LEASE));
        let mut observed = Observed::default();
        observed.observe(&spec("", Timestamp::now()), now);
        assert!(observed.expired(now, LEASE));
    }

    #[test]
    fn the_lease_own_duration_wins_over_ours() {
        let now = Instant::now();
        let mut observed = Observed::default();
        let mut long = spec("other", Timestamp::now());
        long.lease_duration_seconds = Some(60);
        observed.observe(&long, now);
        assert!(!observed.expired(now + Duration::from_secs(30), LEASE));
        assert!(observed.expired(now + Duration::from_secs(60), LEASE));
    }
}
