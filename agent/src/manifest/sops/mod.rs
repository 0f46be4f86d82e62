//! SOPS decryption in the render stage: a manifest file with a `sops` block (written by `sops --encrypt --age
//! …`) is decrypted in memory before it is parsed, its MAC verified. Files without one pass through untouched
//! after a byte scan.
//!
//! The data key is unwrapped from the file's age stanzas with the agent's identities ([`keys`]), each
//! `ENC[AES256_GCM,…]` value opened with its path as additional data ([`cipher`]), and the MAC recomputed over
//! the ordered tree ([`tree`], [`mac`]). The plaintext goes on only as the rendered file's bytes (JSON, one
//! document a line) with the paths of its encrypted values, which `plan` masks; errors name the file and the
//! reason, never a value or a key.

mod cipher;
mod keys;
mod mac;
mod metadata;
mod tree;

use std::borrow::Cow;
use std::io::Read;

use zeroize::Zeroizing;

pub use keys::{KeyError, SopsArgs};

use super::render::{self, Render, Sealed};
use crate::source::SourceFile;
use cipher::{KEY_LEN, Kind};
use metadata::Metadata;
use tree::Node;

/// The key of the metadata block.
const SOPS_KEY: &str = "sops";

/// Why a SOPS file cannot be decrypted. Never carries plaintext or key material.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not YAML or JSON SOPS can have written.
    #[error("not a readable SOPS file: {0}")]
    Syntax(String),
    /// The `sops` block is incomplete or uses what we do not support.
    #[error("{0}")]
    Metadata(String),
    /// No configured identity opens an age stanza.
    #[error(
        "no age identity of the agent matches a recipient of this file (recipients: {recipients}{others}); add the matching key to the agent's SOPS Secret or re-encrypt with `sops updatekeys`"
    )]
    NoMatchingKey {
        /// The file's age recipients (public keys).
        recipients: String,
        /// Other key types, which the agent cannot use.
        others: String,
    },
    /// The agent has no identities at all.
    #[error("cannot decrypt: {0}")]
    Keys(#[from] KeyError),
    /// The unwrapped data key is not 32 bytes.
    #[error("the age stanza does not hold a 32-byte SOPS data key")]
    DataKey,
    /// A value cannot be decrypted.
    #[error("value at {path}: {source}")]
    Value {
        /// Its path (`data.password`).
        path: String,
        /// Why.
        source: cipher::Error,
    },
    /// A decrypted value is not of its declared type.
    #[error("value at {path}: decrypted value is not a valid {kind}")]
    Type {
        /// Its path.
        path: String,
        /// The declared type.
        kind: &'static str,
    },
    /// The MAC does not hold.
    #[error(transparent)]
    Mac(#[from] mac::Error),
}

/// Decrypts SOPS files of each bundle with age identities.
#[derive(Debug, Clone)]
pub struct Sops {
    args: SopsArgs,
}

impl Sops {
    /// A renderer reading identities from `args`; fails now if none can be read, so a misconfiguration shows at
    /// start rather than at the first encrypted file.
    pub fn new(args: SopsArgs) -> Result<Self, KeyError> {
        args.load()?;
        Ok(Sops { args })
    }
}

impl Render for Sops {
    fn render<'a>(
        &self,
        root: &str,
        bundle: &str,
        files: Vec<Cow<'a, SourceFile>>,
    ) -> Result<Vec<Cow<'a, SourceFile>>, render::Error> {
        Ok(self
            .render_sealed(root, bundle, files)?
            .into_iter()
            .map(|(f, _)| f)
            .collect())
    }

    fn render_sealed<'a>(
        &self,
        root: &str,
        _bundle: &str,
        files: Vec<Cow<'a, SourceFile>>,
    ) -> Result<Vec<(Cow<'a, SourceFile>, Sealed)>, render::Error> {
        let mut ids: Option<Vec<age::x25519::Identity>> = None;
        let mut out = Vec::with_capacity(files.len());
        for file in files {
            if !is_manifest(&file.path) || !may_be_encrypted(&file.data) {
                out.push((file, Sealed::default()));
                continue;
            }
            let fail = |e: Error| render::Error {
                file: format!("{}/{}", root.trim_end_matches('/'), file.path),
                reason: format!("SOPS: {e}"),
            };
            let ids = match &mut ids {
                Some(ids) => ids,
                None => ids.insert(self.args.load().map_err(|e| fail(e.into()))?),
            };
            match decrypt(&file.data, ids).map_err(fail)? {
                None => out.push((file, Sealed::default())),
                Some((plain, sealed)) => {
                    let rendered = SourceFile::new(file.path.clone(), plain.to_vec());
                    out.push((Cow::Owned(rendered), sealed));
                }
            }
        }
        Ok(out)
    }
}

