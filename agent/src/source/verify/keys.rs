//! The trusted keys: read from `--verify-keys-dir` (a mounted Secret) — `allowed_signers` for SSH signatures,
//! every `*.asc` file for OpenPGP public keys.
//!
//! The directory is re-read on every verification (a few small files), so a rotated Secret takes effect at
//! the next poll; [`Keyring::digest`] lets the caller skip re-parsing when nothing changed. Kubernetes mounts a
//! Secret through `..data` symlinks: entries starting with `..` are skipped, the key names are followed.

use std::path::Path;

use pgp::composed::{Deserializable, SignedPublicKey};
use sha2::{Digest, Sha256};

use super::allowed_signers::{self, Signer};
use super::error::{Error, Result};

/// Name of the SSH allowed-signers file in the keys directory.
pub const ALLOWED_SIGNERS: &str = "allowed_signers";

/// Everything trusted to sign.
#[derive(Clone, Debug)]
pub struct Keyring {
    /// SSH keys, from `allowed_signers`.
    pub ssh: Vec<Signer>,
    /// OpenPGP certificates, from `*.asc`.
    pub pgp: Vec<SignedPublicKey>,
    /// Digest of the files they came from.
    pub digest: [u8; 32],
}

/// Key files as read: (file name, content), sorted by name.
pub type Files = Vec<(String, Vec<u8>)>;

/// The raw key files of `dir`, sorted by name, and their digest.
pub fn read_files(dir: &Path) -> Result<(Files, [u8; 32])> {
    let err = |path: &Path, e: std::io::Error| Error::Keys {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| err(dir, e))? {
        let entry = entry.map_err(|e| err(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") || !(name == ALLOWED_SIGNERS || name.ends_with(".asc")) {
            continue;
        }
        let path = entry.path();
        files.push((name, std::fs::read(&path).map_err(|e| err(&path, e))?));
    }
    files.sort();
    let mut hasher = Sha256::new();
    for (name, data) in &files {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(Sha256::digest(data));
    }
    Ok((files, hasher.finalize().into()))
}

impl Keyring {
    /// Read and parse the keys in `dir`. A file that does not parse fails the whole keyring, naming it: a
    /// half-read keyring would refuse commits for a reason nobody sees.
    pub fn load(dir: &Path) -> Result<Self> {
        let (files, digest) = read_files(dir)?;
        Self::parse(dir, files, digest)
    }

    /// Parse key files already read by [`read_files`].
    pub fn parse(dir: &Path, files: Files, digest: [u8; 32]) -> Result<Self> {
        let mut ring = Keyring {
            ssh: Vec::new(),
            pgp: Vec::new(),
            digest,
        };
        for (name, data) in files {
            let path = dir.join(&name);
            let bad = |reason: String| Error::Keys {
                path: path.clone(),
                reason,
            };
            let text = String::from_utf8(data).map_err(|_| bad("not UTF-8 text".into()))?;
            if name == ALLOWED_SIGNERS {
                ring.ssh = allowed_signers::parse(&text).map_err(|e| bad(e.to_string()))?;
                continue;
            }
            let keys = SignedPublicKey::from_string_many(&text)
                .map_err(|e| bad(format!("not an armored OpenPGP public key: {e}")))?
                .0;
            let before = ring.pgp.len();
            for key in keys {
                let key = key.map_err(|e| bad(format!("not an armored OpenPGP public key: {e}")))?;
                key.verify_bindings()
                    .map_err(|e| bad(format!("its self-signatures do not verify: {e}")))?;
                ring.pgp.push(key);
            }
            if ring.pgp.len() == before {
                return Err(bad("holds no OpenPGP public key".into()));
            }
        }
        if ring.ssh.is_empty() && ring.pgp.is_empty() {
            return Err(Error::Keys {
                path: dir.to_owned(),
                reason: format!("no key found: expected an {ALLOWED_SIGNERS} file or *.asc OpenPGP keys"),
            });
        }
        Ok(ring)
    }
}
