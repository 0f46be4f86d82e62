//! Idle polls as the repository grows (issue 15): a fleet repository holds thousands of refs (a branch per
//! cluster, status refs), and a poll that finds no new commit must still cost the server next to nothing.
//! One repository with [`EXTRA_REFS`] refs beside `main`; the agent (`--once` on a warm cache: one ref check,
//! no fetch, as a daemon's idle poll) against `git ls-remote` of the same repository, over HTTPS and over SSH
//! with and without `AcceptEnv GIT_PROTOCOL` (without it the server cannot hear that the client speaks
//! protocol v2 and advertises every ref).
//!
//! What the server sent is counted where the server is: HTTPS from nginx's access log (response body bytes
//! and `$request_time` of every request to the repository), SSH by a `ForceCommand` wrapper around the
//! client's command in an sshd of our own (bytes `git-upload-pack` wrote, and its wall time). Printed, never
//! asserted.

use std::os::unix::fs::PermissionsExt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use outpost_tests::process::{Guarded, free_port, wait_for_port};

use super::*;

/// Refs beside `main`, as a fleet repository's per-cluster branches.
const EXTRA_REFS: usize = 10_000;
/// Idle polls (and `git ls-remote` runs) measured per transport; the mean is printed.
const POLLS: usize = 3;

/// What the server spent on one client run: body bytes sent, server time, requests (HTTP) or sessions (SSH).
#[derive(Default)]
struct Cost {
    bytes: u64,
    seconds: f64,
    requests: usize,
}

impl Cost {
    fn text(&self, runs: usize) -> String {
        let runs = runs.max(1) as f64;
        format!(
            "{} B, {:.1} ms server, {:.1} requests per poll",
            (self.bytes as f64 / runs).round(),
            self.seconds * 1000.0 / runs,
            self.requests as f64 / runs
        )
    }

    fn add(&mut self, other: Cost) {
        self.bytes += other.bytes;
        self.seconds += other.seconds;
        self.requests += other.requests;
    }
}

/// Where one transport's server records what it sent: a log file whose new lines are read after each run.
struct Meter {
    /// The log.
    log: PathBuf,
    /// Lines about other repositories are skipped.
    repo: String,
    /// Parses one line into (body bytes, seconds).
    parse: fn(&str) -> Option<(u64, f64)>,
}

impl Meter {
    fn len(&self) -> u64 {
        std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0)
    }

    /// The cost of `run`, from what the log gained meanwhile.
    fn measure(&self, run: impl FnOnce() -> Result<()>) -> Result<Cost> {
        let from = self.len();
        run()?;
        // nginx writes its access log line after the response: give it a moment.
        std::thread::sleep(Duration::from_millis(200));
        let text = std::fs::read(&self.log)?;
        let new = String::from_utf8_lossy(&text[from as usize..]).into_owned();
        let mut cost = Cost::default();
        for line in new.lines().filter(|l| l.contains(&self.repo)) {
            let (bytes, seconds) =
                (self.parse)(line).with_context(|| format!("unreadable log line {line:?}"))?;
            cost.add(Cost {
                bytes,
                seconds,
                requests: 1,
            });
        }
        Ok(cost)
    }
}

/// `<addr> "<request>" <status> <body bytes> <seconds>` (the test nginx's `outpost` log format).
fn nginx_line(line: &str) -> Option<(u64, f64)> {
    let mut fields = line.rsplit(' ');
    let seconds = fields.next()?.parse().ok()?;
    let bytes = fields.next()?.parse().ok()?;
    Some((bytes, seconds))
}

/// `<bytes> <microseconds> <protocol> <command>` (the wrapper's line).
fn wrapper_line(line: &str) -> Option<(u64, f64)> {
    let mut fields = line.split(' ');
    let bytes = fields.next()?.parse().ok()?;
    let micros: f64 = fields.next()?.parse().ok()?;
    Some((bytes, micros / 1e6))
}

/// An sshd of our own on the shared repositories, every command run through a counting wrapper.
struct CountingSshd {
    port: u16,
    known_hosts: PathBuf,
    meter: Meter,
    _sshd: Guarded,
}

