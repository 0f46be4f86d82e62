//! The long-running process around a binary's work, the same for the agent and the status writer.
//!
//! [`Process::start`] binds and serves the admin endpoints with the binary's metrics registry and starts
//! listening for signals. [`Process::elect`] waits as a ready standby until this replica holds the Lease (or
//! does nothing when leader election is off). The binary then loops over its own work, racing every wait
//! against [`Process::stopped`] — a signal, or the Lease lost — and ends with [`Process::stop`], which stops
//! the admin server and says whether that was a clean shutdown. Readiness leaves through
//! [`Process::set_ready`]; the leader metric through the binary's own callback, so this module knows no
//! binary's metrics type.

use std::io;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use kube::Client;
use prometheus_client::registry::Registry;
use tokio::sync::oneshot;
use tracing::{Instrument, error, info, info_span};

use super::admin::{self, AdminState, ROLE_LEADER, ROLE_SINGLE, ROLE_STANDBY, Readiness};
use super::args::{AdminArgs, LeaseArgs};
use super::leadership::{Elector, Leadership, identity};
use super::shutdown::Shutdown;

/// Why a work loop stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// A signal asked for it: drain and exit cleanly.
    Shutdown,
    /// Another replica holds the Lease now: exit with an error so Kubernetes restarts us as a standby.
    LeadershipLost,
}

/// The process stopped because it lost the Lease; each binary turns this into its own error.
#[derive(Debug, thiserror::Error)]
#[error("leadership lost: another replica acts now")]
pub struct LeadershipLost;

/// How a binary stands in leader election; fixed per binary, so a `const` in its `run` module.
#[derive(Clone, Copy, Debug)]
pub struct Candidate {
    /// Name of the Lease when `--lease-name` is not given: one Lease per binary.
    pub default_lease: &'static str,
    /// `/readyz` reason from winning until the first work succeeds (e.g. "leader, first sync pending").
    pub until_first_success: &'static str,
}

/// The process: admin server, signals and leadership. See the module docs for the life cycle.
#[derive(Debug)]
pub struct Process {
    /// What `/readyz` answers; set here as the election goes, by the binary through `set_ready`.
    readiness: Readiness,
    /// The signals' verdict, raced by the work loop and handed to blocking work as a flag.
    shutdown: Shutdown,
    /// Won in an election, or held alone; raced by the work loop.
    leadership: Leadership,
    /// Tells the admin server to stop accepting and drain; dropping it does the same.
    stop_admin: Option<oneshot::Sender<()>>,
}

impl Process {
    /// Binds the admin server to `args.metrics_addr`, serves `registry` and the readiness there, and listens
    /// for SIGTERM and Ctrl-C. Fails only when the address cannot be bound.
    pub async fn start(args: &AdminArgs, registry: Registry) -> io::Result<Self> {
        let listener = admin::bind(args.metrics_addr).await?;
        let readiness = Readiness::new();
        let state = AdminState::new(registry, readiness.clone());
        let (stop_admin, stopped) = oneshot::channel::<()>();
        tokio::spawn(
            async move {
                let stopped = async {
                    let _ = stopped.await;
                };
                if let Err(e) = admin::serve(listener, state, stopped).await {
                    error!(error = %e, "Admin server stopped");
                }
            }
            .instrument(info_span!("admin")),
        );
        Ok(Process {
            readiness,
            shutdown: Shutdown::on_signals(),
            leadership: Leadership::unelected(),
            stop_admin: Some(stop_admin),
        })
    }

    /// With `--leader-election`, waits as a ready standby until this replica holds the Lease in `namespace`,
    /// then reports it not ready until the first work succeeds; `set_leader` mirrors the role into the
    /// binary's metrics. Without it, returns at once. `Err` when a signal came first.
    pub async fn elect(
        &mut self,
        client: Client,
        lease: &LeaseArgs,
        namespace: &str,
        candidate: &Candidate,
        set_leader: impl Fn(bool),
    ) -> Result<(), Stop> {
        if !lease.leader_election {
            return Ok(());
        }
        set_leader(false);
        self.readiness.set_ready(ROLE_STANDBY);
        let name = lease
            .lease_name
            .clone()
            .unwrap_or_else(|| candidate.default_lease.to_owned());
        let elector = Elector::new(client, namespace, &name, identity(), lease.lease_duration);
        info!(lease = %name, identity = %elector.identity(), "Waiting for leadership");
        tokio::select! {
            leadership = elector.acquire() => self.leadership = leadership,
            () = self.shutdown.requested() => return Err(Stop::Shutdown),
        }
        set_leader(true);
        self.readiness.set_not_ready(candidate.until_first_success);
        Ok(())
    }

