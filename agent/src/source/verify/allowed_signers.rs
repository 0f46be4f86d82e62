//! Git's allowed-signers file (`gpg.ssh.allowedSignersFile`, the format of `ssh-keygen -Y verify -f`): which
//! SSH keys may sign, for whom, and when.
//!
//! One entry a line: `principals [options] keytype base64-key [comment]`; `#` starts a comment line. Principals
//! and namespaces are ssh pattern lists (`*`, `?`, `!negated`). Options understood: `namespaces="git,..."` (the
//! key signs commits only if `git` matches), `valid-after` and `valid-before` (`YYYYMMDD[HHMM[SS]][Z]`, read as
//! UTC — the agent runs in UTC; both ends inclusive, as `ssh-keygen -Y verify` judges them), and
//! `cert-authority`, whose lines are skipped: certificates are not accepted as signers.
//!
//! The agent (commit verification) and the status writer's hub-side `verify` both read the file here.

use ssh_key::PublicKey;

/// One trusted key.
#[derive(Clone, Debug)]
pub struct Signer {
    /// Who the key belongs to: patterns, as written between the commas.
    pub principals: Vec<String>,
    /// The key.
    pub key: PublicKey,
    /// Namespaces it may sign in; empty means any.
    pub namespaces: Vec<String>,
    /// Unix time before which its signatures are not valid.
    pub valid_after: Option<i64>,
    /// Unix time from which its signatures are not valid.
    pub valid_before: Option<i64>,
    /// Line number in the file, for messages.
    pub line: usize,
}

impl Signer {
    /// Whether the key may sign at Unix time `at` (`valid-after <= at <= valid-before`, as ssh-keygen).
    pub fn valid_at(&self, at: i64) -> bool {
        self.valid_after.is_none_or(|t| at >= t) && self.valid_before.is_none_or(|t| at <= t)
    }

    /// Whether the key may sign in `namespace`.
    pub fn allows(&self, namespace: &str) -> bool {
        self.namespaces.is_empty() || matches_list(namespace, &self.namespaces)
    }

    /// Whether the line lets the key sign as `principal`.
    pub fn may_sign_as(&self, principal: &str) -> bool {
        matches_list(principal, &self.principals)
    }

    /// The principals as written (`a@x,b@x`), for messages.
    pub fn principals_text(&self) -> String {
        self.principals.join(",")
    }
}

/// A line that does not parse: its number and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// Every entry of an allowed-signers file (`cert-authority` lines skipped).
pub fn parse(text: &str) -> Result<Vec<Signer>, ParseError> {
    let mut signers = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let err = |reason: String| ParseError { line, reason };
        let (principals, rest) = token(trimmed);
        let principals: Vec<String> = principals
            .trim_matches('"')
            .split(',')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        if principals.is_empty() {
            return Err(err("no principals".into()));
        }
        let (second, after) = token(rest);
        let (options, key_text) = if is_key_type(second) {
            ("", rest)
        } else {
            (second, after)
        };
        if key_text.is_empty() {
            return Err(err("no key after the principals and options".into()));
        }
        let mut signer = Signer {
            principals,
            key: PublicKey::from_openssh(key_text)
                .map_err(|e| err(format!("not an OpenSSH public key ({e})")))?,
            namespaces: Vec::new(),
            valid_after: None,
            valid_before: None,
            line,
        };
        let mut authority = false;
        for option in split_options(options) {
            let (name, value) = match option.split_once('=') {
                Some((n, v)) => (n.to_ascii_lowercase(), Some(v.trim_matches('"'))),
                None => (option.to_ascii_lowercase(), None),
            };
            match (name.as_str(), value) {
                ("cert-authority", None) => authority = true,
                ("namespaces", Some(v)) => signer.namespaces = v.split(',').map(str::to_owned).collect(),
                ("valid-after", Some(v)) => signer.valid_after = Some(time(v).map_err(err)?),
                ("valid-before", Some(v)) => signer.valid_before = Some(time(v).map_err(err)?),
                _ => return Err(err(format!("unknown option {option:?}"))),
            }
        }
        if let (Some(after), Some(before)) = (signer.valid_after, signer.valid_before)
            && before <= after
        {
            return Err(err("valid-before is not after valid-after".into()));
        }
        if !authority {
            signers.push(signer);
        }
    }
    Ok(signers)
}

/// ssh's pattern lists (`match_pattern_list`): `name` matches when a pattern matches it and no `!pattern` does.
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

/// Key types OpenSSH writes (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `sk-ssh-ed25519@openssh.com`, ...).
fn is_key_type(word: &str) -> bool {
    ["ssh-", "ecdsa-", "sk-"].iter().any(|p| word.starts_with(p))
}

