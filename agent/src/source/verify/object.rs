//! Verifying one object of a repository: read it raw, split payload and signature ([`super::payload`]), and
//! check the signature with the SSH or OpenPGP keys of the [`Keyring`].

use super::error::{Error, Result};
use super::keys::Keyring;
use super::payload::{self, Format, Signed};
use super::policy::{Mode, Verified};
use super::{pgp, ssh};
use crate::source::Revision;

/// Verify what `mode` asks for in `repo`: the commit `commit` (`Mode::Commit`), or the object `target` the
/// followed ref `reference` points at, which must be an annotated tag (`Mode::Tag`) — then the commit to apply
/// is the one that tag names. `Mode::Off` verifies nothing.
pub fn verify(
    repo: &gix::Repository,
    keys: &Keyring,
    mode: Mode,
    (target, commit): (gix::ObjectId, Revision),
    reference: &str,
) -> Result<Option<Verified>> {
    match mode {
        Mode::Off => Ok(None),
        Mode::Commit => {
            let object = format!("commit {commit}");
            let raw = read(repo, commit.object_id(), &object, gix::object::Kind::Commit)?;
            let signed = payload::commit(&raw).ok_or_else(|| Error::Unsigned {
                object: object.clone(),
                mode: mode.as_str(),
            })?;
            let at = payload::header_time(&raw, "committer");
            let (key, signer) = check(keys, &signed, at, &object)?;
            Ok(Some(Verified {
                commit,
                object,
                key,
                signer,
            }))
        }
        Mode::Tag => {
            let object = format!("tag {reference} ({target})");
            let kind = repo
                .find_header(target)
                .map_err(|e| Error::Read {
                    object: object.clone(),
                    reason: e.to_string(),
                })?
                .kind();
            if kind != gix::object::Kind::Tag {
                return Err(Error::Unsigned {
                    object: format!("tag {reference} (a lightweight tag: {kind} {target}, no tag object)"),
                    mode: mode.as_str(),
                });
            }
            let raw = read(repo, target, &object, gix::object::Kind::Tag)?;
            let signed = payload::tag(&raw).ok_or_else(|| Error::Unsigned {
                object: object.clone(),
                mode: mode.as_str(),
            })?;
            let at = payload::header_time(&raw, "tagger");
            let (key, signer) = check(keys, &signed, at, &object)?;
            let commit = match payload::tag_target(&raw) {
                Some((id, kind)) if kind == "commit" => Revision::parse(&id),
                _ => None,
            }
            .ok_or_else(|| Error::Unsupported {
                object: object.clone(),
                reason: "the tag does not point at a commit".into(),
            })?;
            Ok(Some(Verified {
                commit,
                object,
                key,
                signer,
            }))
        }
    }
}

/// The raw content of object `id`, which must be of `kind`.
fn read(repo: &gix::Repository, id: gix::ObjectId, object: &str, kind: gix::object::Kind) -> Result<Vec<u8>> {
    let found = repo.find_object(id).map_err(|e| Error::Read {
        object: object.to_owned(),
        reason: e.to_string(),
    })?;
    if found.kind != kind {
        return Err(Error::Read {
            object: object.to_owned(),
            reason: format!("it is a {}, not a {kind}", found.kind),
        });
    }
    Ok(found.detach().data)
}

/// Check a split signature with the keys of its kind: (key id, signer).
fn check(keys: &Keyring, signed: &Signed, at: Option<i64>, object: &str) -> Result<(String, Option<String>)> {
    match signed.format {
        Format::Ssh => ssh::verify(&keys.ssh, &signed.payload, &signed.signature, at, object).map(|found| {
            let principals = found.lines.first().map(|s| s.principals_text());
            (found.key, principals)
        }),
        Format::OpenPgp => {
            pgp::verify(&keys.pgp, &signed.payload, &signed.signature, object).map(|k| (k, None))
        }
        Format::Other => Err(Error::Unsupported {
            object: object.to_owned(),
            reason: "signed with an X.509 (gpgsm) signature; only SSH and OpenPGP signatures are verified"
                .into(),
        }),
    }
}

#[cfg(test)]
#[path = "object_tests.rs"]
mod tests;
