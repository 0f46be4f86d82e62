//! `outpost-agent`: see `outpost-agent --help`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    outpost_agent::cli_main::main(std::env::args_os())
}
