//! Bundle dependencies (`dependsOn` in a bundle's `outpost.yaml`): the order bundles are applied in, and
//! whether a bundle's dependencies are healthy enough for it to go ahead.

use std::collections::{BTreeMap, BTreeSet};

use kube::Client;

use crate::desired::DesiredObject;
use crate::health::{Health, bundle};

/// A dependency problem that blocks one bundle.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// It depends on a bundle that is not in Git.
    #[error("depends on bundle {0:?}, which is not in this cluster's path")]
    Unknown(String),
    /// Bundles depend on each other in a circle.
    #[error("dependency cycle through {0}")]
    Cycle(String),
}

impl Error {
    /// The kind of failure, as a bounded metric label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Unknown(_) => "unknown_dependency",
            Error::Cycle(_) => "dependency_cycle",
        }
    }
}

/// Bundles in waves: every bundle's dependencies are in earlier waves. Bundles with unknown dependencies or in
/// cycles are returned apart with their error and never applied.
pub fn waves(depends_on: &BTreeMap<String, Vec<String>>) -> (Vec<Vec<String>>, BTreeMap<String, Error>) {
    let mut blocked = BTreeMap::new();
    for (bundle, deps) in depends_on {
        if let Some(missing) = deps.iter().find(|d| !depends_on.contains_key(*d)) {
            blocked.insert(bundle.clone(), Error::Unknown(missing.clone()));
        }
    }
    let mut placed: BTreeSet<String> = BTreeSet::new();
    let mut waves = Vec::new();
    loop {
        let wave: Vec<String> = depends_on
            .iter()
            .filter(|(b, _)| !placed.contains(*b) && !blocked.contains_key(*b))
            .filter(|(_, deps)| deps.iter().all(|d| placed.contains(d)))
            .map(|(b, _)| b.clone())
            .collect();
        if wave.is_empty() {
            break;
        }
        placed.extend(wave.iter().cloned());
        waves.push(wave);
    }
    for bundle in depends_on.keys() {
        if !placed.contains(bundle) && !blocked.contains_key(bundle) {
            // Either in a cycle or depending on a blocked bundle.
            let reason = match depends_on[bundle].iter().find(|d| blocked.contains_key(*d)) {
                Some(dep) => Error::Unknown(format!("{dep} (blocked)")),
                None => Error::Cycle(bundle.clone()),
            };
            blocked.insert(bundle.clone(), reason);
        }
    }
    (waves, blocked)
}

/// Health of a bundle from its desired objects' live state (one GET each), judged as `status` judges it
/// ([`bundle`]).
pub async fn bundle_health(client: &Client, objects: &[std::sync::Arc<DesiredObject>]) -> Health {
    let mut healths = Vec::with_capacity(objects.len());
    for o in objects {
        let Some(resolved) = &o.resolved else {
            healths.push((o.key.to_string(), bundle::unknown("kind not resolved yet")));
            continue;
        };
        let api = resolved.api(client, o.key.namespace.as_deref());
        healths.push((o.key.to_string(), bundle::member(api.get_opt(&o.key.name).await)));
    }
    bundle::summarize(healths.iter().map(|(n, h)| (n.as_str(), h)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        edges
            .iter()
            .map(|(b, d)| (b.to_string(), d.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn dependencies_come_in_earlier_waves() {
        let (waves, blocked) = waves(&graph(&[
            ("app", &["db", "cache"]),
            ("db", &[]),
            ("cache", &["db"]),
            ("x", &[]),
        ]));
        assert_eq!(
            waves,
            vec![
                vec!["db".to_string(), "x".into()],
                vec!["cache".into()],
                vec!["app".into()]
            ]
        );
        assert!(blocked.is_empty());
    }

    #[test]
    fn unknown_dependencies_and_cycles_block_only_their_bundles() {
        let (waves, blocked) = waves(&graph(&[
            ("a", &["b"]),
            ("b", &["a"]),
            ("c", &["nope"]),
            ("d", &["c"]),
            ("e", &[]),
        ]));
        assert_eq!(waves, vec![vec!["e".to_string()]]);
        assert_eq!(blocked["a"], Error::Cycle("a".into()));
        assert_eq!(blocked["c"], Error::Unknown("nope".into()));
        assert!(matches!(blocked["d"], Error::Unknown(_)));
    }
}
