//! The status writer process: watch, then write once (`--once`) or every time status changes (coalesced over
//! `--debounce`), on the agent's shared [`outpost_agent::runtime`] (probes and metrics, leader election,
//! signals, backoff), until SIGTERM, Ctrl-C or a lost Lease.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use outpost_agent::metrics;
use outpost_agent::runtime::{Candidate, ErrorBackoff, Process, Stop, jittered};
use outpost_agent::secret::Scrubber;
use outpost_agent::source;
use tracing::{error, info, warn};

use crate::branch::{self, BranchTemplate};
use crate::cli::Args;
use crate::commit::Author;
use crate::metrics::StatusMetrics;
use crate::watch::Index;
use crate::writer::{self, Target, Writer, Written};
use outpost_agent::watch_scope::WatchHealth;

/// How long `--once` waits for the watches' initial lists.
const INITIAL_LIST_TIMEOUT: Duration = Duration::from_secs(60);
/// Nothing to retry: wait for a change this long at most (a day, in effect forever).
const IDLE: Duration = Duration::from_secs(86_400);
/// First wait after a failed write.
const MIN_ERROR_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between attempts while writing keeps failing (Git server down, credentials wrong).
const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(120);
/// The longest one write of every status branch may take, beyond twice `--git-timeout` (each Git operation
/// is bounded by it; rejected pushes are retried): past it the loop is stuck and `/healthz` fails.
const WRITE_ALLOWANCE: Duration = Duration::from_secs(600);
/// Share of the debounce window added or removed at random (0.8 to 1.2 windows): writers of many clusters
/// started together would otherwise push in lockstep and collide on the branch every window.
const DEBOUNCE_JITTER: f64 = 0.20;

/// How the status writer stands in leader election.
const CANDIDATE: Candidate = Candidate {
    default_lease: "outpost-status-writer",
    until_first_success: "leader, first write pending",
};

