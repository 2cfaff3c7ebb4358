//! Tables for people: the task list, one task in full, and the worker list (comfy-table 8);
//! the queue and schedule tables are in `queues` and `schedules`, the worker list's usage cells
//! in `usage`, and the event log's lines (not a table) in `events`.
//!
//! Used by `commands`. Tables fit the terminal's width when stdout is one (comfy-table wraps
//! cells) and keep whole lines when piped; no colours are used, so nothing leaks into a pipe.
//! Long arguments and results are cut here, since `task show` and `--json` give them in full.

use crate::{output, time};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, ContentArrangement, Table};
use serde_json::Value;
use tatzelwurm_proto::actioner::WorkerInfo;
use tatzelwurm_proto::task::{TaskInfo, TaskPolicy, TaskState, Timestamp};
use tatzelwurm_proto::TaskId;

mod events;
mod queues;
mod schedules;
mod usage;

pub use events::event_line;
pub use queues::queue_list;
pub use schedules::{schedule_detail, schedule_list};

/// How many characters of arguments a list row shows.
const ARGS_WIDTH: usize = 40;
/// How many characters of a result or an error a list row shows.
const RESULT_WIDTH: usize = 50;

/// The task list: one row per task, with short arguments and a short result or error. `now`
/// measures how long running tasks have been running.
pub fn task_list(tasks: &[TaskInfo], now: Timestamp) -> Table {
    let mut table = new_table(&[
        "id",
        "state",
        "queue",
        "function",
        "args",
        "worker",
        "attempts",
        "created (UTC)",
        "took",
        "result / error",
    ]);
    for info in tasks {
        table.add_row(vec![
            info.id.to_string(),
            info.state.to_string(),
            info.spec.queue.clone(),
            info.spec.function.clone(),
            shorten(&arguments(info), ARGS_WIDTH),
            info.worker.clone().unwrap_or_default(),
            attempts(info),
            time::utc(info.created_at),
            took(info, now),
            shorten(&result_or_error(info, now), RESULT_WIDTH),
        ]);
    }
    align_right(&mut table, &[0, 6]);
    table
}

/// One task in full as `field | value` rows, followed by its traceback and output verbatim
/// (they are too long and too line-oriented for a cell). `pending` holds, for a blocked task,
/// the tasks it runs after that have not completed yet, with their states, when known.
pub fn task_detail(
    info: &TaskInfo,
    now: Timestamp,
    pending: Option<&[(TaskId, TaskState)]>,
) -> String {
    let mut table = new_table(&["field", "value"]);
    let optional_time = |at: Option<Timestamp>| at.map(time::utc).unwrap_or_default();
    let mut rows: Vec<(&str, String)> = vec![
        ("id", info.id.to_string()),
        ("state", info.state.to_string()),
        ("function", info.spec.function.clone()),
        ("args", info.spec.args.clone()),
        ("kwargs", info.spec.kwargs.clone()),
        ("queue", info.spec.queue.clone()),
        ("priority", priority(info.spec.priority)),
        ("worker", info.worker.clone().unwrap_or_default()),
        ("attempts", info.attempts.to_string()),
        ("failures", info.failures.to_string()),
        ("crashes", info.crashes.to_string()),
        ("policy", policy(&info.spec.policy)),
        ("created (UTC)", time::utc(info.created_at)),
        ("started (UTC)", optional_time(info.started_at)),
        ("finished (UTC)", optional_time(info.finished_at)),
        ("took", took(info, now)),
        (
            "result",
            info.result.as_deref().map(pretty).unwrap_or_default(),
        ),
        ("error", error_line(info)),
    ];
    let mut early: Vec<(&str, String)> = Vec::new();
    if let Some(at) = output::run_at(info) {
        early.push(("run at", time::moment(at, now)));
    }
    if !info.spec.after.is_empty() {
        early.push(("after", id_list(&info.spec.after)));
    }
    if let (TaskState::Blocked, Some(pending)) = (info.state, pending) {
        early.push(("waiting for", waiting_for(pending)));
    }
    let at = rows
        .iter()
        .position(|(field, _)| *field == "worker")
        .unwrap_or(rows.len());
    for (offset, row) in early.into_iter().enumerate() {
        rows.insert(at + offset, row);
    }
    if let Some(due) = info.retry_at {
        // Only a waiting task has a retry due; the row would be noise on the others.
        let at = rows
            .iter()
            .position(|(field, _)| *field == "took")
            .unwrap_or(0);
        rows.insert(at, ("retry at (UTC)", retry_at(due, now)));
    }
    for (field, value) in rows {
        table.add_row(vec![field.to_string(), value]);
    }
    let mut text = format!("{table}\n");
    if let Some(error) = &info.error {
        section(&mut text, "traceback", &error.traceback);
    }
    if let Some(output) = &info.output {
        section(&mut text, "stdout", &output.stdout);
        section(&mut text, "stderr", &output.stderr);
    }
    text
}

