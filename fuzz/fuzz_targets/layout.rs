//! Layout classification (`manifest::layout::bundles`): a cluster directory of files, EMCO's or plain, split into
//! bundles. The input is a file list: records separated by NUL bytes, each `path\ncontent` (see fuzz/seeds.py).
//! It must answer with bundles or an error, never panic, and every bundle's manifests must come from files
//! under the cluster path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost_agent::manifest::layout;
use outpost_agent::source::SourceFile;

/// Repository path of the fuzzed cluster directory.
const ROOT: &str = "clusters/fuzz";

fuzz_target!(|data: &[u8]| {
    let files: Vec<SourceFile> = data
        .split(|b| *b == 0)
        .filter_map(|record| {
            let newline = record.iter().position(|b| *b == b'\n')?;
            let path = std::str::from_utf8(&record[..newline]).ok()?;
            Some(SourceFile::new(path, &record[newline + 1..]))
        })
        .collect();
    match layout::bundles(ROOT, &files) {
        Ok(bundles) => {
            let mut names = std::collections::BTreeSet::new();
            for b in &bundles {
                assert!(names.insert(b.name.clone()), "bundle {} twice", b.name);
                for m in b.manifests.iter().chain(&b.trackers) {
                    assert!(m.origin.file.starts_with(ROOT), "{} outside {ROOT}", m.origin);
                }
            }
        }
        Err(e) => {
            let _ = (e.to_string(), e.metric_label());
        }
    }
    let _ = layout::is_tracker_only(ROOT, &files);
});
