//! The command line as clap parses it: `actionwurm [--coordinator ADDR] task|worker ...`.
//!
//! Only shapes and help text live here; `commands` gives them meaning. The names are the
//! contract of issue 5 (tests and docs use them), so change them only together with those.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use tatzelwurm_proto::task::TaskState;
use tatzelwurm_proto::{COORDINATOR_ENV, DEFAULT_COORDINATOR};

/// Add, play, kill, list, show and wait for tatzelwurm tasks; list workers.
#[derive(Debug, Parser)]
#[command(name = "actionwurm", version)]
pub struct Cli {
    /// Address of the coordinator (host:port).
    #[arg(long, global = true, value_name = "ADDR", env = COORDINATOR_ENV, default_value = DEFAULT_COORDINATOR)]
    pub coordinator: String,
    /// What to do.
    #[command(subcommand)]
    pub command: TopCommand,
}

/// The two things an actioner handles: tasks and workers.
#[derive(Debug, Subcommand)]
pub enum TopCommand {
    /// Add, play, kill, list, show and wait for tasks.
    #[command(subcommand)]
    Task(TaskCommand),
    /// Inspect the connected workers.
    #[command(subcommand)]
    Worker(WorkerCommand),
}

/// `actionwurm task ...`.
#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Add tasks and print their ids, one per line.
    Add(AddArgs),
    /// Move created tasks to ready, so that workers run them.
    Play(SelectArgs),
    /// End ready or running tasks (a running one is stopped on its worker).
    Kill(SelectArgs),
    /// List tasks as a table, or as one JSON array with --json.
    List(ListArgs),
    /// Show one task in full: arguments, result, error with traceback, output.
    Show(ShowArgs),
    /// Wait until tasks finish; exit 0 only if all of them completed.
    Wait(WaitArgs),
}

/// `actionwurm worker ...`.
#[derive(Debug, Subcommand)]
pub enum WorkerCommand {
    /// List the connected workers.
    List(JsonFlag),
}

/// Arguments of `task add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The function to run: `package.module:function` or `path/to/file.py:function`.
    #[arg(value_name = "FUNC")]
    pub function: String,
    /// Positional arguments as a JSON array.
    #[arg(long, value_name = "JSON_ARRAY")]
    pub args: Option<String>,
    /// Keyword arguments as a JSON object (for every task with --args-file).
    #[arg(long, value_name = "JSON_OBJECT")]
    pub kwargs: Option<String>,
    /// A file with one JSON array of arguments per line: one task per line, one round trip.
    #[arg(long, value_name = "FILE", conflicts_with = "args")]
    pub args_file: Option<PathBuf>,
    /// Start the tasks ready instead of created.
    #[arg(long)]
    pub play: bool,
}

/// Which tasks `task play` or `task kill` is about: ids, or `-a` for all it applies to.
#[derive(Debug, Args)]
pub struct SelectArgs {
    /// Task ids.
    #[arg(
        value_name = "ID",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub ids: Vec<u64>,
    /// Every task the command applies to.
    #[arg(short = 'a', long)]
    pub all: bool,
}

/// Arguments of `task list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only tasks in this state (repeat, or separate with commas, for several).
    #[arg(long = "state", value_name = "STATE", value_delimiter = ',')]
    pub states: Vec<TaskState>,
    /// Print one JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `task show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The task's id.
    #[arg(value_name = "ID")]
    pub id: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `task wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Which tasks.
    #[command(flatten)]
    pub select: SelectArgs,
    /// Give up after this many seconds (exit code 2).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub timeout: Option<f64>,
}

/// Just `--json`.
#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print one JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A timeout must be a finite, non-negative number of seconds that a `Duration` can hold.
fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() && (0.0..=1e9).contains(&secs) => Ok(secs),
        _ => Err(format!(
            "`{text}` is not a number of seconds, such as 30 or 0.5"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(line.split_whitespace())
    }

    /// The definition is internally consistent (clap's own check).
    #[test]
    fn definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    /// `--coordinator` works before and after the subcommand.
    #[test]
    fn coordinator_is_global() {
        let before = parse("actionwurm --coordinator h:1 task list").unwrap();
        assert_eq!(before.coordinator, "h:1");
        let after = parse("actionwurm worker list --coordinator h:2 --json").unwrap();
        assert_eq!(after.coordinator, "h:2");
    }

    /// States repeat or come comma-separated; a wrong one is refused with the valid names.
    #[test]
    fn state_filters_parse() {
        let cli = parse("actionwurm task list --state ready --state failed,killed").unwrap();
        let TopCommand::Task(TaskCommand::List(list)) = cli.command else {
            panic!("not a list");
        };
        assert_eq!(
            list.states,
            vec![TaskState::Ready, TaskState::Failed, TaskState::Killed]
        );
        let err = parse("actionwurm task list --state done")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("use one of: created, ready, running, completed, failed, killed"),
            "{err}"
        );
    }

    /// play, kill and wait take ids or -a, not both and not neither.
    #[test]
    fn selections_need_ids_or_all() {
        assert!(parse("actionwurm task play 1 2 3").is_ok());
        assert!(parse("actionwurm task kill -a").is_ok());
        assert!(parse("actionwurm task wait -a --timeout 0.5").is_ok());
        assert!(parse("actionwurm task play").is_err());
        assert!(parse("actionwurm task play -a 3").is_err());
        assert!(parse("actionwurm task wait 1 --timeout soon").is_err());
        assert!(parse("actionwurm task wait 1 --timeout -1").is_err());
    }

    /// --args and --args-file cannot be combined.
    #[test]
    fn args_and_args_file_exclude_each_other() {
        assert!(parse("actionwurm task add m:f --args [1] --args-file x").is_err());
        assert!(parse("actionwurm task add m:f --args-file x --kwargs {} --play").is_ok());
    }
}