/// The worker list: one row per connected worker. `running` is what it holds (its load);
/// `queued`, of those, the ones handed ahead of a free slot (prefetch) that no slot has started;
/// `queues`, the queues it serves; `rss` and `cpu`, what its slots use together (as it last
/// measured; empty until it has); `uptime`, since it connected (`now` is when the list is
/// shown); `mem limit`, its `--max-memory` and how often it acted.
pub fn worker_list(workers: &[WorkerInfo], now: Timestamp) -> Table {
    let mut table = new_table(&[
        "id",
        "name",
        "address",
        "slots",
        "running",
        "queued",
        "done",
        "rss",
        "cpu",
        "mem limit",
        "queues",
        "python",
        "connected (UTC)",
        "uptime",
        "state",
    ]);
    for worker in workers {
        table.add_row(vec![
            worker.id.to_string(),
            worker.name.clone(),
            worker.address.clone(),
            worker.slots.to_string(),
            worker.running.to_string(),
            worker.queued.to_string(),
            worker.done.to_string(),
            usage::rss(worker),
            usage::cpu(worker),
            usage::memory_limit(worker),
            worker.queues.join(", "),
            worker.python.clone(),
            time::utc(worker.connected_at),
            usage::uptime(worker, now),
            output::worker_state(worker).to_string(),
        ]);
    }
    align_right(&mut table, &[0, 3, 4, 5, 6, 7, 8, 13]);
    table
}

/// A priority with the rule it follows: `0 (default; higher runs first)`, `10 (default 0;
/// higher runs first)`.
fn priority(priority: i8) -> String {
    match priority {
        0 => "0 (default; higher runs first)".into(),
        n => format!("{n} (default 0; higher runs first)"),
    }
}

/// Task ids as `1, 2, 3`, at most 20 of them, then how many more.
fn id_list(ids: &[TaskId]) -> String {
    let shown: Vec<String> = ids.iter().map(TaskId::to_string).collect();
    crate::commands::capped(shown, 20).join(", ")
}

/// The dependencies a blocked task still waits for: `2 (running), 5 (ready)`.
fn waiting_for(pending: &[(TaskId, TaskState)]) -> String {
    if pending.is_empty() {
        return "none (it moves on at once)".into();
    }
    let shown: Vec<String> = pending
        .iter()
        .map(|(id, state)| format!("{id} ({state})"))
        .collect();
    crate::commands::capped(shown, 20).join(", ")
}

pub(crate) fn new_table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    table
}

