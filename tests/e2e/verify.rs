//! Commit signature verification (`--verify`): real commits and tags signed by the real tools — `ssh-keygen`
//! keys through `git -c gpg.format=ssh commit -S`, GnuPG keys through `git commit -S` — and `git verify-commit`
//! as the oracle that the good fixtures are good. A refused commit must leave the cluster exactly as the last
//! good commit left it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use outpost_tests::agent::{AgentCommand, Transport, create_namespace, output_text};
use outpost_tests::{TestRepo, git_servers, kube_env, scratch_dir, unique};

use crate::common::{Seen, config_value, eventually, managed_config_maps};
use crate::fixtures;

/// Run `program args` (in `dir`, with `envs`); its trimmed stdout, or an error with its stderr.
fn run_in(program: &str, args: &[&str], dir: Option<&Path>, envs: &[(&str, &Path)]) -> Result<String> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().with_context(|| format!("run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// An ed25519 key made by `ssh-keygen`.
struct SshKey {
    /// The private key file (what `user.signingkey` names).
    private: PathBuf,
    /// `ssh-ed25519 AAAA...` (no comment).
    public: String,
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    fingerprint: String,
}

impl SshKey {
    fn generate(dir: &Path, name: &str) -> Result<Self> {
        let private = dir.join(name);
        run_in(
            "ssh-keygen",
            &["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", s(&private)],
            None,
            &[],
        )?;
        let line = std::fs::read_to_string(private.with_extension("pub"))?;
        let public = line.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        let listed = run_in(
            "ssh-keygen",
            &["-l", "-f", s(&private.with_extension("pub"))],
            None,
            &[],
        )?;
        let fingerprint = listed
            .split_whitespace()
            .nth(1)
            .context("fingerprint")?
            .to_owned();
        Ok(SshKey {
            private,
            public,
            fingerprint,
        })
    }
}

/// A throwaway GnuPG home with one signing key; its agent is stopped on drop.
struct GpgKey {
    /// GNUPGHOME.
    home: PathBuf,
    /// The primary key's fingerprint.
    fingerprint: String,
}

impl GpgKey {
    /// A new ed25519 signing key for `uid`, created `created_days_ago` days ago (GnuPG's faked time) when set.
    fn generate(dir: &Path, uid: &str, created_days_ago: Option<u64>) -> Result<Self> {
        let home = dir.join(format!("gnupg-{}", outpost_tests::random_suffix()));
        std::fs::create_dir_all(&home)?;
        std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let env = [("GNUPGHOME", home.as_path())];
        let faked = created_days_ago.map(|d| {
            let at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                - d * 86_400;
            format!("--faked-system-time={at}!")
        });
        let mut args = vec!["--batch", "--passphrase", "", "--quick-gen-key"];
        if let Some(f) = &faked {
            args.insert(0, f);
        }
        args.extend([uid, "ed25519", "sign", "never"]);
        run_in("gpg", &args, None, &env)?;
        let listed = run_in("gpg", &["--with-colons", "--list-keys", uid], None, &env)?;
        let fingerprint = listed
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .and_then(|l| l.trim_matches(':').split(':').next_back())
            .context("gpg listed no fingerprint")?
            .to_owned();
        Ok(GpgKey { home, fingerprint })
    }

    fn env(&self) -> [(&'static str, &Path); 1] {
        [("GNUPGHOME", self.home.as_path())]
    }

    /// The armored public key.
    fn export(&self) -> Result<String> {
        run_in(
            "gpg",
            &["--armor", "--export", &self.fingerprint],
            None,
            &self.env(),
        )
    }

    /// Give the key a new self-signature, made `days_ago` days ago, saying it expires one day after that.
    fn expire_in_the_past(&self, days_ago: u64) -> Result<()> {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs()
            - days_ago * 86_400;
        let faked = format!("--faked-system-time={at}!");
        run_in(
            "gpg",
            &[
                &faked,
                "--batch",
                "--passphrase",
                "",
                "--quick-set-expire",
                &self.fingerprint,
                "1d",
            ],
            None,
            &self.env(),
        )?;
        Ok(())
    }
}

impl Drop for GpgKey {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .args(["--kill", "gpg-agent"])
            .env("GNUPGHOME", &self.home)
            .output();
    }
}

/// How a commit or tag is signed.
enum Signer<'a> {
    /// Not at all.
    None,
    /// With this SSH key.
    Ssh(&'a SshKey),
    /// With this GnuPG key.
    Gpg(&'a GpgKey),
}

impl Signer<'_> {
    /// `git -c ...` options and environment that make `-s`/`-S` sign this way.
    fn git_options(&self) -> (Vec<String>, Vec<(&'static str, PathBuf)>) {
        match self {
            Signer::None => (vec![], vec![]),
            Signer::Ssh(key) => (
                vec![
                    "gpg.format=ssh".into(),
                    format!("user.signingkey={}", key.private.display()),
                ],
                vec![],
            ),
            Signer::Gpg(key) => (
                vec![
                    "gpg.format=openpgp".into(),
                    "gpg.program=gpg".into(),
                    format!("user.signingkey={}", key.fingerprint),
                ],
                vec![("GNUPGHOME", key.home.clone())],
            ),
        }
    }

    /// `git <args>` in `repo`'s work clone, signing this way.
    fn git(&self, repo: &TestRepo, args: &[&str]) -> Result<String> {
        self.git_env(repo, args, &[])
    }

    /// `git <args>` in `repo`'s work clone, signing this way, with `more` in its environment.
    fn git_env(&self, repo: &TestRepo, args: &[&str], more: &[(&str, &Path)]) -> Result<String> {
        let (options, envs) = self.git_options();
        let mut full: Vec<&str> = Vec::new();
        for o in &options {
            full.extend(["-c", o.as_str()]);
        }
        full.extend(args);
        let mut envs: Vec<(&str, &Path)> = envs.iter().map(|(k, v)| (*k, v.as_path())).collect();
        envs.extend_from_slice(more);
        run_in("git", &full, Some(&repo.work), &envs)
    }

    /// Commit everything (signed unless `None`) and push it to `main`; the commit id.
    fn commit(&self, repo: &TestRepo, message: &str) -> Result<String> {
        self.commit_dated(repo, message, None)
    }

    /// [`Signer::commit`] with the committer time set (`GIT_COMMITTER_DATE`, e.g. `@1704067200 +0000`): the
    /// time keys are judged at.
    fn commit_dated(&self, repo: &TestRepo, message: &str, date: Option<&str>) -> Result<String> {
        run_in("git", &["add", "-A"], Some(&repo.work), &[])?;
        let sign = if matches!(self, Signer::None) {
            "--no-gpg-sign"
        } else {
            "-S"
        };
        let env: Vec<(&str, &Path)> = date
            .map(|d| ("GIT_COMMITTER_DATE", Path::new(d)))
            .into_iter()
            .collect();
        self.git_env(
            repo,
            &["commit", "-q", "--allow-empty", sign, "-m", message],
            &env,
        )?;
        run_in(
            "git",
            &["push", "-q", "-f", "origin", "HEAD:refs/heads/main"],
            Some(&repo.work),
            &[],
        )?;
        run_in("git", &["rev-parse", "HEAD"], Some(&repo.work), &[])
    }

    /// Point tag `name` at HEAD (annotated; signed unless `None`) and force-push it.
    fn tag(&self, repo: &TestRepo, name: &str) -> Result<()> {
        let sign = if matches!(self, Signer::None) { "-a" } else { "-s" };
        self.git(repo, &["tag", "-f", sign, "-m", &format!("release {name}"), name])?;
        run_in(
            "git",
            &["push", "-q", "-f", "origin", &format!("refs/tags/{name}")],
            Some(&repo.work),
            &[],
        )?;
        Ok(())
    }
}

/// A keys directory (as the Secret is mounted): `allowed_signers` lines and armored OpenPGP keys.
fn keys_dir(dir: &Path, allowed_signers: &[String], pgp: &[String]) -> Result<PathBuf> {
    let keys = dir.join(format!("keys-{}", outpost_tests::random_suffix()));
    std::fs::create_dir_all(&keys)?;
    if !allowed_signers.is_empty() {
        std::fs::write(keys.join("allowed_signers"), allowed_signers.join("\n") + "\n")?;
    }
    for (i, key) in pgp.iter().enumerate() {
        std::fs::write(keys.join(format!("key-{i}.asc")), key)?;
    }
    Ok(keys)
}

/// `git verify-commit` (or `verify-tag`) with the keys of `keys` — the oracle that a fixture is well signed.
fn git_verifies(repo: &TestRepo, what: &str, id: &str, keys: &Path, gpg: Option<&GpgKey>) -> Result<String> {
    let signers = format!(
        "gpg.ssh.allowedSignersFile={}",
        keys.join("allowed_signers").display()
    );
    let envs: Vec<(&str, &Path)> = gpg.map(|g| ("GNUPGHOME", g.home.as_path())).into_iter().collect();
    run_in("git", &["-c", &signers, what, id], Some(&repo.work), &envs)
}

/// The cluster side of a test: namespaces, a repository and the agent command verifying with `keys`.
struct Setup {
    client: kube::Client,
    ns: String,
    base: String,
    repo: TestRepo,
    agent: AgentCommand,
    dir: PathBuf,
}

async fn setup(prefix: &str, transport: Transport) -> Result<Setup> {
    let env = kube_env();
    let client = env.client().await?;
    let agent_ns = create_namespace(&client, "agent").await?;
    let ns = create_namespace(&client, prefix).await?;
    let cluster = unique("edge");
    let repo = git_servers().create_repo(&unique(prefix))?;
    let agent = AgentCommand::new(env, &repo, &cluster, &agent_ns, transport)?;
    Ok(Setup {
        client,
        ns,
        base: format!("clusters/{cluster}/app"),
        repo,
        agent,
        dir: scratch_dir("verify")?,
    })
}

impl Setup {
    fn write(&self, name: &str, value: &str) -> Result<()> {
        self.repo.write(
            &format!("{}/{name}.yaml", self.base),
            &fixtures::config_map(&self.ns, name, value),
        )?;
        Ok(())
    }

    fn verifying(&self, mode: &str, keys: &Path) -> AgentCommand {
        let mut agent = self.agent.clone();
        agent.arg("--verify").arg(mode).arg("--verify-keys-dir").arg(keys);
        agent
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[tokio::test]
async fn an_ssh_signed_commit_applies_and_an_unsigned_one_after_it_changes_nothing() -> Result<()> {
    let t = setup("vssh", Transport::Https).await?;
    let key = SshKey::generate(&t.dir, "alice")?;
    let keys = keys_dir(&t.dir, &[format!("alice@example.com {}", key.public)], &[])?;
    t.write("a", "1")?;
    t.write("b", "1")?;
    let good = Signer::Ssh(&key).commit(&t.repo, "signed")?;
    git_verifies(&t.repo, "verify-commit", &good, &keys, None)?;
    let agent = t.verifying("commit", &keys);
    let out = agent.once()?;
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("Signature verified") && text.contains(&key.fingerprint),
        "{text}"
    );
    assert_eq!(config_value(&t.client, &t.ns, "a").await?.as_deref(), Some("1"));

    // An unsigned commit changes a and deletes b: refused, nothing applied or pruned.
    t.write("a", "2")?;
    t.repo.remove(&format!("{}/b.yaml", t.base))?;
    let unsigned = Signer::None.commit(&t.repo, "unsigned")?;
    let out = agent.once()?;
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!("commit {unsigned} is not signed")) && text.contains("last good state stays"),
        "{text}"
    );
    assert_eq!(config_value(&t.client, &t.ns, "a").await?.as_deref(), Some("1"));
    assert_eq!(managed_config_maps(&t.client, &t.ns).await?, ["a", "b"]);

    // Without verification the same commit applies: the refusal was verification's doing.
    let out = t.agent.once()?;
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(config_value(&t.client, &t.ns, "a").await?.as_deref(), Some("2"));
    assert_eq!(managed_config_maps(&t.client, &t.ns).await?, ["a"]);
    Ok(())
}

#[tokio::test]
async fn a_gpg_signed_commit_applies() -> Result<()> {
    let t = setup("vpgp", Transport::File).await?;
    let key = GpgKey::generate(&t.dir, "Release <release@example.com>", None)?;
    let keys = keys_dir(&t.dir, &[], &[key.export()?])?;
    t.write("a", "1")?;
    let good = Signer::Gpg(&key).commit(&t.repo, "signed")?;
    git_verifies(&t.repo, "verify-commit", &good, &keys, Some(&key))?;
    let out = t.verifying("commit", &keys).once()?;
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&key.fingerprint), "{text}");
    assert_eq!(config_value(&t.client, &t.ns, "a").await?.as_deref(), Some("1"));
    Ok(())
}

