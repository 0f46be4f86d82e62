//! What `--verify` and `--verify-keys-dir` ask for ([`VerifyArgs`], checked into a [`Policy`] at startup), and
//! what a passing verification hands on ([`Verified`]).

use std::path::PathBuf;

use crate::source::{GitRef, Revision};

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
    #[arg(id = "verify_mode", long = "verify", env = "OUTPOST_VERIFY", value_enum, default_value_t = Mode::Off)]
    pub mode: Mode,

    /// Directory of trusted keys (a mounted Secret): `allowed_signers` (SSH, git's format) and/or `*.asc`
    /// (armored OpenPGP public keys).
    #[arg(
        id = "verify_keys_dir",
        long = "verify-keys-dir",
        env = "OUTPOST_VERIFY_KEYS_DIR"
    )]
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
    pub fn from_args(args: &VerifyArgs, git_ref: &GitRef) -> Result<Option<Policy>, String> {
        if args.mode == Mode::Off {
            return Ok(None);
        }
        if args.mode == Mode::Tag && !matches!(git_ref, GitRef::Tag(_)) {
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
