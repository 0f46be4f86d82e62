//! Command line of `outpost-agent`. Every flag also reads an `OUTPOST_*` environment variable, so the Helm
//! chart can configure the pod through env alone. [`GitArgs`] is shared with the status writer.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::cmd::status::Format as StatusFormat;
use crate::logging::LogFormat;
use crate::runtime::{AdminArgs, LeaseArgs, parse_interval, parse_resync_interval};
use crate::secret::Secret;
use crate::source::{self, Auth, GitRef, RepoUrl};

/// Parse a share between 0 and 1.
pub fn parse_ratio(text: &str) -> Result<f64, String> {
    let v: f64 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not between 0 and 1"))
    }
}

/// How to reach and authenticate to a Git repository (shared by both binaries).
#[derive(clap::Args, Clone, Debug)]
pub struct GitArgs {
    /// Repository: https://, ssh://, git@host:path, file:// or a local path (required to sync; `suspend`,
    /// `resume` and `reconcile` need none).
    #[arg(long = "git-url", env = "OUTPOST_GIT_URL", default_value = "")]
    pub url: String,

    /// Username sent with the token over HTTPS.
    #[arg(long = "git-username", env = "OUTPOST_GIT_USERNAME", default_value = "git")]
    pub username: String,

    /// File holding the HTTPS token or password; re-read when it changes.
    #[arg(long = "git-token-file", env = "OUTPOST_GIT_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// The token itself, from the `OUTPOST_GIT_TOKEN` variable only (prefer --git-token-file). There is no
    /// command-line flag for it: argv is world-readable in /proc. Held as a [`Secret`], so printing the flags
    /// never shows it.
    #[arg(skip = std::env::var("OUTPOST_GIT_TOKEN").ok().map(Secret::new))]
    pub token: Option<Secret>,

    /// Send credentials over plain http:// (a trusted link only: they cross it unencrypted).
    #[arg(long = "git-allow-insecure-http", env = "OUTPOST_GIT_ALLOW_INSECURE_HTTP")]
    pub allow_insecure_http: bool,

    /// PEM file of CA certificates trusted for the HTTPS Git server.
    #[arg(long = "git-ca-file", env = "OUTPOST_GIT_CA_FILE")]
    pub ca_file: Option<PathBuf>,

    /// Trust only the CAs of --git-ca-file for the HTTPS Git server, not the system's: a certificate that any
    /// public CA issued for the mirror's name is refused.
    #[arg(long = "git-ca-only", env = "OUTPOST_GIT_CA_ONLY", requires = "ca_file")]
    pub ca_only: bool,

    /// SSH private key file for ssh:// and git@host:path URLs.
    #[arg(long = "git-ssh-key-file", env = "OUTPOST_GIT_SSH_KEY_FILE")]
    pub ssh_key_file: Option<PathBuf>,

    /// known_hosts file for SSH; host keys are checked strictly against it.
    #[arg(long = "git-known-hosts-file", env = "OUTPOST_GIT_KNOWN_HOSTS_FILE")]
    pub known_hosts_file: Option<PathBuf>,

    /// How long a Git operation (fetch, push, ref listing) may go without progress before it counts as stalled
    /// and is abandoned: reported, and tried again at the next poll.
    #[arg(
        long = "git-timeout",
        env = "OUTPOST_GIT_TIMEOUT",
        default_value = "60s",
        value_parser = crate::runtime::args::parse_git_timeout
    )]
    pub timeout: std::time::Duration,
}

impl GitArgs {
    /// Parse the URL; credentials over plain http:// are refused unless allowed.
    pub fn repo_url(&self) -> Result<RepoUrl, source::url::Error> {
        if self.url.trim().is_empty() {
            return Err(source::url::Error::Missing);
        }
        let url = RepoUrl::parse(&self.url)?;
        let credentials = self.token_file.is_some() || self.token.is_some() || url.has_embedded_credentials();
        if url.is_plain_http() && credentials && !self.allow_insecure_http {
            return Err(source::url::Error::InsecureCredentials { url: url.to_string() });
        }
        Ok(url)
    }

