//! Plan stage (DESIGN §3.3): compare the desired set with the inventories and the live cluster, decide per
//! bundle what to apply and what to prune, and refuse plans that look like mistakes.
//!
//! Pure: no API calls. Apply only what changed since the last successful apply, is missing, or was changed by
//! hand; prune inventory members that no bundle wants any more; drop (without deleting) members another bundle
//! now owns.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::desired::{DesiredObject, DesiredSet};
use crate::inventory::Member;
use crate::inventory::store::Loaded;
use crate::live::{LiveIndex, Lookup, drifted};
use crate::object::ObjectKey;

/// Plans that are refused as a whole: nothing is applied or pruned.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Refusal {
    /// No bundle at all (no manifests, no status trackers) while inventories hold objects, and no commit since
    /// the last applied one announced their deletion.
    #[error(
        "the cluster path holds no manifests but {members} objects in {bundles} bundles are managed and no commit since the last applied one left their status trackers alone to announce a deletion: refusing to delete them all (set --allow-empty if this is intended)"
    )]
    EmptySource {
        /// Managed objects.
        members: usize,
        /// Bundles.
        bundles: usize,
    },
    /// Too large a share would be deleted.
    #[error(
        "this commit would delete {prune} of {members} managed objects ({percent:.0}%), more than --max-prune-ratio {limit}: refusing the whole reconcile"
    )]
    TooManyPrunes {
        /// Objects to delete.
        prune: usize,
        /// Managed objects.
        members: usize,
        /// prune / members in percent.
        percent: f64,
        /// The configured ratio.
        limit: f64,
    },
}

impl Refusal {
    /// The kind of failure, as a bounded metric label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Refusal::EmptySource { .. } => "empty_source",
            Refusal::TooManyPrunes { .. } => "too_many_prunes",
        }
    }
}

/// Why an object is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Not in the inventory yet.
    Create,
    /// Its digest changed since the last successful apply.
    Update,
    /// In the inventory but gone from the cluster.
    Missing,
    /// Changed in the cluster since our last apply.
    Drifted,
    /// Its kind could not be listed, so we cannot tell.
    Unknown,
}

/// An object to send and why.
#[derive(Clone, Debug)]
pub struct Action {
    /// The object.
    pub object: Arc<DesiredObject>,
    /// Why.
    pub reason: Reason,
}

/// What to do for one bundle.
#[derive(Debug, Default)]
pub struct BundlePlan {
    /// Objects to send.
    pub apply: Vec<Action>,
    /// How many objects are already as desired.
    pub unchanged: usize,
    /// Members to delete.
    pub prune: Vec<(ObjectKey, Member)>,
    /// Members now owned by another bundle: dropped from this inventory, not deleted.
    pub moved: Vec<ObjectKey>,
    /// The bundle left Git: once its members are pruned, its inventory goes too.
    pub removed: bool,
}

/// Settings of the safety checks.
#[derive(Clone, Copy, Debug, Default)]
pub struct Safety {
    /// `--allow-empty`.
    pub allow_empty: bool,
    /// `--max-prune-ratio`.
    pub max_prune_ratio: Option<f64>,
    /// `--allow-cascading-prune`: Namespaces, CRDs and volumes may be pruned without their consent annotation.
    pub allow_cascading_prune: bool,
}

/// The whole plan.
#[derive(Debug, Default)]
pub struct Plan {
    /// By bundle name: desired bundles and bundles with an inventory.
    pub bundles: BTreeMap<String, BundlePlan>,
}

impl Plan {
    /// Objects to send in all bundles.
    pub fn apply_count(&self) -> usize {
        self.bundles.values().map(|b| b.apply.len()).sum()
    }

    /// Objects to delete in all bundles.
    pub fn prune_count(&self) -> usize {
        self.bundles.values().map(|b| b.prune.len()).sum()
    }
}

