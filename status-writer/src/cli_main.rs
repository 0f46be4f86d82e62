//! `outpost-status-writer`'s `main`, as a library function: the writer's own binary and the multi-call
//! `outpost` binary run the same code.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::Args;
use crate::verify::VerifyArgs;

/// Parse `args` (the first is the program name) as `outpost-status-writer`'s command line and run it.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args: Vec<OsString> = args.into_iter().collect();
    // The hub-side check of signed status is its own command line (it needs no cluster, Git or kube flags).
    if args.get(1).is_some_and(|a| a == "verify") {
        return crate::verify::main(VerifyArgs::parse_from(args.into_iter().skip(1)));
    }
    let args = Args::parse_from(args);
    outpost_agent::logging::init(args.log_format);
    outpost_agent::runtime::entry::block_on(async {
        match crate::run::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("outpost-status-writer: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
