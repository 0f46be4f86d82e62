//! Prometheus metrics of both binaries (DESIGN §7), as `outpost_*` series in one prometheus-client registry.
//!
//! Data enters through the helper methods of [`Metrics`] (the agent's pipeline: reconcile, Git, apply, prune,
//! drift; the status writer's own metrics live in its crate), called by the stage that knows the
//! fact. It leaves through [`encode`], which the admin server's `/metrics` endpoint calls on every scrape.
//!
//! Label values are enums ([`ReconcileResult`], [`GitOperation`]) so that no series can be created from free
//! text; the one exception is the bundle name, which is bounded by the repository, and whose series
//! [`Metrics::forget_bundle`] removes when the bundle leaves Git. Names are chosen so that prometheus-client's
//! suffixes (`_total` on counters, `_seconds` from [`Unit::Seconds`]) produce exactly the documented names.

use std::fmt::{self, Write as _};
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Prefix of every metric name; dashboards and alerts in the chart select on `outpost_*`.
pub const PREFIX: &str = "outpost";

/// Lower bound of the duration histograms: an unchanged ref check against a nearby Git server.
const DURATION_BUCKET_START: f64 = 0.005;
/// Growth between buckets; 2.5 keeps the bucket count (and the series count) small over five decades.
const DURATION_BUCKET_FACTOR: f64 = 2.5;
/// 0.005 s × 2.5¹¹ ≈ 119 s: a full reconcile of a large bundle over a slow edge link still lands in a bucket.
const DURATION_BUCKET_COUNT: u16 = 12;

/// A fresh registry whose metric names all start with `outpost_`; pass it to [`Metrics::register`].
pub fn new_registry() -> Registry {
    Registry::with_prefix(PREFIX)
}

/// Renders every metric in `registry` in the OpenMetrics text format (ending in `# EOF`).
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail, and our label values cannot fail to encode; should a future
    // metric type fail anyway, a scrape with what was written beats a panic in the admin server.
    if let Err(error) = prometheus_client::encoding::text::encode(&mut text, registry) {
        tracing::warn!(%error, "Failed to encode metrics");
    }
    text
}

/// The buckets shared by every duration histogram (the status writer's too), from 5 ms to about two minutes.
pub fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(
        DURATION_BUCKET_START,
        DURATION_BUCKET_FACTOR,
        DURATION_BUCKET_COUNT,
    ))
}

/// A `Family` of duration histograms; a named fn pointer keeps the type nameable in struct fields.
type DurationFamily<S> = Family<S, Histogram, fn() -> Histogram>;

/// How one reconcile ended: the `result` label of `outpost_reconcile_duration_seconds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReconcileResult {
    /// Something was applied, pruned or recorded, and nothing failed.
    Success,
    /// The reconcile failed at any stage; the last good state stays.
    Error,
    /// The ref still pointed at the applied commit: no fetch, no API-server request.
    Unchanged,
    /// The local repository's path was absent (removable media unplugged): nothing read, nothing changed.
    Unavailable,
}

impl ReconcileResult {
    /// The label value, in Prometheus' lower-case convention.
    pub fn as_str(self) -> &'static str {
        match self {
            ReconcileResult::Success => "success",
            ReconcileResult::Error => "error",
            ReconcileResult::Unchanged => "unchanged",
            ReconcileResult::Unavailable => "unavailable",
        }
    }
}

// Written by hand rather than derived: the derive writes the variant name as is ("Success"), and Prometheus
// label values are conventionally lower case.
impl EncodeLabelValue for ReconcileResult {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// Which kind of Git request: the `operation` label of the Git metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GitOperation {
    /// Ref advertisement only, done every poll.
    RefCheck,
    /// Shallow fetch of a changed ref.
    Fetch,
}

impl GitOperation {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            GitOperation::RefCheck => "ref_check",
            GitOperation::Fetch => "fetch",
        }
    }
}

impl EncodeLabelValue for GitOperation {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// Whether a request succeeded: the `result` label of `outpost_git_requests_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum RequestResult {
    Success,
    Error,
}

