//! The one-shot commands besides the daemon: `plan` (what a sync would do), `status` (what is synced) and the
//! operator controls (`suspend`, `resume`, `reconcile`) and `uninstall`.

pub mod control;
pub mod plan;
pub mod status;
pub mod uninstall;
