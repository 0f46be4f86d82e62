//! Reading the files below one directory of a commit straight from the object database (no work tree), within
//! [`Limits`].
//!
//! Two passes: the walk lists every file with its size from the object headers (no blob is loaded), iteratively
//! so that a tree thousands of levels deep costs heap rather than stack, and checks the caps as it goes; only
//! when the whole listing is within them are the blobs read.

use super::error::{Error, Result};
use super::file::{BlobId, SourceFile};
use super::limits::{Bytes, Limit, Limits};
use super::revision::Revision;

/// All regular files below `dir` at `commit`, sorted by path; `None` when `dir` does not exist in that commit.
/// Symlinks and submodules are skipped: they cannot be resolved inside the object database. Breaking one of
/// `limits` fails with [`Error::Limit`] naming the path, before any file is read.
pub(super) fn read_dir(
    mut repo: gix::Repository,
    commit: Revision,
    dir: &str,
    limits: &Limits,
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
        root.id
    } else {
        match root.lookup_entry_by_path(dir).map_err(|e| err(e.to_string()))? {
            None => return Ok(None),
            Some(entry) if entry.mode().is_tree() => entry.object_id(),
            Some(_) => return Err(err("is a file, not a directory".to_owned())),
        }
    };
    let listed = list(&repo, tree, dir, limits)?;
    let mut files = Vec::with_capacity(listed.len());
    for (path, oid) in listed {
        let blob = repo.find_blob(oid).map_err(|e| err(format!("{path}: {e}")))?;
        files.push(SourceFile {
            path,
            data: blob.detach().data,
            blob: BlobId::from_git(oid),
        });
    }
    Ok(Some(files))
}

/// A directory still to be listed.
struct Pending {
    /// Its tree.
    tree: gix::ObjectId,
    /// Its path below the directory being read (`""` for that directory itself).
    path: String,
    /// How many directories deep it is below the directory being read.
    depth: u64,
}

/// Every blob below `tree` (the directory `dir`) as (path below `dir`, blob id), sorted by path, checked against
/// `limits` from the object headers alone.
fn list(
    repo: &gix::Repository,
    tree: gix::ObjectId,
    dir: &str,
    limits: &Limits,
) -> Result<Vec<(String, gix::ObjectId)>> {
    let full = |path: &str| match (dir.is_empty(), path.is_empty()) {
        (_, true) => dir.to_owned(),
        (true, false) => path.to_owned(),
        (false, false) => format!("{dir}/{path}"),
    };
    let read_err = |path: &str, e: &dyn std::error::Error| Error::Read {
        commit: String::new(),
        path: full(path),
        reason: e.to_string(),
    };
    let size_of = |oid: gix::ObjectId, path: &str| -> Result<u64> {
        repo.find_header(oid)
            .map(|h| h.size())
            .map_err(|e| read_err(path, &e))
    };
    let mut files = Vec::new();
    let mut total = 0u64;
    let mut stack = vec![Pending {
        tree,
        path: String::new(),
        depth: 0,
    }];
    while let Some(pending) = stack.pop() {
        // A directory's listing is read too: counting it stops a tree of a million entries before it is loaded.
        total += size_of(pending.tree, &pending.path)?;
        limits.check(Limit::TotalBytes, total, &full(&pending.path), |n| {
            format!("{} read so far", Bytes(n))
        })?;
        let object = repo
            .find_tree(pending.tree)
            .map_err(|e| read_err(&pending.path, &e))?;
        let decoded = object.decode().map_err(|e| read_err(&pending.path, &e))?;
        for entry in &decoded.entries {
            let name = entry.filename.to_string();
            let path = if pending.path.is_empty() {
                name
            } else {
                format!("{}/{name}", pending.path)
            };
            let oid = entry.oid.to_owned();
            if entry.mode.is_tree() {
                let depth = pending.depth + 1;
                limits.check(Limit::TreeDepth, depth, &full(&path), |n| {
                    format!("a directory {n} levels deep")
                })?;
                stack.push(Pending {
                    tree: oid,
                    path,
                    depth,
                });
            } else if entry.mode.is_blob() {
                limits.check(Limit::Files, files.len() as u64 + 1, &full(&pending.path), |_| {
                    format!("more than {} files", limits.max_files)
                })?;
                let size = size_of(oid, &path)?;
                limits.check(Limit::BlobBytes, size, &full(&path), |n| {
                    format!("a file of {}", Bytes(n))
                })?;
                total += size;
                limits.check(Limit::TotalBytes, total, &full(&path), |n| {
                    format!("{} read so far", Bytes(n))
                })?;
                files.push((path, oid));
            }
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::test_git::git;
    use std::path::PathBuf;

    /// A scratch repository, removed when dropped.
    struct Scratch(PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A repository with `files` (path, content) committed; returns it and the commit.
    fn repo_with(name: &str, files: &[(&str, &str)]) -> (Scratch, Revision) {
        let dir = std::env::temp_dir().join(format!("outpost-tree-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        git(&dir, &["init", "-q", "-b", "main"]);
        for (path, content) in files {
            let full = dir.join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, content).unwrap();
        }
        git(&dir, &["add", "."]);
        git(&dir, &["commit", "-q", "-m", "one"]);
        let head = Revision::parse(&git(&dir, &["rev-parse", "HEAD"])).unwrap();
        (Scratch(dir), head)
    }

    fn read(dir: &Scratch, commit: Revision, limits: Limits) -> Result<Option<Vec<SourceFile>>> {
        let repo = gix::open_opts(&dir.0, gix::open::Options::isolated()).unwrap();
        read_dir(repo, commit, "clusters/c", &limits)
    }

    fn limit_of(result: Result<Option<Vec<SourceFile>>>) -> (Limit, String) {
        match result {
            Err(Error::Limit(e)) => (e.limit, e.path),
            other => panic!("expected a limit error, got {other:?}"),
        }
    }

    #[test]
    fn files_within_the_caps_are_read_sorted_by_path() {
        let (dir, commit) = repo_with(
            "ok",
            &[
                ("clusters/c/b/x.yaml", "b"),
                ("clusters/c/a.yaml", "a"),
                ("other/z", "z"),
            ],
        );
        let files = read(&dir, commit, Limits::default()).unwrap().unwrap();
        let paths: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a.yaml", "b/x.yaml"]);
        assert_eq!(files[1].data, b"b");
    }

    #[test]
    fn each_cap_names_the_path_where_it_broke() {
        let big = "x".repeat(2000);
        let (dir, commit) = repo_with(
            "caps",
            &[
                ("clusters/c/a.yaml", "a"),
                ("clusters/c/big.yaml", &big),
                ("clusters/c/d1/d2/d3/f.yaml", "f"),
            ],
        );
        let capped = |f: fn(&mut Limits)| {
            let mut limits = Limits::default();
            f(&mut limits);
            limit_of(read(&dir, commit, limits))
        };
        assert_eq!(
            capped(|l| l.max_blob_bytes = 1000),
            (Limit::BlobBytes, "clusters/c/big.yaml".into())
        );
        // The walk lists clusters/c first: the third file is in the deepest directory.
        assert_eq!(
            capped(|l| l.max_files = 2),
            (Limit::Files, "clusters/c/d1/d2/d3".into())
        );
        assert_eq!(
            capped(|l| l.max_tree_depth = 2),
            (Limit::TreeDepth, "clusters/c/d1/d2/d3".into())
        );
        let (limit, _) = capped(|l| l.max_total_bytes = 1500);
        assert_eq!(limit, Limit::TotalBytes);
    }
}
