//! One write to one branch, from rendered files to status on that branch (blocking; see [`crate::carry`] for
//! the scheme, and [`crate::fanout`] for how a write is spread over the branches the template names).
//!
//! Uncontended, a write is one fetch and one push: fetch the tip and the published status refs, stop when our
//! directory already holds these files, otherwise push one commit with our directory and every pending published
//! one, removing the status refs it carried. When the branch is contended (we lost a race, here or in the last
//! write), we publish our status on our status ref first and then only watch that ref: the writer whose cluster
//! name is first among those waiting lands everyone; the others see their ref removed (carried) with one cheap
//! ref listing. After `FALLBACK` without being carried, anyone lands itself.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gix::ObjectId;
use outpost_agent::secret::Scrubber;
use tracing::{debug, info, warn};

use crate::memory::BranchMemory;
use crate::metrics::StatusMetrics;
use crate::outcome::{Error, Written};
use crate::push::{self, PushOutcome, PushRequest};
use crate::render::Files;
use crate::target::{Target, fetch_tip, source_for};
use crate::{carry, commit, paths, published};

/// Lost races per write before giving up until the next change.
const MAX_LOSSES: u32 = 12;
/// First retry delay after a lost race (uncarried writers); doubled each time, with jitter, up to
/// [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(50);
/// Longest delay between attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(2);
/// How often a published writer looks whether it was carried (on average; jittered ±50%).
const PROBE: Duration = Duration::from_millis(1000);
/// How long a published writer waits for the first-named writer to carry it before landing itself.
pub(crate) const FALLBACK: Duration = Duration::from_secs(3);
/// Longest a contended write keeps trying.
const DEADLINE: Duration = Duration::from_secs(120);

/// How one attempt to land ended.
enum Landing {
    /// Our directory on the tip already holds this status.
    Present(ObjectId),
    /// We pushed this commit.
    Pushed(ObjectId),
    /// Someone else moved the branch first.
    Lost(String),
}

/// One write to one branch in progress.
pub struct Job<'a> {
    /// Where to write.
    pub target: &'a Target,
    /// The branch (one expansion of the target's template).
    pub branch: &'a str,
    /// Removes credentials from messages.
    pub scrubber: &'a Scrubber,
    /// `outpost_status_*`.
    pub metrics: Option<&'a StatusMetrics>,
    /// Raised on shutdown.
    pub interrupt: &'a AtomicBool,
    /// What the writer remembers of this branch between writes.
    pub memory: &'a BranchMemory,
    /// The server refused status refs (shared by every branch).
    pub no_carrying: &'a AtomicBool,
    /// The newest rendered files for this branch, asked before every retry (`None`: the watches are not
    /// complete; keep the files).
    pub latest: &'a dyn Fn() -> Option<Files>,
}

