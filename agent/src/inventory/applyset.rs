//! ApplySet (KEP-3659) naming, exactly as kubectl computes it, so kubectl recognises our parents and then
//! refuses to touch them because the tooling is ours.
//!
//! Parent: a Secret in the agent's namespace, one per cluster and bundle (agents of several clusters may share
//! the namespace). Its id label is
//! `applyset-<base64url(sha256("<name>.<namespace>.Secret."))>-v1` (RFC 4648 URL-safe, unpadded); every
//! member carries that id in `applyset.kubernetes.io/part-of`.

use std::collections::BTreeSet;

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::object::ObjectKey;

/// Label selecting our parents (here rather than in `store`, so that what refuses forged parents need not
/// depend on the store).
pub const INVENTORY_LABEL: &str = "outpost.dev/inventory";
/// Secret type of our parents, so `kubectl get secrets` shows what they are.
pub const SECRET_TYPE: &str = "outpost.dev/inventory";

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
/// Longest readable cluster part of a parent name.
const MAX_READABLE_CLUSTER: usize = 18;
/// Longest readable bundle part of a parent name.
const MAX_READABLE_BUNDLE: usize = 22;
/// Bytes of sha256 in the hash that makes a name unique: 48 bits keep ten thousand parents in one namespace
/// clear of collisions (the readable parts are truncated and lossy, so the hash alone must separate them).
const HASH_BYTES: usize = 6;
/// Longest readable part of a parent name of the previous layout (before names carried the cluster).
const LEGACY_MAX_READABLE: usize = 40;

/// The ApplySet id of a parent Secret `name` in `namespace`.
pub fn id(name: &str, namespace: &str) -> String {
    let unencoded = [name, namespace, PARENT_KIND, PARENT_GROUP].join(".");
    let hashed = Sha256::digest(unencoded.as_bytes());
    format!(
        "applyset-{}-v1",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hashed)
    )
}

/// The parent Secret's name for `cluster`'s `bundle`: readable, DNS-safe (at most 62 characters, so it also
/// fits a label value), and unique per cluster and bundle, since agents of several clusters may share one
/// namespace. A hash of the exact names follows the readable parts, so `a_b` and `a-b`, or `p+c` and `p-c`,
/// never collide. The exact names are kept in annotations.
pub fn parent_name(cluster: &str, bundle: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(cluster.as_bytes());
    hasher.update([0]);
    hasher.update(bundle.as_bytes());
    let hash = crate::manifest::digest::hex(&hasher.finalize()[..HASH_BYTES]);
    let parts = [
        readable(cluster, MAX_READABLE_CLUSTER),
        readable(bundle, MAX_READABLE_BUNDLE),
        hash,
    ];
    let parts: Vec<&str> = parts
        .iter()
        .map(String::as_str)
        .filter(|p| !p.is_empty())
        .collect();
    format!("{PARENT_PREFIX}{}", parts.join("-"))
}

/// The parent name of the previous layout, which did not include the cluster: two agents of different clusters
/// sharing a namespace overwrote each other's parents. Only read to migrate such parents
/// ([`super::migrate`]).
pub fn legacy_parent_name(bundle: &str) -> String {
    let readable = readable(bundle, LEGACY_MAX_READABLE);
    let hash = crate::manifest::digest::hex(&Sha256::digest(bundle.as_bytes())[..4]);
    if readable.is_empty() {
        format!("{PARENT_PREFIX}{hash}")
    } else {
        format!("{PARENT_PREFIX}{readable}-{hash}")
    }
}

/// `name` lowercased, every other character than ASCII letters and digits turned into `-`, cut to `max`
/// characters, without leading or trailing `-`.
fn readable(name: &str, max: usize) -> String {
    let mut readable: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    readable.truncate(max);
    readable.trim_matches('-').to_owned()
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
        let a = parent_name("edge", "123-web");
        let b = parent_name("edge", "_root");
        let c = parent_name("edge", "a_b");
        let d = parent_name("edge", "a-b");
        assert!(a.starts_with("outpost-edge-123-web-"), "{a}");
        assert!(b.starts_with("outpost-edge-root-"), "{b}");
        assert_ne!(c, d);
        let long = "x".repeat(300);
        for n in [
            a,
            b,
            c,
            d,
            parent_name(&long, &long),
            parent_name("___", "___"),
            parent_name("p+c", ""),
        ] {
            assert!(n.len() < 64, "{n}");
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{n}"
            );
            assert!(!n.ends_with('-') && !n.contains("--"), "{n}");
        }
    }

    #[test]
    fn parent_names_differ_per_cluster_and_from_the_previous_layout() {
        // Two agents for different clusters sharing a namespace, each with a bundle `web`.
        assert_ne!(parent_name("p+c1", "web"), parent_name("p+c2", "web"));
        // Readable parts that sanitise to the same text still differ by their hash.
        assert_ne!(parent_name("p+c", "web"), parent_name("p-c", "web"));
        // The cluster/bundle boundary is part of the hash: ("ab", "c") is not ("a", "bc").
        assert_ne!(parent_name("ab", "c"), parent_name("a", "bc"));
        assert_ne!(parent_name("edge", "web"), legacy_parent_name("web"));
        assert!(parent_name("p+edge-1", "100-web").starts_with("outpost-p-edge-1-100-web-"));
    }

    #[test]
    fn the_legacy_name_is_what_the_previous_layout_wrote() {
        // outpost-<readable bundle>-<hex of the first 4 bytes of sha256(bundle)>.
        let hash = crate::manifest::digest::hex(&Sha256::digest(b"123-web")[..4]);
        assert_eq!(legacy_parent_name("123-web"), format!("outpost-123-web-{hash}"));
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
