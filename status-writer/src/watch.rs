//! What the status writer knows about the cluster, kept current by watches (kube-runtime watchers with
//! backoff): the agent's inventories, the full live objects of every member kind (label `part-of`), and pods.
//!
//! Every change marks the index dirty and wakes the writer, which renders after its debounce window. The
//! ResourceBundleState CRD is never needed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use outpost_agent::inventory::Inventory;
use outpost_agent::inventory::applyset::{self, PART_OF_LABEL};
use outpost_agent::inventory::store::{INVENTORY_LABEL, INVENTORY_VERSION, decode};
use outpost_agent::object::ObjectKey;
use outpost_agent::resolve::Resolver;
use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info_span, warn};

use crate::parents::{Naming, parent_kind, put};

/// A consistent copy of the index for one render.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Inventories of this cluster by bundle.
    pub inventories: BTreeMap<String, Inventory>,
    /// Live member objects.
    pub objects: BTreeMap<ObjectKey, Value>,
    /// Pods by (namespace, name).
    pub pods: BTreeMap<(String, String), Value>,
    /// Whether every watch has delivered its initial list (rendering before that would report missing objects).
    pub complete: bool,
}

/// Shared state of the watches.
#[derive(Default)]
struct State {
    /// What the watches have seen so far; copied out for each render.
    snapshot: Snapshot,
    /// (group, kind) whose initial list is done.
    listed: BTreeSet<(String, String)>,
    /// The inventory watch delivered its initial list (before that, bundles would look absent).
    inventories_listed: bool,
    /// The pod watch delivered its initial list (before that, workloads would look podless).
    pods_listed: bool,
}

impl State {
    fn complete(&self) -> bool {
        let kinds: BTreeSet<(String, String)> = self
            .snapshot
            .inventories
            .values()
            .flat_map(|i| i.members.keys().map(|k| (k.group.clone(), k.kind.clone())))
            .collect();
        self.inventories_listed && self.pods_listed && kinds.is_subset(&self.listed)
    }
}

/// Member watch tasks by (group, kind).
type Watchers = HashMap<(String, String), JoinHandle<()>>;

/// The watches and their index.
#[derive(Clone)]
pub struct Index {
    /// Shared with every watch task, which updates it as events arrive.
    state: Arc<Mutex<State>>,
    /// The agent namespace (ApplySet ids depend on it).
    namespace: String,
    /// The cluster whose inventories are watched (parent names, and so ApplySet ids, depend on it).
    cluster: String,
    /// The ids the member watches select, to restart them when bundles come or go.
    watched_ids: Arc<Mutex<BTreeSet<String>>>,
    /// Woken on every change.
    pub changed: Arc<Notify>,
    /// For the member watches started as kinds appear.
    client: Client,
    /// The running member watches, to stop those whose kind no bundle has any more.
    watchers: Arc<Mutex<Watchers>>,
    /// Maps a member's apiVersion and kind to its API resource (discovery, cached).
    resolver: Arc<tokio::sync::Mutex<Resolver>>,
}

impl Index {
    /// Start watching inventories of `cluster` in `namespace`, and pods. Member kinds are watched as they appear.
    pub fn start(client: Client, namespace: &str, cluster: &str) -> Self {
        let index = Index {
            state: Arc::default(),
            namespace: namespace.to_owned(),
            cluster: cluster.to_owned(),
            watched_ids: Arc::default(),
            changed: Arc::new(Notify::new()),
            resolver: Arc::new(tokio::sync::Mutex::new(Resolver::new(client.clone()))),
            client: client.clone(),
            watchers: Arc::default(),
        };
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        tokio::spawn(
            index
                .clone()
                .watch_inventories(secrets, cluster.to_owned())
                .instrument(info_span!("inventories")),
        );
        let pods: Api<Pod> = Api::all(client);
        tokio::spawn(index.clone().watch_pods(pods).instrument(info_span!("pods")));
        index
    }