    /// Marks the process ready in its role (leader when elected, single otherwise): the work succeeded.
    pub fn set_ready(&self) {
        let role = if self.leadership.is_elected() {
            ROLE_LEADER
        } else {
            ROLE_SINGLE
        };
        self.readiness.set_ready(role);
    }

    /// The work loop made progress and will beat again within `window`, or `/healthz` fails.
    pub fn beat(&self, window: std::time::Duration) {
        self.readiness.beat(window);
    }

    /// Marks the process not ready, saying why (the work is stuck: a stalled Git server).
    pub fn set_not_ready(&self, reason: &str) {
        self.readiness.set_not_ready(reason);
    }

    /// The flag blocking work polls; raised by the first signal.
    pub fn interrupt(&self) -> Arc<AtomicBool> {
        self.shutdown.interrupt()
    }

    /// Whether a signal asked the process to stop: finish nothing new.
    pub fn shutdown_requested(&self) -> bool {
        self.shutdown.is_requested()
    }

    /// Resolves when the work must stop, saying why; a signal wins over a lost Lease. Cancel-safe: race it
    /// against every wait of the work loop.
    pub async fn stopped(&mut self) -> Stop {
        tokio::select! {
            biased;
            () = self.shutdown.requested() => Stop::Shutdown,
            () = self.leadership.lost() => Stop::LeadershipLost,
        }
    }

    /// Resolves the moment leadership is lost (never without an election, nor on a signal, which lets work
    /// drain). Cancel-safe: race the work itself against it, so a long apply stops at once.
    pub async fn lost(&mut self) {
        self.leadership.lost().await;
    }

    /// Stops the admin server. `Ok` after a shutdown (logged as "Stopped"), [`LeadershipLost`] otherwise —
    /// then the interrupt flag is raised too, so blocking Git work still running ends without acting.
    pub fn stop(mut self, why: Stop) -> Result<(), LeadershipLost> {
        if let Some(stop_admin) = self.stop_admin.take() {
            let _ = stop_admin.send(());
        }
        if why == Stop::LeadershipLost {
            self.shutdown
                .interrupt()
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        match why {
            Stop::Shutdown => {
                info!("Stopped");
                Ok(())
            }
            Stop::LeadershipLost => Err(LeadershipLost),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use futures::FutureExt;

    use super::*;

    async fn started() -> Process {
        let args = AdminArgs {
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        Process::start(&args, Registry::default()).await.expect("start")
    }

    /// A client that is never called: without leader election the process must not talk to the API server.
    fn unreachable_client() -> Client {
        let config = kube::Config::new("http://127.0.0.1:1".parse().expect("url"));
        Client::try_from(config).expect("client")
    }

    #[tokio::test]
    async fn without_leader_election_the_process_acts_alone_until_a_signal() {
        let mut process = started().await;
        let lease = LeaseArgs {
            leader_election: false,
            lease_name: None,
            lease_duration: Duration::from_secs(15),
        };
        let candidate = Candidate {
            default_lease: "outpost-test",
            until_first_success: "first work pending",
        };
        let elect = process.elect(unreachable_client(), &lease, "ns", &candidate, |_| {
            panic!("no leader metric without election")
        });
        assert_eq!(elect.await, Ok(()));
        assert!(!process.readiness.is_ready(), "ready before the first work");

        process.set_ready();
        assert!(process.readiness.is_ready());
        assert_eq!(process.readiness.role(), ROLE_SINGLE);
        assert!(!process.shutdown_requested());
        assert_eq!(process.stopped().now_or_never(), None, "stopped without a signal");
    }

    #[tokio::test]
    async fn stop_is_clean_after_a_shutdown_and_an_error_after_a_lost_lease() {
        assert!(started().await.stop(Stop::Shutdown).is_ok());
        assert!(started().await.stop(Stop::LeadershipLost).is_err());
    }
}
