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

    /// How long a leader's claim lasts without renewal; a standby takes over after it.
    #[arg(long, env = "OUTPOST_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
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
