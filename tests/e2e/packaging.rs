//! Packaging and air-gapped operation: the Dockerfile refers to things that exist, and the agent and status
//! writer contact nothing but their Git URL and the API server.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result};
use outpost_tests::agent::{AgentCommand, Transport, create_namespace, output_text};
use outpost_tests::{git_servers, kube_env, unique};

use crate::fixtures;

fn workspace() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn the_dockerfile_copies_paths_and_binaries_that_exist() -> Result<()> {
    let dockerfile = std::fs::read_to_string(workspace().join("Dockerfile"))?;
    let bins: BTreeSet<String> = [
        "agent/Cargo.toml",
        "status-writer/Cargo.toml",
        "multicall/Cargo.toml",
    ]
    .iter()
    .flat_map(|m| {
        let text = std::fs::read_to_string(workspace().join(m)).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                l.trim()
                    .strip_prefix("name = \"")
                    .and_then(|r| r.strip_suffix('"'))
                    .map(str::to_owned)
            })
            .collect::<Vec<_>>()
    })
    .collect();
    let mut built = BTreeSet::new();
    for line in dockerfile.lines() {
        for word in line.split_whitespace() {
            // target/<profile>/<binary>
            if let Some(bin) = word
                .strip_prefix("target/")
                .and_then(|w| w.split_once('/'))
                .map(|(_, bin)| bin)
            {
                built.insert(bin.to_owned());
            }
            if let Some(pkg) = line.split("-p ").nth(1).and_then(|r| r.split_whitespace().next()) {
                assert!(bins.contains(pkg), "Dockerfile builds unknown package {pkg}");
            }
        }
        if let Some(rest) = line.trim().strip_prefix("COPY ")
            && !rest.starts_with("--from")
        {
            let source = rest.split_whitespace().next().context("COPY source")?;
            assert!(
                workspace().join(source).exists(),
                "Dockerfile copies {source}, which does not exist"
            );
        }
    }
    // The image ships the multi-call binary, under both commands' names.
    assert!(
        bins.contains("outpost"),
        "the multi-call binary is not in the workspace"
    );
    assert!(
        built.contains("outpost"),
        "the Dockerfile does not ship the multi-call binary"
    );
    for bin in ["outpost-agent", "outpost-status-writer"] {
        assert!(bins.contains(bin), "{bin} is not a binary of the workspace");
        assert!(
            dockerfile.contains(&format!("/usr/local/bin/{bin}")),
            "{bin} not installed in the image"
        );
    }
    assert!(
        dockerfile.contains("--locked"),
        "the image is not built from the locked dependency set"
    );
    assert!(
        dockerfile.contains("USER 65532"),
        "the image does not run as a non-root user"
    );
    let ignore = std::fs::read_to_string(workspace().join(".dockerignore"))?;
    assert!(
        ignore.lines().any(|l| l.trim() == "target"),
        ".dockerignore does not exclude target/"
    );
    Ok(())
}

/// Ports of AF_INET connections in an strace log (`connect(..., sin_port=htons(P), ...)`), with their addresses.
fn connections(log: &str) -> Vec<(String, u16)> {
    log.lines()
        .filter(|l| l.contains("connect(") && (l.contains("AF_INET") || l.contains("AF_INET6")))
        .filter_map(|l| {
            let port = l.split("htons(").nth(1)?.split(')').next()?.parse().ok()?;
            let addr = l
                .split("inet_addr(\"")
                .nth(1)
                .or_else(|| l.split("inet_pton(AF_INET6, \"").nth(1))
                .and_then(|r| r.split('"').next())
                .unwrap_or("?")
                .to_owned();
            Some((addr, port))
        })
        .collect()
}

#[tokio::test]
async fn the_agent_and_status_writer_contact_only_their_git_url_and_the_api_server() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let servers = git_servers();
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "airgap").await?;
    let cluster = unique("edge");
    let repo = servers.create_repo(&unique("mirror"))?;
    repo.write(
        &format!("clusters/{cluster}/app/a.yaml"),
        &fixtures::config_map(&ns, "a", "1"),
    )?;
    repo.commit("one")?;
    let api_port: u16 = env.url.rsplit(':').next().context("api port")?.parse()?;
    let allowed = [
        ("127.0.0.1".to_owned(), api_port),
        ("127.0.0.1".to_owned(), servers.https_port),
    ];
    let strace = outpost_tests::tools::system("strace")?;
    for (binary, cmd) in [
        (
            "outpost-agent",
            AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?,
        ),
        (
            "outpost-status-writer",
            AgentCommand::status_writer(servers, env, &repo, &cluster, &agent_ns, Transport::Https)?,
        ),
    ] {
        let log = cmd.cache_dir.join("strace.log");
        std::fs::create_dir_all(&cmd.cache_dir)?;
        let out = cmd.traced_once(&strace, &log)?;
        assert!(out.status.success(), "{binary}: {}", output_text(&out));
        let trace = std::fs::read_to_string(&log)?;
        let seen = connections(&trace);
        assert!(
            !seen.is_empty(),
            "{binary}: strace saw no connections at all:\n{trace}"
        );
        for c in &seen {
            assert!(
                allowed.contains(c),
                "{binary} connected to {c:?}, which is neither the Git URL nor the API server"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn https_proxy_is_honoured_for_git_and_no_proxy_bypasses_it() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "proxy").await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique("proxied"))?;
    repo.write(
        &format!("clusters/{cluster}/app/a.yaml"),
        &fixtures::config_map(&ns, "a", "1"),
    )?;
    repo.commit("one")?;
    // A proxy that hangs up on every connection: if it is used, the fetch fails. It holds its port for the
    // whole test (a port that is merely free could be taken by another test's server meanwhile) and counts
    // the connections, so the test sees the proxy was really tried.
    let proxy = std::net::TcpListener::bind("127.0.0.1:0")?;
    let proxy_port = proxy.local_addr()?.port();
    let tried = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = tried.clone();
    std::thread::spawn(move || {
        for conn in proxy.incoming() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(conn);
        }
    });
    let mut cmd = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    cmd.env("HTTPS_PROXY", format!("http://127.0.0.1:{proxy_port}"));
    let out = cmd.once()?;
    let text = output_text(&out);
    assert!(!out.status.success(), "the proxy was not used: {text}");
    assert!(text.contains("cannot reach"), "{text}");
    assert!(
        tried.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the agent failed without trying the proxy: {text}"
    );
    let tried_before = tried.load(std::sync::atomic::Ordering::SeqCst);
    cmd.env("NO_PROXY", "127.0.0.1");
    let out = cmd.once()?;
    assert!(
        out.status.success(),
        "NO_PROXY was not honoured: {}",
        output_text(&out)
    );
    assert_eq!(
        tried.load(std::sync::atomic::Ordering::SeqCst),
        tried_before,
        "the proxy was used despite NO_PROXY"
    );
    Ok(())
}
