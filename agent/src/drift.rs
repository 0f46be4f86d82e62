//! Drift correction (DESIGN §3.6): watch every managed kind (metadata only, `part-of` label selector) and
//! re-apply a member within a second of someone changing its spec or data, removing our label, or deleting it.
//!
//! Status updates do not count (generation decides for kinds that have one), and a re-apply that changes
//! nothing (another manager owns the field, as an HPA owns `spec.replicas`) is not a revert. An object reverted
//! more than [`FIGHT_THRESHOLD`] times in a minute is a fight: reported (log, metric, Event) and left alone
//! for [`FIGHT_BACKOFF`] instead of looping.
//!
//! Each bundle's controls decide ([`crate::control`]): a suspended bundle's drift is left alone, a bundle in
//! drift mode `report` has it counted (`outpost_drift_detected_total`), logged and published once per sync
//! instead of reverted.
//!
//! The reconciler holds [`Drift::pause`] while it syncs, so corrections never race a sync and always compare
//! against what the last sync recorded.
//!
//! Watches follow the [`WatchScope`]: one per kind cluster-wide, or, with RBAC limited to some namespaces, one
//! per kind and namespace holding members. What cannot be watched (a cluster-scoped kind in that scope, a
//! watch RBAC forbids) goes to [`WatchHealth`], which logs it, counts it and tells `/readyz`: drift that is
//! not corrected is never silent.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{Mutex, MutexGuard, mpsc};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::apply::Applier;
use crate::desired::DesiredObject;
use crate::events::Events;
use crate::inventory::applyset::PART_OF_LABEL;
use crate::inventory::{Inventory, Member};
use crate::live::LiveMeta;
use crate::metrics::Metrics;
use crate::object::ObjectKey;
use crate::resolve::Resolver;
use crate::secret::Scrubber;
use crate::watch_scope::{Unavailable, WatchHealth, WatchScope, WatchTarget, is_forbidden};

/// What drift correction compares the cluster with: the desired objects of the last sync and the inventories
/// it left (plain data, whoever produced it).
#[derive(Clone, Copy)]
pub struct Synced<'a> {
    /// The desired objects, by key.
    pub desired: &'a BTreeMap<ObjectKey, Arc<DesiredObject>>,
    /// The inventories, by bundle.
    pub inventories: &'a BTreeMap<String, Inventory>,
}

/// Reverts of one object within [`FIGHT_WINDOW`] beyond which another actor is fighting us.
pub const FIGHT_THRESHOLD: usize = 5;
/// Window for counting reverts.
pub const FIGHT_WINDOW: Duration = Duration::from_secs(60);
/// How long a fought-over object is left alone before we try again.
pub const FIGHT_BACKOFF: Duration = Duration::from_secs(300);
/// Queue of watch events between watchers and the corrector; watchers wait when it is full.
const EVENT_QUEUE: usize = 4096;

/// What a watcher saw.
#[derive(Debug)]
enum Seen {
    /// Added or modified.
    Changed(ObjectKey, LiveMeta),
    /// Deleted.
    Deleted(ObjectKey),
    /// A (re)list of a kind (in one namespace, or everywhere) finished with these objects present: any member
    /// there not among them was deleted while the watch was down.
    Relisted(WatchTarget, BTreeSet<ObjectKey>),
}

/// Revert history of one object.
#[derive(Default)]
struct Tracker {
    /// When we reverted it lately (within the fight window).
    reverts: VecDeque<Instant>,
    /// Reverts stop until then: another actor keeps changing it (a fight).
    suppressed_until: Option<Instant>,
}

/// What the corrector compares against; replaced after every sync.
#[derive(Default)]
struct State {
    /// Desired objects of the last sync.
    desired: BTreeMap<ObjectKey, Arc<DesiredObject>>,
    /// Recorded members: bundle and record.
    members: BTreeMap<ObjectKey, (String, Member)>,
    /// Bundle → ApplySet id.
    ids: BTreeMap<String, String>,
    /// Fight bookkeeping.
    trackers: HashMap<ObjectKey, Tracker>,
    /// Drift reported and left in place (drift mode `report`) since the last sync: reported once.
    reported: std::collections::HashSet<ObjectKey>,
}

/// Everything the corrector needs besides its state.
struct Corrector {
    /// Re-applies drifted objects.
    applier: Applier,
    /// Discovery for the kinds it re-applies.
    resolver: Resolver,
    /// Counts reverts and fights, when served.
    metrics: Option<Metrics>,
    /// Publishes fights as Events, in the daemon.
    events: Option<Events>,
    /// Removes secrets from error text.
    scrubber: Scrubber,
    /// What each bundle allows: nothing is reverted in a suspended bundle, only reported in mode `report`.
    controls: crate::control::Controls,
}

