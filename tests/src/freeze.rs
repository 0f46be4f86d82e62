//! Freezing a Git server in the middle of a conversation, for tests of stalls: a hook that stops itself with
//! SIGSTOP while the repository holds a marker file, until the test sends SIGCONT.
//!
//! Fetches are frozen in `git pack-objects` (through `uploadpack.packObjectsHook`, which Git reads only from
//! global configuration: the servers get a `GIT_CONFIG_GLOBAL` of their own), after the refs were listed and
//! while the client waits for the pack. Pushes are frozen in the repository's `pre-receive` hook, after the
//! pack arrived and while the client waits for the report.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::git::TestRepo;

/// Marker file in a bare repository: while it exists, the next fetch or push stops.
const MARKER: &str = "outpost-freeze";
/// Where a stopped hook writes its pid.
const PID_FILE: &str = "outpost-frozen.pid";

/// Write the hook and a global Git configuration using it into `dir`; returns the configuration's path, for
/// the servers' `GIT_CONFIG_GLOBAL`.
pub fn install(dir: &Path) -> Result<PathBuf> {
    let hook = hook_path(dir);
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\n# Test hook: stop here while the repository holds {MARKER}.\nif [ -e {MARKER} ]; then echo $$ >> {PID_FILE}; kill -STOP $$; fi\nexec \"$@\"\n"
        ),
    )?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))?;
    let config = dir.join("server-gitconfig");
    std::fs::write(
        &config,
        format!("[uploadpack]\n\tpackObjectsHook = {}\n", hook.display()),
    )?;
    Ok(config)
}

fn hook_path(dir: &Path) -> PathBuf {
    dir.join("freeze-hook")
}

impl TestRepo {
    /// Stop the next fetch (in pack-objects) or push (in pre-receive) to this repository until [`Self::thaw`].
    pub fn freeze_next(&self) -> Result<()> {
        let hooks = self.bare.join("hooks");
        std::fs::create_dir_all(&hooks)?;
        let pre_receive = hooks.join("pre-receive");
        if !pre_receive.exists() {
            std::os::unix::fs::symlink(hook_path(&self.servers_dir), &pre_receive)?;
        }
        std::fs::write(self.bare.join(MARKER), "")?;
        Ok(())
    }

    /// Wait until a fetch or push is stopped in the hook; returns the stopped process.
    pub fn wait_frozen(&self, timeout: Duration) -> Result<u32> {
        let deadline = Instant::now() + timeout;
        let file = self.bare.join(PID_FILE);
        while Instant::now() < deadline {
            if let Ok(text) = std::fs::read_to_string(&file)
                && let Some(Ok(pid)) = text.lines().next().map(str::parse)
            {
                return Ok(pid);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "no fetch or push of {} reached the freeze hook within {timeout:?}",
            self.name
        )
    }

    /// Stop freezing and let every stopped process go on (SIGCONT; retries may have stopped several).
    pub fn thaw(&self) -> Result<()> {
        let _ = std::fs::remove_file(self.bare.join(MARKER));
        let file = self.bare.join(PID_FILE);
        if let Ok(text) = std::fs::read_to_string(&file) {
            for pid in text.lines().filter(|l| !l.trim().is_empty()) {
                // A process already gone (its client hung up and it was reaped) is not an error.
                let _ = crate::process::run("kill", &["-CONT", pid.trim()], None)
                    .with_context(|| format!("SIGCONT {pid}"));
            }
            std::fs::remove_file(&file)?;
        }
        Ok(())
    }
}
