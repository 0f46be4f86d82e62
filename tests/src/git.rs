//! Real Git servers on loopback: smart HTTP (`git http-backend` behind nginx + fcgiwrap, TLS with a CA made
//! for this run, basic auth), SSH (a throwaway sshd with generated host and user keys), and `file://`.
//!
//! Every repository lives once, bare, under [`GitServers::root`]; all transports serve the same directory.
//! [`TestRepo`] keeps a work clone to write commits with the `git` CLI and push them there.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::process::{Guarded, free_port, run, wait_for_port};
use crate::tools;

/// The running servers.
pub struct GitServers {
    /// Scratch directory: configs, keys, logs.
    pub dir: PathBuf,
    /// GIT_PROJECT_ROOT: the bare repositories.
    pub root: PathBuf,
    /// HTTPS port (nginx).
    pub https_port: u16,
    /// SSH port (sshd).
    pub ssh_port: u16,
    /// Basic-auth user accepted by nginx.
    pub http_user: String,
    /// Its password (the "token" tests give the agent).
    pub http_password: String,
    /// CA that signed nginx's certificate.
    pub ca_file: PathBuf,
    /// A file holding [`Self::http_password`], for `--git-token-file`.
    pub token_file: PathBuf,
    /// Private key accepted by sshd.
    pub ssh_key: PathBuf,
    /// known_hosts with sshd's host key.
    pub known_hosts: PathBuf,
    /// The local user sshd lets in.
    pub ssh_user: String,
    /// nginx log (errors) and access log directory.
    pub nginx_log: PathBuf,
    /// Processes.
    nginx: std::sync::Mutex<Guarded>,
    /// How nginx is started again after [`GitServers::stop_https`].
    nginx_args: Vec<String>,
    /// The htpasswd file nginx reads on every request.
    htpasswd: PathBuf,
    _fcgiwrap: Guarded,
    _sshd: Guarded,
}

impl GitServers {
    /// Generate keys and configs and start nginx, fcgiwrap and sshd.
    pub fn start() -> Result<Self> {
        let dir = crate::scratch_dir("git")?;
        let root = dir.join("repos");
        std::fs::create_dir_all(&root)?;
        let (https_port, ssh_port) = (free_port(), free_port());

        // TLS: a CA for this run and a server certificate for 127.0.0.1/localhost signed by it.
        let ca_key = dir.join("ca.key");
        let ca_file = dir.join("ca.crt");
        let srv_key = dir.join("server.key");
        let srv_csr = dir.join("server.csr");
        let srv_crt = dir.join("server.crt");
        let ext = dir.join("server.ext");
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
                "/CN=outpost-test-ca",
                "-keyout",
                s(&ca_key),
                "-out",
                s(&ca_file),
            ],
            None,
        )?;
        run(
            "openssl",
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                s(&srv_key),
                "-out",
                s(&srv_csr),
            ],
            None,
        )?;
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )?;
        run(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                s(&srv_csr),
                "-CA",
                s(&ca_file),
                "-CAkey",
                s(&ca_key),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                s(&ext),
                "-out",
                s(&srv_crt),
            ],
            None,
        )?;

        // Basic auth.
        let http_user = "outpost".to_owned();
        let http_password = crate::random_token();
        let htpasswd = dir.join("htpasswd");
        run(
            s(&tools::system("htpasswd")?),
            &["-bcB", s(&htpasswd), &http_user, &http_password],
            None,
        )?;
        let token_file = dir.join("token");
        std::fs::write(&token_file, format!("{http_password}\n"))?;

        // The servers' own global Git configuration: the freeze hook for stall tests (crate::freeze).
        let server_gitconfig = crate::freeze::install(&dir)?;

        // fcgiwrap behind a unix socket, nginx in front of it.
        let socket = dir.join("fcgiwrap.sock");
        let fcgi_log = dir.join("fcgiwrap.log");
        let fcgiwrap = Guarded::spawn(
            "fcgiwrap",
            &tools::system("fcgiwrap")?,
            &[
                "-c".into(),
                "8".into(),
                "-s".into(),
                format!("unix:{}", socket.display()),
            ],
            &fcgi_log,
            &[],
        )?;
        wait_for_file(&socket, Duration::from_secs(10))?;
        let backend = PathBuf::from(run("git", &["--exec-path"], None)?.trim()).join("git-http-backend");
        let nginx_dir = dir.join("nginx");
        std::fs::create_dir_all(nginx_dir.join("tmp"))?;
        let nginx_log = nginx_dir.join("error.log");
        let is_root = run("id", &["-u"], None)?.trim() == "0";
        let conf = nginx_dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                r#"{user}
