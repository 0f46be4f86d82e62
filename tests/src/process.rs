//! Child processes that cannot outlive the test binary.
//!
//! Each server runs under a tiny bash watchdog in its own process group: when the test process exits for any
//! reason (success, panic, abort, SIGKILL), the watchdog notices within half a second and kills the whole
//! group, including preforked children such as fcgiwrap's. Dropping a [`Guarded`] kills it at once.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result};

/// Watchdog: run the command in the background, wait while both the test process and the command live,
/// then kill the process group (the watchdog is its leader).
/// The watchdog ignores the TERM it sends its own group, so it lives to send KILL to anything that lingers.
/// When the test process is gone (not merely this server), it also removes the test process's scratch
/// directories — server data such as etcd's on tmpfs — before the final KILL takes the watchdog with it.
const WATCHDOG: &str = r#"parent=$1; scratch=$2; shift 2
"$@" &
child=$!
while kill -0 "$parent" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 0.5; done
trap '' TERM
kill -TERM -- -$$ 2>/dev/null
sleep 2
if ! kill -0 "$parent" 2>/dev/null; then
  rm -rf "$scratch"/outpost-test-"$parent"-* /dev/shm/outpost-test-"$parent"-* 2>/dev/null
fi
kill -KILL -- -$$ 2>/dev/null"#;

/// A running server; killed with its process group on drop.
pub struct Guarded {
    /// The watchdog process (leader of the group).
    child: Child,
    /// For messages.
    pub name: String,
    /// The program's process name (first 15 bytes of its file name), to tell it from the watchdog's sleeps.
    comm: String,
}

impl Guarded {
    /// Start `program args...` with output appended to `log`, inheriting our environment plus `envs`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        log: &Path,
        envs: &[(&str, String)],
    ) -> Result<Self> {
        Self::start(name, program, args, log, envs, false)
    }

    /// Like [`Guarded::spawn`] with only `envs` as the environment (include PATH).
    pub fn spawn_clean(
        name: &str,
        program: &Path,
        args: &[String],
        log: &Path,
        envs: &[(&str, String)],
    ) -> Result<Self> {
        Self::start(name, program, args, log, envs, true)
    }

    fn start(
        name: &str,
        program: &Path,
        args: &[String],
        log: &Path,
        envs: &[(&str, String)],
        clean: bool,
    ) -> Result<Self> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("open log {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(WATCHDOG)
            .arg("watchdog")
            .arg(std::process::id().to_string())
            .arg(std::env::temp_dir())
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        if clean {
            cmd.env_clear();
        }
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("start {name} ({})", program.display()))?;
        let comm: String = program
            .file_name()
            .map(|f| f.to_string_lossy().chars().take(15).collect())
            .unwrap_or_default();
        Ok(Guarded {
            child,
            name: name.to_owned(),
            comm,
        })
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Send a signal (`TERM`, `KILL`) to the guarded program itself (the watchdog's child).
    pub fn signal_child(&self, signal: &str) -> Result<()> {
        let status = Command::new("pkill")
            .args([
                &format!("-{signal}"),
                "-P",
                &self.child.id().to_string(),
                "-x",
                &self.comm,
            ])
            .status()?;
        anyhow::ensure!(status.success(), "no child of {} to signal", self.name);
        Ok(())
    }

    /// The guarded program's pid (the watchdog's child).
    pub fn child_pid(&self) -> Option<u32> {
        let out = Command::new("pgrep")
            .args(["-P", &self.child.id().to_string(), "-x", &self.comm])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// Whether the guarded program (not just the watchdog) still runs.
    pub fn child_running(&self) -> bool {
        Command::new("pgrep")
            .args(["-P", &self.child.id().to_string(), "-x", &self.comm])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Kill the whole process group now and wait for the watchdog.
    pub fn kill(&mut self) {
        let pgid = self.child.id();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Run a command to completion, failing with its output when it fails.
pub fn run(program: &str, args: &[&str], cwd: Option<&Path>) -> Result<String> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let out = cmd
        .output()
        .with_context(|| format!("run {program} {}", args.join(" ")))?;
    if !out.status.success() {
        anyhow::bail!(
            "{program} {} failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A free loopback TCP port, never one this test process handed out before.
///
/// The port is bound and released, so the kernel may offer it again; tests run in parallel in one binary,
/// and a server stopped by one test (a Git server taken down on purpose) must not have its port taken over by
/// another test's server, or the agent watching it would meet a stranger (401) instead of a closed port.
pub fn free_port() -> u16 {
    static ISSUED: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut issued = ISSUED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local addr").port();
        if issued.insert(port) {
            return port;
        }
    }
}

/// Wait until something accepts connections on `port`, or fail naming the log to read.
pub fn wait_for_port(port: u16, what: &str, log: &Path, timeout: std::time::Duration) -> Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    let mut last = String::new();
    while std::time::Instant::now() < deadline {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let tail = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = tail
        .lines()
        .rev()
        .take(30)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    anyhow::bail!(
        "{what} did not listen on 127.0.0.1:{port} within {timeout:?} (last connect: {last}); log {}:\n{}",
        log.display(),
        tail.join("\n")
    )
}
