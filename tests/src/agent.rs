//! Running `outpost-agent` against the test environment as a real process: once (`--once`) or as a daemon
//! with its metrics port, logs and signals.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::process::{Guarded, free_port};
use crate::{GitServers, KubeEnv, TestRepo, tools};

/// How an agent run should reach its repository.
pub enum Transport {
    /// Smart HTTP over TLS with the server's token file and CA.
    Https,
    /// Smart HTTP with a token file holding this (wrong) value.
    HttpsWithToken(String),
    /// Smart HTTP reading the token from this file.
    HttpsWithTokenFile(PathBuf),
    /// file:// URL.
    File,
    /// ssh:// with the generated key and pinned known_hosts.
    Ssh,
    /// `https://user:password@host/...` with no other credentials.
    HttpsWithCredentialsInUrl,
    /// Smart HTTP over TLS with the server's token in the `OUTPOST_GIT_TOKEN` variable (no token file).
    HttpsWithTokenVariable,
    /// Smart HTTP with the server's token, trusting this CA bundle (`--git-ca-file`) instead of the server's.
    HttpsWithCaFile(PathBuf),
    /// This URL as it is, without credentials (e.g. a test proxy's plain `http://`).
    Url(String),
}

/// A configured `outpost-agent` (or `outpost-status-writer`) command line.
#[derive(Clone)]
pub struct AgentCommand {
    /// Which of our binaries.
    binary: &'static str,
    /// Flags.
    args: Vec<OsString>,
    /// Environment.
    envs: Vec<(String, OsString)>,
    /// Its cache directory.
    pub cache_dir: PathBuf,
}

impl AgentCommand {
    /// `outpost-agent` for `cluster` following `repo` on the shared Git servers over `transport`, with the admin
    /// kubeconfig and inventories in `namespace`.
    pub fn new(
        kube: &KubeEnv,
        repo: &TestRepo,
        cluster: &str,
        namespace: &str,
        transport: Transport,
    ) -> Result<Self> {
        Self::with_servers(crate::git_servers(), kube, repo, cluster, namespace, transport)
    }

    /// Like [`AgentCommand::new`] against a specific set of Git servers.
    pub fn with_servers(
        servers: &GitServers,
        kube: &KubeEnv,
        repo: &TestRepo,
        cluster: &str,
        namespace: &str,
        transport: Transport,
    ) -> Result<Self> {
        let mut cmd = Self::bare("outpost-agent", kube, cluster, namespace)?;
        let cache_dir = cmd.cache_dir.clone();
        let https = |cmd: &mut AgentCommand, token_file: &Path, ca_file: &Path| {
            cmd.arg("--git-url")
                .arg(repo.https_url())
                .arg("--git-username")
                .arg(&servers.http_user)
                .arg("--git-token-file")
                .arg(token_file)
                .arg("--git-ca-file")
                .arg(ca_file);
        };
        match transport {
            Transport::Https => https(&mut cmd, &servers.token_file, &servers.ca_file),
            Transport::HttpsWithToken(token) => {
                let file = cache_dir.join("token-under-test");
                std::fs::write(&file, token)?;
                https(&mut cmd, &file, &servers.ca_file);
            }
            Transport::HttpsWithTokenFile(file) => https(&mut cmd, &file, &servers.ca_file),
            Transport::HttpsWithCaFile(ca) => https(&mut cmd, &servers.token_file, &ca),
            Transport::Url(url) => {
                cmd.arg("--git-url").arg(url);
            }
            Transport::File => {
                cmd.arg("--git-url").arg(repo.file_url());
            }
            Transport::Ssh => {
                cmd.arg("--git-url")
                    .arg(repo.ssh_url())
                    .arg("--git-ssh-key-file")
                    .arg(&servers.ssh_key)
                    .arg("--git-known-hosts-file")
                    .arg(&servers.known_hosts);
            }
            Transport::HttpsWithTokenVariable => {
                cmd.arg("--git-url")
                    .arg(repo.https_url())
                    .arg("--git-username")
                    .arg(&servers.http_user)
                    .arg("--git-ca-file")
                    .arg(&servers.ca_file);
                let token = std::fs::read_to_string(&servers.token_file)?;
                cmd.env("OUTPOST_GIT_TOKEN", token.trim());
            }
            Transport::HttpsWithCredentialsInUrl => {
                cmd.arg("--git-url")
                    .arg(repo.https_url_with_credentials(&servers.http_user, &servers.http_password))
                    .arg("--git-ca-file")
                    .arg(&servers.ca_file);
            }
        }
        Ok(cmd)
    }

