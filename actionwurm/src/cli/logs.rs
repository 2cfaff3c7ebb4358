//! `actionwurm task logs`: the shape of the command that prints a task's output.

use clap::Args;

/// Arguments of `task logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The task's id.
    #[arg(value_name = "ID")]
    pub id: u64,
    /// Go on printing what a running task writes, as it writes it, until it finishes.
    #[arg(short, long)]
    pub follow: bool,
}
