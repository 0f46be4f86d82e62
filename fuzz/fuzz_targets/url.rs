//! URL parsing (`source::RepoUrl::parse`, `source::GitRef::parse`): `--git-url` and `--git-ref` as an operator
//! may type them. Parsing must answer or refuse, never panic; a password written into the URL must never
//! appear in what we print (Display, Debug, or the error).
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost_agent::source::{GitRef, RepoUrl};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let reference = GitRef::parse(text);
    let _ = (reference.remote_name(), reference.to_string());
    match RepoUrl::parse(text) {
        Ok(url) => {
            let shown = (url.to_string(), format!("{url:?}"));
            let _ = (url.is_http(), url.is_ssh(), url.is_plain_http());
            // Credentials moved out of an HTTP URL leave no userinfo in what we print (path and query may
            // hold anything the operator typed, `@` included).
            if url.has_embedded_credentials() {
                for text in [&shown.0, &shown.1] {
                    let authority = text.split_once("://").map_or("", |(_, rest)| rest);
                    let authority = authority.split(['/', '?', '#']).next().unwrap_or_default();
                    assert!(!authority.contains('@'), "userinfo shown: {text}");
                }
            }
        }
        Err(e) => {
            let _ = (e.to_string(), e.metric_label());
        }
    }
});
