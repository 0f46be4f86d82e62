//! Building the status commit: replace `clusters/<cluster>/status` in the control branch's tip tree with this
//! cluster's rendered files, leaving every other path (other clusters' status, the resources) untouched.
//!
//! Data enters as the tip commit (fetched into the cache repository) and the files to write; it leaves as a new
//! commit plus the exact list of objects the remote lacks (for the push pack), or `None` when the tip already
//! holds these exact files — tree ids are content hashes, so equal status means no commit.

use std::collections::{BTreeMap, BTreeSet};

use gix::ObjectId;
use gix::objs::tree::{Entry, EntryKind, EntryMode};

/// Errors building a commit (object database trouble).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the status commit: {0}")]
pub struct Error(String);

impl Error {
    /// A bounded label for metrics: every commit failure is object database trouble.
    pub fn metric_label(&self) -> &'static str {
        "commit"
    }
}

fn err(e: impl std::fmt::Display) -> Error {
    Error(e.to_string())
}

/// A commit ready to push.
#[derive(Debug, Clone)]
pub struct Built {
    /// The new commit.
    pub commit: ObjectId,
    /// Objects the remote does not have yet: the commit, new trees, new blobs.
    pub objects: Vec<ObjectId>,
}

/// Who commits.
#[derive(Clone, Debug)]
pub struct Author {
    /// `--author-name`.
    pub name: String,
    /// `--author-email`.
    pub email: String,
    /// `--signing-key-file`: every commit is signed with it ([`crate::sign`]).
    pub signer: Option<std::sync::Arc<crate::sign::Signer>>,
}

/// A nested directory being written.
#[derive(Default)]
struct Dir {
    /// Blobs directly in this directory, by name.
    files: BTreeMap<String, ObjectId>,
    /// Subdirectories, by name.
    dirs: BTreeMap<String, Dir>,
}

/// Build a commit on `parent` whose `root` directory (e.g. `clusters/c/status`) holds exactly `files` (paths
/// relative to `root`). Returns `None` when the parent already has exactly that content there.
pub fn build(
    repo: &gix::Repository,
    parent: Option<ObjectId>,
    root: &str,
    files: &BTreeMap<String, Vec<u8>>,
    message: &str,
    author: &Author,
) -> Result<Option<Built>, Error> {
    let tree = write_tree(repo, files)?;
    let replace = BTreeMap::from([(root.to_owned(), tree)]);
    compose(repo, parent, &replace, &BTreeSet::new(), message, author)
}

