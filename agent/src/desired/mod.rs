//! Desired objects: manifests turned into exactly what will be sent, with identity settled.
//!
//! Each manifest of each bundle is resolved through discovery (or, for a kind whose CRD is in the same commit,
//! through that CRD's `spec.scope`), its namespace settled, port defaults filled, the bundle's ApplySet
//! `part-of` label added, and its digest computed over the final body. Objects whose kind cannot be resolved
//! become failures but still protect their possible identities from prune.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value;
use serde_json::value::RawValue;

use crate::inventory::applyset::PART_OF_LABEL;
use sha2::Digest;

mod failure;
mod fence;
mod stage;

pub use failure::{Failure, ObjectError};
pub use fence::{Fence, Refusal};
pub use stage::Stage;

use crate::manifest::{Bundle, Manifest, Origin, digest, normalize};
use crate::object::ObjectKey;
use crate::resolve::{Resolved, Resolver};

/// Annotation asking for delete-and-recreate when an immutable field changed.
pub const FORCE_ANNOTATION: &str = "outpost.dev/force";
/// Annotation keeping an object when it leaves Git (`disabled`), or consenting to a prune that deletes what
/// the object holds (`allow-cascade`).
pub const PRUNE_ANNOTATION: &str = "outpost.dev/prune";
/// Value of [`PRUNE_ANNOTATION`] that consents to a cascading delete (a Namespace, CRD or volume).
pub const ALLOW_CASCADE: &str = "allow-cascade";
/// Namespace given to namespaced objects written without one (as kubectl does without a context namespace).
pub const DEFAULT_NAMESPACE: &str = "default";

/// One object as it will be applied.
#[derive(Clone, Debug)]
pub struct DesiredObject {
    /// Its bundle.
    pub bundle: String,
    /// Identity with namespace settled.
    pub key: ObjectKey,
    /// apiVersion as written.
    pub api_version: String,
    /// Where it was written.
    pub origin: Origin,
    /// The body to send (namespace settled, defaults filled, part-of label set), as compact canonical JSON:
    /// ten thousand objects stay small in memory, and it is sent as is.
    pub body: Arc<RawValue>,
    /// For a CustomResourceDefinition, the group it defines (re-discovered once it is Established).
    pub crd_group: Option<String>,
    /// Digest of `body`.
    pub digest: String,
    /// Apply stage.
    pub stage: Stage,
    /// The REST resource; `None` while its CRD (in this same commit) is not established yet.
    pub resolved: Option<Resolved>,
    /// `outpost.dev/force: "true"`: recreate on immutable-field errors.
    pub force_recreate: bool,
}

/// All desired objects of a commit.
#[derive(Debug, Default)]
pub struct DesiredSet {
    /// Resolved objects, by bundle.
    pub objects: BTreeMap<String, Vec<Arc<DesiredObject>>>,
    /// Objects whose kind is unknown, by bundle.
    pub failures: BTreeMap<String, Vec<Failure>>,
    /// Every identity a desired object may have (including unresolved ones under both scopes): never pruned.
    pub protected: BTreeSet<ObjectKey>,
}

impl DesiredObject {
    /// The body as a JSON value (parsed on demand; rarely needed).
    pub fn value(&self) -> Value {
        serde_json::from_str(self.body.get()).unwrap_or(Value::Null)
    }
}

impl DesiredSet {
    /// Number of objects (resolved or not).
    pub fn len(&self) -> usize {
        self.objects.values().map(Vec::len).sum::<usize>()
            + self.failures.values().map(Vec::len).sum::<usize>()
    }