worker_processes 2;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  # What each request cost the server: the bench's idle-poll scenario reads body bytes and time from here.
  log_format outpost '$remote_addr "$request" $status $body_bytes_sent $request_time';
  access_log {dir}/access.log outpost;
  client_body_temp_path {dir}/tmp/body;
  proxy_temp_path {dir}/tmp/proxy;
  fastcgi_temp_path {dir}/tmp/fastcgi;
  uwsgi_temp_path {dir}/tmp/uwsgi;
  scgi_temp_path {dir}/tmp/scgi;
  server {{
    listen 127.0.0.1:{https_port} ssl;
    ssl_certificate {crt};
    ssl_certificate_key {key};
    client_max_body_size 0;
    location / {{
      auth_basic "outpost-test";
      auth_basic_user_file {htpasswd};
      fastcgi_buffering off;
      fastcgi_request_buffering off;
      fastcgi_pass unix:{socket};
      fastcgi_param SCRIPT_FILENAME {backend};
      fastcgi_param GIT_PROJECT_ROOT {root};
      fastcgi_param GIT_CONFIG_GLOBAL {gitconfig};
      fastcgi_param GIT_HTTP_EXPORT_ALL "";
      fastcgi_param PATH_INFO $uri;
      fastcgi_param REMOTE_USER $remote_user;
      fastcgi_param GIT_PROTOCOL $http_git_protocol;
      fastcgi_param QUERY_STRING $query_string;
      fastcgi_param REQUEST_METHOD $request_method;
      fastcgi_param CONTENT_TYPE $content_type;
      fastcgi_param CONTENT_LENGTH $content_length;
      fastcgi_param HTTP_CONTENT_ENCODING $http_content_encoding;
    }}
  }}
}}
"#,
                user = if is_root { "user root root;" } else { "" },
                dir = nginx_dir.display(),
                crt = srv_crt.display(),
                key = srv_key.display(),
                htpasswd = htpasswd.display(),
                socket = socket.display(),
                backend = backend.display(),
                root = root.display(),
                gitconfig = server_gitconfig.display(),
            ),
        )?;
        let nginx_args = vec![
            "-p".into(),
            nginx_dir.display().to_string(),
            "-c".into(),
            conf.display().to_string(),
        ];
        let nginx = Guarded::spawn(
            "nginx",
            &tools::system("nginx")?,
            &nginx_args,
            &nginx_dir.join("stderr.log"),
            &[],
        )?;
        wait_for_port(
            https_port,
            "nginx",
            &nginx_dir.join("stderr.log"),
            Duration::from_secs(10),
        )?;

        // sshd with its own host key; the test user logs in with a generated key.
        let ssh_dir = dir.join("ssh");
        std::fs::create_dir_all(&ssh_dir)?;
        let host_key = ssh_dir.join("host_ed25519");
        let ssh_key = ssh_dir.join("id_ed25519");
        run(
            "ssh-keygen",
            &["-q", "-t", "ed25519", "-N", "", "-f", s(&host_key)],
            None,
        )?;
        run(
            "ssh-keygen",
            &["-q", "-t", "ed25519", "-N", "", "-f", s(&ssh_key)],
            None,
        )?;
        let authorized = ssh_dir.join("authorized_keys");
        std::fs::copy(ssh_key.with_extension("pub"), &authorized)?;
        let host_pub = std::fs::read_to_string(host_key.with_extension("pub"))?;
        let known_hosts = ssh_dir.join("known_hosts");
        let mut host_fields = host_pub.split_whitespace();
        std::fs::write(
            &known_hosts,
            format!(
                "[127.0.0.1]:{ssh_port} {} {}\n",
                host_fields.next().unwrap_or_default(),
                host_fields.next().unwrap_or_default()
            ),
        )?;
        if is_root {
            // sshd's privilege separation directory; Debian creates it only when the service starts.
            std::fs::create_dir_all("/run/sshd")?;
        }
        let ssh_user = run("id", &["-un"], None)?.trim().to_owned();
        let sshd_conf = ssh_dir.join("sshd_config");
        std::fs::write(
            &sshd_conf,
            format!(
                "Port {ssh_port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\nPidFile {dir}/sshd.pid\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin prohibit-password\nAllowUsers {ssh_user}\nSetEnv PATH=/usr/local/bin:/usr/bin:/bin GIT_CONFIG_GLOBAL={gc}\n",
                hk = host_key.display(),
                ak = authorized.display(),
                dir = ssh_dir.display(),
                gc = server_gitconfig.display(),
            ),
        )?;
        let sshd_log = ssh_dir.join("sshd.log");
        let sshd = Guarded::spawn(
            "sshd",
            &tools::system("sshd")?,
            &[
                "-D".into(),
                "-e".into(),
                "-f".into(),
                sshd_conf.display().to_string(),
            ],
            &sshd_log,
            &[],
        )?;
        wait_for_port(ssh_port, "sshd", &sshd_log, Duration::from_secs(10))?;

        Ok(GitServers {
            dir,
            root,
            https_port,
            ssh_port,
            http_user,
            http_password,
            ca_file,
            token_file,
            ssh_key,
            known_hosts,
            ssh_user,
            nginx_log,
            nginx: std::sync::Mutex::new(nginx),
            nginx_args,
            htpasswd,
            _fcgiwrap: fcgiwrap,
            _sshd: sshd,
        })
    }

    /// nginx's access log: one line per request, `<addr> "<request>" <status> <body bytes> <seconds>`.
    pub fn access_log(&self) -> PathBuf {
        self.nginx_log.with_file_name("access.log")
    }

    /// Stop the HTTPS server (the Git server is "down").
    pub fn stop_https(&self) {
        self.nginx.lock().unwrap_or_else(|e| e.into_inner()).kill();
    }

    /// Start the HTTPS server again.
    pub fn start_https(&self) -> Result<()> {
        let log = self.dir.join("nginx/stderr.log");
        let mut guard = self.nginx.lock().unwrap_or_else(|e| e.into_inner());
        *guard = Guarded::spawn("nginx", &tools::system("nginx")?, &self.nginx_args, &log, &[])?;
        wait_for_port(self.https_port, "nginx", &log, Duration::from_secs(10))
    }

    /// Change the basic-auth password (nginx reads the file on every request): the old token stops working.
    pub fn rotate_password(&self, new_password: &str) -> Result<()> {
        run(
            s(&tools::system("htpasswd")?),
            &["-bB", s(&self.htpasswd), &self.http_user, new_password],
            None,
        )?;
        Ok(())
    }

    /// Create an empty bare repository `name.git` with default branch `main`, and a work clone for commits.
    pub fn create_repo(&self, name: &str) -> Result<TestRepo> {
        let bare = self.root.join(format!("{name}.git"));
        run("git", &["init", "-q", "--bare", "-b", "main", s(&bare)], None)?;
        // Allow pushes over smart HTTP (status writer tests push there).
        run(
            "git",
            &["-C", s(&bare), "config", "http.receivepack", "true"],
            None,
        )?;
        let work = self.dir.join("work").join(name);
        std::fs::create_dir_all(&work)?;
        run("git", &["init", "-q", "-b", "main", s(&work)], None)?;
        for (k, v) in [
            ("user.name", "Outpost Test"),
            ("user.email", "test@outpost.invalid"),
            ("commit.gpgsign", "false"),
        ] {
            run("git", &["-C", s(&work), "config", k, v], None)?;
        }
        run(
            "git",
            &["-C", s(&work), "remote", "add", "origin", s(&bare)],
            None,
        )?;
        Ok(TestRepo {
            name: name.to_owned(),
            bare,
            work,
            https_port: self.https_port,
            ssh_port: self.ssh_port,
            ssh_user: self.ssh_user.clone(),
            servers_dir: self.dir.clone(),
        })
    }
}