impl EncodeLabelValue for RequestResult {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        encoder.write_str(match self {
            RequestResult::Success => "success",
            RequestResult::Error => "error",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReconcileLabels {
    /// How the reconcile ended.
    result: ReconcileResult,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct BundleLabels {
    /// The bundle's name.
    bundle: String,
}

impl BundleLabels {
    pub(crate) fn new(bundle: &str) -> Self {
        BundleLabels {
            bundle: bundle.to_owned(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct GitRequestLabels {
    /// Ref check or fetch.
    operation: GitOperation,
    /// Success or error.
    result: RequestResult,
}

/// Labels of a failure counted by kind: the failing error enum's `metric_label()`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FailureLabels {
    /// The kind of failure.
    error: &'static str,
}

/// Labels of an object that failed: what we tried, and the kind of failure.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ObjectFailureLabels {
    /// `apply` or `prune`.
    operation: &'static str,
    /// The kind of failure.
    error: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct GitOperationLabels {
    /// Ref check or fetch.
    operation: GitOperation,
}

/// Saturating conversion for gauges, which prometheus-client keeps as `i64`.
fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The agent's metrics. Cloning is cheap: every handle shares its series with the registry.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// `outpost_reconcile_duration_seconds{result}`: how long reconciles take and how they end.
    reconcile_duration: DurationFamily<ReconcileLabels>,
    /// `outpost_objects_applied_total{bundle}`: server-side applies that succeeded.
    objects_applied: Family<BundleLabels, Counter>,
    /// `outpost_objects_pruned_total{bundle}`: members deleted because they left Git.
    objects_pruned: Family<BundleLabels, Counter>,
    /// `outpost_drift_reverted_total{bundle}`: members re-applied after someone changed or deleted them.
    drift_reverted: Family<BundleLabels, Counter>,
    /// `outpost_apply_errors_total{bundle}`: objects the API server refused.
    apply_errors: Family<BundleLabels, Counter>,
    /// `outpost_git_requests_total{operation,result}`: load we put on the Git server, and its failures.
    git_requests: Family<GitRequestLabels, Counter>,
    /// `outpost_git_request_duration_seconds{operation}`: how slow the Git server or the link is.
    git_request_duration: DurationFamily<GitOperationLabels>,
    /// `outpost_drift_fights_total{bundle}`: another actor keeps reverting us; we stopped looping.
    drift_fights: Family<BundleLabels, Counter>,
    /// `outpost_last_successful_sync_timestamp_seconds{bundle}`: alert when a bundle stops syncing.
    last_successful_sync: Family<BundleLabels, Gauge<f64, AtomicU64>>,
    /// `outpost_bundle_objects{bundle}`: members in the bundle's inventory.
    bundle_objects: Family<BundleLabels, Gauge>,
    /// `outpost_leader`: 1 while this replica acts, 0 while it waits for the lease.
    leader: Gauge,
    /// `outpost_reconcile_failures_total{error}`: failed reconciles by kind of failure.
    reconcile_failures: Family<FailureLabels, Counter>,
    /// `outpost_objects_failed_total{operation,error}`: objects not applied or not pruned, by kind of failure.
    objects_failed: Family<ObjectFailureLabels, Counter>,
    /// `outpost_history_refusals_total{reason}`: new commits refused by freshness (rollback protection).
    history_refusals: Family<HistoryLabels, Counter>,
}

/// Labels of a commit freshness refused.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HistoryLabels {
    /// `rewritten`, `beyond_depth`, `older` or `unknown_time`.
    reason: &'static str,
}

impl Metrics {
    /// Creates the agent's metrics and registers them in `registry`, which should come from
    /// [`new_registry`] so that the names carry the `outpost_` prefix.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Metrics {
            reconcile_duration: Family::new_with_constructor(duration_histogram),
            objects_applied: Family::default(),
            objects_pruned: Family::default(),
            drift_reverted: Family::default(),
            apply_errors: Family::default(),
            git_requests: Family::default(),
            git_request_duration: Family::new_with_constructor(duration_histogram),
            drift_fights: Family::default(),
            last_successful_sync: Family::default(),
            bundle_objects: Family::default(),
            leader: Gauge::default(),
            reconcile_failures: Family::default(),
            objects_failed: Family::default(),
            history_refusals: Family::default(),
        };
        metrics.register_subsystems(registry);
        registry.register(
            "apply_errors",
            "Objects the API server refused to apply, by bundle",
            metrics.apply_errors.clone(),
        );
        registry.register_with_unit(
            "last_successful_sync_timestamp",
            "Unix time of the last successful sync, by bundle",
            Unit::Seconds,
            metrics.last_successful_sync.clone(),
        );
        registry.register(
            "bundle_objects",
            "Members in the bundle's inventory",
            metrics.bundle_objects.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica acts, 0 while it waits for the lease",
            metrics.leader.clone(),
        );
        metrics
    }

    /// One sub-registry per subsystem (`outpost_reconcile_`, `outpost_objects_`, `outpost_git_`,
    /// `outpost_drift_`).
    fn register_subsystems(&self, registry: &mut Registry) {
        let metrics = self;
        let reconcile = registry.sub_registry_with_prefix("reconcile");
        reconcile.register_with_unit(
            "duration",
            "Duration of one reconcile of the cluster path, by result",
            Unit::Seconds,
            metrics.reconcile_duration.clone(),
        );
        reconcile.register(
            "failures",
            "Reconciles that failed, by kind of failure",
            metrics.reconcile_failures.clone(),
        );
        registry.register(
            "history_refusals",
            "New commits refused because they do not descend from the last applied one, by reason",
            metrics.history_refusals.clone(),
        );
        let objects = registry.sub_registry_with_prefix("objects");
        objects.register(
            "applied",
            "Objects server-side applied, by bundle",
            metrics.objects_applied.clone(),
        );
        objects.register(
            "pruned",
            "Inventory members deleted because they left Git, by bundle",
            metrics.objects_pruned.clone(),
        );
        objects.register(
            "failed",
            "Objects not applied or not pruned, by operation and kind of failure",
            metrics.objects_failed.clone(),
        );
        let git = registry.sub_registry_with_prefix("git");
        git.register(
            "requests",
            "Requests to the resource repository, by operation and result",
            metrics.git_requests.clone(),
        );
        git.register_with_unit(
            "request_duration",
            "Duration of requests to the resource repository, by operation",
            Unit::Seconds,
            metrics.git_request_duration.clone(),
        );
        let drift = registry.sub_registry_with_prefix("drift");
        drift.register(
            "reverted",
            "Members re-applied after a change or deletion in the cluster, by bundle",
            metrics.drift_reverted.clone(),
        );
        drift.register(
            "fights",
            "Times another actor kept reverting a member and we stopped re-applying it, by bundle",
            metrics.drift_fights.clone(),
        );
    }

    /// Counts a new commit refused by freshness, by reason.
    pub fn history_refused(&self, reason: &'static str) {
        self.history_refusals
            .get_or_create(&HistoryLabels { reason })
            .inc();
    }

    /// Counts a failed reconcile by the kind of failure (`reconcile::Error::metric_label`).
    pub fn reconcile_failed(&self, error: &'static str) {
        self.reconcile_failures
            .get_or_create(&FailureLabels { error })
            .inc();
    }

    /// Counts an object that failed to apply (`operation` = "apply") or to be pruned ("prune"), by the kind of
    /// failure (`desired::ObjectError::metric_label`).
    pub fn object_failed(&self, operation: &'static str, error: &'static str) {
        self.objects_failed
            .get_or_create(&ObjectFailureLabels { operation, error })
            .inc();
    }

    /// Records one reconcile that took `secs` seconds and ended with `result`.
    pub fn observe_reconcile(&self, result: ReconcileResult, secs: f64) {
        self.reconcile_duration
            .get_or_create(&ReconcileLabels { result })
            .observe(secs);
    }

    /// Starts timing one reconcile; see [`ReconcileTimer`].
    pub fn start_reconcile(&self) -> ReconcileTimer {
        ReconcileTimer {
            histogram: self.reconcile_duration.clone(),
            start: Instant::now(),
            result: ReconcileResult::Error,
        }
    }

    /// Counts `n` objects of `bundle` applied.
    pub fn applied(&self, bundle: &str, n: u64) {
        self.objects_applied
            .get_or_create(&BundleLabels::new(bundle))
            .inc_by(n);
    }

    /// Counts `n` members of `bundle` pruned.
    pub fn pruned(&self, bundle: &str, n: u64) {
        self.objects_pruned
            .get_or_create(&BundleLabels::new(bundle))
            .inc_by(n);
    }

    /// Counts one drifted member of `bundle` re-applied.
    pub fn drift_reverted(&self, bundle: &str) {
        self.drift_reverted
            .get_or_create(&BundleLabels::new(bundle))
            .inc();
    }

    /// Counts one object of `bundle` the API server refused.
    pub fn apply_error(&self, bundle: &str) {
        self.apply_errors.get_or_create(&BundleLabels::new(bundle)).inc();
    }

    /// Records one Git request: its kind, whether it succeeded, and how long it took.
    pub fn git_request(&self, operation: GitOperation, ok: bool, secs: f64) {
        let result = if ok {
            RequestResult::Success
        } else {
            RequestResult::Error
        };
        self.git_requests
            .get_or_create(&GitRequestLabels { operation, result })
            .inc();
        self.git_request_duration
            .get_or_create(&GitOperationLabels { operation })
            .observe(secs);
    }

    /// Counts one fight detected on a member of `bundle`.
    pub fn fight(&self, bundle: &str) {
        self.drift_fights.get_or_create(&BundleLabels::new(bundle)).inc();
    }

    /// Records a successful sync of `bundle` at `unix_secs`, leaving `members` objects in its inventory.
    pub fn synced(&self, bundle: &str, unix_secs: f64, members: u64) {
        let labels = BundleLabels::new(bundle);
        self.last_successful_sync.get_or_create(&labels).set(unix_secs);
        self.bundle_objects
            .get_or_create(&labels)
            .set(gauge_value(members));
    }

    /// Removes every series of `bundle`, once it has left Git and been pruned, so that dashboards stop
    /// showing it and its stale sync timestamp does not fire alerts.
    pub fn forget_bundle(&self, bundle: &str) {
        let labels = BundleLabels::new(bundle);
        self.objects_applied.remove(&labels);
        self.objects_pruned.remove(&labels);
        self.drift_reverted.remove(&labels);
        self.apply_errors.remove(&labels);
        self.drift_fights.remove(&labels);
        self.last_successful_sync.remove(&labels);
        self.bundle_objects.remove(&labels);
    }

    /// Sets `outpost_leader` to 1 when this replica acts and 0 when it waits.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }
}

/// Times one reconcile, the controller-rs way: the duration is recorded when the timer is dropped, so an
/// early return through `?` is still measured. Unless [`finish`](Self::finish) says otherwise, the result
/// is [`ReconcileResult::Error`].
#[derive(Debug)]
#[must_use = "a reconcile is timed until the timer is dropped"]
pub struct ReconcileTimer {
    /// The reconcile-duration family shared with [`Metrics`].
    histogram: DurationFamily<ReconcileLabels>,
    /// When the reconcile began.
    start: Instant,
    /// What to record at drop.
    result: ReconcileResult,
}

impl ReconcileTimer {
    /// Ends the reconcile with `result` and records its duration.
    pub fn finish(mut self, result: ReconcileResult) {
        self.result = result;
    }
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        let secs = self.start.elapsed().as_secs_f64();
        self.histogram
            .get_or_create(&ReconcileLabels { result: self.result })
            .observe(secs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> (Registry, Metrics) {
        let mut registry = new_registry();
        let metrics = Metrics::register(&mut registry);
        (registry, metrics)
    }

    fn assert_has(text: &str, line: &str) {
        assert!(
            text.lines().any(|l| l == line),
            "missing line {line:?} in:\n{text}"
        );
    }

    #[test]
    fn agent_metrics_are_exposed_under_their_documented_names() {
        let (registry, metrics) = agent();
        metrics.observe_reconcile(ReconcileResult::Success, 0.2);
        metrics.observe_reconcile(ReconcileResult::Unchanged, 0.01);
        metrics.applied("web", 3);
        metrics.pruned("web", 2);
        metrics.drift_reverted("web");
        metrics.apply_error("web");
        metrics.git_request(GitOperation::RefCheck, true, 0.05);
        metrics.git_request(GitOperation::Fetch, false, 1.5);
        metrics.fight("web");
        metrics.synced("web", 1_700_000_000.5, 5);
        metrics.set_leader(true);
        metrics.reconcile_failed("partial");
        metrics.history_refused("older");
        metrics.object_failed("apply", "forbidden");

        let text = encode(&registry);
        assert_has(&text, "# TYPE outpost_reconcile_duration_seconds histogram");
        assert_has(&text, r#"outpost_reconcile_failures_total{error="partial"} 1"#);
        assert_has(&text, r#"outpost_history_refusals_total{reason="older"} 1"#);
        assert_has(
            &text,
            r#"outpost_objects_failed_total{operation="apply",error="forbidden"} 1"#,
        );
        assert_has(
            &text,
            r#"outpost_reconcile_duration_seconds_count{result="success"} 1"#,
        );
        assert_has(
            &text,
            r#"outpost_reconcile_duration_seconds_count{result="unchanged"} 1"#,
        );
        assert_has(&text, r#"outpost_objects_applied_total{bundle="web"} 3"#);
        assert_has(&text, r#"outpost_objects_pruned_total{bundle="web"} 2"#);
        assert_has(&text, r#"outpost_drift_reverted_total{bundle="web"} 1"#);
        assert_has(&text, r#"outpost_apply_errors_total{bundle="web"} 1"#);
        assert_has(
            &text,
            r#"outpost_git_requests_total{operation="ref_check",result="success"} 1"#,
        );
        assert_has(
            &text,
            r#"outpost_git_requests_total{operation="fetch",result="error"} 1"#,
        );
        assert_has(
            &text,
            r#"outpost_git_request_duration_seconds_count{operation="fetch"} 1"#,
        );
        assert_has(&text, r#"outpost_drift_fights_total{bundle="web"} 1"#);
        assert_has(
            &text,
            r#"outpost_last_successful_sync_timestamp_seconds{bundle="web"} 1700000000.5"#,
        );
        assert_has(&text, r#"outpost_bundle_objects{bundle="web"} 5"#);
        assert_has(&text, "outpost_leader 1");
        assert!(text.ends_with("# EOF\n"), "not OpenMetrics text:\n{text}");
    }

    #[test]
    fn duration_buckets_span_five_milliseconds_to_about_two_minutes() {
        let (registry, metrics) = agent();
        metrics.observe_reconcile(ReconcileResult::Error, 100.0);
        let text = encode(&registry);
        let bounds: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with("outpost_reconcile_duration_seconds_bucket"))
            .filter_map(|l| l.split("le=\"").nth(1)?.split('"').next()?.parse().ok())
            .filter(|bound: &f64| bound.is_finite())
            .collect();
        assert_eq!(bounds.first(), Some(&0.005), "{text}");
        let largest = bounds.last().copied().unwrap_or_default();
        assert!(
            (100.0..=150.0).contains(&largest),
            "largest finite bucket {largest}"
        );
        assert_has(
            &text,
            r#"outpost_reconcile_duration_seconds_bucket{le="+Inf",result="error"} 1"#,
        );
    }

    #[test]
    fn forget_bundle_removes_every_series_of_that_bundle_only() {
        let (registry, metrics) = agent();
        for bundle in ["web", "db"] {
            metrics.applied(bundle, 1);
            metrics.pruned(bundle, 1);
            metrics.drift_reverted(bundle);
            metrics.apply_error(bundle);
            metrics.fight(bundle);
            metrics.synced(bundle, 1.0, 1);
        }
        metrics.forget_bundle("web");

        let text = encode(&registry);
        assert!(!text.contains(r#"bundle="web""#), "web series left:\n{text}");
        assert_has(&text, r#"outpost_objects_applied_total{bundle="db"} 1"#);
        assert_has(&text, r#"outpost_bundle_objects{bundle="db"} 1"#);
    }

    #[test]
    fn leader_gauge_drops_to_zero_when_standing_by() {
        let (registry, metrics) = agent();
        metrics.set_leader(true);
        metrics.set_leader(false);
        assert_has(&encode(&registry), "outpost_leader 0");
    }

    #[test]
    fn reconcile_timer_records_error_unless_finished() {
        let (registry, metrics) = agent();
        drop(metrics.start_reconcile());
        metrics.start_reconcile().finish(ReconcileResult::Unchanged);

        let text = encode(&registry);
        assert_has(
            &text,
            r#"outpost_reconcile_duration_seconds_count{result="error"} 1"#,
        );
        assert_has(
            &text,
            r#"outpost_reconcile_duration_seconds_count{result="unchanged"} 1"#,
        );
        assert!(!text.contains(r#"result="success""#), "{text}");
    }
}
