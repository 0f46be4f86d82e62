//! The agent process: build the client and source from the flags, then plan, show status, reconcile once
//! (`--once`) or run the daemon — on the shared [`crate::runtime`] (probes and metrics, leader election,
//! signals), run [`Rounds`] of reconcile (polled with jitter, backing off on errors, correcting drift between
//! them), reacting within a second to changes of a local-path repository — until SIGTERM, Ctrl-C or a lost
//! Lease.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tokio::sync::Notify;
use tracing::{info, warn};

use crate::cli::{Args, Mode};
use crate::inventory::source_state::SourceStateStore;
use crate::metrics::{self, Metrics};
use crate::reconcile::{self, Outcome, Reconciler, Settings};
use crate::rounds::Rounds;
use crate::runtime::{Candidate, Process, Stop};
use crate::secret::Scrubber;
use crate::source::{self, RepoUrl, Source};
use crate::watch_scope::WatchHealth;

/// Quiet time after a change under a local-path repository before reconciling (a push writes many files).
const LOCAL_DEBOUNCE: Duration = Duration::from_millis(150);

/// How the agent stands in leader election.
const CANDIDATE: Candidate = Candidate {
    default_lease: "outpost-agent",
    until_first_success: "leader, first sync pending",
};

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--git-url` is unusable.
    #[error(transparent)]
    Url(#[from] source::url::Error),
    /// No Kubernetes configuration (in-cluster or KUBECONFIG).
    #[error("cannot configure the Kubernetes client (in-cluster service account or KUBECONFIG): {0}")]
    Kube(#[source] kube::Error),
    /// `--allowed-cluster-scoped-kinds` or `--default-service-account` is unusable.
    #[error(transparent)]
    Identity(#[from] crate::identity::ArgsError),
    /// The metrics address cannot be bound.
    #[error("cannot serve metrics: {0}")]
    Admin(#[source] std::io::Error),
    /// `--once` and the reconcile failed.
    #[error(transparent)]
    Reconcile(#[from] reconcile::Error),
    /// `suspend`, `resume` or `reconcile` failed.
    #[error(transparent)]
    Control(#[from] crate::cmd::control::Error),
    /// `uninstall` did not finish.
    #[error(transparent)]
    Uninstall(#[from] crate::cmd::uninstall::Error),
    /// `--verify` cannot work with the other flags.
    #[error("{0}")]
    Verify(String),
    /// `--sops-age-keys-dir`/`--sops-age-key-file` hold no usable identity.
    #[error(transparent)]
    SopsKeys(#[from] crate::manifest::sops::KeyError),
    /// `--sync-window-now` is unusable (each `--sync-window` is checked as clap parses it).
    #[error(transparent)]
    Windows(#[from] crate::control::windows::Error),
    /// Another replica holds the Lease now; exit so Kubernetes restarts us as a standby.
    #[error("leadership lost: another replica acts now")]
    LeadershipLost,
}

impl Error {
    /// The kind of failure, as a metric label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Url(_) => "git_url",
            Error::Kube(_) => "kube_config",
            Error::Identity(_) => "identity_config",
            Error::Admin(_) => "admin_bind",
            Error::Reconcile(_) => "reconcile",
            Error::Control(_) => "control",
            Error::Uninstall(_) => "uninstall",
            Error::Verify(_) => "verify_flags",
            Error::LeadershipLost => "leadership_lost",
            Error::SopsKeys(_) => "sops_keys",
            Error::Windows(_) => "sync_windows",
        }
    }
}

/// How long one round may take before `/healthz` reports the loop stuck (on top of the wait before it).
const ROUND_ALLOWANCE: std::time::Duration = std::time::Duration::from_secs(600);

/// Run the agent as the flags say.
pub async fn run(args: Args) -> Result<(), Error> {
    if matches!(args.mode, Mode::Suspend | Mode::Resume | Mode::Reconcile) {
        let client = crate::kube_client::client(None).await.map_err(Error::Kube)?;
        let out = &mut std::io::stdout();
        let (ns, cluster, bundle) = (&args.namespace, &args.cluster, args.bundle.as_deref());
        crate::cmd::control::run(client, args.mode, ns, cluster, bundle, out).await?;
        return Ok(());
    }
    if args.mode == Mode::Uninstall {
        let client = crate::kube_client::client(None).await.map_err(Error::Kube)?;
        let store = crate::inventory::store::Store::new(client.clone(), &args.namespace, &args.cluster);
        let options = crate::cmd::uninstall::Options {
            prune: args.uninstall_prune,
            allow_cascading_prune: args.allow_cascading_prune,
            concurrency: args.apply_concurrency,
        };
        crate::cmd::uninstall::run(client, &store, options, &mut std::io::stdout()).await?;
        return Ok(());
    }
    let scrubber = Scrubber::default();
    let source_config = args.source_config()?;
    let local_path = match &source_config.url {
        RepoUrl::Local(path) => Some(path.clone()),
        RepoUrl::Remote { .. } => None,
    };
    let verify =
        source::verify::Policy::from_args(&args.verify, &source_config.reference).map_err(Error::Verify)?;
    let mut registry = metrics::new_registry();
    let throttle = source_config.throttle.clone();
    throttle.register(&mut registry);
    let source = source::verify::Verifying::new(
        Source::new(source_config, scrubber.clone()),
        verify,
        args.git_ref.clone(),
    )
    .with_metrics(source::verify::VerifyMetrics::register(&mut registry));
    let requests = crate::kube_client::RequestCounter::register(&mut registry);
    let daemon = args.mode == Mode::Run && !args.once;
    let kube_config = crate::kube_client::config().await.map_err(Error::Kube)?;
    let counter = daemon.then_some(requests);
    let client =
        crate::kube_client::from_config(kube_config.clone(), counter.clone()).map_err(Error::Kube)?;
    let identities =
        crate::identity::from_args(&args.identity, &args.namespace, &client, kube_config, counter)
            .map_err(Error::Identity)?;
    info!(url = %source.url(), cluster = %args.cluster, reference = %args.git_ref, "Starting");
    let settings = Settings {
        cluster: args.cluster.clone(),
        namespace: args.namespace.clone(),
        apply: args.apply_options(),
        safety: args.safety(),
        allow_own_namespace: args.allow_own_namespace,
    };
    let defaults = crate::control::Defaults {
        drift: args.drift_mode,
        prune: args.prune_policy,
    };
    let controls = crate::control::Controls::new(defaults).with_windows(args.windows.windows()?);
    let mut reconciler = Reconciler::new(source, client.clone(), settings, scrubber.clone())
        .with_controls(controls.clone())
        .with_history_rewrite(args.history.policy(), args.history.max_history_depth)
        .with_identities(identities);
    if args.sops.enabled() {
        reconciler = reconciler.with_renderer(crate::manifest::sops::Sops::new(args.sops.clone())?);
    }
    if !daemon {
        let (ns, cluster) = (&args.namespace, &args.cluster);
        if let Err(e) = crate::control::watch::read_once(client.clone(), ns, cluster, &controls).await {
            warn!(error = %e, "Controls not read: syncing as if nothing were suspended");
        }
    }

    match args.mode {
        Mode::Run if !args.once => {}
        Mode::Run => {
            let outcome = reconciler.reconcile(Arc::new(AtomicBool::new(false))).await?;
            if let Outcome::Waiting { bundles, .. } = &outcome {
                warn!(bundles = ?bundles, "Some bundles wait for their dependencies");
            }
            return Ok(());
        }
        Mode::Plan => {
            let out = &mut std::io::stdout();
            crate::cmd::plan::run(&mut reconciler, client, args.apply_options(), out).await?;
            return Ok(());
        }
        Mode::Suspend | Mode::Resume | Mode::Reconcile | Mode::Uninstall => return Ok(()), // answered above
        Mode::Status => {
            let (ns, cluster) = (&args.namespace, &args.cluster);
            let store = crate::inventory::store::Store::new(client.clone(), ns, cluster);
            let source_state = SourceStateStore::new(client.clone(), ns, cluster);
            let stores = (&store, &source_state, &controls);
            crate::cmd::status::run(client, stores, args.output, &mut std::io::stdout())
                .await
                .map_err(reconcile::Error::from)?;
            return Ok(());
        }
    }

    let metrics = Metrics::register(&mut registry);
    let controls = controls.with_metrics(crate::control::metrics::ControlMetrics::register(&mut registry));
    let watch_health = WatchHealth::new(
        "Drift",
        "changes to these objects are not reverted until the next full resync",
    );
    watch_health.register(registry.sub_registry_with_prefix("drift"));
    let phase_gauge = crate::poll_phase::register(&mut registry);
    let mut process = Process::start(&args.admin, registry)
        .await
        .map_err(Error::Admin)?;
    if let Err(stop) = process
        .elect(client.clone(), &args.lease, &args.namespace, &CANDIDATE, |l| {
            metrics.set_leader(l)
        })
        .await
    {
        return process.stop(stop).map_err(|_| Error::LeadershipLost);
    }
    let _controls_watch =
        crate::control::watch::start(client.clone(), &args.namespace, &args.cluster, controls.clone());
    let store = crate::inventory::store::Store::new(client.clone(), &args.namespace, &args.cluster);
    let phase = crate::poll_phase::first_wait(args.poll_phase, &store, args.interval, &phase_gauge).await;
    let mut rounds = Rounds::start(
        &args,
        client,
        reconciler,
        metrics,
        scrubber,
        watch_health.clone(),
        controls.clone(),
    )
    .with_throttle(throttle);
    let changed = Arc::new(Notify::new());
    let mut media = local_path.map(|path| source::media::MediaWatch::new(path, changed.clone()));

    // A round may apply thousands of objects; beyond this plus the wait before it, the loop is stuck (every
    // Git operation is bounded by --git-timeout, every API request by the client's timeouts).
    let allowance = ROUND_ALLOWANCE + 2 * args.git.timeout;
    process.beat(allowance);
    if !phase.is_zero() {
        process.beat(phase + allowance);
        tokio::select! {
            biased;
            stop = process.stopped() => {
                rounds.stop();
                return process.stop(stop).map_err(|_| Error::LeadershipLost);
            }
            () = tokio::time::sleep(phase) => {}
            () = controls.changed() => info!("Controls changed"),
        }
    }
    // The rounds made the agent ready (a sync got through), whatever the watches say.
    let mut synced = false;
    loop {
        // Leadership lost mid-round stops drift correction while the round still holds it paused, then
        // cancels the round (its requests in flight are dropped): the holder stops acting before any standby
        // may take the Lease over.
        let interrupt = process.interrupt();
        let drift = rounds.drift();
        let lost = async {
            process.lost().await;
            drift.stop();
        };
        let round = tokio::select! {
            biased;
            () = lost => None,
            next = rounds.next(interrupt) => Some(next),
        };
        let Some(next) = round else {
            return process
                .stop(Stop::LeadershipLost)
                .map_err(|_| Error::LeadershipLost);
        };
        process.beat(next.wait + allowance);
        if next.stalled.is_some() {
            synced = false;
        } else if next.ready {
            synced = true;
        }
        show_readiness(&process, next.stalled.as_deref(), synced, &watch_health);
        // Replugged media is another directory than the one watched: watch the path's new one.
        if let Some(media) = &mut media {
            media.refresh();
        }
        let returned = async {
            match &media {
                Some(media) => media.returned().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(returned);
        // A signal or a lost Lease wins over the next round: nothing new starts once stopping.
        let wait = tokio::time::sleep(next.wait);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                biased;
                stop = process.stopped() => {
                    rounds.stop();
                    return process.stop(stop).map_err(|_| Error::LeadershipLost);
                }
                _ = &mut wait => break,
                // An operator suspended, resumed, asked for a sync or changed a drift mode.
                () = controls.changed() => {
                    info!("Controls changed");
                    break;
                }
                () = &mut returned => {
                    info!("Local repository is back");
                    break;
                }
                _ = changed.notified() => {
                    tokio::time::sleep(LOCAL_DEBOUNCE).await;
                    info!("Local repository changed");
                    break;
                }
                // A watch became forbidden (or runs again) between rounds: tell /readyz now.
                _ = watch_health.changed() => {
                    show_readiness(&process, next.stalled.as_deref(), synced, &watch_health);
                }
            }
        }
    }
}

/// `/readyz`: not ready while the last round stalled or a drift watch is forbidden by RBAC (drift is then not
/// corrected), saying which; ready once a round synced.
fn show_readiness(process: &Process, stalled: Option<&str>, synced: bool, watches: &WatchHealth) {
    match stalled.map(str::to_owned).or_else(|| watches.forbidden()) {
        Some(reason) => process.set_not_ready(&reason),
        None if synced => process.set_ready(),
        None => {}
    }
}
