//! Rendering one bundle's status as a ResourceBundleState document (DESIGN §6), the way EMCO's rsync reads it.
//!
//! Data enters as a [`BundleView`] (the inventory plus the live objects of its members and of the pods its
//! tracker selects) and leaves as YAML bytes. Rendering is deterministic: keys sorted, lists in a stable order,
//! volatile fields (resourceVersion, managedFields, heartbeat times) removed, so unchanged status yields
//! identical bytes and no commit. Secrets are written as metadata only, never their data, and container env
//! variables without their values (`redact`). The rendered documents of every bundle travel on as [`Files`]
//! grouped into [`Branches`].

use std::collections::BTreeMap;

use base64::Engine;
use outpost_agent::health::{self, Health};
use outpost_agent::inventory::Inventory;
use outpost_agent::object::ObjectKey;
use serde_json::{Map, Value, json};

use crate::redact;

/// apiVersion and kind of the document.
pub const API_VERSION: &str = "k8splugin.io/v1alpha1";
/// Kind of the document.
pub const KIND: &str = "ResourceBundleState";
/// Annotation carrying the agent's sync result (EMCO ignores it).
pub const SYNC_ANNOTATION: &str = "outpost.dev/sync";
/// Label EMCO's rsync puts on everything of an app.
pub const EMCO_DEPLOYMENT_ID: &str = "emco/deployment-id";
/// Condition timestamps that move without any change of state.
const VOLATILE_CONDITION_FIELDS: &[&str] = &["lastHeartbeatTime", "lastProbeTime", "lastUpdateTime"];

/// Status files of one branch: path relative to the cluster's status root → (bundle, bytes).
pub type Files = BTreeMap<String, (String, Vec<u8>)>;

/// Status files by branch (the branch `--git-branch` names for each bundle).
pub type Branches = BTreeMap<String, Files>;

/// What is known about one bundle when rendering.
pub struct BundleView<'a> {
    /// The inventory (members, layout, trackers, sync result).
    pub inventory: &'a Inventory,
    /// The agent's namespace (for the document's default namespace).
    pub agent_namespace: &'a str,
    /// Live objects of the members that exist, by key.
    pub live: &'a BTreeMap<ObjectKey, Value>,
    /// Pods selected by the tracker (or the workloads' selectors).
    pub pods: &'a [Value],
}

/// The typed arrays of the status, by (group, kind).
fn typed_array(group: &str, kind: &str) -> Option<&'static str> {
    Some(match (group, kind) {
        ("", "Pod") => "podStatuses",
        ("", "Service") => "serviceStatuses",
        ("", "ConfigMap") => "configMapStatuses",
        ("apps", "Deployment") => "deploymentStatuses",
        ("apps", "DaemonSet") => "daemonSetStatuses",
        ("apps", "StatefulSet") => "statefulSetStatuses",
        ("batch", "Job") => "jobStatuses",
        ("certificates.k8s.io", "CertificateSigningRequest") => "csrStatuses",
        _ => return None,
    })
}

/// The tracker's selector, or one that selects the bundle's pods by EMCO's label.
pub fn selector(view: &BundleView<'_>) -> Value {
    if let Some(sel) = view
        .inventory
        .info
        .trackers
        .first()
        .and_then(|t| t.pointer("/spec/selector"))
    {
        return sel.clone();
    }
    json!({"matchLabels": {EMCO_DEPLOYMENT_ID: view.inventory.info.bundle}})
}

/// Render the document with the inventory's sync time.
pub fn render(view: &BundleView<'_>) -> Vec<u8> {
    document(view).to_bytes(view.inventory.sync.time.as_deref())
}

/// A rendered document whose sync time ([`crate::stamp`]) is still to be chosen.
pub struct Document {
    /// The document without its `outpost.dev/sync` annotation.
    doc: Value,
    /// The sync result of that annotation, without `lastSync`.
    sync: Value,
}

impl Document {
    /// A digest of everything a reader acts on: the whole document but the sync time.
    pub fn digest(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(serde_json::to_vec(&self.doc).unwrap_or_default());
        hash.update([0]);
        hash.update(serde_json::to_vec(&self.sync).unwrap_or_default());
        hash.finalize().into()
    }

    /// The YAML bytes, the sync annotation saying `last_sync` (left out when `None`).
    pub fn to_bytes(mut self, last_sync: Option<&str>) -> Vec<u8> {
        self.sync["lastSync"] = json!(last_sync);
        let annotation = serde_json::to_string(&self.sync).unwrap_or_default();
        self.doc["metadata"]["annotations"] = json!({SYNC_ANNOTATION: annotation});
        to_yaml(&self.doc)
    }
}

