//! Secret values (Git tokens, passwords) and the scrubbing of text that might contain them.
//!
//! A [`Secret`] has no `Display` and a `Debug` that prints `[redacted]`, so it cannot reach a log line by
//! accident. Text that comes back from libraries (gix errors can echo what they were given) passes through
//! [`Scrubber::scrub`] before we log it or put it into an error, status file or Event.

use std::fmt;
use std::sync::{Arc, RwLock};

/// What replaces a secret in any text we emit.
pub const REDACTED: &str = "[redacted]";

/// A credential value. Read it with [`Secret::expose`] only where it is handed to a transport.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a value; surrounding whitespace (the trailing newline of a mounted file) is not part of it.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into().trim().to_owned())
    }

    /// The raw value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// An empty secret is the same as none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Remembers every secret value seen so far and removes them from text.
///
/// Shared (cheaply cloned) between the source, which learns the secrets, and everything that formats errors.
#[derive(Clone, Default)]
pub struct Scrubber {
    /// Values to remove; a rotated token is added, the old one kept so late errors are still scrubbed.
    known: Arc<RwLock<Vec<String>>>,
}

/// Values shorter than this are not scrubbed: replacing every `a` in a message would make it unreadable, and a
/// credential that short protects nothing anyway.
const MIN_SCRUB_LEN: usize = 4;

impl Scrubber {
    /// Start remembering `secret`.
    pub fn learn(&self, secret: &Secret) {
        if secret.0.len() < MIN_SCRUB_LEN {
            return;
        }
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        if !known.iter().any(|k| k == &secret.0) {
            known.push(secret.0.clone());
            // Longest first, so a secret that contains another is removed whole.
            known.sort_by_key(|k| std::cmp::Reverse(k.len()));
        }
    }

    /// `text` with every known secret replaced by [`REDACTED`], and credentials in URLs removed.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = strip_url_userinfo(text);
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        for k in known.iter() {
            if out.contains(k.as_str()) {
                out = out.replace(k.as_str(), REDACTED);
            }
        }
        out
    }
}

/// Remove `user:password@` from anything that looks like a URL (`scheme://user:pw@host`), keeping the user.
pub fn strip_url_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        // The authority ends at the first '/', whitespace or quote.
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon]);
                        out.push(':');
                        out.push_str(REDACTED);
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_a_secret_never_shows_the_value() {
        let s = Secret::new("hunter2-token\n");
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(s.expose(), "hunter2-token");
    }

    #[test]
    fn scrub_removes_every_learned_secret() {
        let scrubber = Scrubber::default();
        scrubber.learn(&Secret::new("s3cr3t-value"));
        scrubber.learn(&Secret::new("s3cr3t-value-longer"));
        let text = "failed: s3cr3t-value-longer and s3cr3t-value";
        assert_eq!(scrubber.scrub(text), "failed: [redacted] and [redacted]");
    }

    #[test]
    fn scrub_strips_passwords_from_urls_but_keeps_the_user() {
        let text = "fetch https://git:tok3n@example.test:8443/repo.git failed; see http://plain/x";
        assert_eq!(
            strip_url_userinfo(text),
            "fetch https://git:[redacted]@example.test:8443/repo.git failed; see http://plain/x"
        );
        assert_eq!(strip_url_userinfo("ssh://git@h/r"), "ssh://git@h/r");
    }

    #[test]
    fn short_values_are_not_scrubbed() {
        let scrubber = Scrubber::default();
        scrubber.learn(&Secret::new("ab"));
        assert_eq!(scrubber.scrub("abc"), "abc");
    }
}
