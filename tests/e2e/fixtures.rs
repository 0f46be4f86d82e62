//! Manifests the tests commit, with names made unique per test.

/// A Namespace. It carries a label: server-side apply drops a manager whose field set is empty, so a
/// Namespace with nothing but a name would show no field manager at all.
pub fn namespace(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels:\n    outpost.test/fixture: \"true\"\n"
    )
}

/// A ConfigMap with one key.
pub fn config_map(namespace: &str, name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {namespace}\ndata:\n  key: {value:?}\n"
    )
}

/// A CRD `widgets.<group>` with a structural schema, namespaced.
pub fn widget_crd(group: &str) -> String {
    format!(
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {{status: {{}}}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {{type: integer}}
              color: {{type: string}}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
"#
    )
}

/// A Widget custom resource.
pub fn widget(group: &str, namespace: &str, name: &str, size: i64) -> String {
    format!(
        "apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  size: {size}\n  color: blue\n"
    )
}

/// A ClusterRole written with a namespace, as EMCO's rsync writes cluster-scoped kinds.
pub fn cluster_role_with_namespace(name: &str, namespace: &str) -> String {
    format!(
        r#"{{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{{"name":"{name}","namespace":"{namespace}"}},"rules":[{{"apiGroups":[""],"resources":["configmaps"],"verbs":["get"]}}]}}"#
    )
}

/// A Service whose port leaves `protocol` to its default (server-side apply on Kubernetes < 1.21 needs the
/// agent to fill it in).
pub fn service(namespace: &str, name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  selector: {{app: {name}}}\n  ports:\n  - port: 80\n    targetPort: 8080\n"
    )
}
