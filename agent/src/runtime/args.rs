//! The flag groups every Outpost binary flattens into its command line — [`AdminArgs`] (where the admin server
//! listens) and [`LeaseArgs`] (leader election) — and [`parse_duration`], the parser of every duration flag.
//!
//! They live here, not in a binary's `cli`, so that the runtime and the domain modules never import a
//! command line: arrows point from `cli` to here, never back.

use std::net::SocketAddr;
use std::time::Duration;

/// Parse `30s`, `5m`, `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (use e.g. 30s, 5m, 1h)"))
}

/// A duration within `min..=max`; `why` says what goes wrong outside (clap prefixes the flag's name).
fn parse_within(text: &str, min: Duration, max: Duration, why: &str) -> Result<Duration, String> {
    let value = parse_duration(text)?;
    if value < min || value > max {
        return Err(format!(
            "{} is outside {}..={}: {why}",
            humantime::format_duration(value),
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(value)
}

/// `--interval`: 1 s to a day. Shorter polls hammer the Git server (a thousand agents at 0 s is a denial of
/// service); a day is already "never".
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let why = "a shorter poll is a busy loop against the Git server, a longer one never notices a commit";
    parse_within(text, Duration::from_secs(1), Duration::from_secs(86_400), why)
}

/// `--git-timeout`: 1 s to an hour. Zero would fail every request; beyond an hour a stalled server is never
/// noticed.
pub fn parse_git_timeout(text: &str) -> Result<Duration, String> {
    let why = "it is how long a Git operation may go without progress before it counts as stalled";
    parse_within(text, Duration::from_secs(1), Duration::from_secs(3600), why)
}

/// `--resync-interval`: 10 s to a week. A full resync lists every managed kind; more often than that is load
/// without purpose.
pub fn parse_resync_interval(text: &str) -> Result<Duration, String> {
    let why =
        "a full resync re-reads every managed object: more often is needless load, less often hides drift";
    parse_within(
        text,
        Duration::from_secs(10),
        Duration::from_secs(7 * 86_400),
        why,
    )
}

/// `--lease-duration`: 2 s to 10 min. The holder renews every sixth of it and must succeed within two thirds,
/// so below 2 s renewals race the API server's own latency; above 10 min a dead leader blocks its standby for
/// too long.
pub fn parse_lease_duration(text: &str) -> Result<Duration, String> {
    let why = "renewals must succeed within two thirds of it: shorter races the API server, longer leaves a dead leader in place";
    parse_within(text, Duration::from_secs(2), Duration::from_secs(600), why)
}

/// `--debounce`: 10 ms to 10 min. Zero writes a commit per change (a commit storm on the control
/// repository); more than minutes leaves status stale.
pub fn parse_debounce(text: &str) -> Result<Duration, String> {
    let why = "zero makes a commit per change, more than minutes leaves status stale";
    parse_within(text, Duration::from_millis(10), Duration::from_secs(600), why)
}

/// Where the admin server (`/metrics`, `/healthz`, `/readyz`) listens.
///
/// The default is the agent's port; the status writer, which runs beside it in the same pod, moves its
/// default with `#[command(mut_arg("metrics_addr", |a| a.default_value("0.0.0.0:9091")))]`.
#[derive(clap::Args, Clone, Debug)]
pub struct AdminArgs {
    /// Address of the /metrics, /healthz and /readyz endpoints.
    #[arg(long, env = "OUTPOST_METRICS_ADDR", default_value = "0.0.0.0:9090")]
    pub metrics_addr: SocketAddr,
}

/// Leader election flags, shared by both binaries.
#[derive(clap::Args, Clone, Debug)]
pub struct LeaseArgs {
    /// Elect a leader with a Lease so only one replica acts (DaemonSet, replicas > 1).
    #[arg(long, env = "OUTPOST_LEADER_ELECTION")]
    pub leader_election: bool,

    /// Name of the Lease in --namespace.
    #[arg(long, env = "OUTPOST_LEASE_NAME")]
    pub lease_name: Option<String>,

    /// How long a leader's claim lasts: a standby takes over once the Lease has not changed for this long by
    /// its own clock; the leader stops acting two thirds of it after its last renewal began.
    #[arg(long, env = "OUTPOST_LEASE_DURATION", default_value = "15s", value_parser = parse_lease_duration)]
    pub lease_duration: Duration,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// A command line of just the shared groups, as a binary flattens them.
    #[derive(Parser, Debug)]
    struct Shared {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(flatten)]
        lease: LeaseArgs,
    }

    /// The same groups with the admin port moved, as the status writer does.
    #[derive(Parser, Debug)]
    #[command(mut_arg("metrics_addr", |a| a.default_value("0.0.0.0:9091")))]
    struct Moved {
        #[command(flatten)]
        admin: AdminArgs,
    }

    #[test]
    fn duration_flags_refuse_zero_and_absurd_values_with_the_reason() {
        assert_eq!(parse_interval("30s").unwrap(), Duration::from_secs(30));
        let zero = parse_interval("0s").unwrap_err();
        assert!(
            zero.contains("0s is outside 1s..=1day") && zero.contains("busy loop"),
            "{zero}"
        );
        assert!(parse_interval("2days").is_err());
        assert!(parse_resync_interval("1s").is_err());
        assert_eq!(parse_resync_interval("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_lease_duration("0s").is_err());
        assert!(parse_lease_duration("1h").is_err());
        assert_eq!(parse_lease_duration("3s").unwrap(), Duration::from_secs(3));
        assert!(parse_debounce("0s").is_err());
        assert_eq!(parse_debounce("200ms").unwrap(), Duration::from_millis(200));
        assert!(Shared::try_parse_from(["x", "--lease-duration", "0s"]).is_err());
    }

    #[test]
    fn durations_accept_units() {
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert!(parse_duration("5").is_err());
    }

    #[test]
    fn shared_flags_have_their_defaults() {
        let args = Shared::try_parse_from(["x"]).unwrap();
        assert_eq!(args.admin.metrics_addr.to_string(), "0.0.0.0:9090");
        assert!(!args.lease.leader_election);
        assert_eq!(args.lease.lease_name, None);
        assert_eq!(args.lease.lease_duration, Duration::from_secs(15));
    }

    #[test]
    fn a_binary_can_move_the_admin_default_and_the_flag_still_wins() {
        let args = Moved::try_parse_from(["x"]).unwrap();
        assert_eq!(args.admin.metrics_addr.to_string(), "0.0.0.0:9091");
        let args = Moved::try_parse_from(["x", "--metrics-addr", "127.0.0.1:1"]).unwrap();
        assert_eq!(args.admin.metrics_addr.to_string(), "127.0.0.1:1");
    }
}
