//! Leader election with a `coordination.k8s.io/v1` Lease, so that with a DaemonSet or several replicas exactly
//! one agent (and one status writer) acts.
//!
//! A candidate waits (standby) until the Lease is free or expired, takes it with an optimistic update
//! (resourceVersion precondition: two candidates never both win), and renews it every third of its duration.
//! Losing it — another holder, or no successful renewal for a whole duration — is reported on a channel, which
//! [`Leadership::lost`] turns into a future the binaries race their work against; they then stop acting and
//! exit so Kubernetes restarts them as standbys.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tracing::{info, warn};

/// Errors talking to the API server about the Lease.
#[derive(Debug, thiserror::Error)]
#[error("lease {namespace}/{name}: {source}")]
pub struct Error {
    /// Namespace of the Lease, for the message.
    namespace: String,
    /// Name of the Lease, for the message.
    name: String,
    /// What the API server (or the way to it) said.
    #[source]
    source: kube::Error,
}

impl Error {
    /// The kind of failure, as a metric label.
    pub fn metric_label(&self) -> &'static str {
        "lease"
    }
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
    /// How long a claim lasts without renewal; we retry and renew every third of it.
    duration: Duration,
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
            duration,
        }
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Wait until this candidate holds the Lease; then renew it in the background. The returned
    /// [`Leadership`] reports when it is lost.
    pub async fn acquire(self) -> Leadership {
        let retry = self.duration / 3;
        loop {
            match self.try_acquire().await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => warn!(error = %e, "Lease check failed"),
            }
            tokio::time::sleep(retry).await;
        }
        info!(lease = %self.name, identity = %self.identity, "Became leader");
        let (tx, rx) = watch::channel(true);
        tokio::spawn(async move {
            let mut last_renewal = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(retry).await;
                match self.try_acquire().await {
                    Ok(true) => last_renewal = tokio::time::Instant::now(),
                    Ok(false) => {
                        warn!(lease = %self.name, "Leadership lost to another holder");
                        let _ = tx.send(false);
                        return;
                    }
                    Err(e) => {
                        warn!(error = %e, "Lease renewal failed");
                        if last_renewal.elapsed() >= self.duration {
                            warn!(lease = %self.name, "Lease expired without renewal");
                            let _ = tx.send(false);
                            return;
                        }
                    }
                }
            }
        });
        Leadership(Some(rx))
    }

    /// One attempt: create, renew or take over the Lease. `Ok(true)` when we hold it afterwards.
    pub async fn try_acquire(&self) -> Result<bool, Error> {
        let now = jiff::Timestamp::now();
        let err = |source| Error {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source,
        };
        let secs = i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX);
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
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(err(e)),
            };
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let held_by_us = holder == self.identity;
        let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
            (Some(MicroTime(renewed)), Some(d)) => now.duration_since(*renewed).as_secs() >= i64::from(d),
            _ => true,
        };
        if !held_by_us && !holder.is_empty() && !expired {
            return Ok(false);
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
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(err(e)),
        }
    }
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

    #[test]
    fn identity_is_never_empty() {
        assert!(!identity().is_empty());
    }
}
