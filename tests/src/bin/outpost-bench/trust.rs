//! Trusted-source costs (issue 14): what commit verification and SOPS decryption add to a sync, each measured
//! against the same agent with the feature off, in the same run, on the same 1,000 mixed objects as
//! [`Bench::mixed`]. With a feature off its code is not on the sync path (the flag's default), so the other
//! rows of the table are the "off" figures too.
//!
//! - Verification: every commit is signed the same way (`git -c gpg.format=ssh commit -S` with an ed25519 key
//!   from `ssh-keygen`); one agent runs `--verify off`, one `--verify commit` with the key in an allowed-signers
//!   file. Rows: initial sync, a poll with no new commit, a commit changing 1% (median of [`ROUNDS`]).
//! - Decryption: [`SECRETS`] Secrets beside the mixed objects, in one repository as plain YAML, in another
//!   encrypted by the real `sops` CLI with an age key; a third agent has the age key but no encrypted file
//!   (the cost of decryption being on when nothing needs it).

use super::*;

/// Secrets (one file each) in the decryption scenario.
const SECRETS: usize = 100;
/// Commits changing 1% measured per agent; the median is printed.
const ROUNDS: usize = 5;

/// What one agent measured.
struct Costs {
    initial: Duration,
    poll: Duration,
    commit: Duration,
}

impl Costs {
    fn text(&self) -> String {
        format!(
            "initial {}, poll {:.1} ms, 1% commit {}",
            secs(self.initial),
            self.poll.as_secs_f64() * 1000.0,
            secs(self.commit)
        )
    }

    /// `+x ms` per initial sync / per 1% commit against `base`.
    fn extra(&self, base: &Costs) -> String {
        let ms = |a: Duration, b: Duration| (a.as_secs_f64() - b.as_secs_f64()) * 1000.0;
        format!(
            "{:+.0} ms initial, {:+.1} ms poll, {:+.0} ms per 1% commit",
            ms(self.initial, base.initial),
            ms(self.poll, base.poll),
            ms(self.commit, base.commit)
        )
    }
}

/// Run a tool, failing with its output.
fn tool(program: &Path, args: &[&str], dir: Option<&Path>) -> Result<String> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let out = cmd
        .output()
        .with_context(|| format!("run {}", program.display()))?;
    if !out.status.success() {
        bail!("{} {args:?}: {}", program.display(), output_text(&out));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn git(repo: &TestRepo, args: &[&str]) -> Result<()> {
    let mut all = vec!["-C", repo.work.to_str().context("utf-8 path")?];
    all.extend_from_slice(args);
    tool(&tools::system("git")?, &all, None).map(|_| ())
}

/// A plain Secret of the decryption scenario.
fn secret(ns: &str, i: usize) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: secret-{i:03}\n  namespace: {ns}\ntype: Opaque\nstringData:\n  password: pw-{i:03}-{}\n  token: tk-{i:03}\n",
        "s".repeat(32)
    )
}

impl Bench {
    /// Both trusted-source scenarios.
    pub(super) async fn trust(&mut self) -> Result<()> {
        self.verification().await.context("commit verification")?;
        self.decryption().await.context("SOPS decryption")
    }

    /// One agent on `prefix`'s repository: initial sync, idle polls, then [`ROUNDS`] commits changing 1%.
    async fn costs(
        &self,
        repo: &TestRepo,
        prefix: &str,
        extra: &[(String, String, String)],
        flags: &[String],
    ) -> Result<Costs> {
        let tree = repo.work.join(format!("clusters/{prefix}"));
        let mut objects = mixed_objects(prefix, "1");
        objects.extend_from_slice(extra);
        write_tree(&tree, &objects)?;
        repo.commit("1,000 objects")?;
        let mut agent = self.agent(repo, prefix, &self.work.join(format!("cache-{prefix}")))?;
        for f in flags {
            agent.arg(f);
        }
        let initial = agent_once(&agent)?;
        let daemon = agent.spawn("1s")?;
        daemon.wait_ready(Duration::from_secs(120)).await?;
        let (count, sum) = (
            "outpost_reconcile_duration_seconds_count",
            "outpost_reconcile_duration_seconds_sum",
        );
        let (n0, s0) = (
            metric(&daemon, count, "unchanged").await?,
            metric(&daemon, sum, "unchanged").await?,
        );
        tokio::time::sleep(Duration::from_secs(6)).await;
        let polls = metric(&daemon, count, "unchanged").await? - n0;
        let poll = (metric(&daemon, sum, "unchanged").await? - s0) / polls.max(1.0);
        let mut commits = Vec::new();
        for round in 0..ROUNDS {
            let version = (round + 2).to_string();
            let mut changed = mixed_objects(prefix, "1");
            for (i, obj) in changed
                .iter_mut()
                .filter(|(_, f, _)| f.starts_with("cm-"))
                .enumerate()
            {
                if i % 80 == 0 {
                    obj.2 = obj
                        .2
                        .replace("version: \"1\"", &format!("version: \"{version}\""));
                }
            }
            changed.extend_from_slice(extra);
            write_tree(&tree, &changed)?;
            commits.push(daemon_reconcile(&daemon, || repo.commit("1% changed").map(|_| ())).await?);
        }
        commits.sort();
        Ok(Costs {
            initial,
            poll: Duration::from_secs_f64(poll),
            commit: commits[ROUNDS / 2],
        })
    }

