//! A real Kubernetes API: etcd + kube-apiserver on free loopback ports, token auth, RBAC.
//!
//! Started once per test binary ([`crate::kube_env`]); tests isolate themselves by namespace. No controllers
//! or nodes run: tests set workload status through the status subresource.
//!
//! The release is `OUTPOST_TEST_KUBE_VERSION`'s ([`tools::kube_version`]: the current one by default, or 1.20).
//! Both take the same flags: 1.20 already requires the service-account issuer and signing key, and nothing
//! used here was removed since.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::process::{Guarded, free_port, run, wait_for_port};
use crate::tools::{self, KubeVersion};

/// A running API server.
pub struct KubeEnv {
    /// Scratch directory: certs, keys, logs, kubeconfig.
    pub dir: PathBuf,
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    /// Bearer token of the admin user (group system:masters).
    pub admin_token: String,
    /// Kubeconfig for the admin user; agents and kubectl use it.
    pub kubeconfig: PathBuf,
    /// API server log.
    pub apiserver_log: PathBuf,
    /// The Kubernetes version running (`OUTPOST_TEST_KUBE_VERSION`); tests of behaviour that differs by
    /// version ask it.
    pub version: &'static KubeVersion,
    /// etcd.
    etcd: Mutex<Guarded>,
    /// kube-apiserver, restartable.
    apiserver: Mutex<Guarded>,
    /// How to start the API server again after [`KubeEnv::restart_apiserver`].
    apiserver_bin: PathBuf,
    /// Its arguments.
    apiserver_args: Vec<String>,
}

