//! Where the test environment's binaries are. A missing one fails the test with the command that installs
//! it: tests never skip silently.

use std::path::PathBuf;

use anyhow::{Result, bail};

/// The command that installs and builds everything (see README).
pub const SETUP_COMMAND: &str = "bash tests/env/setup.sh";

/// kube-apiserver version the setup script builds.
pub const KUBE_VERSION: &str = "1.20.2";

/// The cache directory of the setup scripts.
pub fn cache_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("OUTPOST_TEST_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    PathBuf::from(home).join(".cache/outpost-test")
}

fn existing(path: PathBuf, what: &str) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path);
    }
    bail!(
        "{what} not found at {}: run `{SETUP_COMMAND}` first",
        path.display()
    )
}

fn on_path(name: &str, what: &str) -> Result<PathBuf> {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
    {
        let p = PathBuf::from(dir).join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("{what} ({name}) not found on PATH: run `{SETUP_COMMAND}` first")
}

/// kube-apiserver: `OUTPOST_TEST_KUBE_APISERVER` or the cached build.
pub fn kube_apiserver() -> Result<PathBuf> {
    match std::env::var("OUTPOST_TEST_KUBE_APISERVER") {
        Ok(p) => existing(PathBuf::from(p), "OUTPOST_TEST_KUBE_APISERVER"),
        Err(_) => existing(
            cache_dir().join(format!("kube-apiserver-{KUBE_VERSION}")),
            "kube-apiserver",
        ),
    }
}

/// etcd: `OUTPOST_TEST_ETCD` or Debian's.
pub fn etcd() -> Result<PathBuf> {
    match std::env::var("OUTPOST_TEST_ETCD") {
        Ok(p) => existing(PathBuf::from(p), "OUTPOST_TEST_ETCD"),
        Err(_) => on_path("etcd", "etcd (Debian etcd-server)"),
    }
}

/// kubectl 1.32 from Debian trixie: `OUTPOST_TEST_KUBECTL` or the cached one.
pub fn kubectl() -> Result<PathBuf> {
    match std::env::var("OUTPOST_TEST_KUBECTL") {
        Ok(p) => existing(PathBuf::from(p), "OUTPOST_TEST_KUBECTL"),
        Err(_) => existing(cache_dir().join("kubectl-trixie/usr/bin/kubectl"), "kubectl"),
    }
}

/// The Python of the virtualenv holding helm_python_sdk (the Helm v4 engine), from `tests/env/helm.sh`.
pub fn helm_python() -> Result<PathBuf> {
    existing(
        cache_dir().join("helm-venv/bin/python"),
        "the Helm engine (helm_python_sdk)",
    )
}

/// A system tool (nginx, fcgiwrap, sshd, htpasswd, openssl, ssh-keygen, git).
pub fn system(name: &str) -> Result<PathBuf> {
    on_path(name, name)
}

/// The workspace's target directory.
pub fn target_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// One of our binaries, built by `cargo build --workspace --bins` (the README test command does that first).
pub fn outpost_bin(name: &str) -> Result<PathBuf> {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let path = target_dir().join(profile).join(name);
    if path.is_file() {
        let built = std::fs::metadata(&path)?.modified()?;
        let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        if let Some(newer) = newest_source(&workspace, name, built) {
            bail!(
                "{name} at {} is older than {}: run `cargo build --workspace --bins` (make test does) so the \
                 tests do not run a stale binary",
                path.display(),
                newer.display()
            );
        }
        return Ok(path);
    }
    bail!(
        "{name} not built at {}: run `cargo build --workspace --bins` (make test does)",
        path.display()
    )
}

/// A source file of binary `name` modified after `built`, if any.
fn newest_source(workspace: &std::path::Path, name: &str, built: std::time::SystemTime) -> Option<PathBuf> {
    let mut stack = vec![workspace.join("agent/src")];
    if name == "outpost-status-writer" {
        stack.push(workspace.join("status-writer/src"));
    }
    let mut files = vec![workspace.join("Cargo.lock")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.into_iter().find(|f| {
        std::fs::metadata(f)
            .and_then(|m| m.modified())
            .is_ok_and(|m| m > built)
    })
}
