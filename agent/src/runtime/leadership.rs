//! Leader election with a `coordination.k8s.io/v1` Lease, so that with a DaemonSet or several replicas exactly
//! one agent (and one status writer) acts — never two at once, whatever the nodes' clocks say.
//!
//! A candidate polls the Lease every [`Timing::retry`] and takes it with an optimistic update
//! (resourceVersion precondition: two candidates never both win) only when it is free or has not changed for
//! its duration by this process's own clock ([`Observed`]). The holder renews every [`Timing::retry`]; each
//! attempt may run only until the renew deadline (two thirds of the duration after the start of the last
//! successful renewal), so a hung API call cannot keep it "leader". Leadership is lost — reported on a
//! channel that [`Leadership::lost`] turns into a future the binaries race their work against — when that
//! deadline passes without a renewal, when a renewal finds another holder, or the moment a watch on the Lease
//! shows another holder or its deletion. The binaries then cancel their work and exit, so Kubernetes restarts
//! them as standbys; all of that happens a third of the duration before any candidate may take over.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{Instrument, info, info_span, warn};

pub use super::observed::{Observed, Timing};

/// Errors talking to the API server about the Lease.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server (or the way to it) refused or failed the request.
    #[error("lease {namespace}/{name}: {source}")]
    Api {
        /// Namespace of the Lease, for the message.
        namespace: String,
        /// Name of the Lease, for the message.
        name: String,
        /// What the API server (or the way to it) said.
        #[source]
        source: kube::Error,
    },
    /// No answer before the renew deadline: the attempt was abandoned.
    #[error("lease {namespace}/{name}: no answer from the API server before the renew deadline")]
    TimedOut {
        /// Namespace of the Lease, for the message.
        namespace: String,
        /// Name of the Lease, for the message.
        name: String,
    },
}

impl Error {
    /// The kind of failure, as a metric label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Api { .. } => "lease",
            Error::TimedOut { .. } => "lease_timeout",
        }
    }
}

/// What one attempt on the Lease found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// We hold it now (created, renewed or taken over).
    Held,
    /// Another candidate holds it and has not let it expire.
    Other(String),
    /// Someone wrote it between our read and our write; try again.
    Conflict,
}

/// Why a holder stopped holding.
#[derive(Debug, thiserror::Error)]
enum Lost {
    /// The renew deadline passed without a successful renewal.
    #[error("no successful renewal within the renew deadline")]
    Deadline,
    /// Another candidate holds the Lease (seen by a renewal or the watch).
    #[error("{0:?} holds the Lease now")]
    Taken(String),
    /// The Lease was deleted under us.
    #[error("the Lease was deleted")]
    Deleted,
}

/// A candidate for one Lease.
pub struct Elector {
    /// Leases in the namespace of ours.
    api: Api<Lease>,
    /// Name of the Lease all candidates compete for.
    name: String,
    /// Namespace of the Lease, for messages.
    namespace: String,
    /// What this candidate writes as holder; unique per process.
    identity: String,
    /// Duration, renew deadline and retry period.
    timing: Timing,
    /// The Lease as last seen, with when by our clock: decides expiry.
    observed: Observed,
}

/// This process's identity: the pod name when known, else host and process id.
pub fn identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    })
}

