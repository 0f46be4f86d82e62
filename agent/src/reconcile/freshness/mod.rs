//! Freshness (rollback protection): a new commit that does not descend from the last applied one is refused
//! before anything of it is read, applied or pruned.
//!
//! Anyone who controls a mirror (or answers in its place) could otherwise serve an older commit again — an
//! older image with a known hole, a Secret since rotated — and every agent would apply and prune to it. The
//! last applied commit is remembered in memory and, across restarts, in the inventories (each bundle's sync
//! result names its commit and time; the latest one is the base). The source walks from the new commit back
//! to it ([`crate::source::Lineage`], deepening a shallow cache only as far as needed, never past
//! `--max-history-depth`); [`policy::judge`] decides by `--history-rewrite`. A refusal is logged, returned as
//! the reconcile's error (so `run --once` fails), counted in `outpost_history_refusals_total{reason}` and
//! published as a `HistoryRefused` Event on every inventory, once per refused commit; later polls of the same
//! commit return the same error without walking again.

use super::error::Error;
use crate::inventory::store::Loaded;
use crate::source::Revision;

mod check;
pub mod policy;

pub use policy::{DEFAULT_MAX_DEPTH, HistoryArgs, HistoryRewrite, Verdict};

/// The last applied commit, and its committer time or an upper bound of it (the time it was applied).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Base {
    /// The commit.
    revision: Revision,
    /// Seconds since the epoch.
    time: Option<i64>,
}

/// What freshness remembers between reconciles.
#[derive(Debug)]
pub(crate) struct Guard {
    /// `--history-rewrite` (or `allow` by `--allow-history-rewrite`).
    policy: HistoryRewrite,
    /// `--max-history-depth`.
    max_depth: usize,
    /// The last applied commit; read from the inventories on the first check.
    base: Option<Base>,
    /// Whether the inventories were read for the base already.
    loaded: bool,
    /// The commit being synced, accepted, with its committer time.
    pending: Option<Base>,
    /// The last refusal: new commit, base, error text pieces (reason, why).
    refused: Option<(Revision, Revision, &'static str, String)>,
}

impl Default for Guard {
    fn default() -> Self {
        Guard::new(HistoryRewrite::Refuse, DEFAULT_MAX_DEPTH)
    }
}

impl Guard {
    /// A guard with this policy and depth bound.
    pub(crate) fn new(policy: HistoryRewrite, max_depth: usize) -> Self {
        Guard {
            policy,
            max_depth: max_depth.max(1),
            base: None,
            loaded: false,
            pending: None,
            refused: None,
        }
    }

    /// `commit` was synced (its results recorded in the inventories): it is the base from now on.
    pub(crate) fn settle(&mut self, commit: Revision) {
        let pending = self.pending.take().filter(|p| p.revision == commit);
        self.base = Some(pending.unwrap_or(Base {
            revision: commit,
            time: Some(jiff::Timestamp::now().as_second()),
        }));
        self.refused = None;
    }
}

/// The base the inventories name: the commit of the latest recorded sync, with that sync's time as an upper
/// bound of the commit's time.
fn base_of(loaded: &Loaded) -> Option<Base> {
    loaded
        .inventories
        .values()
        .filter_map(|inv| {
            let revision = Revision::parse(inv.sync.revision.as_deref()?)?;
            let time = inv.sync.time.as_deref()?.parse::<jiff::Timestamp>().ok()?;
            Some(Base {
                revision,
                time: Some(time.as_second()),
            })
        })
        .max_by_key(|b| b.time)
}

/// The error of a refused commit.
fn refused(commit: Revision, last: Revision, reason: &'static str, why: String) -> Error {
    Error::HistoryRefused {
        commit: commit.to_string(),
        last: last.to_string(),
        reason,
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{BundleInfo, Inventory};

    fn inventory(revision: &str, time: &str) -> Inventory {
        let mut inv = Inventory::new(BundleInfo::default());
        inv.sync.revision = Some(revision.into());
        inv.sync.time = Some(time.into());
        inv
    }

    #[test]
    fn the_base_is_the_commit_of_the_latest_recorded_sync() {
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        let mut loaded = Loaded::default();
        loaded
            .inventories
            .insert("one".into(), inventory(&a, "2026-01-01T00:00:00Z"));
        loaded
            .inventories
            .insert("two".into(), inventory(&b, "2026-01-02T00:00:00Z"));
        loaded
            .inventories
            .insert("new".into(), Inventory::new(BundleInfo::default()));
        let base = base_of(&loaded).unwrap();
        assert_eq!(base.revision, Revision::parse(&b).unwrap());
        assert_eq!(base.time, Some(1_767_312_000));
        assert_eq!(base_of(&Loaded::default()), None);
    }

    #[test]
    fn a_settled_commit_becomes_the_base_with_its_own_time_when_known() {
        let (a, b) = (
            Revision::parse(&"a".repeat(40)).unwrap(),
            Revision::parse(&"b".repeat(40)).unwrap(),
        );
        let mut guard = Guard {
            pending: Some(Base {
                revision: a,
                time: Some(7),
            }),
            ..Guard::default()
        };
        guard.settle(a);
        assert_eq!(
            guard.base,
            Some(Base {
                revision: a,
                time: Some(7)
            })
        );
        // Accepted without a walk (the first commit ever): the time it was applied bounds its commit time.
        guard.settle(b);
        let base = guard.base.unwrap();
        assert_eq!(base.revision, b);
        assert!(base.time.unwrap() > 1_700_000_000);
        assert_eq!(guard.pending, None);
    }
}
