//! The repository location given by `--git-url`: which transport it needs and how to print it safely.
//!
//! Accepted forms: `https://`/`http://`, `ssh://`, scp-like `git@host:path`, `file://` and plain local paths.
//! Credentials written into an HTTP URL (`https://user:token@host/...`) are moved out of it, so the URL we keep
//! (and may print) never carries a password.

use std::fmt;
use std::path::PathBuf;

use gix::bstr::ByteSlice;

use crate::secret::Secret;

/// Errors from reading `--git-url`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No URL was given.
    #[error("--git-url (OUTPOST_GIT_URL) is required")]
    Missing,
    /// The text is not a URL or path gix understands.
    #[error("--git-url {url:?} is not a valid Git URL: {reason}")]
    Invalid {
        /// The URL with any password removed.
        url: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A scheme we do not speak (git://, ext::...).
    #[error(
        "--git-url scheme {scheme:?} is not supported: use https://, ssh://, git@host:path, file:// or a path"
    )]
    UnsupportedScheme {
        /// The scheme as written.
        scheme: String,
    },
    /// Credentials would cross the network in clear text.
    #[error(
        "--git-url {url} is plain http:// but credentials are configured: they would cross the network unencrypted; use https:// (or set --git-allow-insecure-http for a trusted link)"
    )]
    InsecureCredentials {
        /// The URL without credentials.
        url: String,
    },
}

impl Error {
    /// The kind of failure as a metric label value: short, snake_case, from a fixed set.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Missing => "git_url_missing",
            Error::Invalid { .. } => "git_url_invalid",
            Error::UnsupportedScheme { .. } => "git_url_scheme",
            Error::InsecureCredentials { .. } => "git_url_insecure",
        }
    }
}

/// Where the repository lives.
#[derive(Clone)]
pub enum RepoUrl {
    /// Reached over the network (HTTP(S) or SSH); fetched into the cache.
    Remote {
        /// The URL without credentials.
        url: gix::Url,
        /// A username and password that were embedded in the URL, if any.
        embedded: Option<(String, Secret)>,
    },
    /// A repository on a local filesystem (`file://` or a path), read in place without a fetch.
    Local(PathBuf),
}

impl RepoUrl {
    /// Whether this is a plain `http://` URL (no TLS).
    pub fn is_plain_http(&self) -> bool {
        matches!(self, RepoUrl::Remote { url, .. } if url.scheme == gix::url::Scheme::Http)
    }

    /// Whether credentials were written into the URL.
    pub fn has_embedded_credentials(&self) -> bool {
        matches!(
            self,
            RepoUrl::Remote {
                embedded: Some(_),
                ..
            }
        )
    }

    /// Parse `--git-url`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let redacted = crate::secret::strip_url_userinfo(text);
        let mut url = gix::url::parse(text.as_bytes().as_bstr()).map_err(|e| {
            let (url, reason) = redact_unparsed(text, &e.to_string());
            Error::Invalid { url, reason }
        })?;
        match url.scheme {
            gix::url::Scheme::File => {
                let path = gix::path::from_bstring(url.path.clone()).map_err(|e| Error::Invalid {
                    url: redacted,
                    reason: e.to_string(),
                })?;
                Ok(RepoUrl::Local(path))
            }
            gix::url::Scheme::Http | gix::url::Scheme::Https => {
                let embedded = match (url.user().map(str::to_owned), url.password().map(str::to_owned)) {
                    (Some(user), Some(password)) => Some((user, Secret::new(password))),
                    _ => None,
                };
                if embedded.is_some() {
                    url.set_user(None);
                    url.set_password(None);
                }
                Ok(RepoUrl::Remote { url, embedded })
            }
            gix::url::Scheme::Ssh => {
                // ssh authenticates with keys and never sends a URL password: drop it, so it cannot be shown.
                url.set_password(None);
                Ok(RepoUrl::Remote { url, embedded: None })
            }
            other => Err(Error::UnsupportedScheme {
                scheme: other.as_str().to_owned(),
            }),
        }
    }

    /// True for HTTP(S) URLs, where tokens and CA files apply.
    pub fn is_http(&self) -> bool {
        matches!(self, RepoUrl::Remote { url, .. } if matches!(url.scheme, gix::url::Scheme::Http | gix::url::Scheme::Https))
    }

    /// True for SSH URLs, where key files and known_hosts apply.
    pub fn is_ssh(&self) -> bool {
        matches!(self, RepoUrl::Remote { url, .. } if url.scheme == gix::url::Scheme::Ssh)
    }
}

