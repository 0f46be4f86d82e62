//! The state of one sync while it runs: the inventories as they evolve, counts, and the problems met, by
//! bundle.

use std::collections::{BTreeMap, BTreeSet};

use crate::inventory::store::Loaded;
use crate::inventory::{BundleInfo, FIRST_SEEN_UNKNOWN, Inventory};
use crate::manifest::{Bundle, Layout};

/// State of one sync while it runs.
pub(super) struct Run {
    /// The commit.
    pub(super) revision: String,
    /// Inventories as they evolve (loaded ones, plus new ones for new bundles).
    pub(super) inventories: BTreeMap<String, Inventory>,
    /// Bundle info from Git for desired bundles.
    pub(super) infos: BTreeMap<String, BundleInfo>,
    pub(super) applied: usize,
    pub(super) pruned: usize,
    pub(super) applied_in: BTreeMap<String, u64>,
    pub(super) pruned_in: BTreeMap<String, u64>,
    /// Problems in order.
    pub(super) errors: Vec<String>,
    /// Problems by bundle.
    pub(super) errors_in: BTreeMap<String, Vec<String>>,
    /// Bundles with any failure (no prune for them).
    pub(super) failed_bundles: BTreeSet<String>,
    /// Bundles not applied at all this time (blocked or waiting).
    pub(super) skipped: BTreeSet<String>,
    /// Bundles waiting for dependencies.
    pub(super) waiting: BTreeSet<String>,
    /// Bundles whose inventory is unreadable: never written.
    pub(super) corrupt: BTreeSet<String>,
}

impl Run {
    pub(super) fn new(revision: &str, loaded: &Loaded, bundles: &[Bundle], cluster: &str) -> Self {
        let infos: BTreeMap<String, BundleInfo> = bundles
            .iter()
            .map(|b| {
                let (context, app) = match &b.layout {
                    Layout::Emco { context, app } => (Some(context.clone()), Some(app.clone())),
                    Layout::Plain => (None, None),
                };
                let info = BundleInfo {
                    bundle: b.name.clone(),
                    cluster: cluster.to_owned(),
                    dir: b.dir.clone(),
                    context,
                    app,
                    trackers: b.trackers.iter().map(crate::manifest::Manifest::value).collect(),
                    depends_on: b.depends_on.clone(),
                    first_seen: None,
                };
                (b.name.clone(), info)
            })
            .collect();
        let mut inventories = loaded.inventories.clone();
        let now = jiff::Timestamp::now().to_string();
        for (name, info) in &infos {
            if loaded.corrupt.contains_key(name) {
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
        let mut run = Run {
            revision: revision.to_owned(),
            inventories,
            infos,
            applied: 0,
            pruned: 0,
            applied_in: BTreeMap::new(),
            pruned_in: BTreeMap::new(),
            errors: Vec::new(),
            errors_in: BTreeMap::new(),
            failed_bundles: BTreeSet::new(),
            skipped: BTreeSet::new(),
            waiting: BTreeSet::new(),
            corrupt: loaded.corrupt.keys().cloned().collect(),
        };
        for (bundle, e) in &loaded.corrupt {
            run.fail(bundle, e.to_string());
            run.skipped.insert(bundle.clone());
        }
        run
    }

    /// The bundle's inventory, created if new.
    pub(super) fn inventory(&mut self, bundle: &str) -> &mut Inventory {
        let info = self.infos.get(bundle).cloned().unwrap_or_else(|| BundleInfo {
            bundle: bundle.to_owned(),
            ..Default::default()
        });
        self.inventories
            .entry(bundle.to_owned())
            .or_insert_with(|| Inventory::new(info))
    }

    pub(super) fn fail(&mut self, bundle: &str, message: String) {
        self.failed_bundles.insert(bundle.to_owned());
        self.errors_in
            .entry(bundle.to_owned())
            .or_default()
            .push(message.clone());
        self.errors.push(message);
    }
}