    /// `binary` for `cluster` with the admin kubeconfig and inventories in `namespace`, no repository yet.
    fn bare(binary: &'static str, kube: &KubeEnv, cluster: &str, namespace: &str) -> Result<Self> {
        let mut cmd = AgentCommand {
            binary,
            args: Vec::new(),
            envs: vec![
                ("PATH".into(), std::env::var_os("PATH").unwrap_or_default()),
                ("KUBECONFIG".into(), kube.kubeconfig.clone().into()),
                ("RUST_LOG".into(), "info".into()),
            ],
            cache_dir: crate::scratch_dir(if binary == "outpost-agent" {
                "agent-cache"
            } else {
                "status-cache"
            })?,
        };
        cmd.arg("--cluster")
            .arg(cluster)
            .arg("--namespace")
            .arg(namespace);
        Ok(cmd)
    }

    /// `outpost-agent` for `cluster` following the repository at the local `path` (as on removable media: no
    /// Git server involved), inventories in `namespace`.
    pub fn local(kube: &KubeEnv, path: &Path, cluster: &str, namespace: &str) -> Result<Self> {
        Self::with_url(kube, path.as_os_str(), cluster, namespace)
    }

    /// `outpost-agent` for `cluster` following `url` with no credentials yet (add them with [`Self::arg`]),
    /// inventories in `namespace`.
    pub fn with_url(kube: &KubeEnv, url: &std::ffi::OsStr, cluster: &str, namespace: &str) -> Result<Self> {
        let mut cmd = Self::bare("outpost-agent", kube, cluster, namespace)?;
        cmd.arg("--git-url").arg(url);
        Ok(cmd)
    }

    /// The status writer for `cluster` writing to the repository at the local `path`, inventories in
    /// `namespace`.
    pub fn status_writer_local(kube: &KubeEnv, path: &Path, cluster: &str, namespace: &str) -> Result<Self> {
        let mut cmd = Self::bare("outpost-status-writer", kube, cluster, namespace)?;
        cmd.arg("--git-url").arg(path);
        Ok(cmd)
    }

    /// The status writer for `cluster` writing to `repo` over `transport`, inventories in `namespace`, with a
    /// short debounce.
    pub fn status_writer(
        servers: &GitServers,
        kube: &KubeEnv,
        repo: &TestRepo,
        cluster: &str,
        namespace: &str,
        transport: Transport,
    ) -> Result<Self> {
        let mut cmd = Self::with_servers(servers, kube, repo, cluster, namespace, transport)?;
        cmd.binary = "outpost-status-writer";
        cmd.cache_dir = crate::scratch_dir("status-cache")?;
        Ok(cmd)
    }

    /// Add a flag or value.
    pub fn arg(&mut self, arg: impl Into<OsString>) -> &mut Self {
        self.args.push(arg.into());
        self
    }

    /// Use this cache directory (e.g. shared between runs).
    pub fn set_cache_dir(&mut self, dir: &Path) -> &mut Self {
        self.cache_dir = dir.to_owned();
        self
    }

    /// Set an environment variable.
    pub fn env(&mut self, key: &str, value: impl Into<OsString>) -> &mut Self {
        self.envs.push((key.to_owned(), value.into()));
        self
    }

    fn command(&self) -> Result<Command> {
        let mut cmd = Command::new(tools::outpost_bin(self.binary)?);
        cmd.env_clear()
            .args(&self.args)
            .arg("--cache-dir")
            .arg(&self.cache_dir);
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        Ok(cmd)
    }

    /// Run with `--once` and return the output.
    pub fn once(&self) -> Result<Output> {
        Ok(self.command()?.arg("--once").output()?)
    }

    /// Run with `--once` under `strace`, recording every `connect()` of every thread into `log`.
    pub fn traced_once(&self, strace: &Path, log: &Path) -> Result<Output> {
        let mut cmd = Command::new(strace);
        cmd.env_clear()
            .args(["-f", "-qq", "-e", "trace=connect", "-o"])
            .arg(log)
            .arg(tools::outpost_bin(self.binary)?)
            .args(&self.args)
            .arg("--cache-dir")
            .arg(&self.cache_dir)
            .arg("--once");
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        Ok(cmd.output()?)
    }

