//! Source stage (DESIGN §3.1): find the commit the configured ref points at, fetch it when it is new, and
//! hand the files under the cluster path to the manifest stage.
//!
//! Network repositories are fetched shallow (depth 1, one ref) into a bare cache repository; local
//! repositories (`file://` or a path, typically an air-gapped mirror mounted into the pod) are read in place.
//! All gix work is blocking: callers run it in `spawn_blocking` and pass an interrupt flag tied to shutdown.

pub mod auth;
mod history;
mod local;
mod remote;
mod ssh;
pub mod transport;
mod tree;
pub mod url;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

pub use auth::Auth;
pub use gix::ObjectId;
pub use remote::TRACKING_REF;
pub use tree::SourceFile;
pub use url::RepoUrl;

use crate::secret::Scrubber;

/// Errors of the source stage. Every message is scrubbed of secrets and names the URL (without credentials).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Credentials could not be read.
    #[error(transparent)]
    Auth(#[from] auth::Error),
    /// The server refused our credentials.
    #[error(
        "authentication to {url} failed: check the token (--git-token-file / OUTPOST_GIT_TOKEN) and --git-username"
    )]
    Unauthorized {
        /// The repository URL, without credentials.
        url: String,
    },
    /// The server or network could not be reached, or the conversation failed.
    #[error("cannot reach {url}: {reason}")]
    Connect {
        /// The repository URL, without credentials.
        url: String,
        /// What went wrong, scrubbed.
        reason: String,
    },
    /// The ref does not exist on the remote or in the local repository.
    #[error("{reference} not found in {url}: check --git-ref")]
    RefNotFound {
        /// The repository URL, without credentials.
        url: String,
        /// The ref as configured.
        reference: String,
    },
    /// Receiving objects failed after the ref was found.
    #[error("fetching {reference} from {url} failed: {reason}")]
    Fetch {
        /// The repository URL, without credentials.
        url: String,
        /// The ref as configured.
        reference: String,
        /// What went wrong, scrubbed.
        reason: String,
    },
    /// The cache or local repository could not be opened or created.
    #[error("cannot open repository {path}: {reason}")]
    Open {
        /// The repository directory.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Objects of the commit could not be read.
    #[error("cannot read {path} at commit {commit}: {reason}")]
    Read {
        /// The commit.
        commit: String,
        /// The path inside the repository.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// Shutdown was requested while talking to the server.
    #[error("interrupted by shutdown")]
    Interrupted,
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which commit to follow, as `--git-ref` says: a branch (default), a tag, or a fixed commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GitRef {
    /// `main` or `refs/heads/main`.
    Branch(String),
    /// `refs/tags/v1.2.0`.
    Tag(String),
    /// A full 40-hex commit id.
    Commit(ObjectId),
    /// Whatever the repository's `HEAD` points at (its default branch). Never parsed from `--git-ref`; the status
    /// writer bases a branch it is about to create on it.
    Head,
}

impl GitRef {
    /// Parse `--git-ref`.
    pub fn parse(text: &str) -> Self {
        let text = text.trim();
        if let Some(tag) = text.strip_prefix("refs/tags/") {
            return GitRef::Tag(tag.to_owned());
        }
        if let Some(branch) = text.strip_prefix("refs/heads/") {
            return GitRef::Branch(branch.to_owned());
        }
        if text.len() == 40
            && text.bytes().all(|b| b.is_ascii_hexdigit())
            && let Ok(id) = ObjectId::from_hex(text.as_bytes())
        {
            return GitRef::Commit(id);
        }
        GitRef::Branch(text.to_owned())
    }

    /// The full ref name on the remote (`refs/heads/main`), or the commit id.
    pub fn remote_name(&self) -> String {
        match self {
            GitRef::Branch(b) => format!("refs/heads/{b}"),
            GitRef::Tag(t) => format!("refs/tags/{t}"),
            GitRef::Commit(id) => id.to_string(),
            GitRef::Head => "HEAD".to_owned(),
        }
    }
}

impl std::fmt::Display for GitRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GitRef::Branch(b) => write!(f, "branch {b:?}"),
            GitRef::Tag(t) => write!(f, "tag {t:?}"),
            GitRef::Commit(id) => write!(f, "commit {id}"),
            GitRef::Head => f.write_str("the default branch (HEAD)"),
        }
    }
}

/// Everything the source needs to know, from the command line.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the repository is.
    pub url: RepoUrl,
    /// What to follow in it.
    pub reference: GitRef,
    /// How to authenticate.
    pub auth: Auth,
    /// Where network repositories are cached between polls and restarts.
    pub cache_dir: PathBuf,
}

/// What one [`Source::update`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Update {
    /// The commit the ref points at now.
    pub commit: ObjectId,
    /// Whether objects were received (false when the commit was already in the cache).
    pub fetched: bool,
}

