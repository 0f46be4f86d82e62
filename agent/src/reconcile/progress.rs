//! The report of one sync while it is built: the inventories as they evolve, and what happened to each bundle.
//!
//! Stages do not share counters: each tells the builder what happened (`applied`, `pruned`, `fail`, `wait`,
//! `block`), the builder keeps the books, and at the end yields each bundle's [`BundleEnd`] for the inventory
//! record and the totals for the sync report.

use std::collections::{BTreeMap, BTreeSet};

use crate::inventory::record::BundleEnd;
use crate::inventory::store::Loaded;
use crate::inventory::{BundleInfo, FIRST_SEEN_UNKNOWN, Inventory, Member};
use crate::manifest::{Bundle, Layout};
use crate::object::ObjectKey;

/// Errors listed in one message or sync result before "and N more".
pub(crate) const MAX_LISTED: usize = 5;

/// The report of one sync while it is built.
pub(crate) struct Progress {
    /// Inventories as they evolve (loaded ones, plus new ones for new bundles).
    inventories: BTreeMap<String, Inventory>,
    /// Bundle info from Git for desired bundles.
    infos: BTreeMap<String, BundleInfo>,
    /// Objects sent, by bundle.
    applied: BTreeMap<String, u64>,
    /// Objects deleted, by bundle.
    pruned: BTreeMap<String, u64>,
    /// Problems in the order met.
    errors: Vec<String>,
    /// Problems by bundle.
    errors_in: BTreeMap<String, Vec<String>>,
    /// Bundles with any failure: nothing is pruned from them.
    failed: BTreeSet<String>,
    /// Bundles not applied at all this time (blocked, waiting, corrupt).
    skipped: BTreeSet<String>,
    /// Bundles waiting for dependencies.
    waiting: BTreeSet<String>,
    /// Bundles whose inventory is unreadable: never written.
    corrupt: BTreeSet<String>,
    /// Bundles suspended (left out of the plan), and why: only their suspension is recorded.
    suspended: BTreeMap<String, String>,
}

impl Progress {
    /// Start from the loaded inventories and the bundles in Git (new bundles get a new inventory; corrupt
    /// inventories fail their bundle and are never written; a [held](Bundle::held) bundle keeps the settings
    /// and trackers its inventory recorded, since its files were not read this time).
    pub(crate) fn new(loaded: &Loaded, bundles: &[Bundle], cluster: &str) -> Self {
        let held: BTreeSet<&str> = bundles
            .iter()
            .filter(|b| b.held.is_some())
            .map(|b| b.name.as_str())
            .collect();
        let infos: BTreeMap<String, BundleInfo> = bundles
            .iter()
            .map(|b| (b.name.clone(), bundle_info(b, cluster)))
            .collect();
        let mut inventories = loaded.inventories.clone();
        let now = jiff::Timestamp::now().to_string();
        for (name, info) in &infos {
            if loaded.corrupt.contains_key(name)
                || (held.contains(name.as_str()) && loaded.inventories.contains_key(name))
            {
                continue;
            }
            inventories
                .entry(name.clone())
                .and_modify(|inv| {
                    let first_seen = inv.info.first_seen.take();
                    inv.info = info.clone();
                    inv.info.first_seen = first_seen.or_else(|| Some(FIRST_SEEN_UNKNOWN.to_owned()));
                })
                .or_insert_with(|| {
                    let mut info = info.clone();
                    info.first_seen = Some(now.clone());
                    Inventory::new(info)
                });
        }
        let mut progress = Progress {
            inventories,
            infos,
            applied: BTreeMap::new(),
            pruned: BTreeMap::new(),
            errors: Vec::new(),
            errors_in: BTreeMap::new(),
            failed: BTreeSet::new(),
            skipped: BTreeSet::new(),
            waiting: BTreeSet::new(),
            corrupt: loaded.corrupt.keys().cloned().collect(),
            suspended: BTreeMap::new(),
        };
        for (bundle, e) in &loaded.corrupt {
            progress.block(bundle, e.to_string());
        }
        progress
    }

    /// The bundle's inventory, created if new.
    pub(crate) fn inventory(&mut self, bundle: &str) -> &mut Inventory {
        let info = self.infos.get(bundle).cloned().unwrap_or_else(|| BundleInfo {
            bundle: bundle.to_owned(),
            ..Default::default()
        });
        self.inventories
            .entry(bundle.to_owned())
            .or_insert_with(|| Inventory::new(info))
    }

    /// A problem in `bundle`: it will not be pruned from this time.
    pub(crate) fn fail(&mut self, bundle: &str, message: String) {
        self.failed.insert(bundle.to_owned());
        self.errors_in
            .entry(bundle.to_owned())
            .or_default()
            .push(message.clone());
        self.errors.push(message);
    }

    /// `bundle` cannot be applied at all this time (a dependency cycle, an unreadable inventory).
    pub(crate) fn block(&mut self, bundle: &str, message: String) {
        self.fail(bundle, message);
        self.skipped.insert(bundle.to_owned());
    }

    /// `bundle` waits for a dependency and is not applied this time.
    pub(crate) fn wait(&mut self, bundle: &str) {
        self.waiting.insert(bundle.to_owned());
        self.skipped.insert(bundle.to_owned());
    }

    /// An object of `bundle` was applied: its member records what the server returned.
    pub(crate) fn applied(&mut self, bundle: &str, key: ObjectKey, member: Member) {
        *self.applied.entry(bundle.to_owned()).or_default() += 1;
        self.inventory(bundle).members.insert(key, member);
    }

