//! Carrying: how the status of many clusters lands on one branch without each writer waiting its turn.
//!
//! A branch moves one commit at a time, so fifty writers pushing their own status each would need fifty
//! rounds of fetch-and-push, most of them lost races. Instead a writer that finds the branch contended publishes
//! its status directory as a small commit on its own ref, `refs/outpost/<branch>.status/<cluster>` (only that
//! writer creates or moves it, so that update never races). Whoever lands a commit on the branch writes every
//! recently published status that differs from the branch into it, and in the same atomic push removes the
//! status refs it settled (carried, already on the branch, its own). A waiting writer only lists refs: its ref
//! gone means its status is on the branch. The writer whose cluster name comes first among those waiting lands
//! for everyone; the others take over only after a while ([`crate::land`]).
//!
//! Never going backwards: a writer reads the branch before the status refs (git lists refs in name order, and
//! `refs/heads/` sorts before `refs/outpost/`), and a status ref is published before any branch commit holding
//! it, so a status ref is never older than that cluster's directory on the branch tip it was listed with; the
//! branch update is compare-and-swap on that tip, and a removal on the ref's listed commit (a ref republished
//! meanwhile is left for the next round). Only recently published refs ([`WINDOW_SECONDS`]) are carried, so a
//! cluster whose writer is gone is not brought back after someone removes its directory; such a ref is never
//! removed by others either (a writer whose clock is off must not be told it was carried when it was not).
//!
//! Without atomic pushes (a receive-pack that does not advertise `atomic`) the branch update and the removals
//! cannot land together, and either may fail alone. Two rules keep the same guarantees: the removals go only
//! after the branch moved ([`crate::push::push_with`]), so a removed ref still means carried; and a writer
//! whose own ref holds another status than the one it is about to land brings the ref up to that status first
//! ([`Settlement::republish_own`]), so a ref left behind by a failed or missing removal is never older than its
//! cluster's directory on the branch and can never be carried over a newer status. Refs left behind hold what
//! the branch holds, so the next landing, whoever makes it, finds them settled and removes them again.

use std::collections::BTreeMap;

use gix::ObjectId;

/// How recent a published status must be to be carried by others.
pub const WINDOW_SECONDS: i64 = 600;

/// Local name the status refs are fetched to in the cache.
const LOCAL_PREFIX: &str = "refs/outpost/carried/";

/// Prefix of the status refs of writers pushing to `branch`.
fn prefix(branch: &str) -> String {
    format!("refs/outpost/{branch}.status/")
}

/// The status ref of `cluster` for `branch`, when that is a valid ref name (otherwise this writer neither
/// publishes nor carries).
pub fn own_ref(branch: &str, cluster: &str) -> Option<String> {
    let name = format!("{}{cluster}", prefix(branch));
    (!cluster.contains('/') && gix::refs::FullName::try_from(name.as_str()).is_ok()).then_some(name)
}

/// The refspec fetching every status ref of `branch`.
pub fn refspec(branch: &str) -> String {
    format!("+{}*:{LOCAL_PREFIX}*", prefix(branch))
}

/// The cluster a listed ref belongs to, when it is a status ref of `branch`.
pub fn cluster_of<'a>(branch: &str, refname: &'a str) -> Option<&'a str> {
    let cluster = refname.strip_prefix(&prefix(branch))?;
    (!cluster.is_empty() && !cluster.contains('/')).then_some(cluster)
}

/// A published status, as listed with the branch tip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// The cluster.
    pub cluster: String,
    /// Its status directory (`None`: empty, the directory is to be absent).
    pub tree: Option<ObjectId>,
    /// When it was published (committer time of the ref's commit, seconds since the epoch).
    pub time: i64,
}

/// Which other clusters' directories to carry into our commit: cluster → tree, for every recent published
/// status that differs from what `on_branch` (cluster → its directory on the tip) holds. Our own cluster is left
/// out.
pub fn select(
    own: &str,
    published: &[Published],
    on_branch: impl Fn(&str) -> Option<ObjectId>,
    now: i64,
) -> BTreeMap<String, Option<ObjectId>> {
    published
        .iter()
        .filter(|p| p.cluster != own && now - p.time <= WINDOW_SECONDS)
        .filter(|p| on_branch(&p.cluster) != p.tree)
        .map(|p| (p.cluster.clone(), p.tree))
        .collect()
}

/// What one landing does with the statuses published for the branch it lands on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settlement {
    /// Other clusters' directories written into the landing commit ([`select`]).
    pub carry: BTreeMap<String, Option<ObjectId>>,
    /// Clusters whose status refs the landing removes: ours, those carried, those the branch already holds.
    pub remove: Vec<String>,
    /// Our own ref holds a status other than the one we land: publish ours on it before the branch moves.
    pub republish_own: bool,
}