#[tokio::test]
async fn commits_signed_by_untrusted_keys_are_refused_naming_the_key() -> Result<()> {
    let t = setup("vwrong", Transport::File).await?;
    let trusted = SshKey::generate(&t.dir, "trusted")?;
    let stranger = SshKey::generate(&t.dir, "stranger")?;
    let gpg_trusted = GpgKey::generate(&t.dir, "Trusted <t@example.com>", None)?;
    let gpg_stranger = GpgKey::generate(&t.dir, "Stranger <s@example.com>", None)?;
    let keys = keys_dir(
        &t.dir,
        &[format!("t@example.com {}", trusted.public)],
        &[gpg_trusted.export()?],
    )?;
    let agent = t.verifying("commit", &keys);
    t.write("a", "1")?;
    Signer::Ssh(&trusted).commit(&t.repo, "good")?;
    assert!(agent.once()?.status.success());

    for (signer, fingerprint) in [
        (Signer::Ssh(&stranger), stranger.fingerprint.clone()),
        (Signer::Gpg(&gpg_stranger), gpg_stranger.fingerprint.clone()),
    ] {
        t.write("a", "evil")?;
        let commit = signer.commit(&t.repo, "by a stranger")?;
        let out = agent.once()?;
        let text = output_text(&out);
        assert!(!out.status.success(), "{text}");
        assert!(
            text.contains(&format!(
                "commit {commit} is signed by key {fingerprint}, which is not trusted"
            )),
            "{text}"
        );
        assert_eq!(config_value(&t.client, &t.ns, "a").await?.as_deref(), Some("1"));
    }
    Ok(())
}

