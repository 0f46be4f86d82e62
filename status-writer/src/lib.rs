//! Outpost status writer library: watches the agent's inventories and their members, renders one
//! ResourceBundleState per bundle (DESIGN §6) and commits them to the control repository, pushing
//! fast-forward only.
#![forbid(unsafe_code)]

pub mod branch;
pub mod carry;
pub mod cli;
pub mod cli_main;
pub mod commit;
pub mod fanout;
pub mod land;
pub mod memory;
pub mod metrics;
pub mod outcome;
pub mod parents;
pub mod paths;
pub mod published;
pub mod push;
pub mod redact;
pub mod render;
pub mod run;
pub mod select;
pub mod sign;
pub mod stamp;
pub mod target;
pub mod verify;
pub mod watch;
pub mod writer;
