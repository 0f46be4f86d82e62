//! Which bundle owns an object that several bundles define, so that two bundles never own one object.
//!
//! Twice: before the desired set is built, on identities as written, two bundles of one EMCO app (an update in
//! flight, [`contest`]) leave the object to the newer one; after it is built, on **settled** keys (a namespaced
//! object without a namespace is in `default`, a cluster-scoped one has none), the same rule holds for one
//! app, and otherwise the bundle whose inventory already records the object keeps it (else the bundle seen
//! first, then the first by name) while the others, the later ones, fail that object with a duplicate error. The owner never changes while it keeps defining
//! the object, so nothing flaps between syncs; a losing bundle is not pruned while it reports the duplicate.

use std::collections::{BTreeMap, BTreeSet};

use tracing::{info, warn};

use crate::desired::{DesiredSet, Failure, ObjectError};
use crate::inventory::FIRST_SEEN_UNKNOWN;
use crate::inventory::store::Loaded;
use crate::manifest::{Bundle, contest};
use crate::object::ObjectKey;

/// When `bundle`'s inventory was first seen (`None` without an inventory: newer than any).
fn first_seen(loaded: &Loaded, bundle: &str) -> Option<String> {
    loaded.inventories.get(bundle).map(|inv| {
        inv.info
            .first_seen
            .clone()
            .unwrap_or_else(|| FIRST_SEEN_UNKNOWN.to_owned())
    })
}

/// Give each object that two bundles of one EMCO app define (as written) to the newer bundle ([`contest`]).
pub(crate) fn settle_contested(bundles: &mut [Bundle], loaded: &Loaded) {
    let Ok(contested) = contest::find(bundles) else {
        return; // the commit was rejected when it was read
    };
    if contested.is_empty() {
        return;
    }
    for (object, winner, losers) in contest::settle(bundles, &contested, |b| first_seen(loaded, b)) {
        info!(object = %object, bundle = %winner, from = ?losers, "Taken over by the newer bundle of its app");
    }
}

