//! What the status writer knows about the cluster, kept current by watches (kube-runtime watchers with
//! backoff): the agent's inventories, the full live objects of every member kind (label `part-of`), and pods.
//!
//! Every change marks the index dirty and wakes the writer, which renders after its debounce window. The
//! ResourceBundleState CRD is never needed.
//!
//! Watches follow the [`WatchScope`]: cluster-wide, or with RBAC limited to some namespaces
//! (`--watch-namespaces`) one watch per member kind and namespace, and pods in each listed namespace.
//! Cluster-scoped member kinds are then not watched (their objects are reported missing), and a watch RBAC
//! forbids keeps the index incomplete: both go to [`WatchHealth`] (log, metric, `/readyz`), never silent.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use outpost_agent::inventory::Inventory;
use outpost_agent::inventory::applyset::{self, PART_OF_LABEL};
use outpost_agent::inventory::store::INVENTORY_LABEL;
use outpost_agent::object::ObjectKey;
use outpost_agent::resolve::Resolver;
use outpost_agent::watch_scope::{Unavailable, WatchHealth, WatchScope, WatchTarget, is_forbidden};
use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info_span, warn};

use crate::parents::{Naming, bundle_of, parent_kind, put, read};

mod pods;

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
    /// Member watches whose initial list is done.
    listed: BTreeSet<WatchTarget>,
    /// The inventory watch delivered its initial list (before that, bundles would look absent).
    inventories_listed: bool,
    /// Namespaces (`None`: all) whose pod watch delivered its initial list (before that, workloads would look
    /// podless).
    pods_listed: BTreeSet<Option<String>>,
}

impl State {
    fn complete(&self, scope: &WatchScope) -> bool {
        let pods = scope
            .every_namespace()
            .into_iter()
            .all(|ns| self.pods_listed.contains(&ns));
        self.inventories_listed
            && pods
            && wanted(&self.snapshot.inventories, scope)
                .0
                .keys()
                .all(|t| self.listed.contains(t))
    }
}

/// The member watches the inventories need in `scope` (each with an apiVersion to watch it through), and those
/// the scope cannot have.
fn wanted(
    inventories: &BTreeMap<String, Inventory>,
    scope: &WatchScope,
) -> (BTreeMap<WatchTarget, String>, Vec<(WatchTarget, Unavailable)>) {
    let mut kinds: outpost_agent::live::Kinds = BTreeMap::new();
    for (key, member) in inventories.values().flat_map(|i| i.members.iter()) {
        kinds
            .entry((key.group.clone(), key.kind.clone()))
            .or_insert_with(|| (member.api_version.clone(), BTreeSet::new()))
            .1
            .insert(key.namespace.clone());
    }
    let (mut watch, mut unavailable) = (BTreeMap::new(), Vec::new());
    for ((group, kind), (api_version, namespaces)) in kinds {
        let (targets, cannot) = scope.plan(&group, &kind, &namespaces);
        watch.extend(targets.into_iter().map(|t| (t, api_version.clone())));
        unavailable.extend(cannot);
    }
    (watch, unavailable)
}

/// Member watch tasks by kind and namespace.
type Watchers = HashMap<WatchTarget, JoinHandle<()>>;

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
    /// Where watches may look (`--watch-namespaces`).
    scope: WatchScope,
    /// Watches not running and why: logged, counted, and shown on `/readyz`.
    pub health: WatchHealth,
}

impl Index {
    /// Start watching inventories of `cluster` in `namespace`, and pods, where `scope` allows. Member kinds are
    /// watched as they appear; watches that cannot run are reported to `health`.
    pub fn start(
        client: Client,
        namespace: &str,
        cluster: &str,
        scope: WatchScope,
        health: WatchHealth,
    ) -> Self {
        let index = Index {
            state: Arc::default(),
            namespace: namespace.to_owned(),
            cluster: cluster.to_owned(),
            watched_ids: Arc::default(),
            changed: Arc::new(Notify::new()),
            resolver: Arc::new(tokio::sync::Mutex::new(Resolver::new(client.clone()))),
            client: client.clone(),
            watchers: Arc::default(),
            scope,
            health,
        };
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        tokio::spawn(
            index
                .clone()
                .watch_inventories(secrets, cluster.to_owned())
                .instrument(info_span!("inventories")),
        );
        for namespace in index.scope.every_namespace() {
            let pods: Api<Pod> = match &namespace {
                Some(ns) => Api::namespaced(client.clone(), ns),
                None => Api::all(client.clone()),
            };
            let span = info_span!("pods", namespace = namespace.as_deref().unwrap_or("*"));
            tokio::spawn(index.clone().watch_pods(pods, namespace).instrument(span));
        }
        index
    }

