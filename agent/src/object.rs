//! Object identity shared by every stage: group, kind, namespace and name, with the namespace already
//! settled by discovery (`None` for cluster-scoped kinds).

use serde::{Deserialize, Serialize};

/// Identity of a managed object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectKey {
    /// API group (empty for core).
    #[serde(rename = "g", default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Kind.
    #[serde(rename = "k")]
    pub kind: String,
    /// Namespace; `None` for cluster-scoped kinds.
    #[serde(rename = "ns", default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    #[serde(rename = "n")]
    pub name: String,
}

impl ObjectKey {
    /// `Kind.group`, or `Kind` for the core group: the format of ApplySet's contains-group-kinds.
    pub fn group_kind(&self) -> String {
        group_kind(&self.group, &self.kind)
    }
}

/// `Kind.group`, or `Kind` for the core group.
pub fn group_kind(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}.{group}")
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{ns}/{}", self.group_kind(), self.name),
            None => write!(f, "{}/{}", self.group_kind(), self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_group_kind_follow_kubectl_format() {
        let k = ObjectKey {
            group: "apps".into(),
            kind: "Deployment".into(),
            namespace: Some("web".into()),
            name: "api".into(),
        };
        assert_eq!(k.to_string(), "Deployment.apps/web/api");
        assert_eq!(group_kind("", "ConfigMap"), "ConfigMap");
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(json, r#"{"g":"apps","k":"Deployment","ns":"web","n":"api"}"#);
        assert_eq!(serde_json::from_str::<ObjectKey>(&json).unwrap(), k);
    }
}