#[tokio::test]
async fn commits_signed_by_expired_keys_are_refused() -> Result<()> {
    let t = setup("vexp", Transport::File).await?;
    // SSH: the allowed-signers line stopped trusting the key before the commit was made.
    let key = SshKey::generate(&t.dir, "retired")?;
    let keys = keys_dir(
        &t.dir,
        &[format!("r@example.com valid-before=\"20200101\" {}", key.public)],
        &[],
    )?;
    t.write("a", "1")?;
    let commit = Signer::Ssh(&key).commit(&t.repo, "after retirement")?;
    let oracle = git_verifies(&t.repo, "verify-commit", &commit, &keys, None);
    assert!(oracle.is_err(), "git accepts a key past valid-before: {oracle:?}");
    let out = t.verifying("commit", &keys).once()?;
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "commit {commit} is signed by key {}, which was not valid",
            key.fingerprint
        )) && text.contains("until 2020-01-01"),
        "{text}"
    );
    assert!(managed_config_maps(&t.client, &t.ns).await?.is_empty());

    // OpenPGP: a key made ten days ago that (by a self-signature made nine days ago) expired eight days ago
    // signs a commit now.
    let gpg = GpgKey::generate(&t.dir, "Old <old@example.com>", Some(10))?;
    t.write("a", "2")?;
    let commit = Signer::Gpg(&gpg).commit(&t.repo, "signed, key still valid")?;
    gpg.expire_in_the_past(9)?;
    let keys = keys_dir(&t.dir, &[], &[gpg.export()?])?;
    let out = t.verifying("commit", &keys).once()?;
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "commit {commit} is signed by key {}, which was not valid",
            gpg.fingerprint
        )) && text.contains("expired at"),
        "{text}"
    );
    assert!(managed_config_maps(&t.client, &t.ns).await?.is_empty());
    Ok(())
}

