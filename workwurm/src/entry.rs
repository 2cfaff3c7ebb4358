//! The one entry point of workwurm: [`main`], which the cargo binary (`main.rs`) calls with
//! `Launch::default()` and the Python package's `workwurm` command calls with its interpreter and
//! slot module, inside the extension with the GIL released.
//!
//! It never exits the process (a Python caller flushes its own output and runs its atexit hooks
//! afterwards): it parses with clap's `try_parse_from`, sets up logging if nobody has yet, builds
//! its own tokio runtime, and turns every outcome into an exit code with at most one sentence on
//! stderr. Signals need nothing special under Python: tokio's SIGTERM and SIGINT handlers chain to
//! the interpreter's, so the first one drains here as in the binary (see `stop`), and the caller
//! decides what Python's own pending KeyboardInterrupt means afterwards.

use crate::cli::{Args, Launch, LogFormat};
use anyhow::Context;
use clap::error::ErrorKind;
use clap::Parser;
use std::io::IsTerminal;
use std::time::Duration;
use tracing_subscriber::EnvFilter;

/// How long the runtime waits, once `run` returned, for the few tasks still winding down.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(1);

/// Runs workwurm with the command line `argv` (`argv[0]` included) until it is drained, stopped,
/// refused or cannot start; returns the exit code: 0 (done, or `--help`/`--version` printed),
/// 1 (an error, said in one sentence on stderr), 2 (a command line clap refused, one sentence).
pub fn main(argv: Vec<String>, launch: Launch) -> i32 {
    let args = match Args::try_parse_from(argv) {
        Ok(args) => args,
        Err(err) => return refuse(&err),
    };
    init_log(args.log_format);
    let result = args.into_config(launch).and_then(|config| {
        // One thread: the work is Python's, in the slot processes; workwurm only moves frames,
        // and on one thread its tasks (connection, pool, slot watchers) hand them to each other
        // without waking another thread per task (measured: 5.9 instead of 14.1 us of CPU per
        // task, `prefetched_throughput` in slots/tests.rs).
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let result = runtime.block_on(crate::run(config));
        runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
        result
    });
    match result {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("workwurm: {err:#}");
            1
        }
    }
}

/// Log lines on stderr, as `--log-format` asks: text (coloured on a terminal) or one JSON
/// object per line. `try_init`: a process that embeds workwurm may have set up tracing already.
fn init_log(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

/// Prints what clap has to say about the command line: help and version as clap prints them
/// (exit 0), an error as one sentence (exit 2, clap's code for a usage error).
fn refuse(err: &clap::Error) -> i32 {
    if !err.use_stderr() {
        let _ = err.print();
        return err.exit_code();
    }
    eprintln!("workwurm: {}", one_sentence(err));
    err.exit_code()
}

/// clap's error as one line (`proto::usage`), and where to look unless it already says what to
/// do.
pub(crate) fn one_sentence(err: &clap::Error) -> String {
    let message = tatzelwurm_proto::usage::clap_message(&err.render().to_string());
    match err.kind() {
        ErrorKind::ValueValidation => message,
        _ => format!("{message} (see workwurm --help)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tatzelwurm_proto::address::check_coordinator_address as parse_address;

    fn parse_error(args: &[&str]) -> clap::Error {
        Args::try_parse_from(std::iter::once("workwurm").chain(args.iter().copied())).unwrap_err()
    }

    /// clap's errors are one line without its label; an unknown flag points at --help.
    #[test]
    fn clap_errors_are_one_sentence() {
        let err = parse_error(&["--nope"]);
        assert_eq!(err.exit_code(), 2);
        assert_eq!(
            one_sentence(&err),
            "unexpected argument '--nope' found (see workwurm --help)"
        );
        let sentence = one_sentence(&parse_error(&["--slots", "zero"]));
        assert!(!sentence.contains('\n'), "{sentence}");
        assert!(
            sentence.starts_with("invalid value 'zero' for '--slots <N>'"),
            "{sentence}"
        );
        // --help and --version are not errors: printed as clap prints them, exit 0.
        assert_eq!(
            main(
                vec!["workwurm".into(), "--version".into()],
                Launch::default()
            ),
            0
        );
    }

    /// An address without a port or with a bad one is refused at once, in one sentence that names
    /// the flag, the variable and the form; a well-formed one is left to connecting.
    #[test]
    fn unparseable_coordinator_addresses_are_refused() {
        for bad in [
            "localhost",
            "127.0.0.1:2024x",
            "127.0.0.1:99999",
            "127.0.0.1:0",
            ":5677",
            "::1:5677",
            "http://localhost:5677",
            "",
        ] {
            let err = parse_error(&["--coordinator", bad]);
            assert_eq!(err.exit_code(), 2, "{bad}");
            let sentence = one_sentence(&err);
            assert_eq!(
                sentence,
                format!(
                    "invalid value '{bad}' for '--coordinator <ADDR>': not an address of the form \
                     HOST:PORT (such as 127.0.0.1:5677); set --coordinator or \
                     TATZELWURM_COORDINATOR to one"
                )
            );
        }
        for good in [
            "127.0.0.1:5677",
            "localhost:1",
            "no-such-host.invalid:5677",
            "[::1]:5677",
        ] {
            assert_eq!(parse_address(good).as_deref(), Ok(good));
        }
    }
}
