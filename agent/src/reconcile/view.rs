//! What the sync starts from besides Git: the live metadata of managed kinds (listed, or trusted from the last
//! sync while drift watches keep the cluster that way).

use std::collections::BTreeSet;

use crate::inventory::store::Loaded;
use crate::live::{self, LiveIndex, LiveMeta};
use crate::resolve::Resolver;
use kube::Client;

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