    /// Credentials and TLS settings.
    pub fn auth(&self) -> Auth {
        Auth {
            username: self.username.clone(),
            token_file: self.token_file.clone(),
            token: self.token.clone(),
            ca_file: self.ca_file.clone(),
            ca_only: self.ca_only,
            ssh_key_file: self.ssh_key_file.clone(),
            known_hosts_file: self.known_hosts_file.clone(),
            timeout: Some(self.timeout),
        }
    }
}

/// Caps on what one commit may make the agent download and read; breaking one fails the sync before anything
/// is applied or pruned. Sizes take KiB, MiB or GiB.
#[derive(clap::Args, Clone, Debug)]
pub struct LimitArgs {
    /// Largest file read below the cluster path.
    #[arg(long, env = "OUTPOST_MAX_BLOB_BYTES", default_value = "16MiB", value_parser = source::limits::parse_bytes)]
    pub max_blob_bytes: u64,

    /// Most files read below the cluster path.
    #[arg(long, env = "OUTPOST_MAX_FILES", default_value = "20000", value_parser = source::limits::parse_count)]
    pub max_files: u64,

    /// Deepest directory nesting below the cluster path.
    #[arg(long, env = "OUTPOST_MAX_TREE_DEPTH", default_value = "64", value_parser = source::limits::parse_count)]
    pub max_tree_depth: u64,

    /// Most bytes read below the cluster path (files and directory listings together).
    #[arg(long, env = "OUTPOST_MAX_TOTAL_BYTES", default_value = "24MiB", value_parser = source::limits::parse_bytes)]
    pub max_total_bytes: u64,

    /// Most bytes one fetch may download (the whole repository's pack); an object in it may inflate to half.
    #[arg(long, env = "OUTPOST_MAX_FETCH_BYTES", default_value = "96MiB", value_parser = source::limits::parse_bytes)]
    pub max_fetch_bytes: u64,
}

impl LimitArgs {
    /// The source's caps.
    pub fn limits(&self) -> source::Limits {
        source::Limits {
            max_blob_bytes: self.max_blob_bytes,
            max_files: self.max_files,
            max_tree_depth: self.max_tree_depth,
            max_total_bytes: self.max_total_bytes,
            max_fetch_bytes: self.max_fetch_bytes,
        }
    }
}

/// Where watches may look (shared by both binaries): the whole cluster, or only namespaces RBAC allows.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct WatchArgs {
    /// Comma-separated namespaces RBAC lets this process watch (the chart sets rbac.namespaces in namespaced
    /// mode): one watch per namespace instead of cluster-wide ones, which such RBAC forbids; cluster-scoped
    /// kinds are then not watched, and say so. Empty: cluster-wide watches.
    #[arg(
        long = "watch-namespaces",
        env = "OUTPOST_WATCH_NAMESPACES",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,
}

impl WatchArgs {
    /// The scope these flags describe.
    pub fn scope(&self) -> crate::watch_scope::WatchScope {
        crate::watch_scope::WatchScope::from_list(&self.namespaces)
    }
}

/// What the process does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Keep the cluster in sync (the daemon, or one reconcile with --once).
    #[default]
    Run,
    /// Print what the next sync would create, update (field diff) and prune; change nothing.
    Plan,
    /// Print what is synced, per bundle.
    Status,
    /// Suspend the agent, or BUNDLE: nothing is applied, pruned or reverted until `resume`.
    Suspend,
    /// Resume the agent, or BUNDLE (also over `suspend: true` in its outpost.yaml).
    Resume,
    /// Ask for a full sync now (of everything; BUNDLE names where the request is recorded) and wait for it.
    Reconcile,
    /// Take Outpost off the cluster: suspend the agent, then let every managed object go (it keeps running,
    /// without our label) — or delete them all with --prune — and remove the inventories.
    Uninstall,
}

