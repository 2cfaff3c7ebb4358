//! The `actionwurm` binary: parse the command line, run it on a small runtime, print, exit.
//! Everything else lives in the library (see its Layout).

use actionwurm::cli::Cli;
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("actionwurm: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(actionwurm::run(cli));
    actionwurm::output::emit(&outcome)
}
