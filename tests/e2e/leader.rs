//! Leader election without split brain: a holder whose renewals hang stops acting before a standby takes over,
//! a holder whose clock is 30 s off keeps the Lease while it renews, and a holder that loses the Lease in the
//! middle of a long apply stops applying at once — never two actors at once.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use outpost_tests::agent::{AgentCommand, RunningAgent, Transport, create_namespace};
use outpost_tests::{KubeEnv, TestRepo, git_servers, kube_env, unique};

use crate::common::{Seen, config_value, config_value_exists, eventually};
use crate::fixtures;

/// Name of the Lease every test here competes for (each in its own namespace).
const LEASE: &str = "agent-lease";

/// An agent with leader election on [`LEASE`] of `duration` seconds, as pod `pod`, polling every second.
fn elected(
    env: &KubeEnv,
    repo: &TestRepo,
    cluster: &str,
    agent_ns: &str,
    pod: &str,
    duration: u64,
    kubeconfig: Option<&Path>,
) -> Result<RunningAgent> {
    let mut cmd = AgentCommand::new(env, repo, cluster, agent_ns, Transport::Https)?;
    cmd.arg("--leader-election")
        .arg("--lease-name")
        .arg(LEASE)
        .arg("--lease-duration")
        .arg(format!("{duration}s"));
    cmd.env("POD_NAME", pod);
    if let Some(kubeconfig) = kubeconfig {
        cmd.env("KUBECONFIG", kubeconfig);
    }
    cmd.spawn("1s")
}

/// The Lease's holder, if the Lease exists.
async fn holder(leases: &Api<Lease>) -> Result<Option<String>> {
    Ok(leases
        .get_opt(LEASE)
        .await?
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity))
}

/// Wait until `agent`'s /readyz names it the leader.
async fn wait_leader(agent: &RunningAgent) -> Result<()> {
    eventually(Duration::from_secs(60), "the agent to lead", || async {
        Ok(match agent.get("/readyz").await {
            Ok((code, body)) => Seen::done_if(body.contains("leader"), format!("/readyz {code} {body:?}")),
            Err(e) => Seen::Not(format!("/readyz failed: {e:#}")),
        })
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", agent.logs()))
}

/// A TCP proxy to `upstream` that can be frozen: once frozen it keeps every connection open (and accepts new
/// ones) but forwards nothing more, as a network partition that leaves sockets hanging does.
struct FreezableProxy {
    /// Its port on 127.0.0.1.
    port: u16,
    /// Raised: stop forwarding.
    frozen: Arc<AtomicBool>,
}

impl FreezableProxy {
    fn start(upstream: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let frozen = Arc::new(AtomicBool::new(false));
        let flag = frozen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let (Ok(down), Ok(up)) = (conn, TcpStream::connect(upstream)) else {
                    continue;
                };
                for (from, to) in [(down.try_clone(), up.try_clone()), (Ok(up), Ok(down))] {
                    if let (Ok(from), Ok(to)) = (from, to) {
                        let flag = flag.clone();
                        std::thread::spawn(move || pump(from, to, &flag));
                    }
                }
            }
        });
        Ok(FreezableProxy { port, frozen })
    }

    fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }
}

/// Copy `from` to `to` until either closes; data read while frozen is held back for good.
fn pump(mut from: TcpStream, mut to: TcpStream, frozen: &AtomicBool) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        while frozen.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// A kubeconfig for the admin user that reaches the API server through `127.0.0.1:port`.
fn kubeconfig_via(env: &KubeEnv, port: u16, path: &Path) -> Result<()> {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: proxied\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority: {ca}\nusers:\n- name: admin\n  user:\n    token: {token}\ncontexts:\n- name: proxied\n  context:\n    cluster: proxied\n    user: admin\ncurrent-context: proxied\n",
        ca = env.ca_file().display(),
        token = env.admin_token,
    );
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

