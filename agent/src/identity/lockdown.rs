//! `--no-cluster-scoped`: bundles may write only namespaced objects, plus the cluster-scoped kinds listed in
//! `--allowed-cluster-scoped-kinds`. A namespaced ServiceAccount cannot be trusted with cluster-wide objects
//! anyway, and a ClusterRole or a webhook is how a bundle would reach past its namespaces.
//!
//! Kinds are written `Kind` for the core group (`Namespace`) and `group/Kind` otherwise
//! (`rbac.authorization.k8s.io/ClusterRole`); kubectl's `Kind.group` is read too.

use std::collections::BTreeSet;

use crate::object::ObjectKey;

/// Which cluster-scoped kinds bundles may write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterScoped {
    /// `--no-cluster-scoped`: refuse those not allowed.
    pub refuse: bool,
    /// `--allowed-cluster-scoped-kinds`: (group, kind) pairs.
    pub allowed: BTreeSet<(String, String)>,
}

/// An allowed-kind entry that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{0:?} is not a kind: write Kind for the core group (Namespace) or group/Kind (rbac.authorization.k8s.io/ClusterRole)"
)]
pub struct BadKind(pub String);

impl ClusterScoped {
    /// The policy of `--no-cluster-scoped` (`refuse`) with the comma-separated `allowed` kinds.
    pub fn new(refuse: bool, allowed: &[String]) -> Result<Self, BadKind> {
        let allowed = allowed
            .iter()
            .map(|k| k.trim())
            .filter(|k| !k.is_empty())
            .map(parse_kind)
            .collect::<Result<_, _>>()?;
        Ok(ClusterScoped { refuse, allowed })
    }

    /// Why the settled object `key` may not be written, if it may not: it is cluster-scoped (no namespace) and
    /// its kind is not allowed.
    pub fn refusal(&self, key: &ObjectKey) -> Option<String> {
        if !self.refuse || key.namespace.is_some() {
            return None;
        }
        if self.allowed.contains(&(key.group.clone(), key.kind.clone())) {
            return None;
        }
        let written = if key.group.is_empty() {
            key.kind.clone()
        } else {
            format!("{}/{}", key.group, key.kind)
        };
        Some(format!(
            "cluster-scoped kind {written} is refused by --no-cluster-scoped; add {written} to --allowed-cluster-scoped-kinds to allow it; nothing of this bundle was applied"
        ))
    }
}

/// `Kind`, `group/Kind` or `Kind.group` as (group, kind).
fn parse_kind(text: &str) -> Result<(String, String), BadKind> {
    let bad = || BadKind(text.to_owned());
    let (group, kind) = match (text.split_once('/'), text.split_once('.')) {
        (Some(("", _)), _) => return Err(bad()),
        (Some((group, kind)), _) => (group, kind),
        (None, Some((kind, group))) => (group, kind),
        (None, None) => ("", text),
    };
    let word = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    };
    if !word(kind) || kind.contains('.') || !kind.starts_with(|c: char| c.is_ascii_uppercase()) {
        return Err(bad());
    }
    if !group.is_empty() && !word(group) {
        return Err(bad());
    }
    Ok((group.to_owned(), kind.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(group: &str, kind: &str, namespace: Option<&str>) -> ObjectKey {
        ObjectKey {
            group: group.into(),
            kind: kind.into(),
            namespace: namespace.map(str::to_owned),
            name: "x".into(),
        }
    }

    #[test]
    fn kinds_parse_in_both_spellings() {
        let list: Vec<String> = [
            "Namespace",
            " rbac.authorization.k8s.io/ClusterRole",
            "PriorityClass.scheduling.k8s.io",
            "",
        ]
        .map(String::from)
        .to_vec();
        let policy = ClusterScoped::new(true, &list).unwrap();
        assert!(policy.allowed.contains(&(String::new(), "Namespace".into())));
        assert!(
            policy
                .allowed
                .contains(&("rbac.authorization.k8s.io".into(), "ClusterRole".into()))
        );
        assert!(
            policy
                .allowed
                .contains(&("scheduling.k8s.io".into(), "PriorityClass".into()))
        );
        for bad in ["namespace", "rbac/", "/ClusterRole", "a b"] {
            assert!(ClusterScoped::new(true, &[bad.to_owned()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_unlisted_cluster_scoped_kinds_are_refused_and_only_when_asked() {
        let policy = ClusterScoped::new(true, &["Namespace".to_owned()]).unwrap();
        let role = key("rbac.authorization.k8s.io", "ClusterRole", None);
        let text = policy.refusal(&role).unwrap();
        assert!(text.contains("rbac.authorization.k8s.io/ClusterRole"), "{text}");
        assert!(text.contains("--no-cluster-scoped") && text.contains("--allowed-cluster-scoped-kinds"));
        assert_eq!(policy.refusal(&key("", "Namespace", None)), None);
        assert_eq!(policy.refusal(&key("", "ConfigMap", Some("a"))), None);
        assert_eq!(ClusterScoped::default().refusal(&role), None);
    }
}
