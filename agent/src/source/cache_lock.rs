//! One writer at a time per cache repository, and no lock file outliving its writer.
//!
//! Within the process, a flag per cache directory keeps a fetch abandoned at its deadline (still running on
//! the blocking pool) from racing the next one. Across processes (the daemon and an `outpost-agent plan`
//! run beside it with the same `--cache-dir`), an advisory lock on a file next to the repository does the
//! same; the kernel drops it when its holder dies. Holding both, any `*.lock` file gix left in the repository
//! belongs to a writer that no longer exists (an agent killed in the middle of a fetch), and is removed: gix
//! would otherwise refuse every later fetch ("'shallow' file could not be locked") until someone deleted it
//! by hand.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often a waiter looks again.
const RETRY: Duration = Duration::from_millis(20);

/// The lock of one cache repository.
pub struct CacheLock;

impl CacheLock {
    /// Wait for the lock of the repository at `path`, giving up (returning `None`) once `interrupt` is raised;
    /// once held, remove lock files earlier writers left behind.
    pub fn acquire(path: &Path, interrupt: &AtomicBool) -> Option<CacheGuard> {
        let busy = in_process_flag(path);
        while busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            if interrupt.load(Ordering::Relaxed) {
                return None;
            }
            std::thread::sleep(RETRY);
        }
        let mut guard = CacheGuard { busy, file: None };
        // Without a lock file (a read-only directory, a file system without locks) the in-process flag is all
        // there is, and nothing is removed.
        let Some(file) = open_lock_file(path) else {
            return Some(guard);
        };
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if !interrupt.load(Ordering::Relaxed) => {
                    std::thread::sleep(RETRY)
                }
                Err(TryLockError::WouldBlock) => return None,
                Err(TryLockError::Error(_)) => return Some(guard),
            }
        }
        guard.file = Some(file);
        remove_stale_locks(path);
        Some(guard)
    }
}

/// Holds a cache's lock until dropped.
pub struct CacheGuard {
    busy: Arc<AtomicBool>,
    /// Its advisory lock is released when the file is closed.
    file: Option<File>,
}

impl Drop for CacheGuard {
    fn drop(&mut self) {
        self.file.take();
        self.busy.store(false, Ordering::Release);
    }
}

fn in_process_flag(path: &Path) -> Arc<AtomicBool> {
    static FLAGS: Mutex<Option<HashMap<PathBuf, Arc<AtomicBool>>>> = Mutex::new(None);
    let mut flags = FLAGS.lock().unwrap_or_else(|e| e.into_inner());
    flags
        .get_or_insert_with(HashMap::new)
        .entry(path.to_owned())
        .or_default()
        .clone()
}

/// `<repo>.outpost-lock`, beside the repository (so rebuilding the repository keeps it).
fn open_lock_file(repo: &Path) -> Option<File> {
    if let Some(parent) = repo.parent() {
        std::fs::create_dir_all(parent).ok()?;
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(repo.with_extension("outpost-lock"))
        .ok()
}

/// Remove every `*.lock` file under `repo` (an iterative walk); their writers are gone.
fn remove_stale_locks(repo: &Path) {
    let mut dirs = vec![repo.to_owned()];
    let mut removed = Vec::new();
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => dirs.push(path),
                Ok(_)
                    if path.extension().is_some_and(|e| e == "lock")
                        && std::fs::remove_file(&path).is_ok() =>
                {
                    removed.push(path);
                }
                _ => {}
            }
        }
    }
    if !removed.is_empty() {
        tracing::warn!(files = ?removed, "Removed lock files a writer killed mid-way left in the Git cache");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_cache_is_waited_for_until_the_waiter_is_interrupted() {
        let dir = std::env::temp_dir().join(format!("outpost-cache-lock-{}", std::process::id()));
        let path = dir.join("repo.git");
        let never = AtomicBool::new(false);
        let held = CacheLock::acquire(&path, &never).expect("free lock");
        let raised = AtomicBool::new(true);
        assert!(CacheLock::acquire(&path, &raised).is_none());
        drop(held);
        assert!(CacheLock::acquire(&path, &never).is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn lock_files_left_by_a_dead_writer_are_removed_once_the_lock_is_held() {
        let dir = std::env::temp_dir().join(format!("outpost-cache-stale-{}", std::process::id()));
        let repo = dir.join("repo.git");
        std::fs::create_dir_all(repo.join("refs/heads")).unwrap();
        for file in ["shallow.lock", "refs/heads/main.lock", "HEAD"] {
            std::fs::write(repo.join(file), "x").unwrap();
        }
        let guard = CacheLock::acquire(&repo, &AtomicBool::new(false)).expect("lock");
        assert!(!repo.join("shallow.lock").exists());
        assert!(!repo.join("refs/heads/main.lock").exists());
        assert!(repo.join("HEAD").exists(), "only lock files go");
        drop(guard);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
