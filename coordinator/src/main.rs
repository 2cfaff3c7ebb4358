//! `tatzelwurm`: parses the command line, opens the store, binds, announces the address on
//! stdout (`listening on ADDR`, which scripts and tests read) and runs until SIGINT or SIGTERM.

use anyhow::Context as _;
use clap::Parser;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use tatzelwurm::cli::Cli;
use tatzelwurm::store::Store;
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("tatzelwurm: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(start(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tatzelwurm: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn start(cli: Cli) -> anyhow::Result<()> {
    let store = Store::open(&cli.db)?;
    let listener = tatzelwurm::listener::bind(&cli.bind)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}; is another program using that port? pass another --bind",
                cli.bind
            )
        })?;
    let addr = listener.local_addr()?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {addr}")?;
    stdout.flush()?;
    tatzelwurm::run(cli.config(), store, listener, shutdown_signal()).await?;
    Ok(())
}

/// Completes on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
