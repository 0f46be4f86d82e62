//! The hub's allowed-signers file (git's `gpg.ssh.allowedSignersFile`; principal = cluster name), read by the
//! agent's parser (`outpost_agent::source::verify::allowed_signers`) so the cluster side and the hub side
//! judge keys, patterns and validity times the same way — the way `ssh-keygen -Y verify` does.

use std::path::{Path, PathBuf};

use outpost_agent::source::verify::allowed_signers::{self, Signer};

/// Why the allowed-signers file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file cannot be read.
    #[error("cannot read the allowed signers file {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    /// A line is not in the format.
    #[error(
        "{path}:{line}: {reason}; the format is `principals [options] keytype base64-key` (see ssh-keygen(1), ALLOWED SIGNERS)"
    )]
    Line {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// Read and parse the file at `path`.
pub fn load(path: &Path) -> Result<Vec<Signer>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    allowed_signers::parse(&text).map_err(|e| Error::Line {
        path: path.to_owned(),
        line: e.line,
        reason: e.reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file_and_line() {
        let dir = std::env::temp_dir().join(format!("outpost-allowed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("allowed_signers");
        std::fs::write(&file, "# hub\nedge-1 ssh-ed25519 notbase64\n").unwrap();
        let e = load(&file).unwrap_err().to_string();
        assert!(e.contains(&format!("{}:2:", file.display())), "{e}");
        let e = load(&dir.join("missing")).unwrap_err().to_string();
        assert!(e.contains("cannot read the allowed signers file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
