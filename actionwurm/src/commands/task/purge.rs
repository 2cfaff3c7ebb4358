//! `actionwurm task purge ID... | --finished-before SPAN [--state S]`: removes finished tasks
//! with their results and output.
//!
//! Prints how many were purged on stdout, and on stderr each named task it left with why.
//! Exit codes: 0 when every named task is gone (purged now or before); 1 when a named task is
//! not finished (it is left) or on an error.

use crate::cli::PurgeArgs;
use crate::commands::{capped, connect, tasks, Target};
use crate::outcome::{Exit, Outcome};
use crate::time;
use anyhow::Result;
use tatzelwurm_client::{PurgeSelection, Purged};
use tatzelwurm_proto::task::Timestamp;
use tatzelwurm_proto::TaskId;

/// Most notes about tasks left printed before they are summarised.
const NOTES: usize = 20;

/// Runs `task purge` against the coordinator at `target`; `now` is when `--finished-before`
/// counts back from.
pub async fn purge(target: &Target, args: &PurgeArgs, now: Timestamp) -> Result<Outcome> {
    let selection = selection(args, now);
    let client = connect(target, false).await?;
    let purged = client.purge(selection.clone()).await?;
    Ok(purge_outcome(&purged, &selection))
}

/// What the arguments ask for: the ids, or the tasks that finished before `now` minus the span.
fn selection(args: &PurgeArgs, now: Timestamp) -> PurgeSelection {
    match args.finished_before {
        Some(span) => PurgeSelection::FinishedBefore {
            before: Timestamp(now.0.saturating_sub(span)),
            states: args.states.clone(),
        },
        None => PurgeSelection::Ids(args.ids.iter().copied().map(TaskId).collect()),
    }
}

/// "purged 3 tasks" (with the moment for an age), a note per task left, failure if a named
/// task is not finished.
fn purge_outcome(purged: &Purged, selection: &PurgeSelection) -> Outcome {
    let count = tasks(purged.purged as usize);
    let stdout = match selection {
        PurgeSelection::FinishedBefore { before, .. } => format!(
            "purged {count} that finished before {} UTC\n",
            time::utc(*before)
        ),
        PurgeSelection::Ids(_) => format!("purged {count}\n"),
    };
    let notes = purged
        .unchanged
        .iter()
        .map(|(id, state)| match state {
            Some(state) => format!("task {id} is {state}; only finished tasks can be purged"),
            None => format!("task {id} was purged before"),
        })
        .collect();
    let left_live = purged.unchanged.iter().any(|(_, state)| state.is_some());
    Outcome {
        stdout,
        stderr: capped(notes, NOTES),
        exit: if left_live {
            Exit::Failure
        } else {
            Exit::Success
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tatzelwurm_client::fake_coordinator::{FakeCoordinator, Step};
    use tatzelwurm_proto::actioner::{Command, Reply};
    use tatzelwurm_proto::task::TaskState;

    fn args(line: &str) -> PurgeArgs {
        use clap::Parser;
        let argv = format!("actionwurm task purge {line}");
        match crate::cli::Cli::try_parse_from(argv.split_whitespace())
            .unwrap()
            .command
        {
            crate::cli::TopCommand::Task(crate::cli::TaskCommand::Purge(args)) => args,
            other => panic!("not a purge: {other:?}"),
        }
    }

    /// Ids are sent as they are; a running task is named and fails the command, one purged
    /// before is named and does not.
    #[tokio::test]
    async fn ids_and_what_was_left() {
        let fake = FakeCoordinator::start(|command| {
            assert_eq!(
                command,
                &Command::Purge(PurgeSelection::Ids(vec![TaskId(1), TaskId(2), TaskId(3)]))
            );
            vec![Step::Reply(Reply::Purged {
                purged: 1,
                unchanged: vec![(TaskId(2), Some(TaskState::Running)), (TaskId(3), None)],
            })]
        })
        .await;
        let outcome = purge(&Target::plain(&fake.addr), &args("1 2 3"), Timestamp(0))
            .await
            .unwrap();
        assert_eq!(
            outcome,
            Outcome {
                stdout: "purged 1 task\n".into(),
                stderr: vec![
                    "task 2 is running; only finished tasks can be purged".into(),
                    "task 3 was purged before".into(),
                ],
                exit: Exit::Failure,
            }
        );
        let gone = Purged {
            purged: 0,
            unchanged: vec![(TaskId(3), None)],
        };
        let sel = PurgeSelection::Ids(vec![TaskId(3)]);
        assert_eq!(purge_outcome(&gone, &sel).exit, Exit::Success);
    }

    /// --finished-before counts back from now; the states go along; the answer names the
    /// moment.
    #[tokio::test]
    async fn by_age() {
        let now = Timestamp(1_795_484_412_000);
        let fake = FakeCoordinator::start(move |command| {
            assert_eq!(
                command,
                &Command::Purge(PurgeSelection::FinishedBefore {
                    before: Timestamp(now.0 - 86_400_000),
                    states: vec![TaskState::Failed],
                })
            );
            vec![Step::Reply(Reply::Purged {
                purged: 1200,
                unchanged: Vec::new(),
            })]
        })
        .await;
        let line = "--finished-before 1d --state failed";
        let outcome = purge(&Target::plain(&fake.addr), &args(line), now)
            .await
            .unwrap();
        assert_eq!(
            outcome,
            Outcome::success(
                "purged 1200 tasks that finished before 2026-11-23 01:40:12 UTC\n".into()
            )
        );
    }
}
