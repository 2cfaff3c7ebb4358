//! A task that prints megabytes to stdout and stderr completes, and `task show` keeps the tail
//! of what it printed without disturbing the worker; what a task printed is kept when it is
//! killed, and across a coordinator restart; what C code prints is its task's output.

use crate::TASK_TIMEOUT;
use serde_json::json;
use tatzelwurm_e2e::{example, fixture, wait_until, Cluster, Stop, WorkerSpec};

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

/// What a task printed before `task kill` is shown with the killed task, and what a completed
/// task printed is still shown after the coordinator restarts on the same database.
#[test]
fn output_is_kept_for_killed_tasks_and_across_a_restart() {
    let mut cluster = Cluster::start();
    let _worker = cluster.start_worker(WorkerSpec::new(1));
    let marker = cluster.dir().join("printed");
    let args = json!(["before the kill", marker, 3600]).to_string();
    let killed = cluster.add(&fixture("print_then_sleep"), &args);
    wait_until("the task to print", TASK_TIMEOUT, || marker.exists());
    cluster.action(&["task", "kill", &killed.to_string()]).ok();
    let shown = cluster.wait_finished(killed, TASK_TIMEOUT);
    assert_eq!(shown["state"], "killed", "{shown}");
    // The worker's confirmation of the kill brings the output, after the state changed.
    wait_until("the killed task's output", TASK_TIMEOUT, || {
        cluster.show(killed)["stdout"] == "before the kill\n"
    });
    assert_eq!(cluster.show(killed)["stderr"], "before the kill\n");

    let args = json!(["kept", cluster.dir().join("kept"), 0]).to_string();
    let printed = cluster.add(&fixture("print_then_sleep"), &args);
    cluster.wait_completed(printed, TASK_TIMEOUT);
    cluster.restart_coordinator(Stop::Kill);
    let task = cluster.show(printed);
    for stream in ["stdout", "stderr"] {
        assert_eq!(task[stream], "kept\n", "{stream} after a restart: {task}");
    }
}

/// What C code prints through libc's stdout (no newline, no fflush) is the output of the task
/// that printed it, not of the next one.
#[test]
fn what_c_code_prints_is_its_tasks_output() {
    let cluster = Cluster::start();
    let _worker = cluster.start_worker(WorkerSpec::new(1));
    let printed = cluster.add(&fixture("c_printf"), r#"["from C"]"#);
    assert_eq!(
        cluster.wait_completed(printed, TASK_TIMEOUT)["stdout"],
        "from C"
    );
    let next = cluster.add(&example("square"), "[8]");
    let task = cluster.wait_completed(next, TASK_TIMEOUT);
    assert_eq!(task["result"], 64);
    assert_eq!(task["stdout"], "", "{task}");
}

fn last_chars(text: &str, n: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    chars[chars.len().saturating_sub(n)..].iter().collect()
}