/// The agent and `git verify-commit` (ssh-keygen) read allowed-signers lines alike: `valid-before` holds up to
/// and including its second, and namespaces are ssh pattern lists.
#[tokio::test]
async fn ssh_key_validity_bounds_and_namespace_patterns_agree_with_git() -> Result<()> {
    let t = setup("vbound", Transport::File).await?;
    let key = SshKey::generate(&t.dir, "bounded")?;
    // 2024-01-01T00:00:00Z.
    let keys = keys_dir(
        &t.dir,
        &[format!(
            "ops@example.com namespaces=\"gi?,file\",valid-before=\"20240101000000Z\" {}",
            key.public
        )],
        &[],
    )?;
    let agent = t.verifying("commit", &keys);
    for (value, date, good) in [
        ("1", "@1704067200 +0000", true),
        ("2", "@1704067201 +0000", false),
    ] {
        t.write("a", value)?;
        let commit = Signer::Ssh(&key).commit_dated(&t.repo, &format!("at {date}"), Some(date))?;
        let oracle = git_verifies(&t.repo, "verify-commit", &commit, &keys, None);
        assert_eq!(oracle.is_ok(), good, "git at {date}: {oracle:?}");
        let out = agent.once()?;
        let text = output_text(&out);
        assert_eq!(out.status.success(), good, "agent at {date}: {text}");
        assert_eq!(config_value(&t.client, &t.ns, "a").await?.as_deref(), Some("1"));
        if !good {
            assert!(
                text.contains(&format!(
                    "commit {commit} is signed by key {}, which was not valid",
                    key.fingerprint
                )),
                "{text}"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_tampered_commit_is_refused() -> Result<()> {
    let t = setup("vtamper", Transport::Https).await?;
    let key = SshKey::generate(&t.dir, "alice")?;
    let keys = keys_dir(&t.dir, &[format!("alice@example.com {}", key.public)], &[])?;
    let agent = t.verifying("commit", &keys);
    t.write("a", "1")?;
    Signer::Ssh(&key).commit(&t.repo, "first")?;
    t.write("a", "2")?;
    let signed = Signer::Ssh(&key).commit(&t.repo, "second")?;
    assert!(agent.once()?.status.success());
    assert_eq!(config_value(&t.client, &t.ns, "a").await?.as_deref(), Some("2"));

    // The signed commit's raw object with another tree (a = "evil"), signature copied as it was.
    t.write("a", "evil")?;
    let work = Some(t.repo.work.as_path());
    run_in("git", &["add", "-A"], work, &[])?;
    let evil_tree = run_in("git", &["write-tree"], work, &[])?;
    let raw = run_in("git", &["cat-file", "commit", &signed], work, &[])? + "\n";
    let old_tree = raw
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("tree "))
        .context("tree")?;
    let tampered_raw = raw.replacen(old_tree, &evil_tree, 1);
    let file = t.dir.join("tampered");
    std::fs::write(&file, tampered_raw)?;
    let tampered = run_in("git", &["hash-object", "-t", "commit", "-w", s(&file)], work, &[])?;
    run_in(
        "git",
        &[
            "push",
            "-q",
            "-f",
            "origin",
            &format!("{tampered}:refs/heads/main"),
        ],
        work,
        &[],
    )?;
    assert!(git_verifies(&t.repo, "verify-commit", &tampered, &keys, None).is_err());

    let out = agent.once()?;
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "commit {tampered}: the signature by key {} does not verify",
            key.fingerprint
        )),
        "{text}"
    );
    assert_eq!(config_value(&t.client, &t.ns, "a").await?.as_deref(), Some("2"));
    Ok(())
}

