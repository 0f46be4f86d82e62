//! Reading the commits between the last applied commit and a new one.
//!
//! An agent does not see every commit: it may have been down, or backing off. When a new commit would delete
//! everything, the agent looks at the commits it skipped to learn whether the deletion was announced (EMCO's
//! tracker-only step, see `reconcile::history`). Network caches hold shallow history (depth 1), so the fetch
//! is deepened first, as far as a bound; local repositories have their whole history in place.

use std::collections::{BTreeSet, VecDeque};

use super::revision::Revision;

/// Commits reachable from `tip`, newest first, walking parents until `base` (included) or `max` commits.
/// Returns `None` when `base` was not reached: it is further back than `max`, or beyond a shallow boundary.
pub(super) fn walk(
    repo: &gix::Repository,
    tip: Revision,
    base: Revision,
    max: usize,
) -> Option<Vec<Revision>> {
    let (tip, base) = (tip.object_id(), base.object_id());
    let mut seen = BTreeSet::from([tip]);
    let mut queue = VecDeque::from([tip]);
    let mut out = Vec::new();
    let mut found = false;
    while let Some(id) = queue.pop_front() {
        if out.len() >= max {
            break;
        }
        out.push(Revision::from(id));
        if id == base {
            found = true;
            continue; // nothing older matters
        }
        // A commit past the shallow boundary is not in the cache: that branch of the walk ends here.
        let Ok(commit) = repo.find_commit(id) else {
            out.pop();
            continue;
        };
        for parent in commit.parent_ids() {
            let parent = parent.detach();
            if repo.has_object(parent) && seen.insert(parent) {
                queue.push_back(parent);
            }
        }
    }
    found.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::test_git::git;

    #[test]
    fn the_walk_stops_at_the_base_and_reports_a_base_it_cannot_reach() {
        let path = std::env::temp_dir().join(format!("outpost-history-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        let dir = Dir(path);
        git(dir.path(), &["init", "-q", "-b", "main"]);
        let mut ids = Vec::new();
        for i in 0..5 {
            git(
                dir.path(),
                &["commit", "-q", "--allow-empty", "-m", &format!("c{i}")],
            );
            ids.push(Revision::parse(&git(dir.path(), &["rev-parse", "HEAD"])).unwrap());
        }
        let repo = gix::open(dir.path()).unwrap();
        let walked = walk(&repo, ids[4], ids[1], 100).unwrap();
        assert_eq!(walked, vec![ids[4], ids[3], ids[2], ids[1]]);
        // Too far back for the bound.
        assert_eq!(walk(&repo, ids[4], ids[0], 3), None);
        // Not an ancestor at all (history rewritten).
        let stranger = Revision::parse("0123456789abcdef0123456789abcdef01234567").unwrap();
        assert_eq!(walk(&repo, ids[4], stranger, 100), None);
    }

    /// Removed when dropped.
    struct Dir(std::path::PathBuf);
    impl Dir {
        fn path(&self) -> &std::path::Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
