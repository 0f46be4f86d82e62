//! `outpost-agent`'s `main`, as a library function: the agent's own binary and the multi-call `outpost` binary
//! (one executable for both images' commands) run the same code.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::Args;

/// Parse `args` (the first is the program name) as `outpost-agent`'s command line and run it.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args = Args::parse_from(args);
    crate::logging::init(args.log_format);
    crate::runtime::entry::block_on(async {
        match crate::run::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("outpost-agent: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
