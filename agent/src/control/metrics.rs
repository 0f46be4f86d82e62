//! Metrics of the controls: what is suspended, drift detected (beside `outpost_drift_reverted_total`),
//! members orphaned instead of deleted, sync requests handled, and whether the sync windows are open.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::metrics::BundleLabels;

/// The `bundle` label value of the whole agent in `outpost_suspended`.
pub const AGENT: &str = "*";

/// Handles on the control metrics; cloning shares them.
#[derive(Clone, Debug, Default)]
pub struct ControlMetrics {
    /// `outpost_suspended{bundle}`: 1 while suspended (`bundle="*"`: the whole agent).
    suspended: Family<BundleLabels, Gauge>,
    /// `outpost_drift_detected_total{bundle}`: members found changed or deleted in the cluster, reverted or
    /// only reported.
    drift_detected: Family<BundleLabels, Counter>,
    /// `outpost_objects_orphaned_total{bundle}`: members that left Git and were left running (prune: orphan).
    orphaned: Family<BundleLabels, Counter>,
    /// `outpost_sync_requests_total`: `outpost.dev/requested-at` values handled.
    sync_requests: Counter,
    /// `outpost_sync_window_open`: 1 while new commits may be applied (inside the sync windows, or none set).
    window_open: Gauge,
    /// `outpost_sync_window_next_open_timestamp_seconds`: when a closed window next opens (0 while open or
    /// never within five years).
    window_next_open: Gauge,
}

impl ControlMetrics {
    /// Register in `registry` (with the `outpost_` prefix).
    pub fn register(registry: &mut Registry) -> Self {
        let m = ControlMetrics::default();
        registry.register(
            "suspended",
            "1 while a bundle (bundle=\"*\": the whole agent) is suspended: nothing applied, pruned or reverted",
            m.suspended.clone(),
        );
        registry.register(
            "drift_detected",
            "Members found changed or deleted in the cluster, whether reverted or only reported, by bundle",
            m.drift_detected.clone(),
        );
        registry.register(
            "objects_orphaned",
            "Members that left Git and were left running without our label (prune: orphan), by bundle",
            m.orphaned.clone(),
        );
        registry.register(
            "sync_requests",
            "Sync requests (outpost.dev/requested-at) handled",
            m.sync_requests.clone(),
        );
        registry.register(
            "sync_window_open",
            "1 while new commits are applied and members pruned (inside the sync windows, or none set)",
            m.window_open.clone(),
        );
        registry.register(
            "sync_window_next_open_timestamp_seconds",
            "When the sync windows next allow syncing (Unix time; 0 while open, or when none opens within five years)",
            m.window_next_open.clone(),
        );
        m
    }

    /// Whether the sync windows are open now, and when they next open if closed.
    pub fn set_window(&self, open: bool, next_open: Option<jiff::Timestamp>) {
        self.window_open.set(i64::from(open));
        self.window_next_open
            .set(next_open.map_or(0, jiff::Timestamp::as_second));
    }

    /// `bundle` (or [`AGENT`]) is suspended (1) or not (0).
    pub fn set_suspended(&self, bundle: &str, suspended: bool) {
        self.suspended
            .get_or_create(&BundleLabels::new(bundle))
            .set(i64::from(suspended));
    }

    /// One member of `bundle` drifted.
    pub fn drift_detected(&self, bundle: &str) {
        self.drift_detected
            .get_or_create(&BundleLabels::new(bundle))
            .inc();
    }

    /// `n` members of `bundle` orphaned.
    pub fn orphaned(&self, bundle: &str, n: u64) {
        self.orphaned.get_or_create(&BundleLabels::new(bundle)).inc_by(n);
    }

    /// One sync request handled.
    pub fn sync_requested(&self) {
        self.sync_requests.inc();
    }
}