#[tokio::test]
async fn a_holder_whose_renewals_hang_stops_acting_before_a_standby_takes_over() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "hung").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("hung"))?;
    repo.write(
        &format!("clusters/{cluster}/app/a.yaml"),
        &fixtures::config_map(&ns, "a", "1"),
    )?;
    repo.commit("one")?;
    let upstream: SocketAddr = env
        .url
        .trim_start_matches("https://")
        .parse()
        .context("API server address")?;
    let proxy = FreezableProxy::start(upstream)?;
    let kubeconfig = outpost_tests::scratch_dir("proxied")?.join("kubeconfig");
    kubeconfig_via(env, proxy.port, &kubeconfig)?;
    let duration = 4;
    let first = elected(
        env,
        &repo,
        &cluster,
        &agent_ns,
        "agent-0",
        duration,
        Some(&kubeconfig),
    )?;
    wait_leader(&first).await?;
    first.wait_ready(Duration::from_secs(60)).await?;
    let second = elected(env, &repo, &cluster, &agent_ns, "agent-1", duration, None)?;
    second.wait_ready(Duration::from_secs(60)).await?;
    // Let the standby watch a few renewals, so it knows the Lease is alive.
    tokio::time::sleep(Duration::from_secs(duration)).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &agent_ns);
    assert_eq!(holder(&leases).await?.as_deref(), Some("agent-0"));

    // The holder's way to the API server hangs: every request it sends from now on waits forever.
    proxy.freeze();
    let frozen_at = Instant::now();
    let (mut first_stopped, mut second_led) = (None, None);
    while frozen_at.elapsed() < Duration::from_secs(60) && (first_stopped.is_none() || second_led.is_none()) {
        if first_stopped.is_none() && !first.running() {
            first_stopped = Some(frozen_at.elapsed());
        }
        if second_led.is_none() && holder(&leases).await?.as_deref() == Some("agent-1") {
            second_led = Some(frozen_at.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let logs = format!("holder log:\n{}\nstandby log:\n{}", first.logs(), second.logs());
    let second_led = second_led.with_context(|| format!("the standby never took over; {logs}"))?;
    let first_stopped = first_stopped.with_context(|| {
        format!("the hung holder never stopped; the standby took over after {second_led:?}; {logs}")
    })?;
    assert!(
        first_stopped < second_led,
        "two actors at once: the standby took over {second_led:?} after the freeze, the hung holder stopped only \
         after {first_stopped:?}; {logs}"
    );
    assert!(
        first_stopped < Duration::from_secs(duration),
        "the hung holder acted for {first_stopped:?}, longer than the lease; {logs}"
    );
    assert!(first.logs().contains("Leadership lost"), "{logs}");
    Ok(())
}

/// A Lease held by `holder`, renewed at `renewed`, of `duration` seconds.
fn lease_spec(holder: &str, renewed: jiff::Timestamp, duration: i32) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(holder.to_owned()),
        lease_duration_seconds: Some(duration),
        acquire_time: Some(MicroTime(renewed)),
        renew_time: Some(MicroTime(renewed)),
        ..Default::default()
    }
}

/// Renew the Lease as `holder` would, writing `renewed` as its renew time; fails if someone else holds it.
async fn renew_as(leases: &Api<Lease>, holder: &str, renewed: jiff::Timestamp, duration: i32) -> Result<()> {
    let mut lease = leases.get(LEASE).await?;
    let current = lease.spec.as_ref().and_then(|s| s.holder_identity.clone());
    anyhow::ensure!(
        current.as_deref() == Some(holder),
        "the Lease was taken from {holder} while it renewed: holder {current:?}"
    );
    lease.spec = Some(lease_spec(holder, renewed, duration));
    leases.replace(LEASE, &PostParams::default(), &lease).await?;
    Ok(())
}