/// Leave each settled key that several bundles (or one bundle twice) define to one owner: the others drop it,
/// silently between bundles of one EMCO app, with a duplicate failure otherwise.
pub(crate) fn settle_duplicates(desired: &mut DesiredSet, bundles: &[Bundle], loaded: &Loaded) {
    // Claims in bundle-name order, then file order.
    let mut claims: BTreeMap<&ObjectKey, Vec<(&str, usize)>> = BTreeMap::new();
    for (bundle, objects) in &desired.objects {
        for (i, o) in objects.iter().enumerate() {
            claims.entry(&o.key).or_default().push((bundle, i));
        }
    }
    let apps: BTreeMap<&str, Option<&str>> = bundles
        .iter()
        .map(|b| (b.name.as_str(), contest::emco_app(b)))
        .collect();
    let app_of = |b: &str| apps.get(b).copied().flatten();
    let mut drop: BTreeSet<(String, usize)> = BTreeSet::new();
    let mut failures = Vec::new();
    for (key, claims) in claims.into_iter().filter(|(_, c)| c.len() > 1) {
        let mut claimants: Vec<&str> = claims.iter().map(|c| c.0).collect();
        claimants.dedup();
        let one_app = claimants.len() > 1
            && app_of(claimants[0]).is_some()
            && claimants.iter().all(|b| app_of(b) == app_of(claimants[0]));
        let owner = if one_app {
            let count = |b: &str| desired.objects.get(b).map_or(0, Vec::len);
            claimants
                .iter()
                .copied()
                .max_by_key(|b| contest::newness(b, first_seen(loaded, b), count(b)))
        } else {
            let recorded = |b: &&str| {
                loaded
                    .inventories
                    .get(*b)
                    .is_some_and(|i| i.members.contains_key(key))
            };
            // Else the bundle seen first (one without an inventory is the newest), then the first by name.
            let seen = |b: &&str| {
                let first = first_seen(loaded, b);
                (first.is_none(), first, (*b).to_owned())
            };
            claimants
                .iter()
                .copied()
                .find(recorded)
                .or_else(|| claimants.iter().copied().min_by_key(seen))
        }
        .unwrap_or(claimants[0]);
        let Some(&kept) = claims.iter().find(|c| c.0 == owner) else {
            continue;
        };
        let first = desired.objects[owner][kept.1].origin.clone();
        let losers: Vec<&str> = claims.iter().filter(|c| **c != kept).map(|c| c.0).collect();
        if one_app {
            info!(object = %key, bundle = %owner, from = ?losers, "Taken over by the newer bundle of its app");
        } else {
            warn!(object = %key, bundle = %owner, duplicates = ?losers, "Defined by several bundles; the owner keeps it");
        }
        for &(bundle, i) in claims.iter().filter(|c| **c != kept) {
            drop.insert((bundle.to_owned(), i));
            if one_app {
                continue;
            }
            let object = &desired.objects[bundle][i];
            failures.push(Failure {
                bundle: bundle.to_owned(),
                object: key.to_string(),
                origin: object.origin.clone(),
                error: ObjectError::Duplicate {
                    owner: owner.to_owned(),
                    first: first.clone(),
                },
            });
        }
    }
    for (bundle, objects) in desired.objects.iter_mut() {
        let mut i = 0;
        objects.retain(|_| {
            i += 1;
            !drop.contains(&(bundle.clone(), i - 1))
        });
    }
    for f in failures {
        desired.failures.entry(f.bundle.clone()).or_default().push(f);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::desired::{DesiredObject, Stage};
    use crate::inventory::{BundleInfo, Inventory, Member};
    use crate::manifest::{Layout, Origin};

    fn key(ns: &str) -> ObjectKey {
        ObjectKey {
            group: String::new(),
            kind: "ConfigMap".into(),
            namespace: Some(ns.into()),
            name: "c".into(),
        }
    }

    fn object(bundle: &str, key: ObjectKey) -> Arc<DesiredObject> {
        Arc::new(DesiredObject {
            bundle: bundle.into(),
            key,
            api_version: "v1".into(),
            origin: Origin {
                file: format!("{bundle}/c.yaml"),
                document: 1,
                line: 1,
                sealed: Default::default(),
            },
            body: Arc::from(serde_json::value::to_raw_value(&serde_json::json!({})).unwrap()),
            crd_group: None,
            digest: "d".into(),
            stage: Stage::Config,
            resolved: None,
            force_recreate: false,
        })
    }

    fn bundle(name: &str, layout: Layout) -> Bundle {
        Bundle {
            name: name.into(),
            dir: name.into(),
            layout,
            manifests: Vec::new(),
            trackers: Vec::new(),
            depends_on: Vec::new(),
            settings: Default::default(),
            held: None,
        }
    }

    fn set(defs: &[(&str, ObjectKey)]) -> DesiredSet {
        let mut set = DesiredSet::default();
        for (b, k) in defs {
            set.objects
                .entry((*b).into())
                .or_default()
                .push(object(b, k.clone()));
        }
        set
    }

    fn owning(bundle: &str, first_seen: &str, key: Option<ObjectKey>) -> (String, Inventory) {
        let mut inv = Inventory::new(BundleInfo {
            bundle: bundle.into(),
            first_seen: Some(first_seen.into()),
            ..Default::default()
        });
        if let Some(k) = key {
            inv.members.insert(k, Member::default());
        }
        (bundle.into(), inv)
    }

    #[test]
    fn the_bundle_recording_the_object_keeps_it_and_the_other_reports_the_duplicate() {
        let plain = [bundle("a", Layout::Plain), bundle("b", Layout::Plain)];
        let mut desired = set(&[("a", key("default")), ("b", key("default"))]);
        let loaded = Loaded {
            inventories: [owning("b", "1", Some(key("default")))].into(),
            ..Default::default()
        };
        settle_duplicates(&mut desired, &plain, &loaded);
        assert!(desired.objects["a"].is_empty());
        assert_eq!(desired.objects["b"].len(), 1);
        let failure = desired.failures["a"][0].to_string();
        assert!(
            failure.contains("bundle b defines the same object (b/c.yaml"),
            "{failure}"
        );
        // Without any record, the first by name keeps it.
        let mut desired = set(&[("a", key("default")), ("b", key("default"))]);
        settle_duplicates(&mut desired, &plain, &Loaded::default());
        assert_eq!((desired.objects["a"].len(), desired.objects["b"].len()), (1, 0));
        assert_eq!(desired.failures["b"].len(), 1);
        // Unless the other bundle was there first: the later one reports the duplicate.
        let mut desired = set(&[("a", key("default")), ("b", key("default"))]);
        let loaded = Loaded {
            inventories: [owning("b", "2026-01-01T00:00:00Z", None)].into(),
            ..Default::default()
        };
        settle_duplicates(&mut desired, &plain, &loaded);
        assert_eq!((desired.objects["a"].len(), desired.objects["b"].len()), (0, 1));
        assert_eq!(desired.failures["a"].len(), 1);
    }

    #[test]
    fn two_contexts_of_one_app_leave_it_to_the_newer_without_a_failure() {
        let emco = |cid: &str| Layout::Emco {
            context: cid.into(),
            app: "web".into(),
        };
        let bundles = [bundle("1-web", emco("1")), bundle("2-web", emco("2"))];
        let mut desired = set(&[("1-web", key("default")), ("2-web", key("default"))]);
        let loaded = Loaded {
            inventories: [
                owning("1-web", "2026-01-01T00:00:00Z", Some(key("default"))),
                owning("2-web", "2026-02-01T00:00:00Z", None),
            ]
            .into(),
            ..Default::default()
        };
        settle_duplicates(&mut desired, &bundles, &loaded);
        assert!(desired.objects["1-web"].is_empty());
        assert_eq!(desired.objects["2-web"].len(), 1);
        assert!(desired.failures.is_empty());
    }

    #[test]
    fn distinct_keys_are_left_alone() {
        let plain = [bundle("a", Layout::Plain), bundle("b", Layout::Plain)];
        let mut desired = set(&[("a", key("x")), ("b", key("y"))]);
        settle_duplicates(&mut desired, &plain, &Loaded::default());
        assert_eq!((desired.objects["a"].len(), desired.objects["b"].len()), (1, 1));
        assert!(desired.failures.is_empty());
    }
}