/// Outpost agent: keeps this cluster equal to `clusters/<cluster>/` in a Git repository.
#[derive(Parser, Clone, Debug)]
#[command(name = "outpost-agent", version, about)]
pub struct Args {
    /// run (default), plan, status, suspend, resume or reconcile.
    #[arg(value_enum, env = "OUTPOST_MODE", default_value_t = Mode::Run)]
    pub mode: Mode,

    /// The bundle `suspend`, `resume` and `reconcile` act on (all of the agent without one).
    #[arg(env = "OUTPOST_BUNDLE")]
    pub bundle: Option<String>,

    /// What drift correction does where neither Git (outpost.yaml `drift:`) nor an operator
    /// (`outpost.dev/drift` on the inventory) says: revert it, or only report it.
    #[arg(long, env = "OUTPOST_DRIFT_MODE", value_enum, default_value_t = crate::policy::DriftMode::Revert)]
    pub drift_mode: crate::policy::DriftMode,

    /// With `uninstall`: delete every managed object (reverse stage order, the guards of a normal prune)
    /// instead of leaving them running.
    #[arg(long = "prune", env = "OUTPOST_UNINSTALL_PRUNE")]
    pub uninstall_prune: bool,

    /// What happens to objects that leave Git where outpost.yaml (`prune:`) does not say: delete them, or
    /// orphan them (left running, dropped from the inventory).
    #[arg(long, env = "OUTPOST_PRUNE_POLICY", value_enum, default_value_t = crate::policy::PrunePolicy::Delete)]
    pub prune_policy: crate::policy::PrunePolicy,

    /// Git repository settings.
    #[command(flatten)]
    pub git: GitArgs,

    /// Branch (main), refs/tags/NAME, or a full commit id to follow.
    #[arg(long = "git-ref", env = "OUTPOST_GIT_REF", default_value = "main")]
    pub git_ref: String,

    /// This cluster's directory name under clusters/ (EMCO: provider+cluster).
    #[arg(long, env = "OUTPOST_CLUSTER")]
    pub cluster: String,

    /// Namespace of the agent's own objects (inventories, leases, events).
    #[arg(long, env = "OUTPOST_NAMESPACE", default_value = "outpost-system")]
    pub namespace: String,

    /// Time between polls of the Git ref (±10% jitter).
    #[arg(long, env = "OUTPOST_INTERVAL", default_value = "30s", value_parser = parse_interval)]
    pub interval: Duration,

    /// Where the first poll after a start falls: `cluster` waits a share of --interval fixed by a hash of
    /// --cluster (a fleet restarted together spreads out; a new install, with no inventory, polls at once),
    /// `none` polls at once.
    #[arg(long, env = "OUTPOST_POLL_PHASE", value_enum, default_value_t = crate::poll_phase::PollPhase::Cluster)]
    pub poll_phase: crate::poll_phase::PollPhase,

    /// Politeness towards the Git server: request cap, longest Retry-After honoured.
    #[command(flatten)]
    pub throttle: source::throttle::ThrottleArgs,

    /// Reconcile once and exit; non-zero exit status on any error.
    #[arg(long, env = "OUTPOST_ONCE")]
    pub once: bool,

    /// Where the admin server listens.
    #[command(flatten)]
    pub admin: AdminArgs,

    /// Caps on what one commit may make the agent read.
    #[command(flatten)]
    pub limits: LimitArgs,

    /// Age identities for SOPS-encrypted manifests.
    #[command(flatten)]
    pub sops: crate::manifest::sops::SopsArgs,

    /// When new commits may be applied (`--sync-window`).
    #[command(flatten)]
    pub windows: crate::control::windows::WindowArgs,

