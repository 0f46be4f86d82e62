//! The status writer's Prometheus metrics (DESIGN §7): rendering, commits, pushes, write failures by kind, and
//! leadership.
//!
//! Data enters through the helper methods of [`StatusMetrics`], called by the part of a write that knows the
//! fact ([`crate::writer`] renders, [`crate::land`] commits and pushes, [`crate::fanout`] counts failures). The
//! series live in the `status` sub-registry of the binary's `outpost` registry
//! ([`outpost_agent::metrics::new_registry`]), so every name is `outpost_status_*`; only `outpost_leader`,
//! shared with the agent's dashboards and alerts, sits in the root registry. They leave through the admin
//! server's `/metrics` ([`outpost_agent::metrics::encode`]).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Sub-registry prefix: with the root's `outpost`, every status writer series is `outpost_status_*`.
pub const SUBSYSTEM: &str = "status";

/// The `kind` label of `outpost_status_write_failures_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    /// A failed write's [`crate::outcome::Error::metric_label`]: bounded, never free text.
    kind: &'static str,
}

/// The status writer's metrics. Cloning is cheap: every handle shares its series with the registry.
#[derive(Clone, Debug)]
pub struct StatusMetrics {
    /// `outpost_status_documents_rendered_total`: ResourceBundleState documents rendered.
    documents_rendered: Counter,
    /// `outpost_status_commits_total`: commits made to the control repo.
    commits: Counter,
    /// `outpost_status_bytes_pushed_total`: pack bytes sent; the cost of status on the edge link.
    bytes_pushed: Counter,
    /// `outpost_status_push_rejections_total`: pushes refused as non-fast-forward (another cluster pushed).
    push_rejections: Counter,
    /// `outpost_status_push_retries_total`: pushes attempted again after a rejection or an error.
    push_retries: Counter,
    /// `outpost_status_push_duration_seconds`: duration of every push attempt.
    push_duration: Histogram,
    /// `outpost_status_last_successful_push_timestamp_seconds`: alert when the hub stops hearing from us.
    last_successful_push: Gauge<f64, AtomicU64>,
    /// `outpost_status_write_failures_total{kind}`: failed writes to a branch, by what failed.
    write_failures: Family<FailureLabels, Counter>,
    /// `outpost_leader`: 1 while this replica writes status, 0 while it waits for the lease.
    leader: Gauge,
}

impl StatusMetrics {
    /// Creates the status writer's metrics and registers them in `registry`, which should come from
    /// [`outpost_agent::metrics::new_registry`]: `outpost_leader` in it, the rest in its `status` sub-registry.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = StatusMetrics {
            documents_rendered: Counter::default(),
            commits: Counter::default(),
            bytes_pushed: Counter::default(),
            push_rejections: Counter::default(),
            push_retries: Counter::default(),
            // The agent's duration buckets, so dashboards compare Git fetches and pushes bucket for bucket.
            push_duration: outpost_agent::metrics::duration_histogram(),
            last_successful_push: Gauge::default(),
            write_failures: Family::default(),
            leader: Gauge::default(),
        };
        registry.register(
            "leader",
            "1 while this replica writes status, 0 while it waits for the lease",
            metrics.leader.clone(),
        );
        let status = registry.sub_registry_with_prefix(SUBSYSTEM);
        status.register(
            "documents_rendered",
            "ResourceBundleState documents rendered",
            metrics.documents_rendered.clone(),
        );
        status.register(
            "commits",
            "Commits made to the control repository",
            metrics.commits.clone(),
        );
        status.register(
            "bytes_pushed",
            "Bytes of pack data pushed to the control repository",
            metrics.bytes_pushed.clone(),
        );
        status.register(
            "push_rejections",
            "Pushes the control repository rejected as not fast-forward",
            metrics.push_rejections.clone(),
        );
        status.register(
            "push_retries",
            "Pushes attempted again after a rejection or an error",
            metrics.push_retries.clone(),
        );
        status.register_with_unit(
            "push_duration",
            "Duration of one push attempt to the control repository",
            Unit::Seconds,
            metrics.push_duration.clone(),
        );
        status.register_with_unit(
            "last_successful_push_timestamp",
            "Unix time of the last successful push to the control repository",
            Unit::Seconds,
            metrics.last_successful_push.clone(),
        );
        status.register(
            "write_failures",
            "Failed status writes to a branch, by what failed",
            metrics.write_failures.clone(),
        );
        metrics
    }

    /// Counts `n` documents rendered.
    pub fn rendered(&self, n: u64) {
        self.documents_rendered.inc_by(n);
    }

    /// Counts one commit made.
    pub fn committed(&self) {
        self.commits.inc();
    }

    /// Records the duration of one push attempt, whatever its outcome.
    pub fn observe_push(&self, secs: f64) {
        self.push_duration.observe(secs);
    }

    /// Records a successful push of `bytes` pack bytes, completed at `unix_secs`.
    pub fn pushed(&self, bytes: u64, unix_secs: f64) {
        self.bytes_pushed.inc_by(bytes);
        self.last_successful_push.set(unix_secs);
    }

    /// Counts one push rejected as not fast-forward.
    pub fn push_rejected(&self) {
        self.push_rejections.inc();
    }

    /// Counts one push attempted again.
    pub fn push_retried(&self) {
        self.push_retries.inc();
    }

    /// Counts one failed write to a branch; `kind` is the error's `metric_label()`.
    pub fn write_failed(&self, kind: &'static str) {
        self.write_failures.get_or_create(&FailureLabels { kind }).inc();
    }

    /// Sets `outpost_leader` to 1 when this replica writes status and 0 when it waits.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }
}