#[tokio::test]
async fn a_holder_whose_clock_is_30s_off_keeps_the_lease_while_it_renews_and_loses_it_a_duration_after()
-> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "skew").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("skew"))?;
    repo.write(
        &format!("clusters/{cluster}/app/a.yaml"),
        &fixtures::config_map(&ns, "a", "1"),
    )?;
    repo.commit("one")?;
    let (duration, secs) = (4u64, 4i32);
    let leases: Api<Lease> = Api::namespaced(client.clone(), &agent_ns);
    let thirty = jiff::SignedDuration::from_secs(30);
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(LEASE.into()),
            ..Default::default()
        },
        spec: Some(lease_spec("skewed", jiff::Timestamp::now() - thirty, secs)),
    };
    leases.create(&PostParams::default(), &lease).await?;
    let agent = elected(env, &repo, &cluster, &agent_ns, "agent-1", duration, None)?;
    agent.wait_ready(Duration::from_secs(60)).await?;

    // A holder whose clock is 30 s behind renews every half second for three lease durations: every renew
    // time it writes looks long expired to a wall clock, yet the Lease keeps changing.
    let renewing = Instant::now();
    while renewing.elapsed() < Duration::from_secs(3 * duration) {
        renew_as(&leases, "skewed", jiff::Timestamp::now() - thirty, secs)
            .await
            .map_err(|e| anyhow::anyhow!("{e:#}; agent log:\n{}", agent.logs()))?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(!agent.logs().contains("Became leader"), "{}", agent.logs());
    assert_eq!(config_value(&client, &ns, "a").await?, None, "the standby acted");

    // Its clock jumps 30 s ahead for a last renewal, and then it dies: the standby waits one lease duration
    // from the last change it saw, not 30 s more.
    renew_as(&leases, "skewed", jiff::Timestamp::now() + thirty, secs).await?;
    let last_change = Instant::now();
    let taken = eventually(
        Duration::from_secs(20),
        "the standby to take the Lease",
        || async {
            let holder = holder(&leases).await?;
            Ok(match holder.as_deref() {
                Some("agent-1") => Seen::Done(last_change.elapsed()),
                _ => Seen::Not(format!("holder {holder:?}")),
            })
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}; agent log:\n{}", agent.logs()))?;
    assert!(
        taken >= Duration::from_secs(duration),
        "taken {taken:?} after the last renewal, within the lease duration; log:\n{}",
        agent.logs()
    );
    eventually(Duration::from_secs(30), "the new leader to sync", || {
        config_value_exists(&client, &ns, "a")
    })
    .await?;
    Ok(())
}

/// How many ConfigMaps of `ns` were written after resourceVersion `after`, and how many there are. (The API
/// server's resourceVersions are etcd revisions, which increase with every write: fine for a test's ordering.)
async fn written_after(client: &kube::Client, ns: &str, after: u64) -> Result<(usize, usize)> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let list = cms.list_metadata(&ListParams::default()).await?;
    let later = list
        .items
        .iter()
        .filter_map(|c| c.metadata.resource_version.as_deref()?.parse::<u64>().ok())
        .filter(|rv| *rv > after)
        .count();
    Ok((later, list.items.len()))
}

#[tokio::test]
async fn leadership_lost_during_a_long_apply_stops_the_apply_at_once() -> Result<()> {
    const OBJECTS: usize = 2000;
    const CONCURRENCY: usize = 4;
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "long").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("long"))?;
    let many: Vec<String> = (0..OBJECTS)
        .map(|i| fixtures::config_map(&ns, &format!("cm-{i:04}"), "1"))
        .collect();
    // Files of 500 documents: a file may hold at most 1024.
    for (i, chunk) in many.chunks(500).enumerate() {
        repo.write(
            &format!("clusters/{cluster}/app/many-{i}.yaml"),
            &chunk.join("---\n"),
        )?;
    }
    repo.commit("many")?;
    let mut cmd = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    cmd.arg("--leader-election")
        .arg("--lease-name")
        .arg(LEASE)
        .arg("--lease-duration")
        .arg("10s")
        .arg("--apply-concurrency")
        .arg(CONCURRENCY.to_string());
    cmd.env("POD_NAME", "agent-0");
    let agent = cmd.spawn("1h")?;
    wait_leader(&agent).await?;
    eventually(Duration::from_secs(120), "the apply to be under way", || async {
        let (_, total) = written_after(&client, &ns, 0).await?;
        Ok(Seen::done_if(total >= 100, format!("{total} ConfigMaps")))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", agent.logs()))?;

    // Another holder takes the Lease in the middle of the apply.
    let (_, before) = written_after(&client, &ns, 0).await?;
    assert!(
        before < OBJECTS,
        "the apply finished before the Lease could be stolen: make it longer"
    );
    let leases: Api<Lease> = Api::namespaced(client.clone(), &agent_ns);
    let mut lease = leases.get(LEASE).await?;
    lease.spec = Some(lease_spec("thief", jiff::Timestamp::now(), 10));
    let stolen = leases.replace(LEASE, &PostParams::default(), &lease).await?;
    let stolen_rv: u64 = stolen
        .metadata
        .resource_version
        .as_deref()
        .and_then(|rv| rv.parse().ok())
        .context("the Lease's resourceVersion")?;
    eventually(Duration::from_secs(180), "the agent to stop", || async {
        Ok(Seen::done_if(!agent.running(), "still running"))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", agent.logs()))?;
    // Requests it had sent before it stopped may still land.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (after, total) = written_after(&client, &ns, stolen_rv).await?;
    assert!(
        after <= 2 * CONCURRENCY,
        "{after} ConfigMaps were applied after another holder took the Lease ({total} in all); log:\n{}",
        agent.logs()
    );
    assert!(agent.logs().contains("Leadership lost"), "{}", agent.logs());
    Ok(())
}
