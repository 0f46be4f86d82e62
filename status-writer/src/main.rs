//! `outpost-status-writer`: see `outpost-status-writer --help`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    outpost_status_writer::cli_main::main(std::env::args_os())
}