impl CountingSshd {
    fn start(git: &GitServers, dir: &Path, accept_git_protocol: bool, repo: &str) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let port = free_port();
        let ssh = git.dir.join("ssh");
        let host_key = ssh.join("host_ed25519");
        let host_pub = std::fs::read_to_string(host_key.with_extension("pub"))?;
        let known_hosts = dir.join("known_hosts");
        let mut key = host_pub.split_whitespace();
        std::fs::write(
            &known_hosts,
            format!(
                "[127.0.0.1]:{port} {} {}\n",
                key.next().unwrap_or_default(),
                key.next().unwrap_or_default()
            ),
        )?;
        let log = dir.join("sent.log");
        let wrapper = dir.join("count");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\n# Run the client's Git command; record the bytes it sent back and its wall time.\nstart=$(date +%s%N)\ncopy=$(mktemp)\nsh -c \"$SSH_ORIGINAL_COMMAND\" | tee \"$copy\"\nend=$(date +%s%N)\necho \"$(wc -c < \"$copy\") $(( (end - start) / 1000 )) ${{GIT_PROTOCOL:-v0}} $SSH_ORIGINAL_COMMAND\" >> {log}\nrm -f \"$copy\"\n",
                log = log.display()
            ),
        )?;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
        let accept = if accept_git_protocol {
            "AcceptEnv GIT_PROTOCOL\n"
        } else {
            ""
        };
        let conf = dir.join("sshd_config");
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\nPidFile {dir}/sshd.pid\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin prohibit-password\nAllowUsers {user}\nSetEnv PATH=/usr/local/bin:/usr/bin:/bin\n{accept}ForceCommand {wrapper}\n",
                hk = host_key.display(),
                ak = ssh.join("authorized_keys").display(),
                dir = dir.display(),
                user = git.ssh_user,
                wrapper = wrapper.display(),
            ),
        )?;
        let sshd_log = dir.join("sshd.log");
        let sshd = Guarded::spawn(
            "sshd",
            &tools::system("sshd")?,
            &["-D".into(), "-e".into(), "-f".into(), conf.display().to_string()],
            &sshd_log,
            &[],
        )?;
        wait_for_port(port, "sshd", &sshd_log, Duration::from_secs(10))?;
        Ok(CountingSshd {
            port,
            known_hosts,
            meter: Meter {
                log,
                repo: repo.to_owned(),
                parse: wrapper_line,
            },
            _sshd: sshd,
        })
    }

    fn url(&self, git: &GitServers, bare: &Path) -> String {
        format!("ssh://{}@127.0.0.1:{}{}", git.ssh_user, self.port, bare.display())
    }
}

/// `10001` as `10,001`.
fn thousands(n: usize) -> String {
    if n < 1000 {
        n.to_string()
    } else {
        format!("{},{:03}", thousands(n / 1000), n % 1000)
    }
}

/// Run `git` with `args` and `envs`, failing with its output.
fn git_cli(args: &[&str], envs: &[(&str, String)]) -> Result<()> {
    let out = Command::new("git")
        .args(args)
        .envs(envs.iter().cloned())
        .output()?;
    if !out.status.success() {
        bail!("git {args:?}: {}", output_text(&out));
    }
    Ok(())
}

