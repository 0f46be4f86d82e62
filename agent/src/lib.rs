//! Outpost agent library: the pull–apply pipeline of DESIGN §3, one module per stage.
//!
//! `source` (Git) → `manifest` (parse, layout) → `resolve` (discovery) → `apply` (server-side apply),
//! driven by `reconcile`; `run` is the process around it. The status writer reuses these modules.
#![forbid(unsafe_code)]

pub mod apply;
pub mod cli;
pub mod logging;
pub mod manifest;
pub mod reconcile;
pub mod resolve;
pub mod run;
pub mod secret;
pub mod source;
