//! Command line of `outpost-status-writer`, consistent with the agent's: every flag also reads an
//! `OUTPOST_*` variable; the Git flags are the agent's [`GitArgs`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use outpost_agent::cli::{GitArgs, WatchArgs};
use outpost_agent::logging::LogFormat;
use outpost_agent::runtime::{AdminArgs, LeaseArgs, parse_debounce};

/// Outpost status writer: commits each bundle's ResourceBundleState to the control Git repository.
#[derive(Parser, Clone, Debug)]
#[command(
    name = "outpost-status-writer",
    version,
    about,
    after_help = "Hub side: `outpost-status-writer verify --allowed-signers FILE` checks that each cluster signed its status (see `outpost-status-writer verify --help`)."
)]
// Beside the agent in the same pod: the agent's admin port is taken.
#[command(mut_arg("metrics_addr", |a| a.default_value("0.0.0.0:9091")))]
pub struct Args {
    /// Control repository settings (the same repository as the resources is fine).
    #[command(flatten)]
    pub git: GitArgs,

    /// Branch to push status to: a name, or a template with {cluster}, {cid}, {app} and {bundle} (EMCO git2go
    /// mode: {cluster}; EMCO github mode: {cluster}-{cid}-{app}). Created from the default branch when missing.
    ///
    /// {cluster} is --cluster, {bundle} the bundle name, {cid} and {app} the context id and app of an EMCO
    /// bundle. For a plain-layout bundle {app} is the bundle name and {cid} is empty; an empty {cid} between two
    /// separators (-, _, . or /) takes one along: {cluster}-{cid}-{app} gives plain bundle web {cluster}-web.
    /// Unknown placeholders and templates that do not give valid branch names are refused at startup.
    #[arg(long = "git-branch", env = "OUTPOST_GIT_BRANCH", default_value = "main")]
    pub git_branch: String,

    /// This cluster's directory name under clusters/ (EMCO: provider+cluster).
    #[arg(long, env = "OUTPOST_CLUSTER")]
    pub cluster: String,

    /// Namespace of the agent's inventories.
    #[arg(long, env = "OUTPOST_NAMESPACE", default_value = "outpost-system")]
    pub namespace: String,

    /// Coalesce status changes over this window into one commit.
    #[arg(long, env = "OUTPOST_DEBOUNCE", default_value = "5s", value_parser = parse_debounce)]
    pub debounce: Duration,

    /// Write the newest sync time into status that has not otherwise changed once the one it holds is this much
    /// older (0: never). Status changes only when something a reader acts on does (revision, state, errors,
    /// health, objects), so resyncs make no commits; the newest sync time is in the inventory and in
    /// outpost_last_successful_sync_timestamp_seconds.
    #[arg(long, env = "OUTPOST_STATUS_HEARTBEAT", default_value = "24h", value_parser = parse_heartbeat)]
    pub status_heartbeat: Duration,

    /// Commit author name.
    #[arg(long, env = "OUTPOST_AUTHOR_NAME", default_value = "Outpost status writer")]
    pub author_name: String,

    /// Commit author email.
    #[arg(long, env = "OUTPOST_AUTHOR_EMAIL", default_value = "outpost@localhost")]
    pub author_email: String,

    /// Sign every status commit with this OpenSSH private key (ed25519 or ECDSA P-256, unencrypted; principal =
    /// --cluster), as git's gpg.format=ssh does; turns carrying off. The hub checks with `outpost-status-writer
    /// verify`.
    #[arg(long, env = "OUTPOST_SIGNING_KEY_FILE")]
    pub signing_key_file: Option<PathBuf>,

    /// Write the current status once and exit; non-zero exit status on any error.
    #[arg(long, env = "OUTPOST_ONCE")]
    pub once: bool,

    /// Where the admin server listens (default 0.0.0.0:9091).
    #[command(flatten)]
    pub admin: AdminArgs,

    /// Directory for the Git cache of the control repository.
    #[arg(
        long,
        env = "OUTPOST_STATUS_CACHE_DIR",
        default_value = "/var/cache/outpost-status"
    )]
    pub cache_dir: PathBuf,

    /// Log format: text or json.
    #[arg(long, env = "OUTPOST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Leader election.
    #[command(flatten)]
    pub lease: LeaseArgs,

    /// Where watches may look.
    #[command(flatten)]
    pub watch: WatchArgs,
}

/// `--status-heartbeat`: 0 (never) or 1 s to 30 days.
fn parse_heartbeat(text: &str) -> Result<Duration, String> {
    let value = outpost_agent::runtime::parse_duration(text.trim())?;
    if !value.is_zero() && !(Duration::from_secs(1)..=Duration::from_secs(30 * 86_400)).contains(&value) {
        return Err(format!("{value:?} is outside 1s..=30days: use 0 for never"));
    }
    Ok(value)
}

impl Args {
    /// `--status-heartbeat`, `None` when 0.
    pub fn heartbeat(&self) -> Option<Duration> {
        (!self.status_heartbeat.is_zero()).then_some(self.status_heartbeat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_flag_has_help_and_an_env_variable() {
        let cmd = Args::command();
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            assert!(arg.get_help().is_some(), "--{id} has no help");
            let env = arg
                .get_env()
                .unwrap_or_else(|| panic!("--{id} has no env variable"));
            assert!(env.to_string_lossy().starts_with("OUTPOST_"), "--{id}");
        }
        cmd.debug_assert();
    }

    #[test]
    fn defaults_match_the_cli_contract() {
        let args = Args::try_parse_from(["w", "--git-url", "https://h/r.git", "--cluster", "c"]).unwrap();
        assert_eq!(args.git_branch, "main");
        assert_eq!(args.debounce, Duration::from_secs(5));
        assert_eq!(args.admin.metrics_addr.to_string(), "0.0.0.0:9091");
        assert_eq!(args.namespace, "outpost-system");
        assert_eq!(args.heartbeat(), Some(Duration::from_secs(86_400)));
    }

    #[test]
    fn a_zero_heartbeat_is_never_and_a_sub_second_one_is_refused() {
        let parse = |h: &str| {
            Args::try_parse_from([
                "w",
                "--git-url",
                "https://h/r.git",
                "--cluster",
                "c",
                "--status-heartbeat",
                h,
            ])
        };
        assert_eq!(parse("0").unwrap().heartbeat(), None);
        assert_eq!(parse("0s").unwrap().heartbeat(), None);
        assert_eq!(parse("30m").unwrap().heartbeat(), Some(Duration::from_secs(1800)));
        let err = parse("10ms").unwrap_err().to_string();
        assert!(
            err.contains("--status-heartbeat") && err.contains("0 for never"),
            "{err}"
        );
    }
}
