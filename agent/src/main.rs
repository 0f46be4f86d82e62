//! `outpost-agent`: see `outpost-agent --help`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use outpost_agent::cli::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    outpost_agent::logging::init(args.log_format);
    outpost_agent::runtime::entry::block_on(async {
        match outpost_agent::run::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("outpost-agent: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