    /// Directory for the Git cache (an emptyDir in the pod).
    #[arg(long, env = "OUTPOST_CACHE_DIR", default_value = "/var/cache/outpost")]
    pub cache_dir: PathBuf,

    /// Concurrent server-side apply requests within one stage.
    #[arg(long, env = "OUTPOST_APPLY_CONCURRENCY", default_value_t = 16)]
    pub apply_concurrency: usize,

    /// Take over fields other field managers own (server-side apply force).
    #[arg(long, env = "OUTPOST_FORCE_CONFLICTS", default_value_t = true, action = clap::ArgAction::Set)]
    pub force_conflicts: bool,

    /// Field managers whose fields the agent takes over in objects it applies (comma-separated, `none` for
    /// none): the tools that created them before, so fields Git drops are removed.
    #[arg(
        long,
        env = "OUTPOST_ADOPT_FIELD_MANAGERS",
        value_delimiter = ',',
        default_values_t = crate::apply::adopt::DEFAULT_MANAGERS.map(String::from)
    )]
    pub adopt_field_managers: Vec<String>,

    /// Allow an empty or missing cluster path to delete every managed object.
    #[arg(long, env = "OUTPOST_ALLOW_EMPTY")]
    pub allow_empty: bool,

    /// Let Git write into the agent's own namespace (--namespace), where its inventories, credentials and Lease
    /// live; refused by default.
    #[arg(long, env = "OUTPOST_ALLOW_OWN_NAMESPACE")]
    pub allow_own_namespace: bool,

    /// Prune Namespaces, CRDs and PersistentVolumes (Claims), which delete what they hold, without their
    /// `outpost.dev/prune: allow-cascade` annotation.
    #[arg(long, env = "OUTPOST_ALLOW_CASCADING_PRUNE")]
    pub allow_cascading_prune: bool,

    /// Refuse a reconcile that would delete more than this share (0-1) of all managed objects (off by default:
    /// EMCO terminating a cluster's last app deletes all of them).
    #[arg(long, env = "OUTPOST_MAX_PRUNE_RATIO", value_parser = parse_ratio)]
    pub max_prune_ratio: Option<f64>,

    /// Full re-sync (re-check every object even if the commit did not change).
    #[arg(long, env = "OUTPOST_RESYNC_INTERVAL", default_value = "1h", value_parser = parse_resync_interval)]
    pub resync_interval: Duration,

    /// Log format: text or json.
    #[arg(long, env = "OUTPOST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Output of `status`: table, json or yaml (every object with its health).
    #[arg(long, short = 'o', env = "OUTPOST_OUTPUT", value_enum, default_value_t = StatusFormat::Table)]
    pub output: StatusFormat,

    /// Leader election.
    #[command(flatten)]
    pub lease: LeaseArgs,

    /// Where drift watches may look.
    #[command(flatten)]
    pub watch: WatchArgs,

    /// Commit signature verification.
    #[command(flatten)]
    pub verify: crate::source::verify::VerifyArgs,
    /// Freshness: new commits that do not descend from the last applied one.
    #[command(flatten)]
    pub history: crate::reconcile::freshness::HistoryArgs,
    /// Which ServiceAccount each bundle acts as; cluster-scoped lockdown.
    #[command(flatten)]
    pub identity: crate::identity::IdentityArgs,
}

/// Field manager of every server-side apply we send (defined in `apply`; kept here for existing users).
pub use crate::apply::FIELD_MANAGER;

impl Args {
    /// The source configuration these flags describe.
    pub fn source_config(&self) -> Result<source::Config, source::url::Error> {
        Ok(source::Config {
            url: self.git.repo_url()?,
            reference: GitRef::parse(&self.git_ref),
            auth: self.git.auth(),
            cache_dir: self.cache_dir.clone(),
            limits: self.limits.limits(),
            throttle: self.throttle.throttle(),
        })
    }

