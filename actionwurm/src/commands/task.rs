//! `actionwurm task add|play|pause|kill|list|show|wait|logs|purge`.
//!
//! Each function checks its input, makes one connection, asks, and returns the `Outcome` a user
//! sees (`logs`, in `task/logs.rs`, writes the output as it comes instead; `purge` is in
//! `task/purge.rs`, the bar of `wait` in `task/progress.rs`). Exit codes: 0 when everything asked for happened; 1 on an error, when an explicitly
//! named task could not be played or killed, or when a waited task did not complete (see
//! `wait` for the rule); 2 when `wait --timeout` expired.

use super::{capped, connect, selection, tasks, Target};
use crate::cli::{AddArgs, ListArgs, SelectArgs, ShowArgs, TaskCommand, WaitArgs};
use crate::outcome::{Exit, Outcome};
use crate::output::{to_json_text, TaskJson};
use crate::{spec, table, time};
use anyhow::Result;
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;
use tatzelwurm_client::{Changed, Client, ClientError};
use tatzelwurm_proto::actioner::WaitSummary;
use tatzelwurm_proto::task::{TaskInfo, TaskSpec, TaskState, Timestamp};
use tatzelwurm_proto::TaskId;

/// Most tasks sent in one `Add`: one round trip for any ordinary file, frames well under the limit.
const BATCH_TASKS: usize = 50_000;
/// Most bytes of function and arguments sent in one `Add`, a quarter of the frame limit.
const BATCH_BYTES: usize = tatzelwurm_proto::MAX_FRAME_LEN / 4;
/// Most per-task notes printed on stderr before they are summarised.
const NOTES: usize = 20;

/// Runs one task subcommand against the coordinator at `target`.
pub async fn run(target: &Target, command: &TaskCommand) -> Result<Outcome> {
    match command {
        TaskCommand::Add(args) => add(target, args).await,
        TaskCommand::Play(select) => change(target, select, Change::Play).await,
        TaskCommand::Pause(select) => change(target, select, Change::Pause).await,
        TaskCommand::Kill(select) => change(target, select, Change::Kill).await,
        TaskCommand::List(args) => list(target, args).await,
        TaskCommand::Show(args) => show(target, args).await,
        TaskCommand::Wait(args) => wait(target, args).await,
        TaskCommand::Logs(args) => {
            logs::logs(target, args, &mut std::io::stdout(), &mut std::io::stderr()).await
        }
        TaskCommand::Purge(args) => purge::purge(target, args, Timestamp::now()).await,
    }
}

/// `task add`: one spec from `--args`, or one per line of `--args-file`; prints the new ids one
/// per line and nothing else on stdout. Each batch carries a key: if the connection drops
/// before its answer, the client connects again and re-sends it with the same key (for up to
/// `ADD_RECONNECT_LIMIT`), so a lost acknowledgement creates nothing twice.
///
/// Nothing is sent before every argument is checked, but an args file is checked while the
/// connection is made (`connect_while_checking`), and each add's specs are built only when it
/// is sent: the first tasks leave as soon as the file has passed and the handshake is done.
async fn add(target: &Target, args: &AddArgs) -> Result<Outcome> {
    let template = template(args)?;
    let text = args
        .args_file
        .as_deref()
        .map(spec::args_file::read)
        .transpose()?;
    let (client, task_args) = match (&args.args_file, &text) {
        (Some(path), Some(text)) => {
            connect_while_checking(target, &path.display().to_string(), text).await?
        }
        _ => {
            let one = vec![Cow::Owned(spec::parse_args(args.args.as_deref())?)];
            (connect(target, true).await?, one)
        }
    };
    let notes: Vec<String> = past_start(args, Timestamp::now()).into_iter().collect();
    let mut stdout = String::new();
    // Each add's specs are built once the add before it is answered, so that the memory of
    // that add's specs is reused: building the next while one travels cost more page faults
    // than the wait it saved.
    for batch in batches(&template, task_args) {
        match client.add(batch, args.play).await {
            Ok(ids) => {
                stdout.reserve(ids.len() * 8);
                for id in ids {
                    push_id(&mut stdout, id);
                }
            }
            Err(err) => {
                let why = add_failure(&err);
                if stdout.is_empty() {
                    return Err(anyhow::Error::msg(why));
                }
                // Earlier batches are durable: say which ids exist rather than hide them.
                let mut stderr = notes;
                stderr.push(format!("{why}; the ids printed above were added"));
                return Ok(Outcome {
                    stdout,
                    stderr,
                    exit: Exit::Failure,
                });
            }
        }
    }
    Ok(Outcome {
        stderr: notes,
        ..Outcome::success(stdout)
    })
}

