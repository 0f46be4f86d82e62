//! Inventory (DESIGN §4): what each bundle owns, kept in one ApplySet parent Secret per bundle in the agent's
//! namespace.
//!
//! The parent carries kubectl's ApplySet labels and annotations plus what kubectl lacks: the member list with
//! per-object digests (gzip-compressed JSON, so ten thousand members fit in one Secret), the bundle's layout
//! and trackers for the status writer, and the last sync result. [`store`] reads and writes parents, in the
//! [`format`] this agent knows.

pub mod applyset;
pub mod format;
pub mod migrate;
pub mod record;
pub mod source_state;
pub mod store;

use std::collections::BTreeMap;
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::object::ObjectKey;

/// Errors decoding a parent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A data key is missing or undecodable; the bundle must not be pruned from it.
    #[error(
        "inventory {name}: {what} is unreadable: {reason}; fix or delete the Secret (objects are never pruned from an unreadable inventory)"
    )]
    Corrupt {
        /// Secret name.
        name: String,
        /// Which part.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// Written by a newer Outpost in a format this agent does not know ([`format`]): its bundle is neither
    /// applied nor pruned, and the parent is never rewritten (that would downgrade it).
    #[error(
        "inventory {name} is in format {format}, written by a newer Outpost; this agent reads formats up to {supported}: upgrade the agent (until then nothing of this bundle is applied or pruned), or delete the Secret to let this agent start the bundle's inventory afresh (objects no longer in Git are then left in place, not pruned)"
    )]
    NewerFormat {
        /// Secret name.
        name: String,
        /// Its format, as found.
        format: String,
        /// The newest format this agent reads.
        supported: u32,
    },
}

impl Error {
    /// The kind of failure, as a bounded metric label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Corrupt { .. } => "corrupt",
            Error::NewerFormat { .. } => "newer_format",
        }
    }
}

/// What we recorded about one member.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// apiVersion it was applied with (needed to delete it later).
    #[serde(rename = "v")]
    pub api_version: String,
    /// Digest of the body last applied successfully; empty while an apply is pending.
    #[serde(rename = "d", default)]
    pub digest: String,
    /// `metadata.generation` right after our apply, for drift detection.
    #[serde(rename = "gen", default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// `metadata.resourceVersion` right after our apply, for drift detection of kinds without generation.
    #[serde(rename = "rv", default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

/// How the bundle sits in the repository; the status writer needs it for its paths.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BundleInfo {
    /// The exact bundle name (`<cid>-<app>`, `web`, `_root`).
    pub bundle: String,
    /// The cluster directory (`--cluster`).
    pub cluster: String,
    /// Directory of the bundle relative to the cluster path.
    pub dir: String,
    /// EMCO context id, for EMCO bundles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// EMCO app name, for EMCO bundles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// `ResourceBundleState` tracker documents found in the bundle.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trackers: Vec<serde_json::Value>,
    /// Bundles that must be healthy before this one is applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// When the agent first saw the bundle (RFC 3339), kept for its lifetime: between two bundles of one EMCO
    /// app defining the same object, the newer takes it ([`crate::manifest::contest`]). Inventories written
    /// before this field existed read as [`FIRST_SEEN_UNKNOWN`], older than any bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    /// `prune:` in the bundle's `outpost.yaml`, kept so that the bundle's members are orphaned, not deleted,
    /// when the whole bundle leaves Git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<crate::policy::PrunePolicy>,
    /// `drift:` in the bundle's `outpost.yaml` (for `status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<crate::policy::DriftMode>,
    /// `suspend: true` in the bundle's `outpost.yaml` (for `status`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    /// `serviceAccountName` in the bundle's `outpost.yaml`, kept so that the bundle's members are pruned as
    /// that ServiceAccount when the whole bundle leaves Git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
}

impl BundleInfo {
    /// What the bundle's `outpost.yaml` said when it was last in Git.
    pub fn settings(&self) -> crate::policy::BundleSettings {
        crate::policy::BundleSettings {
            suspend: self.suspend,
            drift: self.drift,
            prune: self.prune,
            service_account: self.service_account.clone(),
        }
    }
}

/// `first_seen` of inventories that predate it: sorts before every timestamp.
pub const FIRST_SEEN_UNKNOWN: &str = "0";

/// Outcome of the last reconcile of a bundle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncState {
    /// Everything in Git is applied and everything removed from Git is pruned.
    Synced,
    /// Some objects failed to apply or prune.
    Failed,
    /// Waiting for a dependency to become healthy.
    Waiting,
    /// Not synced yet.
    #[default]
    Pending,
}

