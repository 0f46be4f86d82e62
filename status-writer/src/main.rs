//! `outpost-status-writer`: commits per-bundle ResourceBundleState status to the control repository.
//!
//! This binary shares the agent library (Git access, manifests, health). The status pipeline itself
//! (watch → render → commit → push) is not written yet; until it is, the binary refuses to run rather than
//! pretend to write status.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use outpost_agent::cli::GitArgs;

/// Outpost status writer: commits each bundle's status to the control Git repository.
#[derive(Parser, Debug)]
#[command(name = "outpost-status-writer", version, about)]
struct Args {
    /// Control repository settings.
    #[command(flatten)]
    git: GitArgs,

    /// This cluster's directory name under clusters/ (EMCO: provider+cluster).
    #[arg(long, env = "OUTPOST_CLUSTER")]
    cluster: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    eprintln!(
        "outpost-status-writer: status writing for cluster {:?} is not implemented in this build",
        args.cluster
    );
    ExitCode::from(2)
}
