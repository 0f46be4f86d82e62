//! Taking over parents named by the previous layout, whose names did not include the cluster: two agents for
//! different clusters sharing a namespace overwrote each other's parents and shared ApplySet ids.
//!
//! A parent is ours to migrate when its `outpost.dev/cluster` annotation names our cluster (every parent ever
//! written carries it; Secrets without it are never touched) and it bears the old name of its bundle. Order
//! makes a crash at any point lose nothing: the parent under its new name is written first (merged into one an
//! interrupted migration already wrote), then each member's `part-of` label moves from the old id to the new
//! one (only where it still carries the old id, guarded by its resourceVersion), and only then is the old
//! parent deleted (guarded by its uid). A rerun repeats whatever did not finish. The next sync re-applies the
//! members with the new label in their bodies, as for any changed digest. Such parents carry no format marker
//! (their data is format 1's, [`super::format`]); the new parent is written in the current format.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tracing::{info, warn};

use super::Member;
use super::applyset::{self, PART_OF_LABEL};
use super::store::{Loaded, Parent, Store, StoreError, decode};
use crate::apply::FIELD_MANAGER;
use crate::object::ObjectKey;
use crate::resolve::{self, Resolver};

/// Attempts to move one member's label while others keep changing the member.
const RELABEL_ATTEMPTS: usize = 5;

/// Load this cluster's inventories, first migrating parents of the previous layout.
pub async fn load_migrating(
    store: &Store,
    client: &Client,
    resolver: &mut Resolver,
) -> Result<Loaded, StoreError> {
    let parents = store.list().await?;
    if !parents.iter().any(|p| p.legacy) {
        return Ok(store.load_from(parents));
    }
    let (legacy, current): (Vec<Parent>, Vec<Parent>) = parents.into_iter().partition(|p| p.legacy);
    let current: BTreeMap<String, Secret> = current.into_iter().map(|p| (p.bundle, p.secret)).collect();
    for old in legacy {
        migrate(store, client, resolver, &old, current.get(&old.bundle)).await?;
    }
    Ok(store.load_from(store.list().await?))
}

/// Move one parent of the previous layout to its new name.
async fn migrate(
    store: &Store,
    client: &Client,
    resolver: &mut Resolver,
    old: &Parent,
    current: Option<&Secret>,
) -> Result<(), StoreError> {
    let old_name = old.secret.metadata.name.clone().unwrap_or_default();
    let mut inv = match decode(&old.secret) {
        Ok(inv) => inv,
        Err(e) => {
            // Reported as corrupt by `load` and never pruned from; a human has to look at it.
            warn!(bundle = %old.bundle, parent = %old_name, error = %e, "Inventory not migrated: unreadable");
            return Ok(());
        }
    };
    if let Some(current) = current {
        match decode(current) {
            Ok(mut written) => {
                // An interrupted migration wrote it: keep everything either of them records.
                for (key, member) in std::mem::take(&mut inv.members) {
                    written.members.entry(key).or_insert(member);
                }
                inv = written;
            }
            Err(e) => {
                warn!(bundle = %old.bundle, error = %e, "Inventory not migrated: its new parent is unreadable");
                return Ok(());
            }
        }
    }
    inv.info.bundle.clone_from(&old.bundle);
    store.save(&inv).await?;
    let old_id = applyset::id(&old_name, store.namespace());
    let new_id = store.applyset_id(&old.bundle);
    let mut moved = 0;
    for (key, member) in &inv.members {
        if relabel(client, resolver, key, member, &old_id, &new_id).await? {
            moved += 1;
        }
    }
    store
        .delete_named(&old_name, old.secret.metadata.uid.clone())
        .await?;
    info!(
        bundle = %old.bundle,
        from = %old_name,
        to = %store.parent_name(&old.bundle),
        members = inv.members.len(),
        relabelled = moved,
        "Inventory migrated to its per-cluster name"
    );
    Ok(())
}

/// Move `key`'s `part-of` label from `old_id` to `new_id` if it still carries `old_id`; `false` when there was
/// nothing to move (gone, its kind gone, already moved, or someone else's by now).
async fn relabel(
    client: &Client,
    resolver: &mut Resolver,
    key: &ObjectKey,
    member: &Member,
    old_id: &str,
    new_id: &str,
) -> Result<bool, StoreError> {
    let failed = |source| StoreError::Relabel {
        object: key.to_string(),
        source,
    };
    // At the recorded version while served, else the group's preferred one (an upgrade may have removed it).
    let recorded = resolver.resolve_recorded(&member.api_version, &key.group, &key.kind);
    let resolved = match recorded.await {
        Ok(resolved) => resolved,
        Err(resolve::Error::UnknownKind { .. } | resolve::Error::Unserved { .. }) => return Ok(false),
        Err(resolve::Error::Discovery { source, .. }) => return Err(failed(source)),
    };
    let api = resolved.api(client, key.namespace.as_deref());
    // The resourceVersion makes each attempt a compare-and-swap: a change in between fails with 409, and the
    // label is read again (a member left with the old id would look like someone else's to prune).
    for _ in 0..RELABEL_ATTEMPTS {
        let Some(live) = api.get_metadata_opt(&key.name).await.map_err(failed)? else {
            return Ok(false);
        };
        let labels = live.metadata.labels.unwrap_or_default();
        if labels.get(PART_OF_LABEL).map(String::as_str) != Some(old_id) {
            return Ok(false);
        }
        let patch = json!({
            "metadata": {
                "resourceVersion": live.metadata.resource_version,
                "labels": {PART_OF_LABEL: new_id},
            }
        });
        match api.patch(&key.name, &patch_params(), &Patch::Merge(&patch)).await {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(false),
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(source) => return Err(failed(source)),
        }
    }
    // Still contended: the old parent stays and the next sync tries again.
    Err(StoreError::RelabelContended {
        object: key.to_string(),
    })
}

/// A plain (non-apply) patch under our field manager.
fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..Default::default()
    }
}
