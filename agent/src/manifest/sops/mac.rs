//! SOPS's MAC: SHA-512 over every value's plaintext bytes in document order (only the encrypted ones with
//! `mac_only_encrypted`, then after a fixed prefix), as upper-case hex, stored encrypted with the data key and
//! `lastmodified` as additional data. A mismatch means a value was changed, added, removed or reordered.

use sha2::{Digest, Sha512};

use super::cipher::{KEY_LEN, Sealed};

/// What SOPS hashes first with `mac_only_encrypted`, so the two MAC kinds never collide.
const MAC_ONLY_ENCRYPTED_PREFIX: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b, 0x0b,
    0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

/// The running MAC of one file.
pub struct Mac {
    hash: Sha512,
    only_encrypted: bool,
}

/// Why the MAC does not hold.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The stored MAC cannot be decrypted (tampered with, or `lastmodified` changed).
    #[error("the MAC in the sops block cannot be decrypted (it or lastmodified was tampered with)")]
    Unreadable,
    /// The values do not match the MAC.
    #[error("MAC mismatch: the file's values were changed after encryption (edit it with sops, not by hand)")]
    Mismatch,
}

impl Mac {
    /// A MAC for a file with `mac_only_encrypted` as given.
    pub fn new(only_encrypted: bool) -> Self {
        let mut hash = Sha512::new();
        if only_encrypted {
            hash.update(MAC_ONLY_ENCRYPTED_PREFIX);
        }
        Mac { hash, only_encrypted }
    }

    /// Add a value's bytes (SOPS's `ToBytes`); `encrypted` says whether it was.
    pub fn add(&mut self, bytes: &[u8], encrypted: bool) {
        if encrypted || !self.only_encrypted {
            self.hash.update(bytes);
        }
    }

    /// Check against the stored MAC `sealed` (`ENC[…]`), bound to `lastmodified`.
    pub fn verify(self, sealed: &str, key: &[u8; KEY_LEN], lastmodified: &str) -> Result<(), Error> {
        let stored = Sealed::parse(sealed)
            .and_then(|s| s.open(key, lastmodified))
            .map_err(|_| Error::Unreadable)?;
        let computed = upper_hex(&self.hash.finalize());
        if stored.as_slice() == computed.as_bytes() {
            Ok(())
        } else {
            Err(Error::Mismatch)
        }
    }
}

fn upper_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02X}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::sops::cipher::seal;

    #[test]
    fn the_mac_covers_values_in_order() {
        let key = [3u8; KEY_LEN];
        let expected = upper_hex(&Sha512::digest(b"ab"));
        let stored = seal(
            &key,
            &[9; KEY_LEN],
            expected.as_bytes(),
            "2024-01-01T00:00:00Z",
            "str",
        );
        let mac = |first: &[u8], second: &[u8]| {
            let mut m = Mac::new(false);
            m.add(first, true);
            m.add(second, false);
            m
        };
        assert_eq!(
            mac(b"a", b"b").verify(&stored, &key, "2024-01-01T00:00:00Z"),
            Ok(())
        );
        assert_eq!(
            mac(b"b", b"a").verify(&stored, &key, "2024-01-01T00:00:00Z"),
            Err(Error::Mismatch)
        );
        assert_eq!(
            mac(b"a", b"b").verify(&stored, &key, "2025-01-01T00:00:00Z"),
            Err(Error::Unreadable)
        );
    }
}
