//! The `workwurm` binary: parses the command line, sets up logging, and hands over to
//! `workwurm::run`. Every error ends here as one sentence on stderr and a non-zero exit.

use anyhow::Context;
use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;
use workwurm::cli::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = args.into_config().and_then(|config| {
        tokio::runtime::Runtime::new()
            .context("cannot start the async runtime")?
            .block_on(workwurm::run(config))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("workwurm: {err:#}");
            ExitCode::FAILURE
        }
    }
}