/// Appends `id` and a newline to `out`, as `format!("{id}\n")` would, without the formatting
/// machinery: an args file of 10^6 lines prints 10^6 ids.
fn push_id(out: &mut String, id: TaskId) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = id.0;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend(digits[at..].iter().map(|&digit| char::from(digit)));
    out.push('\n');
}

/// Lines of an `--args-file` checked between two looks at the connection being made (some
/// tens of microseconds of work), so that its handshake goes on while the file is checked.
const CHECK_LINES: usize = 1_000;

/// Connects to the coordinator while the args file `text` (called `name`) is checked, a slice
/// of `CHECK_LINES` at a time, and returns the client and every task's arguments. The check's
/// verdict comes first: a bad line fails the add at once, whether or not the coordinator
/// answered (the half-made connection is dropped, nothing having been sent on it but the
/// handshake), and a failed connection is reported only for a file that passed.
async fn connect_while_checking<'a>(
    target: &Target,
    name: &str,
    text: &'a str,
) -> Result<(Client, Vec<Cow<'a, str>>)> {
    let connecting = connect(target, true);
    tokio::pin!(connecting);
    // The first look comes before the check counts the file's lines, so that the connection
    // is under way meanwhile.
    let mut connected = look(&mut connecting).await;
    let mut check = spec::args_file::Check::new(name, text);
    while !check.step(CHECK_LINES)? {
        // Lets the runtime read the socket (and, once connected, the session start), so that
        // the next look finds the handshake further. (Pausing only until connected was
        // measured to cost page faults, not to save time.)
        tokio::task::yield_now().await;
        if connected.is_none() {
            connected = look(&mut connecting).await;
        }
    }
    let task_args = check.finish()?;
    let client = match connected {
        Some(result) => result?,
        None => connecting.await?,
    };
    Ok((client, task_args))
}

/// One look at `future`: starts it or moves it on, and gives its output if that is ready now,
/// `None` if it is still waiting (it is woken, and looked at again later, as any future).
async fn look<F: Future + Unpin>(future: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| match Pin::new(&mut *future).poll(cx) {
        Poll::Ready(output) => Poll::Ready(Some(output)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

/// The warning for an `--at` that has passed: the task is not refused, it runs at once (or
/// as soon as it is played), and the user learns that this is what happens.
fn past_start(args: &AddArgs, now: Timestamp) -> Option<String> {
    let at = args.timing.at?;
    let what = if args.args_file.is_some() {
        "the tasks run"
    } else {
        "the task runs"
    };
    let when = if args.play {
        "now"
    } else {
        "as soon as played"
    };
    (at <= now).then(|| {
        format!(
            "--at {} UTC is in the past, so {what} {when}",
            time::utc(at)
        )
    })
}

/// Why an add failed, and for a connection that did not come back, that its tasks may exist.
fn add_failure(err: &ClientError) -> String {
    match err {
        ClientError::Lost { .. } => format!(
            "{err}; the tasks of the unanswered add may have been created, so check `actionwurm task list` before adding them again"
        ),
        other => other.to_string(),
    }
}

/// What every task of the add shares, checked before anything is sent; its `args` is `[]`, as
/// each task's own come from `--args` or a line of `--args-file`.
fn template(args: &AddArgs) -> Result<TaskSpec> {
    spec::check_function(&args.function)?;
    Ok(TaskSpec {
        function: args.function.clone(),
        args: "[]".into(),
        kwargs: spec::parse_kwargs(args.kwargs.as_deref())?,
        policy: spec::policy(&args.policy),
        queue: args.placement.queue.clone(),
        priority: args.placement.priority,
        run_at: spec::run_at(&args.timing),
        after: spec::after(&args.timing)?,
    })
}

/// The `Add` commands of `task_args`: at most `BATCH_TASKS` tasks and about `BATCH_BYTES` each,
/// the first ones smaller (so that the first tasks run while the rest are written). Each add's
/// specs (`template` with a task's arguments) are built only when it is asked for, so that the
/// first goes out before the others exist and only one add's specs are held at a time.
fn batches<'a>(
    template: &'a TaskSpec,
    task_args: Vec<Cow<'a, str>>,
) -> impl Iterator<Item = Vec<TaskSpec>> + 'a {
    let shared = template.function.len()
        + template.kwargs.len()
        + template.queue.len()
        + 8 * template.after.len();
    tatzelwurm_proto::batch::add_batches_lazily(task_args, BATCH_TASKS, BATCH_BYTES, move |args| {
        shared + args.len()
    })
    .map(|batch| {
        batch
            .into_iter()
            .map(|args| with_args(template, args.into_owned()))
            .collect()
    })
}

/// `template` with a task's `args`: the shared fields are cloned, the template's `args` not.
fn with_args(template: &TaskSpec, args: String) -> TaskSpec {
    TaskSpec {
        function: template.function.clone(),
        args,
        kwargs: template.kwargs.clone(),
        policy: template.policy,
        queue: template.queue.clone(),
        priority: template.priority,
        run_at: template.run_at,
        after: template.after.clone(),
    }
}

/// The commands that move tasks between states and answer with `Changed`.
#[derive(Debug, Clone, Copy)]
enum Change {
    Play,
    Pause,
    Kill,
}

impl Change {
    fn past(self) -> &'static str {
        match self {
            Change::Play => "played",
            Change::Pause => "paused",
            Change::Kill => "killed",
        }
    }

    /// Why a task was left alone, after "task 4 is running; ".
    fn rule(self) -> &'static str {
        match self {
            Change::Play => "only created and paused tasks can be played",
            Change::Pause => "only created, ready and scheduled tasks can be paused",
            Change::Kill => "only unfinished tasks can be killed",
        }
    }
}

