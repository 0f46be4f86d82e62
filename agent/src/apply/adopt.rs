//! Adoption: taking over objects another deployment tool created (kubectl's client- or server-side apply,
//! `kubectl create`, Helm, Flux's kustomize-controller as EMCO's GitOps mode runs it) without deleting and
//! recreating them.
//!
//! A forced server-side apply takes over the fields we send. The fields the earlier tool set and we do not send
//! stay owned by that tool, so a later commit that drops one (a ConfigMap key, a label, an env var) would never
//! remove it from the cluster. So when an apply's answer still lists one of the [`DEFAULT_MANAGERS`] (or the
//! `--adopt-field-managers` list), the applier reads the object, moves the fields of those managers into our own
//! Apply entry with one JSON patch of `metadata.managedFields` guarded by the resourceVersion it was computed
//! from (kubectl's `csaupgrade` package does the same for its own managers), drops kubectl's last-applied
//! annotation, and applies once more: what Git does not declare is removed, defaults come back as the server
//! fills them in. Entries of other managers (controllers writing status, an HPA's scale, hand edits with
//! `kubectl edit`) and of subresources are never touched. Entries are joined whatever apiVersion they were
//! recorded in: a kind's field paths are the same across its versions, and a path renamed between versions is
//! only not found. `outpost-agent plan` shows the outcome through [`simulate`], with a dry-run update instead
//! of the patch.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
use kube::api::{DynamicObject, PostParams};
use kube::{Api, Client};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::fieldset::FieldSet;
use crate::desired::ObjectError as Error;

/// Field managers whose fields Outpost takes over, by default: the tools that put manifests into a cluster.
/// - `kubectl-client-side-apply`: `kubectl apply` (client-side);
/// - `kubectl`: `kubectl apply --server-side`, and every kubectl command before 1.18, named by its user agent;
/// - `kubectl-create`: `kubectl create -f`;
/// - `before-first-apply`: what the API server calls the owner of fields set before server-side apply
///   tracked them (it appears when an object older than managed fields is first applied);
/// - `helm`: Helm 3 (client-side updates) and Helm 4 (server-side apply);
/// - `kustomize-controller`: Flux, as EMCO's GitOps mode deploys.
///
/// Hand edits (`kubectl-edit`, `kubectl-patch`, `kubectl-label`, ...) and controllers are not on it: their
/// fields are someone's deliberate change, not an earlier copy of Git.
pub const DEFAULT_MANAGERS: [&str; 6] = [
    "kubectl-client-side-apply",
    "kubectl",
    "kubectl-create",
    "before-first-apply",
    "helm",
    "kustomize-controller",
];

/// kubectl's copy of the object as it last applied it. Once another tool owns the object it is stale, and a
/// later `kubectl apply` would compute deletions from it.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// JSON pointer to [`LAST_APPLIED`] (`/` in the key escaped as `~1`).
const LAST_APPLIED_POINTER: &str = "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration";

/// Reads and patches one adoption may take: each retry follows another writer (a controller updating status)
/// changing the object between our read and our patch.
const ATTEMPTS: usize = 5;

/// A `managedFields` entry as an apply answer lists it; its field set is skipped while the answer is read.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Manager {
    /// The manager's name.
    #[serde(default)]
    pub manager: String,
    /// `Apply` or `Update`.
    #[serde(default)]
    pub operation: String,
    /// The subresource written (`status`), empty for the object itself.
    #[serde(default)]
    pub subresource: String,
}

/// Whose fields move to whom.
#[derive(Clone, Copy, Debug)]
pub struct Policy<'a> {
    /// Our field manager (`outpost`).
    pub ours: &'a str,
    /// The managers adopted from (`--adopt-field-managers`).
    pub from: &'a [String],
}