    /// An object of `bundle` was deleted.
    pub(crate) fn pruned(&mut self, bundle: &str) {
        *self.pruned.entry(bundle.to_owned()).or_default() += 1;
    }

    /// A member's object is settled (deleted, gone, kept or no longer ours): it leaves the inventory.
    pub(crate) fn forget(&mut self, bundle: &str, key: &ObjectKey) {
        self.inventory(bundle).members.remove(key);
    }

    /// Whether a bundle other than `bundle` records `key` as applied (a digest, not a pending entry), so
    /// `bundle` may let go of it.
    pub(crate) fn applied_elsewhere(&self, bundle: &str, key: &ObjectKey) -> bool {
        self.inventories
            .iter()
            .any(|(b, inv)| b != bundle && inv.members.get(key).is_some_and(|m| !m.digest.is_empty()))
    }

    /// Whether `bundle` applied cleanly, so what left it may be pruned.
    pub(crate) fn clean(&self, bundle: &str) -> bool {
        !self.failed.contains(bundle) && !self.skipped.contains(bundle)
    }

    /// Whether `bundle` is not synced (failed or waiting), so its dependents wait.
    pub(crate) fn unsynced(&self, bundle: &str) -> bool {
        self.waiting.contains(bundle) || self.failed.contains(bundle)
    }

    /// Problems by bundle, in the order met.
    pub(crate) fn errors_by_bundle(&self) -> &BTreeMap<String, Vec<String>> {
        &self.errors_in
    }

    /// `bundle` is suspended for this reason: nothing of it is applied or pruned, and its record says why.
    pub(crate) fn suspend(&mut self, bundle: &str, why: &str) {
        self.suspended.insert(bundle.to_owned(), why.to_owned());
    }

    /// The suspended bundles (with a readable inventory) and why.
    pub(crate) fn suspended(&self) -> Vec<(String, String)> {
        self.suspended
            .iter()
            .filter(|(b, _)| !self.corrupt.contains(*b))
            .map(|(b, why)| (b.clone(), why.clone()))
            .collect()
    }

    /// Every bundle to record: the planned ones and those in Git, minus corrupt inventories and suspended
    /// bundles.
    pub(crate) fn bundles_to_record<'a>(&self, planned: impl Iterator<Item = &'a String>) -> Vec<String> {
        planned
            .cloned()
            .chain(self.infos.keys().cloned())
            .filter(|b| !self.corrupt.contains(b) && !self.suspended.contains_key(b))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// How `bundle`'s sync ended, with its problems passed through `scrub` and capped.
    pub(crate) fn end(
        &self,
        bundle: &str,
        moved: Vec<ObjectKey>,
        removed: bool,
        scrub: impl Fn(&str) -> String,
    ) -> BundleEnd {
        BundleEnd {
            moved,
            removed,
            waiting: self.waiting.contains(bundle),
            skipped: self.skipped.contains(bundle),
            applied: self.applied.get(bundle).copied().unwrap_or(0),
            pruned: self.pruned.get(bundle).copied().unwrap_or(0),
            errors: self
                .errors_in
                .get(bundle)
                .into_iter()
                .flatten()
                .take(MAX_LISTED)
                .map(|e| scrub(e))
                .collect(),
        }
    }

    /// Drop a bundle's inventory whose parent was deleted.
    pub(crate) fn remove_inventory(&mut self, bundle: &str) {
        self.inventories.remove(bundle);
    }

    /// The totals: objects applied and pruned, waiting bundles, problems in order, and the inventories.
    pub(crate) fn finish(self) -> Totals {
        Totals {
            applied: self.applied.values().sum::<u64>() as usize,
            pruned: self.pruned.values().sum::<u64>() as usize,
            waiting: self.waiting.into_iter().collect(),
            errors: self.errors,
            inventories: self.inventories,
        }
    }
}

/// What a finished [`Progress`] adds up to.
pub(crate) struct Totals {
    /// Objects sent.
    pub(crate) applied: usize,
    /// Objects deleted.
    pub(crate) pruned: usize,
    /// Bundles waiting for dependencies.
    pub(crate) waiting: Vec<String>,
    /// Problems in the order met (not scrubbed yet).
    pub(crate) errors: Vec<String>,
    /// The inventories after the sync.
    pub(crate) inventories: BTreeMap<String, Inventory>,
}

/// What the inventory records of a bundle's place in the repository.
fn bundle_info(b: &Bundle, cluster: &str) -> BundleInfo {
    let (context, app) = match &b.layout {
        Layout::Emco { context, app } => (Some(context.clone()), Some(app.clone())),
        Layout::Plain => (None, None),
    };
    BundleInfo {
        bundle: b.name.clone(),
        cluster: cluster.to_owned(),
        dir: b.dir.clone(),
        context,
        app,
        trackers: b.trackers.iter().map(crate::manifest::Manifest::value).collect(),
        depends_on: b.depends_on.clone(),
        first_seen: None,
        prune: b.settings.prune,
        drift: b.settings.drift,
        suspend: b.settings.suspend,
        service_account: b.settings.service_account.clone(),
    }
}

/// The first problems, joined, with how many more there are.
pub(super) fn summary(errors: &[String]) -> String {
    let mut summary = errors
        .iter()
        .take(MAX_LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if errors.len() > MAX_LISTED {
        summary.push_str(&format!("; and {} more", errors.len() - MAX_LISTED));
    }
    summary
}
