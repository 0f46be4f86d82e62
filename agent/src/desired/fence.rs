//! What Git may not write: the agent's own namespace (its inventories, credentials Secret, Lease and
//! ServiceAccount live there) unless `--allow-own-namespace` is given, and never anything shaped like one of
//! our inventory parents, which would be read back as ours and decide what gets pruned.

use serde_json::Value;

use crate::inventory::applyset::{INVENTORY_LABEL, SECRET_TYPE};
use crate::object::ObjectKey;

/// Why an object was refused before it was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// It lives in (or is) the agent's namespace.
    #[error(
        "{field} is the agent's own namespace {namespace} (its inventories, credentials and Lease live there); \
         move the object elsewhere, or run the agent with --allow-own-namespace"
    )]
    OwnNamespace {
        /// The field that names the namespace.
        field: &'static str,
        /// The agent's namespace.
        namespace: String,
    },
    /// It would pass for one of the agent's inventory parents.
    #[error(
        "{field} marks it as an Outpost inventory, which only the agent writes; remove the label or type"
    )]
    ForgedInventory {
        /// The field that gives it away.
        field: &'static str,
    },
}

/// The agent's namespace and whether Git may write into it.
#[derive(Debug, Clone)]
pub struct Fence {
    /// `--namespace`.
    pub namespace: String,
    /// `--allow-own-namespace`.
    pub allow_own_namespace: bool,
}

impl Fence {
    /// Why `key` (settled) with `body` (JSON, read only for Secrets) may not be applied, if it may not.
    pub fn check(&self, key: &ObjectKey, body: &str) -> Option<Refusal> {
        if let Some(field) = forged_inventory(key, body) {
            return Some(Refusal::ForgedInventory { field });
        }
        if self.allow_own_namespace {
            return None;
        }
        let field = if key.namespace.as_deref() == Some(&self.namespace) {
            "metadata.namespace"
        } else if key.group.is_empty() && key.kind == "Namespace" && key.name == self.namespace {
            "metadata.name"
        } else {
            return None;
        };
        Some(Refusal::OwnNamespace {
            field,
            namespace: self.namespace.clone(),
        })
    }
}

/// The field by which a Secret passes for an inventory parent, if it does.
fn forged_inventory(key: &ObjectKey, body: &str) -> Option<&'static str> {
    if !(key.group.is_empty() && key.kind == "Secret") {
        return None;
    }
    let body: Value = serde_json::from_str(body).ok()?;
    if body.pointer("/type").and_then(Value::as_str) == Some(SECRET_TYPE) {
        return Some("type");
    }
    let labels = body.pointer("/metadata/labels").and_then(Value::as_object)?;
    labels.contains_key(INVENTORY_LABEL).then_some("metadata.labels")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(kind: &str, namespace: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey {
            group: String::new(),
            kind: kind.into(),
            namespace: namespace.map(str::to_owned),
            name: name.into(),
        }
    }

    fn fence(allow: bool) -> Fence {
        Fence {
            namespace: "outpost".into(),
            allow_own_namespace: allow,
        }
    }

    #[test]
    fn the_agent_namespace_and_its_namespace_object_are_refused_unless_allowed() {
        let cm = key("ConfigMap", Some("outpost"), "c");
        let ns = key("Namespace", None, "outpost");
        let elsewhere = key("ConfigMap", Some("apps"), "c");
        let refusal = fence(false).check(&cm, "{}").unwrap();
        assert!(refusal.to_string().contains("metadata.namespace"), "{refusal}");
        assert!(refusal.to_string().contains("--allow-own-namespace"), "{refusal}");
        assert!(matches!(
            fence(false).check(&ns, "{}"),
            Some(Refusal::OwnNamespace {
                field: "metadata.name",
                ..
            })
        ));
        assert_eq!(fence(false).check(&elsewhere, "{}"), None);
        assert_eq!(fence(true).check(&cm, "{}"), None);
        assert_eq!(fence(true).check(&ns, "{}"), None);
    }

    #[test]
    fn secrets_shaped_like_inventories_are_refused_anywhere_even_when_allowed() {
        let secret = key("Secret", Some("apps"), "s");
        let labelled = json!({"metadata": {"labels": {INVENTORY_LABEL: "v1"}}});
        let typed = json!({"type": SECRET_TYPE});
        for (body, field) in [(labelled, "metadata.labels"), (typed, "type")] {
            assert_eq!(
                fence(true).check(&secret, &body.to_string()),
                Some(Refusal::ForgedInventory { field })
            );
        }
        let plain = json!({"type": "Opaque", "metadata": {"labels": {"app": "x"}}});
        assert_eq!(fence(true).check(&secret, &plain.to_string()), None);
        let config = key("ConfigMap", Some("apps"), "s");
        let labelled = json!({"metadata": {"labels": {INVENTORY_LABEL: "v1"}}});
        assert_eq!(fence(true).check(&config, &labelled.to_string()), None);
    }
}
