//! Was a deletion announced in commits the agent did not see?
//!
//! EMCO terminates an app in steps: one commit removes its resources and leaves its status tracker, later ones
//! remove the Flux root files and, about 120 s later, the tracker — and with the cluster's last app, the whole
//! cluster path. An agent that was down or backing off may see only the last step: a path that vanished while
//! objects are managed. That looks exactly like a mistake (a wrong `--cluster`, a broken mirror), which is
//! refused. To tell them apart the agent reads the commits it skipped, from each bundle's last applied commit to
//! the new one (deepening a shallow cache as far as [`MAX_HISTORY`] commits): a bundle whose directory held only
//! trackers in one of them had its deletion announced, and is pruned. Anything unclear stays refused.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tracing::{info, warn};

use crate::inventory::store::Loaded;
use crate::manifest::layout;
use crate::source::{Revision, Upstream, deadline};

/// Commits read back at most: EMCO makes a handful per app change, so this covers days of skipped commits for
/// an agent that was down, while bounding what one refused poll may fetch and read.
pub const MAX_HISTORY: usize = 500;

/// Bundles with members whose deletion a commit between their last applied commit and `tip` announced;
/// `cluster_path` is `clusters/<cluster>`, `interrupt` the running reconcile's shutdown flag.
pub(crate) async fn announced_deletions(
    source: Arc<dyn Upstream>,
    cluster_path: &str,
    interrupt: Option<Arc<AtomicBool>>,
    tip: Revision,
    loaded: &Loaded,
) -> BTreeSet<String> {
    // Bundles by the commit they were last synced at: one walk per base.
    let mut by_base: BTreeMap<Revision, Vec<(String, String)>> = BTreeMap::new();
    for (bundle, inv) in &loaded.inventories {
        if inv.members.is_empty() || inv.info.dir.is_empty() {
            continue;
        }
        let Some(base) = inv.sync.revision.as_deref().and_then(Revision::parse) else {
            continue;
        };
        by_base
            .entry(base)
            .or_default()
            .push((bundle.clone(), format!("{cluster_path}/{}", inv.info.dir)));
    }
    if by_base.is_empty() {
        return BTreeSet::new();
    }
    let interrupt = interrupt.unwrap_or_else(|| Arc::new(AtomicBool::new(false)));
    let limit = source.deadline();
    let scan = deadline::run(limit, interrupt, move |dog| {
        let mut announced = BTreeSet::new();
        for (base, bundles) in by_base {
            dog.feed();
            let commits = match source.history(tip, base, MAX_HISTORY, dog.interrupt()) {
                Ok(Some(commits)) => commits,
                Ok(None) => {
                    warn!(base = %base, max = MAX_HISTORY, "The last applied commit is not among the recent ancestors of the new one; cannot tell whether a deletion was announced");
                    continue;
                }
                Err(e) => {
                    warn!(error = %e, "Cannot read the commits since the last applied one");
                    continue;
                }
            };
            for (bundle, dir) in bundles {
                let seen = commits.iter().find(|c| {
                        matches!(source.read_dir(**c, &dir), Ok(Some(files)) if layout::is_tracker_only(&dir, &files))
                    });
                if let Some(commit) = seen {
                    info!(bundle = %bundle, commit = %commit, "Deletion announced by a tracker-only commit");
                    announced.insert(bundle);
                }
            }
        }
        announced
    });
    scan.await.unwrap_or_else(|e| {
        warn!(error = %e, "Reading the commits since the last applied one stalled");
        BTreeSet::new()
    })
}
