//! What the sync starts from besides Git: the live metadata of managed kinds (listed, or trusted from the last
//! sync while drift watches keep the cluster that way), and which bundle keeps an object two bundles of one
//! EMCO app define.

use std::collections::BTreeSet;

use kube::Client;
use tracing::info;

use crate::inventory::store::Loaded;
use crate::live::{self, LiveIndex, LiveMeta};
use crate::manifest::{Bundle, contest};
use crate::resolve::Resolver;

/// Live metadata of every kind already in an inventory (only those can have live members worth checking;
/// other kinds are all new).
pub(crate) async fn listed(client: &Client, resolver: &mut Resolver, loaded: &Loaded) -> LiveIndex {
    let mut kinds = live::Kinds::new();
    for inv in loaded.inventories.values() {
        for (key, member) in &inv.members {
            let entry = kinds
                .entry((key.group.clone(), key.kind.clone()))
                .or_insert_with(|| (member.api_version.clone(), BTreeSet::new()));
            entry.1.insert(key.namespace.clone());
        }
    }
    live::list(client, resolver, &kinds).await
}

/// What the live cluster looks like according to the last sync, when drift watches keep it that way: every
/// applied member present exactly as recorded; pending members (empty digest) absent, so they are applied.
pub(crate) fn trusted(loaded: &Loaded, applyset_id: impl Fn(&str) -> String) -> LiveIndex {
    let mut index = LiveIndex::default();
    for (bundle, inv) in &loaded.inventories {
        let id = applyset_id(bundle);
        for (key, member) in &inv.members {
            index.mark_listed(&key.group, &key.kind);
            if member.digest.is_empty() {
                continue;
            }
            index.insert(
                key.clone(),
                LiveMeta {
                    generation: member.generation,
                    resource_version: member.resource_version.clone(),
                    part_of: Some(id.clone()),
                    ..Default::default()
                },
            );
        }
    }
    index
}

/// Give each object that two bundles of one EMCO app define to the newer bundle ([`contest`]).
pub(crate) fn settle_contested(bundles: &mut [Bundle], loaded: &Loaded) {
    let Ok(contested) = contest::find(bundles) else {
        return; // the commit was rejected when it was read
    };
    if contested.is_empty() {
        return;
    }
    let first_seen = |bundle: &str| {
        loaded.inventories.get(bundle).map(|inv| {
            inv.info
                .first_seen
                .clone()
                .unwrap_or_else(|| crate::inventory::FIRST_SEEN_UNKNOWN.to_owned())
        })
    };
    for (object, winner, losers) in contest::settle(bundles, &contested, first_seen) {
        info!(object = %object, bundle = %winner, from = ?losers, "Taken over by the newer bundle of its app");
    }
}
