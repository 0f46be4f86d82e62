//! The status refs listed with a branch tip ([`crate::carry`]): what each holds, read from the cache, and the
//! ref commands that remove those a landing settled (with the landing, or on their own when an earlier
//! landing could not remove them).
//!
//! Data enters as the refs [`crate::target::fetch_tip`] listed (cluster → commit) and leaves as
//! [`carry::Published`] for [`carry::settle`], and as delete commands for [`crate::push`], each compare-and-swap
//! on the commit it was listed with, so a ref republished meanwhile is left for the next round.

use std::collections::BTreeMap;

use std::sync::atomic::AtomicBool;

use gix::ObjectId;
use tracing::debug;

use crate::outcome::Error;
use crate::push::{self, PushRequest, RefCommand};
use crate::{carry, commit, paths};

/// The published statuses (tree and time of each status ref's commit).
pub fn statuses(
    repo: &gix::Repository,
    refs: &BTreeMap<String, ObjectId>,
) -> Result<Vec<carry::Published>, Error> {
    let empty = ObjectId::empty_tree(repo.object_hash());
    let mut out = Vec::new();
    for (cluster, commit) in refs {
        let tree = commit::tree_of(repo, *commit)?;
        out.push(carry::Published {
            cluster: cluster.clone(),
            tree: (tree != empty).then_some(tree),
            time: commit::time_of(repo, *commit)?,
        });
    }
    Ok(out)
}

/// Settle the statuses `listed` with tip `base` for a landing of `ours` by `cluster` ([`carry::settle`]).
pub fn settle(
    repo: &gix::Repository,
    base: ObjectId,
    cluster: &str,
    listed: &BTreeMap<String, ObjectId>,
    ours: Option<ObjectId>,
) -> Result<carry::Settlement, Error> {
    let on_branch = |c: &str| commit::subtree(repo, base, &paths::status_root(c)).ok().flatten();
    let now = jiff::Timestamp::now().as_second();
    Ok(carry::settle(
        cluster,
        &statuses(repo, listed)?,
        ours,
        on_branch,
        now,
    ))
}

/// Remove the status refs `settled` would remove that need no commit (all but those to carry): what an earlier
/// landing settled but could not remove (no atomic push, and the removal after it failed). Best effort: a
/// failure is logged and the next landing tries again.
pub fn remove_leftovers(
    request: &PushRequest<'_>,
    settled: &carry::Settlement,
    listed: &BTreeMap<String, ObjectId>,
    interrupt: &AtomicBool,
) {
    let done: Vec<String> = settled
        .remove
        .iter()
        .filter(|c| !settled.carry.contains_key(*c))
        .cloned()
        .collect();
    let removals = removals(request.branch, &done, listed);
    if removals.is_empty() {
        return;
    }
    match push::remove(request, &removals, interrupt) {
        Ok(removed) => debug!(
            removed,
            left = removals.len() - removed,
            "Removed status refs an earlier landing left"
        ),
        Err(e) => debug!(error = %e, "Status refs an earlier landing left stay for the next landing"),
    }
}

/// Delete commands for the status refs of `clusters` on `branch`, each expecting the commit it was `listed`
/// with (a cluster not listed, or whose ref name is invalid, has nothing to remove).
pub fn removals(branch: &str, clusters: &[String], listed: &BTreeMap<String, ObjectId>) -> Vec<RefCommand> {
    clusters
        .iter()
        .filter_map(|cluster| {
            Some(RefCommand {
                refname: carry::own_ref(branch, cluster)?,
                old: Some(*listed.get(cluster)?),
                new: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removals_expect_the_listed_commit_and_skip_what_was_not_listed() {
        let id = ObjectId::from_bytes_or_panic(&[7; 20]);
        let listed = BTreeMap::from([("a".to_owned(), id), ("bad..name".to_owned(), id)]);
        let clusters = ["a".to_owned(), "unlisted".to_owned(), "bad..name".to_owned()];
        assert_eq!(
            removals("main", &clusters, &listed),
            vec![RefCommand {
                refname: "refs/outpost/main.status/a".into(),
                old: Some(id),
                new: None,
            }]
        );
    }
}
