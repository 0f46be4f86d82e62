//! The sync time each status document carries (`lastSync` in its `outpost.dev/sync` annotation), chosen so that
//! a sync which changes nothing a reader acts on changes no byte of the status.
//!
//! The agent records every sync on the bundle's inventory, the hourly resync included, and each record moves the
//! inventory's sync time. Writing that time as it moves would commit every bundle's status at every resync (24
//! commits a day per cluster that say nothing). So a document keeps the sync time it was last rendered with as
//! long as the rest of it is unchanged ([`crate::render::Document::digest`]: revision, state, errors, health,
//! objects), and takes the inventory's newer time when something else in it changes or, with
//! `--status-heartbeat`, once the kept time is a heartbeat older than the newest sync: the heartbeat commit
//! proves the agent still syncs, and comes only from a sync that happened (a dead agent makes none). The newest
//! sync time stays in the inventory and in the agent's `outpost_last_successful_sync_timestamp_seconds{bundle}`.
//!
//! Data enters as (bundle, digest, newest sync time) per rendering and leaves as the time to write. Memory is the
//! process's: a writer started afresh writes the current sync time once where the branch holds an older one.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// What was last chosen for one bundle.
struct Kept {
    /// Digest of the document without its sync time.
    digest: [u8; 32],
    /// The sync time written with it.
    time: Option<String>,
}

/// The sync times of every bundle's document, kept between renderings.
#[derive(Default)]
pub struct Stamps {
    /// Write a newer sync time into an unchanged document once the kept one is this much older (`None`: never).
    heartbeat: Option<Duration>,
    /// By bundle.
    kept: Mutex<BTreeMap<String, Kept>>,
}

impl Stamps {
    /// Stamps refreshed every `heartbeat` (`None`: only when the document changes).
    pub fn new(heartbeat: Option<Duration>) -> Self {
        Stamps {
            heartbeat,
            kept: Mutex::default(),
        }
    }

    /// The sync time `bundle`'s document carries, given the `digest` of the rest of it and the inventory's
    /// `newest` sync time: the kept time while the document is unchanged and no heartbeat is due, else `newest`.
    pub fn choose(&self, bundle: &str, digest: [u8; 32], newest: Option<&str>) -> Option<String> {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let time = match kept.get(bundle) {
            Some(k) if k.digest == digest && !due(self.heartbeat, k.time.as_deref(), newest) => {
                k.time.clone()
            }
            _ => newest.map(str::to_owned),
        };
        kept.insert(
            bundle.to_owned(),
            Kept {
                digest,
                time: time.clone(),
            },
        );
        time
    }

    /// Forget the bundles `present` denies (they left the cluster).
    pub fn retain(&self, present: impl Fn(&str) -> bool) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.retain(|bundle, _| present(bundle));
    }
}

/// Whether an unchanged document must take the `newest` sync time instead of the `kept` one: a time appears
/// where there was none, or a heartbeat has passed between them. Times that do not parse (the agent writes RFC
/// 3339) never force a write.
fn due(heartbeat: Option<Duration>, kept: Option<&str>, newest: Option<&str>) -> bool {
    let Some(newest) = newest else {
        return false;
    };
    let Some(kept) = kept else {
        return true;
    };
    let Some(heartbeat) = heartbeat else {
        return false;
    };
    let parse = |t: &str| t.parse::<jiff::Timestamp>().ok();
    let (Some(kept), Some(newest)) = (parse(kept), parse(newest)) else {
        return false;
    };
    let since = newest.as_millisecond().saturating_sub(kept.as_millisecond());
    since >= 0 && since as u128 >= heartbeat.as_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn an_unchanged_document_keeps_its_time_through_resyncs_without_a_heartbeat() {
        let stamps = Stamps::new(None);
        let t = |h: u32| format!("2026-01-01T{h:02}:00:00Z");
        assert_eq!(stamps.choose("web", [1; 32], Some(&t(0))), Some(t(0)));
        for h in 1..24 {
            assert_eq!(
                stamps.choose("web", [1; 32], Some(&t(h))),
                Some(t(0)),
                "resync {h}"
            );
        }
        assert_eq!(
            stamps.choose("web", [2; 32], Some(&t(23))),
            Some(t(23)),
            "a change takes the newest time"
        );
        assert_eq!(
            stamps.choose("db", [1; 32], Some(&t(5))),
            Some(t(5)),
            "bundles apart"
        );
    }

    #[test]
    fn the_heartbeat_refreshes_an_unchanged_document_once_per_period() {
        let stamps = Stamps::new(Some(6 * HOUR));
        let t = |h: u32| format!("2026-01-01T{h:02}:00:00Z");
        let written: Vec<Option<String>> = (0..24)
            .map(|h| stamps.choose("web", [1; 32], Some(&t(h))))
            .collect();
        let mut distinct = written.clone();
        distinct.dedup();
        assert_eq!(distinct, vec![Some(t(0)), Some(t(6)), Some(t(12)), Some(t(18))]);
    }

    #[test]
    fn due_needs_a_newer_parsable_time_a_heartbeat_later() {
        let (a, b) = ("2026-01-01T00:00:00Z", "2026-01-01T00:59:59Z");
        assert!(!due(Some(HOUR), Some(a), Some(b)));
        assert!(due(Some(HOUR), Some(a), Some("2026-01-01T01:00:00Z")));
        assert!(!due(None, Some(a), Some("2027-01-01T00:00:00Z")), "no heartbeat");
        assert!(!due(Some(HOUR), Some(b), Some(a)), "older");
        assert!(!due(Some(HOUR), Some(a), None), "no sync time");
        assert!(due(None, None, Some(a)), "a first time");
        assert!(!due(Some(HOUR), Some("yesterday"), Some(a)), "unparsable");
    }

    #[test]
    fn a_bundle_that_left_and_came_back_starts_afresh() {
        let stamps = Stamps::new(None);
        stamps.choose("web", [1; 32], Some("2026-01-01T00:00:00Z"));
        stamps.retain(|b| b != "web");
        assert_eq!(
            stamps
                .choose("web", [1; 32], Some("2026-01-02T00:00:00Z"))
                .as_deref(),
            Some("2026-01-02T00:00:00Z")
        );
    }
}
