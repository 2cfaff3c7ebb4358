//! The task a schedule adds at each firing, checked once when the schedule is added, so that
//! no firing can fail for a reason that was there from the start.
//!
//! Each firing adds an ordinary `ready` task, so the task may name no start time and no tasks
//! to run after; its function, queue and priority follow the rules of `task add`.

use tatzelwurm_proto::function::check_function;
use tatzelwurm_proto::queue;
use tatzelwurm_proto::task::{check_priority, TaskSpec};

/// Checks the task of a schedule; the error is the one sentence a user reads.
pub fn check(task: &TaskSpec) -> Result<(), String> {
    check_function(&task.function)?;
    queue::check_name(&task.queue)?;
    check_priority(task.priority.into())?;
    if task.run_at.is_some() {
        return Err(
            "a schedule's task takes no delay or start time (`--delay`, `--at`): each firing adds it ready to run; choose the schedule's times instead"
                .into(),
        );
    }
    if !task.after.is_empty() {
        return Err(
            "a schedule's task runs after no other tasks (`--after`): each firing adds it ready to run"
                .into(),
        );
    }
    Ok(())
}
