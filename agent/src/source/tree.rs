//! Reading the files below one directory of a commit straight from the object database (no work tree).

use super::error::{Error, Result};
use super::file::{BlobId, SourceFile};
use super::revision::Revision;

/// All regular files below `dir` at `commit`, sorted by path; `None` when `dir` does not exist in that commit.
/// Symlinks and submodules are skipped: they cannot be resolved inside the object database.
pub(super) fn read_dir(
    mut repo: gix::Repository,
    commit: Revision,
    dir: &str,
) -> Result<Option<Vec<SourceFile>>> {
    // Every blob is read once: caches only cost memory here (git's default delta-base cache is 96 MiB).
    repo.object_cache_size(0);
    repo.objects.unset_pack_cache();
    let err = |reason: String| Error::Read {
        commit: commit.to_string(),
        path: dir.to_owned(),
        reason,
    };
    let commit_obj = repo
        .find_commit(commit.object_id())
        .map_err(|e| err(format!("commit not in the repository: {e}")))?;
    let root = commit_obj.tree().map_err(|e| err(e.to_string()))?;
    let dir = dir.trim_matches('/');
    let tree = if dir.is_empty() {
        root
    } else {
        match root.lookup_entry_by_path(dir).map_err(|e| err(e.to_string()))? {
            None => return Ok(None),
            Some(entry) if entry.mode().is_tree() => {
                entry.object().map_err(|e| err(e.to_string()))?.into_tree()
            }
            Some(_) => return Err(err("is a file, not a directory".to_owned())),
        }
    };
    let mut files = Vec::new();
    collect(&repo, tree, String::new(), &mut files).map_err(err)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Some(files))
}

/// Depth-first walk of `tree`, pushing every blob with its path below `prefix`.
fn collect(
    repo: &gix::Repository,
    tree: gix::Tree<'_>,
    prefix: String,
    out: &mut Vec<SourceFile>,
) -> std::result::Result<(), String> {
    let decoded = tree.decode().map_err(|e| e.to_string())?;
    let entries: Vec<_> = decoded
        .entries
        .iter()
        .map(|e| (e.mode, e.filename.to_string(), e.oid.to_owned()))
        .collect();
    for (mode, name, oid) in entries {
        let path = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if mode.is_tree() {
            let sub = repo.find_tree(oid).map_err(|e| format!("{path}: {e}"))?;
            collect(repo, sub, path, out)?;
        } else if mode.is_blob() {
            let blob = repo.find_blob(oid).map_err(|e| format!("{path}: {e}"))?;
            out.push(SourceFile {
                path,
                data: blob.detach().data,
                blob: BlobId::from_git(oid),
            });
        }
    }
    Ok(())
}
