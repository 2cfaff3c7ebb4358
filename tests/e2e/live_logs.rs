//! `task logs ID [--follow]`: a running task's output as it is written (the first lines before
//! the task ends, then the rest, exiting 0 when it finishes), what it has written so far without
//! `--follow`, the kept output of a finished task, a retried task's attempts one after the
//! other, and an unknown id's sentence.
//!
//! The tasks are in a module each test writes into its own directory (`TASKS`). [`raw`] checks
//! the coordinator's side alone over the protocol, with a stand-in worker.

mod raw;

use crate::TASK_TIMEOUT;
use std::path::Path;
use std::process::Command;
use tatzelwurm_e2e::{wait_until, Cluster, Proc, WorkerSpec};

/// The task functions of these tests.
const TASKS: &str = r#"
import os, sys, time

def ticker(gate):
    """Prints a numbered line every 0.3 s until `gate` exists, then one line to each stream."""
    n = 0
    while not os.path.exists(gate):
        print("tick %d" % n, flush=True)
        n += 1
        time.sleep(0.3)
        if n > 1000:
            raise RuntimeError("the gate never opened")
    print("tock", file=sys.stderr, flush=True)
    print("done after %d ticks" % n, flush=True)
    return n

def chatter(lines):
    """Prints `lines` lines to stdout and one to stderr, and returns."""
    for i in range(lines):
        print("line %d" % i)
    print("an error line", file=sys.stderr)
    return lines

def flood(lines, gate):
    """Says it is ready, waits for `gate`, then prints `lines` numbered lines as fast as it can
    and a last line."""
    print("ready", flush=True)
    for _ in range(1200):
        if os.path.exists(gate):
            break
        time.sleep(0.1)
    filler = "x" * 40
    for i in range(lines):
        sys.stdout.write("flood %08d %s\n" % (i, filler))
    print("flood: end", flush=True)
    return lines