/// One repository on the servers, with a work clone to commit from.
pub struct TestRepo {
    /// Name without `.git`.
    pub name: String,
    /// The served bare repository.
    pub bare: PathBuf,
    /// The work clone.
    pub work: PathBuf,
    https_port: u16,
    ssh_port: u16,
    ssh_user: String,
    /// The servers' scratch directory (where the freeze hook is).
    pub(crate) servers_dir: PathBuf,
}

impl TestRepo {
    /// `https://127.0.0.1:<port>/<name>.git` (no credentials).
    pub fn https_url(&self) -> String {
        format!("https://127.0.0.1:{}/{}.git", self.https_port, self.name)
    }

    /// `https://<user>:<password>@127.0.0.1:<port>/<name>.git`.
    pub fn https_url_with_credentials(&self, user: &str, password: &str) -> String {
        format!(
            "https://{user}:{password}@127.0.0.1:{}/{}.git",
            self.https_port, self.name
        )
    }

    /// `ssh://<user>@127.0.0.1:<port>/<path>`.
    pub fn ssh_url(&self) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.ssh_user,
            self.ssh_port,
            self.bare.display()
        )
    }

    /// `file:///<path>`.
    pub fn file_url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    /// Write (create or replace) a file in the work clone.
    pub fn write(&self, path: &str, content: &str) -> Result<&Self> {
        let full = self.work.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&full, content).with_context(|| format!("write {}", full.display()))?;
        Ok(self)
    }

    /// Remove a file or directory from the work clone.
    pub fn remove(&self, path: &str) -> Result<&Self> {
        let full = self.work.join(path);
        if full.is_dir() {
            std::fs::remove_dir_all(&full)?;
        } else {
            std::fs::remove_file(&full)?;
        }
        Ok(self)
    }

    /// Commit everything and push to the served repository; returns the commit id.
    pub fn commit(&self, message: &str) -> Result<String> {
        self.commit_and_push(message, "HEAD:refs/heads/main")
    }

    /// Commit everything and force-push it to `main`, as EMCO's rsync pushes from its own clone.
    pub fn commit_force_pushed(&self, message: &str) -> Result<String> {
        self.commit_and_push(message, "+HEAD:refs/heads/main")
    }

    fn commit_and_push(&self, message: &str, refspec: &str) -> Result<String> {
        let w = s(&self.work);
        run("git", &["-C", w, "add", "-A"], None)?;
        run(
            "git",
            &["-C", w, "commit", "-q", "--allow-empty", "-m", message],
            None,
        )?;
        run("git", &["-C", w, "push", "-q", "origin", refspec], None)?;
        Ok(run("git", &["-C", w, "rev-parse", "HEAD"], None)?
            .trim()
            .to_owned())
    }

    /// Rewrite the last commit (amend with everything in the work clone) and force-push it: history changes.
    pub fn amend_and_force_push(&self, message: &str) -> Result<String> {
        let w = s(&self.work);
        run("git", &["-C", w, "add", "-A"], None)?;
        run(
            "git",
            &["-C", w, "commit", "-q", "--amend", "--allow-empty", "-m", message],
            None,
        )?;
        run(
            "git",
            &["-C", w, "push", "-q", "-f", "origin", "HEAD:refs/heads/main"],
            None,
        )?;
        Ok(run("git", &["-C", w, "rev-parse", "HEAD"], None)?
            .trim()
            .to_owned())
    }

    /// The commit `main` points at in the served repository.
    pub fn head(&self) -> Result<String> {
        Ok(run(
            "git",
            &["-C", s(&self.bare), "rev-parse", "refs/heads/main"],
            None,
        )?
        .trim()
        .to_owned())
    }
}

fn wait_for_file(path: &Path, timeout: Duration) -> Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    let mut last = String::new();
    while std::time::Instant::now() < deadline {
        match std::fs::metadata(path) {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut beside: Vec<String> = path
        .parent()
        .and_then(|dir| std::fs::read_dir(dir).ok())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    beside.sort();
    anyhow::bail!(
        "{} did not appear within {timeout:?} (last look: {last}; its directory holds {beside:?})",
        path.display()
    )
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