impl KubeEnv {
    /// Start etcd and kube-apiserver of the version under test ([`tools::kube_version`]) and wait for
    /// `/readyz`.
    pub fn start() -> Result<Self> {
        let version = tools::kube_version()?;
        let apiserver_bin = tools::kube_apiserver(version)?;
        let etcd_bin = tools::etcd(version)?;
        let dir = crate::scratch_dir("kube")?;
        // etcd on tmpfs when there is one: fsync-heavy writes otherwise dominate test and benchmark time.
        let etcd_data = match Path::new("/dev/shm").is_dir() {
            true => crate::unique_dir(
                Path::new("/dev/shm"),
                &format!("outpost-test-{}-etcd", std::process::id()),
            )?,
            false => dir.join("etcd"),
        };
        let (client_port, peer_port, api_port) = (free_port(), free_port(), free_port());
        let etcd_log = dir.join("etcd.log");
        let etcd_args: Vec<String> = [
            "--name=outpost-test".to_owned(),
            format!("--data-dir={}", etcd_data.display()),
            format!("--listen-client-urls=http://127.0.0.1:{client_port}"),
            format!("--advertise-client-urls=http://127.0.0.1:{client_port}"),
            format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
            format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
            format!("--initial-cluster=outpost-test=http://127.0.0.1:{peer_port}"),
            "--log-level=error".to_owned(),
            "--quota-backend-bytes=8589934592".to_owned(),
        ]
        .into();
        let etcd = Guarded::spawn("etcd", &etcd_bin, &etcd_args, &etcd_log, &[])?;
        wait_for_port(client_port, "etcd", &etcd_log, Duration::from_secs(30))?;

        let sa_key = dir.join("sa.key");
        run("openssl", &["genrsa", "-out", path_str(&sa_key), "2048"], None)?;
        let admin_token = crate::random_token();
        let tokens = dir.join("tokens.csv");
        std::fs::write(
            &tokens,
            format!("{admin_token},admin,admin-uid,\"system:masters\"\n"),
        )?;
        let cert_dir = dir.join("certs");
        let apiserver_args: Vec<String> = vec![
            format!("--etcd-servers=http://127.0.0.1:{client_port}"),
            format!("--cert-dir={}", cert_dir.display()),
            format!("--secure-port={api_port}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            "--service-account-issuer=https://kubernetes.default.svc".into(),
            format!("--service-account-key-file={}", sa_key.display()),
            format!("--service-account-signing-key-file={}", sa_key.display()),
            format!("--token-auth-file={}", tokens.display()),
            "--authorization-mode=RBAC".into(),
            "--service-cluster-ip-range=10.96.0.0/12".into(),
            "--allow-privileged=true".into(),
            // No controller-manager runs, so nothing would create the `default` ServiceAccount pods need.
            "--disable-admission-plugins=ServiceAccount".into(),
            // The benchmark and parallel tests send hundreds of requests at once.
            "--max-requests-inflight=1000".into(),
            "--max-mutating-requests-inflight=1000".into(),
        ];
        let apiserver_log = dir.join("kube-apiserver.log");
        let apiserver = Guarded::spawn(
            "kube-apiserver",
            &apiserver_bin,
            &apiserver_args,
            &apiserver_log,
            &[],
        )?;
        let url = format!("https://127.0.0.1:{api_port}");
        let kubeconfig = dir.join("kubeconfig");
        let env = KubeEnv {
            dir,
            url,
            admin_token,
            kubeconfig,
            apiserver_log,
            version,
            etcd: Mutex::new(etcd),
            apiserver: Mutex::new(apiserver),
            apiserver_bin,
            apiserver_args,
        };
        env.wait_ready(Duration::from_secs(120))?;
        env.write_kubeconfig(&env.kubeconfig, &env.admin_token, "default")?;
        Ok(env)
    }

    /// Poll `/readyz` until it answers `ok`.
    fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let port: u16 = self.url.rsplit(':').next().unwrap_or_default().parse()?;
        wait_for_port(port, "kube-apiserver", &self.apiserver_log, timeout)?;
        let deadline = std::time::Instant::now() + timeout;
        let mut last = String::new();
        while std::time::Instant::now() < deadline {
            let out = std::process::Command::new("curl")
                .args(["-sk", "-m", "5", "-H"])
                .arg(format!("Authorization: Bearer {}", self.admin_token))
                .arg(format!("{}/readyz", self.url))
                .output();
            match out {
                Ok(o) if String::from_utf8_lossy(&o.stdout).trim() == "ok" => return Ok(()),
                Ok(o) => last = String::from_utf8_lossy(&o.stdout).into_owned(),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let log = std::fs::read_to_string(&self.apiserver_log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        anyhow::bail!(
            "kube-apiserver not ready after {timeout:?} (last /readyz: {last}); log tail:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }

    /// The CA bundle of the API server's self-signed serving certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("certs/apiserver.crt")
    }

    /// Write a kubeconfig for `token` with default namespace `namespace`.
    pub fn write_kubeconfig(&self, path: &Path, token: &str, namespace: &str) -> Result<()> {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: outpost-test\n  cluster:\n    server: {url}\n    certificate-authority: {ca}\nusers:\n- name: user\n  user:\n    token: {token}\ncontexts:\n- name: outpost-test\n  context:\n    cluster: outpost-test\n    user: user\n    namespace: {namespace}\ncurrent-context: outpost-test\n",
            url = self.url,
            ca = self.ca_file().display(),
        );
        std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
    }

    /// A fresh client for the calling test's runtime (clients must not cross tokio runtimes).
    pub async fn client(&self) -> Result<kube::Client> {
        self.client_for(&self.kubeconfig).await
    }

    /// A client from a kubeconfig file.
    pub async fn client_for(&self, kubeconfig: &Path) -> Result<kube::Client> {
        let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// Stop the API server, keep it down for `down`, start it again and wait until ready.
    pub fn restart_apiserver(&self, down: Duration) -> Result<()> {
        let mut guard = self.apiserver.lock().unwrap_or_else(|e| e.into_inner());
        guard.kill();
        std::thread::sleep(down);
        *guard = Guarded::spawn(
            "kube-apiserver",
            &self.apiserver_bin,
            &self.apiserver_args,
            &self.apiserver_log,
            &[],
        )?;
        drop(guard);
        self.wait_ready(Duration::from_secs(120))
    }

    /// Whether etcd is still alive (for failure messages).
    pub fn etcd_running(&self) -> bool {
        self.etcd.lock().map(|mut g| g.is_running()).unwrap_or(false)
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
