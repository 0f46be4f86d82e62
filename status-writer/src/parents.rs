//! Which inventory parents in the agent namespace belong to this writer's cluster, which of two parents of
//! one bundle counts while the agent migrates one named by the previous layout (without the cluster) to its
//! current name (the current one), and which parents can be read at all: one a newer Outpost wrote in a format
//! this writer does not know is skipped with a warning, never misread.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use outpost_agent::inventory::applyset;
use outpost_agent::inventory::store::{BUNDLE_ANNOTATION, CLUSTER_ANNOTATION, decode};
use outpost_agent::inventory::{Error, Inventory};
use tracing::warn;

/// How a parent Secret of our cluster is named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Naming {
    /// Its current, per-cluster name.
    Current,
    /// The previous layout's name, which the agent migrates: its current parent wins over it.
    Legacy,
}

/// How `secret` is named if it is a parent of `cluster`'s, `None` if it is not ours.
pub fn parent_kind(secret: &Secret, cluster: &str) -> Option<Naming> {
    let annotations = secret.annotations();
    if annotations.get(CLUSTER_ANNOTATION).map(String::as_str) != Some(cluster) {
        return None;
    }
    let bundle = annotations.get(BUNDLE_ANNOTATION)?;
    let name = secret.name_any();
    if name == applyset::parent_name(cluster, bundle) {
        Some(Naming::Current)
    } else if name == applyset::legacy_parent_name(bundle) {
        Some(Naming::Legacy)
    } else {
        None
    }
}

/// The bundle a parent of ours belongs to (its annotation: readable whatever the parent's format).
pub fn bundle_of(secret: &Secret) -> Option<String> {
    secret.annotations().get(BUNDLE_ANNOTATION).cloned()
}

/// The inventory in `secret`, or `None` with a warning naming the parent when it cannot be read: a newer
/// Outpost wrote it in a format this writer does not know, or it is corrupt. Nothing of it is reported then
/// (a bundle already known keeps its last readable inventory).
pub fn read(secret: &Secret) -> Option<Inventory> {
    match decode(secret) {
        Ok(inv) => Some(inv),
        Err(e @ Error::NewerFormat { .. }) => {
            let parent = secret.name_any();
            warn!(%parent, error = %e, "Inventory of a newer Outpost skipped: upgrade the status writer");
            None
        }
        Err(e @ Error::Corrupt { .. }) => {
            warn!(parent = %secret.name_any(), error = %e, "Unreadable inventory skipped");
            None
        }
    }
}

/// Record `inv` by bundle; a parent of the previous layout never replaces a current one.
pub fn put(inventories: &mut BTreeMap<String, Inventory>, inv: Inventory, naming: Option<Naming>) {
    if naming == Some(Naming::Legacy) {
        inventories.entry(inv.info.bundle.clone()).or_insert(inv);
    } else {
        inventories.insert(inv.info.bundle.clone(), inv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;
    use outpost_agent::inventory::{BundleInfo, format};

    fn parent(name: &str, cluster: &str, bundle: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                annotations: Some(
                    [(CLUSTER_ANNOTATION, cluster), (BUNDLE_ANNOTATION, bundle)]
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .into(),
                ),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn only_our_clusters_parents_under_their_current_or_previous_name_count() {
        let current = applyset::parent_name("p+c", "web");
        let legacy = applyset::legacy_parent_name("web");
        assert_eq!(
            parent_kind(&parent(&current, "p+c", "web"), "p+c"),
            Some(Naming::Current)
        );
        assert_eq!(
            parent_kind(&parent(&legacy, "p+c", "web"), "p+c"),
            Some(Naming::Legacy)
        );
        assert_eq!(parent_kind(&parent(&current, "p+c", "web"), "p+d"), None);
        assert_eq!(parent_kind(&parent("outpost-copy", "p+c", "web"), "p+c"), None);
    }

    #[test]
    fn a_parent_of_a_newer_format_is_skipped_not_misread() {
        let name = applyset::parent_name("edge", "web");
        let mut secret = parent(&name, "edge", "web");
        let annotations = secret.metadata.annotations.get_or_insert_default();
        annotations.insert(
            format::FORMAT_ANNOTATION.into(),
            (format::CURRENT + 1).to_string(),
        );
        assert_eq!(parent_kind(&secret, "edge"), Some(Naming::Current));
        assert_eq!(bundle_of(&secret).as_deref(), Some("web"));
        assert!(read(&secret).is_none());
        assert!(matches!(decode(&secret), Err(Error::NewerFormat { .. })));
    }

    #[test]
    fn a_legacy_parent_never_replaces_the_current_one() {
        let inv = |dir: &str| {
            Inventory::new(BundleInfo {
                bundle: "web".into(),
                dir: dir.into(),
                ..Default::default()
            })
        };
        let mut map = BTreeMap::new();
        put(&mut map, inv("current"), Some(Naming::Current));
        put(&mut map, inv("legacy"), Some(Naming::Legacy));
        assert_eq!(map["web"].info.dir, "current");
        let mut map = BTreeMap::new();
        put(&mut map, inv("legacy"), Some(Naming::Legacy));
        put(&mut map, inv("current"), Some(Naming::Current));
        assert_eq!(map["web"].info.dir, "current");
    }
}