impl Bench {
    pub(super) async fn idle(&mut self) -> Result<()> {
        println!(
            "Idle polls of a repository with {} refs",
            thousands(EXTRA_REFS + 1)
        );
        let repo = self.git.create_repo("bench-idle")?;
        let cluster = "bench-idle";
        let ns = "bench-idle";
        let api: Api<Namespace> = Api::all(self.client.clone());
        let namespace: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}))?;
        api.create(&PostParams::default(), &namespace).await?;
        repo.write(
            &format!("clusters/{cluster}/app/cm.yaml"),
            &config_map(ns, "idle", "1"),
        )?;
        let commit = repo.commit("one object")?;
        // A branch per cluster of a fleet, packed as a long-lived server's refs are.
        let refs: String = (0..EXTRA_REFS)
            .map(|i| format!("create refs/heads/cluster-{i:05} {commit}\n"))
            .collect();
        let bare = repo.bare.to_str().context("UTF-8 path")?;
        let mut update = Command::new("git")
            .args(["-C", bare, "update-ref", "--stdin"])
            .stdin(std::process::Stdio::piped())
            .spawn()?;
        std::io::Write::write_all(update.stdin.as_mut().context("stdin")?, refs.as_bytes())?;
        if !update.wait()?.success() {
            bail!("git update-ref --stdin failed");
        }
        git_cli(&["-C", bare, "pack-refs", "--all"], &[])?;
        let repo_path = format!("/{}.git", repo.name);

        // HTTPS: nginx's access log.
        let https = Meter {
            log: self.git.access_log(),
            repo: repo_path.clone(),
            parse: nginx_line,
        };
        let agent = self.agent(&repo, cluster, &self.work.join("idle-https-cache"))?;
        // Credentials in the environment, not the command line (a failure prints the command).
        let url = repo.https_url();
        let token = format!("{}:{}", self.git.http_user, self.git.http_password);
        let envs = [
            ("GIT_SSL_CAINFO", self.git.ca_file.display().to_string()),
            ("GIT_CONFIG_COUNT", "1".to_owned()),
            ("GIT_CONFIG_KEY_0", "http.extraHeader".to_owned()),
            (
                "GIT_CONFIG_VALUE_0",
                format!("Authorization: Basic {}", BASE64.encode(token)),
            ),
        ];
        let ls_remote = || git_cli(&["ls-remote", &url], &envs);
        self.idle_row("HTTPS", &https, &agent, ls_remote)?;

        // SSH, with and without the server accepting GIT_PROTOCOL.
        for accept in [true, false] {
            let dir = self.work.join(format!("idle-sshd-{accept}"));
            let sshd = CountingSshd::start(&self.git, &dir, accept, &repo_path)?;
            let url = sshd.url(&self.git, &repo.bare);
            let mut agent =
                AgentCommand::with_url(&self.kube, std::ffi::OsStr::new(&url), cluster, &self.agent_ns)?;
            agent
                .set_cache_dir(&dir.join("cache"))
                .arg("--git-ssh-key-file")
                .arg(&self.git.ssh_key)
                .arg("--git-known-hosts-file")
                .arg(&sshd.known_hosts)
                .env("RUST_LOG", "warn");
            let ssh = format!(
                "ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -i {} -o UserKnownHostsFile={}",
                self.git.ssh_key.display(),
                sshd.known_hosts.display()
            );
            let ls_remote = || git_cli(&["ls-remote", &url], &[("GIT_SSH_COMMAND", ssh.clone())]);
            let label = if accept {
                "SSH, AcceptEnv GIT_PROTOCOL"
            } else {
                "SSH, no AcceptEnv (protocol v0)"
            };
            self.idle_row(label, &sshd.meter, &agent, ls_remote)?;
        }
        Ok(())
    }

    /// Warm the agent's cache, then measure [`POLLS`] idle polls and as many `git ls-remote` runs.
    fn idle_row(
        &mut self,
        transport: &str,
        meter: &Meter,
        agent: &AgentCommand,
        ls_remote: impl Fn() -> Result<()>,
    ) -> Result<()> {
        let once = || -> Result<()> {
            let out = agent.once()?;
            if !out.status.success() {
                bail!("agent --once failed: {}", output_text(&out));
            }
            Ok(())
        };
        let first = meter.measure(once)?;
        let (mut poll, mut listing) = (Cost::default(), Cost::default());
        for _ in 0..POLLS {
            poll.add(meter.measure(once)?);
            listing.add(meter.measure(&ls_remote)?);
        }
        let ratio = format!(
            "{:.0}x fewer bytes",
            listing.bytes as f64 / (poll.bytes as f64).max(1.0)
        );
        self.row(
            &format!("idle poll, {} refs, {transport}", thousands(EXTRA_REFS + 1)),
            poll.text(POLLS),
            format!("git ls-remote: {}", listing.text(POLLS)),
            ratio,
            &format!(
                "hundreds of bytes, not the ref list (first sync: {} B)",
                first.bytes
            ),
        );
        Ok(())
    }
}
