//! Where status is written ([`Target`]: the control repository, its credentials, the branch template, this
//! cluster, the commit author) and how a branch's tip is fetched from it (`fetch_tip`, with the status refs
//! other clusters published for the branch, one ref listing and one pack).
//!
//! The writer owns the target; [`crate::fanout`] and [`crate::land`] read it and fetch through it.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

use gix::ObjectId;
use outpost_agent::secret::Scrubber;
use outpost_agent::source::{self, Auth, GitRef, RepoUrl, Source};

use crate::branch::BranchTemplate;
use crate::carry;
use crate::commit::Author;
use crate::outcome::Error;

/// Where and how to write.
#[derive(Clone, Debug)]
pub struct Target {
    /// Control repository.
    pub url: RepoUrl,
    /// Credentials.
    pub auth: Auth,
    /// Which branch each bundle's status goes to (`--git-branch`).
    pub branch: BranchTemplate,
    /// This cluster.
    pub cluster: String,
    /// Agent namespace (documents default to it).
    pub namespace: String,
    /// Commit author.
    pub author: Author,
    /// Cache directory.
    pub cache_dir: std::path::PathBuf,
}

/// The control repository as a network source (a local path is fetched from and pushed to through file://, so
/// the new objects go into our cache, never straight into the repository).
pub(crate) fn source_for(target: &Target, scrubber: &Scrubber, reference: GitRef) -> Result<Source, Error> {
    let url = match &target.url {
        RepoUrl::Local(path) => {
            let text = format!("file://{}", path.display());
            let url = gix::url::parse(gix::bstr::BStr::new(text.as_bytes())).map_err(|e| {
                Error::Source(source::Error::Open {
                    path: path.clone(),
                    reason: e.to_string(),
                })
            })?;
            RepoUrl::Remote { url, embedded: None }
        }
        remote => remote.clone(),
    };
    Ok(Source::new(
        source::Config {
            url,
            reference,
            auth: target.auth.clone(),
            cache_dir: target.cache_dir.clone(),
            limits: source::Limits::default(),
            throttle: Default::default(),
        },
        scrubber.clone(),
    ))
}

/// The control branch as one fetch found it.
pub(crate) struct Tip {
    /// The source the objects came through (its cache is where we build).
    pub(crate) source: Source,
    /// The branch's tip, `None` when the branch does not exist yet.
    pub(crate) old: Option<ObjectId>,
    /// What to build on: the tip, or the default branch's tip for a new branch.
    pub(crate) base: ObjectId,
    /// Status refs published for this branch: cluster → commit.
    pub(crate) published: BTreeMap<String, ObjectId>,
}

/// Fetch the tip of `name` and, when `carrying`, every status ref published for the branch (one ref listing,
/// one pack). When the branch does not exist, the default branch's tip (the branch is then created).
pub(crate) fn fetch_tip(
    target: &Target,
    name: &str,
    scrubber: &Scrubber,
    interrupt: &AtomicBool,
    carrying: bool,
) -> Result<Tip, Error> {
    let branch = source_for(target, scrubber, GitRef::Branch(name.to_owned()))?;
    let (old, published) = if carrying {
        let specs = [
            format!(
                "+{}:{}",
                GitRef::Branch(name.to_owned()).remote_name(),
                source::TRACKING_REF
            ),
            carry::refspec(name),
        ];
        let refs = branch.fetch_refs(&specs, interrupt)?;
        let old = refs.iter().find(|r| r.spec == 0).map(|r| r.id.object_id());
        let published = refs
            .iter()
            .filter(|r| r.spec == 1)
            .filter_map(|r| Some((carry::cluster_of(name, &r.name)?.to_owned(), r.id.object_id())))
            .collect();
        (old, published)
    } else {
        match branch.update(interrupt) {
            Ok(u) => (Some(u.revision.object_id()), BTreeMap::new()),
            Err(source::Error::RefNotFound { .. }) => (None, BTreeMap::new()),
            Err(e) => return Err(e.into()),
        }
    };
    if let Some(tip) = old {
        return Ok(Tip {
            source: branch,
            old: Some(tip),
            base: tip,
            published,
        });
    }
    let head = source_for(target, scrubber, GitRef::Head)?;
    let u = head.update(interrupt)?;
    Ok(Tip {
        source: head,
        old: None,
        base: u.revision.object_id(),
        published,
    })
}
