//! Manifest parsing (`manifest::parse::parse_file`): any bytes a repository file may hold, read as a `.yaml`
//! file (YAML, or JSON when it starts like JSON) and as a `.json` file. It must answer with manifests or an
//! error naming the file, never panic, hang or exhaust memory; what it accepts must round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost_agent::manifest::{digest, parse};

fuzz_target!(|data: &[u8]| {
    for file in ["clusters/fuzz/app/f.yaml", "clusters/fuzz/app/f.json"] {
        match parse::parse_file(file, data) {
            Ok(manifests) => {
                for m in manifests {
                    assert_eq!(m.origin.file, file);
                    assert!(m.origin.document >= 1 && m.origin.line >= 1, "{}", m.origin);
                    assert!(!m.name.trim().is_empty() && !m.kind.trim().is_empty());
                    // The compact body is what gets applied: it must parse back to the same object.
                    let value = m.value();
                    assert!(value.is_object(), "{}: body does not round-trip", m.origin);
                    let _ = (m.group(), m.version(), m.display_name(), digest::of_value(&value));
                }
            }
            Err(e) => {
                let text = e.to_string();
                assert!(text.starts_with(file), "error does not name the file: {text}");
                let _ = e.metric_label();
            }
        }
    }
});