    async fn verification(&mut self) -> Result<()> {
        println!("commit verification: 1,000 mixed objects, SSH-signed commits, --verify off vs commit");
        let keys = self.work.join("verify-keys");
        std::fs::create_dir_all(&keys)?;
        let key = keys.join("signer");
        let keygen = tools::system("ssh-keygen")?;
        let key_s = key.to_str().context("utf-8 path")?;
        tool(
            &keygen,
            &["-q", "-t", "ed25519", "-N", "", "-C", "bench", "-f", key_s],
            None,
        )?;
        let public = std::fs::read_to_string(keys.join("signer.pub"))?;
        // The trusted-keys directory the agent reads: only the allowed-signers file.
        let trusted = self.work.join("verify-trusted");
        std::fs::create_dir_all(&trusted)?;
        std::fs::write(
            trusted.join("allowed_signers"),
            format!("test@outpost.invalid {}", public.trim()),
        )?;
        let mut costs = Vec::new();
        for (mode, flags) in [
            ("off", vec!["--verify".to_owned(), "off".to_owned()]),
            (
                "commit",
                vec![
                    "--verify".to_owned(),
                    "commit".to_owned(),
                    "--verify-keys-dir".to_owned(),
                    trusted.display().to_string(),
                ],
            ),
        ] {
            let prefix = format!("trust-verify-{mode}");
            create_namespaces(&self.client, &prefix).await?;
            let repo = self.git.create_repo(&prefix)?;
            for (k, v) in [
                ("gpg.format", "ssh"),
                ("user.signingkey", key_s),
                ("commit.gpgsign", "true"),
            ] {
                git(&repo, &["config", k, v])?;
            }
            costs.push(self.costs(&repo, &prefix, &[], &flags).await?);
        }
        let (off, on) = (&costs[0], &costs[1]);
        self.row(
            "verification off (signed commits)",
            off.text(),
            String::new(),
            String::new(),
            "",
        );
        self.row(
            "verification on (--verify commit, SSH)",
            on.text(),
            String::new(),
            on.extra(off),
            "cost printed",
        );
        Ok(())
    }

    async fn decryption(&mut self) -> Result<()> {
        println!("SOPS decryption: 1,000 mixed objects + {SECRETS} Secrets, plain vs sops-encrypted (age)");
        let keys = self.work.join("age-keys");
        std::fs::create_dir_all(&keys)?;
        let identity = keys.join("keys.txt");
        let identity_s = identity.to_str().context("utf-8 path")?;
        tool(&tools::system("age-keygen")?, &["-o", identity_s], None)?;
        let recipient = tool(&tools::system("age-keygen")?, &["-y", identity_s], None)?;
        let sops = tools::sops()?;
        let key_flags = vec!["--sops-age-keys-dir".to_owned(), keys.display().to_string()];
        let mut costs = Vec::new();
        for (mode, encrypted, flags) in [
            ("plain", false, vec![]),
            ("keyed", false, key_flags.clone()),
            ("sops", true, key_flags.clone()),
        ] {
            let prefix = format!("trust-sops-{mode}");
            create_namespaces(&self.client, &prefix).await?;
            let ns = format!("{prefix}-00");
            let scratch = self.work.join(&prefix);
            std::fs::create_dir_all(&scratch)?;
            let mut secrets = Vec::new();
            for i in 0..SECRETS {
                let plain = secret(&ns, i);
                let text = if encrypted {
                    let file = scratch.join(format!("secret-{i:03}.yaml"));
                    std::fs::write(&file, &plain)?;
                    let args = [
                        "--encrypt",
                        "--age",
                        recipient.trim(),
                        "--encrypted-regex",
                        "^(data|stringData)$",
                        file.to_str().context("utf-8 path")?,
                    ];
                    tool(&sops, &args, None)?
                } else {
                    plain
                };
                secrets.push(("b00".to_owned(), format!("secret-{i:03}.yaml"), text));
            }
            costs.push(
                self.costs(&self.git.create_repo(&prefix)?, &prefix, &secrets, &flags)
                    .await?,
            );
        }
        let (plain, keyed, sops) = (&costs[0], &costs[1], &costs[2]);
        self.row(
            "decryption off (100 plain Secrets)",
            plain.text(),
            String::new(),
            String::new(),
            "",
        );
        self.row(
            "decryption on, no encrypted file",
            keyed.text(),
            String::new(),
            keyed.extra(plain),
            "cost printed",
        );
        self.row(
            "decryption on, 100 sops-encrypted Secrets",
            sops.text(),
            String::new(),
            sops.extra(plain),
            "cost printed",
        );
        Ok(())
    }
}
