//! `actionwurm task purge`: the shape of the command that removes finished tasks with their
//! results and output, by id or by age.

use clap::Args;
use tatzelwurm_proto::task::TaskState;

/// Arguments of `task purge`: ids, or `--finished-before SPAN` (optionally of some states).
#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Task ids (finished ones are purged; others are named and left).
    #[arg(
        value_name = "ID",
        required_unless_present = "finished_before",
        conflicts_with = "finished_before"
    )]
    pub ids: Vec<u64>,
    /// Purge every task that finished longer ago than this: 30m, 12h, 7d (0s: all finished).
    #[arg(long, value_name = "SPAN", value_parser = crate::when::parse_span)]
    pub finished_before: Option<u64>,
    /// With --finished-before, only tasks that ended in this state: completed, failed or
    /// killed (repeat, or separate with commas, for several).
    #[arg(long = "state", value_name = "STATE", value_delimiter = ',', requires = "finished_before", conflicts_with = "ids", value_parser = parse_finished_state)]
    pub states: Vec<TaskState>,
}

/// `--state` of a purge: a finished state.
pub fn parse_finished_state(text: &str) -> Result<TaskState, String> {
    let state: TaskState = text.trim().parse().map_err(|_| {
        format!("`{text}` is not a finished state; use completed, failed or killed")
    })?;
    if state.is_finished() {
        Ok(state)
    } else {
        Err(format!(
            "only finished tasks are purged, and `{text}` is not a finished state; use completed, failed or killed"
        ))
    }
}
