//! Footprint (issue 15 item 6): the size of what the image carries. The multi-call binary `outpost` built with
//! the `dist` profile (fat LTO, one codegen unit, stripped; `make bench` builds it) is what the Dockerfile copies
//! once under both names; beside it, the two release binaries a two-binary image would carry, and kubectl's
//! size as the peer every cluster already has.

use super::*;

/// The image's target for the one binary.
const TARGET_MIB: f64 = 15.0;

fn mib(path: &Path) -> Option<f64> {
    std::fs::metadata(path)
        .ok()
        .map(|m| m.len() as f64 / (1024.0 * 1024.0))
}

impl Bench {
    pub(crate) async fn footprint(&mut self) -> Result<()> {
        let dir = tools::target_dir();
        let dist = dir.join("dist").join("outpost");
        let Some(one) = mib(&dist) else {
            println!(
                "Footprint: {} is missing; `cargo build --profile dist -p outpost` (make bench does) first",
                dist.display()
            );
            return Ok(());
        };
        let two: Vec<String> = ["outpost-agent", "outpost-status-writer"]
            .iter()
            .filter_map(|name| mib(&dir.join("release").join(name)).map(|m| format!("{name} {m:.1} MiB")))
            .collect();
        let kubectl = tools::kubectl().ok().and_then(|k| mib(&k));
        self.row(
            "image binary (multi-call `outpost`, dist profile, stripped)",
            format!("{one:.1} MiB (two release binaries instead: {})", two.join(" + ")),
            kubectl.map_or_else(|| "n/a".into(), |k| format!("{k:.1} MiB")),
            String::new(),
            &format!("<= {TARGET_MIB:.0} MiB"),
        );
        Ok(())
    }
}