fn is_manifest(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.ends_with(".yaml") || lower.ends_with(".yml") || lower.ends_with(".json")
}

/// A cheap scan: a top-level `sops:` at the start of a line (YAML) or a `"sops"` key (JSON).
pub fn may_be_encrypted(data: &[u8]) -> bool {
    let mut from = 0;
    while let Some(i) = data[from..].windows(4).position(|w| w == b"sops") {
        let at = from + i;
        let before = if at == 0 { b'\n' } else { data[at - 1] };
        let after = data.get(at + 4).copied();
        if (before == b'\n' && after == Some(b':')) || (before == b'"' && after == Some(b'"')) {
            return true;
        }
        from = at + 4;
    }
    false
}

/// A decrypted file (JSON, a document a line) and the paths of its encrypted values.
type Decrypted = (Zeroizing<Vec<u8>>, Sealed);

/// Decrypt one file: `None` when it has no `sops` block after all, else the plaintext (JSON, a document a line)
/// and the paths of its encrypted values.
fn decrypt(data: &[u8], ids: &[age::x25519::Identity]) -> Result<Option<Decrypted>, Error> {
    let text = std::str::from_utf8(data).map_err(|_| Error::Syntax("not UTF-8 text".into()))?;
    // Go's yaml.v3, which SOPS hashes with, reads only `true`/`false` as booleans (not `yes`, `on`).
    let mut options = super::budget::yaml_options(text.len());
    options.strict_booleans = true;
    let mut docs: Vec<Node> = serde_saphyr::from_multiple_with_options(text, options).map_err(|e| {
        let line = e.location().map(|l| l.line()).unwrap_or(0);
        // The parser's message may quote the text: say only where.
        Error::Syntax(format!("YAML/JSON syntax error near line {line}"))
    })?;
    let Some(meta) = docs.first().and_then(|d| d.get(SOPS_KEY)) else {
        return Ok(None);
    };
    let meta = Metadata::from_node(meta).map_err(Error::Metadata)?;
    let key = data_key(&meta, ids)?;
    let mut mac = mac::Mac::new(meta.mac_only_encrypted);
    let mut sealed = Vec::new();
    for doc in &mut docs {
        if let Node::Map(entries) = doc {
            entries.retain(|(k, _)| k != SOPS_KEY);
        }
        let mut path = Vec::new();
        walk(
            doc,
            &mut path,
            &mut String::new(),
            &meta,
            &key,
            &mut mac,
            &mut sealed,
        )?;
    }
    mac.verify(&meta.mac, &key, &meta.lastmodified)?;
    let mut out = Zeroizing::new(Vec::with_capacity(data.len()));
    for doc in docs.into_iter().filter(|d| *d != Node::Null) {
        let value = Zeroizing::new(
            serde_json::to_vec(&tree::to_json(doc)).map_err(|e| Error::Syntax(e.to_string()))?,
        );
        out.extend_from_slice(&value);
        out.push(b'\n');
    }
    Ok(Some((out, Sealed::new(sealed))))
}

