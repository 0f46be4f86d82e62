//! Signed status: every commit the writer makes is signed with the cluster's own SSH key exactly as
//! `git -c gpg.format=ssh commit -S` signs (sshsig, namespace `git`, SHA-512, the armored signature in the
//! commit's `gpgsig` header), so the hub can tell which cluster wrote which status (`outpost-status-writer
//! verify`, [`crate::verify`]) and `git verify-commit` agrees.
//!
//! The key comes from `--signing-key-file` (an unencrypted OpenSSH private key, mounted from a Secret). Only
//! ed25519 and ECDSA P-256 keys are supported. The key's bytes never leave this module: errors and `Debug`
//! name the file and the public key's fingerprint only.

use std::path::{Path, PathBuf};

use gix::ObjectId;
use gix::objs::WriteTo;
use ssh_key::{Algorithm, EcdsaCurve, HashAlg, LineEnding, PrivateKey};

/// The sshsig namespace git signs commits in.
pub const NAMESPACE: &str = "git";

/// The commit header holding the signature (SHA-1 repositories).
pub const HEADER: &str = "gpgsig";

/// Why the signing key cannot be used, or a commit not signed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key file cannot be read.
    #[error(
        "cannot read the signing key {path}: {reason}; mount the Secret holding this cluster's OpenSSH private key there"
    )]
    Read { path: PathBuf, reason: String },
    /// Not an OpenSSH private key.
    #[error(
        "the signing key {path} is not an OpenSSH private key ({reason}); give the private key file `ssh-keygen -t ed25519` writes"
    )]
    Parse { path: PathBuf, reason: String },
    /// A passphrase protects the key.
    #[error(
        "the signing key {path} is encrypted with a passphrase; the writer needs it unencrypted (`ssh-keygen -p -N '' -f KEY`), kept in a Secret"
    )]
    Encrypted { path: PathBuf },
    /// An algorithm we do not sign with.
    #[error(
        "the signing key {path} is {algorithm}; only ssh-ed25519 and ecdsa-sha2-nistp256 keys can sign status (`ssh-keygen -t ed25519`)"
    )]
    Unsupported { path: PathBuf, algorithm: String },
    /// Signing or writing the signed commit failed.
    #[error("cannot sign the status commit with the key {fingerprint}: {reason}")]
    Sign { fingerprint: String, reason: String },
}

/// This cluster's signing key.
pub struct Signer {
    key: PrivateKey,
    fingerprint: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Load the key at `path` (see the module text for what is accepted).
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read(path).map_err(|e| Error::Read {
            path: path.to_owned(),
            reason: e.kind().to_string(),
        })?;
        // The parser's messages name the encoding step that failed, never the key's bytes.
        let key = PrivateKey::from_openssh(&text).map_err(|e| Error::Parse {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        if key.is_encrypted() {
            return Err(Error::Encrypted {
                path: path.to_owned(),
            });
        }
        match key.algorithm() {
            Algorithm::Ed25519
            | Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256,
            } => {}
            other => {
                return Err(Error::Unsupported {
                    path: path.to_owned(),
                    algorithm: other.to_string(),
                });
            }
        }
        let fingerprint = key.public_key().fingerprint(HashAlg::Sha256).to_string();
        Ok(Signer { key, fingerprint })
    }

    /// The public key's SHA-256 fingerprint, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The public key in OpenSSH format (for an allowed-signers line).
    pub fn public_key(&self) -> String {
        self.key.public_key().to_openssh().unwrap_or_default()
    }

    /// The armored sshsig of `payload` (namespace `git`, SHA-512), without its final newline.
    pub fn sign(&self, payload: &[u8]) -> Result<String, Error> {
        let failed = |e: ssh_key::Error| Error::Sign {
            fingerprint: self.fingerprint.clone(),
            reason: e.to_string(),
        };
        let sig = self
            .key
            .sign(NAMESPACE, HashAlg::Sha512, payload)
            .map_err(failed)?;
        let pem = sig.to_pem(LineEnding::LF).map_err(failed)?;
        Ok(pem.trim_end_matches('\n').to_owned())
    }

    /// Write `commit` signed: its bytes without a signature are the signed payload, the signature goes into the
    /// `gpgsig` header (after the committer, as git puts it). Returns the signed commit's id.
    pub fn write_signed(
        &self,
        repo: &gix::Repository,
        mut commit: gix::objs::Commit,
    ) -> Result<ObjectId, Error> {
        commit.extra_headers.retain(|(name, _)| name != HEADER);
        let mut payload = Vec::new();
        commit.write_to(&mut payload).map_err(|e| Error::Sign {
            fingerprint: self.fingerprint.clone(),
            reason: e.to_string(),
        })?;
        let armored = self.sign(&payload)?;
        commit.extra_headers.push((HEADER.into(), armored.into()));
        Ok(repo
            .write_object(&commit)
            .map_err(|e| Error::Sign {
                fingerprint: self.fingerprint.clone(),
                reason: e.to_string(),
            })?
            .detach())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ed25519 key made here (no ssh-keygen in unit tests): the e2e tests use real ones.
    fn key_file(dir: &Path) -> PathBuf {
        let seed = [7u8; 32];
        let pair = ssh_key::private::Ed25519Keypair::from_seed(&seed);
        let key = PrivateKey::from(pair);
        let path = dir.join("key");
        std::fs::write(&path, key.to_openssh(LineEnding::LF).unwrap().as_bytes()).unwrap();
        path
    }

    #[test]
    fn a_signed_commit_carries_an_sshsig_over_itself_without_the_header() {
        let dir = std::env::temp_dir().join(format!("outpost-sign-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let signer = Signer::load(&key_file(&dir)).unwrap();
        assert!(!format!("{signer:?}").contains("PRIVATE"), "{signer:?}");
        let repo = gix::init_bare(dir.join("repo")).unwrap();
        let tree = repo.write_object(gix::objs::Tree::empty()).unwrap().detach();
        let who = gix::actor::Signature {
            name: "c1".into(),
            email: "c1@example.invalid".into(),
            time: gix::date::Time::new(1_700_000_000, 0),
        };
        let commit = gix::objs::Commit {
            tree,
            parents: Default::default(),
            author: who.clone(),
            committer: who,
            encoding: None,
            message: "status\n".into(),
            extra_headers: Vec::new(),
        };
        let id = signer.write_signed(&repo, commit).unwrap();
        let data = repo.find_object(id).unwrap().data.clone();
        let (sig, signed) = gix::objs::CommitRefIter::signature(&data, gix::hash::Kind::Sha1)
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&data);
        assert!(
            text.contains("\ngpgsig -----BEGIN SSH SIGNATURE-----\n "),
            "{text}"
        );
        let sig = ssh_key::SshSig::from_pem(sig.as_ref() as &[u8]).unwrap();
        assert_eq!(sig.namespace(), NAMESPACE);
        assert_eq!(sig.hash_alg(), HashAlg::Sha512);
        let public = ssh_key::PublicKey::from(sig.public_key().clone());
        public.verify(NAMESPACE, &signed.to_bstring(), &sig).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unusable_keys_are_refused_naming_the_file_only() {
        let dir = std::env::temp_dir().join(format!("outpost-sign-bad-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("not-a-key");
        std::fs::write(&path, "secret-looking-text").unwrap();
        let e = Signer::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("not-a-key") && !e.contains("secret-looking-text"),
            "{e}"
        );
        let e = Signer::load(&dir.join("missing")).unwrap_err().to_string();
        assert!(e.contains("missing"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
