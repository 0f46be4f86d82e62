//! Does a new commit descend from the last applied one? The source half of freshness (rollback protection,
//! `reconcile::freshness` judges).
//!
//! A mirror that serves an older commit again, or a branch whose history was rewritten, moves the ref to a
//! commit that is not a descendant of the one the agent applied last. Telling that apart from a normal
//! fast-forward means walking parents from the new commit back to the old one. Network caches hold shallow
//! history (depth 1): the walk reads what is cached, and the cache is deepened step by step (8, 64, 512 commits,
//! never past the bound) only while the walk runs into the shallow boundary — a fast-forward by one commit
//! costs no request at all, since the old commit is already cached.

use std::collections::{BTreeSet, VecDeque};

use super::revision::Revision;

/// How a new commit relates to the last applied one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ancestry {
    /// The old commit is `distance` commits behind the new one (0: the same commit).
    Descendant {
        /// Parents walked from the new commit to the old one.
        distance: usize,
    },
    /// The whole history of the new commit was read and the old commit is not in it: the history was
    /// rewritten, or an older commit is served again.
    Diverged,
    /// The old commit is not within the bound (`max` commits) of the new one's history, so descent cannot be
    /// shown either way.
    Beyond,
    /// The source keeps no history (not Git): nothing can be judged.
    Unknown,
}

/// What a source learned about a new commit (`tip`) and the last applied one (`base`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lineage {
    /// How they relate.
    pub ancestry: Ancestry,
    /// Committer time of the new commit (seconds since the epoch), when readable.
    pub tip_time: Option<i64>,
    /// Committer time of the old commit, when it is still in the source (a cache may have lost it).
    pub base_time: Option<i64>,
}

impl Lineage {
    /// A source without history.
    pub fn unknown() -> Self {
        Lineage {
            ancestry: Ancestry::Unknown,
            tip_time: None,
            base_time: None,
        }
    }
}

/// Where one walk ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reach {
    /// The base is this many parents back.
    Found(usize),
    /// Every commit reachable from the tip was read: the base is not among them.
    Exhausted,
    /// The walk reached commits whose parents are not here (a shallow boundary): deepening may tell more.
    Truncated,
    /// The walk reached the bound without finding the base.
    Bounded,
}

/// Walk parents from `tip` (breadth first) until `base`, at most `max` parents back.
pub(super) fn reach(repo: &gix::Repository, tip: Revision, base: Revision, max: usize) -> Reach {
    let (tip, base) = (tip.object_id(), base.object_id());
    let mut seen = BTreeSet::from([tip]);
    let mut queue = VecDeque::from([(tip, 0usize)]);
    let (mut truncated, mut bounded) = (false, false);
    while let Some((id, distance)) = queue.pop_front() {
        if id == base {
            return Reach::Found(distance);
        }
        let Ok(commit) = repo.find_commit(id) else {
            truncated = true;
            continue;
        };
        for parent in commit.parent_ids() {
            let parent = parent.detach();
            if !seen.insert(parent) {
                continue;
            }
            if distance >= max {
                bounded = true;
            } else if repo.has_object(parent) {
                queue.push_back((parent, distance + 1));
            } else {
                truncated = true;
            }
        }
    }
    if truncated {
        Reach::Truncated
    } else if bounded {
        Reach::Bounded
    } else {
        Reach::Exhausted
    }
}

/// Committer time of `id` (seconds since the epoch), if the commit is here.
pub(super) fn commit_time(repo: &gix::Repository, id: Revision) -> Option<i64> {
    Some(repo.find_commit(id.object_id()).ok()?.time().ok()?.seconds)
}

/// The lineage a finished walk shows (`Truncated` is final here: nothing deeper can be had).
pub(super) fn lineage(repo: &gix::Repository, reached: Reach, tip: Revision, base: Revision) -> Lineage {
    let ancestry = match reached {
        Reach::Found(distance) => Ancestry::Descendant { distance },
        Reach::Exhausted => Ancestry::Diverged,
        Reach::Truncated | Reach::Bounded => Ancestry::Beyond,
    };
    Lineage {
        ancestry,
        tip_time: commit_time(repo, tip),
        base_time: commit_time(repo, base),
    }
}

