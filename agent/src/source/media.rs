//! A local repository on removable media (a "sneakernet" site: the hub pushes to a bare repository on a disk,
//! the disk travels, the site plugs it in): whether the path is there at all ([`present`]), a watch that follows
//! the path across unplug and replug ([`MediaWatch`]), and a wait for the media to come back
//! ([`MediaWatch::returned`]).
//!
//! Unplugged media is a state of the site, not a failure: [`super::Local`] reports it as
//! [`super::Error::Unavailable`], the agent keeps what it applied and prunes nothing, and the status writer
//! keeps its latest status until the path returns. Data enters as a path; what leaves is a yes/no and a wake-up.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tracing::warn;

/// How often a missing path is looked for while waiting: one `stat` and one `readdir`, nothing else, so cheap
/// enough to be quick. A mount over the path raises no inotify event in its parent, hence the look.
pub const MEDIA_CHECK: Duration = Duration::from_secs(2);

/// Whether a repository may be at `path`: it names a directory that holds something. A path that does not
/// exist (media unplugged, mount point gone) or an empty directory (the mount point of unmounted media) is
/// absent. Anything else, including a path we may not read, counts as present so that opening it reports the
/// real problem.
pub fn present(path: &Path) -> bool {
    match std::fs::read_dir(path) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
        ),
    }
}

/// Which directory a path names right now: (device, inode), `None` when it is absent.
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    if !present(path) {
        return None;
    }
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// A watch on a local repository that survives the media being swapped: inotify follows the directory it was
/// given, not its name, so once the path names another directory (replugged, remounted, a fresh copy) the
/// watch is made again. Call [`MediaWatch::refresh`] after every round.
pub struct MediaWatch {
    /// The repository path as configured.
    path: PathBuf,
    /// Woken on every change in the watched repository.
    changed: Arc<Notify>,
    /// The live watch; `None` while the path is absent or the platform refused.
    watcher: Option<notify::RecommendedWatcher>,
    /// The directory the watch is on, to notice when the path names another one.
    watched: Option<(u64, u64)>,
}

impl MediaWatch {
    /// Watch `path`, waking `changed` on every change under it.
    pub fn new(path: PathBuf, changed: Arc<Notify>) -> Self {
        let mut watch = MediaWatch {
            path,
            changed,
            watcher: None,
            watched: None,
        };
        watch.refresh();
        watch
    }

    /// Whether the path was there at the last refresh.
    pub fn is_present(&self) -> bool {
        self.watched.is_some()
    }

    /// Watch the directory the path names now, if that is not the one watched.
    pub fn refresh(&mut self) {
        let now = identity(&self.path);
        if now == self.watched {
            // The same directory (or still none): a watch the platform refused is not asked for again.
            return;
        }
        self.watcher = now.and_then(|_| watch(&self.path, self.changed.clone()));
        self.watched = now;
    }

    /// Resolves once the path, absent at the last refresh, is there again; never while it was present (the
    /// watch reports changes then).
    pub async fn returned(&self) {
        if self.is_present() {
            return std::future::pending().await;
        }
        while !present(&self.path) {
            tokio::time::sleep(MEDIA_CHECK).await;
        }
    }
}

/// Watch a local repository with notify; every change under `path` wakes whoever waits on `changed`. `None`
/// (with a warning) when the platform cannot watch it: the caller then polls only. Dropping the watcher stops it.
pub fn watch(path: &Path, changed: Arc<Notify>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut watcher = match notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        // Reading the repository (our own reconcile opens and closes its files) is no change: waking on access
        // events would reconcile again every debounce period, forever.
        if res.is_ok_and(|event| !matches!(event.kind, notify::EventKind::Access(_))) {
            changed.notify_one();
        }
    }) {
        Ok(w) => w,
        Err(e) => {
            warn!(error = %e, "Cannot watch the local repository; falling back to polling");
            return None;
        }
    };
    if let Err(e) = watcher.watch(path, notify::RecursiveMode::Recursive) {
        warn!(error = %e, path = %path.display(), "Cannot watch the local repository; falling back to polling");
        return None;
    }
    Some(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::test_git::scratch;

    #[test]
    fn a_missing_path_or_an_empty_mount_point_is_absent_and_a_repository_present() {
        let scratch = scratch("media", "present");
        let dir = &scratch.0;
        assert!(!present(&dir.join("unplugged")), "missing");
        std::fs::create_dir(dir.join("mnt")).unwrap();
        assert!(!present(&dir.join("mnt")), "an empty mount point");
        std::fs::write(dir.join("mnt/HEAD"), "ref: refs/heads/main\n").unwrap();
        assert!(present(&dir.join("mnt")));
        assert!(!present(&dir.join("mnt/HEAD/below")), "below a file");
    }

    #[tokio::test]
    async fn the_watch_follows_the_path_to_the_replugged_media() {
        let scratch = scratch("media", "replug");
        let dir = &scratch.0;
        let media = dir.join("media");
        std::fs::create_dir(&media).unwrap();
        std::fs::write(media.join("HEAD"), "x").unwrap();
        let changed = Arc::new(Notify::new());
        let mut watch = MediaWatch::new(media.clone(), changed.clone());
        assert!(watch.is_present());

        // Unplugged: the path is gone and the wait for its return is pending.
        std::fs::rename(&media, dir.join("away")).unwrap();
        watch.refresh();
        assert!(!watch.is_present());
        let early = tokio::time::timeout(Duration::from_millis(100), watch.returned()).await;
        assert!(early.is_err(), "returned while still unplugged");

        // Replugged as another directory: the wait ends, and a change there wakes the waiter.
        std::fs::create_dir(&media).unwrap();
        std::fs::write(media.join("HEAD"), "y").unwrap();
        tokio::time::timeout(MEDIA_CHECK * 3, watch.returned())
            .await
            .expect("the return is noticed");
        watch.refresh();
        assert!(watch.is_present());
        // The unplug itself was a change of the old watch: let its wake-up pass before listening.
        let _ = tokio::time::timeout(Duration::from_millis(200), changed.notified()).await;
        let woken = changed.notified();
        std::fs::write(media.join("FETCH_HEAD"), "z").unwrap();
        tokio::time::timeout(Duration::from_secs(10), woken)
            .await
            .expect("a change on the replugged media wakes the waiter");
    }

    #[tokio::test]
    async fn reading_a_watched_repository_does_not_wake_the_waiter() {
        let dir = scratch("media", "read-only");
        std::fs::write(dir.0.join("file"), "x").unwrap();
        let changed = Arc::new(Notify::new());
        let _watcher = watch(&dir.0, changed.clone()).expect("inotify works here");
        let woken = changed.notified();
        for _ in 0..10 {
            assert_eq!(std::fs::read(dir.0.join("file")).unwrap(), b"x");
        }
        let woke = tokio::time::timeout(Duration::from_millis(500), woken).await;
        assert!(woke.is_err(), "reads woke the waiter");
    }

    #[tokio::test]
    async fn a_change_under_a_watched_repository_wakes_the_waiter() {
        let dir = scratch("media", "watch");
        let changed = Arc::new(Notify::new());
        let _watcher = watch(&dir.0, changed.clone()).expect("inotify works here");
        let woken = changed.notified();
        std::fs::write(dir.0.join("file"), "x").unwrap();
        tokio::time::timeout(Duration::from_secs(10), woken)
            .await
            .expect("the watch reports the change");
    }
}
