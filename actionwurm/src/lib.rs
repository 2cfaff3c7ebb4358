//! actionwurm: the command line of tatzelwurm, and the `Client` other actioners build on.
//!
//! Layout:
//! - [`cli`]: the command line as clap parses it (the names are issue 5's contract).
//! - [`commands`]: what each subcommand does, returning an [`outcome::Outcome`] instead of
//!   printing; `commands::task` and `commands::worker`.
//! - [`client`]: `Client`, one actioner connection with a typed method per request; free of
//!   terminal concerns so that the Python client library can wrap it.
//! - [`error`]: `ClientError`, every way a request can fail, each as one sentence.
//! - [`spec`]: checking `FUNC`, `--args`, `--kwargs` and `--args-file` into `TaskSpec`s, and
//!   the policy flags (`--retries`, `--timeout`, ...) into the `TaskPolicy` they share.
//! - [`table`]: comfy-table builders for people; [`time`]: UTC times and short durations.
//! - [`output`]: JSON for scripts, error sentences, and `emit`, the one writer to the terminal.
//! - [`outcome`]: what a command says and its exit code.

pub mod cli;
pub mod client;
pub mod commands;
pub mod error;
pub mod outcome;
pub mod output;
pub mod spec;
pub mod table;
pub mod time;

#[cfg(test)]
mod fake_coordinator;

use cli::{Cli, TopCommand, WorkerCommand};
use outcome::Outcome;

/// Runs one parsed command line to its outcome; every error becomes one sentence with exit
/// code 1, so the binary has nothing left to do but `output::emit` it.
pub async fn run(cli: Cli) -> Outcome {
    let addr = cli.coordinator.as_str();
    let result = match &cli.command {
        TopCommand::Task(command) => commands::task::run(addr, command).await,
        TopCommand::Worker(WorkerCommand::List(flag)) => {
            commands::worker::list(addr, flag.json).await
        }
    };
    result.unwrap_or_else(|err| Outcome::error(output::sentence(&err)))
}