#[cfg(test)]
mod tests {
    use outpost_agent::metrics::{encode, new_registry};

    use super::*;

    fn assert_has(text: &str, line: &str) {
        assert!(
            text.lines().any(|l| l == line),
            "missing line {line:?} in:\n{text}"
        );
    }

    #[test]
    fn status_metrics_are_exposed_under_their_documented_names() {
        let mut registry = new_registry();
        let metrics = StatusMetrics::register(&mut registry);
        metrics.rendered(4);
        metrics.committed();
        metrics.observe_push(0.3);
        metrics.push_rejected();
        metrics.push_retried();
        metrics.observe_push(0.4);
        metrics.pushed(2048, 1_700_000_000.0);
        metrics.write_failed("push_unauthorized");
        metrics.write_failed("push_unauthorized");
        metrics.write_failed("contended");
        metrics.set_leader(true);

        let text = encode(&registry);
        assert_has(&text, "outpost_status_documents_rendered_total 4");
        assert_has(&text, "outpost_status_commits_total 1");
        assert_has(&text, "outpost_status_bytes_pushed_total 2048");
        assert_has(&text, "outpost_status_push_rejections_total 1");
        assert_has(&text, "outpost_status_push_retries_total 1");
        assert_has(&text, "outpost_status_push_duration_seconds_count 2");
        assert_has(
            &text,
            "outpost_status_last_successful_push_timestamp_seconds 1700000000.0",
        );
        assert_has(
            &text,
            r#"outpost_status_write_failures_total{kind="push_unauthorized"} 2"#,
        );
        assert_has(
            &text,
            r#"outpost_status_write_failures_total{kind="contended"} 1"#,
        );
        assert_has(&text, "outpost_leader 1");
        assert!(text.ends_with("# EOF\n"), "not OpenMetrics text:\n{text}");
    }

    #[test]
    fn push_duration_buckets_span_five_milliseconds_to_about_two_minutes() {
        let mut registry = new_registry();
        let metrics = StatusMetrics::register(&mut registry);
        metrics.observe_push(100.0);
        let text = encode(&registry);
        let bounds: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with("outpost_status_push_duration_seconds_bucket"))
            .filter_map(|l| l.split("le=\"").nth(1)?.split('"').next()?.parse().ok())
            .filter(|bound: &f64| bound.is_finite())
            .collect();
        assert_eq!(bounds.first(), Some(&0.005), "{text}");
        let largest = bounds.last().copied().unwrap_or_default();
        assert!(
            (100.0..=150.0).contains(&largest),
            "largest finite bucket {largest}"
        );
    }
}