/// The first whitespace-separated word of `text` (double quotes keep spaces inside), and the rest, trimmed.
fn token(text: &str) -> (&str, &str) {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return (&text[..i], text[i..].trim_start()),
            _ => {}
        }
    }
    (text, "")
}

/// Comma-separated options, commas inside double quotes kept.
fn split_options(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut start) = (false, 0);
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out.retain(|o| !o.is_empty());
    out
}

/// `YYYYMMDD[HHMM[SS]][Z]` as a Unix time (UTC).
fn time(text: &str) -> Result<i64, String> {
    let digits = text.strip_suffix(['Z', 'z']).unwrap_or(text);
    let bad = || format!("{text:?} is not a time (YYYYMMDD[HHMM[SS]][Z])");
    if !matches!(digits.len(), 8 | 12 | 14) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| digits.get(r).map_or(Ok(0), |s| s.parse::<i16>());
    let (Ok(y), Ok(mo), Ok(d), Ok(h), Ok(mi), Ok(s)) = (
        num(0..4),
        num(4..6),
        num(6..8),
        num(8..10),
        num(10..12),
        num(12..14),
    ) else {
        return Err(bad());
    };
    let at =
        jiff::civil::DateTime::new(y, mo as i8, d as i8, h as i8, mi as i8, s as i8, 0).map_err(|_| bad())?;
    at.to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp().as_second())
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICwihDjOnKbB1UUZO9YYMYJt7DhZiXVDgBhu3/8ONtgO";

    #[test]
    fn entries_with_and_without_options_are_read() {
        let text = format!(
            "# trusted\n\nalice@example.com {KEY} laptop\n\
\"bob@x,carol@x\" namespaces=\"git,file\",valid-after=\"20240101\",valid-before=\"20250102030405Z\" {KEY}\n\
ca@x cert-authority {KEY}\n"
        );
        let signers = parse(&text).unwrap();
        assert_eq!(signers.len(), 2, "cert-authority lines are skipped");
        assert_eq!(signers[0].principals, ["alice@example.com"]);
        assert!(signers[0].namespaces.is_empty() && signers[0].valid_after.is_none());
        assert_eq!(signers[0].line, 3);
        let bob = &signers[1];
        assert_eq!(bob.principals, ["bob@x", "carol@x"]);
        assert!(bob.may_sign_as("carol@x") && !bob.may_sign_as("mallory@x"));
        assert_eq!(bob.namespaces, ["git", "file"]);
        assert_eq!(bob.valid_after, Some(1_704_067_200));
        assert_eq!(bob.valid_before, Some(1_735_787_045));
        assert!(bob.allows("git") && !bob.allows("email"));
        assert!(!bob.valid_at(1_704_067_199) && bob.valid_at(1_704_067_200));
        assert!(
            bob.valid_at(bob.valid_before.unwrap()),
            "valid-before is inclusive, as in ssh-keygen"
        );
        assert!(!bob.valid_at(bob.valid_before.unwrap() + 1));
    }

    #[test]
    fn principals_and_namespaces_are_pattern_lists() {
        let text = format!("\"edge-*,!edge-9\" namespaces=\"gi?,file\" {KEY}\n");
        let signer = &parse(&text).unwrap()[0];
        assert!(signer.may_sign_as("edge-1") && signer.may_sign_as("edge-"));
        assert!(!signer.may_sign_as("edge-9"), "negated");
        assert!(!signer.may_sign_as("hub"));
        assert!(signer.allows("git") && signer.allows("file") && !signer.allows("gitx"));
        assert!(glob(b"a*b?c", b"axxbyc") && !glob(b"a*b?c", b"axxbc"));
    }

    #[test]
    fn bad_lines_are_named() {
        let e = parse(&format!("a@x {KEY}\nb@x\n")).unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse(&format!("a@x valid-after=\"yesterday\" {KEY}\n")).unwrap_err();
        assert!(e.reason.contains("yesterday"), "{e}");
        let e = parse(&format!("a@x no-such-option {KEY}\n")).unwrap_err();
        assert!(e.reason.contains("no-such-option"), "{e}");
        let e = parse("a@x ssh-ed25519 AAAAnotbase64!\n").unwrap_err();
        assert!(e.reason.contains("OpenSSH public key"), "{e}");
        let e = parse(&format!(
            "a@x valid-after=\"20250101\",valid-before=\"20240101\" {KEY}\n"
        ))
        .unwrap_err();
        assert!(e.reason.contains("valid-before is not after valid-after"), "{e}");
        let e = parse(&format!("\"\" {KEY}\n")).unwrap_err();
        assert!(e.reason.contains("no principals"), "{e}");
    }
}
