//! `actionwurm task add|play|kill|list|show|wait`.
//!
//! Each function checks its input, makes one connection, asks, and returns the `Outcome` a user
//! sees. Exit codes: 0 when everything asked for happened; 1 on an error, when an explicitly
//! named task could not be played or killed, or when a waited task did not complete; 2 when
//! `wait --timeout` expired.

use super::{capped, connect, selection, tasks};
use crate::cli::{AddArgs, ListArgs, SelectArgs, ShowArgs, TaskCommand, WaitArgs};
use crate::client::Changed;
use crate::outcome::{Exit, Outcome};
use crate::output::{sentence, to_json_text, TaskJson};
use crate::{spec, table};
use anyhow::Result;
use std::time::Duration;
use tatzelwurm_proto::task::{TaskInfo, TaskSpec, TaskState, Timestamp};
use tatzelwurm_proto::TaskId;

/// Most tasks sent in one `Add`: one round trip for any ordinary file, frames well under the limit.
const BATCH_TASKS: usize = 50_000;
/// Most bytes of function and arguments sent in one `Add`, a quarter of the frame limit.
const BATCH_BYTES: usize = tatzelwurm_proto::MAX_FRAME_LEN / 4;
/// Most per-task notes printed on stderr before they are summarised.
const NOTES: usize = 20;

/// Runs one task subcommand against the coordinator at `addr`.
pub async fn run(addr: &str, command: &TaskCommand) -> Result<Outcome> {
    match command {
        TaskCommand::Add(args) => add(addr, args).await,
        TaskCommand::Play(select) => change(addr, select, Change::Play).await,
        TaskCommand::Kill(select) => change(addr, select, Change::Kill).await,
        TaskCommand::List(args) => list(addr, args).await,
        TaskCommand::Show(args) => show(addr, args).await,
        TaskCommand::Wait(args) => wait(addr, args).await,
    }
}