/// Unwrap the data key with the first identity that opens a stanza.
fn data_key(meta: &Metadata, ids: &[age::x25519::Identity]) -> Result<Zeroizing<[u8; KEY_LEN]>, Error> {
    for stanza in &meta.age {
        let reader = age::armor::ArmoredReader::new(stanza.enc.as_bytes());
        let Ok(decryptor) = age::Decryptor::new(reader) else {
            continue;
        };
        let Ok(mut payload) = decryptor.decrypt(ids.iter().map(|i| i as &dyn age::Identity)) else {
            continue;
        };
        let mut plain = Zeroizing::new(Vec::with_capacity(KEY_LEN));
        payload.read_to_end(&mut plain).map_err(|_| Error::DataKey)?;
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if plain.len() != KEY_LEN {
            return Err(Error::DataKey);
        }
        key.copy_from_slice(&plain);
        return Ok(key);
    }
    let recipients: Vec<&str> = meta.age.iter().map(|s| s.recipient.as_str()).collect();
    let others = if meta.other_keys.is_empty() {
        String::new()
    } else {
        format!(
            "; also {}, which the agent does not use",
            meta.other_keys.join(", ")
        )
    };
    Err(Error::NoMatchingKey {
        recipients: if recipients.is_empty() {
            "none for age".into()
        } else {
            recipients.join(", ")
        },
        others,
    })
}

/// Decrypt `node` in place (document order), feeding the MAC; `keys` is the map-key path (the AAD), `shown` the
/// path as `plan` prints it (`spec.list[0].x`).
fn walk<'n>(
    node: &'n mut Node,
    keys: &mut Vec<&'n str>,
    shown: &mut String,
    meta: &Metadata,
    key: &[u8; KEY_LEN],
    mac: &mut mac::Mac,
    sealed: &mut Vec<String>,
) -> Result<(), Error> {
    match node {
        Node::Map(entries) => {
            for (k, v) in entries.iter_mut() {
                let len = shown.len();
                if !shown.is_empty() {
                    shown.push('.');
                }
                shown.push_str(k);
                keys.push(k.as_str());
                walk(v, keys, shown, meta, key, mac, sealed)?;
                keys.pop();
                shown.truncate(len);
            }
        }
        Node::Seq(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                let len = shown.len();
                shown.push_str(&format!("[{i}]"));
                walk(v, keys, shown, meta, key, mac, sealed)?;
                shown.truncate(len);
            }
        }
        Node::Null => {}
        leaf => {
            if !meta.rules.encrypted(keys) {
                if let Some(bytes) = tree::plain_bytes(leaf) {
                    mac.add(&bytes, false);
                }
                return Ok(());
            }
            let Node::Str(text) = leaf else {
                return Err(Error::Value {
                    path: shown.clone(),
                    source: cipher::Error::Format,
                });
            };
            if text.is_empty() {
                return Ok(());
            }
            let value_err = |source| Error::Value {
                path: shown.clone(),
                source,
            };
            let enc = cipher::Sealed::parse(text).map_err(value_err)?;
            let plain = enc.open(key, &cipher::aad(keys)).map_err(value_err)?;
            let (value, hashed) = typed(enc.kind, &plain).ok_or_else(|| Error::Type {
                path: shown.clone(),
                kind: kind_name(enc.kind),
            })?;
            mac.add(&hashed, true);
            *leaf = value;
            sealed.push(shown.clone());
        }
    }
    Ok(())
}

/// The decrypted value as its declared type, and the bytes SOPS hashes for it.
fn typed(kind: Kind, plain: &[u8]) -> Option<(Node, Zeroizing<Vec<u8>>)> {
    let text = std::str::from_utf8(plain).ok();
    let node = match kind {
        Kind::Str | Kind::Time | Kind::Comment => Node::Str(text?.to_owned()),
        Kind::Bytes => Node::Str(String::from_utf8_lossy(plain).into_owned()),
        Kind::Int => Node::Int(text?.parse().ok()?),
        Kind::Float => Node::Float(text?.parse().ok()?),
        Kind::Bool => Node::Bool(match text? {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => true,
            "0" | "f" | "F" | "FALSE" | "false" | "False" => false,
            _ => return None,
        }),
    };
    let hashed = match kind {
        Kind::Str | Kind::Time | Kind::Comment | Kind::Bytes => Zeroizing::new(plain.to_vec()),
        _ => Zeroizing::new(tree::plain_bytes(&node)?),
    };
    Some((node, hashed))
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Str => "str",
        Kind::Int => "int",
        Kind::Float => "float",
        Kind::Bool => "bool",
        Kind::Bytes => "bytes",
        Kind::Time => "time",
        Kind::Comment => "comment",
    }
}

#[cfg(test)]
mod tests;
