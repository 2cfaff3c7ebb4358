//! actionwurm: the command line of tatzelwurm, a thin layer over the client crate
//! (`tatzelwurm_client`), which owns the connection, its errors and the wire.
//!
//! Layout:
//! - [`cli`]: the command line as clap parses it (the names are the contract of issues 5 and
//!   11); `cli::queue` and `cli::schedule` hold those commands, `cli::values` the value parsers.
//! - [`commands`]: what each subcommand does, returning an [`outcome::Outcome`] instead of
//!   printing (`events` and `task logs` stream to the terminal); `commands::task`, `queue`,
//!   `schedule`, `worker` and `events`.
//! - [`spec`]: checking `FUNC`, `--args`, `--kwargs` and `--args-file` into `TaskSpec`s, and
//!   the policy flags (`--retries`, `--timeout`, ...) into the `TaskPolicy` they share.
//! - [`table`]: comfy-table builders for people; [`time`]: UTC times and short durations.
//! - [`when`]: spans (`--delay 1h30m`, `--every 30s`) and moments (`--at`) as typed, via jiff.
//! - [`output`]: JSON for scripts, error sentences (clap's too), and `emit`, the one writer to
//!   the terminal.
//! - [`outcome`]: what a command says and its exit code.
//!
//! [`main`] is the whole program: the cargo binary and the Python package's `actionwurm`
//! command both call it.

pub mod cli;
pub mod commands;
pub mod outcome;
pub mod output;
pub mod spec;
pub mod table;
pub mod time;
pub mod when;

use clap::Parser;
use cli::{Cli, TopCommand, WorkerCommand};
use outcome::Outcome;

/// Runs the command line `argv` (with argv[0]) to its end and returns the exit code: 0 done,
/// 1 an error or a task that did not complete, 2 a usage error or `task wait --timeout` expired.
/// Builds its own runtime; never exits the process.
pub fn main(argv: Vec<String>) -> i32 {
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(err) => return output::clap_error(&err, &argv),
    };
    // Quiet unless RUST_LOG asks: stderr is for the one sentence a user reads.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("actionwurm: cannot start the async runtime: {err}");
            return 1;
        }
    };
    let outcome = runtime.block_on(run(cli));
    output::emit(&outcome)
}

/// Runs one parsed command line to its outcome; every error becomes one sentence with exit
/// code 1, so that nothing is left but to `output::emit` it. (`events` and `task logs` write
/// what they stream to stdout as it comes, before their outcome.)
pub async fn run(cli: Cli) -> Outcome {
    let target = commands::Target {
        addr: cli.coordinator.clone(),
        tls: cli.tls.clone(),
    };
    let target = &target;
    let result = match &cli.command {
        TopCommand::Task(command) => commands::task::run(target, command).await,
        TopCommand::Queue(command) => commands::queue::run(target, command).await,
        TopCommand::Schedule(command) => commands::schedule::run(target, command).await,
        TopCommand::Worker(WorkerCommand::List(flag)) => {
            commands::worker::list(target, flag.json).await
        }
        TopCommand::Worker(WorkerCommand::Drain(args)) => {
            commands::worker::drain(target, &args.name).await
        }
        TopCommand::Events(args) => {
            commands::events::run(target, args, &mut std::io::stdout()).await
        }
    };
    result.unwrap_or_else(|err| Outcome::error(output::sentence(&err)))
}