/// Running watch tasks by kind and namespace.
type Watchers = HashMap<WatchTarget, JoinHandle<()>>;

/// Handle to the drift machinery.
#[derive(Clone)]
pub struct Drift {
    /// State shared with the corrector; held by the reconciler while syncing.
    state: Arc<Mutex<State>>,
    /// Where watchers send what they see.
    tx: mpsc::Sender<Seen>,
    /// Running watchers by kind and namespace.
    watchers: Arc<std::sync::Mutex<Watchers>>,
    /// Where watches may look (`--watch-namespaces`).
    scope: WatchScope,
    /// Watches not running and why: logged, counted and shown on `/readyz`.
    health: WatchHealth,
    /// For new watchers.
    client: Client,
    /// Resolves kinds for new watchers.
    resolver: Arc<Mutex<Resolver>>,
    /// The corrector task, aborted by [`Drift::stop`].
    corrector: tokio::task::AbortHandle,
}

/// Held by the reconciler during a sync: corrections wait.
pub struct Paused<'a>(#[allow(dead_code)] MutexGuard<'a, State>);

impl Drift {
    /// Start the corrector task. Watchers start with the first [`Drift::update`].
    pub fn start(
        client: Client,
        applier: Applier,
        metrics: Option<Metrics>,
        events: Option<Events>,
        scrubber: Scrubber,
        controls: crate::control::Controls,
    ) -> Self {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let state = Arc::new(Mutex::new(State::default()));
        let corrector = Corrector {
            applier,
            resolver: Resolver::new(client.clone()),
            metrics,
            events,
            scrubber,
            controls,
        };
        let corrector = tokio::spawn(correct(state.clone(), rx, corrector).instrument(info_span!("drift")));
        Drift {
            corrector: corrector.abort_handle(),
            state,
            tx,
            watchers: Arc::default(),
            scope: WatchScope::Cluster,
            health: WatchHealth::new(
                "Drift",
                "changes to these objects are not reverted until the next full resync",
            ),
            client: client.clone(),
            resolver: Arc::new(Mutex::new(Resolver::new(client))),
        }
    }

    /// Watch only where `scope` allows, reporting what cannot be watched to `health`. Call before the first
    /// [`Drift::update`].
    pub fn watching(mut self, scope: WatchScope, health: WatchHealth) -> Self {
        self.scope = scope;
        self.health = health;
        self
    }

    /// Stop correcting for good (leadership lost): the corrector and every watcher are aborted at once, a
    /// re-apply in flight included.
    pub fn stop(&self) {
        self.corrector.abort();
        let mut watchers = self.watchers.lock().unwrap_or_else(|e| e.into_inner());
        for (_, handle) in watchers.drain() {
            handle.abort();
        }
    }

