//! git's allowed-signers file (`gpg.ssh.allowedSignersFile`, ssh-keygen's ALLOWED SIGNERS format): one key a
//! line, `principals [options] keytype base64 [comment]`, principals a comma-separated list of patterns (`*`,
//! `?`, `!negation`), options `namespaces="..."`, `valid-after="..."`, `valid-before="..."` and
//! `cert-authority` (certificates are not supported: such lines never match). Times are `YYYYMMDD[HHMM[SS]]`,
//! read as UTC with or without a trailing `Z`.

use std::path::{Path, PathBuf};

use ssh_key::PublicKey;

/// Why the allowed-signers file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file cannot be read.
    #[error("cannot read the allowed signers file {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    /// A line is not in the format.
    #[error(
        "{path}:{line}: {reason}; the format is `principals [options] keytype base64-key` (see ssh-keygen(1), ALLOWED SIGNERS)"
    )]
    Line {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// One line of the file.
#[derive(Debug, Clone)]
pub struct Signer {
    /// Principal patterns.
    pub principals: Vec<String>,
    /// The key.
    pub key: PublicKey,
    /// `namespaces="..."` patterns (empty: any).
    pub namespaces: Vec<String>,
    /// `valid-after`, seconds since the epoch.
    pub valid_after: Option<i64>,
    /// `valid-before`, seconds since the epoch.
    pub valid_before: Option<i64>,
    /// `cert-authority`: the key signs certificates (unsupported; never matches a plain key).
    pub cert_authority: bool,
}

/// The whole file.
#[derive(Debug, Clone, Default)]
pub struct AllowedSigners(pub Vec<Signer>);

impl AllowedSigners {
    /// Read and parse `path`.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Read {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Self::parse(&text).map_err(|(line, reason)| Error::Line {
            path: path.to_owned(),
            line,
            reason,
        })
    }

    /// Parse the text of a file; on error the 1-based line number and why.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut signers = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            signers.push(parse_line(line).map_err(|e| (n + 1, e))?);
        }
        Ok(AllowedSigners(signers))
    }

    /// Principals that `key` may sign as in `namespace` at `time` (seconds since the epoch): the patterns of
    /// every matching line (a pattern may be a glob).
    pub fn principals_for(&self, key: &ssh_key::public::KeyData, namespace: &str, time: i64) -> Vec<String> {
        self.0
            .iter()
            .filter(|s| !s.cert_authority && s.key.key_data() == key)
            .filter(|s| s.namespaces.is_empty() || matches_list(namespace, &s.namespaces))
            .filter(|s| s.valid_after.is_none_or(|t| time >= t))
            .filter(|s| s.valid_before.is_none_or(|t| time <= t))
            .flat_map(|s| s.principals.iter().cloned())
            .collect()
    }

    /// Whether `key` is listed at all (at any time, in any namespace).
    pub fn lists(&self, key: &ssh_key::public::KeyData) -> bool {
        self.0.iter().any(|s| s.key.key_data() == key)
    }

    /// Whether `principal` is among the patterns `key` may sign as in `namespace` at `time`.
    pub fn allows(
        &self,
        principal: &str,
        key: &ssh_key::public::KeyData,
        namespace: &str,
        time: i64,
    ) -> bool {
        self.0
            .iter()
            .filter(|s| !s.cert_authority && s.key.key_data() == key)
            .filter(|s| s.namespaces.is_empty() || matches_list(namespace, &s.namespaces))
            .filter(|s| s.valid_after.is_none_or(|t| time >= t))
            .filter(|s| s.valid_before.is_none_or(|t| time <= t))
            .any(|s| matches_list(principal, &s.principals))
    }
}

/// Split off the first field, honouring double quotes.
fn field(s: &str) -> (&str, &str) {
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return (&s[..i], s[i..].trim_start()),
            _ => {}
        }
    }
    (s, "")
}

