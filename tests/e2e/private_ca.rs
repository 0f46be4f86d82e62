//! Issue 12 item 15: `--git-ca-only` (chart `git.caOnly`) trusts the private CA alone. The system's CAs are
//! played by `SSL_CERT_FILE` (rustls reads the platform store from it), so the test can make the server's
//! certificate "publicly" trusted and check that only-the-private-CA refuses it.

use std::path::{Path, PathBuf};

use anyhow::Result;
use outpost_tests::agent::{AgentCommand, Transport, create_namespace, output_text};
use outpost_tests::process::run;
use outpost_tests::{git_servers, kube_env, unique};

use crate::common::config_value;
use crate::fixtures;

/// A CA of its own that signed nothing the test servers present.
fn stranger_ca() -> Result<PathBuf> {
    let dir = outpost_tests::scratch_dir("stranger-ca")?;
    let (key, crt) = (dir.join("ca.key"), dir.join("ca.crt"));
    run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=stranger-ca",
            "-keyout",
            s(&key),
            "-out",
            s(&crt),
        ],
        None,
    )?;
    Ok(crt)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[tokio::test]
async fn trusting_only_the_private_ca_refuses_a_certificate_the_system_would_accept() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "ca-only").await?;
    let cluster = unique("edge");
    let servers = git_servers();
    let repo = servers.create_repo(&unique("ca-only"))?;
    repo.write(
        &format!("clusters/{cluster}/app/cm.yaml"),
        &fixtures::config_map(&ns, "pinned", "1"),
    )?;
    repo.commit("one object")?;
    let stranger = stranger_ca()?;

    // The "system" trusts the server's CA; --git-ca-file names a stranger. Merged (the default): it syncs.
    let mut merged = AgentCommand::new(
        env,
        &repo,
        &cluster,
        &agent_ns,
        Transport::HttpsWithCaFile(stranger.clone()),
    )?;
    merged.env("SSL_CERT_FILE", &servers.ca_file);
    let mut only = merged.clone();
    only.arg("--git-ca-only");
    only.set_cache_dir(&outpost_tests::scratch_dir("ca-only-cache")?);

    // Only the stranger: the certificate the system would accept is refused, and nothing is applied.
    let out = only.once()?;
    let text = output_text(&out);
    assert!(
        !out.status.success(),
        "synced against a CA it was told not to trust:\n{text}"
    );
    assert!(
        text.to_lowercase().contains("certificate"),
        "the error should say the certificate is not trusted:\n{text}"
    );
    assert_eq!(config_value(&client, &ns, "pinned").await?, None, "{text}");

    let out = merged.once()?;
    assert!(
        out.status.success(),
        "merged trust failed:\n{}",
        output_text(&out)
    );
    assert_eq!(config_value(&client, &ns, "pinned").await?.as_deref(), Some("1"));

    // The private CA alone, with a "system" that trusts only the stranger: it syncs.
    let mut private = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    private.arg("--git-ca-only").env("SSL_CERT_FILE", &stranger);
    let out = private.once()?;
    assert!(
        out.status.success(),
        "the private CA alone failed:\n{}",
        output_text(&out)
    );

    // --git-ca-only without a bundle is a usage error, not a silent fallback to the system's CAs.
    let mut bare = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::File)?;
    bare.arg("--git-ca-only");
    let out = bare.once()?;
    let text = output_text(&out);
    assert!(!out.status.success() && text.contains("--git-ca-file"), "{text}");
    Ok(())
}
