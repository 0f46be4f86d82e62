//! [`SourceFile`]: one file of a revision as the source hands it to the manifest stage — its path, its bytes and
//! a [`BlobId`] naming its content.
//!
//! The blob id is what a cache of parsed files is keyed by: equal ids mean equal bytes, so a file that did not
//! change between two revisions need not be parsed again. Git hands it out for free (the tree entry's object id);
//! any other source computes the same id from the bytes ([`SourceFile::new`]), so ids agree across sources.

use std::fmt;

use sha2::{Digest, Sha256};

/// Names the content of a file: Git's blob id (SHA-1 of `blob <len>\0<bytes>`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobId(gix::ObjectId);

impl BlobId {
    /// The id Git gives `data` as a blob.
    pub fn of(data: &[u8]) -> Self {
        match gix::objs::compute_hash(gix::hash::Kind::Sha1, gix::objs::Kind::Blob, data) {
            Ok(id) => BlobId(id),
            // SHA-1 collision detection refused the bytes (a crafted collision): name them by SHA-256 instead, an
            // id no Git blob has, so such a file never shares a cache entry with another.
            Err(_) => {
                let digest = Sha256::digest(data);
                BlobId(gix::ObjectId::from_bytes_or_panic(&digest[..20]))
            }
        }
    }

    /// The id of a blob read from a Git tree.
    pub(super) fn from_git(id: gix::ObjectId) -> Self {
        BlobId(id)
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({})", self.0)
    }
}

/// One file of a revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// Path relative to the directory that was read, with `/` separators (`apps/web/deploy.yaml`).
    pub path: String,
    /// The file's bytes.
    pub data: Vec<u8>,
    /// Names the bytes: equal ids, equal content (the key for caching what is derived from the file).
    pub blob: BlobId,
}

impl SourceFile {
    /// A file with its blob id computed from `data` (sources that do not store one, and tests).
    pub fn new(path: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        let data = data.into();
        SourceFile {
            path: path.into(),
            blob: BlobId::of(&data),
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blob_id_is_the_one_git_gives_the_content() {
        // `printf 'hello\n' | git hash-object --stdin`
        let file = SourceFile::new("a.yaml", "hello\n");
        assert_eq!(file.blob.to_string(), "ce013625030ba8dba906f756967f9e9ca394464a");
        assert_eq!(SourceFile::new("b.yaml", "hello\n").blob, file.blob);
        assert_ne!(SourceFile::new("a.yaml", "hello").blob, file.blob);
    }
}