#[tokio::test]
async fn tag_mode_applies_a_signed_annotated_tag_and_refuses_an_unsigned_one() -> Result<()> {
    let t = setup("vtag", Transport::Https).await?;
    let key = GpgKey::generate(&t.dir, "Release <release@example.com>", None)?;
    let keys = keys_dir(&t.dir, &[], &[key.export()?])?;

    // Tag mode needs a tag to follow.
    let out = t.verifying("tag", &keys).once()?;
    let text = output_text(&out);
    assert!(
        !out.status.success() && text.contains("--git-ref refs/tags/"),
        "{text}"
    );

    let mut agent = t.verifying("tag", &keys);
    agent.arg("--git-ref").arg("refs/tags/release");
    t.write("a", "1")?;
    Signer::None.commit(&t.repo, "unsigned commit, signed tag")?;
    Signer::Gpg(&key).tag(&t.repo, "release")?;
    git_verifies(&t.repo, "verify-tag", "release", &keys, Some(&key))?;
    let out = agent.once()?;
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("tag refs/tags/release") && text.contains(&key.fingerprint),
        "{text}"
    );
    assert_eq!(config_value(&t.client, &t.ns, "a").await?.as_deref(), Some("1"));

    // The tag moves to a new commit, annotated but unsigned: refused.
    t.write("a", "2")?;
    Signer::None.commit(&t.repo, "next")?;
    Signer::None.tag(&t.repo, "release")?;
    let out = agent.once()?;
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("tag refs/tags/release (") && text.contains("is not signed"),
        "{text}"
    );
    assert_eq!(config_value(&t.client, &t.ns, "a").await?.as_deref(), Some("1"));
    Ok(())
}

