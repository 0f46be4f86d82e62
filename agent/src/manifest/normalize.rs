//! Defaults the API server needs before server-side apply on older versions.
//!
//! Kubernetes before 1.21 cannot build a typed patch for list entries whose merge key includes a field the
//! manifest leaves to its default: a Service port or container port without `protocol` fails with "associative
//! list with keys has an element that omits key field protocol". Edge clusters often run such versions, so we
//! write the default (`TCP`, the value the server would choose anyway) before sending.

use serde_json::Value;

/// Fill `protocol: TCP` where a port list entry omits it.
pub fn apply_defaults(group: &str, kind: &str, body: &mut Value) {
    match (group, kind) {
        ("", "Service") => default_protocol(body.pointer_mut("/spec/ports")),
        ("", "Pod") => pod_spec(body.pointer_mut("/spec")),
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("batch", "Job")
        | ("", "ReplicationController") => pod_spec(body.pointer_mut("/spec/template/spec")),
        ("batch", "CronJob") => pod_spec(body.pointer_mut("/spec/jobTemplate/spec/template/spec")),
        _ => {}
    }
}

fn pod_spec(spec: Option<&mut Value>) {
    let Some(spec) = spec else { return };
    for list in ["containers", "initContainers"] {
        if let Some(Value::Array(containers)) = spec.get_mut(list) {
            for c in containers {
                default_protocol(c.get_mut("ports"));
            }
        }
    }
}

fn default_protocol(ports: Option<&mut Value>) {
    let Some(Value::Array(ports)) = ports else { return };
    for port in ports {
        if let Value::Object(map) = port {
            map.entry("protocol")
                .or_insert_with(|| Value::String("TCP".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_and_container_ports_get_tcp_when_protocol_is_missing() {
        let mut svc = json!({"spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}});
        apply_defaults("", "Service", &mut svc);
        assert_eq!(svc["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(svc["spec"]["ports"][1]["protocol"], "UDP");

        let mut deploy = json!({"spec": {"template": {"spec": {
            "containers": [{"name": "a", "ports": [{"containerPort": 80}]}],
            "initContainers": [{"name": "b", "ports": [{"containerPort": 81}]}]}}}});
        apply_defaults("apps", "Deployment", &mut deploy);
        assert_eq!(
            deploy
                .pointer("/spec/template/spec/containers/0/ports/0/protocol")
                .unwrap(),
            "TCP"
        );
        assert_eq!(
            deploy
                .pointer("/spec/template/spec/initContainers/0/ports/0/protocol")
                .unwrap(),
            "TCP"
        );

        let mut cm = json!({"data": {"ports": "x"}});
        apply_defaults("", "ConfigMap", &mut cm);
        assert_eq!(cm, json!({"data": {"ports": "x"}}));
    }
}