impl Policy<'_> {
    /// Whether an entry of `manager` on `subresource` is adopted.
    fn adopts(&self, manager: &str, subresource: &str) -> bool {
        subresource.is_empty() && manager != self.ours && self.from.iter().any(|m| m == manager)
    }

    /// Whether an apply answer calls for adoption: an adopted manager still owns fields, or kubectl's
    /// annotation is there and Git does not declare it. Never with an empty list (adoption turned off).
    pub fn needed(&self, managers: &[Manager], last_applied: bool, body: &RawValue) -> bool {
        !self.from.is_empty()
            && (managers.iter().any(|m| self.adopts(&m.manager, &m.subresource))
                || (last_applied && !declares_last_applied(body)))
    }

    /// `entries` with every adopted entry folded into our Apply entry (which an adopted entry becomes when we
    /// have none), and the adopted managers' names. `None` when no entry is adopted.
    pub fn fold(&self, entries: &[ManagedFieldsEntry]) -> Option<(Vec<ManagedFieldsEntry>, Vec<String>)> {
        let adopted: Vec<usize> = (0..entries.len())
            .filter(|&i| self.adopts_entry(&entries[i]))
            .collect();
        let first = *adopted.first()?;
        let target = entries
            .iter()
            .position(|e| {
                e.manager.as_deref() == Some(self.ours)
                    && e.operation.as_deref() == Some("Apply")
                    && e.subresource.as_deref().unwrap_or_default().is_empty()
            })
            .unwrap_or(first);
        let mut fields = fields_of(&entries[target]);
        for &i in &adopted {
            fields = fields.union(&fields_of(&entries[i]));
        }
        let mut merged = entries[target].clone();
        merged.manager = Some(self.ours.to_owned());
        merged.operation = Some("Apply".to_owned());
        merged.fields_type = Some("FieldsV1".to_owned());
        merged.fields_v1 = Some(FieldsV1(fields.to_fields_v1()));
        let mut folded = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            if i == target {
                folded.push(merged.clone());
            } else if !adopted.contains(&i) {
                folded.push(entry.clone());
            }
        }
        let names: BTreeSet<String> = adopted
            .iter()
            .filter_map(|&i| entries[i].manager.clone())
            .collect();
        Some((folded, names.into_iter().collect()))
    }

    /// Whether `entry` is adopted.
    fn adopts_entry(&self, entry: &ManagedFieldsEntry) -> bool {
        self.adopts(
            entry.manager.as_deref().unwrap_or_default(),
            entry.subresource.as_deref().unwrap_or_default(),
        )
    }
}

/// The field set of a managed fields entry.
fn fields_of(entry: &ManagedFieldsEntry) -> FieldSet {
    entry
        .fields_v1
        .as_ref()
        .map(|f| FieldSet::from_fields_v1(&f.0))
        .unwrap_or_default()
}

/// Whether Git's body of the object sets kubectl's last-applied annotation itself.
fn declares_last_applied(body: &RawValue) -> bool {
    serde_json::from_str::<Value>(body.get())
        .ok()
        .and_then(|v| v.pointer("/metadata/annotations").cloned())
        .is_some_and(|a| a.get(LAST_APPLIED).is_some())
}

/// Whether `object` carries kubectl's annotation although Git's `body` does not declare it.
fn stale_last_applied(object: &DynamicObject, body: &RawValue) -> bool {
    let present = object
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(LAST_APPLIED));
    present && !declares_last_applied(body)
}

