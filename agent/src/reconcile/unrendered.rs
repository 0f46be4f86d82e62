//! Bundles held back by a render failure (a SOPS file that does not decrypt): the bundle has no manifests this
//! time, so everything its inventory holds is protected from prune (by any bundle), the bundle leaves the plan,
//! and its sync fails with the render error while the other bundles sync. Its dependents wait.

use super::progress::Progress;
use crate::desired::DesiredSet;
use crate::inventory::store::Loaded;
use crate::manifest::Bundle;
use crate::plan::Plan;

/// The held bundles and why, in name order.
fn held(bundles: &[Bundle]) -> Vec<(String, String)> {
    bundles
        .iter()
        .filter_map(|b| b.held.clone().map(|why| (b.name.clone(), why)))
        .collect()
}

/// The held bundles of `bundles` and why; what each one's inventory holds is protected: no bundle prunes it,
/// and the plan sees it as kept.
pub(crate) fn protect(
    bundles: &[Bundle],
    desired: &mut DesiredSet,
    loaded: &Loaded,
) -> Vec<(String, String)> {
    let held = held(bundles);
    for (bundle, _) in &held {
        if let Some(inv) = loaded.inventories.get(bundle) {
            desired.protected.extend(inv.members.keys().cloned());
        }
    }
    held
}

/// Take the held bundles out of `plan`: nothing of them is applied, pruned or moved.
pub(crate) fn hold(plan: &mut Plan, held: &[(String, String)]) {
    for (bundle, _) in held {
        plan.bundles.remove(bundle);
    }
}

/// Fail the held bundles' syncs with why they are held (their dependents wait).
pub(crate) fn block(progress: &mut Progress, held: Vec<(String, String)>) {
    for (bundle, why) in held {
        progress.block(&bundle, why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{BundleInfo, Inventory, Member};
    use crate::manifest::Layout;
    use crate::object::ObjectKey;

    fn bundle(name: &str, held: Option<&str>) -> Bundle {
        Bundle {
            name: name.into(),
            dir: name.into(),
            layout: Layout::Plain,
            manifests: Vec::new(),
            trackers: Vec::new(),
            depends_on: Vec::new(),
            settings: Default::default(),
            held: held.map(str::to_owned),
        }
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey {
            group: String::new(),
            kind: "ConfigMap".into(),
            namespace: Some("ns".into()),
            name: name.into(),
        }
    }

    #[test]
    fn a_held_bundles_members_are_protected_and_it_leaves_the_plan() {
        let bundles = [
            bundle("app", Some("render: x: cannot decrypt")),
            bundle("web", None),
        ];
        assert_eq!(
            held(&bundles),
            [("app".to_owned(), "render: x: cannot decrypt".to_owned())]
        );
        let mut inv = Inventory::new(BundleInfo {
            bundle: "app".into(),
            ..Default::default()
        });
        inv.members.insert(key("a"), Member::default());
        let loaded = Loaded {
            inventories: [("app".to_owned(), inv)].into(),
            corrupt: Default::default(),
        };
        let mut desired = DesiredSet::default();
        let held = protect(&bundles, &mut desired, &loaded);
        assert!(desired.protected.contains(&key("a")));
        assert!(!desired.protected.contains(&key("b")));
        let mut plan = Plan::default();
        plan.bundles.insert("app".into(), Default::default());
        plan.bundles.insert("web".into(), Default::default());
        hold(&mut plan, &held);
        assert_eq!(plan.bundles.keys().collect::<Vec<_>>(), ["web"]);
    }
}