    /// Pause corrections (while a sync runs).
    pub async fn pause(&self) -> Paused<'_> {
        Paused(self.state.lock().await)
    }

    /// Take the result of a sync: what to compare against, and which kinds to watch. Call while paused, passing
    /// the guard, so the next correction already sees the new state.
    pub async fn update(
        &self,
        paused: &mut Paused<'_>,
        synced: Synced<'_>,
        applyset_id: impl Fn(&str) -> String,
    ) {
        let state = &mut paused.0;
        state.desired = synced.desired.clone();
        state.members = synced
            .inventories
            .iter()
            .flat_map(|(b, inv)| {
                inv.members
                    .iter()
                    .map(move |(k, m)| (k.clone(), (b.clone(), m.clone())))
            })
            .collect();
        state.ids = synced
            .inventories
            .keys()
            .map(|b| (b.clone(), applyset_id(b)))
            .collect();
        state.trackers.retain(|k, _| synced.desired.contains_key(k));
        state.reported.clear();
        let mut kinds: crate::live::Kinds = BTreeMap::new();
        for (key, (_, member)) in &state.members {
            kinds
                .entry((key.group.clone(), key.kind.clone()))
                .or_insert_with(|| (member.api_version.clone(), BTreeSet::new()))
                .1
                .insert(key.namespace.clone());
        }
        self.watch_kinds(kinds).await;
    }

    /// Start the watches the scope gives the managed kinds, stop those no longer needed, and report what cannot
    /// be watched.
    async fn watch_kinds(&self, kinds: crate::live::Kinds) {
        let mut wanted: BTreeMap<WatchTarget, String> = BTreeMap::new();
        let mut unavailable: Vec<(WatchTarget, Unavailable)> = Vec::new();
        for ((group, kind), (api_version, namespaces)) in &kinds {
            let (watch, cannot) = self.scope.plan(group, kind, namespaces);
            wanted.extend(watch.into_iter().map(|t| (t, api_version.clone())));
            unavailable.extend(cannot);
        }
        self.health
            .retain(|t| wanted.contains_key(t) || unavailable.iter().any(|(u, _)| u == t));
        for (target, why) in &unavailable {
            self.health.set(target, Some(*why));
        }
        let mut to_start = Vec::new();
        {
            let mut watchers = self.watchers.lock().unwrap_or_else(|e| e.into_inner());
            watchers.retain(|target, handle| {
                let keep = wanted.contains_key(target);
                if !keep {
                    handle.abort();
                }
                keep
            });
            for (target, api_version) in wanted {
                if !watchers.contains_key(&target) {
                    to_start.push((target, api_version));
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
                    warn!(kind = %target.kind, error = %e, "Cannot watch kind for drift");
                    continue;
                }
            };
            // `PartialObjectMeta` makes every request metadata-only.
            let api: Api<PartialObjectMeta<DynamicObject>> =
                crate::resolve::api_for(&self.client, &resolved.resource, target.namespace.as_deref());
            let (tx, health) = (self.tx.clone(), self.health.clone());
            let namespaced = resolved.namespaced();
            let span = info_span!("watch", target = %target);
            let handle = tokio::spawn(watch(api, target.clone(), namespaced, tx, health).instrument(span));
            self.watchers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(target, handle);
        }
    }
}

/// One kind's metadata watch (in one namespace or everywhere), forwarding what it sees; a 403 is reported to
/// `health` (and cleared once the watch runs again) while the watcher keeps retrying with backoff.
async fn watch(
    api: Api<PartialObjectMeta<DynamicObject>>,
    target: WatchTarget,
    namespaced: bool,
    tx: mpsc::Sender<Seen>,
    health: WatchHealth,
) {
    let config = watcher::Config::default().labels(PART_OF_LABEL);
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    let key_of = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| ObjectKey {
        group: target.group.clone(),
        kind: target.kind.clone(),
        namespace: if namespaced { meta.namespace.clone() } else { None },
        name: meta.name.clone().unwrap_or_default(),
    };
    let mut relist: Option<BTreeSet<ObjectKey>> = None;
    let mut forbidden = false;
    while let Some(event) = stream.next().await {
        if event.is_ok() && std::mem::take(&mut forbidden) {
            health.set(&target, None);
        }
        let seen = match event {
            Ok(watcher::Event::Apply(obj)) => {
                Seen::Changed(key_of(&obj.metadata), LiveMeta::of(&obj.metadata))
            }
            Ok(watcher::Event::Delete(obj)) => Seen::Deleted(key_of(&obj.metadata)),
            Ok(watcher::Event::Init) => {
                relist = Some(BTreeSet::new());
                continue;
            }
            Ok(watcher::Event::InitApply(obj)) => {
                let key = key_of(&obj.metadata);
                if let Some(r) = relist.as_mut() {
                    r.insert(key.clone());
                }
                Seen::Changed(key, LiveMeta::of(&obj.metadata))
            }
            Ok(watcher::Event::InitDone) => Seen::Relisted(target.clone(), relist.take().unwrap_or_default()),
            Err(e) if is_forbidden(&e) => {
                if !forbidden {
                    forbidden = true;
                    health.set(&target, Some(Unavailable::Forbidden));
                }
                continue;
            }
            Err(e) => {
                debug!(error = %e, "Watch error (retrying with backoff)");
                continue;
            }
        };
        if tx.send(seen).await.is_err() {
            return;
        }
    }
}

/// The corrector loop.
async fn correct(state: Arc<Mutex<State>>, mut rx: mpsc::Receiver<Seen>, mut c: Corrector) {
    while let Some(seen) = rx.recv().await {
        let mut guard = state.lock().await;
        let state = &mut *guard;
        match seen {
            Seen::Changed(key, live) => {
                let Some((bundle, member)) = state.members.get(&key) else {
                    continue;
                };
                let Some(id) = state.ids.get(bundle) else { continue };
                if member.digest.is_empty() || !crate::live::drifted(member, &live, id) {
                    continue;
                }
                revert(state, &mut c, key, Some(live), "changed").await;
            }
            Seen::Deleted(key) => {
                if state.members.contains_key(&key) {
                    revert(state, &mut c, key, None, "deleted").await;
                }
            }
            Seen::Relisted(target, present) => {
                let watched = |k: &ObjectKey| {
                    k.group == target.group
                        && k.kind == target.kind
                        && (target.namespace.is_none() || k.namespace == target.namespace)
                };
                let missing: Vec<ObjectKey> = state
                    .members
                    .keys()
                    .filter(|k| watched(k) && !present.contains(*k))
                    .cloned()
                    .collect();
                for key in missing {
                    revert(state, &mut c, key, None, "deleted while unwatched").await;
                }
            }
        }
    }
}