/// `task add`: one spec from `--args`, or one per line of `--args-file`; prints the new ids one
/// per line and nothing else on stdout.
async fn add(addr: &str, args: &AddArgs) -> Result<Outcome> {
    let specs = specs(args)?;
    let mut client = connect(addr).await?;
    let mut stdout = String::new();
    for batch in batches(specs) {
        match client.add(batch, args.play).await {
            Ok(ids) => {
                for id in ids {
                    stdout.push_str(&format!("{id}\n"));
                }
            }
            Err(err) if !stdout.is_empty() => {
                // Earlier batches are durable: say which ids exist rather than hide them.
                let why = sentence(&err.into());
                return Ok(Outcome {
                    stdout,
                    stderr: vec![format!("{why}; only the ids printed above were added")],
                    exit: Exit::Failure,
                });
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(Outcome::success(stdout))
}

/// The specs `task add` sends, checked before anything is sent.
fn specs(args: &AddArgs) -> Result<Vec<TaskSpec>> {
    spec::check_function(&args.function)?;
    let kwargs = spec::parse_kwargs(args.kwargs.as_deref())?;
    let policy = spec::policy(args);
    match &args.args_file {
        Some(path) => spec::specs_from_file(path, &args.function, &kwargs, policy),
        None => Ok(vec![TaskSpec {
            function: args.function.clone(),
            args: spec::parse_args(args.args.as_deref())?,
            kwargs,
            policy,
        }]),
    }
}

/// Splits specs into `Add` commands of at most `BATCH_TASKS` tasks and about `BATCH_BYTES`.
fn batches(specs: Vec<TaskSpec>) -> Vec<Vec<TaskSpec>> {
    tatzelwurm_proto::batch::batches(specs, BATCH_TASKS, BATCH_BYTES, |spec| {
        spec.function.len() + spec.args.len() + spec.kwargs.len()
    })
}

/// The two commands that move tasks between states and answer with `Changed`.
#[derive(Debug, Clone, Copy)]
enum Change {
    Play,
    Kill,
}

impl Change {
    fn past(self) -> &'static str {
        match self {
            Change::Play => "played",
            Change::Kill => "killed",
        }
    }

    /// Why a task was left alone, after "task 4 is running; ".
    fn rule(self) -> &'static str {
        match self {
            Change::Play => "only created tasks can be played",
            Change::Kill => "only unfinished tasks can be killed",
        }
    }
}

/// `task play` and `task kill`.
async fn change(addr: &str, select: &SelectArgs, change: Change) -> Result<Outcome> {
    let chosen = selection(&select.ids, select.all);
    let mut client = connect(addr).await?;
    let changed = match change {
        Change::Play => client.play(chosen).await?,
        Change::Kill => client.kill(chosen).await?,
    };
    Ok(change_outcome(&changed, select.all, change))
}

/// "played 3 tasks", one note per task left alone, and failure if the user named such a task.
fn change_outcome(changed: &Changed, all: bool, change: Change) -> Outcome {
    let notes = changed
        .unchanged
        .iter()
        .map(|(id, state)| format!("task {id} is {state}; {}", change.rule()))
        .collect();
    let failed = !all && !changed.unchanged.is_empty();
    Outcome {
        stdout: format!("{} {}\n", change.past(), tasks(changed.changed.len())),
        stderr: capped(notes, NOTES),
        exit: if failed { Exit::Failure } else { Exit::Success },
    }
}

/// `task list`: a table, or one JSON array with `--json`.
async fn list(addr: &str, args: &ListArgs) -> Result<Outcome> {
    let mut client = connect(addr).await?;
    let found = client.list(args.states.clone()).await?;
    if args.json {
        let json: Vec<TaskJson> = found
            .iter()
            .map(|info| TaskJson::new(info, false))
            .collect();
        return Ok(Outcome::success(to_json_text(&json)?));
    }
    if found.is_empty() {
        return Ok(Outcome::success("no tasks\n".into()));
    }
    let table = table::task_list(&found, Timestamp::now());
    Ok(Outcome::success(format!("{table}\n")))
}

/// `task show`: one task in full, or one JSON object with `--json`.
async fn show(addr: &str, args: &ShowArgs) -> Result<Outcome> {
    let mut client = connect(addr).await?;
    let info = client.show(TaskId(args.id)).await?;
    if args.json {
        return Ok(Outcome::success(to_json_text(&TaskJson::new(&info, true))?));
    }
    Ok(Outcome::success(table::task_detail(
        &info,
        Timestamp::now(),
    )))
}

/// `task wait`: until every selected task is finished, or `--timeout` seconds.
async fn wait(addr: &str, args: &WaitArgs) -> Result<Outcome> {
    let chosen = selection(&args.select.ids, args.select.all);
    let mut client = connect(addr).await?;
    let finished = match args.timeout {
        None => client.wait(chosen).await?,
        Some(secs) => {
            let limit = Duration::from_secs_f64(secs);
            match tokio::time::timeout(limit, client.wait(chosen)).await {
                Ok(answer) => answer?,
                Err(_) => return Ok(timed_out(secs, &args.select)),
            }
        }
    };
    Ok(wait_outcome(&finished))
}

fn timed_out(secs: f64, select: &SelectArgs) -> Outcome {
    let what = if select.all {
        "every task that was ready, waiting or running".to_string()
    } else {
        let ids: Vec<String> = select.ids.iter().map(u64::to_string).collect();
        let shown = capped(ids, 10).join(", ");
        format!(
            "task{} {shown}",
            if select.ids.len() == 1 { "" } else { "s" }
        )
    };
    Outcome {
        stdout: String::new(),
        stderr: vec![format!("timed out after {secs} s waiting for {what}")],
        exit: Exit::TimedOut,
    }
}

/// A count per final state on stdout, a note per task that did not complete on stderr, and
/// success only if every task completed.
fn wait_outcome(finished: &[TaskInfo]) -> Outcome {
    if finished.is_empty() {
        return Outcome::success("no tasks to wait for\n".into());
    }
    let counts: Vec<String> = TaskState::ALL
        .iter()
        .filter_map(|state| {
            let count = finished.iter().filter(|t| t.state == *state).count();
            (count > 0).then(|| format!("{count} {state}"))
        })
        .collect();
    let notes: Vec<String> = finished
        .iter()
        .filter(|t| t.state != TaskState::Completed)
        .map(wait_note)
        .collect();
    Outcome {
        stdout: format!(
            "waited for {}: {}\n",
            tasks(finished.len()),
            counts.join(", ")
        ),
        exit: if notes.is_empty() {
            Exit::Success
        } else {
            Exit::Failure
        },
        stderr: capped(notes, NOTES),
    }
}

/// Why one waited task counts against success.
fn wait_note(info: &TaskInfo) -> String {
    match (&info.state, &info.error) {
        (TaskState::Failed, Some(error)) => {
            format!("task {} failed: {}: {}", info.id, error.kind, error.message)
        }
        (TaskState::Killed, _) => format!("task {} was killed", info.id),
        (state, _) => format!("task {} is {state}", info.id),
    }
}

#[cfg(test)]
mod tests;