#[tokio::test]
async fn a_refused_commit_is_reported_by_an_event_and_a_metric() -> Result<()> {
    use k8s_openapi::api::events::v1::Event;
    use kube::Api;
    let t = setup("vevent", Transport::Https).await?;
    let key = SshKey::generate(&t.dir, "alice")?;
    let keys = keys_dir(&t.dir, &[format!("alice@example.com {}", key.public)], &[])?;
    t.write("a", "1")?;
    Signer::Ssh(&key).commit(&t.repo, "signed")?;
    let agent = t.verifying("commit", &keys).spawn("1s")?;
    agent.wait_ready(Duration::from_secs(60)).await?;
    t.write("a", "2")?;
    let unsigned = Signer::None.commit(&t.repo, "unsigned")?;

    let events: Api<Event> = Api::all(t.client.clone());
    let note = eventually(Duration::from_secs(60), "a VerificationFailed event", || async {
        let items = events.list(&Default::default()).await?.items;
        let found = items.iter().find(|e| {
            e.reason.as_deref() == Some("VerificationFailed")
                && e.note.as_deref().is_some_and(|n| n.contains(&unsigned))
        });
        Ok(match found {
            Some(e) => Seen::Done(e.note.clone().unwrap_or_default()),
            None => Seen::Not(format!(
                "{} events, none VerificationFailed for {unsigned}",
                items.len()
            )),
        })
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", agent.logs()))?;
    assert!(note.contains("is not signed"), "{note}");
    let (_, metrics) = agent.get("/metrics").await?;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("outpost_verification_failures_total{reason=\"unsigned\"}")),
        "{metrics}"
    );
    assert_eq!(config_value(&t.client, &t.ns, "a").await?.as_deref(), Some("1"));
    // The per-poll cost, as the agent measured it.
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let (sum, count) = (
        value("outpost_verification_duration_seconds_sum"),
        value("outpost_verification_duration_seconds_count"),
    );
    println!(
        "verification: {count} polls, {:.3} ms per poll on average (SSH ed25519)",
        sum * 1000.0 / count.max(1.0)
    );
    Ok(())
}

#[test]
fn the_chart_mounts_the_keys_secret_and_sets_the_verify_flags() -> Result<()> {
    use crate::chart::{containers, env_var, lint, render, values_file};
    let base = "git:\n  repo: https://git.example.com/r.git\n  clustername: c1\n  enabled: false\n";
    // Off by default: no flag, no mount.
    let docs = render("v", "outpost-system", &values_file(base)?)?;
    let agent = containers(&docs)[0];
    assert_eq!(env_var(agent, "OUTPOST_VERIFY"), None);
    assert!(!serde_json::to_string(&agent["volumeMounts"])?.contains("/etc/outpost/verify"));

    let file = values_file(&format!(
        "{base}verify:\n  mode: commit\n  secretName: trusted-keys\n"
    ))?;
    lint(&file)?;
    let docs = render("v", "outpost-system", &file)?;
    let agent = containers(&docs)[0];
    assert_eq!(env_var(agent, "OUTPOST_VERIFY").as_deref(), Some("commit"));
    assert_eq!(
        env_var(agent, "OUTPOST_VERIFY_KEYS_DIR").as_deref(),
        Some("/etc/outpost/verify")
    );
    let mounts = serde_json::to_string(&agent["volumeMounts"])?;
    assert!(
        mounts.contains("/etc/outpost/verify") && mounts.contains("\"readOnly\":true"),
        "{mounts}"
    );
    let rendered = serde_json::to_string(&docs)?;
    assert!(rendered.contains("\"secretName\":\"trusted-keys\""), "{rendered}");

    // A mode without the Secret is refused at render time, naming the value.
    let missing = render(
        "v",
        "outpost-system",
        &values_file(&format!("{base}verify:\n  mode: tag\n"))?,
    );
    let err = format!("{:#}", missing.unwrap_err());
    assert!(err.contains("verify.secretName"), "{err}");
    Ok(())
}
