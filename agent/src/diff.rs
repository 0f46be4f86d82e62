//! Field-level differences between a live object and what a server-side dry run says it would become, for
//! `outpost-agent plan`. Server-maintained fields (resourceVersion, managedFields, timestamps, status) are not
//! differences anyone asked for and are skipped.
//!
//! A Secret's values never reach the output: for `data` and `stringData` (and kubectl's last-applied
//! annotation, which holds them too) a change says only which key was added, changed or removed.

use std::collections::{BTreeMap, BTreeSet};

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

/// A Secret's fields whose values are the secret.
const SECRET_FIELDS: &[&str] = &["data", "stringData"];

/// kubectl's annotation holding the whole object as last applied, a Secret's data included.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Stands in for a masked value in [`Change::old`] and [`Change::new`].
const MASKED: &str = "<masked>";

/// One changed field.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// Dotted path (`spec.template.spec.containers[0].image`).
    pub path: String,
    /// Value now (`None`: absent).
    pub old: Option<Value>,
    /// Value after apply (`None`: removed).
    pub new: Option<Value>,
    /// The values are a Secret's: `old` and `new` only say whether there was a value, never which.
    pub masked: bool,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.masked {
            let what = match (&self.old, &self.new) {
                (None, _) => "added",
                (_, None) => "removed",
                _ => "changed",
            };
            return write!(f, "{}: <masked, {what}>", self.path);
        }
        let show = |v: &Option<Value>| match v {
            None => "(absent)".to_owned(),
            Some(v) => v.to_string(),
        };
        write!(f, "{}: {} -> {}", self.path, show(&self.old), show(&self.new))
    }
}

/// Differences from `live` to `proposed`, in path order. If either is a Secret (`v1`, or `secret` is set
/// because the caller knows the kind), its values are masked.
pub fn diff(live: &Value, proposed: &Value, secret: bool) -> Vec<Change> {
    let mut out = Vec::new();
    if secret || is_secret(live) || is_secret(proposed) {
        let (mut live, mut proposed) = (live.clone(), proposed.clone());
        let (live_values, proposed_values) =
            (take_secret_values(&mut live), take_secret_values(&mut proposed));
        walk("", &live, &proposed, &mut out);
        masked_changes(&live_values, &proposed_values, &mut out);
        out.sort_by(|a, b| a.path.cmp(&b.path));
    } else {
        walk("", live, proposed, &mut out);
    }
    out.retain(|c| !ignored(&c.path));
    out
}

/// Mask the changes that show a value encrypted in Git (`sealed`: SOPS paths), whatever the kind.
pub fn mask(changes: &mut [Change], sealed: &crate::manifest::render::Sealed) {
    for c in changes.iter_mut().filter(|c| sealed.covers(&c.path)) {
        let masked = |v: &Option<Value>| v.as_ref().map(|_| Value::String(MASKED.to_owned()));
        c.old = masked(&c.old);
        c.new = masked(&c.new);
        c.masked = true;
    }
}

fn is_secret(v: &Value) -> bool {
    v.get("apiVersion").and_then(Value::as_str) == Some("v1")
        && v.get("kind").and_then(Value::as_str) == Some("Secret")
}

/// Remove a Secret's values from `v`, returning them by path (`data.password`, or `data` when it is not a
/// map). An annotation map left empty by the removal goes too, so it does not show as a change of its own.
fn take_secret_values(v: &mut Value) -> BTreeMap<String, Value> {
    let mut values = BTreeMap::new();
    let Some(map) = v.as_object_mut() else {
        return values;
    };
    for field in SECRET_FIELDS {
        match map.remove(*field) {
            Some(Value::Object(entries)) => {
                values.extend(entries.into_iter().map(|(k, v)| (format!("{field}.{k}"), v)));
            }
            Some(other) => {
                values.insert((*field).to_owned(), other);
            }
            None => {}
        }
    }
    if let Some(Value::Object(meta)) = map.get_mut("metadata")
        && let Some(Value::Object(annotations)) = meta.get_mut("annotations")
        && let Some(last_applied) = annotations.remove(LAST_APPLIED)
    {
        values.insert(format!("metadata.annotations.{LAST_APPLIED}"), last_applied);
        if annotations.is_empty() {
            meta.remove("annotations");
        }
    }
    values
}

/// One masked change per secret value that differs between `old` and `new`.
fn masked_changes(old: &BTreeMap<String, Value>, new: &BTreeMap<String, Value>, out: &mut Vec<Change>) {
    let masked = |v: Option<&Value>| v.map(|_| Value::String(MASKED.to_owned()));
    let paths: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for path in paths {
        let (a, b) = (old.get(path), new.get(path));
        if a != b {
            out.push(Change {
                path: path.clone(),
                old: masked(a),
                new: masked(b),
                masked: true,
            });
        }
    }
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
                        masked: false,
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
            masked: false,
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
        let changes: Vec<String> = diff(&live, &proposed, false)
            .iter()
            .map(ToString::to_string)
            .collect();
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
    fn secret_values_are_masked_old_and_new_and_only_changed_keys_are_named() {
        let live = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "creds", "annotations": {LAST_APPLIED: "{\"data\":{\"password\":\"b2xk\"}}"}},
            "data": {"password": "b2xkLXNlY3JldA==", "same": "c2FtZQ==", "gone": "Z29uZQ=="}, "type": "Opaque"});
        let proposed = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "creds", "labels": {"x": "1"}},
            "data": {"password": "bmV3LXNlY3JldA==", "same": "c2FtZQ==", "token": "dG9rZW4="},
            "stringData": {"extra": "plain-new-secret"}, "type": "Opaque"});
        let changes: Vec<String> = diff(&live, &proposed, false)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            changes,
            [
                "data.gone: <masked, removed>",
                "data.password: <masked, changed>",
                "data.token: <masked, added>",
                "metadata.annotations.kubectl.kubernetes.io/last-applied-configuration: <masked, removed>",
                "metadata.labels: (absent) -> {\"x\":\"1\"}",
                "stringData.extra: <masked, added>",
            ]
        );
        let debug = format!("{:?}", diff(&live, &proposed, false));
        for value in ["b2xk", "bmV3", "dG9r", "Z29u", "plain-new-secret"] {
            assert!(!debug.contains(value), "{value} in {debug}");
        }
    }

    #[test]
    fn a_secret_whose_data_appears_or_goes_as_a_whole_is_masked_key_by_key() {
        let empty = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}});
        let full = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
            "data": {"a": "c2VjcmV0"}});
        let shown = |a: &Value, b: &Value| -> Vec<String> {
            diff(a, b, false).iter().map(ToString::to_string).collect()
        };
        assert_eq!(shown(&empty, &full), ["data.a: <masked, added>"]);
        assert_eq!(shown(&full, &empty), ["data.a: <masked, removed>"]);
        // The caller's word is enough when the objects carry no kind (a list item).
        let (bare_a, bare_b) = (json!({"data": {"a": "b2xk"}}), json!({"data": {"a": "bmV3"}}));
        assert_eq!(
            diff(&bare_a, &bare_b, true)[0].to_string(),
            "data.a: <masked, changed>"
        );
        assert_eq!(
            diff(&bare_a, &bare_b, false)[0].to_string(),
            "data.a: \"b2xk\" -> \"bmV3\""
        );
    }

    #[test]
    fn identical_objects_have_no_changes() {
        let v = json!({"data": {"k": "v"}, "metadata": {"managedFields": [1]}});
        assert!(diff(&v, &v, false).is_empty());
    }
}