impl Elector {
    /// A candidate for Lease `name` in `namespace`.
    pub fn new(client: Client, namespace: &str, name: &str, identity: String, duration: Duration) -> Self {
        Elector {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            identity,
            timing: Timing::new(duration),
            observed: Observed::default(),
        }
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Wait until this candidate holds the Lease; then renew it in the background. The returned
    /// [`Leadership`] reports when it is lost.
    pub async fn acquire(mut self) -> Leadership {
        let valid_until = loop {
            let started = Instant::now();
            let deadline = started + self.timing.renew_deadline;
            match self.attempt(deadline).await {
                Ok(Claim::Held) => break deadline,
                Ok(_) => {}
                Err(e) => warn!(error = %e, "Lease check failed"),
            }
            tokio::time::sleep_until(started + self.timing.retry).await;
        };
        info!(lease = %self.name, identity = %self.identity, "Became leader");
        let (tx, rx) = watch::channel(true);
        let span = info_span!("lease", name = %self.name);
        tokio::spawn(
            async move {
                let lost = self.hold(valid_until).await;
                warn!(lease = %self.name, reason = %lost, "Leadership lost: stopping all work");
                let _ = tx.send(false);
            }
            .instrument(span),
        );
        Leadership(Some(rx))
    }

    /// Renew until leadership is lost; `valid_until` is the first renew deadline.
    async fn hold(&mut self, mut valid_until: Instant) -> Lost {
        let config = watcher::Config::default().fields(&format!("metadata.name={}", self.name));
        let changes = watcher(self.api.clone(), config).default_backoff();
        let mut changes = std::pin::pin!(changes);
        let mut next = Instant::now() + self.timing.retry;
        loop {
            tokio::select! {
                biased;
                () = tokio::time::sleep_until(valid_until) => return Lost::Deadline,
                lost = foreign_change(&mut changes, &self.identity) => return lost,
                () = tokio::time::sleep_until(next) => {}
            }
            let started = Instant::now();
            match self.attempt(valid_until).await {
                Ok(Claim::Held) => {
                    valid_until = started + self.timing.renew_deadline;
                    next = started + self.timing.retry;
                }
                Ok(Claim::Other(holder)) => return Lost::Taken(holder),
                Ok(Claim::Conflict) => next = Instant::now() + self.timing.retry / 4,
                Err(Error::TimedOut { .. }) => return Lost::Deadline,
                Err(e) => {
                    warn!(error = %e, "Lease renewal failed");
                    next = started + self.timing.retry;
                }
            }
        }
    }

    /// One attempt, abandoned at `deadline`.
    async fn attempt(&mut self, deadline: Instant) -> Result<Claim, Error> {
        match tokio::time::timeout_at(deadline, self.try_claim()).await {
            Ok(result) => result,
            Err(_) => Err(Error::TimedOut {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
            }),
        }
    }

    /// One attempt without a time limit: create, renew or take over the Lease.
    pub async fn try_claim(&mut self) -> Result<Claim, Error> {
        let now = jiff::Timestamp::now();
        let err = |source| Error::Api {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source,
        };
        let secs = i32::try_from(self.timing.duration.as_secs()).unwrap_or(i32::MAX);
        let Some(current) = self.api.get_opt(&self.name).await.map_err(err)? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Claim::Held),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Claim::Conflict),
                Err(e) => Err(err(e)),
            };
        };
        let spec = current.spec.clone().unwrap_or_default();
        self.observed.observe(&spec, Instant::now());
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let held_by_us = holder == self.identity;
        // Expiry by our own clock since the Lease last changed; its renewTime is another node's clock.
        if !held_by_us && !self.observed.expired(Instant::now(), self.timing.duration) {
            return Ok(Claim::Other(holder));
        }
        let mut next = current.clone();
        let mut new_spec = spec.clone();
        new_spec.holder_identity = Some(self.identity.clone());
        new_spec.lease_duration_seconds = Some(secs);
        new_spec.renew_time = Some(MicroTime(now));
        if !held_by_us {
            new_spec.acquire_time = Some(MicroTime(now));
            new_spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        next.spec = Some(new_spec);
        // `replace` carries the resourceVersion we read: if someone else wrote in between, we get 409.
        match self.api.replace(&self.name, &PostParams::default(), &next).await {
            Ok(_) => Ok(Claim::Held),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Claim::Conflict),
            Err(e) => Err(err(e)),
        }
    }
}

/// Resolves when the watch on the Lease shows another holder or its deletion; never on our own renewals, and
/// never when the watch fails (the renew deadline covers an unreachable API server).
async fn foreign_change<S>(changes: &mut std::pin::Pin<&mut S>, identity: &str) -> Lost
where
    S: futures::Stream<Item = Result<watcher::Event<Lease>, watcher::Error>>,
{
    while let Some(event) = changes.next().await {
        let lease = match event {
            Ok(watcher::Event::Apply(lease) | watcher::Event::InitApply(lease)) => lease,
            Ok(watcher::Event::Delete(_)) => return Lost::Deleted,
            Ok(watcher::Event::Init | watcher::Event::InitDone) | Err(_) => continue,
        };
        let holder = lease.spec.and_then(|s| s.holder_identity).unwrap_or_default();
        if holder != identity {
            return Lost::Taken(holder);
        }
    }
    std::future::pending().await
}

/// Whether this process may still act: won by [`Elector::acquire`], or [`Leadership::unelected`] when leader
/// election is off (then it is never lost).
#[derive(Debug)]
pub struct Leadership(
    /// Turns `false` when the renewal task gives the Lease up; `None` without leader election.
    Option<watch::Receiver<bool>>,
);

impl Leadership {
    /// Leadership of the only replica, without an election: never lost.
    pub fn unelected() -> Self {
        Leadership(None)
    }

    /// Whether it was won in an election (rather than held by the only replica).
    pub fn is_elected(&self) -> bool {
        self.0.is_some()
    }

