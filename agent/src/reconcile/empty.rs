//! A commit that holds no bundle while objects are managed: which deletions skipped commits announced, and the
//! error when the plan is refused (a missing cluster path says so).

use super::error::Error;
use super::{Reconciler, history};
use crate::inventory::store::Loaded;
use crate::manifest::Bundle;
use crate::plan::Refusal;
use crate::source::Revision;

impl Reconciler {
    /// When Git holds no bundle at all while objects are managed: the bundles whose deletion a skipped commit
    /// announced ([`history`]). Empty otherwise (nothing to decide, or `--allow-empty` decides).
    pub(super) async fn announced_if_empty(
        &self,
        revision: &str,
        bundles: &[Bundle],
        loaded: &Loaded,
    ) -> std::collections::BTreeSet<String> {
        let managed = loaded.inventories.values().any(|i| !i.members.is_empty());
        if !bundles.is_empty() || !managed || self.parts.settings.safety.allow_empty {
            return Default::default();
        }
        let Some(tip) = Revision::parse(revision) else {
            return Default::default();
        };
        let path = self.cluster_path();
        history::announced_deletions(self.source.clone(), &path, self.interrupt.clone(), tip, loaded).await
    }

    /// The error for a refused plan: a missing path says so.
    pub(super) fn refusal(&self, revision: &str, source: Refusal) -> Error {
        match source {
            Refusal::EmptySource { .. } if self.pending_missing => Error::MissingClusterPath {
                path: self.cluster_path(),
                commit: revision.to_owned(),
            },
            source => Error::Refused {
                commit: revision.to_owned(),
                source,
            },
        }
    }
}
