//! The queue list for people: one row per queue with its state, its limit, its tasks counted by
//! state and the workers serving it.

use super::{align_right, new_table};
use comfy_table::Table;
use tatzelwurm_proto::queue::QueueInfo;
use tatzelwurm_proto::task::TaskState;

/// The states with a count column, in life order: every state (a queue table is read for
/// where tasks pile up, and any state can be where they do).
const COUNTED: [TaskState; 10] = TaskState::ALL;

/// The queue list: name, `paused`/`active`, the limit (`-` for none), a column per state, and
/// the serving workers (`none` when no worker serves it, so its tasks wait).
pub fn queue_list(queues: &[QueueInfo]) -> Table {
    let mut header = vec!["queue", "dispatch", "limit"];
    header.extend(COUNTED.iter().map(|state| state.as_str()));
    header.push("workers");
    let mut table = new_table(&header);
    for queue in queues {
        let mut row = vec![
            queue.name.clone(),
            if queue.paused { "paused" } else { "active" }.to_string(),
            match queue.limit {
                0 => "-".to_string(),
                n => n.to_string(),
            },
        ];
        row.extend(COUNTED.iter().map(|state| queue.count(*state).to_string()));
        row.push(if queue.workers.is_empty() {
            "none".to_string()
        } else {
            queue.workers.join(", ")
        });
        table.add_row(row);
    }
    let numbers: Vec<usize> = (2..3 + COUNTED.len()).collect();
    align_right(&mut table, &numbers);
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use tatzelwurm_client::fake_coordinator::queue;

    /// Each queue is one row with its state, limit, counts and workers; an empty worker list
    /// reads `none`.
    #[test]
    fn queue_list_cells() {
        let mut gpu = queue("gpu");
        gpu.paused = true;
        gpu.limit = 3;
        gpu.workers.clear();
        let mut table = queue_list(&[queue("default"), gpu]);
        table.force_no_tty();
        let text = table.to_string();
        let header = text.lines().nth(1).unwrap();
        for column in [
            "queue",
            "dispatch",
            "limit",
            "blocked",
            "scheduled",
            "paused",
            "ready",
            "completed",
            "workers",
        ] {
            assert!(header.contains(column), "missing {column:?} in\n{text}");
        }
        let default = text.lines().find(|l| l.contains("default")).unwrap();
        for cell in ["active", "host:42", " - "] {
            assert!(default.contains(cell), "missing {cell:?} in {default}");
        }
        let gpu = text.lines().find(|l| l.contains("gpu")).unwrap();
        for cell in ["paused", " 3 ", "none", " 5 "] {
            assert!(gpu.contains(cell), "missing {cell:?} in {gpu}");
        }
    }
}
