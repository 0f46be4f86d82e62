//! Commit signature verification (`--verify`): after a fetch and before anything is read, the commit the ref
//! points at (`commit`), or the annotated tag it names (`tag`), must carry a valid signature by a trusted key.
//!
//! Data enters as a Git object id in a repository (the cache of a network source, the repository itself for a
//! local one) and trusted keys from `--verify-keys-dir` (a mounted Secret: Git's `allowed_signers` file for SSH
//! signatures, `*.asc` armored OpenPGP public keys). It leaves as [`Verified`] — the commit to apply and the key
//! that signed it — or as an [`Error`] naming the object and the key, whose [`Reason`] is a metric label. Keys
//! are judged at the signature's time: SSH keys against their `valid-after`/`valid-before` at the committer's
//! (tagger's) time, as `git verify-commit` does; OpenPGP keys against their creation and expiry at the
//! signature's creation time.
//!
//! [`Verifying`] wraps a [`super::Source`] as an [`super::Upstream`]: reconcile never sees a commit that did
//! not pass, so nothing of it is parsed, applied or pruned to, and the last good state stays.

mod allowed_signers;
mod error;
mod keys;
mod metrics;
mod object;
mod payload;
mod pgp;
mod ssh;
mod upstream;

pub use error::{Error, Reason, Result};
pub use keys::Keyring;
pub use metrics::VerifyMetrics;
pub use object::verify;
pub use upstream::Verifying;

use std::path::PathBuf;

use super::revision::Revision;

/// What `--verify` asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// No verification.
    #[default]
    Off,
    /// The commit the ref points at must be signed by a trusted key.
    Commit,
    /// The ref must be an annotated tag (`--git-ref refs/tags/...`) signed by a trusted key.
    Tag,
}

impl Mode {
    /// The flag value.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Commit => "commit",
            Mode::Tag => "tag",
        }
    }
}

/// Flags of commit signature verification.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct VerifyArgs {
    /// Verify signatures before anything of a commit is applied: off, commit (the commit the ref points at) or
    /// tag (the annotated tag --git-ref names).
    #[arg(long = "verify", env = "OUTPOST_VERIFY", value_enum, default_value_t = Mode::Off)]
    pub mode: Mode,

    /// Directory of trusted keys (a mounted Secret): `allowed_signers` (SSH, git's format) and/or `*.asc`
    /// (armored OpenPGP public keys).
    #[arg(long = "verify-keys-dir", env = "OUTPOST_VERIFY_KEYS_DIR")]
    pub keys_dir: Option<PathBuf>,
}

/// What verification is asked to do: checked at startup by [`Policy::from_args`].
#[derive(Clone, Debug)]
pub struct Policy {
    /// Commit or tag (never off: an off policy is no policy).
    pub mode: Mode,
    /// Where the trusted keys are.
    pub keys_dir: PathBuf,
}

impl Policy {
    /// The policy the flags ask for (`None` when off), or why the flags do not fit together: `tag` needs a tag
    /// ref and every mode needs a keys directory.
    pub fn from_args(args: &VerifyArgs, git_ref: &super::GitRef) -> Result<Option<Policy>, String> {
        if args.mode == Mode::Off {
            return Ok(None);
        }
        if args.mode == Mode::Tag && !matches!(git_ref, super::GitRef::Tag(_)) {
            return Err(format!(
                "--verify=tag verifies an annotated tag, but --git-ref names {git_ref}: set --git-ref refs/tags/<name>, or use --verify=commit"
            ));
        }
        let Some(keys_dir) = args.keys_dir.clone() else {
            return Err(format!(
                "--verify={} needs --verify-keys-dir (OUTPOST_VERIFY_KEYS_DIR): the directory of trusted keys",
                args.mode.as_str()
            ));
        };
        Ok(Some(Policy {
            mode: args.mode,
            keys_dir,
        }))
    }
}

/// A signature that passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The commit to apply (for a tag, the commit it points at).
    pub commit: Revision,
    /// What was verified (`commit <id>`, `tag refs/tags/v1 (<id>)`).
    pub object: String,
    /// The signing key: `SHA256:...` for SSH, the OpenPGP fingerprint in hex.
    pub key: String,
    /// Who the key belongs to (the allowed-signers principals), when known.
    pub signer: Option<String>,
}
