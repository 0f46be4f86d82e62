//! Git credentials: HTTP token or basic auth, SSH key and known_hosts, and a custom CA bundle.
//!
//! Files are read again on every connection, so a rotated Kubernetes Secret (mounted files swap under us)
//! takes effect at the next poll without a restart. Values are learned by the [`Scrubber`] as soon as they
//! are read, so no error formatted after that can leak them.

use std::path::{Path, PathBuf};

use crate::secret::{Scrubber, Secret};

/// Errors reading credential files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configured credential file could not be read.
    #[error("cannot read {what} file {path}: {source}")]
    Read {
        /// Which flag named the file.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file exists but holds no value.
    #[error("{what} file {path} is empty")]
    Empty {
        /// Which flag named the file.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
}

impl Error {
    /// The kind of failure as a metric label value: short, snake_case, from a fixed set.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Read { .. } => "credentials_unreadable",
            Error::Empty { .. } => "credentials_empty",
        }
    }
}

/// How to authenticate to the Git server.
#[derive(Clone, Debug, Default)]
pub struct Auth {
    /// Username sent with a token over HTTP (`--git-username`, default `git`).
    pub username: String,
    /// File holding the token or password (`--git-token-file`), re-read on every connection.
    pub token_file: Option<PathBuf>,
    /// A token given directly (`OUTPOST_GIT_TOKEN`); the file wins when both are set.
    pub token: Option<Secret>,
    /// PEM bundle of extra CA certificates for HTTPS (`--git-ca-file`).
    pub ca_file: Option<PathBuf>,
    /// Trust `ca_file` alone, not the system's CAs (`--git-ca-only`).
    pub ca_only: bool,
    /// Private key for SSH (`--git-ssh-key-file`).
    pub ssh_key_file: Option<PathBuf>,
    /// known_hosts for SSH (`--git-known-hosts-file`); host keys are checked strictly.
    pub known_hosts_file: Option<PathBuf>,
    /// `--git-timeout`: the longest a Git operation may go without progress (HTTP reads, SSH keepalives, the
    /// deadline around blocking work); `None` leaves the library defaults.
    pub timeout: Option<std::time::Duration>,
}

impl Auth {
    /// The username and password to answer an HTTP authentication challenge with, if any are configured.
    pub fn http_credentials(
        &self,
        embedded: Option<&(String, Secret)>,
        scrubber: &Scrubber,
    ) -> Result<Option<(String, Secret)>, Error> {
        let token = match &self.token_file {
            Some(path) => Some(read_secret("--git-token-file", path)?),
            None => self.token.clone().filter(|t| !t.is_empty()),
        };
        let creds = match (token, embedded) {
            (Some(token), _) => Some((self.username.clone(), token)),
            (None, Some((user, password))) => Some((user.clone(), password.clone())),
            (None, None) => None,
        };
        if let Some((_, secret)) = &creds {
            scrubber.learn(secret);
        }
        Ok(creds)
    }

    /// The CA bundle's PEM bytes, when one is configured.
    pub fn ca_bundle(&self) -> Result<Option<Vec<u8>>, Error> {
        match &self.ca_file {
            Some(path) => std::fs::read(path).map(Some).map_err(|source| Error::Read {
                what: "--git-ca-file",
                path: path.clone(),
                source,
            }),
            None => Ok(None),
        }
    }
}

/// Read a secret file, trimming the trailing newline most tools write.
fn read_secret(what: &'static str, path: &Path) -> Result<Secret, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        what,
        path: path.to_owned(),
        source,
    })?;
    let secret = Secret::new(text);
    if secret.is_empty() {
        return Err(Error::Empty {
            what,
            path: path.to_owned(),
        });
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_is_reread_on_every_call() {
        let dir = std::env::temp_dir().join(format!("outpost-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "first-token\n").unwrap();
        let auth = Auth {
            username: "git".into(),
            token_file: Some(file.clone()),
            ..Default::default()
        };
        let scrubber = Scrubber::default();
        let (user, t) = auth.http_credentials(None, &scrubber).unwrap().unwrap();
        assert_eq!((user.as_str(), t.expose()), ("git", "first-token"));
        std::fs::write(&file, "second-token").unwrap();
        let (_, t) = auth.http_credentials(None, &scrubber).unwrap().unwrap();
        assert_eq!(t.expose(), "second-token");
        assert_eq!(
            scrubber.scrub("first-token second-token"),
            "[redacted] [redacted]"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_token_file_names_the_file() {
        let auth = Auth {
            token_file: Some("/nonexistent/outpost/token".into()),
            ..Default::default()
        };
        let err = auth.http_credentials(None, &Scrubber::default()).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/outpost/token"), "{err}");
    }
}