fn parse_line(line: &str) -> Result<Signer, String> {
    let (principals, rest) = field(line);
    let principals: Vec<String> = principals
        .trim_matches('"')
        .split(',')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    if principals.is_empty() {
        return Err("no principals".into());
    }
    let (next, after) = field(rest);
    let is_key_type = |t: &str| t.starts_with("ssh-") || t.starts_with("ecdsa-") || t.starts_with("sk-");
    let (options, key) = if is_key_type(next) {
        ("", rest)
    } else {
        (next, after)
    };
    let (key_type, after) = field(key);
    let (base64, _comment) = field(after);
    if key_type.is_empty() || base64.is_empty() {
        return Err("no key".into());
    }
    let key = PublicKey::from_openssh(&format!("{key_type} {base64}"))
        .map_err(|e| format!("the key does not parse ({e})"))?;
    let mut signer = Signer {
        principals,
        key,
        namespaces: Vec::new(),
        valid_after: None,
        valid_before: None,
        cert_authority: false,
    };
    for option in split_options(options) {
        let (name, value) = option.split_once('=').unwrap_or((option, ""));
        let value = value.trim_matches('"');
        match name.to_ascii_lowercase().as_str() {
            "cert-authority" => signer.cert_authority = true,
            "namespaces" => signer.namespaces = value.split(',').map(str::to_owned).collect(),
            "valid-after" => signer.valid_after = Some(parse_time(value)?),
            "valid-before" => signer.valid_before = Some(parse_time(value)?),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(signer)
}

/// Options are separated by commas outside quotes.
fn split_options(options: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut start) = (false, 0);
    for (i, c) in options.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&options[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < options.len() {
        out.push(&options[start..]);
    }
    out
}

/// `YYYYMMDD[HHMM[SS]][Z]` as seconds since the epoch (UTC).
fn parse_time(value: &str) -> Result<i64, String> {
    let digits = value.trim_end_matches(['Z', 'z']);
    let bad = || format!("{value:?} is not a time (YYYYMMDD[HHMM[SS]][Z])");
    if !digits.bytes().all(|b| b.is_ascii_digit()) || ![8, 12, 14].contains(&digits.len()) {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| {
        digits
            .get(r)
            .map_or(Ok(0), |s| s.parse::<i16>().map_err(|_| bad()))
    };
    let year = digits[..4].parse::<i16>().map_err(|_| bad())?;
    let date = jiff::civil::date(year, num(4..6)? as i8, num(6..8)? as i8);
    let time = jiff::civil::time(num(8..10)? as i8, num(10..12)? as i8, num(12..14)? as i8, 0);
    let at = jiff::civil::DateTime::from_parts(date, time)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|_| bad())?;
    Ok(at.timestamp().as_second())
}

/// ssh's pattern lists: a name matches when a pattern matches it and no `!pattern` does.
fn matches_list(name: &str, patterns: &[String]) -> bool {
    let mut matched = false;
    for p in patterns {
        if let Some(negated) = p.strip_prefix('!') {
            if glob(negated.as_bytes(), name.as_bytes()) {
                return false;
            }
        } else if glob(p.as_bytes(), name.as_bytes()) {
            matched = true;
        }
    }
    matched
}

/// `*` and `?` globbing.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&pattern[1..], name) || (!name.is_empty() && glob(pattern, &name[1..])),
        (Some(b'?'), Some(_)) => glob(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => glob(&pattern[1..], &name[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_with_options_quotes_globs_and_validity_parse_and_match() {
        let pair = ssh_key::private::Ed25519Keypair::from_seed(&[3; 32]);
        #[allow(non_snake_case)]
        let KEY = PublicKey::from(pair.public).to_openssh().unwrap();
        let text = format!(
            "# comment\n\nedge-1 {KEY} old key\n\"p+edge-*,!p+edge-9\" namespaces=\"git,file\",valid-after=\"20240101\",valid-before=\"20250101120000Z\" {KEY}\n"
        );
        let signers = AllowedSigners::parse(&text).unwrap();
        assert_eq!(signers.0.len(), 2);
        let key = signers.0[0].key.key_data().clone();
        let in_2024 = 1_718_000_000;
        assert!(signers.allows("edge-1", &key, "git", 0));
        assert!(signers.allows("p+edge-2", &key, "git", in_2024));
        assert!(!signers.allows("p+edge-9", &key, "git", in_2024), "negated");
        assert!(!signers.allows("p+edge-2", &key, "git", 1_800_000_000), "expired");
        assert!(
            !signers.allows("p+edge-2", &key, "git", 1_600_000_000),
            "not yet valid"
        );
        assert!(!signers.allows("p+edge-2", &key, "other", in_2024), "namespace");
        assert_eq!(signers.principals_for(&key, "git", 0), ["edge-1"]);
        assert!(AllowedSigners::parse("edge-1 ssh-ed25519 notbase64").is_err());
        assert!(AllowedSigners::parse(&format!("edge-1 bogus=\"x\" {KEY}")).is_err());
        assert_eq!(parse_time("19700102").unwrap(), 86_400);
        assert!(parse_time("2024").is_err());
    }
}
