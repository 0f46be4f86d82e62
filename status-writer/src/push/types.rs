//! What a push takes and gives back: the request, extra ref updates riding with it, how it ended, and why it
//! failed. Shared by the conversation ([`super::connection`]), the pack ([`super::pack`]) and the callers, so
//! the parts of a push import these types rather than each other.

use std::path::Path;

use gix::ObjectId;
use outpost_agent::secret::Scrubber;
use outpost_agent::source::{Auth, RepoUrl};

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

/// One more ref update riding with the branch's ([`super::push_with`]); `new: None` deletes the ref.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefCommand {
    /// Full ref name.
    pub refname: String,
    /// Where it must be now (`None`: must not exist).
    pub old: Option<ObjectId>,
    /// Where it goes (`None`: deleted).
    pub new: Option<ObjectId>,
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
    /// A bounded label for metrics: the `kind` of `outpost_status_write_failures_total` (prefixed with
    /// `push_` because fetch and commit failures share that label).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Unauthorized { .. } => "push_unauthorized",
            Error::ReadOnly { .. } => "push_read_only",
            Error::Connect { .. } => "push_connect",
            Error::Protocol { .. } => "push_protocol",
            Error::Pack { .. } => "push_pack",
            Error::Setup { .. } => "push_setup",
            Error::Interrupted => "interrupted",
        }
    }
}

/// Result of a push.
pub type Result<T, E = Error> = std::result::Result<T, E>;
