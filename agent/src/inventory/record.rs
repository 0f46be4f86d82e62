//! Recording a sync in the inventories: each bundle's sync result, and the writes that persist it.
//!
//! Input is plain data the reconciler gathered ([`BundleEnd`]: how one bundle's sync ended); output is one
//! [`Write`] per bundle, then persisted concurrently by [`write_all`] (parents are independent). A bundle that
//! left Git and has no members left loses its parent; every other bundle's parent is saved with its new member
//! list and result. Member lists only shrink here, after deletes succeeded, so a crash at any point leaves every
//! object we created recorded.

use futures::StreamExt;

use super::store::{Store, StoreError};
use super::{Inventory, SyncResult, SyncState};
use crate::object::ObjectKey;

/// How one bundle's sync ended, as the inventory records it.
#[derive(Debug, Default)]
pub struct BundleEnd {
    /// Members whose object moved to another bundle (they leave this inventory without a delete).
    pub moved: Vec<ObjectKey>,
    /// The bundle left Git: its parent goes once its members are pruned.
    pub removed: bool,
    /// The bundle waited for a dependency.
    pub waiting: bool,
    /// The bundle was not applied at all (blocked, waiting, corrupt inventory).
    pub skipped: bool,
    /// Objects sent for it.
    pub applied: u64,
    /// Objects deleted for it.
    pub pruned: u64,
    /// Its problems, already scrubbed and capped.
    pub errors: Vec<String>,
}

impl BundleEnd {
    /// The state this end records.
    pub fn state(&self) -> SyncState {
        if self.waiting {
            SyncState::Waiting
        } else if !self.errors.is_empty() || self.skipped {
            SyncState::Failed
        } else {
            SyncState::Synced
        }
    }
}

/// One inventory write.
#[derive(Debug)]
pub enum Write {
    /// Create or update the parent with this content.
    Save(Box<Inventory>),
    /// Remove the parent of this bundle.
    Delete(String),
}

impl Write {
    /// The bundle written.
    pub fn bundle(&self) -> &str {
        match self {
            Write::Save(inv) => &inv.info.bundle,
            Write::Delete(bundle) => bundle,
        }
    }
}

/// Apply `end` to `inv` (members that moved leave, the sync result is set at `revision`/`time`) and say what
/// to write: `Delete` for a removed bundle with no members left, `Save` otherwise.
pub fn settle(inv: &mut Inventory, end: &BundleEnd, revision: &str, time: &str) -> Write {
    for key in &end.moved {
        inv.members.remove(key);
    }
    inv.sync = SyncResult {
        revision: Some(revision.to_owned()),
        time: Some(time.to_owned()),
        state: end.state(),
        applied: end.applied,
        pruned: end.pruned,
        errors: end.errors.clone(),
        suspended: None,
    };
    if end.removed && inv.members.is_empty() {
        Write::Delete(inv.info.bundle.clone())
    } else {
        Write::Save(Box::new(inv.clone()))
    }
}

/// Persist `writes`, at most `concurrency` at a time; each bundle with its result.
pub async fn write_all(
    store: &Store,
    writes: Vec<Write>,
    concurrency: usize,
) -> Vec<(String, Result<(), StoreError>)> {
    futures::stream::iter(writes)
        .map(|w| async move {
            let result = match &w {
                Write::Delete(bundle) => store.delete(bundle).await,
                Write::Save(inv) => store.save(inv).await,
            };
            (w.bundle().to_owned(), result)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{BundleInfo, Member};

    fn key(name: &str) -> ObjectKey {
        ObjectKey {
            group: String::new(),
            kind: "ConfigMap".into(),
            namespace: Some("ns".into()),
            name: name.into(),
        }
    }

    fn inventory(members: &[&str]) -> Inventory {
        let mut inv = Inventory::new(BundleInfo {
            bundle: "web".into(),
            ..Default::default()
        });
        for name in members {
            inv.members.insert(key(name), Member::default());
        }
        inv
    }

    #[test]
    fn a_removed_bundle_loses_its_parent_only_once_its_members_are_gone() {
        let end = BundleEnd {
            removed: true,
            ..Default::default()
        };
        assert!(matches!(
            settle(&mut inventory(&["a"]), &end, "c1", "t"),
            Write::Save(_)
        ));
        assert!(matches!(settle(&mut inventory(&[]), &end, "c1", "t"), Write::Delete(b) if b == "web"));
    }

    #[test]
    fn moved_members_leave_and_the_state_follows_the_end() {
        let mut inv = inventory(&["a", "b"]);
        let end = BundleEnd {
            moved: vec![key("a")],
            errors: vec!["boom".into()],
            applied: 2,
            ..Default::default()
        };
        let Write::Save(saved) = settle(&mut inv, &end, "c2", "t") else {
            panic!("a bundle still in Git is saved");
        };
        assert_eq!(saved.members.len(), 1);
        assert_eq!(saved.sync.state, SyncState::Failed);
        assert_eq!(saved.sync.revision.as_deref(), Some("c2"));
        assert_eq!(saved.sync.applied, 2);
        let waiting = BundleEnd {
            waiting: true,
            skipped: true,
            ..Default::default()
        };
        assert_eq!(waiting.state(), SyncState::Waiting);
        assert_eq!(BundleEnd::default().state(), SyncState::Synced);
    }
}
