//! Health of live objects, kstatus-style (DESIGN §5): is the cluster done acting on what we applied?
//!
//! Data enters as the full live object (`serde_json::Value`, as the API server returns it, `status`
//! included) and leaves as a [`Health`]: a [`Status`] plus a short human message. [`of_object`] judges one
//! object, dispatching on API group and kind; [`aggregate`] folds many into one; [`bundle`] judges a bundle's
//! members from what reading them returned. Everything here is pure: no API calls, no clock, so callers decide
//! when to re-read and how long to wait.
//!
//! The rules are kstatus's (`sigs.k8s.io/cli-utils/pkg/kstatus/status`), which judges the same live objects
//! in the e2e tests (tests/oracles/kstatus); where we are deliberately stricter, README's Health section
//! says so and why, and the oracle lists the case. The rule that shapes every branch: Unknown, or a
//! controller that has not yet observed the latest `generation`, is never ready.

pub mod bundle;
mod fields;
mod rules;
mod verdict;
mod workloads;

pub use rules::of_object;
pub use verdict::{Health, Status, aggregate};

// Children import their siblings, never this file: it only declares and re-exports.
