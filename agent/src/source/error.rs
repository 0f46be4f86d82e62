//! Errors of the source stage, and how a library error (gix's, with its chain of causes) becomes text we may
//! print: every message is scrubbed of secrets and names the repository without credentials.

use std::path::PathBuf;

use super::auth;
use crate::secret::Scrubber;

/// Errors of the source stage. Every message is scrubbed of secrets and names the URL (without credentials).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Credentials could not be read.
    #[error(transparent)]
    Auth(#[from] auth::Error),
    /// The server refused our credentials.
    #[error(
        "authentication to {url} failed: check the token (--git-token-file / OUTPOST_GIT_TOKEN) and --git-username"
    )]
    Unauthorized {
        /// The repository URL, without credentials.
        url: String,
    },
    /// The server or network could not be reached, or the conversation failed.
    #[error("cannot reach {url}: {reason}")]
    Connect {
        /// The repository URL, without credentials.
        url: String,
        /// What went wrong, scrubbed.
        reason: String,
    },
    /// A Git operation made no progress for `--git-timeout`: abandoned, tried again at the next poll.
    #[error("{url} stalled: no progress for {}s (--git-timeout); abandoned, trying again at the next poll", .after.as_secs())]
    Stalled {
        /// The repository URL, without credentials.
        url: String,
        /// The limit that passed.
        after: std::time::Duration,
    },
    /// The server asked us to wait (429/503), or `--git-max-requests-per-minute` was reached: nothing was sent.
    #[error("not contacting {url} yet: {reason}")]
    Throttled {
        /// The repository URL, without credentials.
        url: String,
        /// Why and for how long.
        reason: String,
    },
    /// The ref does not exist on the remote or in the local repository.
    #[error("{reference} not found in {url}: check --git-ref")]
    RefNotFound {
        /// The repository URL, without credentials.
        url: String,
        /// The ref as configured.
        reference: String,
    },
    /// Receiving objects failed after the ref was found.
    #[error("fetching {reference} from {url} failed: {reason}")]
    Fetch {
        /// The repository URL, without credentials.
        url: String,
        /// The ref as configured.
        reference: String,
        /// What went wrong, scrubbed.
        reason: String,
    },
    /// The cache or local repository could not be opened or created.
    #[error("cannot open repository {path}: {reason}")]
    Open {
        /// The repository directory.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The local repository's path is absent (removable media unplugged, or its mount point empty): the last
    /// applied state stays and nothing is pruned until it returns.
    #[error(
        "local repository {path} is not there (removable media unplugged or not mounted): keeping the last applied state until it returns"
    )]
    Unavailable {
        /// The repository directory.
        path: PathBuf,
    },
    /// Objects of the commit could not be read.
    #[error("cannot read {path} at commit {commit}: {reason}")]
    Read {
        /// The commit.
        commit: String,
        /// The path inside the repository.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The commit (or the fetch of it) broke a cap: nothing of it is read further.
    #[error(transparent)]
    Limit(#[from] super::limits::Exceeded),
    /// The commit or tag failed signature verification (`--verify`): nothing of it is read further.
    #[error(transparent)]
    Verify(#[from] super::verify::Error),
    /// Shutdown was requested while talking to the server.
    #[error("interrupted by shutdown")]
    Interrupted,
}

impl Error {
    /// The kind of failure as a metric label value: short, snake_case, from a fixed set.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Auth(e) => e.metric_label(),
            Error::Unauthorized { .. } => "git_unauthorized",
            Error::Connect { .. } => "git_connect",
            Error::Stalled { .. } => "git_timeout",
            Error::Throttled { .. } => "git_throttled",
            Error::RefNotFound { .. } => "git_ref_not_found",
            Error::Fetch { .. } => "git_fetch",
            Error::Open { .. } => "git_open",
            Error::Unavailable { .. } => "source_unavailable",
            Error::Read { .. } => "git_read",
            Error::Limit(_) => "git_limit",
            Error::Verify(e) => e.metric_label(),
            Error::Interrupted => "interrupted",
        }
    }
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether `text` names HTTP status `code` as a number of its own: not inside a longer number, and not as a
/// port (`127.0.0.1:40115` holds "401" and once made a stopped server look like refused credentials).
pub fn names_status(text: &str, code: &str) -> bool {
    text.match_indices(code).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + code.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit() || c == ':') && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

/// Render an error with its causes, scrubbed.
pub fn describe(err: &dyn std::error::Error, scrubber: &Scrubber) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    scrubber.scrub(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_code_is_told_from_a_port_or_a_longer_number() {
        assert!(names_status("http status client error (401 unauthorized)", "401"));
        assert!(names_status("server answered 403", "403"));
        assert!(!names_status(
            "cannot reach https://127.0.0.1:40115/r.git: refused",
            "401"
        ));
        assert!(!names_status("https://127.0.0.1:38403/r.git", "403"));
        assert!(!names_status("http://h:401/r.git", "401"));
        assert!(!names_status("id 14013", "401"));
    }

    #[test]
    fn metric_labels_are_short_snake_case() {
        let errors = [
            Error::Unauthorized { url: "u".into() },
            Error::Connect {
                url: "u".into(),
                reason: "r".into(),
            },
            Error::Interrupted,
        ];
        for e in errors {
            let label = e.metric_label();
            assert!(
                label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{label}"
            );
        }
    }
}
