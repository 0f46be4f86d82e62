//! Running `outpost-agent` against the test environment, as a real process.

use std::path::PathBuf;
use std::process::{Command, Output};

use anyhow::Result;

use crate::{KubeEnv, TestRepo, git_servers, tools};

/// How an agent run should reach its repository.
pub enum Transport {
    /// Smart HTTP over TLS with the server's token file and CA.
    Https,
    /// Smart HTTP with a token file holding this (wrong) value.
    HttpsWithToken(String),
    /// file:// URL.
    File,
    /// ssh:// with the generated key and pinned known_hosts.
    Ssh,
    /// `https://user:password@host/...` with no other credentials.
    HttpsWithCredentialsInUrl,
}

/// A configured `outpost-agent` command line.
pub struct AgentCommand {
    /// The command, ready to add flags to.
    pub cmd: Command,
    /// Its cache directory.
    pub cache_dir: PathBuf,
}

impl AgentCommand {
    /// `outpost-agent` for `cluster` following `repo` over `transport`, with the admin kubeconfig.
    pub fn new(kube: &KubeEnv, repo: &TestRepo, cluster: &str, transport: Transport) -> Result<Self> {
        let servers = git_servers();
        let cache_dir = crate::scratch_dir("agent-cache")?;
        let mut cmd = Command::new(tools::outpost_bin("outpost-agent")?);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KUBECONFIG", &kube.kubeconfig)
            .env("RUST_LOG", "info")
            .arg("--cluster")
            .arg(cluster)
            .arg("--cache-dir")
            .arg(&cache_dir);
        match transport {
            Transport::Https => {
                cmd.arg("--git-url")
                    .arg(repo.https_url())
                    .arg("--git-username")
                    .arg(&servers.http_user)
                    .arg("--git-token-file")
                    .arg(&servers.token_file)
                    .arg("--git-ca-file")
                    .arg(&servers.ca_file);
            }
            Transport::HttpsWithToken(token) => {
                let file = cache_dir.join("wrong-token");
                std::fs::write(&file, token)?;
                cmd.arg("--git-url")
                    .arg(repo.https_url())
                    .arg("--git-username")
                    .arg(&servers.http_user)
                    .arg("--git-token-file")
                    .arg(file)
                    .arg("--git-ca-file")
                    .arg(&servers.ca_file);
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
            Transport::HttpsWithCredentialsInUrl => {
                cmd.arg("--git-url")
                    .arg(repo.https_url_with_credentials(&servers.http_user, &servers.http_password))
                    .arg("--git-ca-file")
                    .arg(&servers.ca_file);
            }
        }
        Ok(AgentCommand { cmd, cache_dir })
    }

    /// Run with `--once` and return the output.
    pub fn once(mut self) -> Result<Output> {
        Ok(self.cmd.arg("--once").output()?)
    }
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
