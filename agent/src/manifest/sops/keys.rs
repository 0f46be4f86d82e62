//! Age identities for SOPS: every `AGE-SECRET-KEY-` line of the `*.txt` files in `--sops-age-keys-dir` (a
//! mounted Secret) and of `--sops-age-key-file`. Read again whenever an encrypted file is met, so a key added to
//! the Secret during a rotation is used without a restart. Errors name the file and line, never the key.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::x25519::Identity;

/// Where the agent finds age identities.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct SopsArgs {
    /// Directory of age identity files (`*.txt`, e.g. a mounted Secret with `keys.txt`) for SOPS-encrypted manifests.
    #[arg(
        id = "sops_age_keys_dir",
        long = "sops-age-keys-dir",
        env = "OUTPOST_SOPS_AGE_KEYS_DIR"
    )]
    pub keys_dir: Option<PathBuf>,

    /// An age identity file (as `age-keygen` writes it) for SOPS-encrypted manifests.
    #[arg(
        id = "sops_age_key_file",
        long = "sops-age-key-file",
        env = "OUTPOST_SOPS_AGE_KEY_FILE"
    )]
    pub key_file: Option<PathBuf>,
}

/// The identities could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A file or the directory cannot be read.
    #[error("cannot read age identities from {path}: {source}")]
    Read {
        /// The file or directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line starting with `AGE-SECRET-KEY-` is not a valid identity.
    #[error("{path} line {line}: not a valid age identity (AGE-SECRET-KEY-1…)")]
    Invalid {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
    },
    /// The configured places hold no identity.
    #[error("no age identity (AGE-SECRET-KEY-1… line) in {0}")]
    None(String),
}

impl SopsArgs {
    /// Whether decryption is configured.
    pub fn enabled(&self) -> bool {
        self.keys_dir.is_some() || self.key_file.is_some()
    }

    /// Read every identity from the configured places.
    pub fn load(&self) -> Result<Vec<Identity>, KeyError> {
        let mut files = Vec::new();
        if let Some(dir) = &self.keys_dir {
            let read = |source| KeyError::Read {
                path: dir.display().to_string(),
                source,
            };
            for entry in std::fs::read_dir(dir).map_err(read)? {
                let path = entry.map_err(read)?.path();
                // Kubernetes mounts Secret keys as symlinks into `..data/`; follow them, skip the dot entries.
                let hidden = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_none_or(|n| n.starts_with('.'));
                if !hidden && path.extension().is_some_and(|e| e == "txt") && path.is_file() {
                    files.push(path);
                }
            }
            files.sort();
        }
        files.extend(self.key_file.iter().cloned());
        let mut ids = Vec::new();
        for file in &files {
            ids.extend(read_file(file)?);
        }
        if ids.is_empty() {
            let places: Vec<String> = self
                .keys_dir
                .iter()
                .chain(self.key_file.iter())
                .map(|p| p.display().to_string())
                .collect();
            return Err(KeyError::None(places.join(" and ")));
        }
        Ok(ids)
    }
}

/// The identities of one file; comments and other lines are skipped.
fn read_file(path: &Path) -> Result<Vec<Identity>, KeyError> {
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.display().to_string(),
        source,
    })?);
    let mut ids = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if !line.starts_with("AGE-SECRET-KEY-") {
            continue;
        }
        ids.push(Identity::from_str(line).map_err(|_| KeyError::Invalid {
            path: path.display().to_string(),
            line: i + 1,
        })?);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    #[test]
    fn identities_come_from_txt_files_and_bad_lines_are_named_without_the_key() {
        let dir = std::env::temp_dir().join(format!("outpost-sops-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let id = Identity::generate();
        let secret = id.to_string();
        std::fs::write(
            dir.join("keys.txt"),
            format!("# public key: {}\n{}\n", id.to_public(), secret.expose_secret()),
        )
        .unwrap();
        std::fs::write(dir.join("README.md"), "AGE-SECRET-KEY-NOTAKEY\n").unwrap();
        let args = SopsArgs {
            keys_dir: Some(dir.clone()),
            key_file: None,
        };
        assert_eq!(args.load().expect("loads").len(), 1);
        std::fs::write(dir.join("more.txt"), "AGE-SECRET-KEY-1BROKEN\n").unwrap();
        let err = args.load().err().expect("a broken line fails").to_string();
        assert!(err.contains("more.txt line 1"), "{err}");
        assert!(!err.contains("BROKEN"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
