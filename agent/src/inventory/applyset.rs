//! ApplySet (KEP-3659) naming, exactly as kubectl computes it, so kubectl recognises our parents and then
//! refuses to touch them because the tooling is ours.
//!
//! Parent: a Secret in the agent's namespace, one per bundle. Its id label is
//! `applyset-<base64url(sha256("<name>.<namespace>.Secret."))>-v1` (RFC 4648 URL-safe, unpadded); every
//! member carries that id in `applyset.kubernetes.io/part-of`.

use std::collections::BTreeSet;

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::object::ObjectKey;

/// Label on the parent: its id.
pub const ID_LABEL: &str = "applyset.kubernetes.io/id";
/// Label on every member: the id of its parent.
pub const PART_OF_LABEL: &str = "applyset.kubernetes.io/part-of";
/// Annotation on the parent: which tool manages the set (`outpost/<version>`).
pub const TOOLING_ANNOTATION: &str = "applyset.kubernetes.io/tooling";
/// Annotation on the parent: the kinds of its members, `Kind.group` sorted and comma-separated.
pub const GROUP_KINDS_ANNOTATION: &str = "applyset.kubernetes.io/contains-group-kinds";
/// Annotation on the parent: namespaces of members other than the parent's own.
pub const ADDITIONAL_NAMESPACES_ANNOTATION: &str = "applyset.kubernetes.io/additional-namespaces";
/// Our tooling value.
pub const TOOLING: &str = concat!("outpost/v", env!("CARGO_PKG_VERSION"));
/// Kind and group of our parents.
const PARENT_KIND: &str = "Secret";
const PARENT_GROUP: &str = "";
/// Prefix of parent names.
const PARENT_PREFIX: &str = "outpost-";
/// Longest readable part of a parent name; a hash follows, and names must stay under 253 characters.
const MAX_READABLE: usize = 40;

/// The ApplySet id of a parent Secret `name` in `namespace`.
pub fn id(name: &str, namespace: &str) -> String {
    let unencoded = [name, namespace, PARENT_KIND, PARENT_GROUP].join(".");
    let hashed = Sha256::digest(unencoded.as_bytes());
    format!(
        "applyset-{}-v1",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hashed)
    )
}

/// The parent Secret's name for a bundle: readable, DNS-safe, and unique per bundle name (a short hash of the
/// exact name follows, so `a_b` and `a-b` never collide). The exact name is kept in an annotation.
pub fn parent_name(bundle: &str) -> String {
    let mut readable: String = bundle
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    readable.truncate(MAX_READABLE);
    let readable = readable.trim_matches('-');
    let hash = crate::manifest::digest::hex(&Sha256::digest(bundle.as_bytes())[..4]);
    if readable.is_empty() {
        format!("{PARENT_PREFIX}{hash}")
    } else {
        format!("{PARENT_PREFIX}{readable}-{hash}")
    }
}

/// `contains-group-kinds` for these members.
pub fn group_kinds<'a>(members: impl IntoIterator<Item = &'a ObjectKey>) -> String {
    let set: BTreeSet<String> = members.into_iter().map(ObjectKey::group_kind).collect();
    set.into_iter().collect::<Vec<_>>().join(",")
}

/// `additional-namespaces` for these members of a parent in `parent_namespace`.
pub fn additional_namespaces<'a>(
    members: impl IntoIterator<Item = &'a ObjectKey>,
    parent_namespace: &str,
) -> String {
    let set: BTreeSet<&str> = members
        .into_iter()
        .filter_map(|k| k.namespace.as_deref())
        .filter(|ns| *ns != parent_namespace)
        .collect();
    set.into_iter().collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_matches_kubectl_for_a_secret_parent() {
        // kubectl: base64.RawURLEncoding(sha256("<name>.<namespace>.Secret.")) wrapped in applyset-...-v1.
        let expected_digest = Sha256::digest(b"outpost-web-1a2b3c4d.outpost-system.Secret.");
        let expected = format!(
            "applyset-{}-v1",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(expected_digest)
        );
        let got = id("outpost-web-1a2b3c4d", "outpost-system");
        assert_eq!(got, expected);
        assert_eq!(got.len(), "applyset-".len() + 43 + "-v1".len());
        assert!(!got.contains('=') && !got.contains('+') && !got.contains('/'));
    }

    #[test]
    fn parent_names_are_dns_safe_and_never_collide() {
        let a = parent_name("123-web");
        let b = parent_name("_root");
        let c = parent_name("a_b");
        let d = parent_name("a-b");
        assert!(a.starts_with("outpost-123-web-"), "{a}");
        assert!(b.starts_with("outpost-root-"), "{b}");
        assert_ne!(c, d);
        for n in [a, b, c, d, parent_name(&"x".repeat(300)), parent_name("___")] {
            assert!(n.len() < 64, "{n}");
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{n}"
            );
            assert!(!n.ends_with('-'), "{n}");
        }
    }

    #[test]
    fn group_kinds_and_namespaces_are_sorted_and_unique() {
        let key = |g: &str, k: &str, ns: Option<&str>| ObjectKey {
            group: g.into(),
            kind: k.into(),
            namespace: ns.map(Into::into),
            name: "x".into(),
        };
        let members = [
            key("apps", "Deployment", Some("web")),
            key("", "ConfigMap", Some("outpost-system")),
            key("", "ConfigMap", Some("db")),
            key("rbac.authorization.k8s.io", "ClusterRole", None),
        ];
        assert_eq!(
            group_kinds(&members),
            "ClusterRole.rbac.authorization.k8s.io,ConfigMap,Deployment.apps"
        );
        assert_eq!(additional_namespaces(&members, "outpost-system"), "db,web");
    }
}