/// Render the document, all but its sync time.
pub fn document(view: &BundleView<'_>) -> Document {
    let info = &view.inventory.info;
    let tracker = info.trackers.first();
    let name = tracker
        .and_then(|t| t.pointer("/metadata/name"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{}-status", info.bundle));
    let namespace = tracker
        .and_then(|t| t.pointer("/metadata/namespace"))
        .and_then(Value::as_str)
        .unwrap_or(view.agent_namespace);
    let labels = tracker
        .and_then(|t| t.pointer("/metadata/labels"))
        .cloned()
        .unwrap_or_else(|| json!({EMCO_DEPLOYMENT_ID: info.bundle}));

    let mut arrays: BTreeMap<&'static str, Vec<Value>> = BTreeMap::new();
    let mut resource_statuses = Vec::new();
    let mut healths: Vec<(String, Health)> = Vec::new();
    for key in view.inventory.members.keys() {
        let Some(obj) = view.live.get(key) else {
            healths.push((
                key.to_string(),
                Health {
                    status: health::Status::InProgress,
                    message: "not created yet".into(),
                },
            ));
            continue;
        };
        healths.push((key.to_string(), health::of_object(obj)));
        let clean = clean_object(key, obj);
        match typed_array(&key.group, &key.kind) {
            Some(array) => arrays.entry(array).or_default().push(clean),
            None => resource_statuses.push(resource_status(key, &clean)),
        }
    }
    for pod in view.pods {
        healths.push((pod_name(pod), health::of_object(pod)));
        let key = ObjectKey {
            group: String::new(),
            kind: "Pod".into(),
            namespace: pod
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .map(str::to_owned),
            name: pod
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        };
        arrays
            .entry("podStatuses")
            .or_default()
            .push(clean_object(&key, pod));
    }
    for list in arrays.values_mut() {
        list.sort_by_key(sort_key);
    }
    resource_statuses.sort_by_key(sort_key);
    let overall = health::aggregate(healths.iter().map(|(n, h)| (n.as_str(), h)));

    let mut status = Map::new();
    status.insert("ready".into(), Value::Bool(overall.is_ready()));
    status.insert("resourceCount".into(), json!(view.inventory.members.len()));
    for (array, list) in arrays {
        status.insert(array.into(), Value::Array(list));
    }
    if !resource_statuses.is_empty() {
        status.insert("resourceStatuses".into(), Value::Array(resource_statuses));
    }
    let mut sync = json!({
        "revision": view.inventory.sync.revision,
        "state": view.inventory.sync.state,
        "errors": view.inventory.sync.errors,
        "health": overall.status.to_string(),
        "message": overall.message,
    });
    // A suspended bundle says so (and why); the sync result is the last one before the suspension.
    if let Some(why) = &view.inventory.sync.suspended {
        sync["suspended"] = json!(why);
    }
    let doc = json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
        },
        "spec": {"selector": selector(view)},
        "status": Value::Object(status),
    });
    Document { doc, sync }
}

/// `metadata.namespace/name` of a pod, for health messages.
fn pod_name(pod: &Value) -> String {
    format!(
        "Pod/{}/{}",
        pod.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(""),
        pod.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    )
}

/// Order of objects in a list: namespace, then name.
fn sort_key(v: &Value) -> (String, String) {
    let s = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or("").to_owned();
    (s("/metadata/namespace"), s("/metadata/name"))
}

/// The object as it is written: volatile fields removed, managedFields emptied, and what must not leave the
/// cluster removed ([`redact::object`]: Secret and ConfigMap data, env values, kubectl's last-applied copy
/// blanked).
fn clean_object(key: &ObjectKey, obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
        meta.remove("selfLink");
        meta.insert("managedFields".into(), Value::Array(Vec::new()));
    }
    if let Some(map) = v.as_object_mut() {
        map.insert(
            "apiVersion".into(),
            obj.get("apiVersion").cloned().unwrap_or(Value::Null),
        );
        map.insert("kind".into(), Value::String(key.kind.clone()));
    }
    redact::object(&key.group, &key.kind, &mut v);
    strip_volatile_condition_times(&mut v);
    v
}

/// Remove heartbeat-like timestamps from every `conditions` list in the object.
fn strip_volatile_condition_times(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(conditions)) = map.get_mut("conditions") {
                for c in conditions.iter_mut() {
                    if let Some(c) = c.as_object_mut() {
                        for f in VOLATILE_CONDITION_FIELDS {
                            c.remove(*f);
                        }
                    }
                }
            }
            for child in map.values_mut() {
                strip_volatile_condition_times(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_volatile_condition_times),
        _ => {}
    }
}