/// Move the fields of the adopted managers of object `name` to ours and drop a stale last-applied annotation.
/// Returns the managers adopted from (empty when there was nothing to do). The caller applies again.
pub async fn take_over(
    client: &Client,
    api: &Api<DynamicObject>,
    name: &str,
    policy: Policy<'_>,
    body: &RawValue,
) -> Result<Vec<String>, Error> {
    for _ in 0..ATTEMPTS {
        let live = api.get(name).await.map_err(Error::from_kube)?;
        let entries = live.metadata.managed_fields.clone().unwrap_or_default();
        let folded = policy.fold(&entries);
        let stale = stale_last_applied(&live, body);
        if folded.is_none() && !stale {
            return Ok(Vec::new());
        }
        let mut ops = Vec::new();
        let mut adopted = Vec::new();
        if let Some((entries, names)) = folded {
            ops.push(json!({"op": "replace", "path": "/metadata/managedFields", "value": entries}));
            adopted = names;
        }
        if stale {
            ops.push(json!({"op": "remove", "path": LAST_APPLIED_POINTER}));
        }
        // A replace rather than a test: a stale resourceVersion then fails in storage with 409 Conflict, the
        // answer we retry on, instead of 422 from the patch itself.
        ops.push(json!({"op": "replace", "path": "/metadata/resourceVersion", "value": live.metadata.resource_version}));
        match json_patch(client, api, name, policy.ours, &ops).await {
            Ok(()) => return Ok(adopted),
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(Error::from_kube(e)),
        }
    }
    Err(Error::Conflict(format!(
        "{name} changed {ATTEMPTS} times while its fields were being adopted from other field managers; the next sync tries again"
    )))
}

/// Send one JSON patch (RFC 6902) to object `name`.
async fn json_patch(
    client: &Client,
    api: &Api<DynamicObject>,
    name: &str,
    manager: &str,
    ops: &[Value],
) -> Result<(), kube::Error> {
    let body = serde_json::to_vec(ops).map_err(kube::Error::SerdeError)?;
    let uri = format!("{}/{name}?fieldManager={manager}", api.resource_url());
    let request = http::Request::patch(uri)
        .header(http::header::CONTENT_TYPE, "application/json-patch+json")
        .body(body)
        .map_err(kube::Error::HttpError)?;
    client.request::<serde::de::IgnoredAny>(request).await.map(|_| ())
}

