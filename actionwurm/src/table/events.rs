//! The event log as people read it: one line per event, `SEQ  TIME  WHAT`, with the time in
//! UTC to the millisecond. Used by `actionwurm events` without `--json`.

use crate::time;
use tatzelwurm_proto::event::{Event, EventKind};
use tatzelwurm_proto::task::DEFAULT_QUEUE;

/// One event as one line (without the newline): `17  2026-11-24 01:40:12.009  task 4
/// failed: ValueError (attempt 2 on box:12, queue gpu)`.
pub fn event_line(event: &Event) -> String {
    format!(
        "{}  {}  {}",
        event.seq,
        time::utc_millis(event.at),
        what(&event.kind)
    )
}

/// What happened, in words.
fn what(kind: &EventKind) -> String {
    match kind {
        EventKind::Task {
            id,
            queue,
            state,
            attempt,
            worker,
            error,
        } => {
            let mut line = format!("task {id} {state}");
            if let Some(error) = error {
                line.push_str(&format!(": {error}"));
            }
            let mut details = Vec::new();
            if attempt.0 > 0 {
                details.push(match worker {
                    Some(worker) => format!("attempt {attempt} on {worker}"),
                    None => format!("attempt {attempt}"),
                });
            }
            if &**queue != DEFAULT_QUEUE {
                details.push(format!("queue {queue}"));
            }
            if !details.is_empty() {
                line.push_str(&format!(" ({})", details.join(", ")));
            }
            line
        }
        EventKind::Purged { count: 1 } => "purged 1 finished task".into(),
        EventKind::Purged { count } => format!("purged {count} finished tasks"),
        EventKind::Worker { id, name, change } => {
            format!("worker {name} {} (id {id})", change.as_str())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tatzelwurm_proto::event::WorkerChange;
    use tatzelwurm_proto::task::{TaskState, Timestamp};
    use tatzelwurm_proto::{Attempt, TaskId, WorkerId};

    fn event(kind: EventKind) -> Event {
        Event {
            seq: 17,
            at: Timestamp(1_795_484_412_009),
            kind,
        }
    }

    fn task(state: TaskState, attempt: u32, worker: Option<&str>, error: Option<&str>) -> Event {
        event(EventKind::Task {
            id: TaskId(4),
            queue: DEFAULT_QUEUE.into(),
            state,
            attempt: Attempt(attempt),
            worker: worker.map(Into::into),
            error: error.map(String::from),
        })
    }

    /// Each kind of event reads as a short sentence after its seq and time; the default queue,
    /// a zero attempt and a missing worker are left out.
    #[test]
    fn lines() {
        assert_eq!(
            event_line(&task(TaskState::Ready, 0, None, None)),
            "17  2026-11-24 01:40:12.009  task 4 ready"
        );
        assert_eq!(
            event_line(&task(TaskState::Running, 1, Some("box:12"), None)),
            "17  2026-11-24 01:40:12.009  task 4 running (attempt 1 on box:12)"
        );
        let mut failed = task(TaskState::Failed, 2, Some("box:12"), Some("ValueError"));
        if let EventKind::Task { queue, .. } = &mut failed.kind {
            *queue = "gpu".into();
        }
        assert_eq!(
            event_line(&failed),
            "17  2026-11-24 01:40:12.009  task 4 failed: ValueError (attempt 2 on box:12, queue gpu)"
        );
        assert!(event_line(&event(EventKind::Purged { count: 3 }))
            .ends_with("  purged 3 finished tasks"));
        assert!(event_line(&event(EventKind::Purged { count: 1 }))
            .ends_with("  purged 1 finished task"));
        let worker = event(EventKind::Worker {
            id: WorkerId(3),
            name: "box:12".into(),
            change: WorkerChange::Draining,
        });
        assert!(event_line(&worker).ends_with("  worker box:12 draining (id 3)"));
    }
}