    /// Run a subcommand (`plan`, `status`) with the same flags.
    pub fn subcommand(&self, name: &str) -> Result<Output> {
        let mut cmd = Command::new(tools::outpost_bin("outpost-agent")?);
        cmd.env_clear()
            .arg(name)
            .args(&self.args)
            .arg("--cache-dir")
            .arg(&self.cache_dir);
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        Ok(cmd.output()?)
    }

    /// Start the agent daemon with a poll interval; its metrics port is chosen here.
    pub fn spawn(&self, interval: &str) -> Result<RunningAgent> {
        self.spawn_with(&["--interval", interval])
    }

    /// Start the daemon with extra flags; its metrics port is chosen here.
    pub fn spawn_with(&self, extra: &[&str]) -> Result<RunningAgent> {
        let port = free_port();
        std::fs::create_dir_all(&self.cache_dir)?;
        let log = self.cache_dir.join(format!("{}-{port}.log", self.binary));
        let mut args: Vec<String> = self
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        args.extend(extra.iter().map(|a| a.to_string()));
        args.extend(["--metrics-addr".into(), format!("127.0.0.1:{port}")]);
        args.extend(["--cache-dir".into(), self.cache_dir.display().to_string()]);
        let mut envs: Vec<(&str, String)> = self
            .envs
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_string_lossy().into_owned()))
            .collect();
        // Tests expect the first poll at once: a restarted agent would otherwise wait its cluster's poll phase
        // (up to a whole --interval). A test of the phase passes --poll-phase cluster, which wins over this.
        if self.binary == "outpost-agent" && !envs.iter().any(|(k, _)| *k == "OUTPOST_POLL_PHASE") {
            envs.push(("OUTPOST_POLL_PHASE", "none".into()));
        }
        // The watchdog keeps the environment we pass and adds nothing of the test's own.
        let process =
            Guarded::spawn_clean(self.binary, &tools::outpost_bin(self.binary)?, &args, &log, &envs)?;
        Ok(RunningAgent { process, port, log })
    }
}

/// A daemon agent; killed on drop.
pub struct RunningAgent {
    process: Guarded,
    /// Its metrics/probe port on 127.0.0.1.
    pub port: u16,
    /// Its log file.
    pub log: PathBuf,
}

impl RunningAgent {
    /// GET a path on the admin port: (status code, body).
    pub async fn get(&self, path: &str) -> Result<(u16, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n").as_bytes())
            .await?;
        let mut text = String::new();
        stream.read_to_string(&mut text).await?;
        let code = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((code, body))
    }

    /// Wait until `/readyz` answers 200 (first successful sync), or fail with the log.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = String::new();
        while tokio::time::Instant::now() < deadline {
            match self.get("/readyz").await {
                Ok((200, _)) => return Ok(()),
                Ok((code, body)) => last = format!("{code} {body:?}"),
                Err(e) => last = format!("{e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!(
            "agent not ready after {timeout:?} (last /readyz: {last}); log:\n{}",
            self.logs()
        )
    }

    /// The agent's process id (not the watchdog's).
    pub fn pid(&self) -> Option<u32> {
        self.process.child_pid()
    }

    /// Peak resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    }

    /// Everything it logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the agent process still runs (it exits on its own after losing leadership).
    pub fn running(&self) -> bool {
        self.process.child_running()
    }

    /// Send SIGTERM to the agent and wait for it to exit; returns whether it exited in time.
    pub fn terminate(&mut self, timeout: Duration) -> Result<bool> {
        self.process.signal_child("TERM")?;
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if !self.process.child_running() {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(false)
    }
}

/// Create a namespace named `<prefix>-<random>` and return its name.
pub async fn create_namespace(client: &kube::Client, prefix: &str) -> Result<String> {
    use k8s_openapi::api::core::v1::Namespace;
    let name = crate::unique(prefix);
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
    kube::Api::<Namespace>::all(client.clone())
        .create(&Default::default(), &ns)
        .await
        .with_context(|| format!("create namespace {name}"))?;
    Ok(name)
}

/// stdout and stderr of a run, for assertions and failure messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