/// A `--git-url` that does not parse, as it is safe to show, and the parser's `message` likewise: `(url,
/// reason)`. A token pasted unencoded (a `/` from base64, a blank) ends the URL's authority early, so
/// [`crate::secret::strip_url_userinfo`] alone can miss it, and the parser's message quotes the input, escaped
/// its own way. So when the text may hold a password at all (a `:` then an `@` after `://`), everything from
/// that `:` to the last `@` is hidden and the parser's message is left out.
fn redact_unparsed(text: &str, message: &str) -> (String, String) {
    let parts = text.split_once("://").and_then(|(scheme, rest)| {
        let (userinfo, host) = rest.rsplit_once('@')?;
        let (user, _) = userinfo.split_once(':')?;
        Some((scheme, user, host))
    });
    match parts {
        Some((scheme, user, host)) => (
            format!("{scheme}://{user}:{}@{host}", crate::secret::REDACTED),
            "it does not parse as a URL (the parser's message is left out: it would repeat the credentials)"
                .to_owned(),
        ),
        None => (
            crate::secret::strip_url_userinfo(text),
            crate::secret::strip_url_userinfo(message),
        ),
    }
}

impl fmt::Display for RepoUrl {
    /// The URL as it is safe to log: never with a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RepoUrl::Remote { url, .. } => {
                f.write_str(&crate::secret::strip_url_userinfo(&url.to_bstring().to_string()))
            }
            RepoUrl::Local(path) => write!(f, "{}", path.display()),
        }
    }
}

impl fmt::Debug for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RepoUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_credentials_are_moved_out_of_the_url() {
        let url = RepoUrl::parse("https://bot:s3cret-token@git.example.test/org/repo.git").unwrap();
        assert!(url.is_http());
        let RepoUrl::Remote { embedded, .. } = &url else {
            panic!("not remote")
        };
        let (user, password) = embedded.as_ref().unwrap();
        assert_eq!(user, "bot");
        assert_eq!(password.expose(), "s3cret-token");
        assert!(!url.to_string().contains("s3cret"), "{url}");
        assert!(url.to_string().starts_with("https://git.example.test"), "{url}");
    }

    #[test]
    fn scp_like_and_ssh_urls_are_ssh() {
        assert!(
            RepoUrl::parse("git@git.example.test:org/repo.git")
                .unwrap()
                .is_ssh()
        );
        assert!(
            RepoUrl::parse("ssh://git@127.0.0.1:2222/srv/repo.git")
                .unwrap()
                .is_ssh()
        );
    }

    #[test]
    fn file_urls_and_paths_are_local() {
        for text in ["file:///srv/git/repo.git", "/srv/git/repo.git"] {
            match RepoUrl::parse(text).unwrap() {
                RepoUrl::Local(p) => assert_eq!(p, PathBuf::from("/srv/git/repo.git")),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_url_that_does_not_parse_never_shows_its_password() {
        // A token with `/` (base64) or a blank, pasted unencoded: the URL does not parse, and the error must
        // not quote the token back (found by the `url` fuzz target).
        for (text, password) in [
            (
                "https://bot:ab/cd+ef==@git.example.test/org/repo.git",
                "ab/cd+ef==",
            ),
            ("http://087.0.0:scret-toke @ \0s.it", "scret-toke "),
        ] {
            let err = RepoUrl::parse(text).unwrap_err();
            for shown in [err.to_string(), format!("{err:?}")] {
                assert!(!shown.contains(password.trim()), "{shown}");
                assert!(
                    !shown.contains(&format!("{:?}", password.trim()).replace('"', "")),
                    "{shown}"
                );
            }
        }
    }

    #[test]
    fn an_ssh_url_never_shows_a_password() {
        // ssh authenticates with keys; a password in the URL (with a quote, which ends what the log scrubber
        // reads as the authority) was printed whole (found by the `url` fuzz target).
        let url = RepoUrl::parse("ssh://git:it's-s3cret@git.example.test/org/repo.git").unwrap();
        assert!(url.is_ssh());
        assert!(!url.to_string().contains("s3cret"), "{url}");
        assert!(!format!("{url:?}").contains("s3cret"), "{url:?}");
    }

    #[test]
    fn git_protocol_is_refused_with_advice() {
        let err = RepoUrl::parse("git://example.test/repo.git").unwrap_err();
        assert!(err.to_string().contains("not supported"), "{err}");
    }
}
