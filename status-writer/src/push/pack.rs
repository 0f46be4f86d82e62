//! The pack a push sends: exactly the objects the caller names, read from its repository.
//!
//! Every object is stored whole (no deltas): a status commit is a commit, a few trees and a few small blobs,
//! so deltas would save little, and whole objects need nothing on the other side to be unpacked. The bytes are
//! a version 2 pack with its trailing checksum, ready to follow the update command on the wire.

use std::collections::HashSet;

use gix::ObjectId;
use gix_pack::data::output;

use super::types::Error;

/// zlib level for pack entries: git's default (`pack.compression`), a good trade for small text objects.
const COMPRESSION: gix::zlib::Compression = gix::zlib::Compression::DEFAULT;

/// Encode `objects` (each once, in the given order) from `repo` as pack bytes.
pub(super) fn build(repo: &gix::Repository, objects: &[ObjectId]) -> Result<Vec<u8>, Error> {
    let mut seen = HashSet::with_capacity(objects.len());
    let mut entries = Vec::with_capacity(objects.len());
    for id in objects {
        // A pack holding an object twice is refused by index-pack.
        if !seen.insert(*id) {
            continue;
        }
        let object = repo.find_object(*id).map_err(|e| Error::Pack {
            reason: format!(
                "object {id} is not in the repository at {}: {e}",
                repo.path().display()
            ),
        })?;
        let data = gix::objs::Data::new(&object.data, object.kind, repo.object_hash());
        let count = output::Count::from_data(*id, None);
        let entry = output::Entry::from_data(&count, &data, COMPRESSION).map_err(|e| Error::Pack {
            reason: format!("cannot compress object {id}: {e}"),
        })?;
        entries.push(entry);
    }
    let count = u32::try_from(entries.len()).map_err(|_| Error::Pack {
        reason: format!("{} objects do not fit into one pack", entries.len()),
    })?;
    let mut bytes = Vec::new();
    let writer = output::bytes::FromEntriesIter::new(
        std::iter::once(Ok(entries)),
        &mut bytes,
        count,
        gix_pack::data::Version::V2,
        repo.object_hash(),
    );
    for written in writer {
        written.map_err(|e| Error::Pack {
            reason: format!("cannot encode the pack: {e}"),
        })?;
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::Path;
    use std::process::{Command, Stdio};

    use gix::objs::tree::{Entry, EntryKind, EntryMode};

    use super::*;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn the_pack_holds_each_named_object_once_and_git_can_index_it() {
        let dir = outpost_tests::scratch_dir("pack").unwrap();
        let repo = gix::init_bare(dir.join("source.git")).unwrap();
        let blob = repo.write_blob(b"status: ok\n").unwrap().detach();
        let tree = repo
            .write_object(gix::objs::Tree {
                entries: vec![Entry {
                    mode: EntryMode::from(EntryKind::Blob),
                    filename: "status.yaml".into(),
                    oid: blob,
                }],
            })
            .unwrap()
            .detach();
        let sig = gix::actor::SignatureRef {
            name: "Outpost".into(),
            email: "outpost@example.invalid".into(),
            time: "1700000000 +0000",
        };
        let commit = repo
            .new_commit_as(sig, sig, "status", tree, None::<ObjectId>)
            .unwrap()
            .id;
        let unrelated = repo.write_blob(b"not sent").unwrap().detach();

        let bytes = build(&repo, &[commit, tree, blob, blob]).unwrap();
        assert_eq!(&bytes[..4], b"PACK");
        assert_eq!(
            u32::from_be_bytes(bytes[8..12].try_into().unwrap()),
            3,
            "the duplicate is sent once"
        );

        let target = dir.join("target.git");
        git(&dir, &["init", "-q", "--bare", target.to_str().unwrap()]);
        let mut index = Command::new("git")
            .arg("-C")
            .arg(&target)
            .args(["index-pack", "--stdin", "--strict"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        index.stdin.take().unwrap().write_all(&bytes).unwrap();
        assert!(index.wait().unwrap().success(), "git index-pack refused the pack");
        assert_eq!(
            git(&target, &["cat-file", "-p", &format!("{commit}:status.yaml")]),
            "status: ok\n"
        );
        let missing = Command::new("git")
            .arg("-C")
            .arg(&target)
            .args(["cat-file", "-e", &unrelated.to_string()])
            .status()
            .unwrap();
        assert!(
            !missing.success(),
            "an object that was not named must not be in the pack"
        );
    }

    #[test]
    fn a_named_object_missing_from_the_repository_is_a_pack_error() {
        let dir = outpost_tests::scratch_dir("pack-missing").unwrap();
        let repo = gix::init_bare(dir.join("source.git")).unwrap();
        let absent = ObjectId::from_hex(b"0123456789abcdef0123456789abcdef01234567").unwrap();
        let err = build(&repo, &[absent]).unwrap_err();
        assert!(matches!(err, Error::Pack { .. }), "{err:?}");
        assert!(err.to_string().contains(&absent.to_string()), "{err}");
    }
}
