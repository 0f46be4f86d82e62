//! What must never leave the cluster in a status file: Secret data, ConfigMap data (EMCO's monitor keeps
//! ConfigMaps metadata only too) and the values of container environment variables.
//!
//! [`object`] takes one live object (a member, or a pod the tracker selects) on its way into the document and
//! removes those values in place; the shape stays what EMCO's decoder expects, only values go. Env variable
//! names stay, so the hub still sees what a workload is configured with; `valueFrom` stays too: it names a
//! Secret/ConfigMap key or a field path, never a value, and tells the hub which Secret a workload reads.

use serde_json::Value;

/// Fields of a Secret or ConfigMap that are not data: everything else of them is dropped.
const METADATA_ONLY_FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "type", "immutable"];

/// Keys that hold lists of containers wherever a pod spec is embedded (Pod, workload templates, CronJob's
/// job template, custom resources that embed a PodSpec).
const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

/// kubectl's client-side copy of the whole object as applied: Secret data and env values included.
pub(crate) const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Remove what must not be published from `obj`, a live object of kind `group`/`kind`.
pub fn object(group: &str, kind: &str, obj: &mut Value) {
    if group.is_empty()
        && matches!(kind, "Secret" | "ConfigMap")
        && let Some(map) = obj.as_object_mut()
    {
        map.retain(|k, _| METADATA_ONLY_FIELDS.contains(&k.as_str()));
    }
    if let Some(annotations) = obj
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
        && let Some(copy) = annotations.get_mut(LAST_APPLIED)
    {
        // Blanked, not removed: EMCO's monitor blanks it too, and the hub may expect the key.
        *copy = Value::String(String::new());
    }
    drop_env_values(obj);
}

/// Remove `value` from every `env` entry of every container list anywhere in `v`; names and `valueFrom`
/// references stay.
pub fn drop_env_values(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if CONTAINER_LISTS.contains(&key.as_str())
                    && let Value::Array(containers) = child
                {
                    containers.iter_mut().for_each(drop_container_env_values);
                }
                drop_env_values(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(drop_env_values),
        _ => {}
    }
}

fn drop_container_env_values(container: &mut Value) {
    if let Some(Value::Array(env)) = container.get_mut("env") {
        for var in env.iter_mut().filter_map(Value::as_object_mut) {
            var.remove("value");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kubectls_last_applied_copy_is_dropped_from_every_object() {
        for kind in ["Secret", "Deployment"] {
            let mut obj = json!({"metadata": {"name": "x", "annotations": {
                LAST_APPLIED: "{\"data\":{\"password\":\"c2VjcmV0\"}}",
                "team": "edge",
            }}});
            object("", kind, &mut obj);
            assert_eq!(
                obj["metadata"]["annotations"],
                json!({LAST_APPLIED: "", "team": "edge"}),
                "{kind}"
            );
        }
    }

    fn env() -> Value {
        json!([{"name": "TOKEN", "value": "s3cr3t"},
               {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}}])
    }

    #[test]
    fn env_values_go_names_and_references_stay_in_every_pod_spec() {
        let pod_spec = || {
            json!({"containers": [{"name": "main", "env": env()}], "initContainers": [{"name": "init", "env": env()}],
                  "ephemeralContainers": [{"name": "debug", "env": env()}]})
        };
        let mut deployment = json!({"kind": "Deployment", "spec": {"template": {"spec": pod_spec()}}});
        let mut cron =
            json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": pod_spec()}}}}});
        let mut pod = json!({"kind": "Pod", "spec": pod_spec()});
        for (group, kind, obj) in [
            ("apps", "Deployment", &mut deployment),
            ("batch", "CronJob", &mut cron),
            ("", "Pod", &mut pod),
        ] {
            object(group, kind, obj);
            let text = obj.to_string();
            assert!(!text.contains("s3cr3t"), "{kind}: {text}");
            assert_eq!(text.matches("\"TOKEN\"").count(), 3, "{kind}: names kept: {text}");
            assert_eq!(
                text.matches("secretKeyRef").count(),
                3,
                "{kind}: refs kept: {text}"
            );
        }
        let expected = json!([{"name": "TOKEN"},
            {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}}]);
        assert_eq!(pod["spec"]["containers"][0]["env"], expected);
    }

    #[test]
    fn env_outside_a_container_list_and_other_fields_are_untouched() {
        let mut v = json!({"spec": {"env": [{"name": "X", "value": "kept"}],
            "containers": [{"name": "main", "image": "nginx:1.27", "args": ["--port", "80"]}],
            "schema": {"containers": {"type": "array"}}}});
        let before = v.clone();
        drop_env_values(&mut v);
        assert_eq!(v, before);
    }

    #[test]
    fn secrets_and_config_maps_keep_only_their_metadata() {
        let mut secret = json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "immutable": true,
            "metadata": {"name": "creds"}, "data": {"password": "c2VjcmV0"}, "stringData": {"x": "y"}});
        object("", "Secret", &mut secret);
        assert_eq!(
            secret,
            json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "immutable": true,
                "metadata": {"name": "creds"}})
        );
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
            "data": {"k": "v"}, "binaryData": {"b": "AA=="}});
        object("", "ConfigMap", &mut cm);
        assert_eq!(
            cm,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
        );
        // A custom kind named Secret in another group is not a core Secret; its env values still go.
        let mut other = json!({"kind": "Secret", "data": {"k": "v"}});
        object("example.com", "Secret", &mut other);
        assert_eq!(other["data"]["k"], "v");
    }
}