/// Build the plan. `applyset_id` gives each bundle's ApplySet id (to detect removed `part-of` labels).
///
/// `announced` names bundles whose deletion a commit since their last applied one announced (their directory
/// held only status trackers, EMCO's termination step): they may be pruned even when the whole cluster path is
/// gone. A bundle present with trackers and no resources is pruned in any case: that is the announcement.
pub fn build(
    desired: &DesiredSet,
    loaded: &Loaded,
    live: &LiveIndex,
    safety: Safety,
    announced: &BTreeSet<String>,
    applyset_id: impl Fn(&str) -> String,
) -> Result<Plan, Refusal> {
    let members: usize = loaded.inventories.values().map(|i| i.members.len()).sum();
    let no_bundles = desired.objects.is_empty() && desired.failures.is_empty();
    let unannounced = loaded
        .inventories
        .iter()
        .filter(|(bundle, inv)| !inv.members.is_empty() && !announced.contains(*bundle))
        .count()
        + loaded.corrupt.len();
    if no_bundles && unannounced > 0 && !safety.allow_empty {
        return Err(Refusal::EmptySource {
            members,
            bundles: unannounced,
        });
    }
    let mut plan = Plan::default();
    for (bundle, objects) in &desired.objects {
        if loaded.corrupt.contains_key(bundle) {
            continue; // never touch a bundle whose inventory we cannot read
        }
        let inventory = loaded.inventories.get(bundle);
        let id = applyset_id(bundle);
        let bp = plan.bundles.entry(bundle.clone()).or_default();
        for obj in objects {
            let recorded = inventory.and_then(|i| i.members.get(&obj.key));
            match classify(obj, recorded, live, &id) {
                Some(reason) => bp.apply.push(Action {
                    object: obj.clone(),
                    reason,
                }),
                None => bp.unchanged += 1,
            }
        }
    }
    for (bundle, inventory) in &loaded.inventories {
        let desired_here: BTreeSet<&ObjectKey> = desired
            .objects
            .get(bundle)
            .into_iter()
            .flatten()
            .map(|o| &o.key)
            .collect();
        let bp = plan.bundles.entry(bundle.clone()).or_default();
        bp.removed = !desired.objects.contains_key(bundle) && !desired.failures.contains_key(bundle);
        for (key, member) in &inventory.members {
            if !desired.protected.contains(key) {
                bp.prune.push((key.clone(), member.clone()));
            } else if !desired_here.contains(key) {
                bp.moved.push(key.clone());
            }
        }
    }
    if let Some(limit) = safety.max_prune_ratio {
        let prune = plan.prune_count();
        if members > 0 && prune as f64 / members as f64 > limit {
            return Err(Refusal::TooManyPrunes {
                prune,
                members,
                percent: prune as f64 * 100.0 / members as f64,
                limit,
            });
        }
    }
    Ok(plan)
}

