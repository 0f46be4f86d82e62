//! The freshness policy: which new commits may replace the last applied one, from the flags
//! (`--history-rewrite`, `--allow-history-rewrite`, `--max-history-depth`) and what the source learned
//! ([`Lineage`]). Pure: [`judge`] takes data and returns a verdict.

use clap::builder::TypedValueParser;

use crate::source::{Ancestry, Lineage};

/// Parents walked back at most by default: EMCO makes a handful of commits per app change, so this covers days
/// of commits an agent did not see, while bounding what one poll may fetch and read.
pub const DEFAULT_MAX_DEPTH: usize = 500;

/// What to do with a new commit that does not descend from the last applied one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum HistoryRewrite {
    /// Refuse it: nothing is applied or pruned, the last applied commit stays.
    #[default]
    Refuse,
    /// Accept it only when its committer time is later than the last applied commit's (sources that
    /// force-push new commits, such as EMCO's rsync); an older commit served again is refused.
    Newer,
    /// Accept it (the history rewrite is intended).
    Allow,
}

impl HistoryRewrite {
    /// The flag value, as written on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryRewrite::Refuse => "refuse",
            HistoryRewrite::Newer => "newer",
            HistoryRewrite::Allow => "allow",
        }
    }
}

/// Freshness flags (rollback protection).
#[derive(clap::Args, Clone, Debug)]
pub struct HistoryArgs {
    /// A new commit that does not descend from the last applied one (history rewritten, an older commit served
    /// again): refuse, newer (accept if its committer time is later) or allow.
    #[arg(long, env = "OUTPOST_HISTORY_REWRITE", value_enum, default_value_t = HistoryRewrite::Refuse)]
    pub history_rewrite: HistoryRewrite,

    /// Accept any new commit, descendant or not (shorthand for --history-rewrite=allow).
    #[arg(long, env = "OUTPOST_ALLOW_HISTORY_REWRITE")]
    pub allow_history_rewrite: bool,

    /// Parents walked back (deepening the shallow cache as needed) to find the last applied commit; a commit
    /// further ahead cannot be shown to descend from it and is judged as a rewrite.
    #[arg(long, env = "OUTPOST_MAX_HISTORY_DEPTH", default_value_t = DEFAULT_MAX_DEPTH, value_parser = clap::value_parser!(u32).range(1..=100_000).map(|n| n as usize))]
    pub max_history_depth: usize,
}

impl HistoryArgs {
    /// The policy these flags choose.
    pub fn policy(&self) -> HistoryRewrite {
        if self.allow_history_rewrite {
            HistoryRewrite::Allow
        } else {
            self.history_rewrite
        }
    }
}

/// What to do with a new commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Sync it; `rewrite` when it does not (provably) descend from the last applied commit.
    Accept {
        /// Accepted although it is not a known descendant.
        rewrite: bool,
    },
    /// Refuse it.
    Refuse {
        /// Bounded metric label: `rewritten`, `beyond_depth`, `older`, `unknown_time`.
        reason: &'static str,
        /// What a person should read about the new commit.
        why: String,
    },
}

/// Judge a new commit by `policy`; `base_time` is the last applied commit's committer time (or an upper bound
/// of it, when the source lost that commit), `max` the depth bound.
pub fn judge(policy: HistoryRewrite, lineage: &Lineage, base_time: Option<i64>, max: usize) -> Verdict {
    let rewrite = match lineage.ancestry {
        Ancestry::Descendant { .. } | Ancestry::Unknown => return Verdict::Accept { rewrite: false },
        Ancestry::Diverged | Ancestry::Beyond => true,
    };
    let not_shown = match lineage.ancestry {
        Ancestry::Beyond => format!(
            "the last applied commit is not among its {max} most recent ancestors (--max-history-depth={max}), so it cannot be shown to descend from it"
        ),
        _ => "it does not descend from the last applied commit: the history was rewritten or an older commit is served again".to_owned(),
    };
    match policy {
        HistoryRewrite::Allow => Verdict::Accept { rewrite },
        HistoryRewrite::Refuse => Verdict::Refuse {
            reason: if lineage.ancestry == Ancestry::Beyond {
                "beyond_depth"
            } else {
                "rewritten"
            },
            why: not_shown,
        },
        HistoryRewrite::Newer => match (lineage.tip_time, base_time) {
            (Some(tip), Some(base)) if tip > base => Verdict::Accept { rewrite },
            (Some(tip), Some(base)) => Verdict::Refuse {
                reason: "older",
                why: format!(
                    "{not_shown}, and its committer time {} is not later than the last applied commit's {}",
                    show(tip),
                    show(base)
                ),
            },
            _ => Verdict::Refuse {
                reason: "unknown_time",
                why: format!("{not_shown}, and the commit times to compare are not known"),
            },
        },
    }
}

