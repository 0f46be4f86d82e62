//! Which pods a bundle's status lists: those its tracker's selector matches (Kubernetes label selector
//! semantics) in the namespaces the bundle's members live in, or, without a tracker, those its workloads'
//! selectors match. Data enters as the watch [`Snapshot`] and one [`Inventory`] and leaves as pod objects for
//! the renderer.

use std::collections::{BTreeMap, BTreeSet};

use outpost_agent::inventory::Inventory;
use serde_json::Value;

use crate::watch::Snapshot;

/// Whether `labels` satisfy a Kubernetes label selector (`matchLabels`, `matchExpressions`).
pub fn selector_matches(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    if let Some(Value::Object(ml)) = selector.get("matchLabels") {
        for (k, v) in ml {
            if labels.get(k).map(String::as_str) != v.as_str() {
                return false;
            }
        }
    }
    if let Some(Value::Array(exprs)) = selector.get("matchExpressions") {
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let have = labels.get(key).map(String::as_str);
            let ok = match e.get("operator").and_then(Value::as_str) {
                Some("In") => have.is_some_and(|h| values.contains(&h)),
                Some("NotIn") => !have.is_some_and(|h| values.contains(&h)),
                Some("Exists") => have.is_some(),
                Some("DoesNotExist") => have.is_none(),
                _ => false,
            };
            if !ok {
                return false;
            }
        }
    }
    selector.get("matchLabels").is_some() || selector.get("matchExpressions").is_some()
}

/// The namespaces a bundle's members live in, and those it creates: the only namespaces its status may list
/// pods from.
pub fn member_namespaces(inventory: &Inventory) -> BTreeSet<&str> {
    inventory
        .members
        .keys()
        .filter_map(|k| match (k.group.as_str(), k.kind.as_str(), &k.namespace) {
            ("", "Namespace", _) => Some(k.name.as_str()),
            (_, _, Some(ns)) => Some(ns.as_str()),
            _ => None,
        })
        .collect()
}

/// The pods that belong to a bundle: those its tracker selects, or, without a tracker, those the selectors of
/// its workloads select (in the workload's namespace). A tracker's selector only reaches pods in the bundle's
/// [`member_namespaces`]: a selector as broad as `app: web` must not publish pods of other tenants or of
/// `kube-system`.
pub fn bundle_pods(snapshot: &Snapshot, inventory: &Inventory) -> Vec<Value> {
    let labels_of = |pod: &Value| -> BTreeMap<String, String> {
        pod.pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut selected = Vec::new();
    if let Some(selector) = inventory
        .info
        .trackers
        .first()
        .and_then(|t| t.pointer("/spec/selector"))
    {
        let namespaces = member_namespaces(inventory);
        for ((ns, _), pod) in &snapshot.pods {
            if namespaces.contains(ns.as_str()) && selector_matches(selector, &labels_of(pod)) {
                selected.push(pod.clone());
            }
        }
        return selected;
    }
    for key in inventory.members.keys() {
        let workload = matches!(
            (key.group.as_str(), key.kind.as_str()),
            ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet") | ("batch", "Job")
        );
        if !workload {
            continue;
        }
        let Some(selector) = snapshot
            .objects
            .get(key)
            .and_then(|o| o.pointer("/spec/selector"))
        else {
            continue;
        };
        for ((ns, _), pod) in &snapshot.pods {
            if Some(ns) == key.namespace.as_ref() && selector_matches(selector, &labels_of(pod)) {
                selected.push(pod.clone());
            }
        }
    }
    selected
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_agent::inventory::{BundleInfo, Member};
    use outpost_agent::object::ObjectKey;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selectors_follow_kubernetes_semantics() {
        let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["front", "edge"]},
            {"key": "canary", "operator": "DoesNotExist"}]});
        assert!(selector_matches(
            &sel,
            &labels(&[("app", "web"), ("tier", "edge")])
        ));
        assert!(!selector_matches(
            &sel,
            &labels(&[("app", "web"), ("tier", "back")])
        ));
        assert!(!selector_matches(
            &sel,
            &labels(&[("app", "web"), ("tier", "edge"), ("canary", "1")])
        ));
        assert!(!selector_matches(&sel, &labels(&[("tier", "edge")])));
        // An empty selector selects nothing here (a status must not swallow every pod of the cluster).
        assert!(!selector_matches(&json!({}), &labels(&[("app", "web")])));
    }

    #[test]
    fn a_tracker_selects_pods_only_in_the_bundles_member_namespaces() {
        let tracker = json!({"spec": {"selector": {"matchLabels": {"app": "web"}}}});
        let mut inv = Inventory::new(BundleInfo {
            bundle: "web".into(),
            trackers: vec![tracker],
            ..Default::default()
        });
        let key = |kind: &str, namespace: Option<&str>, name: &str| ObjectKey {
            group: String::new(),
            kind: kind.into(),
            namespace: namespace.map(str::to_owned),
            name: name.into(),
        };
        for k in [
            key("ConfigMap", Some("web"), "settings"),
            key("Namespace", None, "web-jobs"),
            key("ClusterRole", None, "reader"),
        ] {
            inv.members.insert(k, Member::default());
        }
        let mut snapshot = Snapshot::default();
        for ns in ["web", "web-jobs", "kube-system", "other"] {
            let pod = json!({"metadata": {"name": "p", "namespace": ns, "labels": {"app": "web"}}});
            snapshot.pods.insert((ns.into(), "p".into()), pod);
        }
        let namespaces: Vec<Value> = bundle_pods(&snapshot, &inv)
            .iter()
            .map(|p| p["metadata"]["namespace"].clone())
            .collect();
        assert_eq!(namespaces, [json!("web"), json!("web-jobs")]);
        // Without members (an app EMCO is terminating) the tracker reaches no namespace at all.
        inv.members.clear();
        assert!(bundle_pods(&snapshot, &inv).is_empty());
    }
}
