//! What exists in the cluster right now, for the objects we manage: metadata only, listed by the ApplySet
//! `part-of` label, one paged list per kind.
//!
//! The plan uses it to re-send objects that are missing or were changed by hand, and to skip the rest. A kind
//! that cannot be listed is marked unknown: its objects are then all re-sent (server-side apply makes that
//! harmless), never assumed fine.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::PartialObjectMeta;

use crate::inventory::applyset::PART_OF_LABEL;
use crate::object::ObjectKey;
use crate::resolve::Resolver;

/// Items per list page: 10,000 objects in twenty requests, and only one page of metadata in memory at a time
/// (pages carry managedFields and are larger than they look).
const PAGE_SIZE: u32 = 500;

/// Metadata of a live object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveMeta {
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `metadata.resourceVersion`.
    pub resource_version: Option<String>,
    /// Value of the `part-of` label.
    pub part_of: Option<String>,
    /// `metadata.uid` (when listed): prune deletes with it as a precondition without reading the object again.
    pub uid: Option<String>,
    /// Annotated `outpost.dev/prune: disabled`.
    pub keep: bool,
    /// Annotated `outpost.dev/prune: allow-cascade`: consents to a prune that deletes what it holds.
    pub allow_cascade: bool,
}

impl LiveMeta {
    /// From an object's metadata.
    pub fn of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Self {
        let prune = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::desired::PRUNE_ANNOTATION))
            .map(String::as_str);
        LiveMeta {
            generation: meta.generation,
            resource_version: meta.resource_version.clone(),
            part_of: meta.labels.as_ref().and_then(|l| l.get(PART_OF_LABEL).cloned()),
            uid: meta.uid.clone(),
            keep: prune == Some("disabled"),
            allow_cascade: prune == Some(crate::desired::ALLOW_CASCADE),
        }
    }
}

/// What a lookup found.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// The object exists.
    Present(&'a LiveMeta),
    /// Its kind was listed and it is not there.
    Absent,
    /// Its kind could not be listed.
    Unknown,
}

/// Live metadata of managed objects.
#[derive(Debug, Default)]
pub struct LiveIndex {
    /// (group, kind) pairs that were listed completely.
    listed: BTreeSet<(String, String)>,
    /// Objects found.
    objects: HashMap<ObjectKey, LiveMeta>,
}

impl LiveIndex {
    /// Look an object up.
    pub fn get(&self, key: &ObjectKey) -> Lookup<'_> {
        match self.objects.get(key) {
            Some(meta) => Lookup::Present(meta),
            None if self.listed.contains(&(key.group.clone(), key.kind.clone())) => Lookup::Absent,
            None => Lookup::Unknown,
        }
    }

    /// Record an object (used by tests and by watch caches).
    pub fn insert(&mut self, key: ObjectKey, meta: LiveMeta) {
        self.listed.insert((key.group.clone(), key.kind.clone()));
        self.objects.insert(key, meta);
    }

    /// Mark a kind as completely known even with no objects.
    pub fn mark_listed(&mut self, group: &str, kind: &str) {
        self.listed.insert((group.to_owned(), kind.to_owned()));
    }
}

/// Kinds to list: (group, kind) → (an apiVersion to use, the namespaces members are in).
pub type Kinds = BTreeMap<(String, String), (String, BTreeSet<Option<String>>)>;

/// List the live objects of `kinds`: (group, kind) → (an apiVersion to use, the namespaces members are in).
/// Cluster-wide lists are tried first; when RBAC forbids them, each namespace is listed instead.
pub async fn list(client: &Client, resolver: &mut Resolver, kinds: &Kinds) -> LiveIndex {
    let mut index = LiveIndex::default();
    for ((group, kind), (api_version, namespaces)) in kinds {
        let Ok(resolved) = resolver.resolve(api_version, kind).await else {
            continue;
        };
        let all = resolved.api(client, None);
        let namespaced = resolved.namespaced();
        let complete = match list_into(&all, &mut index, group, kind, namespaced).await {
            Ok(()) => true,
            Err(kube::Error::Api(s)) if s.code == 403 && namespaced => {
                let mut complete = true;
                for ns in namespaces.iter().flatten() {
                    let api = resolved.api(client, Some(ns.as_str()));
                    if list_into(&api, &mut index, group, kind, true).await.is_err() {
                        complete = false;
                    }
                }
                complete
            }
            Err(_) => false,
        };
        if complete {
            index.mark_listed(group, kind);
        }
    }
    index
}

/// All pages of one list, added to the index page by page (a page of metadata is all that is ever held).
async fn list_into(
    api: &Api<DynamicObject>,
    index: &mut LiveIndex,
    group: &str,
    kind: &str,
    namespaced: bool,
) -> Result<(), kube::Error> {
    let mut params = ListParams::default().labels(PART_OF_LABEL).limit(PAGE_SIZE);
    loop {
        let page = api.list_metadata(&params).await?;
        let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
        add(index, group, kind, namespaced, page.items);
        match next {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(()),
        }
    }
}

fn add(
    index: &mut LiveIndex,
    group: &str,
    kind: &str,
    namespaced: bool,
    items: Vec<PartialObjectMeta<DynamicObject>>,
) {
    for item in items {
        let key = ObjectKey {
            group: group.to_owned(),
            kind: kind.to_owned(),
            namespace: if namespaced {
                item.metadata.namespace.clone()
            } else {
                None
            },
            name: item.metadata.name.clone().unwrap_or_default(),
        };
        index.objects.insert(key, LiveMeta::of(&item.metadata));
    }
}

/// Whether the live object changed since our apply: generation for kinds that have one (status updates do
/// not count), resourceVersion for the rest, and always when our `part-of` label was removed.
pub fn drifted(recorded: &crate::inventory::Member, live: &LiveMeta, id: &str) -> bool {
    if live.part_of.as_deref() != Some(id) {
        return true;
    }
    match (recorded.generation, live.generation) {
        (Some(ours), Some(now)) => ours != now,
        _ => recorded.resource_version.is_some() && recorded.resource_version != live.resource_version,
    }
}
