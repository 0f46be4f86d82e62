//! The `sops:` block: who can unwrap the data key (age recipients with their armored stanzas), the encrypted
//! MAC and the time it is bound to, and which values are encrypted (suffix and regex rules). `version` is not
//! checked: the format has not changed since SOPS 3.0.

use regex::Regex;

use super::tree::Node;

/// One age recipient and the data key encrypted to it.
#[derive(Debug)]
pub struct AgeStanza {
    /// `age1…` (public).
    pub recipient: String,
    /// The data key as an armored age file.
    pub enc: String,
}

/// Which values SOPS encrypted, from the `*_suffix` and `*_regex` settings.
#[derive(Debug, Default)]
pub struct Rules {
    unencrypted_suffix: Option<String>,
    encrypted_suffix: Option<String>,
    unencrypted_regex: Option<Regex>,
    encrypted_regex: Option<Regex>,
}

impl Rules {
    /// SOPS's `shouldBeEncrypted`: whether the value at `path` (its map keys) is encrypted.
    pub fn encrypted(&self, path: &[&str]) -> bool {
        let mut encrypted = true;
        if let Some(s) = &self.unencrypted_suffix
            && path.iter().any(|k| k.ends_with(s.as_str()))
        {
            encrypted = false;
        }
        if let Some(s) = &self.encrypted_suffix {
            encrypted = path.iter().any(|k| k.ends_with(s.as_str()));
        }
        if let Some(r) = &self.unencrypted_regex
            && path.iter().any(|k| r.is_match(k))
        {
            encrypted = false;
        }
        if let Some(r) = &self.encrypted_regex {
            encrypted = path.iter().any(|k| r.is_match(k));
        }
        encrypted
    }
}

/// A file's SOPS metadata.
#[derive(Debug)]
pub struct Metadata {
    /// Age recipients (top level and key groups).
    pub age: Vec<AgeStanza>,
    /// Other key types present (pgp, kms…), for the error when no age key matches.
    pub other_keys: Vec<&'static str>,
    /// The encrypted MAC (`ENC[…]`).
    pub mac: String,
    /// `lastmodified` as SOPS formats it for the MAC's additional data (RFC 3339, whole seconds).
    pub lastmodified: String,
    /// `mac_only_encrypted`.
    pub mac_only_encrypted: bool,
    /// What is encrypted.
    pub rules: Rules,
}

/// Key types SOPS knows besides age.
const OTHER_KEYS: &[&str] = &["pgp", "kms", "gcp_kms", "azure_kv", "hc_vault", "hckms"];

impl Metadata {
    /// Read the `sops` mapping; the error says which field is wrong.
    pub fn from_node(node: &Node) -> Result<Metadata, String> {
        let Node::Map(_) = node else {
            return Err("the sops entry is not a mapping".into());
        };
        let text = |key: &str| node.get(key).and_then(Node::as_str).filter(|s| !s.is_empty());
        for key in ["unencrypted_comment_regex", "encrypted_comment_regex"] {
            if text(key).is_some() {
                return Err(format!(
                    "sops {key} is not supported; use encrypted_regex or unencrypted_suffix"
                ));
            }
        }
        let regex = |key: &str| {
            text(key)
                .map(|r| Regex::new(r).map_err(|e| format!("sops {key} is not a valid regex: {e}")))
                .transpose()
        };
        let mut age = Vec::new();
        let mut other_keys = Vec::new();
        let mut groups = vec![node];
        if let Some(Node::Seq(kg)) = node.get("key_groups") {
            let threshold = match node.get("shamir_threshold") {
                Some(Node::Int(t)) => *t,
                _ => 0,
            };
            if kg.len() > 1 && threshold > 1 {
                return Err("Shamir secret sharing across key groups is not supported".into());
            }
            groups.extend(kg.iter());
        }
        for group in groups {
            if let Some(Node::Seq(keys)) = group.get("age") {
                for k in keys {
                    let (Some(recipient), Some(enc)) = (
                        k.get("recipient").and_then(Node::as_str),
                        k.get("enc").and_then(Node::as_str),
                    ) else {
                        return Err("an age entry of the sops block lacks recipient or enc".into());
                    };
                    age.push(AgeStanza {
                        recipient: recipient.to_owned(),
                        enc: enc.to_owned(),
                    });
                }
            }
            for kind in OTHER_KEYS {
                if matches!(group.get(kind), Some(Node::Seq(v)) if !v.is_empty())
                    && !other_keys.contains(kind)
                {
                    other_keys.push(*kind);
                }
            }
        }
        let mac = text("mac").ok_or("the sops block has no mac")?.to_owned();
        let lastmodified = text("lastmodified").ok_or("the sops block has no lastmodified")?;
        Ok(Metadata {
            age,
            other_keys,
            mac,
            lastmodified: whole_seconds(lastmodified),
            mac_only_encrypted: matches!(node.get("mac_only_encrypted"), Some(Node::Bool(true))),
            rules: Rules {
                unencrypted_suffix: text("unencrypted_suffix").map(str::to_owned),
                encrypted_suffix: text("encrypted_suffix").map(str::to_owned),
                unencrypted_regex: regex("unencrypted_regex")?,
                encrypted_regex: regex("encrypted_regex")?,
            },
        })
    }
}

/// Go formats `lastmodified` with `time.RFC3339` for the MAC's additional data: fractional seconds dropped.
fn whole_seconds(t: &str) -> String {
    match t.split_once('.') {
        Some((head, rest)) => {
            let zone = rest.trim_start_matches(|c: char| c.is_ascii_digit());
            format!("{head}{zone}")
        }
        None => t.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(yaml: &str) -> Rules {
        let node: Node =
            serde_saphyr::from_str(&format!("mac: x\nlastmodified: '2024-01-01T00:00:00Z'\n{yaml}"))
                .expect("parses");
        Metadata::from_node(&node).expect("valid").rules
    }

    #[test]
    fn rules_decide_as_sops_does() {
        let all = rules("");
        assert!(all.encrypted(&["data", "password"]));
        let suffix = rules("unencrypted_suffix: _unencrypted\n");
        assert!(!suffix.encrypted(&["spec_unencrypted", "x"]));
        assert!(suffix.encrypted(&["spec", "x"]));
        let regex = rules("encrypted_regex: ^(data|stringData)$\n");
        assert!(regex.encrypted(&["data", "password"]));
        assert!(!regex.encrypted(&["metadata", "name"]));
    }

    #[test]
    fn lastmodified_loses_fractional_seconds() {
        assert_eq!(
            whole_seconds("2024-05-01T10:00:00.123456Z"),
            "2024-05-01T10:00:00Z"
        );
        assert_eq!(
            whole_seconds("2024-05-01T10:00:00+02:00"),
            "2024-05-01T10:00:00+02:00"
        );
    }

    #[test]
    fn comment_rules_and_shamir_are_refused_clearly() {
        let node: Node =
            serde_saphyr::from_str("mac: x\nlastmodified: t\nencrypted_comment_regex: sops\n").unwrap();
        assert!(
            Metadata::from_node(&node)
                .unwrap_err()
                .contains("encrypted_comment_regex")
        );
    }
}
