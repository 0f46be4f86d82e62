//! Why a commit or tag was refused: every message names the object and, where there is one, the key, and says
//! that nothing of it was applied.

use std::path::PathBuf;

/// What every refusal adds: the reader's first question is what happened to the cluster.
const KEPT: &str = "nothing of it was applied or pruned; the last good state stays";

/// Why verification refused an object (or could not run).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The trusted keys could not be read.
    #[error(
        "cannot read trusted keys from {}: {reason}; check --verify-keys-dir and the Secret mounted there", .path.display()
    )]
    Keys {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No signature at all.
    #[error("{object} is not signed (--verify={mode}): refused; {KEPT}")]
    Unsigned {
        /// `commit <id>` or `tag <ref> (<id>)`.
        object: String,
        /// `commit` or `tag`.
        mode: &'static str,
    },
    /// Signed by a key the keys directory does not hold.
    #[error(
        "{object} is signed by key {key}, which is not trusted (not in --verify-keys-dir): refused; {KEPT}"
    )]
    Untrusted {
        /// The object.
        object: String,
        /// The signing key's fingerprint (or OpenPGP key id).
        key: String,
    },
    /// Signed by a trusted key that was not valid at the signature's time.
    #[error("{object} is signed by key {key}, which was not valid when it signed: {why}: refused; {KEPT}")]
    Expired {
        /// The object.
        object: String,
        /// The key.
        key: String,
        /// Which validity bound it broke.
        why: String,
    },
    /// Signed by a revoked OpenPGP key.
    #[error("{object} is signed by key {key}, which is revoked: refused; {KEPT}")]
    Revoked {
        /// The object.
        object: String,
        /// The key.
        key: String,
    },
    /// The signature does not match the content (tampered, or copied from another object) or is malformed.
    #[error(
        "{object}: the signature by key {key} does not verify ({reason}): tampered or corrupt: refused; {KEPT}"
    )]
    BadSignature {
        /// The object.
        object: String,
        /// The key it claims (`unknown` when the signature does not parse).
        key: String,
        /// What failed.
        reason: String,
    },
    /// A signature kind or ref we cannot verify.
    #[error("{object}: {reason}: refused; {KEPT}")]
    Unsupported {
        /// The object.
        object: String,
        /// What is unsupported.
        reason: String,
    },
    /// The object could not be read from the repository.
    #[error("cannot read {object} to verify it: {reason}")]
    Read {
        /// The object.
        object: String,
        /// What failed.
        reason: String,
    },
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why verification failed, as a bounded metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The keys directory is unreadable or holds nothing usable.
    Keys,
    /// No signature.
    Unsigned,
    /// A key not in the keys directory.
    Untrusted,
    /// A key outside its validity at the signature's time.
    Expired,
    /// A revoked key.
    Revoked,
    /// A signature that does not match.
    BadSignature,
    /// A signature kind we cannot check (X.509), or a lightweight tag in tag mode.
    Unsupported,
    /// The object was not readable.
    Read,
}

impl Reason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Keys => "keys",
            Reason::Unsigned => "unsigned",
            Reason::Untrusted => "untrusted",
            Reason::Expired => "expired",
            Reason::Revoked => "revoked",
            Reason::BadSignature => "bad_signature",
            Reason::Unsupported => "unsupported",
            Reason::Read => "read",
        }
    }
}

impl Error {
    /// Why, as a [`Reason`].
    pub fn reason(&self) -> Reason {
        match self {
            Error::Keys { .. } => Reason::Keys,
            Error::Unsigned { .. } => Reason::Unsigned,
            Error::Untrusted { .. } => Reason::Untrusted,
            Error::Expired { .. } => Reason::Expired,
            Error::Revoked { .. } => Reason::Revoked,
            Error::BadSignature { .. } => Reason::BadSignature,
            Error::Unsupported { .. } => Reason::Unsupported,
            Error::Read { .. } => Reason::Read,
        }
    }

    /// The failure kind among the source's metric labels (`verification_<reason>`).
    pub fn metric_label(&self) -> &'static str {
        match self.reason() {
            Reason::Keys => "verification_keys",
            Reason::Unsigned => "verification_unsigned",
            Reason::Untrusted => "verification_untrusted",
            Reason::Expired => "verification_expired",
            Reason::Revoked => "verification_revoked",
            Reason::BadSignature => "verification_bad_signature",
            Reason::Unsupported => "verification_unsupported",
            Reason::Read => "verification_read",
        }
    }
}