    /// Safety settings from these flags.
    pub fn safety(&self) -> crate::plan::Safety {
        crate::plan::Safety {
            allow_empty: self.allow_empty,
            max_prune_ratio: self.max_prune_ratio,
            allow_cascading_prune: self.allow_cascading_prune,
        }
    }

    /// Apply settings from these flags.
    pub fn apply_options(&self) -> crate::apply::Options {
        crate::apply::Options {
            field_manager: FIELD_MANAGER.to_owned(),
            force_conflicts: self.force_conflicts,
            concurrency: self.apply_concurrency,
            dry_run: false,
            adopt_from: self
                .adopt_field_managers
                .iter()
                .map(|m| m.trim())
                .filter(|m| !m.is_empty() && *m != "none")
                .map(str::to_owned)
                .collect(),
        }
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
        let args = Args::try_parse_from(["outpost-agent", "--git-url", "https://h/r.git", "--cluster", "c"])
            .unwrap();
        assert_eq!(args.git_ref, "main");
        assert_eq!(args.git.username, "git");
        assert_eq!(args.namespace, "outpost-system");
        assert_eq!(args.interval, Duration::from_secs(30));
        assert_eq!(args.admin.metrics_addr.to_string(), "0.0.0.0:9090");
        assert_eq!(args.apply_concurrency, 16);
        assert!(args.force_conflicts);
        assert_eq!(args.limits.limits(), source::Limits::default());
        assert!(!args.allow_empty);
        assert!(!args.allow_cascading_prune);
        assert_eq!(args.max_prune_ratio, None);
        assert_eq!(args.resync_interval, Duration::from_secs(3600));
        assert_eq!(args.output, StatusFormat::Table);
        assert_eq!(args.watch.scope(), crate::watch_scope::WatchScope::Cluster);
        assert_eq!(args.poll_phase, crate::poll_phase::PollPhase::Cluster);
        assert_eq!(args.throttle.git_max_requests_per_minute, 60);
        assert_eq!(args.throttle.git_max_retry_after, Duration::from_secs(3600));
    }

    #[test]
    fn watch_namespaces_take_a_comma_separated_list() {
        let args = Args::try_parse_from([
            "outpost-agent",
            "--git-url",
            "https://h/r.git",
            "--cluster",
            "c",
            "--watch-namespaces",
            "a,b",
        ])
        .unwrap();
        assert_eq!(
            args.watch.scope(),
            crate::watch_scope::WatchScope::Namespaces(["a".to_owned(), "b".to_owned()].into())
        );
    }

    #[test]
    fn status_output_takes_a_short_flag() {
        let args = Args::try_parse_from([
            "outpost-agent",
            "status",
            "-o",
            "json",
            "--git-url",
            "https://h/r.git",
            "--cluster",
            "c",
        ])
        .unwrap();
        assert_eq!((args.mode, args.output), (Mode::Status, StatusFormat::Json));
    }

    #[test]
    fn adopted_field_managers_default_to_the_deployment_tools_and_none_turns_adoption_off() {
        let base = ["outpost-agent", "--git-url", "https://h/r.git", "--cluster", "c"];
        let args = Args::try_parse_from(base).unwrap();
        assert_eq!(
            args.apply_options().adopt_from,
            crate::apply::adopt::DEFAULT_MANAGERS
        );
        let args =
            Args::try_parse_from([&base[..], &["--adopt-field-managers", "helm,argocd-controller"]].concat())
                .unwrap();
        assert_eq!(args.apply_options().adopt_from, ["helm", "argocd-controller"]);
        let args = Args::try_parse_from([&base[..], &["--adopt-field-managers", "none"]].concat()).unwrap();
        assert!(args.apply_options().adopt_from.is_empty());
    }

    #[test]
    fn prune_ratio_must_be_a_share() {
        assert_eq!(parse_ratio("0.25"), Ok(0.25));
        assert!(parse_ratio("1.5").is_err());
        assert!(parse_ratio("ten").is_err());
    }
}