impl Job<'_> {
    /// Write `files` (the newest status of this branch's bundles); see the module text.
    pub fn run(&self, mut files: Files) -> Result<Written, Error> {
        let landed = *self.memory.landed.lock().unwrap_or_else(|e| e.into_inner());
        let mut changed = Vec::new();
        let own_ref = self.own_ref();
        let publish_first = own_ref.is_some()
            && self.memory.contended.load(Ordering::Relaxed)
            && landed.is_some()
            && landed != Some(commit::write_tree(&self.cache()?, &contents(&files))?);
        if !publish_first {
            match self.land(&files, &mut changed, Some(landed))? {
                Landing::Present(_) => return Ok(Written::Unchanged),
                Landing::Pushed(commit) => {
                    self.memory.contended.store(false, Ordering::Relaxed);
                    return Ok(pushed(commit, changed, 0));
                }
                Landing::Lost(_) => self.memory.contended.store(true, Ordering::Relaxed),
            }
        }
        match self.own_ref() {
            Some(refname) => self.publish_and_wait(&refname, &mut files, &mut changed),
            None => self.retry(&mut files, &mut changed),
        }
    }

    /// Our status ref, unless carrying is off (the server refuses status refs, or we sign our status).
    fn own_ref(&self) -> Option<String> {
        carry::own_ref(self.branch, &self.target.cluster)
            .filter(|_| !self.no_carrying.load(Ordering::Relaxed))
            // Signed status: each commit holds only what this cluster signs, so nothing is carried either way.
            .filter(|_| self.target.author.signer.is_none())
    }

    /// Keep landing ourselves, backing off between lost races (no status refs).
    fn retry(&self, files: &mut Files, changed: &mut Vec<String>) -> Result<Written, Error> {
        let mut delay = FIRST_RETRY_DELAY;
        let mut reason = String::new();
        for losses in 1..=MAX_LOSSES {
            std::thread::sleep(delay + delay.mul_f64(fastrand::f64()));
            delay = (delay * 2).min(MAX_RETRY_DELAY);
            if let Some(newest) = (self.latest)() {
                *files = newest;
            }
            match self.land(files, changed, None)? {
                Landing::Present(commit) => return Ok(self.carried(commit, changed, losses)),
                Landing::Pushed(commit) => return Ok(pushed(commit, changed.clone(), losses)),
                Landing::Lost(why) => reason = why,
            }
        }
        Err(Error::Contended {
            url: self.target.url.to_string(),
            attempts: MAX_LOSSES,
            reason,
        })
    }

    /// Publish our status, then wait to be carried, landing everyone when we are first in line (or waited
    /// [`FALLBACK`]). A status that changes meanwhile is the next write's (publishing every change would flood
    /// the server exactly when it is busiest).
    fn publish_and_wait(
        &self,
        refname: &str,
        files: &mut Files,
        changed: &mut Vec<String>,
    ) -> Result<Written, Error> {
        let deadline = Instant::now() + DEADLINE;
        let mut losses = 0;
        let mut reason = String::from("not carried in time");
        let repo = self.cache()?;
        let probe = self.request(&repo, None, ObjectId::null(gix::hash::Kind::Sha1), &[]);
        let Some((published, mut refs)) = self.publish(&repo, refname, files)? else {
            return self.retry(files, changed);
        };
        let since = Instant::now();
        while Instant::now() < deadline {
            if !refs.iter().any(|(name, _)| name == refname) {
                let branch = format!("refs/heads/{}", self.branch);
                let commit = refs.iter().find(|(n, _)| *n == branch).map(|(_, id)| *id);
                self.memory.record_landed(published, files);
                info!(branch = %self.branch, commit = ?commit, "Status carried onto the branch by another writer");
                return Ok(Written::Pushed {
                    commit: commit.unwrap_or_else(|| ObjectId::null(gix::hash::Kind::Sha1)),
                    bundles: std::mem::take(changed),
                    retries: losses,
                });
            }
            let waiting: Vec<&str> = refs
                .iter()
                .filter_map(|(name, _)| carry::cluster_of(self.branch, name))
                .collect();
            let first = waiting.iter().min().copied();
            if first == Some(self.target.cluster.as_str()) || since.elapsed() >= FALLBACK {
                match self.land(files, changed, None)? {
                    Landing::Present(commit) => return Ok(self.carried(commit, changed, losses)),
                    Landing::Pushed(commit) => {
                        // Nobody else was waiting and nobody beat us: the branch is quiet again.
                        if waiting.len() == 1 && losses == 0 {
                            self.memory.contended.store(false, Ordering::Relaxed);
                        }
                        return Ok(pushed(commit, changed.clone(), losses));
                    }
                    Landing::Lost(why) => {
                        losses += 1;
                        reason = why;
                    }
                }
            }
            std::thread::sleep(PROBE.mul_f64(0.5 + fastrand::f64()));
            refs = push::advertised(&probe, self.interrupt)?;
        }
        Err(Error::Contended {
            url: self.target.url.to_string(),
            attempts: losses,
            reason,
        })
    }

    /// Put our status on our status ref (a commit on what the ref holds now). Returns the published tree and
    /// the refs the server advertised, or `None` when the server refuses status refs (carrying is then off).
    #[allow(clippy::type_complexity)]
    fn publish(
        &self,
        repo: &gix::Repository,
        refname: &str,
        files: &Files,
    ) -> Result<Option<(Option<ObjectId>, Vec<(String, ObjectId)>)>, Error> {
        let tree = commit::write_tree(repo, &contents(files))?;
        let message = format!("outpost status: {}", self.target.cluster);
        let request = self.request(repo, None, ObjectId::null(gix::hash::Kind::Sha1), &[]);
        for _ in 0..MAX_LOSSES {
            let mut made = None;
            let result = push::publish(
                &request,
                refname,
                |current| {
                    let built = commit::commit_tree(repo, tree, current, &message, &self.target.author)
                        .map_err(|e| push::Error::Pack {
                            reason: e.to_string(),
                        })?;
                    made = Some(built.commit);
                    Ok((built.commit, built.objects))
                },
                self.interrupt,
            );
            match result {
                Ok((PushOutcome::Updated, mut refs)) => {
                    debug!(tree = ?tree, "Status published on our status ref");
                    // The refs as they are now: the advertisement predates our update.
                    refs.retain(|(name, _)| name != refname);
                    refs.extend(made.map(|id| (refname.to_owned(), id)));
                    return Ok(Some((tree, refs)));
                }
                // A carrier removed or moved our ref between listing and update: publish on what is there now.
                Ok((PushOutcome::Rejected { .. }, _)) => continue,
                Err(push::Error::Protocol { reason, .. }) => {
                    warn!(reason = %reason, "The control repository refuses our status ref; pushing to the branch alone from now on");
                    self.no_carrying.store(true, Ordering::Relaxed);
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Contended {
            url: self.target.url.to_string(),
            attempts: MAX_LOSSES,
            reason: format!("{refname} kept moving while we published to it"),
        })
    }

    /// Fetch the tip and, unless our directory already holds `files`, push a commit of them that also carries
    /// every pending published status and removes the status refs it settles (ours, those carried, those
    /// already on the branch). `expected` (first attempt of a write): what we last saw land, to report rewrites.
    fn land(
        &self,
        files: &Files,
        changed: &mut Vec<String>,
        expected: Option<Option<Option<ObjectId>>>,
    ) -> Result<Landing, Error> {
        let target = self.target;
        let root = paths::status_root(&target.cluster);
        let own_ref = self.own_ref();
        let fetch_started = Instant::now();
        let tip = fetch_tip(
            target,
            self.branch,
            self.scrubber,
            self.interrupt,
            own_ref.is_some(),
        )?;
        let fetch_ms = fetch_started.elapsed().as_millis();
        let repo = tip.source.cache_repo()?;
        let base = tip.base;
        if files.is_empty() && tip.old.is_none() {
            // Nothing to write, nothing to remove: never create a branch (EMCO deletes app branches itself).
            self.memory.record_landed(None, files);
            return Ok(Landing::Present(base));
        }
        let before = commit::subtree(&repo, base, &root)?;
        let ours = commit::write_tree(&repo, &contents(files))?;
        if let Some(Some(expected)) = expected
            && before != expected
            && before != ours
        {
            warn!(
                branch = %self.branch,
                "Our status directory on the branch is not what we last pushed: history was rewritten (force-push) or someone edited it; writing current status on top, never force-pushing"
            );
        }
        let mut listed = tip.published.clone();
        let settled = match own_ref {
            Some(_) => published::settle(&repo, base, &target.cluster, &listed, ours)?,
            None => carry::Settlement::default(),
        };
        if before == ours {
            self.memory.record_landed(ours, files);
            self.remove_leftovers(&repo, &settled, &listed);
            return Ok(Landing::Present(base));
        }
        *changed = changed_bundles(&repo, base, &root, files);

        if let Some(own_ref) = &own_ref
            && settled.republish_own
        {
            // Our ref holds an older status: were its removal lost, others would carry it over this one.
            match self.publish(&repo, own_ref, files)? {
                Some((_, refs)) => match refs.iter().find(|(name, _)| name == own_ref) {
                    Some((_, id)) => listed.insert(target.cluster.clone(), *id),
                    None => listed.remove(&target.cluster),
                },
                None => listed.remove(&target.cluster),
            };
        }
        let removals = published::removals(self.branch, &settled.remove, &listed);
        let mut replace = BTreeMap::from([(root.clone(), ours)]);
        let mut remote_has = BTreeSet::new();
        let mut carried = Vec::new();
        for (cluster, tree) in settled.carry {
            remote_has.extend(tree);
            replace.insert(paths::status_root(&cluster), tree);
            carried.push(cluster);
        }
        let message = commit_message(&target.cluster, changed, &carried);
        let Some(built) =
            commit::compose(&repo, Some(base), &replace, &remote_has, &message, &target.author)?
        else {
            return Ok(Landing::Present(base));
        };
        let started = Instant::now();
        let request = self.request(&repo, tip.old, built.commit, &built.objects);
        let outcome = push::push_with(&request, &removals, self.interrupt);
        if let Some(m) = self.metrics {
            m.observe_push(started.elapsed().as_secs_f64());
        }
        debug!(
            fetch_ms,
            push_ms = started.elapsed().as_millis(),
            ok = matches!(outcome, Ok((PushOutcome::Updated, _))),
            carried = carried.len(),
            "Landing attempt"
        );
        let outcome = match outcome {
            Ok((outcome, all_removed)) => {
                if outcome == PushOutcome::Updated && !all_removed {
                    debug!(
                        removals = removals.len(),
                        "Some settled status refs stay for the next landing"
                    );
                }
                outcome
            }
            Err(push::Error::Protocol { reason, .. }) if !removals.is_empty() => {
                warn!(reason = %reason, "The control repository refused removing status refs; pushing to the branch alone from now on");
                self.no_carrying.store(true, Ordering::Relaxed);
                return Ok(Landing::Lost(reason));
            }
            Err(e) => return Err(e.into()),
        };
        match outcome {
            PushOutcome::Updated => {
                let bytes: u64 = built
                    .objects
                    .iter()
                    .filter_map(|id| repo.find_object(*id).ok().map(|o| o.data.len() as u64))
                    .sum();
                if let Some(m) = self.metrics {
                    m.committed();
                    m.pushed(bytes, jiff::Timestamp::now().as_millisecond() as f64 / 1000.0);
                }
                self.memory.record_landed(ours, files);
                info!(branch = %self.branch, commit = %built.commit, bundles = ?changed, carried = ?carried, "Status pushed");
                Ok(Landing::Pushed(built.commit))
            }
            PushOutcome::Rejected { reason, .. } => {
                if let Some(m) = self.metrics {
                    m.push_rejected();
                    m.push_retried();
                }
                Ok(Landing::Lost(reason))
            }
        }
    }

    /// Our directory already holds our status: remove the status refs an earlier landing settled but could not
    /// remove (see [`published::remove_leftovers`]).
    fn remove_leftovers(
        &self,
        repo: &gix::Repository,
        settled: &carry::Settlement,
        listed: &BTreeMap<String, ObjectId>,
    ) {
        let request = self.request(repo, None, ObjectId::null(gix::hash::Kind::Sha1), &[]);
        published::remove_leftovers(&request, settled, listed, self.interrupt);
    }

    /// Our status landed through another writer (or was there already).
    fn carried(&self, commit: ObjectId, changed: &mut Vec<String>, losses: u32) -> Written {
        info!(branch = %self.branch, commit = %commit, retries = losses, "Status carried onto the branch by another writer");
        pushed(commit, std::mem::take(changed), losses)
    }

    /// The cache repository (objects are built here).
    fn cache(&self) -> Result<gix::Repository, Error> {
        let branch = outpost_agent::source::GitRef::Branch(self.branch.to_owned());
        Ok(source_for(self.target, self.scrubber, branch)?.cache_repo()?)
    }

    fn request<'r>(
        &'r self,
        repo: &'r gix::Repository,
        old: Option<ObjectId>,
        new: ObjectId,
        objects: &'r [ObjectId],
    ) -> PushRequest<'r> {
        PushRequest {
            url: &self.target.url,
            auth: &self.target.auth,
            scrubber: self.scrubber,
            branch: self.branch,
            old,
            new,
            repo,
            objects,
            cache_dir: &self.target.cache_dir,
        }
    }
}

fn pushed(commit: ObjectId, bundles: Vec<String>, retries: u32) -> Written {
    Written::Pushed {
        commit,
        bundles,
        retries,
    }
}

fn contents(files: &Files) -> BTreeMap<String, Vec<u8>> {
    files
        .iter()
        .map(|(p, (_, bytes))| (p.clone(), bytes.clone()))
        .collect()
}

fn commit_message(cluster: &str, changed: &[String], carried: &[String]) -> String {
    format!(
        "outpost status: {cluster}: {}{}",
        if changed.is_empty() {
            "refresh".to_owned()
        } else {
            changed.join(", ")
        },
        if carried.is_empty() {
            String::new()
        } else {
            format!("; carried: {}", carried.join(", "))
        }
    )
}

/// Bundles whose status file differs from the one at `base`.
fn changed_bundles(repo: &gix::Repository, base: ObjectId, root: &str, files: &Files) -> Vec<String> {
    let mut changed = Vec::new();
    for (path, (bundle, bytes)) in files {
        let current = commit::read_file(repo, base, &format!("{root}/{path}"));
        if current.as_deref() != Some(bytes.as_slice()) {
            changed.push(bundle.clone());
        }
    }
    changed.sort();
    changed
}