pub(crate) fn align_right(table: &mut Table, columns: &[usize]) {
    for &index in columns {
        if let Some(column) = table.column_mut(index) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// Hand-outs, with the failed and lost ones in brackets when there are any, so that retries show:
/// `3 (2 failed)`, `2 (1 lost)`, `1`.
fn attempts(info: &TaskInfo) -> String {
    let mut why = Vec::new();
    if info.failures > 0 {
        why.push(format!("{} failed", info.failures));
    }
    if info.crashes > 0 {
        why.push(format!("{} lost", info.crashes));
    }
    if why.is_empty() {
        info.attempts.to_string()
    } else {
        format!("{} ({})", info.attempts, why.join(", "))
    }
}

/// A policy in one line, leaving out what cannot apply (a backoff without retries, a crash
/// limit for an at-most-once task): `at-least-once, 3 retries (backoff 1s), timeout 2.5s,
/// crash limit 5`.
fn policy(policy: &TaskPolicy) -> String {
    let mode = if policy.at_most_once {
        "at-most-once"
    } else {
        "at-least-once"
    };
    let retries = match policy.retries {
        0 => "no retries".to_string(),
        1 => format!("1 retry (backoff {})", time::seconds(policy.backoff_ms)),
        n => format!("{n} retries (backoff {})", time::seconds(policy.backoff_ms)),
    };
    let timeout = policy.timeout_ms.map_or("no timeout".to_string(), |ms| {
        format!("timeout {}", time::seconds(ms))
    });
    let mut parts = vec![mode.to_string(), retries, timeout];
    if !policy.at_most_once {
        parts.push(format!("crash limit {}", policy.crash_limit));
    }
    parts.join(", ")
}

/// When a waiting task's retry is due, and how far away that is: `2026-11-24 02:10:03 (in 1.2s)`.
fn retry_at(due: Timestamp, now: Timestamp) -> String {
    let when = if due > now {
        format!("in {}", time::duration(now, due))
    } else {
        "due now".to_string()
    };
    format!("{} ({when})", time::utc(due))
}

/// Positional arguments, followed by the keyword arguments when there are any.
fn arguments(info: &TaskInfo) -> String {
    if info.spec.kwargs == "{}" {
        info.spec.args.clone()
    } else {
        format!("{} {}", info.spec.args, info.spec.kwargs)
    }
}

/// How long the latest attempt took, or has been running (marked with `…`).
fn took(info: &TaskInfo, now: Timestamp) -> String {
    match (info.started_at, info.finished_at) {
        (Some(started), Some(finished)) => time::duration(started, finished),
        (Some(started), None) if info.state == TaskState::Running => {
            format!("{}…", time::duration(started, now))
        }
        _ => String::new(),
    }
}

/// The last column of the list: the result or error of a finished task, and for a task that
/// waits to start, what it waits for (`runs in 4m 30s`, `after 1, 2`).
fn result_or_error(info: &TaskInfo, now: Timestamp) -> String {
    match (&info.result, &info.error) {
        (Some(result), _) if info.state == TaskState::Completed => result.clone(),
        (_, Some(_)) => error_line(info),
        _ => match (info.state, output::run_at(info)) {
            (TaskState::Blocked, _) => format!("after {}", id_list(&info.spec.after)),
            (TaskState::Scheduled, Some(at)) => format!("runs {}", time::relative(at, now)),
            _ => String::new(),
        },
    }
}

/// `Type: message` of a task's error, or nothing.
fn error_line(info: &TaskInfo) -> String {
    match &info.error {
        Some(error) if error.message.is_empty() => error.kind.clone(),
        Some(error) => format!("{}: {}", error.kind, error.message),
        None => String::new(),
    }
}

/// JSON text indented for reading; text that is not JSON is shown as it is.
fn pretty(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|value| serde_json::to_string_pretty(&value).ok())
        .unwrap_or_else(|| text.to_string())
}

/// At most `max` characters on one line, with `…` where something was cut.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    let one_line = text.replace(['\n', '\r'], " ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Appends a titled block of text, unless it is empty.
fn section(text: &mut String, title: &str, body: &str) {
    if body.is_empty() {
        return;
    }
    text.push_str(&format!("── {title} ──\n{body}"));
    if !body.ends_with('\n') {
        text.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tatzelwurm_client::fake_coordinator::{shown_task, task};
    use tatzelwurm_proto::{Attempt, WorkerId};

    fn render(mut table: Table) -> String {
        table.force_no_tty();
        table.to_string()
    }

    /// A list row shows the state, the short arguments, the time, the duration and the error.
    #[test]
    fn task_list_cells() {
        let tasks = vec![task(1, TaskState::Completed), task(2, TaskState::Failed)];
        let text = render(task_list(&tasks, Timestamp(0)));
        for cell in [
            "result / error",
            "completed",
            "examples.words:count",
            r#"["a b c", 2] {"lower":true}"#,
            "host:42",
            "2026-11-24 01:40:12",
            "1.2s",
            r#"{"words":3}"#,
            "ValueError: bad value",
        ] {
            assert!(text.contains(cell), "missing {cell:?} in\n{text}");
        }
    }

    /// A running task shows how long it has run so far; long arguments are cut.
    #[test]
    fn running_and_long_cells() {
        let mut info = task(3, TaskState::Running);
        info.spec.args = format!("[\"{}\"]", "x".repeat(100));
        let now = Timestamp(info.started_at.unwrap().0 + 2_500);
        let text = render(task_list(&[info], now));
        assert!(text.contains("2.5s…"), "{text}");
        assert!(!text.contains(&"x".repeat(60)), "{text}");
        assert!(text.contains("xxx…"), "{text}");
    }

    /// The detail view has every field, the full traceback and the captured output.
    #[test]
    fn task_detail_is_complete() {
        let info = shown_task(4, TaskState::Failed);
        let text = task_detail(&info, Timestamp(0), None);
        for part in [
            "finished (UTC)",
            "2026-11-24 01:40:14",
            "ValueError: bad value",
            "── traceback ──\nTraceback (most recent call last):\n  File \"x.py\", line 1\nValueError: bad value\n",
            "── stdout ──\ncounting\n",
            "── stderr ──\nwarning: slow\n",
        ] {
            assert!(text.contains(part), "missing {part:?} in\n{text}");
        }
    }

    /// A waiting task shows its state and, in the attempts cell, how many attempts failed or
    /// were lost; a task without either shows the bare count.
    #[test]
    fn retries_show_in_the_list() {
        let mut waiting = task(5, TaskState::Waiting);
        waiting.attempts = Attempt(3);
        waiting.failures = 2;
        waiting.crashes = 1;
        let text = render(task_list(
            &[waiting, task(6, TaskState::Running)],
            Timestamp(0),
        ));
        for cell in ["waiting", "3 (2 failed, 1 lost)", "ValueError: bad value"] {
            assert!(text.contains(cell), "missing {cell:?} in\n{text}");
        }
        let mut lost = task(7, TaskState::Ready);
        lost.attempts = Attempt(2);
        lost.crashes = 2;
        assert_eq!(attempts(&lost), "2 (2 lost)");
        assert_eq!(attempts(&task(8, TaskState::Completed)), "1");
    }

    /// The detail of a waiting task has its policy, its counters and when its retry is due.
    #[test]
    fn waiting_detail_shows_policy_and_retry() {
        let mut info = task(5, TaskState::Waiting);
        info.crashes = 1;
        info.spec.policy = TaskPolicy {
            retries: 3,
            timeout_ms: Some(2_500),
            ..TaskPolicy::default()
        };
        let due = info.retry_at.unwrap();
        let text = task_detail(&info, Timestamp(due.0 - 1_200), None);
        for part in [
            "│ policy ",
            "at-least-once, 3 retries (backoff 1s), timeout 2.5s, crash limit 5",
            "│ failures ",
            "│ crashes ",
            "retry at (UTC)",
            "2026-11-24 01:40:16 (in 1.2s)",
        ] {
            assert!(text.contains(part), "missing {part:?} in\n{text}");
        }
        assert!(task_detail(&info, due, None).contains("01:40:16 (due now)"));
        let done = task_detail(&task(6, TaskState::Completed), Timestamp(0), None);
        assert!(!done.contains("retry at"), "{done}");
        assert!(done.contains("at-least-once, no retries, no timeout, crash limit 5"));
    }

    /// A scheduled task shows its queue, priority and start time with how far it is; a blocked
    /// one its dependencies and those still pending; the list says what each waits for.
    #[test]
    fn waiting_to_start_shows_why() {
        let mut scheduled = task(9, TaskState::Scheduled);
        scheduled.spec.queue = "gpu".into();
        scheduled.spec.priority = 10;
        let now = Timestamp(1_795_484_442_000);
        let text = task_detail(&scheduled, now, None);
        for part in [
            "│ queue ",
            "gpu",
            "10 (default 0; higher runs first)",
            "│ run at ",
            "2026-11-24 01:45:12 UTC (in 4m 30s)",
        ] {
            assert!(text.contains(part), "missing {part:?} in\n{text}");
        }
        let blocked = task(10, TaskState::Blocked);
        let pending = [(TaskId(2), TaskState::Running)];
        let text = task_detail(&blocked, now, Some(&pending));
        for part in ["│ after ", "1, 2", "│ waiting for ", "2 (running)"] {
            assert!(text.contains(part), "missing {part:?} in\n{text}");
        }
        let listed = render(task_list(&[scheduled, blocked], now));
        for cell in [
            "runs in 4m 30s",
            "after 1, 2",
            "gpu",
            "scheduled",
            "blocked",
        ] {
            assert!(listed.contains(cell), "missing {cell:?} in\n{listed}");
        }
    }

    /// An at-most-once policy leaves out the crash limit, which cannot apply to it.
    #[test]
    fn at_most_once_policy_line() {
        let line = policy(&TaskPolicy {
            at_most_once: true,
            retries: 1,
            backoff_ms: 250,
            ..TaskPolicy::default()
        });
        assert_eq!(line, "at-most-once, 1 retry (backoff 0.25s), no timeout");
    }

    /// The worker list shows every column.
    #[test]
    fn worker_list_cells() {
        let worker = WorkerInfo {
            usage: None,
            id: WorkerId(7),
            name: "box:99".into(),
            address: "10.0.0.2:5000".into(),
            slots: 4,
            running: 3,
            queued: 1,
            done: 1234,
            python: "3.12.1".into(),
            connected_at: Timestamp(1_795_484_412_000),
            draining: false,
            held_off_until: None,
            queues: vec!["default".into()],
            async_concurrency: 1,
        };
        let text = render(worker_list(
            std::slice::from_ref(&worker),
            Timestamp(1_795_484_537_000),
        ));
        for cell in [
            "uptime",
            "2m05s",
            "rss",
            "mem limit",
            "box:99",
            "10.0.0.2:5000",
            "1234",
            "3.12.1",
            "2026-11-24 01:40:12",
            "connected (UTC)",
            "queued",
            "active",
            "queues",
            "default",
        ] {
            assert!(text.contains(cell), "missing {cell:?} in\n{text}");
        }
        let mut measured = worker;
        measured.usage = Some(tatzelwurm_proto::worker::WorkerUsage {
            at: Timestamp(1_795_484_530_000),
            slots: vec![
                tatzelwurm_proto::worker::SlotUsage {
                    pid: 10,
                    rss: 300 << 20,
                    cpu_permille: 1000,
                    running: 1,
                },
                tatzelwurm_proto::worker::SlotUsage {
                    pid: 11,
                    rss: 112 << 20,
                    cpu_permille: 354,
                    running: 1,
                },
            ],
            max_memory: Some(1 << 30),
            memory_replaced: 2,
            memory_killed: 1,
        });
        let text = render(worker_list(&[measured], Timestamp(0)));
        for cell in ["412 MiB", "135%", "1.00 GiB (2 replaced, 1 killed)"] {
            assert!(text.contains(cell), "missing {cell:?} in\n{text}");
        }
    }

    /// Shortening counts characters, not bytes, and flattens lines.
    #[test]
    fn shorten_is_char_safe() {
        assert_eq!(shorten("äöü", 3), "äöü");
        assert_eq!(shorten("äöüß", 3), "äö…");
        assert_eq!(shorten("a\nb", 10), "a b");
    }
}
