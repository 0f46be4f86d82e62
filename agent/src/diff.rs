//! Field-level differences between a live object and what a server-side dry run says it would become, for
//! `outpost-agent plan`. Server-maintained fields (resourceVersion, managedFields, timestamps, status) are not
//! differences anyone asked for and are skipped.

use serde_json::Value;

/// Metadata fields the server maintains.
const IGNORED_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "uid",
    "selfLink",
];

/// One changed field.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// Dotted path (`spec.template.spec.containers[0].image`).
    pub path: String,
    /// Value now (`None`: absent).
    pub old: Option<Value>,
    /// Value after apply (`None`: removed).
    pub new: Option<Value>,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<Value>| match v {
            None => "(absent)".to_owned(),
            Some(v) => v.to_string(),
        };
        write!(f, "{}: {} -> {}", self.path, show(&self.old), show(&self.new))
    }
}

/// Differences from `live` to `proposed`, in path order.
pub fn diff(live: &Value, proposed: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk("", live, proposed, &mut out);
    out.retain(|c| !ignored(&c.path));
    out
}

fn ignored(path: &str) -> bool {
    if path == "status" || path.starts_with("status.") || path.starts_with("status[") {
        return true;
    }
    IGNORED_METADATA.iter().any(|f| {
        let p = format!("metadata.{f}");
        path == p || path.starts_with(&format!("{p}.")) || path.starts_with(&format!("{p}["))
    })
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<Change>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = join(path, k);
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => walk(&p, va, vb, out),
                    (va, vb) => out.push(Change {
                        path: p,
                        old: va.cloned(),
                        new: vb.cloned(),
                    }),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                walk(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        _ if a != b => out.push(Change {
            path: path.to_owned(),
            old: Some(a.clone()),
            new: Some(b.clone()),
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_real_changes_are_listed() {
        let live = json!({"metadata": {"name": "a", "resourceVersion": "1", "labels": {"x": "1"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"image": "a:1"}]}}},
            "status": {"ready": 1}});
        let proposed = json!({"metadata": {"name": "a", "resourceVersion": "2", "labels": {"x": "1", "y": "2"}},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [{"image": "a:2"}]}}},
            "status": {"ready": 0}});
        let changes: Vec<String> = diff(&live, &proposed).iter().map(ToString::to_string).collect();
        assert_eq!(
            changes,
            [
                "metadata.labels.y: (absent) -> \"2\"",
                "spec.replicas: 2 -> 3",
                "spec.template.spec.containers[0].image: \"a:1\" -> \"a:2\""
            ]
        );
    }

    #[test]
    fn identical_objects_have_no_changes() {
        let v = json!({"data": {"k": "v"}, "metadata": {"managedFields": [1]}});
        assert!(diff(&v, &v).is_empty());
    }
}
