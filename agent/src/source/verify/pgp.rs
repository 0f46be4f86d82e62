//! OpenPGP signatures (GnuPG, `gpg.format=openpgp`): a detached signature over the payload by a trusted
//! certificate's primary key or subkey, which existed, was not revoked and had not expired at the signature's
//! creation time (the expiry the newest self-signature made before it says, as GnuPG reads it).

use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::packet::Signature;
use pgp::types::{Duration, KeyDetails, Timestamp};

use super::error::{Error, Result};

/// The key that made a good signature: its fingerprint (hex).
pub type Found = String;

/// Check `signature` (armored, detached) over `payload` against `keys`. `object` names what is verified.
pub fn verify(keys: &[SignedPublicKey], payload: &[u8], signature: &[u8], object: &str) -> Result<Found> {
    let bad = |key: &str, reason: String| Error::BadSignature {
        object: object.to_owned(),
        key: key.to_owned(),
        reason,
    };
    let text = std::str::from_utf8(signature).map_err(|_| bad("unknown", "not armored text".into()))?;
    let sig = DetachedSignature::from_string(text)
        .map_err(|e| bad("unknown", format!("not an OpenPGP signature: {e}")))?
        .0
        .signature;
    let issuer = issuer(&sig);
    let Some((cert, subkey)) = find(keys, &sig) else {
        return Err(Error::Untrusted {
            object: object.to_owned(),
            key: issuer,
        });
    };
    let key = match subkey {
        Some(i) => hex(cert.public_subkeys[i].key.fingerprint().as_bytes()),
        None => hex(cert.primary_key.fingerprint().as_bytes()),
    };
    let created = sig
        .created()
        .ok_or_else(|| bad(&key, "the signature has no creation time".into()))?;
    let expired = |why: String| Error::Expired {
        object: object.to_owned(),
        key: key.clone(),
        why,
    };
    if !cert.details.revocation_signatures.is_empty() {
        return Err(Error::Revoked {
            object: object.to_owned(),
            key,
        });
    }
    let primary_created = cert.primary_key.created_at();
    let mut checks = vec![(primary_created, expiry(own_signatures(cert), created))];
    if let Some(i) = subkey {
        let sub = &cert.public_subkeys[i];
        checks.push((sub.key.created_at(), expiry(sub.signatures.iter(), created)));
    }
    for (born, lifetime) in checks {
        if born.as_secs() > created.as_secs() {
            return Err(expired(format!(
                "the signature ({}) predates the key ({})",
                show(created),
                show(born)
            )));
        }
        if let Some(life) = lifetime.filter(|l| l.as_secs() != 0) {
            let end = u64::from(born.as_secs()) + u64::from(life.as_secs());
            if u64::from(created.as_secs()) >= end {
                return Err(expired(format!(
                    "it expired at {}, the signature was made at {}",
                    show(Timestamp::from_secs(end.min(u64::from(u32::MAX)) as u32)),
                    show(created)
                )));
            }
        }
    }
    let verified = match subkey {
        Some(i) => sig.verify(&cert.public_subkeys[i].key, payload),
        None => sig.verify(&cert.primary_key, payload),
    };
    verified.map_err(|e| bad(&key, e.to_string()))?;
    Ok(key)
}

/// The certificate and (when a subkey signed) the subkey index the signature's issuer names.
fn find<'k>(keys: &'k [SignedPublicKey], sig: &Signature) -> Option<(&'k SignedPublicKey, Option<usize>)> {
    let fingerprints: Vec<Vec<u8>> = sig
        .issuer_fingerprint()
        .iter()
        .map(|f| f.as_bytes().to_vec())
        .collect();
    let ids: Vec<Vec<u8>> = sig.issuer_key_id().iter().map(|k| k.as_ref().to_vec()).collect();
    let matches = |k: &dyn KeyDetails| {
        fingerprints.contains(&k.fingerprint().as_bytes().to_vec())
            || ids.contains(&k.legacy_key_id().as_ref().to_vec())
    };
    keys.iter().find_map(|cert| {
        if matches(&cert.primary_key) {
            return Some((cert, None));
        }
        cert.public_subkeys
            .iter()
            .position(|s| matches(&s.key))
            .map(|i| (cert, Some(i)))
    })
}

/// The issuer as the signature names it: its fingerprint, else its key id, in hex.
fn issuer(sig: &Signature) -> String {
    if let Some(f) = sig.issuer_fingerprint().first() {
        return hex(f.as_bytes());
    }
    sig.issuer_key_id()
        .first()
        .map_or_else(|| "unknown".to_owned(), |k| hex(k.as_ref()))
}

/// The primary key's self-signatures: direct-key signatures and user id certifications.
fn own_signatures(cert: &SignedPublicKey) -> impl Iterator<Item = &Signature> {
    cert.details
        .direct_signatures
        .iter()
        .chain(cert.details.users.iter().flat_map(|u| u.signatures.iter()))
}

/// The key lifetime the newest of `signatures` made at or before `at` states (`None`: no expiry).
fn expiry<'s>(signatures: impl Iterator<Item = &'s Signature>, at: Timestamp) -> Option<Duration> {
    signatures
        .filter_map(|s| Some((s.created()?, s)))
        .filter(|(made, _)| made.as_secs() <= at.as_secs())
        .max_by_key(|(made, _)| made.as_secs())
        .and_then(|(_, s)| s.key_expiration_time())
}

/// Upper-case hex, as GnuPG prints fingerprints.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// A timestamp as RFC 3339.
fn show(t: Timestamp) -> String {
    super::ssh::show(i64::from(t.as_secs()))
}
