//! What a writer remembers between writes: per branch, what last landed there and whether the branch was
//! contended; across branches, which branches may hold our status and whether the server takes status refs.
//!
//! [`crate::land`] updates a branch's record as it lands; [`crate::fanout`] reads the records to decide which
//! branches to visit, and forgets a branch once our status has left it.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gix::ObjectId;

use crate::render::Files;

/// State a writer keeps between writes.
#[derive(Default)]
pub struct Memory {
    /// The server refused status refs: push to branches alone.
    pub no_carrying: AtomicBool,
    /// Every branch we wrote to (or tried to) and may have status on: visited again when its bundles leave.
    branches: Mutex<BTreeMap<String, Arc<BranchMemory>>>,
    /// The remote's branches were looked through once for status of bundles that left while we were not
    /// running ([`crate::fanout`]).
    pub(crate) swept: AtomicBool,
}

impl Memory {
    /// What we remember of `branch` (a fresh record the first time).
    pub fn branch(&self, branch: &str) -> Arc<BranchMemory> {
        let mut branches = self.branches.lock().unwrap_or_else(|e| e.into_inner());
        branches.entry(branch.to_owned()).or_default().clone()
    }

    /// Every branch we remember.
    pub(crate) fn remembered(&self) -> Vec<String> {
        let branches = self.branches.lock().unwrap_or_else(|e| e.into_inner());
        branches.keys().cloned().collect()
    }

    /// Look at every branch again at the next write, trusting nothing remembered to have landed: the
    /// repository went away (unplugged media) and what comes back may be another copy.
    pub(crate) fn distrust_seen(&self) {
        let branches = self.branches.lock().unwrap_or_else(|e| e.into_inner());
        for branch in branches.values() {
            *branch.seen.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    /// Stop visiting `branch` (our status left it).
    pub(crate) fn forget(&self, branch: &str) {
        let mut branches = self.branches.lock().unwrap_or_else(|e| e.into_inner());
        branches.remove(branch);
    }
}

/// State a writer keeps per branch between writes.
#[derive(Default)]
pub struct BranchMemory {
    /// Our status directory as we last saw it land (`Some(None)`: landed empty), to notice history rewrites
    /// and to know a status has changed without fetching.
    pub landed: Mutex<Option<Option<ObjectId>>>,
    /// The last write lost a race: publish first next time.
    pub contended: AtomicBool,
    /// Digest of the files that last landed, and when: lets a write skip a branch whose status is unchanged.
    pub(crate) seen: Mutex<Option<([u8; 32], Instant)>>,
}

impl BranchMemory {
    /// Our directory on the branch now holds `tree`, made of `files`.
    pub(crate) fn record_landed(&self, tree: Option<ObjectId>, files: &Files) {
        *self.landed.lock().unwrap_or_else(|e| e.into_inner()) = Some(tree);
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some((digest(files), Instant::now()));
    }
}

/// A digest of status files (paths and contents).
pub(crate) fn digest(files: &Files) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for (path, (_, bytes)) in files {
        hash.update((path.len() as u64).to_le_bytes());
        hash.update(path.as_bytes());
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    }
    hash.finalize().into()
}
