//! What the Go oracles judge (`tests/oracles`, DESIGN §9), recorded by the e2e tests: never our own
//! implementation as its own judge.
//!
//! - **Status files.** EMCO's rsync decodes our ResourceBundleState files with Go's `sigs.k8s.io/yaml` (YAML
//!   1.1), so a Rust YAML reader must not be their only judge. E2e tests call [`record_status`] with every
//!   status file they read from Git, byte for byte, and [`record_intended`] where they also know what the file
//!   was meant to say. Files land in `OUTPOST_STATUS_CORPUS` (default `<cargo target dir>/status-corpus`) as
//!   `<label>-<hash>.yaml` with an optional `.json` beside it. Names carry a hash of the content, so the same
//!   file read in a polling loop is stored once.
//! - **Health.** kstatus judges the live objects our `outpost-agent status -o json` judged: [`record_health`]
//!   writes one `<case>_<server version>.json` per case into `OUTPOST_KSTATUS_DUMP` (default
//!   `<cargo target dir>/kstatus-dump`).
//!
//! After `cargo test`, `make test` runs `go test ./...` in `tests/oracles` over both directories
//! (`tests/oracles/run.sh`, which also empties them before the tests).

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

/// Where the health cases are written: `OUTPOST_KSTATUS_DUMP`, else `<cargo target dir>/kstatus-dump`.
pub fn kstatus_dump_dir() -> PathBuf {
    match std::env::var_os("OUTPOST_KSTATUS_DUMP") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => tools::target_dir().join("kstatus-dump"),
    }
}

/// Record one health case for the kstatus oracle (tests/oracles/kstatus): the live object as the API server
/// returned it and our verdict on it (its entry in `outpost-agent status -o json`). `case` names the fixture
/// (the oracle's list of expected differences is keyed by it); `server` is the API server's version, so runs
/// against different Kubernetes versions keep their own files. Panics if the dump cannot be written.
pub fn record_health(case: &str, server: &str, live: &serde_json::Value, verdict: &serde_json::Value) {
    let entry = serde_json::json!({"case": case, "server": server, "object": live, "verdict": verdict});
    let json = serde_json::to_vec_pretty(&entry).expect("a JSON value serialises");
    write_to(
        &kstatus_dump_dir(),
        &safe_name(&format!("{case}@{server}")),
        "json",
        &json,
    );
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
    format!("{}-{:016x}", safe_name(label), fnv1a(content.as_bytes()))
}

/// `label` with every character but ASCII letters, digits, `-`, `_`, `.` replaced by `_`, its end kept when
/// long, and no leading dot (the oracles skip dot files).
fn safe_name(label: &str) -> String {
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
    safe[start..].trim_start_matches('.').to_owned()
}

/// FNV-1a, 64 bits: stable across runs and Rust versions (std's hasher promises neither).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Write `<corpus>/<stem>.<ext>`.
fn write_entry(stem: &str, ext: &str, bytes: &[u8]) {
    write_to(&corpus_dir(), stem, ext, bytes);
}

/// Write `<dir>/<stem>.<ext>` through a hidden temporary file and a rename, so the oracle (which skips
/// dot files) never reads half a file and concurrent tests recording the same content do not clash.
fn write_to(dir: &std::path::Path, stem: &str, ext: &str, bytes: &[u8]) {
    let result = std::fs::create_dir_all(dir).and_then(|()| {
        let tmp = dir.join(format!(
            ".{stem}.{ext}.{}-{}.tmp",
            std::process::id(),
            crate::random_suffix()
        ));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, dir.join(format!("{stem}.{ext}")))
    });
    if let Err(e) = result {
        panic!("cannot record {stem}.{ext} in {}: {e}", dir.display());
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
        assert_eq!(
            safe_name("deployment-available@v1.34.1+k3s"),
            "deployment-available_v1.34.1_k3s"
        );
    }
}
