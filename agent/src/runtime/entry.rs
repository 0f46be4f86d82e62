//! A binary's `main` around its async work: the Tokio runtime, and an exit that does not wait for Git work
//! abandoned at its deadline.
//!
//! `#[tokio::main]` drops its runtime on return, and dropping waits for every blocking task. A fetch or push
//! given up after `--git-timeout` may still sit in a read from a frozen server; waiting for it would turn the
//! deadline back into a hang at exit. The runtime here gets a short grace period instead.

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

/// How long exit waits for blocking work still running (interrupted work returns well within it).
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// Run `work` on a multi-threaded runtime and return its exit code, waiting at most [`EXIT_GRACE`] for
/// blocking tasks afterwards.
pub fn block_on(work: impl Future<Output = ExitCode>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(work);
    runtime.shutdown_timeout(EXIT_GRACE);
    code
}
