//! The poll phase: where in the interval a cluster's polls fall, so a fleet restarted together (a node pool
//! upgrade, a Git server back from an outage) does not poll in step.
//!
//! The phase is a fixed share of `--interval` taken from a SHA-256 of the cluster name: the same for one
//! cluster across restarts, spread evenly over the fleet. The first poll after a start waits it; later polls
//! come every interval ± 10% jitter from there. A new install (no inventory yet) does not wait: nothing runs
//! from Git yet, and whoever installs it wants to see the first sync.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sha2::{Digest, Sha256};
use tracing::info;

use crate::inventory::store::Store;

/// `--poll-phase`: how the first poll after a start is placed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PollPhase {
    /// Wait the cluster's phase (from a hash of --cluster) before the first poll.
    #[default]
    Cluster,
    /// Poll at once (tests, demos).
    None,
}

/// The cluster's phase: a share of `interval` in `[0, interval)`, from the first 8 bytes of SHA-256 of
/// `cluster` read as a big-endian fraction of 2^64.
pub fn offset(cluster: &str, interval: Duration) -> Duration {
    let digest = Sha256::digest(cluster.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let share = u64::from_be_bytes(first) as f64 / 2f64.powi(64);
    interval
        .mul_f64(share)
        .min(interval.saturating_sub(Duration::from_nanos(1)))
}

/// `outpost_poll_phase_seconds`: the wait before the first poll after this start.
pub fn register(registry: &mut Registry) -> PhaseGauge {
    let gauge = PhaseGauge::default();
    registry.register_with_unit(
        "poll_phase",
        "How long this start waited before its first poll: the cluster's phase (--poll-phase), 0 for none",
        prometheus_client::registry::Unit::Seconds,
        gauge.clone(),
    );
    gauge
}

/// The gauge of the phase.
pub type PhaseGauge = Gauge<f64, AtomicU64>;

/// How long the daemon waits before its first poll: the cluster's phase of `interval`, or nothing with
/// `--poll-phase none` or on a new install (no inventory in `store`; when the inventories cannot be read, the
/// phase is waited). Logged and shown in `gauge`.
pub async fn first_wait(
    setting: PollPhase,
    store: &Store,
    interval: Duration,
    gauge: &PhaseGauge,
) -> Duration {
    if setting == PollPhase::None {
        return Duration::ZERO;
    }
    let cluster = store.cluster();
    if store.list().await.is_ok_and(|parents| parents.is_empty()) {
        info!(cluster, "No inventory yet (new install): first poll at once");
        return Duration::ZERO;
    }
    let phase = offset(cluster, interval);
    gauge.set(phase.as_secs_f64());
    info!(
        cluster,
        phase_ms = phase.as_millis() as u64,
        "Waiting for this cluster's poll phase before the first poll"
    );
    phase
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cluster_gets_one_phase_across_restarts() {
        let interval = Duration::from_secs(30);
        let first = offset("edge-0042", interval);
        for _ in 0..10 {
            assert_eq!(offset("edge-0042", interval), first);
        }
        assert!(first < interval);
    }

    #[test]
    fn clusters_get_different_phases_spread_over_the_interval() {
        let interval = Duration::from_secs(60);
        let phases: Vec<Duration> = (0..1000)
            .map(|i| offset(&format!("edge-{i:04}"), interval))
            .collect();
        let distinct: std::collections::BTreeSet<_> = phases.iter().collect();
        assert!(distinct.len() > 990, "{} distinct phases", distinct.len());
        assert!(phases.iter().all(|p| *p < interval));
        // Spread: every tenth of the interval holds some of them (1000 clusters, ~100 a tenth).
        for tenth in 0..10 {
            let (from, to) = (interval * tenth / 10, interval * (tenth + 1) / 10);
            let n = phases.iter().filter(|p| **p >= from && **p < to).count();
            assert!((50..150).contains(&n), "tenth {tenth} holds {n}");
        }
        assert_ne!(offset("a", interval), offset("b", interval));
    }

    #[test]
    fn the_phase_is_the_hash_share_of_the_interval() {
        // SHA-256("edge-1") starts with these bytes; the phase is that fraction of the interval.
        let digest = Sha256::digest(b"edge-1");
        let share = u64::from_be_bytes(digest[..8].try_into().unwrap()) as f64 / 2f64.powi(64);
        let interval = Duration::from_secs(100);
        let phase = offset("edge-1", interval);
        assert!(
            (phase.as_secs_f64() - 100.0 * share).abs() < 1e-6,
            "{phase:?} vs {share}"
        );
        assert_eq!(offset("edge-1", Duration::ZERO), Duration::ZERO);
    }
}