def twice(marker, gate):
    """The first attempt prints, waits for `gate` and fails; the second prints and returns."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        print("first attempt here", flush=True)
        for _ in range(1200):
            if os.path.exists(gate):
                break
            time.sleep(0.1)
        raise RuntimeError("the first attempt fails on purpose")
    print("second attempt here", flush=True)
    return "ok"
"#;

/// `FUNC` of `function` in the tasks module written into `dir`.
fn task(dir: &Path, function: &str) -> String {
    let path = dir.join("live_tasks.py");
    if !path.exists() {
        std::fs::write(&path, TASKS).expect("write the tasks module");
    }
    format!("{}:{function}", path.display())
}

/// Starts `actionwurm task logs ID --follow` in the background; its stdout and stderr go to
/// log files the test reads while it runs.
fn follow(cluster: &Cluster, id: u64, name: &str) -> Proc {
    let mut cmd = Command::new(&cluster.bins().actionwurm);
    cmd.env_remove(tatzelwurm_proto::COORDINATOR_ENV)
        .env_remove(tatzelwurm_proto::TOKEN_ENV)
        .args(["--coordinator", cluster.addr(), "task", "logs"])
        .arg(id.to_string())
        .arg("--follow");
    Proc::spawn(name, cmd, &cluster.log_dir(), false).0
}

/// What a background process wrote to its stderr, without the harness's header line.
fn stderr_log(cluster: &Cluster, name: &str) -> String {
    let path = cluster.log_dir().join(format!("{name}.stderr.log"));
    without_header(&std::fs::read_to_string(path).unwrap_or_default())
}

/// A log file's text without the `=== command ===` header the harness writes first.
fn without_header(log: &str) -> String {
    log.lines()
        .filter(|line| !line.starts_with("=== "))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// The numbers of the `tick N` lines in `text`, in order.
fn ticks(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|line| line.strip_prefix("tick "))
        .map(|n| n.trim().parse().expect("a tick number"))
        .collect()
}

/// `task logs --follow` shows a running task's first lines while it still runs, then every
/// line once and in order, the stderr line on stderr, and exits 0 when the task completes;
/// `task logs` without `--follow` meanwhile prints what was written so far and exits 0.
#[test]
fn follow_shows_lines_as_they_are_written() {
    let cluster = Cluster::start();
    let _worker = cluster.start_worker(WorkerSpec::new(1));
    let gate = cluster.dir().join("gate");
    let id = cluster.add(
        &task(cluster.dir(), "ticker"),
        &serde_json::json!([gate]).to_string(),
    );
    cluster.wait_state(id, "running", TASK_TIMEOUT);
    let mut follower = follow(&cluster, id, "follower");

    wait_until("the follower to print tick 3", TASK_TIMEOUT, || {
        ticks(&follower.stdout_log()).contains(&3)
    });
    assert_eq!(
        cluster.show(id)["state"],
        "running",
        "the lines came before the task ended"
    );
    assert!(
        follower.is_running(),
        "the follower waits for the task's end"
    );
    let so_far = cluster.action(&["task", "logs", &id.to_string()]).ok();
    assert!(
        ticks(&so_far.stdout).starts_with(&[0, 1, 2, 3]),
        "{}",
        so_far.stdout
    );

    std::fs::write(&gate, "open").unwrap();
    let status = follower
        .wait_exit(TASK_TIMEOUT)
        .expect("the follower exits when the task finishes");
    assert!(status.success(), "the follower exited with {status}");

    let done = cluster.wait_completed(id, TASK_TIMEOUT);
    let count = done["result"].as_u64().expect("ticker returns its count");
    let stdout = without_header(&follower.stdout_log());
    assert_eq!(
        ticks(&stdout),
        (0..count).collect::<Vec<_>>(),
        "every tick once, in order:\n{stdout}"
    );
    assert!(
        stdout
            .trim_end()
            .ends_with(&format!("done after {count} ticks")),
        "{stdout}"
    );
    assert!(
        stderr_log(&cluster, "follower").contains("tock"),
        "the stderr line goes to stderr"
    );
}

/// `task logs` of a finished task prints its kept output (stdout to stdout, stderr to
/// stderr) and exits 0, with or without `--follow`.
#[test]
fn logs_of_a_finished_task() {
    let cluster = Cluster::start();
    let _worker = cluster.start_worker(WorkerSpec::new(1));
    let id = cluster.add(&task(cluster.dir(), "chatter"), "[5]");
    cluster.wait_completed(id, TASK_TIMEOUT);
    let expected: String = (0..5).map(|i| format!("line {i}\n")).collect();
    for args in [
        vec!["task", "logs", &*id.to_string()],
        vec!["task", "logs", &*id.to_string(), "--follow"],
    ] {
        let logs = cluster.action(&args).ok();
        assert_eq!(logs.stdout, expected, "{args:?}");
        assert!(logs.stderr.contains("an error line"), "{args:?}: {logs}");
    }
}

/// Following a task whose first attempt fails and is retried shows the first attempt's output
/// while it runs, then the second's, each line once, and exits 0 when the second completes.
#[test]
fn follow_a_retried_task() {
    let cluster = Cluster::start();
    let _worker = cluster.start_worker(WorkerSpec::new(1));
    let marker = cluster.dir().join("tried");
    let gate = cluster.dir().join("gate");
    let id = cluster.add_with(
        &task(cluster.dir(), "twice"),
        &serde_json::json!([marker, gate]).to_string(),
        &["--retries", "1", "--backoff", "0.2"],
    );
    let mut follower = follow(&cluster, id, "retried");
    wait_until(
        "the follower to show the first attempt",
        TASK_TIMEOUT,
        || follower.stdout_log().contains("first attempt here"),
    );
    std::fs::write(&gate, "open").unwrap();

    let status = follower
        .wait_exit(TASK_TIMEOUT)
        .expect("the follower exits when the retry completes");
    assert!(status.success(), "the follower exited with {status}");
    let done = cluster.wait_completed(id, TASK_TIMEOUT);
    assert_eq!(done["attempts"], 2, "{done}");
    let stdout = without_header(&follower.stdout_log());
    let first = stdout.find("first attempt here");
    let second = stdout.find("second attempt here");
    assert!(
        matches!((first, second), (Some(a), Some(b)) if a < b),
        "both attempts, in order:\n{stdout}"
    );
    for line in ["first attempt here", "second attempt here"] {
        assert_eq!(stdout.matches(line).count(), 1, "{stdout}");
    }
}

/// Following a task that prints megabytes faster than its worker forwards them: the follower
/// shows the numbered lines in order, none twice, a note wherever it skipped some, and ends
/// with the task's last line; it exits 0.
#[test]
fn follow_a_task_printing_megabytes() {
    const LINES: u64 = 300_000;
    /// `flood 00000042 xxx…`: the prefix, eight digits, a space and forty x.
    const WHOLE_LINE: usize = 6 + 8 + 1 + 40;
    let cluster = Cluster::start();
    let _worker = cluster.start_worker(WorkerSpec::new(1));
    let gate = cluster.dir().join("gate");
    let id = cluster.add(
        &task(cluster.dir(), "flood"),
        &serde_json::json!([LINES, gate]).to_string(),
    );
    let mut follower = follow(&cluster, id, "flooded");
    wait_until(
        "the follower to show the task is ready",
        TASK_TIMEOUT,
        || follower.stdout_log().contains("ready"),
    );
    std::fs::write(&gate, "open").unwrap();
    let status = follower
        .wait_exit(TASK_TIMEOUT * 2)
        .expect("the follower exits when the task completes");
    assert!(status.success(), "the follower exited with {status}");
    cluster.wait_completed(id, TASK_TIMEOUT);

    let stdout = without_header(&follower.stdout_log());
    // Whole lines come in order, none twice, and jump only across a note; a note stands on a
    // line of its own, and the lines either side of it may be cut.
    let lines: Vec<&str> = stdout
        .lines()
        .skip_while(|line| *line != "ready")
        .skip(1)
        .take_while(|line| *line != "flood: end")
        .collect();
    let is_note = |at: usize| {
        lines
            .get(at)
            .is_some_and(|l| l.starts_with("[tatzelwurm: "))
    };
    let mut last: Option<u64> = None;
    let mut notes = 0;
    let mut since_note = false;
    for (at, line) in lines.iter().enumerate() {
        if is_note(at) {
            notes += 1;
            since_note = true;
            continue;
        }
        let whole = line.len() == WHOLE_LINE && line.starts_with("flood ");
        if !whole {
            let beside_note = (at > 0 && is_note(at - 1)) || is_note(at + 1);
            assert!(beside_note, "a cut line only beside a note: {line:?}");
            continue;
        }
        let n: u64 = line[6..14].parse().expect("a line number");
        let next = last.map_or(0, |last| last + 1);
        assert!(n >= next, "line {n} after {last:?}: in order, none twice");
        assert!(
            since_note || n == next,
            "line {n} after {last:?} with no note between:\n{}",
            around(&stdout, line)
        );
        last = Some(n);
        since_note = false;
    }
    assert_eq!(
        last,
        Some(LINES - 1),
        "the last numbered line ({notes} notes)"
    );
    assert!(
        stdout.trim_end().ends_with("flood: end"),
        "ends with the task's last line: {}",
        &stdout[stdout.len().saturating_sub(300)..]
    );
}

/// The lines of `text` around the first `line` equal to `line`, for a failure message.
fn around(text: &str, line: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let at = lines.iter().position(|l| *l == line).unwrap_or(0);
    lines[at.saturating_sub(3)..(at + 3).min(lines.len())].join("\n")
}

/// `task logs` of an id never handed out fails with one sentence naming it.
#[test]
fn logs_of_an_unknown_task() {
    let cluster = Cluster::start();
    let failed = cluster.action(&["task", "logs", "4242"]).failed();
    let sentence = failed.one_sentence();
    assert!(sentence.contains("4242"), "{sentence}");
}
