//! pkt-line and receive-pack report parsing (`push::judge_report`): whatever a Git server, or something posing
//! as one, answers a push with. It must yield a verdict or an I/O error, never panic or hang, and `Updated`
//! only when the report says `unpack ok` and `ok <our ref>`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost_status_writer::push::{Verdict, judge_report};

/// The ref the status writer pushes.
const REF: &str = "refs/heads/main";

fuzz_target!(|data: &[u8]| {
    if let Ok(Verdict::Updated) = judge_report(data, REF) {
        let text = String::from_utf8_lossy(data);
        assert!(text.contains("unpack ok"), "updated without `unpack ok`");
        assert!(text.contains(&format!("ok {REF}")), "updated without `ok {REF}`");
    }
});
