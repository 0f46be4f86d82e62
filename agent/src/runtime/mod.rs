//! What every Outpost binary needs around its work, written once: the admin server (`/metrics`, `/healthz`,
//! `/readyz`), graceful shutdown with a second-signal abort, leader election with a Lease, error backoff and
//! jitter, and the flag groups that configure them.
//!
//! A binary flattens [`AdminArgs`] and [`LeaseArgs`] into its command line, starts a [`Process`] with its
//! metrics registry, elects, and races its work loop against [`Process::stopped`]. Nothing here knows what
//! the work is: arrows point from the binaries' `run` modules to here, and from here to no domain module.

pub mod admin;
pub mod args;
pub mod backoff;
pub mod entry;
pub mod leadership;
pub mod observed;
pub mod process;
pub mod shutdown;

pub use args::{
    AdminArgs, LeaseArgs, parse_debounce, parse_duration, parse_interval, parse_lease_duration,
    parse_resync_interval,
};
pub use backoff::{ErrorBackoff, jittered};
pub use process::{Candidate, LeadershipLost, Process, Stop};
