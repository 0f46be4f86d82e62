//! Per-bundle policies an operator or Git chooses (issue 13): what drift correction does and what pruning
//! does. Plain values shared by the manifest layer (`outpost.yaml`), the flags, the controls and the stages
//! that obey them.

use serde::{Deserialize, Serialize};

/// What drift correction does with a managed object changed or deleted in the cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DriftMode {
    /// Re-apply it from Git (the default).
    #[default]
    Revert,
    /// Detect, count and show it; leave it as it is.
    Report,
}

impl DriftMode {
    /// As written in annotations, `outpost.yaml` and `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            DriftMode::Revert => "revert",
            DriftMode::Report => "report",
        }
    }

    /// Parse the annotation value; `None` when it is neither.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "revert" => Some(DriftMode::Revert),
            "report" => Some(DriftMode::Report),
            _ => None,
        }
    }
}

/// What pruning does with a member that left Git.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PrunePolicy {
    /// Delete it from the cluster (the default).
    #[default]
    Delete,
    /// Leave it running, without our `part-of` label, and drop it from the inventory.
    Orphan,
}

impl PrunePolicy {
    /// As written in `outpost.yaml` and `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            PrunePolicy::Delete => "delete",
            PrunePolicy::Orphan => "orphan",
        }
    }
}

/// What a bundle's `outpost.yaml` says about its controls (absent fields: the agent's defaults).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BundleSettings {
    /// `suspend: true`: apply, prune and revert nothing until Git or an operator resumes it.
    pub suspend: bool,
    /// `drift: revert|report`.
    pub drift: Option<DriftMode>,
    /// `prune: delete|orphan`.
    pub prune: Option<PrunePolicy>,
    /// `serviceAccountName`: the ServiceAccount (in the agent's namespace) the bundle's writes act as.
    pub service_account: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_as_they_are_written() {
        for mode in [DriftMode::Revert, DriftMode::Report] {
            assert_eq!(DriftMode::parse(mode.as_str()), Some(mode));
        }
        assert_eq!(DriftMode::parse("Report"), None, "values are lowercase");
        let prune: PrunePolicy = serde_json::from_str("\"orphan\"").unwrap();
        assert_eq!(prune, PrunePolicy::Orphan);
        assert!(serde_json::from_str::<PrunePolicy>("\"keep\"").is_err());
    }
}