    /// A copy of what is known now.
    pub fn snapshot(&self) -> Snapshot {
        let state = self.lock();
        let mut snap = state.snapshot.clone();
        snap.complete = state.complete();
        snap
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn watch_inventories(self, api: Api<Secret>, cluster: String) {
        let config = watcher::Config::default().labels(&format!("{INVENTORY_LABEL}={INVENTORY_VERSION}"));
        let mut stream = watcher::watcher(api, config).default_backoff().boxed();
        let mut relist: Option<BTreeMap<String, Inventory>> = None;
        while let Some(event) = stream.next().await {
            let ours = |s: &Secret| parent_kind(s, &cluster);
            match event {
                Ok(watcher::Event::Apply(s)) if ours(&s).is_some() => self.put_inventory(&s, ours(&s)),
                // The agent deletes a parent of the previous layout only once its current one is written.
                Ok(watcher::Event::Delete(s)) if ours(&s) == Some(Naming::Current) => {
                    if let Ok(inv) = decode(&s) {
                        self.lock().snapshot.inventories.remove(&inv.info.bundle);
                    }
                }
                Ok(watcher::Event::Init) => relist = Some(BTreeMap::new()),
                Ok(watcher::Event::InitApply(s)) if ours(&s).is_some() => {
                    if let (Some(r), Ok(inv)) = (relist.as_mut(), decode(&s)) {
                        put(r, inv, ours(&s));
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    let mut state = self.lock();
                    state.snapshot.inventories = relist.take().unwrap_or_default();
                    state.inventories_listed = true;
                }
                Ok(_) => continue,
                Err(e) => {
                    warn!(error = %e, "Inventory watch failed (retrying)");
                    continue;
                }
            }
            self.ensure_member_watches().await;
            self.changed.notify_one();
        }
    }

    fn put_inventory(&self, secret: &Secret, naming: Option<Naming>) {
        match decode(secret) {
            Ok(inv) => put(&mut self.lock().snapshot.inventories, inv, naming),
            Err(e) => warn!(error = %e, "Unreadable inventory"),
        }
    }

    /// Watch every member kind of every inventory, selecting only this cluster's ApplySets; stop watching kinds
    /// nobody has any more, and restart all member watches when the set of bundles changes.
    async fn ensure_member_watches(&self) {
        let (kinds, ids): (BTreeMap<(String, String), String>, BTreeSet<String>) = {
            let state = self.lock();
            let kinds = state
                .snapshot
                .inventories
                .values()
                .flat_map(|i| i.members.iter())
                .map(|(k, m)| ((k.group.clone(), k.kind.clone()), m.api_version.clone()))
                .collect();
            let ids = state
                .snapshot
                .inventories
                .keys()
                // Members of a parent the agent has not migrated yet still carry the previous layout's id.
                .flat_map(|b| {
                    [
                        applyset::parent_name(&self.cluster, b),
                        applyset::legacy_parent_name(b),
                    ]
                })
                .map(|name| applyset::id(&name, &self.namespace))
                .collect();
            (kinds, ids)
        };
        let ids_changed = {
            let mut watched = self.watched_ids.lock().unwrap_or_else(|e| e.into_inner());
            let changed = *watched != ids;
            *watched = ids.clone();
            changed
        };
        if ids.is_empty() {
            return;
        }
        let selector = format!(
            "{PART_OF_LABEL} in ({})",
            ids.into_iter().collect::<Vec<_>>().join(",")
        );
        let mut to_start = Vec::new();
        {
            let mut watchers = self.watchers.lock().unwrap_or_else(|e| e.into_inner());
            if ids_changed {
                for (_, h) in watchers.drain() {
                    h.abort();
                }
                let mut state = self.lock();
                state.listed.clear();
            }
            watchers.retain(|gk, h| {
                let keep = kinds.contains_key(gk);
                if !keep {
                    h.abort();
                }
                keep
            });
            for (gk, v) in &kinds {
                if !watchers.contains_key(gk) {
                    to_start.push((gk.clone(), v.clone()));
                }
            }
        }
        for ((group, kind), api_version) in to_start {
            let resolved = match self.resolver.lock().await.resolve(&api_version, &kind).await {
                Ok(r) => r,
                Err(e) => {
                    debug!(kind = %kind, error = %e, "Member kind not resolvable (yet)");
                    continue;
                }
            };
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resolved.resource);
            let this = self.clone();
            let gk = (group.clone(), kind.clone());
            let namespaced = resolved.namespaced();
            let span = info_span!("members", kind = %outpost_agent::object::group_kind(&group, &kind));
            let types = (
                resolved.resource.api_version.clone(),
                resolved.resource.kind.clone(),
            );
            let handle = tokio::spawn(
                this.watch_members(api, gk.clone(), types, namespaced, selector.clone())
                    .instrument(span),
            );
            self.watchers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(gk, handle);
        }
    }

    async fn watch_members(
        self,
        api: Api<DynamicObject>,
        gk: (String, String),
        types: (String, String),
        namespaced: bool,
        selector: String,
    ) {
        // List items come without apiVersion and kind; health and rendering need them.
        let to_value = |o: &DynamicObject| {
            let mut v = to_value(o);
            if let Some(map) = v.as_object_mut() {
                map.insert("apiVersion".into(), Value::String(types.0.clone()));
                map.insert("kind".into(), Value::String(types.1.clone()));
            }
            v
        };
        let config = watcher::Config::default().labels(&selector);
        let mut stream = watcher::watcher(api, config).default_backoff().boxed();
        let key_of = |o: &DynamicObject| ObjectKey {
            group: gk.0.clone(),
            kind: gk.1.clone(),
            namespace: if namespaced { o.namespace() } else { None },
            name: o.name_any(),
        };
        let mut relist: Option<BTreeMap<ObjectKey, Value>> = None;
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(o)) => {
                    let v = to_value(&o);
                    self.lock().snapshot.objects.insert(key_of(&o), v);
                }
                Ok(watcher::Event::Delete(o)) => {
                    self.lock().snapshot.objects.remove(&key_of(&o));
                }
                Ok(watcher::Event::Init) => relist = Some(BTreeMap::new()),
                Ok(watcher::Event::InitApply(o)) => {
                    if let Some(r) = relist.as_mut() {
                        r.insert(key_of(&o), to_value(&o));
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    let fresh = relist.take().unwrap_or_default();
                    let mut state = self.lock();
                    state
                        .snapshot
                        .objects
                        .retain(|k, _| k.group != gk.0 || k.kind != gk.1);
                    state.snapshot.objects.extend(fresh);
                    state.listed.insert(gk.clone());
                }
                Err(e) => {
                    debug!(error = %e, "Member watch failed (retrying)");
                    continue;
                }
            }
            self.changed.notify_one();
        }
    }

    async fn watch_pods(self, api: Api<Pod>) {
        let mut stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let key_of = |p: &Pod| (p.namespace().unwrap_or_default(), p.name_any());
        let mut relist: Option<BTreeMap<(String, String), Value>> = None;
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(p)) => {
                    let v = pod_value(&p);
                    self.lock().snapshot.pods.insert(key_of(&p), v);
                }
                Ok(watcher::Event::Delete(p)) => {
                    self.lock().snapshot.pods.remove(&key_of(&p));
                }
                Ok(watcher::Event::Init) => relist = Some(BTreeMap::new()),
                Ok(watcher::Event::InitApply(p)) => {
                    if let Some(r) = relist.as_mut() {
                        r.insert(key_of(&p), pod_value(&p));
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    let mut state = self.lock();
                    state.snapshot.pods = relist.take().unwrap_or_default();
                    state.pods_listed = true;
                }
                Err(e) => {
                    debug!(error = %e, "Pod watch failed (retrying)");
                    continue;
                }
            }
            self.changed.notify_one();
        }
    }
}

fn to_value(o: &DynamicObject) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

fn pod_value(p: &Pod) -> Value {
    let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
    if let Some(map) = v.as_object_mut() {
        map.insert("apiVersion".into(), Value::String("v1".into()));
        map.insert("kind".into(), Value::String("Pod".into()));
    }
    v
}