/// The next depth to fetch after `depth` while the walk is truncated, or `None` past the bound: 8, 64, 512…,
/// never more than the `max` parents the walk may read (plus the tip itself).
pub(super) fn next_depth(depth: u32, max: usize) -> Option<u32> {
    let cap = u32::try_from(max.saturating_add(1)).unwrap_or(u32::MAX);
    (depth < cap).then(|| depth.saturating_mul(8).max(8).min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::test_git::git;

    /// A repository with commits `c0..c4` on main and one unrelated root commit `x`.
    fn repo(name: &str) -> (std::path::PathBuf, Vec<Revision>, Revision) {
        let dir = std::env::temp_dir().join(format!("outpost-lineage-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        git(&dir, &["init", "-q", "-b", "main"]);
        let mut ids = Vec::new();
        for i in 0..5 {
            git(&dir, &["commit", "-q", "--allow-empty", "-m", &format!("c{i}")]);
            ids.push(Revision::parse(&git(&dir, &["rev-parse", "HEAD"])).unwrap());
        }
        git(&dir, &["checkout", "-q", "--orphan", "other"]);
        git(&dir, &["commit", "-q", "--allow-empty", "-m", "x"]);
        let stranger = Revision::parse(&git(&dir, &["rev-parse", "HEAD"])).unwrap();
        (dir, ids, stranger)
    }

    #[test]
    fn a_descendant_an_unrelated_commit_and_the_bound_are_told_apart() {
        let (dir, ids, stranger) = repo("reach");
        let repo = gix::open(&dir).unwrap();
        assert_eq!(reach(&repo, ids[4], ids[4], 10), Reach::Found(0));
        assert_eq!(reach(&repo, ids[4], ids[1], 10), Reach::Found(3));
        assert_eq!(reach(&repo, ids[4], ids[1], 3), Reach::Found(3));
        assert_eq!(reach(&repo, ids[4], ids[0], 3), Reach::Bounded);
        // A replayed older commit: the newer one is not in its history.
        assert_eq!(reach(&repo, ids[1], ids[4], 10), Reach::Exhausted);
        assert_eq!(reach(&repo, stranger, ids[4], 10), Reach::Exhausted);
        let lineage = lineage(&repo, Reach::Exhausted, stranger, ids[4]);
        assert_eq!(lineage.ancestry, Ancestry::Diverged);
        assert!(lineage.tip_time.is_some() && lineage.base_time.is_some());
        let gone = Revision::parse("0123456789abcdef0123456789abcdef01234567").unwrap();
        assert_eq!(commit_time(&repo, gone), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_walk_into_missing_parents_is_truncated() {
        let (dir, ids, _) = repo("shallow");
        let shallow = dir.with_extension("clone");
        let _ = std::fs::remove_dir_all(&shallow);
        let url = format!("file://{}", dir.display());
        let status = std::process::Command::new("git")
            .args(["clone", "-q", "--bare", "--depth", "2", "--branch", "main", &url])
            .arg(&shallow)
            .status()
            .unwrap();
        assert!(status.success());
        let repo = gix::open(&shallow).unwrap();
        assert_eq!(reach(&repo, ids[4], ids[3], 10), Reach::Found(1));
        assert_eq!(reach(&repo, ids[4], ids[0], 10), Reach::Truncated);
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&shallow);
    }

    #[test]
    fn deepening_grows_by_steps_and_stops_at_the_bound() {
        assert_eq!(next_depth(1, 500), Some(8));
        assert_eq!(next_depth(8, 500), Some(64));
        assert_eq!(next_depth(64, 500), Some(501));
        assert_eq!(next_depth(501, 500), None);
        assert_eq!(next_depth(1, 5), Some(6));
        assert_eq!(next_depth(6, 5), None);
    }
}
