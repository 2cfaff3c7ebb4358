//! `main(argv)`: the whole program behind the `tatzelwurm` binary and the Python package's
//! entry point. Parses the command line, binds the listener (before the store, so that a bad or
//! taken address leaves no new database behind), opens the store, announces the address on
//! stdout (`listening on ADDR`, which scripts and tests read) and runs until SIGINT or SIGTERM.
//!
//! Exit status: 0 after a signal (or for `--help`/`--version`), 1 when it cannot start (bind,
//! store, runtime), 2 for a command line it cannot use or a store that fails while serving.
//! Nothing here calls `process::exit`: a test may call `main` in-process.

use crate::cli::{report_parse_error, Cli, LogFormat};
use crate::store::Store;
use clap::Parser;
use std::io::{IsTerminal, Write};
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::EnvFilter;

/// Runs the coordinator with `argv` (`argv[0]` is the program name); returns the exit status.
pub fn main(argv: Vec<String>) -> i32 {
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(err) => return report_parse_error(err),
    };
    init_log(cli.log_format);
    // One thread: the task actor is the one place work happens and the store writes on its
    // own thread, so more runtime threads only added wake-ups and cross-thread hand-offs
    // (measured in W1: ~40% fewer context switches, ~5% less CPU, 5-8% more tasks/s).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("tatzelwurm: cannot start the async runtime: {err}");
            return 1;
        }
    };
    runtime.block_on(start(cli))
}

/// Log lines on stderr, as `--log-format` asks: text (coloured on a terminal) or one JSON
/// object per line. A second call in one process (tests) keeps the first subscriber.
fn init_log(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

async fn start(cli: Cli) -> i32 {
    let listener = match crate::listener::bind(&cli.bind).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("tatzelwurm: {err}");
            return 1;
        }
    };
    // Bound before the store too, for the same reason as the protocol's port.
    let http = match &cli.http {
        Some(addr) => match crate::listener::bind(addr).await {
            Ok(listener) => Some(listener),
            Err(err) => {
                eprintln!("tatzelwurm: --http: {err}");
                return 1;
            }
        },
        None => None,
    };
    let config = match cli.config() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("tatzelwurm: {err}");
            return 1;
        }
    };
    let store = match Store::open(&cli.db, cli.store) {
        Ok(store) => store,
        Err(err) => {
            eprintln!("tatzelwurm: {err}");
            return 1;
        }
    };
    // The handlers are in place before the address is announced: a SIGTERM sent as soon as a
    // script reads `listening on` must stop the coordinator cleanly, not kill it by default.
    let shutdown = match shutdown_signal() {
        Ok(shutdown) => shutdown,
        Err(err) => {
            eprintln!("tatzelwurm: cannot install the SIGINT and SIGTERM handlers: {err}");
            return 1;
        }
    };
    if let Err(err) = announce(&listener, http.as_ref()) {
        eprintln!("tatzelwurm: cannot write the address to stdout: {err}");
        return 1;
    }
    match crate::run_with(config, store, listener, http, shutdown).await {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("tatzelwurm: {err}");
            err.exit_code()
        }
    }
}

/// Prints `listening on ADDR` and, with `--http`, `http listening on ADDR` after it.
fn announce(
    listener: &tokio::net::TcpListener,
    http: Option<&tokio::net::TcpListener>,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {addr}")?;
    if let Some(http) = http {
        writeln!(stdout, "http listening on {}", http.local_addr()?)?;
    }
    stdout.flush()
}

/// Installs the SIGINT and SIGTERM handlers now (`signal` registers when called, unlike
/// `tokio::signal::ctrl_c`, which registers when first polled) and returns a future that
/// completes on the first of either.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = term.recv() => {}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<String> {
        std::iter::once("tatzelwurm")
            .chain(args.iter().copied())
            .map(String::from)
            .collect()
    }

    /// A --bind that is not an address fails with status 2 and creates no database.
    #[test]
    fn a_bad_bind_creates_no_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("new.db");
        let db_arg = db.to_str().unwrap();
        assert_eq!(
            main(argv(&["--bind", "127.0.0.1:99999", "--db", db_arg])),
            2
        );
        assert!(!db.exists(), "a database was created");
    }

    /// A --bind on a port in use fails with status 1 and creates no database.
    #[test]
    fn a_taken_port_creates_no_database() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("new.db");
        assert_eq!(
            main(argv(&["--bind", &addr, "--db", db.to_str().unwrap()])),
            1
        );
        assert!(!db.exists(), "a database was created");
    }

    /// `--help` and `--version` succeed.
    #[test]
    fn help_and_version_exit_0() {
        assert_eq!(main(argv(&["--help"])), 0);
        assert_eq!(main(argv(&["--version"])), 0);
    }
}
