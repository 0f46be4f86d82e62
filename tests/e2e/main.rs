//! End-to-end tests of Outpost against a real kube-apiserver and real Git servers.
//!
//! One test binary: the API server and Git servers start once and every test isolates itself with its own
//! repository, cluster name and namespaces. Run with `cargo test` (not nextest, which would start one API
//! server per test).

mod adoption;
mod cascade;
mod chart;
mod chart_lockdown;
mod chart_rbac;
mod common;
mod controls;
mod crash;
mod daemon;
mod emco;
mod emco_rsync;
mod fixtures;
mod foundation;
mod freshness;
mod health_oracle;
mod identity;
mod image;
mod inventories;
mod leader;
mod library;
mod limits;
mod owners;
mod packaging;
mod polite;
mod private_ca;
mod resilience;
mod safety;
mod signed_status;
mod sneakernet;
mod sops;
mod stalls;
mod status;
mod status_branches;
mod status_carry;
mod status_churn;
mod status_secrets;
mod status_yaml11;
mod sync;
mod sync_windows;
mod uninstall;
mod upgrade;
mod vanished;
mod verify;
