//! Local repositories (`file://` or a path, typically an air-gapped mirror mounted into the pod): resolved and
//! read in place, nothing is fetched or copied. [`super::media`] tells the daemon when the repository changes
//! (so it reacts within a second instead of at the next poll) and whether its path is there at all.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use super::config::GitRef;
use super::error::{Error, Result};
use super::file::SourceFile;
use super::limits::Limits;
use super::revision::Revision;
use super::upstream::{Update, Upstream};
use super::{history, lineage, tree};

/// A Git repository on a local filesystem, bare or with a work tree.
#[derive(Clone, Debug)]
pub struct Local {
    /// The repository directory.
    path: PathBuf,
    /// What to follow in it.
    reference: GitRef,
    /// Caps on what one commit may make us read.
    limits: Limits,
}

impl Local {
    /// The repository at `path`, following `reference`, read within the default [`Limits`]; nothing is opened
    /// until asked.
    pub fn new(path: PathBuf, reference: GitRef) -> Self {
        Local {
            path,
            reference,
            limits: Limits::default(),
        }
    }

    /// Read within `limits` instead of the defaults.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The repository directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Open the repository (bare or with a work tree) without reading user or system Git configuration;
    /// [`Error::Unavailable`] when its path is absent (media unplugged, see [`super::media`]).
    pub fn open(&self) -> Result<gix::Repository> {
        if !super::media::present(&self.path) {
            return Err(Error::Unavailable {
                path: self.path.clone(),
            });
        }
        gix::open_opts(&self.path, gix::open::Options::isolated()).map_err(|e| {
            self.unless_unplugged(Error::Open {
                path: self.path.clone(),
                reason: e.to_string(),
            })
        })
    }

    /// The commit the followed ref points at.
    fn find_commit(&self) -> Result<Update> {
        let repo = self.open()?;
        let not_found = || Error::RefNotFound {
            url: self.location(),
            reference: self.reference.to_string(),
        };
        let commit = match &self.reference {
            GitRef::Commit(id) => {
                if !repo.has_object(id.object_id()) {
                    return Err(not_found());
                }
                *id
            }
            GitRef::Branch(_) | GitRef::Tag(_) | GitRef::Head => {
                let mut r = repo
                    .find_reference(self.reference.remote_name().as_str())
                    .map_err(|_| not_found())?;
                r.peel_to_commit().map_err(|_| not_found())?.id.into()
            }
        };
        Ok(Update {
            revision: commit,
            fetched: false,
        })
    }

    /// `err`, or [`Error::Unavailable`] when the path is gone by now: media pulled out while we read it is
    /// the same absence as media found missing, not a failure.
    fn unless_unplugged(&self, err: Error) -> Error {
        if super::media::present(&self.path) {
            err
        } else {
            Error::Unavailable {
                path: self.path.clone(),
            }
        }
    }
}

impl Local {
    /// The object the followed ref points at (an annotated tag's own object, not the commit it names);
    /// `revision` for a pinned commit or when the ref is gone.
    pub(super) fn ref_target(&self, revision: Revision) -> Result<gix::ObjectId> {
        if let GitRef::Commit(id) = &self.reference {
            return Ok(id.object_id());
        }
        let repo = self.open()?;
        Ok(repo
            .find_reference(self.reference.remote_name().as_str())
            .ok()
            .and_then(|r| r.target().try_id().map(|id| id.to_owned()))
            .unwrap_or_else(|| revision.object_id()))
    }
}

impl Upstream for Local {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    /// Find the commit the ref points at in the repository (nothing is ever fetched).
    fn update(&self, _interrupt: &AtomicBool) -> Result<Update> {
        self.find_commit().map_err(|e| self.unless_unplugged(e))
    }

    fn read_dir(&self, revision: Revision, dir: &str) -> Result<Option<Vec<SourceFile>>> {
        tree::read_dir(self.open()?, revision, dir, &self.limits).map_err(|e| self.unless_unplugged(e))
    }

    /// The whole history is in place: one walk.
    fn history(
        &self,
        tip: Revision,
        base: Revision,
        max: usize,
        _interrupt: &AtomicBool,
    ) -> Result<Option<Vec<Revision>>> {
        Ok(history::walk(&self.open()?, tip, base, max))
    }

    /// The whole history is in place: one walk, never truncated but by the bound.
    fn lineage(
        &self,
        tip: Revision,
        base: Revision,
        max: usize,
        _interrupt: &AtomicBool,
    ) -> Result<lineage::Lineage> {
        let repo = self.open()?;
        let reached = lineage::reach(&repo, tip, base, max);
        Ok(lineage::lineage(&repo, reached, tip, base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::test_git::{git, scratch};

    #[test]
    fn a_local_repository_is_read_in_place_with_git_blob_ids() {
        let dir = scratch("local", "read");
        git(&dir.0, &["init", "-q", "-b", "main"]);
        std::fs::create_dir_all(dir.0.join("clusters/c/web")).unwrap();
        std::fs::write(dir.0.join("clusters/c/web/cm.yaml"), "kind: ConfigMap\n").unwrap();
        git(&dir.0, &["add", "."]);
        git(&dir.0, &["commit", "-q", "-m", "one"]);
        let head = git(&dir.0, &["rev-parse", "HEAD"]);
        let blob = git(&dir.0, &["rev-parse", "HEAD:clusters/c/web/cm.yaml"]);

        let local = Local::new(dir.0.clone(), GitRef::parse("main"));
        let update = local.update(&AtomicBool::new(false)).unwrap();
        assert_eq!(update.revision.to_string(), head);
        assert!(!update.fetched);
        let files = local.read_dir(update.revision, "clusters/c").unwrap().unwrap();
        assert_eq!(files, vec![SourceFile::new("web/cm.yaml", "kind: ConfigMap\n")]);
        assert_eq!(files[0].blob.to_string(), blob);
        assert_eq!(local.read_dir(update.revision, "clusters/other").unwrap(), None);
        let history = local.history(update.revision, update.revision, 10, &AtomicBool::new(false));
        assert_eq!(history.unwrap(), Some(vec![update.revision]));

        let unplugged = Local::new(dir.0.join("unplugged"), GitRef::parse("main"));
        assert!(matches!(
            unplugged.update(&AtomicBool::new(false)),
            Err(Error::Unavailable { .. })
        ));

        let missing = Local::new(dir.0.clone(), GitRef::parse("nope"));
        assert!(matches!(
            missing.update(&AtomicBool::new(false)),
            Err(Error::RefNotFound { .. })
        ));
    }
}
