//! What a bundle may do, from the agent's marks, the bundle's marks, Git's `outpost.yaml` and the flag
//! defaults. Pure: the precedence rules and their tests live here.

use super::marks::{Marks, SUSPEND_ANNOTATION};
use crate::policy::{BundleSettings, DriftMode, PrunePolicy};

/// The flags' defaults (`--drift-mode`, `--prune-policy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Defaults {
    /// For bundles that set no drift mode.
    pub drift: DriftMode,
    /// For bundles that set no prune policy.
    pub prune: PrunePolicy,
}

/// Who suspended something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suspension {
    /// The agent's control ConfigMap.
    Agent,
    /// The bundle's parent.
    Operator,
    /// The bundle's `outpost.yaml`.
    Git,
}

impl Suspension {
    /// Where, for `status`, logs and Events.
    pub fn describe(self) -> &'static str {
        match self {
            Suspension::Agent => {
                "the whole agent is suspended (outpost.dev/suspend=true on its control ConfigMap)"
            }
            Suspension::Operator => "suspended by an operator (outpost.dev/suspend=true on its inventory)",
            Suspension::Git => "suspended by Git (suspend: true in its outpost.yaml)",
        }
    }

    /// A short word for tables and metric-free displays.
    pub fn by(self) -> &'static str {
        match self {
            Suspension::Agent => "agent",
            Suspension::Operator => "operator",
            Suspension::Git => "git",
        }
    }
}

/// What one bundle may do now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Suspended (nothing applied, pruned or reverted), and by whom.
    pub suspended: Option<Suspension>,
    /// Revert or report drift.
    pub drift: DriftMode,
    /// Delete or orphan what leaves Git.
    pub prune: PrunePolicy,
    /// Git asks for suspension and an operator's explicit resume overrides it: shown, never silent.
    pub overridden: Option<String>,
}

/// Why the agent as a whole is suspended, if it is.
pub fn agent(agent: &Marks) -> Option<Suspension> {
    (agent.suspend == Some(true)).then_some(Suspension::Agent)
}

/// The policy of a bundle with these marks (`None`: no parent yet) and Git settings (`None`: not in the last
/// commit).
pub fn policy(
    agent_marks: &Marks,
    bundle: Option<&Marks>,
    git: Option<&BundleSettings>,
    defaults: Defaults,
) -> Policy {
    let operator = bundle.and_then(|m| m.suspend);
    let git_suspends = git.is_some_and(|g| g.suspend);
    let suspended = agent(agent_marks).or(match operator {
        Some(true) => Some(Suspension::Operator),
        Some(false) => None,
        None => git_suspends.then_some(Suspension::Git),
    });
    let overridden = (operator == Some(false) && git_suspends).then(|| {
        format!(
            "Git asks to suspend it (outpost.yaml); an operator's {SUSPEND_ANNOTATION}=false keeps it running"
        )
    });
    Policy {
        suspended,
        drift: bundle
            .and_then(|m| m.drift)
            .or(git.and_then(|g| g.drift))
            .unwrap_or(defaults.drift),
        prune: git.and_then(|g| g.prune).unwrap_or(defaults.prune),
        overridden,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(suspend: bool, drift: Option<DriftMode>) -> BundleSettings {
        BundleSettings {
            suspend,
            drift,
            ..Default::default()
        }
    }

    fn marks(suspend: Option<bool>, drift: Option<DriftMode>) -> Marks {
        Marks {
            suspend,
            drift,
            ..Default::default()
        }
    }

    #[test]
    fn an_operator_wins_over_git_and_git_over_the_flags() {
        let none = Marks::default();
        let d = Defaults::default();
        let p = policy(&none, None, Some(&git(true, Some(DriftMode::Report))), d);
        assert_eq!(p.suspended, Some(Suspension::Git));
        assert_eq!(p.drift, DriftMode::Report);
        // Resumed by hand: Git's suspend is overridden, and the status says so.
        let resumed = marks(Some(false), Some(DriftMode::Revert));
        let p = policy(
            &none,
            Some(&resumed),
            Some(&git(true, Some(DriftMode::Report))),
            d,
        );
        assert_eq!(p.suspended, None);
        assert_eq!(p.drift, DriftMode::Revert);
        assert!(
            p.overridden
                .is_some_and(|o| o.contains("outpost.dev/suspend=false"))
        );
        // Suspended by hand while Git says nothing.
        let p = policy(&none, Some(&marks(Some(true), None)), None, d);
        assert_eq!(p.suspended, Some(Suspension::Operator));
        assert_eq!(p.overridden, None);
        // The flag defaults for what nobody set.
        let flags = Defaults {
            drift: DriftMode::Report,
            prune: PrunePolicy::Orphan,
        };
        let p = policy(&none, None, Some(&git(false, None)), flags);
        assert_eq!(
            (p.suspended, p.drift, p.prune),
            (None, DriftMode::Report, PrunePolicy::Orphan)
        );
    }

    #[test]
    fn a_suspended_agent_suspends_every_bundle_whatever_they_say() {
        let agent_marks = marks(Some(true), None);
        let p = policy(
            &agent_marks,
            Some(&marks(Some(false), None)),
            None,
            Defaults::default(),
        );
        assert_eq!(p.suspended, Some(Suspension::Agent));
        assert_eq!(agent(&Marks::default()), None);
    }
}
