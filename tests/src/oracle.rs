//! The corpus of status files the Go oracle judges (`tests/oracles`, DESIGN §9): EMCO's rsync decodes our
//! ResourceBundleState files with Go's `sigs.k8s.io/yaml` (YAML 1.1), so a Rust YAML reader must not be their
//! only judge.
//!
//! E2e tests call [`record_status`] with every status file they read from Git, byte for byte, and
//! [`record_intended`] where they also know what the file was meant to say. Files land in
//! `OUTPOST_STATUS_CORPUS` (default `<cargo target dir>/status-corpus`) as `<label>-<hash>.yaml` with an
//! optional `.json` beside it; after `cargo test`, `make test` runs `go test ./...` in `tests/oracles` over
//! that directory. Names carry a hash of the content, so the same file read in a polling loop is stored once.

use std::path::PathBuf;

use crate::tools;

/// Longest label kept in a file name (file names stop at 255 bytes; the hash follows).
const MAX_LABEL: usize = 120;

/// Where the corpus is written: `OUTPOST_STATUS_CORPUS`, else `<cargo target dir>/status-corpus`.
pub fn corpus_dir() -> PathBuf {
    match std::env::var_os("OUTPOST_STATUS_CORPUS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => tools::target_dir().join("status-corpus"),
    }
}

/// Record a status file exactly as committed, for the Go oracle to decode as rsync does. `label` says where
/// it came from (usually its path in the repository). Panics if the corpus cannot be written: a status file
/// the oracle never sees would pass unjudged.
pub fn record_status(label: &str, yaml: &str) {
    write_entry(&stem(label, yaml), "yaml", yaml.as_bytes());
}

/// Record a status file and the JSON our renderer meant by it; the oracle fails if Go's YAML 1.1 reading of
/// `yaml` differs from `intended_json` anywhere.
pub fn record_intended(label: &str, yaml: &str, intended_json: &serde_json::Value) {
    let stem = stem(label, yaml);
    let json = serde_json::to_vec_pretty(intended_json).expect("a JSON value serialises");
    write_entry(&stem, "yaml", yaml.as_bytes());
    write_entry(&stem, "json", &json);
}

/// `<label with unsafe characters replaced>-<FNV-1a hash of the content>`.
fn stem(label: &str, content: &str) -> String {
    let safe: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    // Keep the end of long labels: the file name tells more than the leading `clusters_`.
    let start = safe.len().saturating_sub(MAX_LABEL);
    let safe = safe[start..].trim_start_matches('.');
    format!("{safe}-{:016x}", fnv1a(content.as_bytes()))
}

/// FNV-1a, 64 bits: stable across runs and Rust versions (std's hasher promises neither).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Write `<dir>/<stem>.<ext>` through a hidden temporary file and a rename, so the oracle (which skips
/// dot files) never reads half a file and concurrent tests recording the same content do not clash.
fn write_entry(stem: &str, ext: &str, bytes: &[u8]) {
    let dir = corpus_dir();
    let result = std::fs::create_dir_all(&dir).and_then(|()| {
        let tmp = dir.join(format!(
            ".{stem}.{ext}.{}-{}.tmp",
            std::process::id(),
            crate::random_suffix()
        ));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, dir.join(format!("{stem}.{ext}")))
    });
    if let Err(e) = result {
        panic!(
            "cannot record {stem}.{ext} in the status corpus {}: {e}",
            dir.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_bounded_and_follow_the_content() {
        let a = stem("clusters/p+c/status/100/app/web/100-web-status.yaml", "x: 1\n");
        assert!(
            a.starts_with("clusters_p_c_status_100_app_web_100-web-status.yaml-"),
            "{a}"
        );
        assert_eq!(
            a,
            stem("clusters/p+c/status/100/app/web/100-web-status.yaml", "x: 1\n")
        );
        assert_ne!(
            a,
            stem("clusters/p+c/status/100/app/web/100-web-status.yaml", "x: 2\n")
        );
        let long = stem(&"a/".repeat(200), "");
        assert!(long.len() <= MAX_LABEL + 17, "{long}");
        assert!(!stem("..", "").starts_with('.'));
    }
}
