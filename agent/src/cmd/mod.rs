//! The one-shot commands besides the daemon: `plan` (what a sync would do) and `status` (what is synced).

pub mod plan;
pub mod status;