/// Settle the `published` statuses for a landing of `ours` (our directory's tree) by cluster `own`; see the
/// module text.
pub fn settle(
    own: &str,
    published: &[Published],
    ours: Option<ObjectId>,
    on_branch: impl Fn(&str) -> Option<ObjectId>,
    now: i64,
) -> Settlement {
    let carry = select(own, published, &on_branch, now);
    let remove = published
        .iter()
        .filter(|p| p.cluster == own || carry.contains_key(&p.cluster) || on_branch(&p.cluster) == p.tree)
        .map(|p| p.cluster.clone())
        .collect();
    let republish_own = published.iter().any(|p| p.cluster == own && p.tree != ours);
    Settlement {
        carry,
        remove,
        republish_own,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ObjectId {
        ObjectId::from_bytes_or_panic(&[n; 20])
    }

    #[test]
    fn status_refs_are_per_branch_and_cluster() {
        assert_eq!(
            own_ref("main", "p+c").as_deref(),
            Some("refs/outpost/main.status/p+c")
        );
        assert_eq!(own_ref("main", "a/b"), None);
        assert_eq!(own_ref("main", "bad..name"), None);
        assert_eq!(
            refspec("main"),
            "+refs/outpost/main.status/*:refs/outpost/carried/*"
        );
        assert_eq!(
            cluster_of("main", "refs/outpost/main.status/edge-1"),
            Some("edge-1")
        );
        // Another branch's refs, even one whose name starts like ours, are not ours to carry.
        assert_eq!(cluster_of("main", "refs/outpost/main.status/x.status/c"), None);
        assert_eq!(cluster_of("main", "refs/outpost/other.status/edge-1"), None);
        assert_eq!(cluster_of("main", "refs/heads/main"), None);
    }

    #[test]
    fn only_recent_differing_statuses_of_others_are_carried() {
        let now = 1_000_000;
        let published = vec![
            Published {
                cluster: "own".into(),
                tree: Some(id(1)),
                time: now,
            },
            Published {
                cluster: "pending".into(),
                tree: Some(id(2)),
                time: now - 5,
            },
            Published {
                cluster: "landed".into(),
                tree: Some(id(3)),
                time: now - 5,
            },
            Published {
                cluster: "gone".into(),
                tree: Some(id(4)),
                time: now - WINDOW_SECONDS - 1,
            },
            Published {
                cluster: "emptied".into(),
                tree: None,
                time: now,
            },
        ];
        let on_branch = |c: &str| match c {
            "pending" => Some(id(9)),
            "landed" => Some(id(3)),
            "emptied" => Some(id(5)),
            _ => None,
        };
        let chosen = select("own", &published, on_branch, now);
        assert_eq!(
            chosen,
            BTreeMap::from([("emptied".to_owned(), None), ("pending".to_owned(), Some(id(2))),])
        );
    }

    fn published(cluster: &str, tree: Option<ObjectId>, time: i64) -> Published {
        Published {
            cluster: cluster.into(),
            tree,
            time,
        }
    }

    #[test]
    fn a_landing_removes_ours_what_it_carries_and_what_the_branch_already_holds() {
        let now = 1_000_000;
        let listed = vec![
            published("own", Some(id(1)), now),
            published("pending", Some(id(2)), now),
            // Left by a landing whose removal did not go through: the branch already holds it.
            published("left", Some(id(3)), now - 5),
            // Too old to carry, and not on the branch: its writer may be gone; never removed by others.
            published("gone", Some(id(4)), now - WINDOW_SECONDS - 1),
        ];
        let on_branch = |c: &str| (c == "left").then_some(id(3));
        let settled = settle("own", &listed, Some(id(1)), on_branch, now);
        assert_eq!(
            settled.carry,
            BTreeMap::from([("pending".to_owned(), Some(id(2)))])
        );
        assert_eq!(settled.remove, ["own", "pending", "left"]);
        assert!(!settled.republish_own, "our ref already holds what we land");
    }

    #[test]
    fn our_ref_holding_another_status_is_brought_up_to_ours_before_the_branch_moves() {
        let now = 1_000_000;
        // An older status of ours left on our ref (its removal was lost), and we now land a newer one: the ref
        // must hold the newer one before the branch does, or another writer would carry it back.
        let listed = vec![published("own", Some(id(1)), now - 30)];
        let settled = settle("own", &listed, Some(id(2)), |_| Some(id(1)), now);
        assert!(settled.republish_own);
        assert_eq!(settled.remove, ["own"]);
        assert!(settled.carry.is_empty(), "our own ref is never carried");
        // Our status now empty (every bundle left): the ref must say so too.
        let settled = settle("own", &listed, None, |_| Some(id(1)), now);
        assert!(settled.republish_own);
        // No ref of ours listed: nothing to bring up.
        let settled = settle("own", &[], Some(id(2)), |_| None, now);
        assert_eq!(settled, Settlement::default());
    }

    #[test]
    fn a_ref_left_holding_what_the_branch_holds_is_never_carried_even_within_the_window() {
        let now = 1_000_000;
        // Another writer's ref that a lost removal left behind, already republished up to its newest status
        // (what the branch holds): settled, so removed, and nothing is written for it.
        let listed = vec![published("other", Some(id(5)), now)];
        let settled = settle("own", &listed, Some(id(1)), |_| Some(id(5)), now);
        assert!(settled.carry.is_empty());
        assert_eq!(settled.remove, ["other"]);
    }
}