/// Why `obj` must be sent, or `None` when it is as desired.
fn classify(obj: &DesiredObject, recorded: Option<&Member>, live: &LiveIndex, id: &str) -> Option<Reason> {
    let Some(recorded) = recorded else {
        return Some(Reason::Create);
    };
    if recorded.digest != obj.digest {
        return Some(Reason::Update);
    }
    match live.get(&obj.key) {
        Lookup::Absent => Some(Reason::Missing),
        Lookup::Unknown => Some(Reason::Unknown),
        Lookup::Present(meta) => drifted(recorded, meta, id).then_some(Reason::Drifted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::Stage;
    use crate::inventory::{BundleInfo, Inventory};
    use crate::live::LiveMeta;
    use crate::manifest::Origin;

    fn key(name: &str) -> ObjectKey {
        ObjectKey {
            group: String::new(),
            kind: "ConfigMap".into(),
            namespace: Some("ns".into()),
            name: name.into(),
        }
    }

    fn object(bundle: &str, name: &str, digest: &str) -> Arc<DesiredObject> {
        Arc::new(DesiredObject {
            bundle: bundle.into(),
            key: key(name),
            api_version: "v1".into(),
            origin: Origin {
                file: "f".into(),
                document: 1,
                line: 1,
                sealed: Default::default(),
            },
            body: Arc::from(serde_json::value::to_raw_value(&serde_json::json!({})).unwrap()),
            crd_group: None,
            digest: digest.into(),
            stage: Stage::Config,
            resolved: None,
            force_recreate: false,
        })
    }

    fn member(digest: &str, rv: &str) -> Member {
        Member {
            api_version: "v1".into(),
            digest: digest.into(),
            generation: None,
            resource_version: Some(rv.into()),
        }
    }

    fn id(bundle: &str) -> String {
        format!("id-{bundle}")
    }

    fn desired(objects: Vec<Arc<DesiredObject>>) -> DesiredSet {
        let mut set = DesiredSet::default();
        for o in objects {
            set.protected.insert(o.key.clone());
            set.objects.entry(o.bundle.clone()).or_default().push(o);
        }
        set
    }

    fn loaded(bundle: &str, members: Vec<(&str, Member)>) -> Loaded {
        let mut inv = Inventory::new(BundleInfo {
            bundle: bundle.into(),
            ..Default::default()
        });
        for (name, m) in members {
            inv.members.insert(key(name), m);
        }
        let mut loaded = Loaded::default();
        loaded.inventories.insert(bundle.into(), inv);
        loaded
    }

    fn live_with(entries: &[(&str, &str, &str)]) -> LiveIndex {
        let mut live = LiveIndex::default();
        live.mark_listed("", "ConfigMap");
        for (name, rv, part_of) in entries {
            live.insert(
                key(name),
                LiveMeta {
                    generation: None,
                    resource_version: Some((*rv).into()),
                    part_of: Some((*part_of).into()),
                    ..Default::default()
                },
            );
        }
        live
    }

    #[test]
    fn only_changed_missing_and_drifted_objects_are_sent() {
        let set = desired(vec![
            object("web", "same", "d1"),
            object("web", "changed", "d2-new"),
            object("web", "new", "d3"),
            object("web", "deleted-by-hand", "d4"),
            object("web", "edited-by-hand", "d5"),
        ]);
        let inv = loaded(
            "web",
            vec![
                ("same", member("d1", "10")),
                ("changed", member("d2", "11")),
                ("deleted-by-hand", member("d4", "12")),
                ("edited-by-hand", member("d5", "13")),
            ],
        );
        let live = live_with(&[
            ("same", "10", "id-web"),
            ("changed", "11", "id-web"),
            ("edited-by-hand", "99", "id-web"),
        ]);
        let plan = build(&set, &inv, &live, Safety::default(), &BTreeSet::new(), id).unwrap();
        let web = &plan.bundles["web"];
        let sent: Vec<(&str, Reason)> = web
            .apply
            .iter()
            .map(|a| (a.object.key.name.as_str(), a.reason))
            .collect();
        assert_eq!(
            sent,
            [
                ("changed", Reason::Update),
                ("new", Reason::Create),
                ("deleted-by-hand", Reason::Missing),
                ("edited-by-hand", Reason::Drifted)
            ]
        );
        assert_eq!(web.unchanged, 1);
        assert!(web.prune.is_empty());
    }

    #[test]
    fn members_that_left_git_are_pruned_and_moved_ones_are_only_dropped() {
        let set = desired(vec![object("web", "kept", "d"), object("db", "moved", "d")]);
        let mut inv = loaded(
            "web",
            vec![
                ("kept", member("d", "1")),
                ("gone", member("d", "2")),
                ("moved", member("d", "3")),
            ],
        );
        inv.inventories.insert(
            "old".into(),
            loaded("old", vec![("old-one", member("d", "4"))])
                .inventories
                .remove("old")
                .unwrap(),
        );
        let plan = build(
            &set,
            &inv,
            &live_with(&[]),
            Safety::default(),
            &BTreeSet::new(),
            id,
        )
        .unwrap();
        let names = |v: &Vec<(ObjectKey, Member)>| v.iter().map(|(k, _)| k.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&plan.bundles["web"].prune), ["gone"]);
        assert_eq!(plan.bundles["web"].moved, [key("moved")]);
        assert!(!plan.bundles["web"].removed);
        assert!(plan.bundles["old"].removed);
        assert_eq!(names(&plan.bundles["old"].prune), ["old-one"]);
    }

    #[test]
    fn an_empty_source_with_managed_objects_is_refused_unless_allowed() {
        let inv = loaded("web", vec![("a", member("d", "1"))]);
        let err = build(
            &DesiredSet::default(),
            &inv,
            &LiveIndex::default(),
            Safety::default(),
            &BTreeSet::new(),
            id,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                Refusal::EmptySource {
                    members: 1,
                    bundles: 1
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("--allow-empty"));
        let allowed = Safety {
            allow_empty: true,
            ..Default::default()
        };
        let plan = build(
            &DesiredSet::default(),
            &inv,
            &LiveIndex::default(),
            allowed,
            &BTreeSet::new(),
            id,
        )
        .unwrap();
        assert_eq!(plan.prune_count(), 1);
    }

    #[test]
    fn a_last_bundle_left_with_only_its_tracker_is_pruned() {
        // The bundle is in Git (its tracker keeps it there) with no objects: EMCO terminating its last app.
        let mut set = DesiredSet::default();
        set.objects.insert("7-web".into(), Vec::new());
        let inv = loaded("7-web", vec![("a", member("d", "1")), ("b", member("d", "2"))]);
        let plan = build(
            &set,
            &inv,
            &LiveIndex::default(),
            Safety::default(),
            &BTreeSet::new(),
            id,
        )
        .unwrap();
        assert_eq!(plan.prune_count(), 2);
        assert!(
            !plan.bundles["7-web"].removed,
            "the inventory stays while the tracker does"
        );
    }

    #[test]
    fn a_vanished_path_is_pruned_only_for_bundles_whose_deletion_was_announced() {
        let mut inv = loaded("7-web", vec![("a", member("d", "1"))]);
        inv.inventories
            .extend(loaded("7-db", vec![("b", member("d", "2"))]).inventories);
        let empty = DesiredSet::default();
        let only_web = BTreeSet::from(["7-web".to_owned()]);
        let err = build(
            &empty,
            &inv,
            &LiveIndex::default(),
            Safety::default(),
            &only_web,
            id,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                Refusal::EmptySource {
                    members: 2,
                    bundles: 1
                }
            ),
            "{err}"
        );
        let both = BTreeSet::from(["7-web".to_owned(), "7-db".to_owned()]);
        let plan = build(&empty, &inv, &LiveIndex::default(), Safety::default(), &both, id).unwrap();
        assert_eq!(plan.prune_count(), 2);
        assert!(plan.bundles["7-web"].removed && plan.bundles["7-db"].removed);
    }

    #[test]
    fn a_vanished_path_with_nothing_managed_is_no_refusal() {
        // Inventories left empty by an earlier termination go quietly; a fresh install has none at all.
        let inv = loaded("7-web", vec![]);
        let plan = build(
            &DesiredSet::default(),
            &inv,
            &LiveIndex::default(),
            Safety::default(),
            &BTreeSet::new(),
            id,
        )
        .unwrap();
        assert!(plan.bundles["7-web"].removed);
        assert_eq!(plan.prune_count(), 0);
    }

    #[test]
    fn max_prune_ratio_refuses_large_deletions() {
        let set = desired(vec![object("web", "a", "d")]);
        let inv = loaded(
            "web",
            vec![
                ("a", member("d", "1")),
                ("b", member("d", "2")),
                ("c", member("d", "3")),
            ],
        );
        let safety = Safety {
            max_prune_ratio: Some(0.5),
            ..Default::default()
        };
        let err = build(
            &set,
            &inv,
            &live_with(&[("a", "1", "id-web")]),
            safety,
            &BTreeSet::new(),
            id,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                Refusal::TooManyPrunes {
                    prune: 2,
                    members: 3,
                    ..
                }
            ),
            "{err}"
        );
        let lenient = Safety {
            max_prune_ratio: Some(0.7),
            ..Default::default()
        };
        assert!(
            build(
                &set,
                &inv,
                &live_with(&[("a", "1", "id-web")]),
                lenient,
                &BTreeSet::new(),
                id
            )
            .is_ok()
        );
    }

    #[test]
    fn a_corrupt_inventory_is_never_touched() {
        let set = desired(vec![object("web", "a", "d")]);
        let mut inv = Loaded::default();
        inv.corrupt.insert(
            "web".into(),
            crate::inventory::Error::Corrupt {
                name: "x".into(),
                what: "member list",
                reason: "bad".into(),
            },
        );
        let plan = build(
            &set,
            &inv,
            &LiveIndex::default(),
            Safety::default(),
            &BTreeSet::new(),
            id,
        )
        .unwrap();
        assert!(!plan.bundles.contains_key("web"));
    }

    #[test]
    fn generation_decides_drift_when_present_so_status_updates_are_ignored() {
        let recorded = Member {
            api_version: "apps/v1".into(),
            digest: "d".into(),
            generation: Some(3),
            resource_version: Some("100".into()),
        };
        let status_update = LiveMeta {
            generation: Some(3),
            resource_version: Some("150".into()),
            part_of: Some("id".into()),
            ..Default::default()
        };
        assert!(!drifted(&recorded, &status_update, "id"));
        let spec_edit = LiveMeta {
            generation: Some(4),
            ..status_update.clone()
        };
        assert!(drifted(&recorded, &spec_edit, "id"));
        let label_removed = LiveMeta {
            part_of: None,
            ..status_update
        };
        assert!(drifted(&recorded, &label_removed, "id"));
    }
}
