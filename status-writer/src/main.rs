//! `outpost-status-writer`: see `outpost-status-writer --help`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use outpost_status_writer::cli::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    outpost_agent::logging::init(args.log_format);
    outpost_agent::runtime::entry::block_on(async {
        match outpost_status_writer::run::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("outpost-status-writer: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
