//! Tests of slot.py's fast path with real `python3` slots: what its per-task shortcuts (the task
//! id written in place in the C environment, one poll per task for output and workwurm's frames,
//! see `TaskEnviron` and `Capture.watch` in slot.py) must never change, for tasks handed to a
//! slot several at a time, back to back.

use super::tests::{completed, next, python_command, run_one, task, PATIENCE};
use super::*;
use tatzelwurm_proto::worker::Report;

/// A module of task functions in a temporary directory, run as `path/to/file.py:function`.
fn module(source: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fast_path.py");
    std::fs::write(&path, source).unwrap();
    (dir, path.display().to_string())
}

const SOURCE: &str = r#"
import ctypes, os, subprocess, sys

_getenv = ctypes.CDLL(None).getenv
_getenv.restype = ctypes.c_char_p

def ids():
    """The task id as Python, C and a child process see it, and the attempt."""
    child = subprocess.run(["sh", "-c", "echo $TATZELWURM_TASK_ID"], capture_output=True, text=True)
    c = _getenv(b"TATZELWURM_TASK_ID")
    return [os.environ["TATZELWURM_TASK_ID"], c.decode() if c else None, child.stdout.strip(),
            os.environ["TATZELWURM_ATTEMPT"]]

def set_id(value):
    """A task that changes its own task id through os.environ (or removes it, for None)."""
    if value is None:
        del os.environ["TATZELWURM_TASK_ID"]
    else:
        os.environ["TATZELWURM_TASK_ID"] = value
    return ids() if value is not None else None

def quiet(x):
    return x

def say(how):
    if how == "print":
        print("printed")
    elif how == "partial":
        sys.stdout.write("no newline")
    elif how == "fd2":
        os.write(2, b"straight to fd 2\n")
    elif how == "child":
        subprocess.run(["sh", "-c", "echo from a child; echo child err >&2"], check=True)
    elif how == "libc":
        ctypes.CDLL(None).printf(b"from C, buffered")
    return how
"#;

/// Hands `tasks` to the pool at once and collects their reports in the order they end; their
/// functions must have run here once (known fast), so that they reach the slot several at a time.
async fn run_together(
    slots: &SlotsHandle,
    reports: &mut mpsc::UnboundedReceiver<News>,
    tasks: Vec<Assignment>,
) -> Vec<Report> {
    let count = tasks.len();
    slots.run(tasks).await;
    let mut out = Vec::new();
    for _ in 0..count {
        out.push(tokio::time::timeout(PATIENCE, next(reports)).await.unwrap());
    }
    out
}

/// Every task of a hand sees its own id in os.environ, in C's environment and in a child
/// process, also after a task changed or removed the variable itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_task_of_a_hand_sees_its_own_id_everywhere() {
    let (_dir, path) = module(SOURCE);
    let (slots, mut reports) = SlotsHandle::start(python_command(), 1, 1);
    let warm = run_one(&slots, &mut reports, task(1, &format!("{path}:ids"), "[]")).await;
    assert_eq!(completed(&warm), r#"["1","1","1","1"]"#);
    let ids = format!("{path}:ids");
    let set_id = format!("{path}:set_id");
    let mut hand = vec![
        task(20, &ids, "[]"),
        task(12345678901234, &ids, "[]"),
        task(3, &set_id, r#"["mine"]"#),
        task(4, &ids, "[]"),
        task(5, &set_id, "[null]"),
        task(6, &ids, "[]"),
    ];
    hand[1].attempt = Attempt(2);
    let done = run_together(&slots, &mut reports, hand).await;
    let results: Vec<(u64, &str)> = done.iter().map(|r| (r.task.0, completed(r))).collect();
    assert_eq!(
        results,
        [
            (20, r#"["20","20","20","1"]"#),
            (
                12345678901234,
                r#"["12345678901234","12345678901234","12345678901234","2"]"#
            ),
            (3, r#"["mine","mine","mine","1"]"#),
            (4, r#"["4","4","4","1"]"#),
            (5, "null"),
            (6, r#"["6","6","6","1"]"#),
        ]
    );
    slots.shutdown().await;
}

/// What a task writes, through Python, straight to the fd, from a child process, or into libc's
/// buffer, is its own: in its report, and not in the report of the quiet task after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_belongs_to_the_task_that_wrote_it_in_a_hand() {
    let (_dir, path) = module(SOURCE);
    let (slots, mut reports) = SlotsHandle::start(python_command(), 1, 1);
    let (say, quiet) = (format!("{path}:say"), format!("{path}:quiet"));
    run_one(&slots, &mut reports, task(1, &say, r#"["none"]"#)).await;
    run_one(&slots, &mut reports, task(2, &quiet, "[0]")).await;
    let kinds = ["print", "partial", "fd2", "child", "libc", "none"];
    let mut hand = Vec::new();
    for (i, how) in kinds.iter().enumerate() {
        let id = 10 + 2 * i as u64;
        hand.push(task(id, &say, &format!(r#"["{how}"]"#)));
        hand.push(task(id + 1, &quiet, "[0]"));
    }
    let done = run_together(&slots, &mut reports, hand).await;
    let outputs: Vec<(u64, &str, &str)> = done
        .iter()
        .map(|r| (r.task.0, r.output.stdout.as_str(), r.output.stderr.as_str()))
        .collect();
    let mut expected = Vec::new();
    let written = [
        ("printed\n", ""),
        ("no newline", ""),
        ("", "straight to fd 2\n"),
        ("from a child\n", "child err\n"),
        ("from C, buffered", ""),
        ("", ""),
    ];
    for (i, (stdout, stderr)) in written.iter().enumerate() {
        let id = 10 + 2 * i as u64;
        expected.push((id, *stdout, *stderr));
        expected.push((id + 1, "", ""));
    }
    assert_eq!(outputs, expected);
    slots.shutdown().await;
}
