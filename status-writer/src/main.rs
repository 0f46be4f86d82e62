//! `outpost-status-writer`: see `outpost-status-writer --help`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use outpost_status_writer::cli::Args;
use outpost_status_writer::verify::VerifyArgs;

fn main() -> ExitCode {
    // The hub-side check of signed status is its own command line (it needs no cluster, Git or kube flags).
    if std::env::args_os().nth(1).is_some_and(|a| a == "verify") {
        let args = VerifyArgs::parse_from(std::env::args_os().skip(1));
        return outpost_status_writer::verify::main(args);
    }
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
