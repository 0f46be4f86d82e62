//! Outpost agent library: the pull–apply pipeline of DESIGN §3, one module per stage.
//!
//! `source` (Git) → `manifest` (parse, layout) → `desired` (resolve, settle) → `plan` (against `inventory` and
//! `live`) → `apply` → `prune`, driven by `reconcile`; `deps` orders bundles, `health` judges objects;
//! `run` is the agent process around it with `metrics`, on the shared `runtime` (admin server, shutdown,
//! leader election, backoff) that the status writer's process uses too. The status writer reuses these
//! modules.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod apply;
pub mod cli;
pub mod cli_main;
pub mod cmd;
pub mod control;
pub mod deps;
pub mod desired;
pub mod diff;
pub mod drift;
pub mod events;
pub mod health;
pub mod identity;
pub mod inventory;
pub mod kube_client;
pub mod live;
pub mod logging;
pub mod manifest;
pub mod metrics;
pub mod object;
pub mod plan;
pub mod policy;
pub mod poll_phase;
pub mod prune;
pub mod reconcile;
pub mod resolve;
pub mod rounds;
pub mod run;
pub mod runtime;
pub mod secret;
pub mod source;
pub mod watch_scope;
