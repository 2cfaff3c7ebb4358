//! A task that prints megabytes to stdout and stderr completes, and `task show` keeps the tail
//! of what it printed without disturbing the worker.

use crate::TASK_TIMEOUT;
use tatzelwurm_e2e::{example, Cluster, WorkerSpec};

/// How much the task prints to each stream.
const BYTES: u64 = 3_000_000;

/// A task printing 3 MB to each of stdout and stderr completes, and `task show --json` has the
/// tail of both, ending with the task's last line.
#[test]
fn a_task_printing_megabytes_completes_and_its_output_tail_is_kept() {
    let cluster = Cluster::start();
    let _worker = cluster.start_worker(WorkerSpec::new(1));
    let id = cluster.add(&example("shout"), &format!("[{BYTES}]"));
    let task = cluster.wait_completed(id, TASK_TIMEOUT * 2);
    for stream in ["stdout", "stderr"] {
        let written = task["result"][stream]
            .as_u64()
            .expect("shout returns counts");
        assert!(written >= BYTES, "{stream}: {written} bytes written");
        let kept = task[stream]
            .as_str()
            .unwrap_or_else(|| panic!("task show --json has no {stream}"));
        let end = format!("shout: end of {stream}");
        assert!(
            kept.trim_end().ends_with(&end),
            "{stream} should end with `{end}`, ends with {:?}",
            last_chars(kept, 200)
        );
        assert!(kept.contains(&format!("{stream} line ")), "{stream} tail");
    }
    let next = cluster.add(&example("square"), "[8]");
    assert_eq!(cluster.wait_completed(next, TASK_TIMEOUT)["result"], 64);
}

fn last_chars(text: &str, n: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    chars[chars.len().saturating_sub(n)..].iter().collect()
}
