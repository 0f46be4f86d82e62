//! One write spread over the branches `--git-branch` names (blocking): the template ([`crate::branch`]) may give
//! every bundle its own branch, so a write visits each branch that has or had our status and lands that
//! branch's files there with [`crate::land::Job`] (one commit per branch per write, carrying and all).
//!
//! The branches visited: those the rendered bundles go to; those we remember writing to (when a bundle leaves,
//! its branch is visited with no files for it, so its status file is removed there, and a branch left with none
//! of our status is forgotten); a single-branch template's branch always (the last bundle leaving empties it,
//! as before templates); and, on a process's first write with a per-bundle template that names the cluster,
//! every branch on the remote the template may have given this cluster's bundles, so status of bundles that left
//! while no writer ran is removed too. A branch that does not exist is never created just to remove nothing.
//! Only `clusters/<cluster>/status` is ever touched on any branch.
//!
//! With a per-bundle template the branches grow with the apps, so a branch whose status is unchanged since it
//! landed is not fetched again for up to `REVISIT` (sparing the Git server a ref listing per app per write);
//! a single branch is fetched on every write, as before. Branches are written one after another; a failure on
//! one does not stop the others, and the write returns the first failure (the next write retries it). Every
//! failure outside shutdown is counted by its kind.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gix::ObjectId;
use outpost_agent::secret::Scrubber;
use outpost_agent::source::GitRef;
use outpost_agent::source::deadline::Watchdog;
use tracing::{info, warn};

use crate::land::Job;
use crate::memory::{BranchMemory, Memory, digest};
use crate::metrics::StatusMetrics;
use crate::outcome::{Error, Report};
use crate::push::{self, PushRequest};
use crate::render::{Branches, Files};
use crate::target::{Target, source_for};

/// Longest a per-bundle branch whose status has not changed goes without a look: someone may have rewritten
/// it or removed our file, and we repair that within this time (EMCO's rsync polls every 60 s; status that
/// changes is written at once anyway).
const REVISIT: Duration = Duration::from_secs(600);

/// One write across branches.
pub(crate) struct Fanout<'a> {
    /// Where to write.
    pub(crate) target: &'a Target,
    /// Removes credentials from messages.
    pub(crate) scrubber: &'a Scrubber,
    /// `outpost_status_*`.
    pub(crate) metrics: Option<&'a StatusMetrics>,
    /// Raised on shutdown, and when no branch was written for `--git-timeout`.
    pub(crate) interrupt: &'a AtomicBool,
    /// Told each time a branch is done, which restarts `--git-timeout`.
    pub(crate) progress: &'a Watchdog,
    /// What the writer remembers between writes.
    pub(crate) memory: &'a Memory,
    /// The newest rendered files by branch (`None`: the watches are not complete).
    pub(crate) latest: &'a dyn Fn() -> Option<Branches>,
}