/// A `resourceStatuses` entry: identity plus `res`, the object's JSON in padded standard base64.
fn resource_status(key: &ObjectKey, clean: &Value) -> Value {
    let api_version = clean.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let version = api_version.rsplit('/').next().unwrap_or(api_version);
    let bytes = serde_json::to_vec(clean).unwrap_or_default();
    let mut entry = json!({
        "group": key.group,
        "version": version,
        "kind": key.kind,
        "name": key.name,
        "res": base64::engine::general_purpose::STANDARD.encode(bytes),
    });
    if let Some(ns) = &key.namespace {
        entry["namespace"] = Value::String(ns.clone());
    }
    entry
}

/// YAML with sorted keys (serde_json's map is ordered).
fn to_yaml(doc: &Value) -> Vec<u8> {
    serde_saphyr::to_string(doc).unwrap_or_default().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_agent::inventory::{BundleInfo, Member, SyncResult, SyncState};

    fn key(group: &str, kind: &str, name: &str) -> ObjectKey {
        ObjectKey {
            group: group.into(),
            kind: kind.into(),
            namespace: Some("web".into()),
            name: name.into(),
        }
    }

    fn inventory(keys: &[ObjectKey], tracker: Option<Value>) -> Inventory {
        let mut inv = Inventory::new(BundleInfo {
            bundle: "100-web".into(),
            context: Some("100".into()),
            app: Some("web".into()),
            trackers: tracker.into_iter().collect(),
            ..Default::default()
        });
        for k in keys {
            inv.members.insert(k.clone(), Member::default());
        }
        inv
    }

    fn ready_deployment(rv: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "web", "resourceVersion": rv, "generation": 2,
                "managedFields": [{"manager": "outpost"}],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}"}},
            "spec": {"replicas": 1},
            "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1,
                "availableReplicas": 1,
                "conditions": [{"type": "Available", "status": "True", "lastUpdateTime": rv}]}})
    }

    fn parse(bytes: &[u8]) -> Value {
        serde_saphyr::from_slice(bytes).unwrap()
    }

    #[test]
    fn the_document_has_emco_fields_and_no_volatile_data() {
        let keys = [
            key("apps", "Deployment", "web"),
            key("", "Secret", "creds"),
            key("networking.k8s.io", "Ingress", "in"),
        ];
        let tracker = json!({"metadata": {"name": "web-status", "namespace": "web", "labels": {"emco/deployment-id": "100-web"}},
            "spec": {"selector": {"matchLabels": {"emco/deployment-id": "100-web"}}}});
        let inv = inventory(&keys, Some(tracker));
        let mut live = BTreeMap::new();
        live.insert(keys[0].clone(), ready_deployment("5"));
        live.insert(keys[1].clone(), json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "web"}, "data": {"password": "c2VjcmV0"}, "stringData": {"x": "y"}}));
        live.insert(keys[2].clone(), json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "in", "namespace": "web"}, "spec": {}}));
        let view = BundleView {
            inventory: &inv,
            agent_namespace: "outpost-system",
            live: &live,
            pods: &[],
        };
        let text = String::from_utf8(render(&view)).unwrap();
        assert!(
            !text.contains("c2VjcmV0") && !text.contains("stringData"),
            "secret data written:\n{text}"
        );
        let doc = parse(text.as_bytes());
        assert_eq!(doc["apiVersion"], API_VERSION);
        assert_eq!(doc["kind"], KIND);
        assert_eq!(doc["metadata"]["name"], "web-status");
        assert_eq!(doc["metadata"]["labels"]["emco/deployment-id"], "100-web");
        assert_eq!(
            doc["spec"]["selector"]["matchLabels"]["emco/deployment-id"],
            "100-web"
        );
        assert_eq!(doc["status"]["ready"], true);
        assert_eq!(doc["status"]["resourceCount"], 3);
        let deploy = &doc["status"]["deploymentStatuses"][0];
        assert_eq!(deploy["status"]["readyReplicas"], 1);
        assert_eq!(deploy["metadata"]["managedFields"], json!([]));
        assert!(deploy["metadata"].get("resourceVersion").is_none());
        assert_eq!(deploy["metadata"]["annotations"][crate::redact::LAST_APPLIED], "");
        let statuses = doc["status"]["resourceStatuses"].as_array().unwrap();
        assert_eq!(statuses.len(), 2);
        let ingress = statuses.iter().find(|s| s["kind"] == "Ingress").unwrap();
        assert_eq!(ingress["group"], "networking.k8s.io");
        assert_eq!(ingress["version"], "v1");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(ingress["res"].as_str().unwrap())
            .unwrap();
        let obj: Value = serde_json::from_slice(&decoded).unwrap();
        assert_eq!(obj["metadata"]["name"], "in");
        let secret = statuses.iter().find(|s| s["kind"] == "Secret").unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(secret["res"].as_str().unwrap())
            .unwrap();
        let obj: Value = serde_json::from_slice(&decoded).unwrap();
        assert!(
            obj.get("data").is_none() && obj.get("stringData").is_none(),
            "{obj}"
        );
    }

    #[test]
    fn env_values_reach_neither_typed_arrays_nor_res() {
        let env = json!([{"name": "TOKEN", "value": "env-value-do-not-leak"}]);
        let spec = json!({"containers": [{"name": "main", "image": "nginx:1.27", "env": env}]});
        let keys = [
            key("apps", "Deployment", "web"),
            key("batch", "CronJob", "nightly"),
        ];
        let inv = inventory(&keys, None);
        let mut live = BTreeMap::new();
        let mut deploy = ready_deployment("5");
        deploy["spec"]["template"] = json!({"spec": spec});
        live.insert(keys[0].clone(), deploy);
        live.insert(
            keys[1].clone(),
            json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "nightly", "namespace": "web"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}}),
        );
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "web"},
            "spec": spec});
        let view = BundleView {
            inventory: &inv,
            agent_namespace: "ns",
            live: &live,
            pods: &[pod],
        };
        let doc = parse(&render(&view));
        let res = base64::engine::general_purpose::STANDARD
            .decode(doc["status"]["resourceStatuses"][0]["res"].as_str().unwrap())
            .unwrap();
        let all = format!("{doc}{}", String::from_utf8(res).unwrap());
        assert!(!all.contains("env-value-do-not-leak"), "{all}");
        assert_eq!(all.matches("\"TOKEN\"").count(), 3, "names kept: {all}");
    }

    #[test]
    fn unchanged_status_renders_identical_bytes_even_if_volatile_fields_move() {
        let keys = [key("apps", "Deployment", "web")];
        let inv = inventory(&keys, None);
        let mut a = BTreeMap::new();
        a.insert(keys[0].clone(), ready_deployment("5"));
        let mut b = BTreeMap::new();
        b.insert(keys[0].clone(), ready_deployment("9"));
        let view_a = BundleView {
            inventory: &inv,
            agent_namespace: "ns",
            live: &a,
            pods: &[],
        };
        let view_b = BundleView {
            inventory: &inv,
            agent_namespace: "ns",
            live: &b,
            pods: &[],
        };
        assert_eq!(render(&view_a), render(&view_b));
    }

    #[test]
    fn a_resync_moves_only_the_sync_time_and_the_digest_ignores_it() {
        let keys = [key("apps", "Deployment", "web")];
        let mut live = BTreeMap::new();
        live.insert(keys[0].clone(), ready_deployment("5"));
        let synced_at = |time: &str, state: SyncState| {
            let mut inv = inventory(&keys, None);
            inv.sync = SyncResult {
                revision: Some("abc".into()),
                time: Some(time.into()),
                state,
                applied: 1,
                ..Default::default()
            };
            inv
        };
        let (first, resync) = (
            synced_at("2026-01-01T00:00:00Z", SyncState::Synced),
            synced_at("2026-01-01T01:00:00Z", SyncState::Synced),
        );
        let doc = |inv: &Inventory| {
            document(&BundleView {
                inventory: inv,
                agent_namespace: "ns",
                live: &live,
                pods: &[],
            })
        };
        let bytes = |inv: &Inventory| doc(inv).to_bytes(inv.sync.time.as_deref());
        assert_ne!(bytes(&first), bytes(&resync), "the time is written");
        assert_eq!(doc(&first).digest(), doc(&resync).digest());
        assert_eq!(
            doc(&resync).to_bytes(Some("2026-01-01T00:00:00Z")),
            bytes(&first),
            "an unchanged document with the kept time is byte for byte the one written"
        );
        let failed = synced_at("2026-01-01T01:00:00Z", SyncState::Failed);
        assert_ne!(doc(&first).digest(), doc(&failed).digest());
        let sync: Value = serde_json::from_str(
            parse(&bytes(&first))["metadata"]["annotations"][SYNC_ANNOTATION]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(sync["lastSync"], "2026-01-01T00:00:00Z");
        assert_eq!(sync["revision"], "abc");
    }

    #[test]
    fn ready_is_false_while_a_member_is_missing_or_lagging() {
        let keys = [key("apps", "Deployment", "web"), key("", "ConfigMap", "c")];
        let inv = inventory(&keys, None);
        let mut live = BTreeMap::new();
        let mut lagging = ready_deployment("5");
        lagging["status"]["observedGeneration"] = json!(1);
        live.insert(keys[0].clone(), lagging);
        let view = BundleView {
            inventory: &inv,
            agent_namespace: "ns",
            live: &live,
            pods: &[],
        };
        let doc = parse(&render(&view));
        assert_eq!(doc["status"]["ready"], false);
        assert!(
            doc["metadata"]["annotations"][SYNC_ANNOTATION]
                .as_str()
                .unwrap()
                .contains("InProgress")
        );
    }
}
