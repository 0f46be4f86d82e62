//! `outpost-status-writer verify`, the hub-side check of signed status: for each cluster (`--cluster`, or every
//! `clusters/<c>/status` on the ref), the last commit that changed `clusters/<c>/status/` must carry a good SSH
//! signature by a key the allowed-signers file lists for principal `<c>` (at that commit's time). One line per
//! cluster; exit status 1 when any cluster fails, 2 when the check cannot run.
//!
//! The repository is a local path (a clone, or the bare repository on the Git server) or a URL, cloned bare
//! into a temporary directory first (credentials as git's own configuration gives them).

pub mod allowed;
pub mod check;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use clap::Parser;
use gix::ObjectId;

use self::check::Verdict;
use crate::{commit, paths};

/// Check that each cluster's status on the control repository was signed by that cluster's own key.
#[derive(Parser, Clone, Debug)]
#[command(name = "outpost-status-writer verify", version)]
pub struct VerifyArgs {
    /// Allowed signers file in git's format (`gpg.ssh.allowedSignersFile`): principal = cluster name.
    #[arg(long, env = "OUTPOST_ALLOWED_SIGNERS_FILE")]
    pub allowed_signers: PathBuf,

    /// The control repository: a local path (clone or bare) or a URL to clone.
    #[arg(long, env = "OUTPOST_VERIFY_REPO", default_value = ".")]
    pub repo: String,

    /// The branch or ref whose history is checked.
    #[arg(long = "ref", env = "OUTPOST_VERIFY_REF", default_value = "HEAD")]
    pub reference: String,

    /// Check only these clusters (repeatable); default: every clusters/<c>/status on the ref.
    #[arg(long = "cluster", env = "OUTPOST_VERIFY_CLUSTERS", value_delimiter = ',')]
    pub clusters: Vec<String>,
}

/// Why the check could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The allowed-signers file is unusable.
    #[error(transparent)]
    Allowed(#[from] allowed::Error),
    /// The repository cannot be opened or cloned.
    #[error("cannot open the control repository {repo}: {reason}")]
    Open { repo: String, reason: String },
    /// The ref does not resolve.
    #[error("{reference} is not a commit in {repo}: {reason}; pass --ref with a branch that exists")]
    Ref {
        repo: String,
        reference: String,
        reason: String,
    },
    /// History cannot be read.
    #[error("cannot read the history of {reference}: {reason}")]
    Walk { reference: String, reason: String },
}

/// Run the check and print one line per cluster.
pub fn main(args: VerifyArgs) -> ExitCode {
    match verify(&args) {
        Ok(verdicts) if verdicts.is_empty() => {
            eprintln!(
                "outpost-status-writer verify: no cluster status found on {}",
                args.reference
            );
            ExitCode::FAILURE
        }
        Ok(verdicts) => {
            for (cluster, verdict) in &verdicts {
                println!("{cluster}: {verdict}");
            }
            if verdicts.values().all(Verdict::is_ok) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("outpost-status-writer verify: {}", scrub_url(&e.to_string()));
            ExitCode::from(2)
        }
    }
}

/// Cluster → verdict.
pub fn verify(args: &VerifyArgs) -> Result<BTreeMap<String, Verdict>, Error> {
    let signers = allowed::load(&args.allowed_signers)?;
    let (repo, _clone) = open(&args.repo)?;
    let tip = resolve(&repo, &args.reference).map_err(|reason| Error::Ref {
        repo: args.repo.clone(),
        reference: args.reference.clone(),
        reason,
    })?;
    let clusters = if args.clusters.is_empty() {
        clusters_on(&repo, tip)
    } else {
        args.clusters.clone()
    };
    let walk_err = |e: &dyn std::fmt::Display| Error::Walk {
        reference: args.reference.clone(),
        reason: e.to_string(),
    };
    let mut pending: Vec<String> = clusters;
    let mut verdicts = BTreeMap::new();
    let walk = repo
        .rev_walk([tip])
        .sorting(gix::revision::walk::Sorting::ByCommitTime(Default::default()))
        .all()
        .map_err(|e| walk_err(&e))?;
    for info in walk {
        if pending.is_empty() {
            break;
        }
        let info = info.map_err(|e| walk_err(&e))?;
        let id = info.id;
        let parents: Vec<ObjectId> = info.parent_ids.to_vec();
        let mut still = Vec::new();
        for cluster in pending {
            if changed(&repo, id, &parents, &paths::status_root(&cluster)).map_err(|e| walk_err(&e))? {
                let data = repo.find_object(id).map_err(|e| walk_err(&e))?.data.clone();
                verdicts.insert(cluster.clone(), check::judge(id, &data, &cluster, &signers));
            } else {
                still.push(cluster);
            }
        }
        pending = still;
    }
    for cluster in pending {
        verdicts.insert(cluster, Verdict::NoStatus);
    }
    Ok(verdicts)
}

/// The commit `reference` (HEAD, a ref name as git abbreviates it, or a full commit id) points at.
fn resolve(repo: &gix::Repository, reference: &str) -> Result<ObjectId, String> {
    if reference == "HEAD" {
        return repo.head_id().map(|id| id.detach()).map_err(|e| e.to_string());
    }
    if let Ok(id) = ObjectId::from_hex(reference.as_bytes()) {
        return Ok(id);
    }
    let mut found = repo.find_reference(reference).map_err(|e| e.to_string())?;
    found
        .peel_to_id()
        .map(|id| id.detach())
        .map_err(|e| e.to_string())
}

/// Whether `commit` changed `path` relative to every parent (a merge that took one side's directory did not).
fn changed(
    repo: &gix::Repository,
    commit: ObjectId,
    parents: &[ObjectId],
    path: &str,
) -> Result<bool, commit::Error> {
    let now = commit::subtree(repo, commit, path)?;
    if parents.is_empty() {
        return Ok(now.is_some());
    }
    for parent in parents {
        if commit::subtree(repo, *parent, path)? == now {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Every `clusters/<c>` holding a `status` directory at `tip`.
fn clusters_on(repo: &gix::Repository, tip: ObjectId) -> Vec<String> {
    let Ok(Some(clusters)) = commit::subtree(repo, tip, "clusters") else {
        return Vec::new();
    };
    let Ok(tree) = repo.find_tree(clusters) else {
        return Vec::new();
    };
    let Ok(decoded) = tree.decode() else {
        return Vec::new();
    };
    decoded
        .entries
        .iter()
        .filter(|e| e.mode.is_tree())
        .map(|e| e.filename.to_string())
        .filter(|c| matches!(commit::subtree(repo, tip, &paths::status_root(c)), Ok(Some(_))))
        .collect()
}

/// Open a local repository, or clone a URL bare into a temporary directory (removed when the guard drops).
fn open(location: &str) -> Result<(gix::Repository, Option<TempDir>), Error> {
    let failed = |e: &dyn std::fmt::Display| Error::Open {
        repo: location.to_owned(),
        reason: e.to_string(),
    };
    if !location.contains("://") {
        return Ok((gix::open(location).map_err(|e| failed(&e))?, None));
    }
    let dir = TempDir(std::env::temp_dir().join(format!(
        "outpost-verify-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    )));
    let (repo, _) = gix::prepare_clone_bare(location, &dir.0)
        .map_err(|e| failed(&e))?
        .fetch_only(gix::progress::Discard, &AtomicBool::new(false))
        .map_err(|e| failed(&e))?;
    Ok((repo, Some(dir)))
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Remove credentials embedded in URLs (`https://user:token@host`) from a message.
fn scrub_url(message: &str) -> String {
    outpost_agent::secret::Scrubber::default().scrub(message)
}
