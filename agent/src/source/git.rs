//! [`Source`]: a Git repository to follow, reached the way its URL says — over the network into a cache
//! ([`Remote`]) or in place on a local filesystem ([`Local`]).
//!
//! This is what the agent builds from its flags and hands reconcile as an [`Upstream`]. The status writer uses
//! the same type for Git's own operations: several refs in one fetch, and the repository its commits are built
//! in.

use std::sync::atomic::AtomicBool;

use super::config::Config;
use super::error::{Error, Result};
use super::file::SourceFile;
use super::local::Local;
use super::remote::{Remote, RemoteRef};
use super::revision::Revision;
use super::upstream::{Update, Upstream};
use super::url::RepoUrl;
use crate::secret::Scrubber;

/// A Git repository to follow.
pub enum Source {
    /// Reached over the network (HTTP(S) or SSH); fetched shallow into a cache. Boxed: its settings are most
    /// of the size, and a local source should not carry that much empty space.
    Remote(Box<Remote>),
    /// On a local filesystem (`file://` or a path); read in place.
    Local(Local),
}

impl Source {
    /// A source for `config`, remote or local as its URL says; nothing is contacted until [`Source::update`].
    pub fn new(config: Config, scrubber: Scrubber) -> Self {
        match &config.url {
            RepoUrl::Local(path) => {
                Source::Local(Local::new(path.clone(), config.reference).with_limits(config.limits))
            }
            RepoUrl::Remote { .. } => Source::Remote(Box::new(Remote::new(config, scrubber))),
        }
    }

    /// This source as reconcile sees it.
    fn upstream(&self) -> &dyn Upstream {
        match self {
            Source::Remote(remote) => remote.as_ref(),
            Source::Local(local) => local,
        }
    }

    /// The repository URL as it is safe to print.
    pub fn url(&self) -> String {
        self.upstream().location()
    }

    /// Find where the ref points and make that commit's objects available locally. Blocking.
    ///
    /// For a network repository this is one ref advertisement; a pack is fetched only when the commit is not
    /// in the cache yet.
    pub fn update(&self, interrupt: &AtomicBool) -> Result<Update> {
        self.upstream().update(interrupt)
    }

    /// Fetch several refs at once (depth 1) into the cache of a network repository: `refspecs` are full
    /// `+<remote>:<local>` specs, wildcards allowed. One ref listing; a pack only when some listed commit is not
    /// cached yet. Returns every ref listed, in the server's order (a spec that matches nothing is not an error
    /// here). Blocking.
    pub fn fetch_refs(&self, refspecs: &[String], interrupt: &AtomicBool) -> Result<Vec<RemoteRef>> {
        match self {
            Source::Remote(remote) => remote.fetch_refs(refspecs, interrupt),
            Source::Local(local) => Err(Error::Open {
                path: local.path().to_owned(),
                reason:
                    "several refs are fetched from network repositories only; use file:// for a local one"
                        .into(),
            }),
        }
    }

    /// The object the followed ref pointed at in the last [`Source::update`] — for an annotated tag its own
    /// object, which `--verify=tag` checks, while `update` reports the commit it names. Blocking.
    pub fn ref_target(&self, revision: Revision) -> Result<gix::ObjectId> {
        match self {
            Source::Remote(remote) => remote.ref_target(revision),
            Source::Local(local) => local.ref_target(revision),
        }
    }

    /// The repository the objects are in: the cache for a network repository, the repository itself for a local
    /// one. The status writer builds its commits here (network repositories only, so nothing is written into a
    /// repository we do not own).
    pub fn cache_repo(&self) -> Result<gix::Repository> {
        match self {
            Source::Remote(remote) => remote.cache_repo(),
            Source::Local(local) => local.open(),
        }
    }
}

impl Upstream for Source {
    fn location(&self) -> String {
        self.upstream().location()
    }

    fn deadline(&self) -> Option<std::time::Duration> {
        self.upstream().deadline()
    }

    fn update(&self, interrupt: &AtomicBool) -> Result<Update> {
        self.upstream().update(interrupt)
    }

    fn read_dir(&self, revision: Revision, dir: &str) -> Result<Option<Vec<SourceFile>>> {
        self.upstream().read_dir(revision, dir)
    }

    fn history(
        &self,
        tip: Revision,
        base: Revision,
        max: usize,
        interrupt: &AtomicBool,
    ) -> Result<Option<Vec<Revision>>> {
        self.upstream().history(tip, base, max, interrupt)
    }

    fn lineage(
        &self,
        tip: Revision,
        base: Revision,
        max: usize,
        interrupt: &AtomicBool,
    ) -> Result<super::Lineage> {
        self.upstream().lineage(tip, base, max, interrupt)
    }
}