/// The sync result recorded on the parent (`outpost.dev/sync` annotation, JSON).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResult {
    /// Commit applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// When (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Result.
    pub state: SyncState,
    /// Objects sent in that reconcile.
    pub applied: u64,
    /// Objects deleted in that reconcile.
    pub pruned: u64,
    /// The first errors, scrubbed of secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Set while the bundle is suspended: why (the sync result above is the last one before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<String>,
}

/// One bundle's inventory.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inventory {
    /// Layout and trackers.
    pub info: BundleInfo,
    /// Members and what we recorded about them.
    pub members: BTreeMap<ObjectKey, Member>,
    /// Last sync.
    pub sync: SyncResult,
}

/// One member in the serialised list.
#[derive(Serialize, Deserialize)]
struct Entry {
    /// Which object.
    #[serde(flatten)]
    key: ObjectKey,
    /// What we recorded about it.
    #[serde(flatten)]
    member: Member,
}

impl Inventory {
    /// An empty inventory for a bundle.
    pub fn new(info: BundleInfo) -> Self {
        Inventory {
            info,
            members: BTreeMap::new(),
            sync: SyncResult::default(),
        }
    }
}

/// gzip(JSON(members)).
pub(crate) fn encode_members(members: &BTreeMap<ObjectKey, Member>) -> Vec<u8> {
    let entries: Vec<Entry> = members
        .iter()
        .map(|(k, m)| Entry {
            key: k.clone(),
            member: m.clone(),
        })
        .collect();
    let json = serde_json::to_vec(&entries).unwrap_or_default();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = gz.write_all(&json);
    gz.finish().unwrap_or_default()
}

/// The largest member list we inflate. Ten thousand members are about 1.5 MB of JSON; a Secret's 1 MiB of
/// gzip could otherwise inflate to a gigabyte and take the agent down with it.
const MAX_MEMBERS_JSON: u64 = 64 * 1024 * 1024;

/// Inverse of [`encode_members`].
pub(crate) fn decode_members(bytes: &[u8]) -> Result<BTreeMap<ObjectKey, Member>, String> {
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_MEMBERS_JSON + 1)
        .read_to_end(&mut json)
        .map_err(|e| format!("not gzip: {e}"))?;
    if json.len() as u64 > MAX_MEMBERS_JSON {
        return Err(format!(
            "inflates to more than {} MiB",
            MAX_MEMBERS_JSON / 1024 / 1024
        ));
    }
    let entries: Vec<Entry> = serde_json::from_slice(&json).map_err(|e| format!("not a member list: {e}"))?;
    Ok(entries.into_iter().map(|e| (e.key, e.member)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_thousand_members_fit_in_a_secret() {
        let mut members = BTreeMap::new();
        for i in 0..10_000 {
            members.insert(
                ObjectKey {
                    group: String::new(),
                    kind: "ConfigMap".into(),
                    namespace: Some(format!("bench-{}", i % 10)),
                    name: format!("cm-{i:05}"),
                },
                Member {
                    api_version: "v1".into(),
                    digest: crate::manifest::digest::of_value(&serde_json::json!(i)),
                    generation: None,
                    resource_version: Some(format!("{}", 100_000 + i)),
                },
            );
        }
        let bytes = encode_members(&members);
        // A Secret holds 1 MiB; base64 adds a third.
        assert!(bytes.len() * 4 / 3 < 1024 * 1024, "{} bytes", bytes.len());
        assert_eq!(decode_members(&bytes).unwrap(), members);
    }

    #[test]
    fn a_gzip_bomb_is_refused_before_it_inflates() {
        // Valid JSON for an empty list, padded past the limit: 65 MiB inflated from about 65 KiB.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(b"[").unwrap();
        let spaces = vec![b' '; 1024 * 1024];
        for _ in 0..=MAX_MEMBERS_JSON / 1024 / 1024 {
            gz.write_all(&spaces).unwrap();
        }
        gz.write_all(b"]").unwrap();
        let bytes = gz.finish().unwrap();
        assert!(bytes.len() < 1024 * 1024, "{} bytes fit in a Secret", bytes.len());
        let err = decode_members(&bytes).unwrap_err();
        assert!(err.contains("inflates to more than 64 MiB"), "{err}");
    }

    #[test]
    fn garbage_is_reported_not_treated_as_empty() {
        assert!(decode_members(b"not gzip").is_err());
    }
}
