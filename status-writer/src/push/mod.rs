//! `git push` of one commit to one branch, fast-forward only, over gix's transport (gix has no porcelain push).
//!
//! Data enters as a [`PushRequest`]: the tip the commit was built on, the commit, and the exact objects the
//! remote lacks. We connect to `git-receive-pack` (HTTP(S) smart protocol, SSH, or the local `git` for
//! `file://`), read the ref advertisement and compare the branch's tip with `old`: when another writer moved it,
//! we answer [`PushOutcome::Rejected`] without sending anything. Otherwise we send the update command, then a
//! pack built by [`pack`], and read the server's `report-status` ([`report`]). Never forces.
//!
//! Connection settings (CA bundle, user agent, credentials callback, ssh command) are the agent's
//! [`outpost_agent::source::transport`], so fetch and push authenticate the same way. Blocking: run it in
//! `spawn_blocking`.

mod connection;
mod pack;
mod report;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use gix::ObjectId;
use outpost_agent::secret::Scrubber;
use outpost_agent::source::{Auth, RepoUrl, transport};

use connection::{advertise, failure, hang_up, send, tip_of};

/// What to push.
pub struct PushRequest<'a> {
    /// The control repository (HTTP(S), SSH, or a local path pushed to through `file://`).
    pub url: &'a RepoUrl,
    /// Token, CA bundle, SSH key and known_hosts.
    pub auth: &'a Auth,
    /// Removes credentials from every error we return.
    pub scrubber: &'a Scrubber,
    /// Short branch name (`main` means `refs/heads/main`).
    pub branch: &'a str,
    /// The tip `new` was built on; `None` when the branch must not exist yet (it is created).
    pub old: Option<ObjectId>,
    /// The commit to push.
    pub new: ObjectId,
    /// Where `new` and `objects` are.
    pub repo: &'a gix::Repository,
    /// Exactly the objects the remote lacks: the commit, its new trees and blobs.
    pub objects: &'a [ObjectId],
    /// Scratch space (the SSH key copy).
    pub cache_dir: &'a Path,
}

/// How a push ended, short of an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// The branch now points at `new`.
    Updated,
    /// The branch is not at `old` (someone else pushed first). Nothing changed; fetch the new tip, rebuild the
    /// commit on it and try again.
    Rejected {
        /// The branch's tip as the server advertised it: `None` when the branch does not exist or the server
        /// could not be asked again after refusing the update.
        remote_tip: Option<ObjectId>,
        /// Why, for logs.
        reason: String,
    },
}

/// Errors of a push. Every message names the URL without credentials and is scrubbed of secrets.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server refused our credentials.
    #[error(
        "authentication to {url} failed while pushing: check the token (--git-token-file / OUTPOST_GIT_TOKEN) and --git-username, or the SSH key"
    )]
    Unauthorized {
        /// The repository URL, without credentials.
        url: String,
    },
    /// The server lets us read but not push (HTTP 403, receive-pack disabled).
    #[error(
        "{url} does not accept pushes from us: {reason}; the credentials need write access to the repository"
    )]
    ReadOnly {
        /// The repository URL, without credentials.
        url: String,
        /// What the server said, scrubbed.
        reason: String,
    },
    /// The server could not be reached, or the ref advertisement failed.
    #[error("cannot reach {url} to push: {reason}")]
    Connect {
        /// The repository URL, without credentials.
        url: String,
        /// What went wrong, scrubbed.
        reason: String,
    },
    /// The conversation after the advertisement failed, or the server refused the update for a reason other
    /// than a moved branch (a hook, a full disk, a broken pack).
    #[error("pushing to {url} failed: {reason}")]
    Protocol {
        /// The repository URL, without credentials.
        url: String,
        /// What went wrong, with the server's own text, scrubbed.
        reason: String,
    },
    /// The objects to send could not be read or packed.
    #[error("cannot build the pack to push: {reason}")]
    Pack {
        /// What went wrong.
        reason: String,
    },
    /// Credentials, CA bundle or SSH key could not be prepared.
    #[error("cannot prepare the connection to {url}: {reason}")]
    Setup {
        /// The repository URL, without credentials.
        url: String,
        /// What went wrong, scrubbed.
        reason: String,
    },
    /// Shutdown was requested.
    #[error("push interrupted by shutdown")]
    Interrupted,
}