    /// A copy of what is known now.
    pub fn snapshot(&self) -> Snapshot {
        let state = self.lock();
        let mut snap = state.snapshot.clone();
        snap.complete = state.complete(&self.scope);
        snap
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn watch_inventories(self, api: Api<Secret>, cluster: String) {
        // Any label value: a parent a newer agent labelled otherwise is skipped with a warning, not unseen.
        let config = watcher::Config::default().labels(INVENTORY_LABEL);
        let mut stream = watcher::watcher(api, config).default_backoff().boxed();
        let mut relist: Option<BTreeMap<String, Inventory>> = None;
        let mut forbidden = false;
        while let Some(event) = stream.next().await {
            if event.is_ok() && std::mem::take(&mut forbidden) {
                self.health.set(&self.inventory_target(), None);
            }
            let ours = |s: &Secret| parent_kind(s, &cluster);
            match event {
                Ok(watcher::Event::Apply(s)) if ours(&s).is_some() => self.put_inventory(&s, ours(&s)),
                // The agent deletes a parent of the previous layout only once its current one is written.
                Ok(watcher::Event::Delete(s)) if ours(&s) == Some(Naming::Current) => {
                    if let Some(bundle) = bundle_of(&s) {
                        self.lock().snapshot.inventories.remove(&bundle);
                    }
                }
                Ok(watcher::Event::Init) => relist = Some(BTreeMap::new()),
                Ok(watcher::Event::InitApply(s)) if ours(&s).is_some() => {
                    if let (Some(r), Some(inv)) = (relist.as_mut(), read(&s)) {
                        put(r, inv, ours(&s));
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    let mut state = self.lock();
                    state.snapshot.inventories = relist.take().unwrap_or_default();
                    state.inventories_listed = true;
                }
                Ok(_) => continue,
                Err(e) if is_forbidden(&e) => {
                    if !std::mem::replace(&mut forbidden, true) {
                        self.health
                            .set(&self.inventory_target(), Some(Unavailable::Forbidden));
                        self.changed.notify_one();
                    }
                    continue;
                }
                Err(e) => {
                    warn!(error = %e, "Inventory watch failed (retrying)");
                    continue;
                }
            }
            self.ensure_member_watches().await;
            self.changed.notify_one();
        }
    }

    /// The inventory watch, as [`WatchHealth`] names it.
    fn inventory_target(&self) -> WatchTarget {
        WatchTarget {
            group: String::new(),
            kind: "Secret".into(),
            namespace: Some(self.namespace.clone()),
        }
    }

    fn put_inventory(&self, secret: &Secret, naming: Option<Naming>) {
        if let Some(inv) = read(secret) {
            put(&mut self.lock().snapshot.inventories, inv, naming);
        }
    }

    /// Watch every member kind of every inventory, selecting only this cluster's ApplySets; stop watching kinds
    /// nobody has any more, and restart all member watches when the set of bundles changes.
    async fn ensure_member_watches(&self) {
        let ((kinds, unavailable), ids) = {
            let state = self.lock();
            let kinds = wanted(&state.snapshot.inventories, &self.scope);
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
        let inventories = self.inventory_target();
        self.health.retain(|t| {
            t.kind == "Pod"
                || *t == inventories
                || kinds.contains_key(t)
                || unavailable.iter().any(|(u, _)| u == t)
        });
        for (target, why) in &unavailable {
            self.health.set(target, Some(*why));
        }
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
            for (target, v) in &kinds {
                if !watchers.contains_key(target) {
                    to_start.push((target.clone(), v.clone()));
                }
            }
        }
        for (target, api_version) in to_start {
            let resolved = match self
                .resolver
                .lock()
                .await
                .resolve(&api_version, &target.kind)
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    debug!(kind = %target.kind, error = %e, "Member kind not resolvable (yet)");
                    continue;
                }
            };
            let api: Api<DynamicObject> = outpost_agent::resolve::api_for(
                &self.client,
                &resolved.resource,
                target.namespace.as_deref(),
            );
            let this = self.clone();
            let namespaced = resolved.namespaced();
            let span = info_span!("members", target = %target);
            let types = (
                resolved.resource.api_version.clone(),
                resolved.resource.kind.clone(),
            );
            let handle = tokio::spawn(
                this.watch_members(api, target.clone(), types, namespaced, selector.clone())
                    .instrument(span),
            );
            self.watchers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(target, handle);
        }
    }

    async fn watch_members(
        self,
        api: Api<DynamicObject>,
        target: WatchTarget,
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
            group: target.group.clone(),
            kind: target.kind.clone(),
            namespace: if namespaced { o.namespace() } else { None },
            name: o.name_any(),
        };
        let watched = |k: &ObjectKey| {
            k.group == target.group
                && k.kind == target.kind
                && (target.namespace.is_none() || k.namespace == target.namespace)
        };
        let mut relist: Option<BTreeMap<ObjectKey, Value>> = None;
        let mut forbidden = false;
        while let Some(event) = stream.next().await {
            if event.is_ok() && std::mem::take(&mut forbidden) {
                self.health.set(&target, None);
            }
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
                    state.snapshot.objects.retain(|k, _| !watched(k));
                    state.snapshot.objects.extend(fresh);
                    state.listed.insert(target.clone());
                }
                Err(e) if is_forbidden(&e) => {
                    if !std::mem::replace(&mut forbidden, true) {
                        self.health.set(&target, Some(Unavailable::Forbidden));
                        self.changed.notify_one();
                    }
                    continue;
                }
                Err(e) => {
                    debug!(error = %e, "Member watch failed (retrying)");
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