/// Seconds since the epoch as RFC 3339.
fn show(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds).map_or_else(|_| seconds.to_string(), |t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn lineage(ancestry: Ancestry, tip_time: i64) -> Lineage {
        Lineage {
            ancestry,
            tip_time: Some(tip_time),
            base_time: None,
        }
    }

    const DIVERGED: Ancestry = Ancestry::Diverged;
    const ACCEPT: Verdict = Verdict::Accept { rewrite: false };
    const REWRITE: Verdict = Verdict::Accept { rewrite: true };

    fn reason_of(v: Verdict) -> &'static str {
        match v {
            Verdict::Refuse { reason, .. } => reason,
            Verdict::Accept { .. } => "accepted",
        }
    }

    #[test]
    fn a_descendant_is_accepted_by_every_policy() {
        let ahead = lineage(Ancestry::Descendant { distance: 3 }, 0);
        for policy in [
            HistoryRewrite::Refuse,
            HistoryRewrite::Newer,
            HistoryRewrite::Allow,
        ] {
            assert_eq!(judge(policy, &ahead, Some(100), 500), ACCEPT);
            assert_eq!(judge(policy, &Lineage::unknown(), None, 500), ACCEPT);
        }
    }

    #[test]
    fn refuse_refuses_a_rewrite_and_a_commit_beyond_the_bound_naming_it() {
        let rewritten = judge(HistoryRewrite::Refuse, &lineage(DIVERGED, 200), Some(100), 500);
        assert_eq!(reason_of(rewritten), "rewritten");
        let beyond = judge(
            HistoryRewrite::Refuse,
            &lineage(Ancestry::Beyond, 200),
            Some(100),
            5,
        );
        let Verdict::Refuse { reason, why } = beyond else {
            panic!("accepted")
        };
        assert_eq!(reason, "beyond_depth");
        assert!(why.contains("--max-history-depth=5"), "{why}");
    }

    #[test]
    fn newer_accepts_only_a_later_commit_and_allow_accepts_all() {
        let newer = HistoryRewrite::Newer;
        assert_eq!(judge(newer, &lineage(DIVERGED, 200), Some(100), 500), REWRITE);
        assert_eq!(
            judge(newer, &lineage(Ancestry::Beyond, 200), Some(100), 500),
            REWRITE
        );
        let older = judge(newer, &lineage(DIVERGED, 50), Some(100), 500);
        let Verdict::Refuse { reason, why } = older else {
            panic!("accepted")
        };
        assert_eq!(reason, "older");
        assert!(why.contains("1970-01-01T00:00:50Z"), "{why}");
        assert_eq!(
            reason_of(judge(newer, &lineage(DIVERGED, 100), Some(100), 500)),
            "older"
        );
        assert_eq!(
            reason_of(judge(newer, &lineage(DIVERGED, 200), None, 500)),
            "unknown_time"
        );
        let allow = HistoryRewrite::Allow;
        assert_eq!(judge(allow, &lineage(DIVERGED, 50), Some(100), 500), REWRITE);
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        history: HistoryArgs,
    }

    #[test]
    fn the_flags_default_to_refuse_within_500_and_the_shorthand_allows() {
        let cli = Cli::parse_from(["x"]);
        assert_eq!(cli.history.policy(), HistoryRewrite::Refuse);
        assert_eq!(cli.history.max_history_depth, 500);
        let cli = Cli::parse_from(["x", "--allow-history-rewrite", "--history-rewrite", "newer"]);
        assert_eq!(cli.history.policy(), HistoryRewrite::Allow);
        let cli = Cli::parse_from(["x", "--history-rewrite=newer", "--max-history-depth=5"]);
        assert_eq!(cli.history.policy(), HistoryRewrite::Newer);
        assert_eq!(cli.history.max_history_depth, 5);
        assert!(Cli::try_parse_from(["x", "--max-history-depth=0"]).is_err());
    }
}
