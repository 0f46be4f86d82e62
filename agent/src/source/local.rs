//! Local repositories (`file://` or a path): resolved in place, nothing is fetched or copied.

use std::path::Path;

use super::{Error, GitRef, Result, Update};

/// Open a local repository (bare or with a work tree) without reading user or system Git configuration.
pub(super) fn open(path: &Path) -> Result<gix::Repository> {
    gix::open_opts(path, gix::open::Options::isolated()).map_err(|e| Error::Open {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Find the commit the ref points at in the local repository.
pub(super) fn resolve(path: &Path, reference: &GitRef) -> Result<Update> {
    let repo = open(path)?;
    let not_found = || Error::RefNotFound {
        url: path.display().to_string(),
        reference: reference.to_string(),
    };
    let commit = match reference {
        GitRef::Commit(id) => {
            if !repo.has_object(id) {
                return Err(not_found());
            }
            *id
        }
        GitRef::Branch(_) | GitRef::Tag(_) | GitRef::Head => {
            let mut r = repo
                .find_reference(reference.remote_name().as_str())
                .map_err(|_| not_found())?;
            r.peel_to_commit().map_err(|_| not_found())?.id
        }
    };
    Ok(Update {
        commit,
        fetched: false,
    })
}