impl Error {
    /// A bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Unauthorized { .. } => "unauthorized",
            Error::ReadOnly { .. } => "read_only",
            Error::Connect { .. } => "connect",
            Error::Protocol { .. } => "protocol",
            Error::Pack { .. } => "pack",
            Error::Setup { .. } => "setup",
            Error::Interrupted => "interrupted",
        }
    }
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Push `req.new` to `req.branch` if the branch is still at `req.old`. Blocking; never force-pushes.
pub fn push(req: &PushRequest<'_>, interrupt: &AtomicBool) -> Result<PushOutcome> {
    let shown = req.url.to_string();
    let refname = format!("refs/heads/{}", req.branch);
    gix::refs::FullName::try_from(refname.as_str()).map_err(|e| Error::Setup {
        url: shown.clone(),
        reason: format!("{:?} is not a valid branch name: {e}", req.branch),
    })?;
    stop_if(interrupt)?;
    let pack = pack::build(req.repo, req.objects)?;

    let (mut connection, advertisement) = advertise(req, &shown, interrupt)?;
    let tip = tip_of(&advertisement.refs, &refname);
    if tip != req.old {
        hang_up(&mut connection);
        let reason = match tip {
            Some(tip) => format!("{refname} is at {tip} on the server, not where our commit was built"),
            None => format!("{refname} does not exist on the server any more"),
        };
        return Ok(PushOutcome::Rejected {
            remote_tip: tip,
            reason,
        });
    }
    let capabilities = advertisement.capabilities;
    if !capabilities.contains("report-status") {
        hang_up(&mut connection);
        return Err(Error::Protocol {
            url: shown,
            reason: "the server does not offer report-status, so the result of a push could not be known"
                .into(),
        });
    }
    let mut wanted = vec!["report-status".to_owned()];
    if capabilities.contains("quiet") {
        wanted.push("quiet".to_owned());
    }
    if capabilities.contains("agent") {
        wanted.push(format!("agent={}", transport::USER_AGENT));
    }
    stop_if(interrupt)?;
    tracing::debug!(url = %shown, branch = req.branch, objects = req.objects.len(), bytes = pack.len(), "Pushing");
    let body = report::request(req.old, req.new, &refname, &wanted, &pack);
    let lines = send(&mut connection, &body).map_err(|e| {
        failure(&*e, &shown, req.scrubber, interrupt, |url, reason| {
            Error::Protocol { url, reason }
        })
    })?;
    drop(connection);

    match report::verdict(&lines, &refname) {
        report::Verdict::Updated => Ok(PushOutcome::Updated),
        report::Verdict::Failed(reason) => Err(Error::Protocol {
            url: shown,
            reason: req.scrubber.scrub(&reason),
        }),
        report::Verdict::Refused(reason) => {
            let reason = req.scrubber.scrub(&reason);
            // Ask again where the branch is: a moved branch is a lost race, anything else is a real refusal.
            let now = advertise(req, &shown, interrupt)
                .ok()
                .map(|(mut connection, advertisement)| {
                    hang_up(&mut connection);
                    tip_of(&advertisement.refs, &refname)
                });
            let moved = matches!(now, Some(tip) if tip != req.old);
            if moved || report::is_race(&reason) {
                Ok(PushOutcome::Rejected {
                    remote_tip: now.flatten(),
                    reason: format!("the server refused to update {refname}: {reason}"),
                })
            } else {
                Err(Error::Protocol {
                    url: shown,
                    reason: format!("the server refused to update {refname}: {reason}"),
                })
            }
        }
    }
}

/// Stop early when shutdown was requested.
fn stop_if(interrupt: &AtomicBool) -> Result<()> {
    if interrupt.load(Ordering::Relaxed) {
        return Err(Error::Interrupted);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