/// `task play`, `task pause` and `task kill`.
async fn change(target: &Target, select: &SelectArgs, change: Change) -> Result<Outcome> {
    let chosen = selection(&select.ids, select.all);
    let client = connect(target, false).await?;
    let changed = match change {
        Change::Play => client.play(chosen).await?,
        Change::Pause => client.pause(chosen).await?,
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
async fn list(target: &Target, args: &ListArgs) -> Result<Outcome> {
    let client = connect(target, false).await?;
    let found = client
        .list_page(
            args.states.clone(),
            args.queue.as_deref(),
            args.after.map(TaskId),
            args.limit,
        )
        .await?;
    let mut outcome = if args.json {
        let json: Vec<TaskJson> = found
            .iter()
            .map(|info| TaskJson::new(info, false))
            .collect();
        Outcome::success(to_json_text(&json)?)
    } else if found.is_empty() {
        Outcome::success("no tasks\n".into())
    } else {
        let table = table::task_list(&found, Timestamp::now());
        Outcome::success(format!("{table}\n"))
    };
    if args.limit != 0 && found.len() == args.limit {
        let last = found.last().map_or(0, |task| task.id.0);
        outcome.stderr.push(format!(
            "showing the first {} matching tasks; pass --after {last} for the next ones, or --limit 0 for all",
            args.limit
        ));
    }
    Ok(outcome)
}

/// `task show`: one task in full, or one JSON object with `--json`.
async fn show(target: &Target, args: &ShowArgs) -> Result<Outcome> {
    let client = connect(target, false).await?;
    let info = client.show(TaskId(args.id)).await?;
    if args.json {
        return Ok(Outcome::success(to_json_text(&TaskJson::new(&info, true))?));
    }
    let pending = match info.state {
        TaskState::Blocked => pending(&client, &info.spec.after).await,
        _ => None,
    };
    Ok(Outcome::success(table::task_detail(
        &info,
        Timestamp::now(),
        pending.as_deref(),
    )))
}

/// Most dependencies `task show` looks up one by one to say which a blocked task still waits
/// for; past that it shows only the ids (each lookup is a round trip).
const PENDING_LOOKUPS: usize = 50;

/// The tasks of `after` that have not completed, with their states; `None` when there are
/// too many to look up or a lookup failed (the row is a help, not worth failing `show` for).
/// Each is read as a one-task list page starting just below its id, which carries no output
/// (a `show` would carry up to 512 KiB of it per task).
async fn pending(client: &Client, after: &[TaskId]) -> Option<Vec<(TaskId, TaskState)>> {
    if after.len() > PENDING_LOOKUPS {
        return None;
    }
    let mut pending = Vec::new();
    for id in after {
        let below = id.0.checked_sub(1).map(TaskId);
        let page = client.list_page(Vec::new(), None, below, 1).await.ok()?;
        let dependency = page.into_iter().find(|task| task.id == *id)?;
        if dependency.state != TaskState::Completed {
            pending.push((*id, dependency.state));
        }
    }
    Some(pending)
}

/// `task wait`: until every selected task is finished, or `--timeout` seconds.
///
/// The exit status tells whether everything waited for completed. Named tasks that are
/// `created` would never finish, so such a wait fails at once saying how to play them. With
/// `-a`, tasks that had already failed or been killed before the wait began count too (they
/// are not waited for, but they did not complete): a task that failed between `task add --play`
/// and `task wait -a` makes the wait fail instead of reading as "no tasks to wait for".
async fn wait(target: &Target, args: &WaitArgs) -> Result<Outcome> {
    let chosen = selection(&args.select.ids, args.select.all);
    let client = connect(target, false).await?;
    if !args.select.all {
        if let Some(outcome) = not_played(&client, &args.select.ids).await? {
            return Ok(outcome);
        }
    }
    let progress = progress::Progress::start(&client, &args.select);
    let waiting = async {
        let finished = client.wait(chosen).await?;
        let earlier = if args.select.all && finished.earlier_unsuccessful > 0 {
            earlier_failures(&client, &finished).await?
        } else {
            Vec::new()
        };
        Ok::<_, ClientError>((finished, earlier))
    };
    let answer = match args.timeout {
        None => Some(waiting.await),
        Some(secs) => tokio::time::timeout(Duration::from_secs_f64(secs), waiting)
            .await
            .ok(),
    };
    if let Some(progress) = progress {
        progress.finish();
    }
    match answer {
        Some(answer) => {
            let (finished, earlier) = answer?;
            Ok(wait_outcome(&finished, &earlier))
        }
        None => Ok(timed_out(args.timeout.unwrap_or_default(), &args.select)),
    }
}

/// A failure saying how to play them if any of `ids` is `created` or `paused` (a wait for it
/// would never end); `None` when none is.
async fn not_played(client: &Client, ids: &[u64]) -> Result<Option<Outcome>> {
    let asked: BTreeSet<u64> = ids.iter().copied().collect();
    let held: Vec<TaskInfo> = client
        .list(vec![TaskState::Created, TaskState::Paused])
        .await?
        .into_iter()
        .filter(|info| asked.contains(&info.id.0))
        .collect();
    if held.is_empty() {
        return Ok(None);
    }
    let paused = held.iter().any(|info| info.state == TaskState::Paused);
    let created: Vec<String> = held.iter().map(|info| info.id.to_string()).collect();
    let how = match (paused, held.len()) {
        (false, _) => "created but not played",
        (true, 1) => "paused",
        (true, _) => "created or paused, not played",
    };
    let (which, them) = if created.len() == 1 {
        (format!("task {} is {how}", created[0]), "it")
    } else {
        (
            format!("tasks {} are {how}", capped(created.clone(), 10).join(", ")),
            "them",
        )
    };
    let play = capped(created, 10).join(" ");
    Ok(Some(Outcome::error(format!(
        "{which}, so waiting would never end; play {them} with `actionwurm task play {play}` (or add with --play), then wait"
    ))))
}

/// Tasks that had failed or been killed before a `wait -a` began (not among the waited ones
/// of `finished`, which names every waited task that did not complete).
async fn earlier_failures(
    client: &Client,
    finished: &WaitSummary,
) -> Result<Vec<TaskInfo>, ClientError> {
    let waited: BTreeSet<TaskId> = finished.unsuccessful.iter().map(|info| info.id).collect();
    Ok(client
        .list(vec![TaskState::Failed, TaskState::Killed])
        .await?
        .into_iter()
        .filter(|info| !waited.contains(&info.id))
        .collect())
}

fn timed_out(secs: f64, select: &SelectArgs) -> Outcome {
    let what = if select.all {
        "every task that was played and not finished".to_string()
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

/// A count per final state on stdout, a note per task that did not complete on stderr (those
/// of `earlier`, which had ended before the wait, too), and success only if every task
/// completed and `earlier` is empty.
fn wait_outcome(finished: &WaitSummary, earlier: &[TaskInfo]) -> Outcome {
    let counts: Vec<String> = TaskState::ALL
        .iter()
        .filter_map(|state| {
            let count = finished.count(*state);
            (count > 0).then(|| format!("{count} {state}"))
        })
        .collect();
    let mut notes: Vec<String> = finished.unsuccessful.iter().map(wait_note).collect();
    notes.extend(earlier.iter().map(earlier_note));
    let total = finished.total();
    let stdout = if total == 0 {
        "no tasks to wait for\n".to_string()
    } else {
        format!(
            "waited for {}: {}\n",
            tasks(usize::try_from(total).unwrap_or(usize::MAX)),
            counts.join(", ")
        )
    };
    Outcome {
        stdout,
        exit: if notes.is_empty() {
            Exit::Success
        } else {
            Exit::Failure
        },
        stderr: capped(notes, NOTES),
    }
}

/// Why a task that ended before a `wait -a` counts against success.
fn earlier_note(info: &TaskInfo) -> String {
    match (&info.state, &info.error) {
        (TaskState::Failed, Some(error)) => format!(
            "task {} had already failed: {}: {}",
            info.id, error.kind, error.message
        ),
        (TaskState::Killed, _) => format!("task {} had already been killed", info.id),
        (state, _) => format!("task {} had already ended {state}", info.id),
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

mod logs;
mod progress;
mod purge;

#[cfg(test)]
mod control_tests;
#[cfg(test)]
mod tests;
