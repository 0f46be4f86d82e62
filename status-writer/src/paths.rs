//! Where each bundle's status file lives in the control repository (DESIGN §6): exactly one file per directory,
//! because EMCO's rsync reads the first file it finds there.
//!
//! - EMCO bundle `<cid>-<app>`: `clusters/<cluster>/status/<cid>/app/<app>/<cid>-<app>-status.yaml`
//! - plain bundle `<b>`: `clusters/<cluster>/status/<b>/<b>-status.yaml`

use outpost_agent::inventory::BundleInfo;

/// The status directory of a cluster, owned entirely by its status writer.
pub fn status_root(cluster: &str) -> String {
    format!("clusters/{cluster}/status")
}

/// Path of a bundle's status file, relative to [`status_root`].
pub fn relative_path(info: &BundleInfo) -> String {
    match (&info.context, &info.app) {
        (Some(cid), Some(app)) => format!("{cid}/app/{app}/{cid}-{app}-status.yaml"),
        _ => format!("{b}/{b}-status.yaml", b = info.bundle),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emco_and_plain_bundles_get_their_documented_paths() {
        let emco = BundleInfo {
            bundle: "100-web".into(),
            context: Some("100".into()),
            app: Some("web".into()),
            ..Default::default()
        };
        assert_eq!(relative_path(&emco), "100/app/web/100-web-status.yaml");
        let plain = BundleInfo {
            bundle: "monitoring".into(),
            ..Default::default()
        };
        assert_eq!(relative_path(&plain), "monitoring/monitoring-status.yaml");
        assert_eq!(status_root("p+c"), "clusters/p+c/status");
    }
}
