//! Digests of desired objects and bundles: sha256 over canonical JSON (keys sorted, no whitespace).
//!
//! serde_json's map is a BTreeMap (we never enable `preserve_order`), so serialising a `Value` is already
//! canonical: the same object always yields the same digest, whatever the key order in the file.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Hex sha256 of the canonical JSON of `value`.
pub fn of_value(value: &Value) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    hex(&Sha256::digest(&bytes))
}

/// Hex sha256 over a list of member digests, order-independent.
pub fn of_members<'a>(digests: impl IntoIterator<Item = &'a str>) -> String {
    let mut sorted: Vec<&str> = digests.into_iter().collect();
    sorted.sort_unstable();
    let mut hasher = Sha256::new();
    for d in sorted {
        hasher.update(d.as_bytes());
        hasher.update(b"\n");
    }
    hex(&hasher.finalize())
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_does_not_change_the_digest() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":2,"x":3}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":3,"y":2},"b":1}"#).unwrap();
        assert_eq!(of_value(&a), of_value(&b));
        let c: Value = serde_json::from_str(r#"{"a":{"x":3,"y":2},"b":2}"#).unwrap();
        assert_ne!(of_value(&a), of_value(&c));
    }

    #[test]
    fn bundle_digest_ignores_member_order() {
        assert_eq!(of_members(["a", "b"]), of_members(["b", "a"]));
        assert_ne!(of_members(["a", "b"]), of_members(["a", "c"]));
    }
}
