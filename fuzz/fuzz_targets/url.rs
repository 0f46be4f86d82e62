//! URL parsing (`source::RepoUrl::parse`, `source::GitRef::parse`): `--git-url` and `--git-ref` as an operator
//! may type them. Parsing must answer or refuse, never panic; a password written into the URL must never
//! appear in what we print (Display, Debug, or the error).
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost_agent::source::{GitRef, RepoUrl};

/// Fixed text of our messages: cut out of what we print before looking for a password in it, so that a
/// password made of (or around) our own words proves nothing.
const FIXED: &[&str] = &[
    "[redacted]",
    "--git-url ",
    " is not a valid Git URL: ",
    "it does not parse as a URL (the parser's message is left out: it would repeat the credentials)",
    "Invalid { url: ",
    ", reason: ",
    "UnsupportedScheme { scheme: ",
    " is not supported: use https://, ssh://, git@host:path, file:// or a path",
];
/// Stands for a cut-out fixed text.
const CUT: &str = "\u{fffe}";

/// The password written as `scheme://user:password@host`, when it is long enough to recognise and appears
/// nowhere else in `text` (so finding it in our output can only mean it leaked).
fn written_password(text: &str) -> Option<&str> {
    let (_, rest) = text.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    // Shaped like a token (a shorter or punctuated one can be spelled by our own formatting: `RepoUrl(htt`).
    let token_like = password.len() >= 8
        && password
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~+/=".contains(c));
    // Counted ignoring case: the parser lowercases the host, so a host spelling the password in other case
    // (`bot:cret-token@gi4creT-token`) prints it without leaking it.
    let once = text
        .to_ascii_lowercase()
        .matches(&password.to_ascii_lowercase())
        .count()
        == 1;
    (token_like && !password.contains(CUT) && once).then_some(password)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let reference = GitRef::parse(text);
    let _ = (reference.remote_name(), reference.to_string());
    let shown = match RepoUrl::parse(text) {
        Ok(url) => {
            let shown = [url.to_string(), format!("{url:?}")];
            let _ = (url.is_http(), url.is_ssh(), url.is_plain_http());
            // Credentials moved out of an HTTP URL leave no userinfo in what we print (path and query may
            // hold anything the operator typed, `@` included).
            if url.has_embedded_credentials() {
                for text in &shown {
                    let authority = text.split_once("://").map_or("", |(_, rest)| rest);
                    let authority = authority.split(['/', '?', '#']).next().unwrap_or_default();
                    // gix may keep an `@` of garbage input in the host; the scrubber then redacts it.
                    let redacted = authority.contains(":[redacted]@");
                    assert!(!authority.contains('@') || redacted, "userinfo shown: {text}");
                }
            }
            shown
        }
        Err(e) => {
            let _ = e.metric_label();
            [e.to_string(), format!("{e:?}")]
        }
    };
    // Control characters are printed escaped (`\0`), which can spell a short "password" out of the escape
    // itself; such input is no URL anyone writes, so only printable input is held to the password check.
    if text.chars().any(char::is_control) {
        return;
    }
    if let Some(password) = written_password(text) {
        for text in &shown {
            let ours = FIXED.iter().fold(text.clone(), |t, fixed| t.replace(fixed, CUT));
            assert!(!ours.contains(password), "password {password:?} shown: {text}");
        }
    }
});
