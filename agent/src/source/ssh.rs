//! The `ssh` command gix runs for ssh:// and scp-like URLs: our key, our known_hosts, strict host checking,
//! no prompts and no user configuration.
//!
//! The key is copied to the cache with mode 0600 on every connection: Kubernetes mounts Secret files 0644 by
//! default, which ssh refuses for private keys, and a rotated key is picked up at the next poll.

use std::path::Path;

use super::auth::Auth;
use super::error::{Error, Result};

/// Seconds ssh may take to connect before the poll counts as failed.
const CONNECT_TIMEOUT_SECS: u32 = 20;

/// Build the `core.sshCommand` value for `auth`, preparing the key copy inside `cache_repo`.
pub(super) fn command(auth: &Auth, cache_repo: &Path) -> Result<String> {
    let limit = auth
        .timeout
        .map_or(u64::from(CONNECT_TIMEOUT_SECS), |t| t.as_secs().max(1));
    let connect = limit.min(u64::from(CONNECT_TIMEOUT_SECS));
    let alive = limit.div_ceil(3).clamp(1, 15);
    let mut parts = vec![
        "ssh".to_owned(),
        "-F".into(),
        "/dev/null".into(),
        "-o".into(),
        "BatchMode=yes".into(),
        "-o".into(),
        "StrictHostKeyChecking=yes".into(),
        "-o".into(),
        format!("ConnectTimeout={connect}"),
        // A server (or the network) that stops answering ends the session after three unanswered keepalives,
        // instead of holding the poll until the kernel gives up on the TCP connection.
        "-o".into(),
        format!("ServerAliveInterval={alive}"),
        "-o".into(),
        "ServerAliveCountMax=3".into(),
    ];
    if let Some(known_hosts) = &auth.known_hosts_file {
        parts.push("-o".into());
        parts.push(format!(
            "UserKnownHostsFile={}",
            quote(&known_hosts.display().to_string())
        ));
    }
    if let Some(key) = &auth.ssh_key_file {
        let copy = cache_repo.join("outpost-ssh-key");
        let data = std::fs::read(key).map_err(|source| super::auth::Error::Read {
            what: "--git-ssh-key-file",
            path: key.clone(),
            source,
        })?;
        write_private(&copy, &data).map_err(|e| Error::Open {
            path: copy.clone(),
            reason: format!("cannot store the SSH key copy: {e}"),
        })?;
        parts.extend([
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-i".into(),
            quote(&copy.display().to_string()),
        ]);
    }
    Ok(parts.join(" "))
}

/// Write `data` to `path` readable by the owner only.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(data)?;
    // ssh rejects keys without a final newline in some formats.
    if !data.ends_with(b"\n") {
        file.write_all(b"\n")?;
    }
    drop(file);
    std::fs::rename(&tmp, path)
}

/// Single-quote for the shell gix runs the command with.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_pins_known_hosts_and_uses_a_private_copy_of_the_key() {
        let dir = std::env::temp_dir().join(format!("outpost-ssh-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("mounted key");
        std::fs::write(&key, "KEY").unwrap();
        let auth = Auth {
            ssh_key_file: Some(key),
            known_hosts_file: Some("/etc/outpost/known_hosts".into()),
            ..Default::default()
        };
        let cmd = command(&auth, &dir).unwrap();
        assert!(cmd.contains("StrictHostKeyChecking=yes"), "{cmd}");
        assert!(
            cmd.contains("UserKnownHostsFile='/etc/outpost/known_hosts'"),
            "{cmd}"
        );
        let copy = dir.join("outpost-ssh-key");
        assert!(cmd.contains(&format!("-i '{}'", copy.display())), "{cmd}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), "KEY\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(quote("a'b"), r"'a'\''b'");
    }
}
