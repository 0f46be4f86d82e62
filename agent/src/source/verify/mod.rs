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

pub mod allowed_signers;
mod error;
mod keys;
mod metrics;
mod object;
pub mod payload;
mod pgp;
mod policy;
pub mod ssh;
mod upstream;

pub use error::{Error, Reason, Result};
pub use keys::Keyring;
pub use metrics::VerifyMetrics;
pub use object::verify;
pub use policy::{Mode, Policy, Verified, VerifyArgs};
pub use upstream::Verifying;