/// Write `files` (relative paths) as a tree; `None` when there are none (the directory is absent).
pub fn write_tree(
    repo: &gix::Repository,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<Option<ObjectId>, Error> {
    if files.is_empty() {
        return Ok(None);
    }
    let mut dir = Dir::default();
    for (path, bytes) in files {
        let blob = repo.write_blob(bytes).map_err(err)?.detach();
        let mut parts: Vec<&str> = path.split('/').collect();
        let name = parts.pop().unwrap_or_default();
        let mut d = &mut dir;
        for p in parts {
            d = d.dirs.entry(p.to_owned()).or_default();
        }
        d.files.insert(name.to_owned(), blob);
    }
    write_dir(repo, &dir).map(Some)
}

/// Build a commit on `parent` where each path of `replace` holds the given tree (`None`: the path is removed).
/// Returns `None` when every path already holds its tree. The objects listed for the push are the commit and
/// everything new below it, except the trees in `remote_has` (and what they contain).
pub fn compose(
    repo: &gix::Repository,
    parent: Option<ObjectId>,
    replace: &BTreeMap<String, Option<ObjectId>>,
    remote_has: &BTreeSet<ObjectId>,
    message: &str,
    author: &Author,
) -> Result<Option<Built>, Error> {
    let parent_tree = match parent {
        Some(p) => tree_of(repo, p)?,
        None => ObjectId::empty_tree(repo.object_hash()),
    };
    let mut editor = repo.edit_tree(parent_tree).map_err(err)?;
    let mut changed = false;
    for (path, tree) in replace {
        let old = subtree_at(repo, parent_tree, path)?;
        if old == *tree {
            continue;
        }
        changed = true;
        match tree {
            Some(tree) => editor.upsert(path, EntryKind::Tree, *tree).map_err(err)?,
            None => editor.remove(path).map_err(err)?,
        };
    }
    if !changed {
        return Ok(None);
    }
    let tree = editor.write().map_err(err)?.detach();
    let commit = new_commit(repo, tree, parent, message, author)?;
    let mut objects = vec![commit];
    let mut seen = remote_has.clone();
    new_objects(repo, tree, Some(parent_tree), &mut objects, &mut seen)?;
    Ok(Some(Built { commit, objects }))
}

/// A commit of `tree` (`None`: the empty tree) on `parent`, with the objects the remote lacks when it has
/// `parent`: the commit, and the tree's objects that are not in the parent's tree (all of them when the parent
/// is not in `repo`).
pub fn commit_tree(
    repo: &gix::Repository,
    tree: Option<ObjectId>,
    parent: Option<ObjectId>,
    message: &str,
    author: &Author,
) -> Result<Built, Error> {
    let tree = match tree {
        Some(t) => t,
        None => repo.write_object(gix::objs::Tree::empty()).map_err(err)?.detach(),
    };
    let parent_tree = parent
        .filter(|p| repo.has_object(p))
        .map(|p| tree_of(repo, p))
        .transpose()?;
    let commit = new_commit(repo, tree, parent, message, author)?;
    let mut objects = vec![commit];
    new_objects(repo, tree, parent_tree, &mut objects, &mut BTreeSet::new())?;
    Ok(Built { commit, objects })
}

fn new_commit(
    repo: &gix::Repository,
    tree: ObjectId,
    parent: Option<ObjectId>,
    message: &str,
    author: &Author,
) -> Result<ObjectId, Error> {
    let now = gix::date::Time::now_local_or_utc();
    let signature = gix::actor::Signature {
        name: author.name.as_str().into(),
        email: author.email.as_str().into(),
        time: now,
    };
    let commit = gix::objs::Commit {
        tree,
        parents: parent.into_iter().collect(),
        author: signature.clone(),
        committer: signature,
        encoding: None,
        message: message.into(),
        extra_headers: Vec::new(),
    };
    match &author.signer {
        Some(signer) => signer.write_signed(repo, commit).map_err(err),
        None => Ok(repo.write_object(&commit).map_err(err)?.detach()),
    }
}

/// The root tree of `commit`.
pub fn tree_of(repo: &gix::Repository, commit: ObjectId) -> Result<ObjectId, Error> {
    Ok(repo
        .find_commit(commit)
        .map_err(err)?
        .tree_id()
        .map_err(err)?
        .detach())
}

/// When `commit` was made (committer time, seconds since the epoch).
pub fn time_of(repo: &gix::Repository, commit: ObjectId) -> Result<i64, Error> {
    Ok(repo
        .find_commit(commit)
        .map_err(err)?
        .time()
        .map_err(err)?
        .seconds)
}

/// The tree id at `path` in `commit`'s tree, if there is one.
pub fn subtree(repo: &gix::Repository, commit: ObjectId, path: &str) -> Result<Option<ObjectId>, Error> {
    subtree_at(repo, tree_of(repo, commit)?, path)
}

/// The bytes of the file at `path` in `commit`, if it exists.
pub fn read_file(repo: &gix::Repository, commit: ObjectId, path: &str) -> Option<Vec<u8>> {
    let tree = repo.find_commit(commit).ok()?.tree().ok()?;
    let entry = tree.lookup_entry_by_path(path).ok()??;
    if !entry.mode().is_blob() {
        return None;
    }
    Some(entry.object().ok()?.data.clone())
}

/// Write a directory's trees bottom-up; returns its tree id.
fn write_dir(repo: &gix::Repository, dir: &Dir) -> Result<ObjectId, Error> {
    let mut entries = Vec::new();
    for (name, sub) in &dir.dirs {
        entries.push(Entry {
            mode: EntryMode::from(EntryKind::Tree),
            filename: name.as_str().into(),
            oid: write_dir(repo, sub)?,
        });
    }
    for (name, blob) in &dir.files {
        entries.push(Entry {
            mode: EntryMode::from(EntryKind::Blob),
            filename: name.as_str().into(),
            oid: *blob,
        });
    }
    entries.sort();
    Ok(repo
        .write_object(gix::objs::Tree { entries })
        .map_err(err)?
        .detach())
}

/// The id of the tree at `path` inside `tree`, if it exists.
fn subtree_at(repo: &gix::Repository, tree: ObjectId, path: &str) -> Result<Option<ObjectId>, Error> {
    let tree = repo.find_tree(tree).map_err(err)?;
    Ok(tree
        .lookup_entry_by_path(path)
        .map_err(err)?
        .filter(|e| e.mode().is_tree())
        .map(|e| e.object_id()))
}

/// Objects reachable from `new` that are not reachable from `old` at the same path.
fn new_objects(
    repo: &gix::Repository,
    new: ObjectId,
    old: Option<ObjectId>,
    out: &mut Vec<ObjectId>,
    seen: &mut BTreeSet<ObjectId>,
) -> Result<(), Error> {
    if old == Some(new) || !seen.insert(new) {
        return Ok(());
    }
    out.push(new);
    let entries = |id: ObjectId| -> Result<BTreeMap<String, (bool, ObjectId)>, Error> {
        let tree = repo.find_tree(id).map_err(err)?;
        let decoded = tree.decode().map_err(err)?;
        Ok(decoded
            .entries
            .iter()
            .map(|e| (e.filename.to_string(), (e.mode.is_tree(), e.oid.to_owned())))
            .collect())
    };
    let old_entries = match old {
        Some(o) if repo.has_object(o) => entries(o)?,
        _ => BTreeMap::new(),
    };
    for (name, (is_tree, id)) in entries(new)? {
        let before = old_entries.get(&name);
        if before.map(|(_, oid)| *oid) == Some(id) {
            continue;
        }
        if is_tree {
            let old_sub = before.filter(|(t, _)| *t).map(|(_, oid)| *oid);
            new_objects(repo, id, old_sub, out, seen)?;
        } else if seen.insert(id) {
            out.push(id);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn author() -> Author {
        Author {
            name: "Outpost".into(),
            email: "outpost@example.invalid".into(),
            signer: None,
        }
    }

    fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec()))
            .collect()
    }

    fn read(repo: &gix::Repository, commit: ObjectId, path: &str) -> Option<String> {
        let tree = repo.find_commit(commit).ok()?.tree().ok()?;
        let entry = tree.lookup_entry_by_path(path).ok()??;
        Some(String::from_utf8_lossy(&entry.object().ok()?.data).into_owned())
    }

    #[test]
    fn only_our_status_directory_changes_and_unchanged_status_makes_no_commit() {
        let dir = std::env::temp_dir().join(format!("outpost-commit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let repo = gix::init_bare(&dir).unwrap();
        // Another cluster's status and some resources exist on the branch.
        let first = build(
            &repo,
            None,
            "clusters/other/status",
            &files(&[("x/x-status.yaml", "other")]),
            "other",
            &author(),
        )
        .unwrap()
        .unwrap();
        let second = build(
            &repo,
            Some(first.commit),
            "clusters/c1/status",
            &files(&[("a/a-status.yaml", "A"), ("100/app/web/100-web-status.yaml", "W")]),
            "ours",
            &author(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            read(&repo, second.commit, "clusters/other/status/x/x-status.yaml").as_deref(),
            Some("other")
        );
        assert_eq!(
            read(&repo, second.commit, "clusters/c1/status/a/a-status.yaml").as_deref(),
            Some("A")
        );
        // The pack needs the commit, the changed trees (root, clusters, c1, status, a, 100, app, web) and 2 blobs,
        // not the other cluster's objects.
        assert_eq!(second.objects[0], second.commit);
        assert_eq!(second.objects.len(), 1 + 8 + 2, "{:?}", second.objects);
        // Same files again: nothing to commit.
        let again = build(
            &repo,
            Some(second.commit),
            "clusters/c1/status",
            &files(&[("100/app/web/100-web-status.yaml", "W"), ("a/a-status.yaml", "A")]),
            "again",
            &author(),
        )
        .unwrap();
        assert!(again.is_none());
        // A bundle leaves: its file goes, the rest stays.
        let third = build(
            &repo,
            Some(second.commit),
            "clusters/c1/status",
            &files(&[("a/a-status.yaml", "A")]),
            "drop",
            &author(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            read(
                &repo,
                third.commit,
                "clusters/c1/status/100/app/web/100-web-status.yaml"
            ),
            None
        );
        assert_eq!(
            read(&repo, third.commit, "clusters/c1/status/a/a-status.yaml").as_deref(),
            Some("A")
        );
        // Everything leaves: the directory goes.
        let fourth = build(
            &repo,
            Some(third.commit),
            "clusters/c1/status",
            &BTreeMap::new(),
            "empty",
            &author(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            read(&repo, fourth.commit, "clusters/c1/status/a/a-status.yaml"),
            None
        );
        assert_eq!(
            read(&repo, fourth.commit, "clusters/other/status/x/x-status.yaml").as_deref(),
            Some("other")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_carried_directory_lands_without_resending_its_objects() {
        let dir = std::env::temp_dir().join(format!("outpost-compose-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let repo = gix::init_bare(&dir).unwrap();
        let base = build(&repo, None, "README", &BTreeMap::new(), "init", &author()).unwrap();
        assert!(base.is_none(), "nothing to commit on an empty base");
        let base = build(
            &repo,
            None,
            "clusters/a/status",
            &files(&[("x/x-status.yaml", "old")]),
            "a",
            &author(),
        )
        .unwrap()
        .unwrap();
        // Another writer published its directory on its status ref: the remote has that tree already.
        let theirs = write_tree(&repo, &files(&[("y/y-status.yaml", "B")]))
            .unwrap()
            .unwrap();
        let published = commit_tree(&repo, Some(theirs), None, "b", &author()).unwrap();
        assert_eq!(published.objects.len(), 1 + 2 + 1, "commit, two trees, one blob");
        let ours = write_tree(&repo, &files(&[("x/x-status.yaml", "new")])).unwrap();
        let replace = BTreeMap::from([
            ("clusters/a/status".to_owned(), ours),
            ("clusters/b/status".to_owned(), Some(theirs)),
        ]);
        let remote_has = BTreeSet::from([theirs]);
        let built = compose(&repo, Some(base.commit), &replace, &remote_has, "both", &author())
            .unwrap()
            .unwrap();
        assert_eq!(
            read(&repo, built.commit, "clusters/b/status/y/y-status.yaml").as_deref(),
            Some("B")
        );
        assert_eq!(
            read(&repo, built.commit, "clusters/a/status/x/x-status.yaml").as_deref(),
            Some("new")
        );
        // The commit; trees root, clusters, a, a/status, a/status/x and b (new, holding the carried tree); the
        // new blob. Nothing of b's status directory itself.
        assert_eq!(built.objects.len(), 1 + 6 + 1, "{:?}", built.objects);
        assert!(!built.objects.contains(&theirs));
        // Removing a directory through a carried empty status.
        let removed = compose(
            &repo,
            Some(built.commit),
            &BTreeMap::from([("clusters/b/status".to_owned(), None)]),
            &BTreeSet::new(),
            "gone",
            &author(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            read(&repo, removed.commit, "clusters/b/status/y/y-status.yaml"),
            None
        );
        // Already there: no commit.
        let same = BTreeMap::from([("clusters/b/status".to_owned(), Some(theirs))]);
        assert!(
            compose(&repo, Some(built.commit), &same, &remote_has, "same", &author())
                .unwrap()
                .is_none()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