/// A ref the remote listed for one of [`Source::fetch_refs`]'s refspecs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteRef {
    /// Full name on the remote (`refs/heads/main`).
    pub name: String,
    /// Where it points.
    pub id: ObjectId,
    /// Which refspec (index into the list given) matched it.
    pub spec: usize,
}

/// A Git repository to follow.
pub struct Source {
    /// Settings from the command line.
    config: Config,
    /// Learns credentials and removes them from error text.
    scrubber: Scrubber,
}

impl Source {
    /// A source for `config`; nothing is contacted until [`Source::update`].
    pub fn new(config: Config, scrubber: Scrubber) -> Self {
        Source { config, scrubber }
    }

    /// The repository URL as it is safe to print.
    pub fn url(&self) -> String {
        self.config.url.to_string()
    }

    /// Find where the ref points and make that commit's objects available locally. Blocking.
    ///
    /// For a network repository this is one ref advertisement; a pack is fetched only when the commit is not
    /// in the cache yet.
    pub fn update(&self, interrupt: &AtomicBool) -> Result<Update> {
        match &self.config.url {
            RepoUrl::Local(path) => local::resolve(path, &self.config.reference),
            RepoUrl::Remote { .. } => remote::update(&self.config, &self.scrubber, interrupt),
        }
    }

    /// Fetch several refs at once (depth 1) into the cache of a network repository: `refspecs` are full
    /// `+<remote>:<local>` specs, wildcards allowed. One ref listing; a pack only when some listed commit is not
    /// cached yet. Returns every ref listed, in the server's order (a spec that matches nothing is not an error
    /// here). Blocking.
    pub fn fetch_refs(&self, refspecs: &[String], interrupt: &AtomicBool) -> Result<Vec<RemoteRef>> {
        match &self.config.url {
            RepoUrl::Local(path) => Err(Error::Open {
                path: path.clone(),
                reason:
                    "several refs are fetched from network repositories only; use file:// for a local one"
                        .into(),
            }),
            RepoUrl::Remote { .. } => remote::fetch(
                &self.config,
                &self.scrubber,
                interrupt,
                refspecs,
                |repo, found| found.iter().all(|r| repo.has_object(r.id)),
            )
            .map(|(found, _)| found),
        }
    }

    /// The repository the objects are in: the cache for a network repository, the repository itself for a local
    /// one. The status writer builds its commits here (network repositories only, so nothing is written into a
    /// repository we do not own).
    pub fn cache_repo(&self) -> Result<gix::Repository> {
        match &self.config.url {
            RepoUrl::Local(path) => local::open(path),
            RepoUrl::Remote { .. } => remote::open_cache(&self.config),
        }
    }

    /// The commits from `tip` back to `base` (both included, newest first), at most `max`; `None` when `base`
    /// is not among them (further back, or not an ancestor: history was rewritten). A network cache is
    /// deepened to `max` commits first when its shallow history does not reach `base`. Blocking.
    pub fn history(
        &self,
        tip: ObjectId,
        base: ObjectId,
        max: usize,
        interrupt: &AtomicBool,
    ) -> Result<Option<Vec<ObjectId>>> {
        let found = history::walk(&self.cache_repo()?, tip, base, max);
        if found.is_some() || !matches!(self.config.url, RepoUrl::Remote { .. }) {
            return Ok(found);
        }
        remote::deepen(&self.config, &self.scrubber, interrupt, max as u32)?;
        Ok(history::walk(&self.cache_repo()?, tip, base, max))
    }

    /// The files below `dir` (a path inside the repository) at `commit`, or `None` when `dir` does not exist
    /// there. Blocking.
    pub fn read_dir(&self, commit: ObjectId, dir: &str) -> Result<Option<Vec<SourceFile>>> {
        let mut repo = self.cache_repo()?;
        // Every blob is read once: caches only cost memory here (git's default delta-base cache is 96 MiB).
        repo.object_cache_size(0);
        repo.objects.unset_pack_cache();
        tree::read_dir(&repo, commit, dir)
    }
}

/// Render a gix error with its causes, scrubbed.
pub fn describe(err: &dyn std::error::Error, scrubber: &Scrubber) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    scrubber.scrub(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_ref_kinds_are_recognised() {
        assert_eq!(GitRef::parse("main"), GitRef::Branch("main".into()));
        assert_eq!(GitRef::parse("refs/heads/dev"), GitRef::Branch("dev".into()));
        assert_eq!(GitRef::parse("refs/tags/v1.0"), GitRef::Tag("v1.0".into()));
        let hex = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(GitRef::parse(hex).remote_name(), hex);
        assert_eq!(
            GitRef::parse("release/1.x").remote_name(),
            "refs/heads/release/1.x"
        );
    }
}