/// Why the status writer could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--git-branch` is unusable.
    #[error(transparent)]
    Branch(#[from] branch::Error),
    /// `--git-url` is unusable.
    #[error(transparent)]
    Url(#[from] outpost_agent::source::url::Error),
    /// No Kubernetes configuration.
    #[error("cannot configure the Kubernetes client (in-cluster service account or KUBECONFIG): {0}")]
    Kube(#[source] kube::Error),
    /// The metrics address cannot be bound.
    #[error("cannot serve metrics: {0}")]
    Admin(#[source] std::io::Error),
    /// `--once` could not see the cluster in time.
    #[error("the inventories and their objects were not listed within {0:?}")]
    NotListed(Duration),
    /// `--once` and RBAC forbids a watch the status needs.
    #[error("{0}: grant get, list and watch there, or set --watch-namespaces to the namespaces RBAC allows")]
    Forbidden(String),
    /// `--once` and the write failed.
    #[error(transparent)]
    Write(#[from] writer::Error),
    /// `--signing-key-file` is unusable.
    #[error(transparent)]
    Signing(#[from] crate::sign::Error),
    /// Another replica holds the Lease now.
    #[error("leadership lost: another replica writes status now")]
    LeadershipLost,
}

impl Error {
    /// The kind of failure, as a bounded metric label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Branch(e) => e.metric_label(),
            Error::Url(e) => e.metric_label(),
            Error::Kube(_) => "kube_config",
            Error::Admin(_) => "admin_bind",
            Error::NotListed(_) => "not_listed",
            Error::Forbidden(_) => "forbidden",
            Error::Write(e) => e.metric_label(),
            Error::Signing(_) => "signing_key",
            Error::LeadershipLost => "leadership_lost",
        }
    }
}

/// Run as the flags say.
pub async fn run(args: Args) -> Result<(), Error> {
    let scrubber = Scrubber::default();
    let signer = args
        .signing_key_file
        .as_deref()
        .map(crate::sign::Signer::load)
        .transpose()?
        .map(Arc::new);
    if let Some(signer) = &signer {
        info!(
            key = %signer.fingerprint(),
            principal = %args.cluster,
            "Signing every status commit; carrying other clusters' status is off (each commit holds only this cluster's status)"
        );
    }
    let target = Target {
        url: args.git.repo_url()?,
        auth: args.git.auth(),
        branch: BranchTemplate::parse(&args.git_branch, &args.cluster)?,
        cluster: args.cluster.clone(),
        namespace: args.namespace.clone(),
        author: Author {
            name: args.author_name.clone(),
            email: args.author_email.clone(),
            signer,
        },
        cache_dir: args.cache_dir.clone(),
    };
    let client = outpost_agent::kube_client::client(None)
        .await
        .map_err(Error::Kube)?;
    info!(url = %target.url, cluster = %args.cluster, branch = %args.git_branch, "Starting");
    let health = WatchHealth::new("Status", "status cannot be written until it runs");
    let index = Arc::new(Index::start(
        client.clone(),
        &args.namespace,
        &args.cluster,
        args.watch.scope(),
        health.clone(),
    ));

    if args.once {
        let writer = Writer::new(target, scrubber, None, Arc::new(AtomicBool::new(false)))
            .with_heartbeat(args.heartbeat());
        let deadline = tokio::time::Instant::now() + INITIAL_LIST_TIMEOUT;
        let snapshot = loop {
            let snapshot = index.snapshot();
            if snapshot.complete {
                break snapshot;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(match health.forbidden() {
                    Some(reason) => Error::Forbidden(reason),
                    None => Error::NotListed(INITIAL_LIST_TIMEOUT),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let written = writer.write(writer.render_all(&snapshot)).await?;
        info!(?written, "Done");
        return Ok(());
    }

    let mut registry = metrics::new_registry();
    let metrics = StatusMetrics::register(&mut registry);
    health.register(registry.sub_registry_with_prefix(crate::metrics::SUBSYSTEM));
    let mut process = Process::start(&args.admin, registry)
        .await
        .map_err(Error::Admin)?;
    if let Err(stop) = process
        .elect(client, &args.lease, &args.namespace, &CANDIDATE, |leader| {
            metrics.set_leader(leader)
        })
        .await
    {
        return process.stop(stop).map_err(|_| Error::LeadershipLost);
    }
    let writer = Writer::new(target, scrubber.clone(), Some(metrics), process.interrupt())
        .with_heartbeat(args.heartbeat());
    let mut backoff = ErrorBackoff::new(MIN_ERROR_BACKOFF, MAX_ERROR_BACKOFF);
    let mut retry_in: Option<Duration> = None;
    // The local status repository was absent at the last write (media unplugged).
    let mut unavailable = false;
    let allowance = WRITE_ALLOWANCE + 2 * args.git.timeout;
    loop {
        // Liveness: back here within the wait, the settling and one write.
        process.beat(retry_in.unwrap_or(IDLE) + 2 * args.debounce + allowance);
        // Wait for a change (or the retry of a failed write), then let the burst settle.
        tokio::select! {
            biased;
            stop = process.stopped() => return process.stop(stop).map_err(|_| Error::LeadershipLost),
            _ = index.changed.notified() => {}
            _ = tokio::time::sleep(retry_in.unwrap_or(IDLE)) => {}
        }
        tokio::select! {
            biased;
            stop = process.stopped() => return process.stop(stop).map_err(|_| Error::LeadershipLost),
            _ = tokio::time::sleep(jittered(args.debounce, DEBOUNCE_JITTER)) => {}
        }
        let snapshot = index.snapshot();
        if !snapshot.complete {
            // A watch RBAC forbids keeps the index incomplete: say so on /readyz instead of waiting in silence.
            if let Some(reason) = health.forbidden() {
                process.set_not_ready(&reason);
            }
            retry_in = Some(Duration::from_millis(500));
            continue;
        }
        let renderer = writer.renderer();
        let latest = {
            let index = index.clone();
            move || {
                let snapshot = index.snapshot();
                snapshot.complete.then(|| renderer.render_all(&snapshot))
            }
        };
        // A write stuck past its allowance fails /healthz even when the next change is a day away.
        process.beat(allowance);
        // Leadership lost mid-write drops the write (its blocking push sees the raised interrupt): the
        // holder stops acting before any standby may take the Lease over.
        let written = tokio::select! {
            biased;
            () = process.lost() => None,
            written = writer.write_latest(latest) => Some(written),
        };
        let Some(written) = written else {
            return process
                .stop(Stop::LeadershipLost)
                .map_err(|_| Error::LeadershipLost);
        };
        match written {
            Ok(written) => {
                backoff.reset();
                if std::mem::take(&mut unavailable) {
                    info!("Status repository available again");
                }
                retry_in = None;
                process.set_ready();
                for (branch, written) in written {
                    if let Written::Pushed { retries, .. } = written
                        && retries > 0
                    {
                        info!(branch = %branch, retries, "Status landed after rejections");
                    }
                }
            }
            Err(e @ crate::outcome::Error::Source(source::Error::Unavailable { .. })) => {
                // The status repository is on unplugged media: said once, looked for again shortly and cheaply
                // (one stat), so the status lands soon after the media returns.
                if !std::mem::replace(&mut unavailable, true) {
                    warn!(reason = %e, "Status repository unavailable; keeping the latest status until it returns");
                }
                retry_in = Some(source::media::MEDIA_CHECK);
            }
            Err(e) => {
                let wait = backoff.next_wait();
                let message = scrubber.scrub(&e.to_string());
                error!(error = %message, retry_in = ?wait, "Status write failed");
                if matches!(e, crate::outcome::Error::Source(source::Error::Stalled { .. })) {
                    process.set_not_ready(&message);
                }
                retry_in = Some(wait);
            }
        }
    }
}
