//! Metrics of signature verification: refusals by reason, and the time each verification took (the per-poll
//! cost `--verify` adds).

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::error::Reason;

/// The `reason` label: a [`Reason`], never free text.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    /// Why verification refused.
    reason: ReasonValue,
}

/// [`Reason`] as a label value.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum ReasonValue {
    keys,
    unsigned,
    untrusted,
    expired,
    revoked,
    bad_signature,
    unsupported,
    read,
}

impl From<Reason> for ReasonValue {
    fn from(reason: Reason) -> Self {
        match reason {
            Reason::Keys => ReasonValue::keys,
            Reason::Unsigned => ReasonValue::unsigned,
            Reason::Untrusted => ReasonValue::untrusted,
            Reason::Expired => ReasonValue::expired,
            Reason::Revoked => ReasonValue::revoked,
            Reason::BadSignature => ReasonValue::bad_signature,
            Reason::Unsupported => ReasonValue::unsupported,
            Reason::Read => ReasonValue::read,
        }
    }
}

/// Handles on the verification metrics; cloning shares them.
#[derive(Clone, Debug)]
pub struct VerifyMetrics {
    /// `outpost_verification_failures_total{reason}`: polls whose commit or tag was refused.
    failures: Family<ReasonLabels, Counter>,
    /// `outpost_verification_duration_seconds`: time to read the keys and verify one object.
    duration: Histogram,
}

impl VerifyMetrics {
    /// Register in `registry` (with the `outpost_` prefix).
    pub fn register(registry: &mut Registry) -> Self {
        let m = VerifyMetrics {
            failures: Family::default(),
            // Verification takes microseconds to milliseconds; the shared buckets start at 5 ms.
            duration: Histogram::new([0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]),
        };
        registry.register(
            "verification_failures",
            "Polls whose commit or tag failed signature verification (--verify), by reason; nothing of it was applied",
            m.failures.clone(),
        );
        registry.register_with_unit(
            "verification_duration",
            "Time to read the trusted keys and verify the signature of one commit or tag",
            prometheus_client::registry::Unit::Seconds,
            m.duration.clone(),
        );
        m
    }

    /// One refusal for `reason`.
    pub fn failed(&self, reason: Reason) {
        self.failures
            .get_or_create(&ReasonLabels {
                reason: reason.into(),
            })
            .inc();
    }

    /// One verification took `secs`.
    pub fn observe(&self, secs: f64) {
        self.duration.observe(secs);
    }
}