impl Fanout<'_> {
    /// Write every branch that needs it; see the module text.
    pub(crate) fn run(&self) -> Result<Report, Error> {
        let Some(rendered) = (self.latest)() else {
            return Ok(Report::new());
        };
        let template = &self.target.branch;
        let per_bundle = template.single().is_none();
        let mut visit: BTreeSet<String> = rendered.keys().cloned().collect();
        visit.extend(self.memory.remembered());
        visit.extend(template.single());
        let mut failed = None;
        if template.sweeps() && !self.memory.swept.load(Ordering::Relaxed) {
            match self.sweep() {
                Ok(found) => {
                    visit.extend(found);
                    self.memory.swept.store(true, Ordering::Relaxed);
                }
                Err(e) => {
                    self.count_failure(&e);
                    failed = Some(e);
                }
            }
        }
        let several = visit.len() > 1;
        let mut report = Report::new();
        for branch in visit {
            let files = rendered.get(&branch).cloned().unwrap_or_default();
            let memory = self.memory.branch(&branch);
            if per_bundle && unchanged(&memory, &files) {
                continue;
            }
            let latest = || (self.latest)().map(|mut all| all.remove(&branch).unwrap_or_default());
            let job = Job {
                target: self.target,
                branch: &branch,
                scrubber: self.scrubber,
                metrics: self.metrics,
                interrupt: self.interrupt,
                memory: &memory,
                no_carrying: &self.memory.no_carrying,
                latest: &latest,
            };
            let result = job.run(files);
            self.progress.feed();
            match result {
                Ok(written) => {
                    let emptied = *memory.landed.lock().unwrap_or_else(|e| e.into_inner()) == Some(None);
                    if per_bundle && emptied {
                        self.memory.forget(&branch);
                    }
                    report.insert(branch, written);
                }
                Err(e) if self.interrupt.load(Ordering::Relaxed) => return Err(e),
                Err(e) => {
                    self.count_failure(&e);
                    if several {
                        let error = self.scrubber.scrub(&e.to_string());
                        warn!(branch = %branch, error = %error, "Status write to this branch failed; writing the others");
                    }
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Counts a failed write in `outpost_status_write_failures_total` by its kind (not on shutdown: an
    /// interrupted write is not a failure to alert on).
    fn count_failure(&self, e: &Error) {
        if let Some(m) = self.metrics
            && !self.interrupt.load(Ordering::Relaxed)
        {
            m.write_failed(e.metric_label());
        }
    }

    /// The remote's branches the template may have given this cluster's bundles (one ref listing).
    fn sweep(&self) -> Result<Vec<String>, Error> {
        let repo = source_for(self.target, self.scrubber, GitRef::Head)?.cache_repo()?;
        let request = PushRequest {
            url: &self.target.url,
            auth: &self.target.auth,
            scrubber: self.scrubber,
            branch: "",
            old: None,
            new: ObjectId::null(repo.object_hash()),
            repo: &repo,
            objects: &[],
            cache_dir: &self.target.cache_dir,
        };
        let found: Vec<String> = push::advertised(&request, self.interrupt)?
            .into_iter()
            .filter_map(|(name, _)| Some(name.strip_prefix("refs/heads/")?.to_owned()))
            .filter(|branch| self.target.branch.claims(branch))
            .collect();
        if !found.is_empty() {
            info!(branches = ?found, "Looking through the branches the template may have given our bundles");
        }
        Ok(found)
    }
}

/// Whether `files` are what last landed on the branch, recently enough to trust it without a look.
fn unchanged(memory: &BranchMemory, files: &Files) -> bool {
    if memory.contended.load(Ordering::Relaxed) {
        return false;
    }
    let seen = *memory.seen.lock().unwrap_or_else(|e| e.into_inner());
    seen.is_some_and(|(landed, at)| at.elapsed() < REVISIT && landed == digest(files))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(text: &str) -> Files {
        Files::from([(
            "b/b-status.yaml".to_owned(),
            ("b".to_owned(), text.as_bytes().to_vec()),
        )])
    }

    #[test]
    fn a_branch_is_skipped_only_while_its_status_is_what_landed_recently_and_uncontended() {
        let memory = BranchMemory::default();
        assert!(!unchanged(&memory, &files("a")), "never landed");
        *memory.seen.lock().unwrap() = Some((digest(&files("a")), std::time::Instant::now()));
        assert!(unchanged(&memory, &files("a")));
        assert!(!unchanged(&memory, &files("b")), "changed");
        assert!(!unchanged(&memory, &Files::new()), "left");
        memory.contended.store(true, Ordering::Relaxed);
        assert!(!unchanged(&memory, &files("a")), "contended");
        memory.contended.store(false, Ordering::Relaxed);
        if let Some(long_ago) = std::time::Instant::now().checked_sub(REVISIT) {
            *memory.seen.lock().unwrap() = Some((digest(&files("a")), long_ago));
            assert!(!unchanged(&memory, &files("a")), "not looked at for too long");
        }
    }
}
