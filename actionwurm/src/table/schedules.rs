//! Schedules for people: the schedule list (one row each) and one schedule in full with its
//! latest tasks.

use super::{align_right, new_table, policy, shorten};
use crate::time;
use comfy_table::Table;
use tatzelwurm_proto::schedule::{ScheduleInfo, Trigger};
use tatzelwurm_proto::task::Timestamp;

/// How many characters of arguments a schedule row shows.
const ARGS_WIDTH: usize = 30;

/// The schedule list: name, trigger, function and arguments, queue, state, next time, how many
/// tasks it added and its latest task.
pub fn schedule_list(schedules: &[ScheduleInfo], now: Timestamp) -> Table {
    let mut table = new_table(&[
        "schedule",
        "trigger",
        "function",
        "args",
        "queue",
        "state",
        "next",
        "fired",
        "last task",
    ]);
    for info in schedules {
        let task = &info.spec.task;
        table.add_row(vec![
            info.spec.name.clone(),
            trigger(&info.spec.trigger),
            task.function.clone(),
            shorten(&task.args, ARGS_WIDTH),
            task.queue.clone(),
            state(info).to_string(),
            next(info, now),
            info.fired.to_string(),
            info.last
                .first()
                .map(|(id, _)| id.to_string())
                .unwrap_or_default(),
        ]);
    }
    align_right(&mut table, &[7, 8]);
    table
}

/// One schedule in full as `field | value` rows, then its latest tasks (id and when each was
/// added), newest first.
pub fn schedule_detail(info: &ScheduleInfo, now: Timestamp) -> String {
    let task = &info.spec.task;
    let mut table = new_table(&["field", "value"]);
    for (field, value) in [
        ("name", info.spec.name.clone()),
        ("trigger", trigger(&info.spec.trigger)),
        ("state", state(info).to_string()),
        ("next", next(info, now)),
        ("function", task.function.clone()),
        ("args", task.args.clone()),
        ("kwargs", task.kwargs.clone()),
        ("queue", task.queue.clone()),
        ("priority", task.priority.to_string()),
        ("policy", policy(&task.policy)),
        ("created (UTC)", time::utc(info.created_at)),
        ("fired", info.fired.to_string()),
    ] {
        table.add_row(vec![field.to_string(), value]);
    }
    let mut text = format!("{table}\n");
    if !info.last.is_empty() {
        let mut last = new_table(&["task", "added (UTC)"]);
        for (id, at) in &info.last {
            last.add_row(vec![
                id.to_string(),
                format!("{} ({})", time::utc(*at), time::relative(*at, now)),
            ]);
        }
        align_right(&mut last, &[0]);
        text.push_str(&format!("latest tasks, newest first:\n{last}\n"));
    }
    text
}

/// `every 5m`, or `cron */5 * * * * (UTC)` with its zone.
fn trigger(trigger: &Trigger) -> String {
    match trigger {
        Trigger::Every(millis) => format!("every {}", time::span(*millis)),
        Trigger::Cron { line, tz } => {
            format!("cron {line} ({})", tz.as_deref().unwrap_or("UTC"))
        }
    }
}

fn state(info: &ScheduleInfo) -> &'static str {
    if info.paused {
        "paused"
    } else {
        "active"
    }
}

/// When it fires next, or why it does not.
fn next(info: &ScheduleInfo, now: Timestamp) -> String {
    match info.next_at {
        Some(at) => time::moment(at, now),
        None if info.paused => "(paused)".into(),
        None => "never (the cron line has no time left)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tatzelwurm_client::fake_coordinator::schedule;

    fn render(mut table: Table) -> String {
        table.force_no_tty();
        table.to_string()
    }

    /// A row shows the trigger as typed, the state, the next time with how far it is, the
    /// count and the latest task.
    #[test]
    fn schedule_list_cells() {
        let mut cron = schedule("hourly");
        cron.spec.trigger = Trigger::Cron {
            line: "0 * * * *".into(),
            tz: Some("Europe/Berlin".into()),
        };
        cron.paused = true;
        cron.next_at = None;
        let now = Timestamp(1_795_484_742_000);
        let text = render(schedule_list(&[schedule("nightly"), cron], now));
        for cell in [
            "nightly",
            "every 5m",
            "examples.words:count",
            "2026-11-24 01:50:12 UTC (in 4m 30s)",
            "active",
            "cron 0 * * * * (Europe/Berlin)",
            "paused",
            "(paused)",
        ] {
            assert!(text.contains(cell), "missing {cell:?} in\n{text}");
        }
        let row = text.lines().find(|l| l.contains("nightly")).unwrap();
        assert!(row.contains(" 2 ") && row.contains(" 8 "), "{row}");
    }

    /// The detail lists the latest tasks with their times, newest first.
    #[test]
    fn schedule_detail_lists_the_latest_tasks() {
        let now = Timestamp(1_795_484_742_000);
        let text = schedule_detail(&schedule("nightly"), now);
        for part in [
            "every 5m",
            "at-least-once, no retries",
            "latest tasks, newest first:",
            "2026-11-24 01:45:12 (30s ago)",
            "2026-11-24 01:40:12 (5m 30s ago)",
        ] {
            assert!(text.contains(part), "missing {part:?} in\n{text}");
        }
        let eight = text.find("│    8 ┆").expect(&text);
        let seven = text.find("│    7 ┆").expect(&text);
        assert!(eight < seven, "{text}");
    }
}
