//! Test environment for Outpost: a real etcd + kube-apiserver and real Git servers, started once per test
//! binary and torn down when it exits (even on panic), plus helpers to run the agent against them.
//!
//! Nothing here is a mock: tests talk to the same programs production talks to.
#![forbid(unsafe_code)]

pub mod agent;
pub mod freeze;
pub mod git;
pub mod kube;
pub mod oracle;
pub mod process;
pub mod throttling_proxy;
pub mod tools;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::Result;

pub use git::{GitServers, TestRepo};
pub use kube::KubeEnv;

static KUBE: OnceLock<std::result::Result<KubeEnv, String>> = OnceLock::new();
static GIT: OnceLock<std::result::Result<GitServers, String>> = OnceLock::new();

/// The shared API server, started on first use. Panics with the reason (and the setup command) if it
/// cannot start: a test never silently skips.
pub fn kube_env() -> &'static KubeEnv {
    // Started on a plain thread: the caller is usually inside a tokio runtime, where blocking is unwelcome.
    let result = KUBE.get_or_init(|| {
        std::thread::spawn(|| KubeEnv::start().map_err(|e| format!("{e:#}")))
            .join()
            .unwrap_or_else(|_| Err("kube-apiserver start panicked".into()))
    });
    match result {
        Ok(env) => env,
        Err(e) => panic!("test API server unavailable: {e}"),
    }
}

/// The shared Git servers, started on first use.
pub fn git_servers() -> &'static GitServers {
    let result = GIT.get_or_init(|| {
        std::thread::spawn(|| GitServers::start().map_err(|e| format!("{e:#}")))
            .join()
            .unwrap_or_else(|_| Err("git servers start panicked".into()))
    });
    match result {
        Ok(env) => env,
        Err(e) => panic!("test Git servers unavailable: {e}"),
    }
}

/// Prefix of every scratch directory; the process id follows, so stale ones can be recognised.
const SCRATCH_PREFIX: &str = "outpost-test-";

/// A per-process scratch directory under the system temp dir, named `outpost-test-<pid>-<what>-<random>`.
/// The first call removes scratch directories of test processes that are gone (they live on tmpfs).
pub fn scratch_dir(what: &str) -> Result<PathBuf> {
    static CLEANED: std::sync::Once = std::sync::Once::new();
    CLEANED.call_once(|| {
        remove_stale(&std::env::temp_dir());
        remove_stale(Path::new("/dev/shm"));
    });
    unique_dir(
        &std::env::temp_dir(),
        &format!("{SCRATCH_PREFIX}{}-{what}", std::process::id()),
    )
}

/// Remove `outpost-test-<pid>-*` entries of `dir` whose process no longer exists.
fn remove_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(SCRATCH_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Create `<parent>/<prefix>-<random>`.
pub fn unique_dir(parent: &Path, prefix: &str) -> Result<PathBuf> {
    let dir = parent.join(format!("{prefix}-{}", random_suffix()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A random lowercase suffix for names (namespaces, repos).
pub fn random_suffix() -> String {
    (0..8)
        .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
        .collect()
}

/// A random secret for tokens and passwords.
pub fn random_token() -> String {
    (0..32).map(|_| fastrand::alphanumeric()).collect()
}

/// A unique name for a test's namespace, repo or cluster: `<prefix>-<random>`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", random_suffix())
}
