//! Leader election with a `coordination.k8s.io/v1` Lease, so that with a DaemonSet or several replicas exactly
//! one agent (and one status writer) acts.
//!
//! A candidate waits (standby) until the Lease is free or expired, takes it with an optimistic update
//! (resourceVersion precondition: two candidates never both win), and renews it every third of its duration.
//! Losing it — another holder, or no successful renewal for a whole duration — is reported on a channel; the
//! binaries then stop acting and exit so Kubernetes restarts them as standbys.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tracing::{info, warn};

/// Shared flags of both binaries.
#[derive(clap::Args, Clone, Debug)]
pub struct LeaseArgs {
    /// Elect a leader with a Lease so only one replica acts (DaemonSet, replicas > 1).
    #[arg(long, env = "OUTPOST_LEADER_ELECTION")]
    pub leader_election: bool,

    /// Name of the Lease in --namespace.
    #[arg(long, env = "OUTPOST_LEASE_NAME")]
    pub lease_name: Option<String>,

    /// How long a leader's claim lasts without renewal; a standby takes over after it.
    #[arg(long, env = "OUTPOST_LEASE_DURATION", default_value = "15s", value_parser = crate::cli::parse_duration)]
    pub lease_duration: Duration,
}

/// Errors talking to the API server about the Lease.
#[derive(Debug, thiserror::Error)]
#[error("lease {namespace}/{name}: {source}")]
pub struct Error {
    namespace: String,
    name: String,
    #[source]
    source: kube::Error,
}

/// A candidate for one Lease.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    namespace: String,
    identity: String,
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

    /// Wait until this candidate holds the Lease; then renew it in the background. The returned receiver turns
    /// `false` when leadership is lost.
    pub async fn acquire(self) -> watch::Receiver<bool> {
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
        rx
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
