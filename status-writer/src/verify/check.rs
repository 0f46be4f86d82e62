//! Checking one commit's SSH signature against the allowed signers, as `git verify-commit` with
//! `gpg.ssh.allowedSignersFile` does: the signed payload is the commit without its `gpgsig` header, the
//! signature an sshsig in namespace `git`, the key's validity judged at the committer time.

use gix::ObjectId;
use outpost_agent::source::verify::Error;
use outpost_agent::source::verify::allowed_signers::Signer;
use outpost_agent::source::verify::payload::{self, Format};
use outpost_agent::source::verify::ssh;

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

/// Judge `commit` (its raw object bytes `data`) as the status of `cluster`: the agent's SSH verifier (the
/// signature, the key listed for namespace `git` and valid at the committer time), then whether a line of that
/// key lets it sign as `cluster`.
pub fn judge(commit: ObjectId, data: &[u8], cluster: &str, signers: &[Signer]) -> Verdict {
    let bad = |reason: String| Verdict::BadSignature { commit, reason };
    let Some(signed) = payload::commit(data) else {
        return Verdict::Unsigned { commit };
    };
    if signed.format != Format::Ssh {
        return bad("not an SSH signature (an OpenPGP or X.509 one?)".into());
    }
    let at = payload::header_time(data, "committer");
    let object = format!("commit {commit}");
    match ssh::verify(signers, &signed.payload, &signed.signature, at, &object) {
        Ok(found) if found.may_sign_as(cluster) => Verdict::Ok {
            commit,
            key: found.key,
        },
        Ok(found) => Verdict::WrongSigner {
            commit,
            principals: found.principals(),
            key: found.key,
        },
        Err(Error::Untrusted { key, .. } | Error::Expired { key, .. }) => Verdict::WrongSigner {
            commit,
            key,
            principals: Vec::new(),
        },
        Err(e) => bad(e.to_string()),
    }
}