    /// True when no bundle holds any object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Build the desired set, taking the manifests out of `bundles` (their bodies move into the desired objects
/// instead of being copied). `applyset_id` gives each bundle's ApplySet id; what `fence` refuses becomes a
/// failure (still protected from prune).
pub async fn build(
    bundles: &mut [Bundle],
    resolver: &mut Resolver,
    fence: &Fence,
    applyset_id: impl Fn(&str) -> String,
) -> DesiredSet {
    let crd_scopes = crd_scopes(bundles);
    let mut set = DesiredSet::default();
    for bundle in bundles.iter_mut() {
        let id = applyset_id(&bundle.name);
        let objects = set.objects.entry(bundle.name.clone()).or_default();
        for m in std::mem::take(&mut bundle.manifests) {
            let resolved = resolver.resolve(&m.api_version, &m.kind).await;
            let (namespaced, resolved) = match resolved {
                Ok(r) => (r.namespaced(), Some(r)),
                Err(e) => match crd_scopes.get(&(m.group().to_owned(), m.kind.clone())) {
                    Some(namespaced) => (*namespaced, None),
                    None => {
                        for ns in [m.namespace.clone(), None] {
                            set.protected.insert(key_of(&m, ns));
                        }
                        set.failures
                            .entry(bundle.name.clone())
                            .or_default()
                            .push(Failure {
                                bundle: bundle.name.clone(),
                                object: m.display_name(),
                                origin: m.origin.clone(),
                                error: ObjectError::Resolve(e),
                            });
                        continue;
                    }
                },
            };
            let (object, origin) = (m.display_name(), m.origin.clone());
            let obj = settle(&bundle.name, m, namespaced, resolved, &id);
            set.protected.insert(obj.key.clone());
            if let Some(refusal) = fence.check(&obj.key, obj.body.get()) {
                set.failures
                    .entry(bundle.name.clone())
                    .or_default()
                    .push(Failure {
                        bundle: bundle.name.clone(),
                        object,
                        origin,
                        error: refusal.into(),
                    });
                continue;
            }
            objects.push(Arc::new(obj));
        }
    }
    set
}

/// Scope of kinds defined by CRDs in this commit: (group, kind) → namespaced.
fn crd_scopes(bundles: &[Bundle]) -> BTreeMap<(String, String), bool> {
    bundles
        .iter()
        .flat_map(|b| &b.manifests)
        .filter(|m| m.group() == "apiextensions.k8s.io" && m.kind == "CustomResourceDefinition")
        .filter_map(|m| {
            let body = m.value();
            let group = body.pointer("/spec/group")?.as_str()?.to_owned();
            let kind = body.pointer("/spec/names/kind")?.as_str()?.to_owned();
            let namespaced = body.pointer("/spec/scope").and_then(Value::as_str) != Some("Cluster");
            Some(((group, kind), namespaced))
        })
        .collect()
}

fn key_of(m: &Manifest, namespace: Option<String>) -> ObjectKey {
    ObjectKey {
        group: m.group().to_owned(),
        kind: m.kind.clone(),
        namespace,
        name: m.name.clone(),
    }
}

/// Settle namespace, fill defaults, label, digest.
fn settle(
    bundle: &str,
    m: Manifest,
    namespaced: bool,
    resolved: Option<Resolved>,
    id: &str,
) -> DesiredObject {
    let key = key_of(&m, None);
    let mut body = m.value();
    let namespace = namespaced.then(|| {
        m.namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned())
    });
    normalize::apply_defaults(&key.group, &key.kind, &mut body);
    let mut force_recreate = false;
    if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        match &namespace {
            Some(ns) => {
                meta.insert("namespace".into(), Value::String(ns.clone()));
            }
            // EMCO's rsync writes a namespace even on cluster-scoped kinds; the API server would reject it.
            None => {
                meta.remove("namespace");
            }
        }
        force_recreate = meta
            .get("annotations")
            .and_then(|a| a.get(FORCE_ANNOTATION))
            .and_then(Value::as_str)
            == Some("true");
        let labels = meta
            .entry("labels")
            .or_insert_with(|| Value::Object(Default::default()));
        if !labels.is_object() {
            *labels = Value::Object(Default::default());
        }
        if let Some(labels) = labels.as_object_mut() {
            labels.insert(PART_OF_LABEL.into(), Value::String(id.to_owned()));
        }
    }
    let crd_group = (key.group == "apiextensions.k8s.io" && key.kind == "CustomResourceDefinition")
        .then(|| {
            body.pointer("/spec/group")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .flatten();
    // `Value`'s map is ordered, so this JSON is canonical: its digest is the object's digest.
    let raw = serde_json::value::to_raw_value(&body).unwrap_or_else(|_| RawValue::NULL.to_owned());
    let digest = digest::hex(&sha2::Sha256::digest(raw.get().as_bytes()));
    DesiredObject {
        bundle: bundle.to_owned(),
        stage: Stage::of(&key.group, &key.kind),
        key: ObjectKey { namespace, ..key },
        api_version: m.api_version,
        origin: m.origin,
        digest,
        body: Arc::from(raw),
        crd_group,
        resolved,
        force_recreate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse::parse_file;

    fn manifest(text: &str) -> Manifest {
        parse_file("f.yaml", text.as_bytes()).unwrap().remove(0)
    }

    #[test]
    fn settling_adds_the_part_of_label_and_drops_namespaces_of_cluster_scoped_kinds() {
        let m = manifest(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: r\n  namespace: x\n  labels: {a: b}\n",
        );
        let obj = settle("web", m, false, None, "applyset-abc-v1");
        assert_eq!(obj.key.namespace, None);
        let body = obj.value();
        assert!(body["metadata"].get("namespace").is_none());
        assert_eq!(body["metadata"]["labels"]["a"], "b");
        assert_eq!(body["metadata"]["labels"][PART_OF_LABEL], "applyset-abc-v1");
        assert_eq!(obj.stage, Stage::Config);
    }

    #[test]
    fn namespaced_objects_without_namespace_go_to_default_and_force_is_read() {
        let m = manifest(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  annotations: {outpost.dev/force: \"true\"}\n",
        );
        let obj = settle("web", m, true, None, "id");
        assert_eq!(obj.key.namespace.as_deref(), Some(DEFAULT_NAMESPACE));
        assert_eq!(obj.value()["metadata"]["namespace"], DEFAULT_NAMESPACE);
        assert!(obj.force_recreate);
    }

    #[test]
    fn the_digest_changes_with_the_bundle_id() {
        let m = manifest("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: ns1}\n");
        let d = |id: &str| settle("a", m.clone(), true, None, id).digest;
        assert_ne!(d("id-a"), d("id-b"));
        assert_eq!(d("id-a"), d("id-a"));
        // The digest is the canonical digest of the body that is sent.
        let obj = settle("a", m.clone(), true, None, "id-a");
        assert_eq!(obj.digest, digest::of_value(&obj.value()));
    }
}
