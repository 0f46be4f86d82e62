//! SOPS values: `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`, AES-256-GCM with a 32-byte nonce and the value's
//! path (`key1:key2:`) as additional data, as SOPS's `aes/cipher.go` writes them.

use aes_gcm::AesGcm;
use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use base64::Engine;
use zeroize::Zeroizing;

/// AES-256-GCM with SOPS's 256-bit nonces.
type Cipher = AesGcm<Aes256, U32>;

/// The size of the data key and of every nonce.
pub const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;

/// What a value decrypts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `str`
    Str,
    /// `int`
    Int,
    /// `float`
    Float,
    /// `bool`
    Bool,
    /// `bytes`
    Bytes,
    /// `time` (RFC 3339 text)
    Time,
    /// `comment`
    Comment,
}

/// An encrypted value taken apart (nothing secret: ciphertext, nonce, tag).
#[derive(Debug, PartialEq, Eq)]
pub struct Sealed {
    data: Vec<u8>,
    iv: Vec<u8>,
    tag: Vec<u8>,
    /// The type of the plaintext.
    pub kind: Kind,
}

/// Why a value could not be opened; never carries the value.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not of the `ENC[AES256_GCM,…]` form.
    #[error("not a SOPS AES256_GCM value")]
    Format,
    /// A part is not base64, the nonce or tag has the wrong size, or the type is unknown.
    #[error("corrupt SOPS value ({0})")]
    Corrupt(&'static str),
    /// Authentication failed: wrong data key, tampered ciphertext or a value moved to another path.
    #[error("AES-GCM authentication failed (value tampered with, moved, or encrypted with another data key)")]
    Auth,
}

impl Sealed {
    /// Take `value` apart (SOPS's regex: `^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]`).
    pub fn parse(value: &str) -> Result<Sealed, Error> {
        let body = value
            .strip_prefix("ENC[AES256_GCM,data:")
            .and_then(|v| v.strip_suffix(']'))
            .ok_or(Error::Format)?;
        let (data, rest) = body.split_once(",iv:").ok_or(Error::Format)?;
        let (iv, rest) = rest.split_once(",tag:").ok_or(Error::Format)?;
        let (tag, kind) = rest.split_once(",type:").ok_or(Error::Format)?;
        let b64 = |s: &str, what| {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| Error::Corrupt(what))
        };
        let kind = match kind {
            "str" => Kind::Str,
            "int" => Kind::Int,
            "float" => Kind::Float,
            "bool" => Kind::Bool,
            "bytes" => Kind::Bytes,
            "time" => Kind::Time,
            "comment" => Kind::Comment,
            _ => return Err(Error::Corrupt("unknown type")),
        };
        let sealed = Sealed {
            data: b64(data, "data is not base64")?,
            iv: b64(iv, "iv is not base64")?,
            tag: b64(tag, "tag is not base64")?,
            kind,
        };
        if sealed.iv.len() != KEY_LEN {
            return Err(Error::Corrupt("iv is not 32 bytes"));
        }
        if sealed.tag.len() != TAG_LEN {
            return Err(Error::Corrupt("tag is not 16 bytes"));
        }
        Ok(sealed)
    }

    /// Decrypt with the data `key`; `aad` is the value's path as SOPS builds it (`a:b:`).
    pub fn open(&self, key: &[u8; KEY_LEN], aad: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
        let cipher = Cipher::new(key.into());
        let mut msg = Vec::with_capacity(self.data.len() + TAG_LEN);
        msg.extend_from_slice(&self.data);
        msg.extend_from_slice(&self.tag);
        let nonce = aes_gcm::Nonce::<U32>::from_slice(&self.iv);
        cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &msg,
                    aad: aad.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| Error::Auth)
    }
}

/// The additional data SOPS binds a value to: its map keys joined by `:`, plus a trailing `:` (list indices are
/// not part of it).
pub fn aad(path: &[&str]) -> String {
    let mut out = String::new();
    for key in path {
        out.push_str(key);
        out.push(':');
    }
    if path.is_empty() {
        out.push(':');
    }
    out
}

#[cfg(test)]
pub(super) fn seal(key: &[u8; KEY_LEN], iv: &[u8; KEY_LEN], plain: &[u8], aad: &str, kind: &str) -> String {
    let cipher = Cipher::new(key.into());
    let out = cipher
        .encrypt(
            aes_gcm::Nonce::<U32>::from_slice(iv),
            Payload {
                msg: plain,
                aad: aad.as_bytes(),
            },
        )
        .expect("encrypts");
    let (data, tag) = out.split_at(out.len() - TAG_LEN);
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    format!(
        "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{kind}]",
        b64(data),
        b64(iv),
        b64(tag)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_opens_only_at_its_own_path_with_its_own_key() {
        let key = [7u8; KEY_LEN];
        let text = seal(&key, &[1u8; KEY_LEN], b"hunter2", "data:password:", "str");
        let sealed = Sealed::parse(&text).expect("parses");
        assert_eq!(sealed.kind, Kind::Str);
        assert_eq!(
            &sealed.open(&key, "data:password:").expect("opens")[..],
            b"hunter2"
        );
        assert_eq!(sealed.open(&key, "data:other:"), Err(Error::Auth));
        assert_eq!(sealed.open(&[8u8; KEY_LEN], "data:password:"), Err(Error::Auth));
    }

    #[test]
    fn malformed_values_are_told_apart() {
        assert_eq!(Sealed::parse("hunter2"), Err(Error::Format));
        assert_eq!(
            Sealed::parse("ENC[AES256_GCM,data:!!,iv:AA==,tag:AA==,type:str]"),
            Err(Error::Corrupt("data is not base64"))
        );
        assert_eq!(
            Sealed::parse("ENC[AES256_GCM,data:AA==,iv:AA==,tag:AA==,type:str]"),
            Err(Error::Corrupt("iv is not 32 bytes"))
        );
        let good = seal(&[0; KEY_LEN], &[0; KEY_LEN], b"1", "a:", "int");
        assert_eq!(
            Sealed::parse(&good.replace("type:int", "type:uuid")),
            Err(Error::Corrupt("unknown type"))
        );
    }

    #[test]
    fn the_path_is_keys_joined_with_colons() {
        assert_eq!(aad(&["data", "password"]), "data:password:");
        assert_eq!(aad(&["spec"]), "spec:");
    }
}
