//! Checking one commit's SSH signature against the allowed signers, as `git verify-commit` with
//! `gpg.ssh.allowedSignersFile` does: the signed payload is the commit without its `gpgsig` header, the
//! signature an sshsig in namespace `git`, the key's validity judged at the committer time.

use gix::ObjectId;
use ssh_key::{HashAlg, PublicKey, SshSig};

use super::allowed::AllowedSigners;
use crate::sign::NAMESPACE;

/// What the hub learns about the last commit that changed a cluster's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Signed by a key the cluster's principal may use.
    Ok { commit: ObjectId, key: String },
    /// No signature at all.
    Unsigned { commit: ObjectId },
    /// A good signature by a key listed for other principals (or not listed, or not valid then).
    WrongSigner {
        commit: ObjectId,
        key: String,
        /// The principals that key may sign as then (empty: the key is not allowed at that time).
        principals: Vec<String>,
    },
    /// The signature does not verify, or is not an SSH signature in namespace `git`.
    BadSignature { commit: ObjectId, reason: String },
    /// No commit ever changed the cluster's status.
    NoStatus,
}

impl Verdict {
    /// Whether the status is trusted.
    pub fn is_ok(&self) -> bool {
        matches!(self, Verdict::Ok { .. })
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Ok { commit, key } => write!(f, "ok (commit {commit}, key {key})"),
            Verdict::Unsigned { commit } => write!(f, "unsigned (commit {commit})"),
            Verdict::WrongSigner {
                commit,
                key,
                principals,
            } if principals.is_empty() => write!(
                f,
                "wrong signer: key {key} is not in the allowed signers file for that time (commit {commit})"
            ),
            Verdict::WrongSigner {
                commit,
                key,
                principals,
            } => write!(
                f,
                "wrong signer {} (commit {commit}, key {key})",
                principals.join(",")
            ),
            Verdict::BadSignature { commit, reason } => {
                write!(f, "bad signature (commit {commit}): {reason}")
            }
            Verdict::NoStatus => write!(f, "no status: no commit changed its status directory"),
        }
    }
}

fn armored_raw(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

/// The lines of a folded header value, continuation spaces and carriage returns removed, empty lines dropped.
fn armored_value(value: &str) -> Vec<String> {
    value
        .lines()
        .map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end_matches('\r').to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Judge `commit` (its raw object bytes `data`) as the status of `cluster`.
pub fn judge(commit: ObjectId, data: &[u8], cluster: &str, signers: &AllowedSigners) -> Verdict {
    let bad = |reason: String| Verdict::BadSignature { commit, reason };
    let (header, signed) = match gix::objs::CommitRefIter::signature(data, gix::hash::Kind::Sha1) {
        Ok(Some(found)) => found,
        Ok(None) => return Verdict::Unsigned { commit },
        Err(e) => return bad(format!("the commit does not parse: {e}")),
    };
    // The header's value is the armored signature folded over continuation lines: unfold it the way git does
    // (one line each, without the continuation space, each ending in a newline).
    let mut armored: Vec<u8> = Vec::new();
    for line in armored_value(&armored_raw(header.as_ref())) {
        armored.extend_from_slice(line.as_bytes());
        armored.push(b'\n');
    }
    if !armored.starts_with(b"-----BEGIN SSH SIGNATURE-----") {
        return bad("not an SSH signature (an OpenPGP or X.509 one?)".into());
    }
    let sig = match SshSig::from_pem(&armored) {
        Ok(sig) => sig,
        Err(e) => return bad(format!("the SSH signature does not parse: {e}")),
    };
    if sig.namespace() != NAMESPACE {
        return bad(format!(
            "signed in namespace {:?}, not {NAMESPACE:?}",
            sig.namespace()
        ));
    }
    let key = PublicKey::from(sig.public_key().clone());
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    if let Err(e) = key.verify(NAMESPACE, &signed.to_bstring(), &sig) {
        return bad(format!(
            "the signature by {fingerprint} does not match the commit: {e}"
        ));
    }
    let time = gix::objs::CommitRef::from_bytes(data, gix::hash::Kind::Sha1)
        .and_then(|c| c.time())
        .map(|t| t.seconds)
        .unwrap_or(0);
    if signers.allows(cluster, key.key_data(), NAMESPACE, time) {
        Verdict::Ok {
            commit,
            key: fingerprint,
        }
    } else {
        Verdict::WrongSigner {
            commit,
            key: fingerprint,
            principals: signers.principals_for(key.key_data(), NAMESPACE, time),
        }
    }
}
