//! SSH signatures (`gpg.format=ssh`): an sshsig over the payload in the `git` namespace, by a key the
//! allowed-signers file lists for `git` and holds valid at the committer's (tagger's) time — what
//! `ssh-keygen -Y verify -n git -Overify-time=<time>` checks for `git verify-commit`. The status writer's
//! hub-side `verify` checks status commits with it too, then asks whether a line lets the key sign as the
//! cluster.

use ssh_key::{HashAlg, SshSig};

use super::allowed_signers::Signer;
use super::error::{Error, Result};

/// The namespace Git signs commits and tags in.
const NAMESPACE: &str = "git";

/// The key that made a good signature.
#[derive(Debug)]
pub struct Found<'a> {
    /// Its `SHA256:` fingerprint.
    pub key: String,
    /// The allowed-signers lines that list it for `git` and hold it valid at the signature's time.
    pub lines: Vec<&'a Signer>,
}

impl Found<'_> {
    /// Whether one of its lines lets it sign as `principal`.
    pub fn may_sign_as(&self, principal: &str) -> bool {
        self.lines.iter().any(|s| s.may_sign_as(principal))
    }

    /// The principals of its lines, as written.
    pub fn principals(&self) -> Vec<String> {
        self.lines
            .iter()
            .flat_map(|s| s.principals.iter().cloned())
            .collect()
    }
}

/// Check `signature` (armored sshsig) over `payload` against `signers`, judging validity at Unix time `at`
/// (`None` when the object carries no time: then only a signer without time bounds passes). `object` names
/// what is verified in errors.
pub fn verify<'a>(
    signers: &'a [Signer],
    payload: &[u8],
    signature: &[u8],
    at: Option<i64>,
    object: &str,
) -> Result<Found<'a>> {
    let sig = SshSig::from_pem(signature).map_err(|e| Error::BadSignature {
        object: object.to_owned(),
        key: "unknown".into(),
        reason: format!("not an SSH signature: {e}"),
    })?;
    let key = sig.public_key().fingerprint(HashAlg::Sha256).to_string();
    let bad = |reason: String| Error::BadSignature {
        object: object.to_owned(),
        key: key.clone(),
        reason,
    };
    if sig.namespace() != NAMESPACE {
        return Err(bad(format!(
            "signed in namespace {:?}, not {NAMESPACE:?}",
            sig.namespace()
        )));
    }
    let listed: Vec<&Signer> = signers
        .iter()
        .filter(|s| s.key.key_data() == sig.public_key() && s.allows(NAMESPACE))
        .collect();
    if listed.is_empty() {
        return Err(Error::Untrusted {
            object: object.to_owned(),
            key,
        });
    }
    let valid: Vec<&Signer> = listed
        .iter()
        .copied()
        .filter(|s| at.is_some_and(|t| s.valid_at(t)) || bounds(s).is_empty())
        .collect();
    let Some(signer) = valid.first() else {
        let s = listed[0];
        return Err(Error::Expired {
            object: object.to_owned(),
            key: key.clone(),
            why: format!(
                "allowed_signers line {} ({}) allows it {}, the signature's time is {}",
                s.line,
                s.principals_text(),
                bounds(s),
                at.map_or_else(|| "unknown".to_owned(), show)
            ),
        });
    };
    signer
        .key
        .verify(NAMESPACE, payload, &sig)
        .map_err(|e| bad(e.to_string()))?;
    Ok(Found { key, lines: valid })
}

/// A signer's time bounds as words (`from 2024-01-01T00:00:00Z until ...`), empty when it has none.
fn bounds(s: &Signer) -> String {
    let mut words = Vec::new();
    if let Some(t) = s.valid_after {
        words.push(format!("from {}", show(t)));
    }
    if let Some(t) = s.valid_before {
        words.push(format!("until {}", show(t)));
    }
    words.join(" ")
}

/// A Unix time as RFC 3339.
pub fn show(t: i64) -> String {
    jiff::Timestamp::from_second(t).map_or_else(|_| t.to_string(), |ts| ts.to_string())
}
