//! Source stage (DESIGN §3.1): find the revision the configured ref points at, fetch it when it is new, and
//! hand the files under the cluster path to the manifest stage.
//!
//! Data leaves as a [`Revision`] and [`SourceFile`]s (path, bytes, [`BlobId`]), through the [`Upstream`] trait
//! reconcile holds; nothing of gix leaves this module except where Git is the point (the status writer's cache
//! repository, the transport options its push shares). Network repositories are fetched shallow (depth 1, one
//! ref) into a bare cache repository ([`Remote`]); local repositories (`file://` or a path, typically an
//! air-gapped mirror mounted into the pod) are read in place ([`Local`]). All gix work is blocking: callers run
//! it in `spawn_blocking` and pass an interrupt flag tied to shutdown.
//!
//! [`Upstream`] is the seam for other kinds of source: a trait rather than an enum of kinds (`upstream.rs` says
//! why), so an OCI artifact source is a new module implementing it and reconcile takes it unchanged.
//!
//! This file only declares and re-exports: each child holds one concern and imports its siblings, never this
//! parent.

pub mod auth;
mod cache_lock;
mod config;
pub mod deadline;
mod error;
mod fetch_cap;
mod file;
mod git;
mod history;
pub mod limits;
mod lineage;
pub mod local;
pub mod media;
mod polite_http;
mod remote;
mod revision;
mod ssh;
#[cfg(test)]
mod test_git;
pub mod throttle;
pub mod transport;
mod tree;
mod upstream;
pub mod url;
pub mod verify;

pub use auth::Auth;
pub use config::{Config, GitRef};
pub use error::{Error, Result, describe};
pub use file::{BlobId, SourceFile};
pub use git::Source;
pub use limits::Limits;
pub use lineage::{Ancestry, Lineage};
pub use local::Local;
pub use remote::{Remote, RemoteRef, TRACKING_REF};
pub use revision::Revision;
pub use throttle::Throttle;
pub use upstream::{Update, Upstream};
pub use url::RepoUrl;