    /// Resolves when leadership is lost; never without an election. Cancel-safe: a loop can race it against
    /// its work on every turn.
    pub async fn lost(&mut self) {
        let Some(rx) = &mut self.0 else {
            return std::future::pending().await;
        };
        while *rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                // The renewal task ended without saying so (it panicked): nobody renews the Lease any more.
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Long enough for a loaded CI machine, short enough that a hang fails the test.
    const TEST_TIMEOUT: Duration = Duration::from_secs(10);
    /// How long a future that must not resolve is given to do so anyway.
    const NOT_RESOLVED: Duration = Duration::from_millis(50);

    #[tokio::test]
    async fn unelected_leadership_is_never_lost() {
        let mut leadership = Leadership::unelected();
        assert!(!leadership.is_elected());
        assert!(
            tokio::time::timeout(NOT_RESOLVED, leadership.lost())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn elected_leadership_is_lost_when_renewal_gives_up() {
        let (tx, rx) = watch::channel(true);
        let mut leadership = Leadership(Some(rx));
        assert!(leadership.is_elected());
        assert!(
            tokio::time::timeout(NOT_RESOLVED, leadership.lost())
                .await
                .is_err()
        );
        tx.send_replace(false);
        tokio::time::timeout(TEST_TIMEOUT, leadership.lost())
            .await
            .expect("lost in time");
        // Asked again after the loss (a loop's next turn), it answers at once.
        tokio::time::timeout(TEST_TIMEOUT, leadership.lost())
            .await
            .expect("still lost");
    }

    #[tokio::test]
    async fn leadership_is_lost_when_the_renewal_task_dies() {
        let (tx, rx) = watch::channel(true);
        let mut leadership = Leadership(Some(rx));
        drop(tx);
        tokio::time::timeout(TEST_TIMEOUT, leadership.lost())
            .await
            .expect("lost in time");
    }

    fn held_by(holder: &str) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// What `foreign_change` answers to `events`, or `None` when it keeps waiting.
    async fn verdict(events: Vec<Result<watcher::Event<Lease>, watcher::Error>>) -> Option<String> {
        let stream = futures::stream::iter(events).chain(futures::stream::pending());
        let mut stream = std::pin::pin!(stream);
        tokio::time::timeout(NOT_RESOLVED, foreign_change(&mut stream, "me"))
            .await
            .ok()
            .map(|lost| lost.to_string())
    }

    #[tokio::test]
    async fn the_lease_watch_ends_leadership_only_on_another_holder_or_a_deletion() {
        let ours = vec![
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(held_by("me"))),
            Ok(watcher::Event::InitDone),
            Err(watcher::Error::NoResourceVersion),
            Ok(watcher::Event::Apply(held_by("me"))),
        ];
        assert_eq!(verdict(ours).await, None, "our own renewals or a failing watch");
        let taken = vec![
            Ok(watcher::Event::Apply(held_by("me"))),
            Ok(watcher::Event::Apply(held_by("thief"))),
        ];
        assert_eq!(
            verdict(taken).await.as_deref(),
            Some("\"thief\" holds the Lease now")
        );
        let released = vec![Ok(watcher::Event::Apply(held_by("")))];
        assert!(verdict(released).await.is_some(), "a released Lease is not ours");
        let deleted = vec![Ok(watcher::Event::Delete(held_by("me")))];
        assert_eq!(verdict(deleted).await.as_deref(), Some("the Lease was deleted"));
    }

    #[tokio::test]
    async fn a_hung_renewal_loses_leadership_at_the_renew_deadline_not_at_the_lease_end() {
        // An API server that accepts connections and never answers, as a partition that leaves sockets open.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let _silent = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                open.push(conn);
            }
        });
        let config = kube::Config::new(format!("http://{addr}").parse().expect("url"));
        let client = Client::try_from(config).expect("client");
        let lease = Duration::from_secs(3);
        let mut elector = Elector::new(client, "ns", "lease", "me".into(), lease);
        let started = Instant::now();
        let lost = tokio::time::timeout(
            TEST_TIMEOUT,
            elector.hold(started + elector.timing.renew_deadline),
        )
        .await
        .expect("lost in time");
        assert!(matches!(lost, Lost::Deadline), "{lost}");
        let held = started.elapsed();
        assert!(
            held >= Duration::from_secs(2) && held < lease,
            "leader for {held:?} with renewals hanging"
        );
    }

    #[test]
    fn identity_is_never_empty() {
        assert!(!identity().is_empty());
    }
}
