//! [`Verifying`]: a Git [`Source`] whose every update is verified before reconcile sees it.
//!
//! After the inner source fetched (or found) the ref's commit, the keys are read from the keys directory and the
//! commit or tag is verified; a failure is the update's error, so reconcile stops before reading a file and the
//! last good state stays. A success that was already seen (same object, same key files) is remembered, so an
//! unchanged ref costs one small directory read per poll.

use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use tracing::info;

use super::error::{Error as Refusal, Result as Verification};
use super::keys::{self, Keyring};
use super::metrics::VerifyMetrics;
use super::object;
use super::policy::{Mode, Policy, Verified};
use crate::source::{Error, Result, Revision, Source, SourceFile, Update, Upstream};

/// A verification's input: the object verified and the digest of the key files.
type Seen = (gix::ObjectId, [u8; 32]);

/// A Git source whose updates must pass signature verification (when a [`Policy`] is set).
pub struct Verifying {
    /// The source that fetches.
    inner: Source,
    /// What to verify; `None`: nothing (`--verify=off`).
    policy: Option<Policy>,
    /// The followed ref as configured (`refs/tags/v1`), for messages.
    reference: String,
    /// Counts refusals and times verifications.
    metrics: Option<VerifyMetrics>,
    /// The keys parsed last, reused while the key files are unchanged.
    keys: Mutex<Option<Keyring>>,
    /// The last success: what it was (object verified, key files digest) and its result.
    last: Mutex<Option<(Seen, Verified)>>,
}

impl Verifying {
    /// `inner`, verified as `policy` says (`None`: not at all). `reference` is `--git-ref` as configured.
    pub fn new(inner: Source, policy: Option<Policy>, reference: String) -> Self {
        Verifying {
            inner,
            policy,
            reference,
            metrics: None,
            keys: Mutex::new(None),
            last: Mutex::new(None),
        }
    }

    /// Record refusals and durations in `metrics` from now on.
    pub fn with_metrics(mut self, metrics: VerifyMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The repository URL as it is safe to print.
    pub fn url(&self) -> String {
        self.inner.url()
    }

    /// Verify what `policy` asks of the update's commit (or of the tag the ref names).
    fn check(&self, policy: &Policy, update: Update) -> Verification<Verified> {
        let read_err = |e: Error| Refusal::Read {
            object: format!("{} at {}", self.reference, update.revision),
            reason: e.to_string(),
        };
        let target = self.inner.ref_target(update.revision).map_err(read_err)?;
        let (files, digest) = keys::read_files(&policy.keys_dir)?;
        if let Some((seen, verified)) = &*self.last.lock().expect("not poisoned")
            && *seen == (target, digest)
            && (policy.mode == Mode::Tag || verified.commit == update.revision)
        {
            return Ok(verified.clone());
        }
        let ring = {
            let mut cached = self.keys.lock().expect("not poisoned");
            match cached.as_ref().filter(|k| k.digest == digest) {
                Some(ring) => ring.clone(),
                None => {
                    let ring = Keyring::parse(&policy.keys_dir, files, digest)?;
                    *cached = Some(ring.clone());
                    ring
                }
            }
        };
        let repo = self.inner.cache_repo().map_err(read_err)?;
        let verified = object::verify(
            &repo,
            &ring,
            policy.mode,
            (target, update.revision),
            &self.reference,
        )?
        .expect("a policy is never off");
        info!(
            object = %verified.object,
            key = %verified.key,
            signer = verified.signer.as_deref().unwrap_or(""),
            "Signature verified"
        );
        *self.last.lock().expect("not poisoned") = Some(((target, digest), verified.clone()));
        Ok(verified)
    }
}

impl Upstream for Verifying {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn deadline(&self) -> Option<std::time::Duration> {
        self.inner.deadline()
    }

    /// The inner update, then verification: the commit reported is the verified one (for `tag`, the commit
    /// the verified tag names).
    fn update(&self, interrupt: &AtomicBool) -> Result<Update> {
        let update = self.inner.update(interrupt)?;
        let Some(policy) = &self.policy else {
            return Ok(update);
        };
        let started = std::time::Instant::now();
        let checked = self.check(policy, update);
        if let Some(m) = &self.metrics {
            m.observe(started.elapsed().as_secs_f64());
            if let Err(e) = &checked {
                m.failed(e.reason());
            }
        }
        let verified = checked?;
        Ok(Update {
            revision: verified.commit,
            ..update
        })
    }

    fn read_dir(&self, revision: Revision, dir: &str) -> Result<Option<Vec<SourceFile>>> {
        self.inner.read_dir(revision, dir)
    }

    fn history(
        &self,
        tip: Revision,
        base: Revision,
        max: usize,
        interrupt: &AtomicBool,
    ) -> Result<Option<Vec<Revision>>> {
        self.inner.history(tip, base, max, interrupt)
    }

    /// Freshness judges the inner source's history: without this the wrapper would answer "unknown" and no
    /// rewrite would ever be refused while verification is on.
    fn lineage(
        &self,
        tip: Revision,
        base: Revision,
        max: usize,
        interrupt: &AtomicBool,
    ) -> Result<crate::source::Lineage> {
        self.inner.lineage(tip, base, max, interrupt)
    }
}
