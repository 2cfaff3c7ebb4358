//! Tables for people: the task list, one task in full, and the worker list (comfy-table 8).
//!
//! Used by `commands`. Tables fit the terminal's width when stdout is one (comfy-table wraps
//! cells) and keep whole lines when piped; no colours are used, so nothing leaks into a pipe.
//! Long arguments and results are cut here, since `task show` and `--json` give them in full.

use crate::time;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, ContentArrangement, Table};
use serde_json::Value;
use tatzelwurm_proto::actioner::WorkerInfo;
use tatzelwurm_proto::task::{TaskInfo, TaskState, Timestamp};

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
            info.spec.function.clone(),
            shorten(&arguments(info), ARGS_WIDTH),
            info.worker.clone().unwrap_or_default(),
            info.attempts.to_string(),
            time::utc(info.created_at),
            took(info, now),
            shorten(&result_or_error(info), RESULT_WIDTH),
        ]);
    }
    align_right(&mut table, &[0, 5]);
    table
}

/// One task in full as `field | value` rows, followed by its traceback and output verbatim
/// (they are too long and too line-oriented for a cell).
pub fn task_detail(info: &TaskInfo, now: Timestamp) -> String {
    let mut table = new_table(&["field", "value"]);
    let optional_time = |at: Option<Timestamp>| at.map(time::utc).unwrap_or_default();
    let rows: Vec<(&str, String)> = vec![
        ("id", info.id.to_string()),
        ("state", info.state.to_string()),
        ("function", info.spec.function.clone()),
        ("args", info.spec.args.clone()),
        ("kwargs", info.spec.kwargs.clone()),
        ("worker", info.worker.clone().unwrap_or_default()),
        ("attempts", info.attempts.to_string()),
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

/// The worker list: one row per connected worker.
pub fn worker_list(workers: &[WorkerInfo]) -> Table {
    let mut table = new_table(&[
        "id",
        "name",
        "address",
        "slots",
        "running",
        "done",
        "python",
        "connected (UTC)",
    ]);
    for worker in workers {
        table.add_row(vec![
            worker.id.to_string(),
            worker.name.clone(),
            worker.address.clone(),
            worker.slots.to_string(),
            worker.running.to_string(),
            worker.done.to_string(),
            worker.python.clone(),
            time::utc(worker.connected_at),
        ]);
    }
    align_right(&mut table, &[0, 3, 4, 5]);
    table
}

fn new_table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    table
}

fn align_right(table: &mut Table, columns: &[usize]) {
    for &index in columns {
        if let Some(column) = table.column_mut(index) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
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

fn result_or_error(info: &TaskInfo) -> String {
    match (&info.result, &info.error) {
        (Some(result), _) if info.state == TaskState::Completed => result.clone(),
        (_, Some(_)) => error_line(info),
        _ => String::new(),
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
fn shorten(text: &str, max: usize) -> String {
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
    use crate::fake_coordinator::{shown_task, task};
    use tatzelwurm_proto::WorkerId;

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
        let text = task_detail(&info, Timestamp(0));
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

    /// The worker list shows every column.
    #[test]
    fn worker_list_cells() {
        let worker = WorkerInfo {
            id: WorkerId(7),
            name: "box:99".into(),
            address: "10.0.0.2:5000".into(),
            slots: 4,
            running: 3,
            done: 1234,
            python: "3.12.1".into(),
            connected_at: Timestamp(1_795_484_412_000),
        };
        let text = render(worker_list(&[worker]));
        for cell in [
            "box:99",
            "10.0.0.2:5000",
            "1234",
            "3.12.1",
            "2026-11-24 01:40:12",
            "connected (UTC)",
        ] {
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
