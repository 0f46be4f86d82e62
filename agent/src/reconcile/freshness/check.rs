//! The check itself, run by the reconciler right after the ref check: load the base once, walk, judge, report.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tracing::{info, warn};

use super::{Base, HistoryRewrite, Verdict, base_of, policy, refused};
use crate::reconcile::Reconciler;
use crate::reconcile::error::Result;
use crate::source::{Revision, deadline};

impl Reconciler {
    /// The last applied commit (`None`: nothing applied yet), read from the inventories the first time.
    pub(in crate::reconcile) async fn applied_base(&mut self) -> Result<Option<Revision>> {
        if self.freshness.base.is_none() && !self.freshness.loaded {
            let loaded = self.parts.store.load().await?;
            self.freshness.base = base_of(&loaded);
            self.freshness.loaded = true;
        }
        Ok(self.freshness.base.map(|b| b.revision))
    }

    /// Refuse `tip` when the freshness policy does not accept it as the successor of the last applied commit.
    pub(in crate::reconcile) async fn check_fresh(
        &mut self,
        tip: Revision,
        interrupt: Arc<AtomicBool>,
    ) -> Result<()> {
        let guard = &self.freshness;
        if guard.policy == HistoryRewrite::Allow {
            return Ok(());
        }
        self.applied_base().await?;
        let guard = &self.freshness;
        let Some(base) = guard.base else {
            return Ok(()); // nothing applied yet
        };
        if base.revision == tip {
            return Ok(());
        }
        if let Some((t, b, reason, why)) = &guard.refused
            && (*t, *b) == (tip, base.revision)
        {
            return Err(refused(tip, base.revision, reason, why.clone()));
        }
        let (source, max) = (self.source.clone(), guard.max_depth);
        let limit = source.deadline();
        let url = source.location();
        let walk = deadline::run(limit, interrupt, move |dog| {
            source.lineage(tip, base.revision, max, dog.interrupt())
        });
        let lineage = walk
            .await
            .map_err(|e| crate::reconcile::fetch::stalled(e, url))??;
        let base_time = lineage.base_time.or(base.time);
        match policy::judge(guard.policy, &lineage, base_time, max) {
            Verdict::Accept { rewrite } => {
                if rewrite {
                    warn!(commit = %tip, last = %base.revision, policy = guard.policy.as_str(), "The new commit does not descend from the last applied one; accepted by --history-rewrite");
                } else {
                    tracing::debug!(commit = %tip, last = %base.revision, ancestry = ?lineage.ancestry, "Fresh");
                }
                self.freshness.pending = Some(Base {
                    revision: tip,
                    time: lineage.tip_time,
                });
                Ok(())
            }
            Verdict::Refuse { reason, why } => {
                let err = refused(tip, base.revision, reason, why.clone());
                self.freshness.refused = Some((tip, base.revision, reason, why));
                if let Some(m) = &self.parts.metrics {
                    m.history_refused(reason);
                }
                info!(commit = %tip, last = %base.revision, reason, "Commit refused by freshness");
                if self.parts.events.is_some() {
                    let note = self.parts.scrubber.scrub(&err.to_string());
                    match self.parts.store.load().await {
                        Ok(loaded) => self.warn_all(&loaded, "HistoryRefused", "Sync", &note).await,
                        Err(e) => warn!(error = %e, "Inventories not read: no HistoryRefused Event"),
                    }
                }
                Err(err)
            }
        }
    }
}