/// What adopting would make of `answer`, the object a dry-run apply returned: its fields that only adopted
/// managers own go (as the second apply would remove them), then a dry-run update lets the server fill in its
/// defaults again. `None` when there is nothing to adopt; the managers adopted from otherwise.
pub async fn simulate(
    api: &Api<DynamicObject>,
    answer: &DynamicObject,
    policy: Policy<'_>,
    body: &RawValue,
) -> Result<Option<(DynamicObject, Vec<String>)>, Error> {
    if policy.from.is_empty() {
        return Ok(None);
    }
    let entries = answer.metadata.managed_fields.clone().unwrap_or_default();
    let stale = stale_last_applied(answer, body);
    let (adopted, kept): (Vec<&ManagedFieldsEntry>, Vec<&ManagedFieldsEntry>) =
        entries.iter().partition(|e| policy.adopts_entry(e));
    if adopted.is_empty() && !stale {
        return Ok(None);
    }
    let union = |entries: &[&ManagedFieldsEntry]| {
        entries
            .iter()
            .fold(FieldSet::default(), |set, e| set.union(&fields_of(e)))
    };
    let removed = union(&adopted).difference(&union(&kept));
    let mut object = serde_json::to_value(answer).map_err(|e| Error::Client(e.to_string()))?;
    removed.remove_from(&mut object);
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        if stale && let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            annotations.remove(LAST_APPLIED);
        }
    }
    let object: DynamicObject = serde_json::from_value(object).map_err(|e| Error::Client(e.to_string()))?;
    let params = PostParams {
        dry_run: true,
        field_manager: Some(policy.ours.to_owned()),
    };
    let name = answer.metadata.name.clone().unwrap_or_default();
    let result = api
        .replace(&name, &params, &object)
        .await
        .map_err(Error::from_kube)?;
    let names: BTreeSet<String> = adopted.iter().filter_map(|e| e.manager.clone()).collect();
    Ok(Some((result, names.into_iter().collect())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(manager: &str, operation: &str, fields: Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.to_owned()),
            operation: Some(operation.to_owned()),
            api_version: Some("v1".to_owned()),
            fields_type: Some("FieldsV1".to_owned()),
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        }
    }

    fn from() -> Vec<String> {
        DEFAULT_MANAGERS.map(str::to_owned).to_vec()
    }

    #[test]
    fn adopted_fields_join_our_apply_entry_and_controllers_keep_theirs() {
        let entries = vec![
            entry("outpost", "Apply", json!({"f:data": {"f:k": {}}})),
            entry(
                "kubectl-client-side-apply",
                "Update",
                json!({"f:data": {"f:old": {}}, "f:metadata": {"f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}}}}),
            ),
            entry(
                "kube-controller-manager",
                "Update",
                json!({"f:data": {"f:ctl": {}}}),
            ),
            entry(
                "helm",
                "Apply",
                json!({"f:metadata": {"f:labels": {"f:chart": {}}}}),
            ),
        ];
        let from = from();
        let policy = Policy {
            ours: "outpost",
            from: &from,
        };
        let (folded, names) = policy.fold(&entries).expect("something to adopt");
        assert_eq!(names, ["helm", "kubectl-client-side-apply"]);
        let managers: Vec<_> = folded.iter().map(|e| e.manager.clone().unwrap()).collect();
        assert_eq!(managers, ["outpost", "kube-controller-manager"]);
        assert_eq!(
            folded[0].fields_v1.as_ref().unwrap().0,
            json!({
                "f:data": {"f:k": {}, "f:old": {}},
                "f:metadata": {"f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}},
                               "f:labels": {"f:chart": {}}}
            })
        );
        assert_eq!(folded[1], entries[2]);
        assert!(policy.fold(&folded).is_none(), "a second fold finds nothing");
    }

    #[test]
    fn without_an_entry_of_ours_the_first_adopted_one_becomes_it() {
        let entries = vec![
            entry("kubectl", "Apply", json!({"f:data": {"f:a": {}}})),
            entry("before-first-apply", "Update", json!({"f:data": {"f:b": {}}})),
        ];
        let from = from();
        let (folded, _) = Policy {
            ours: "outpost",
            from: &from,
        }
        .fold(&entries)
        .unwrap();
        assert_eq!(folded.len(), 1);
        assert_eq!(folded[0].manager.as_deref(), Some("outpost"));
        assert_eq!(folded[0].operation.as_deref(), Some("Apply"));
        assert_eq!(
            folded[0].fields_v1.as_ref().unwrap().0,
            json!({"f:data": {"f:a": {}, "f:b": {}}})
        );
    }

    #[test]
    fn subresources_hand_edits_and_an_empty_list_are_left_alone() {
        let mut status = entry("kubectl", "Update", json!({"f:status": {"f:x": {}}}));
        status.subresource = Some("status".to_owned());
        let entries = vec![
            entry("outpost", "Apply", json!({"f:data": {}})),
            status,
            entry("kubectl-edit", "Update", json!({"f:data": {"f:e": {}}})),
        ];
        let from = from();
        assert!(
            Policy {
                ours: "outpost",
                from: &from
            }
            .fold(&entries)
            .is_none()
        );
        assert!(
            Policy {
                ours: "outpost",
                from: &[]
            }
            .fold(&entries)
            .is_none()
        );
    }

    #[test]
    fn a_stale_annotation_is_needed_work_unless_git_declares_it() {
        let from = from();
        let policy = Policy {
            ours: "outpost",
            from: &from,
        };
        let plain = RawValue::from_string(r#"{"metadata":{"name":"a"}}"#.to_owned()).unwrap();
        let declared = RawValue::from_string(format!(
            r#"{{"metadata":{{"name":"a","annotations":{{"{LAST_APPLIED}":"{{}}"}}}}}}"#
        ))
        .unwrap();
        assert!(policy.needed(&[], true, &plain));
        assert!(!policy.needed(&[], true, &declared));
        assert!(!policy.needed(&[], false, &plain));
        let helm = Manager {
            manager: "helm".into(),
            operation: "Update".into(),
            subresource: String::new(),
        };
        assert!(policy.needed(&[helm], false, &plain));
        let off = Policy {
            ours: "outpost",
            from: &[],
        };
        assert!(
            !off.needed(&[], true, &plain),
            "adoption turned off leaves the annotation alone"
        );
    }
}
