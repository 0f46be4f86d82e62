//! The seam between the source stage and everything after it: [`Upstream`], what reconcile needs from wherever
//! the desired state comes from.
//!
//! Reconcile asks three things of a source: the newest revision (made readable locally), the files below a
//! directory at a revision (each with its [`BlobId`](super::BlobId)), and the revisions between an older one and
//! a newer one (to learn what commits it skipped announced). Git — a network remote fetched into a cache
//! ([`super::Remote`]) or a repository read in place ([`super::Local`]), both behind [`super::Source`] — answers
//! all three. An OCI artifact source would resolve a tag to a digest in [`Upstream::update`], unpack the layer
//! and serve [`Upstream::read_dir`] from it, and keep the default [`Upstream::history`] (an artifact has no
//! parents): a new module here, nothing in reconcile.
//!
//! A trait, not an enum of the source kinds: a new kind is a new module with its own dependencies (an OCI client,
//! possibly behind a cargo feature) instead of one more arm in every match, and users of the library — and tests —
//! can hand reconcile a source of their own (a directory of manifests, files in memory). Reconcile holds it as
//! `Arc<dyn Upstream>`; one dynamic call per poll costs nothing next to the I/O behind it.
//!
//! Every method blocks (network and object-store work): call them in `spawn_blocking`, with an interrupt flag
//! raised at shutdown.

use std::sync::atomic::AtomicBool;

use super::error::Result;
use super::file::SourceFile;
use super::lineage::Lineage;
use super::revision::Revision;

/// What one [`Upstream::update`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Update {
    /// The revision the followed ref points at now.
    pub revision: Revision,
    /// Whether content was received (false when the revision was already cached, or is read in place).
    pub fetched: bool,
}

/// Where revisions of the desired state come from: the newest revision, its files, and the revisions between
/// two. Git ([`super::Source`]) implements it; another kind of source (an OCI artifact, a plain directory)
/// implements it too and reconcile takes it unchanged. Every method blocks: call it in `spawn_blocking`.
pub trait Upstream: Send + Sync {
    /// Where the source is, as it is safe to print (never with credentials).
    fn location(&self) -> String;

    /// How long a network operation may go without progress (`--git-timeout`); `None` for sources that never
    /// wait on a network.
    fn deadline(&self) -> Option<std::time::Duration> {
        None
    }

    /// Find the revision the followed ref points at and make its files readable locally. A network source
    /// transfers content only when that revision is not cached yet.
    fn update(&self, interrupt: &AtomicBool) -> Result<Update>;

    /// The files below `dir` (a path inside the source, `/`-separated) at `revision`, sorted by path, with paths
    /// relative to `dir`; `None` when `dir` does not exist at that revision.
    fn read_dir(&self, revision: Revision, dir: &str) -> Result<Option<Vec<SourceFile>>>;

    /// The revisions from `tip` back to `base` (both included, newest first), at most `max`; `None` when `base`
    /// is not among them (further back, not an ancestor, or the source keeps no history).
    fn history(
        &self,
        tip: Revision,
        base: Revision,
        max: usize,
        interrupt: &AtomicBool,
    ) -> Result<Option<Vec<Revision>>> {
        let _ = (tip, base, max, interrupt);
        Ok(None)
    }

    /// How `tip` relates to `base` (descendant, diverged, beyond `max` parents) with both commits' times, for
    /// freshness; a shallow cache is deepened only as far as needed to decide, never past `max`. The default,
    /// for sources without history, is [`Lineage::unknown`].
    fn lineage(&self, tip: Revision, base: Revision, max: usize, interrupt: &AtomicBool) -> Result<Lineage> {
        let _ = (tip, base, max, interrupt);
        Ok(Lineage::unknown())
    }
}
