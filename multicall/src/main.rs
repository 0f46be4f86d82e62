//! `outpost`: the multi-call binary of the container image. Run as `outpost-agent` or `outpost-status-writer`
//! (hard or symbolic links to this file) it is that command, choosing by the name it was started under, as
//! busybox does; run as `outpost` it takes the command as its first argument (`outpost agent --help`). The
//! image carries the code of both libraries once.
#![forbid(unsafe_code)]

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::ExitCode;

/// A command of this binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Command {
    Agent,
    StatusWriter,
}

impl Command {
    /// The command a program or subcommand name stands for.
    fn named(name: &OsStr) -> Option<Command> {
        let name = Path::new(name).file_name()?.to_str()?;
        match name.strip_suffix(".exe").unwrap_or(name) {
            "outpost-agent" | "agent" => Some(Command::Agent),
            "outpost-status-writer" | "status-writer" => Some(Command::StatusWriter),
            _ => None,
        }
    }
}

/// The command to run and its arguments (program name first, as that command's parser expects).
fn dispatch(mut args: Vec<OsString>) -> Result<(Command, Vec<OsString>), String> {
    if let Some(command) = args.first().and_then(|a| Command::named(a)) {
        return Ok((command, args));
    }
    match args.get(1).and_then(|a| Command::named(a)) {
        Some(command) => {
            args.remove(0);
            Ok((command, args))
        }
        None => Err(
            "usage: outpost agent|status-writer [ARGS...]; or run it as outpost-agent or outpost-status-writer \
             (a link named so)"
                .to_owned(),
        ),
    }
}

fn main() -> ExitCode {
    match dispatch(std::env::args_os().collect()) {
        Ok((Command::Agent, args)) => outpost_agent::cli_main::main(args),
        Ok((Command::StatusWriter, args)) => outpost_status_writer::cli_main::main(args),
        Err(usage) => {
            eprintln!("{usage}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_name_it_was_started_under_chooses_the_command() {
        let (c, a) = dispatch(args(&["/usr/local/bin/outpost-status-writer", "--cluster", "x"])).unwrap();
        assert_eq!((c, a.len()), (Command::StatusWriter, 3));
        let (c, _) = dispatch(args(&["outpost-agent", "plan"])).unwrap();
        assert_eq!(c, Command::Agent);
    }

    #[test]
    fn as_outpost_the_first_argument_chooses_and_becomes_the_program_name() {
        let (c, a) = dispatch(args(&["/bin/outpost", "status-writer", "verify"])).unwrap();
        assert_eq!(c, Command::StatusWriter);
        assert_eq!(a, args(&["status-writer", "verify"]));
        assert!(dispatch(args(&["/bin/outpost"])).is_err());
        assert!(dispatch(args(&["/bin/outpost", "--help"])).is_err());
    }
}