/// Re-apply one object from the last desired set, with fight detection.
async fn revert(state: &mut State, c: &mut Corrector, key: ObjectKey, live: Option<LiveMeta>, what: &str) {
    let Some(obj) = state.desired.get(&key).cloned() else {
        return;
    };
    let policy = c.controls.policy(&obj.bundle);
    if let Some(by) = policy.suspended {
        debug!(bundle = %obj.bundle, object = %key, what, "Drift left alone: {}", by.describe());
        return;
    }
    if policy.drift == crate::policy::DriftMode::Report {
        if state.reported.insert(key.clone()) {
            info!(bundle = %obj.bundle, object = %key, what, "Drift detected, not reverted (drift mode report)");
            if let Some(m) = c.controls.metrics() {
                m.drift_detected(&obj.bundle);
            }
            if let Some(events) = &c.events {
                let note = format!("{key} {what} in the cluster; left as it is (drift mode report)");
                events.normal(&obj.bundle, "DriftDetected", "Report", &note).await;
            }
        }
        return;
    }
    let now = Instant::now();
    let tracker = state.trackers.entry(key.clone()).or_default();
    if tracker.suppressed_until.is_some_and(|until| until > now) {
        debug!(object = %key, "Drift ignored: object is in a fight");
        return;
    }
    let report = c.applier.apply(&mut c.resolver, vec![obj.clone()]).await;
    let Some(applied) = report.applied.into_iter().next() else {
        for f in report.failed {
            let error = c.scrubber.scrub(&f.to_string());
            warn!(bundle = %obj.bundle, error = %error, "Drift revert failed");
            if let Some(events) = &c.events {
                let note = format!("{key} {what} in the cluster; reverting it failed: {error}");
                events
                    .warn(&obj.bundle, "DriftRevertFailed", "Revert", &note)
                    .await;
            }
        }
        return;
    };
    // Did our apply change anything? Generation answers for kinds that have one (a status update racing the
    // apply changes the resourceVersion but not the generation); the resourceVersion for the rest.
    let changed_nothing = live
        .as_ref()
        .is_some_and(|l| match (l.generation, applied.generation) {
            (Some(before), Some(after)) => before == after,
            _ => l.resource_version.is_some() && l.resource_version == applied.resource_version,
        });
    if let Some((_, member)) = state.members.get_mut(&key) {
        member.generation = applied.generation;
        member.resource_version = applied.resource_version.clone();
    }
    if changed_nothing {
        // Another manager changed fields we do not own (an HPA's replicas): nothing to revert.
        return;
    }
    info!(bundle = %obj.bundle, object = %key, what, "Drift reverted");
    if let Some(m) = &c.metrics {
        m.drift_reverted(&obj.bundle);
    }
    if let Some(m) = c.controls.metrics() {
        m.drift_detected(&obj.bundle);
    }
    let tracker = state.trackers.entry(key.clone()).or_default();
    tracker.reverts.push_back(now);
    while tracker
        .reverts
        .front()
        .is_some_and(|t| now.duration_since(*t) > FIGHT_WINDOW)
    {
        tracker.reverts.pop_front();
    }
    if tracker.reverts.len() > FIGHT_THRESHOLD {
        tracker.suppressed_until = Some(now + FIGHT_BACKOFF);
        tracker.reverts.clear();
        let note = format!(
            "{key} was reverted more than {FIGHT_THRESHOLD} times in {}s: another actor keeps changing it; leaving it alone for {}s",
            FIGHT_WINDOW.as_secs(),
            FIGHT_BACKOFF.as_secs()
        );
        warn!(bundle = %obj.bundle, object = %key, "Drift fight: {note}");
        if let Some(m) = &c.metrics {
            m.fight(&obj.bundle);
        }
        if let Some(events) = &c.events {
            events.warn(&obj.bundle, "DriftFight", "Revert", &note).await;
        }
    }
}
