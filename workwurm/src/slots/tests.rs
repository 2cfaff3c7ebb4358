//! Tests of the slot pool with real `python3` slot processes and the fixtures in
//! `tests/fixtures` (no mocks: these run slot.py exactly as a worker does).

use super::*;
use crate::interpreter;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tatzelwurm_proto::task::{Outcome, TaskError, TaskSpec};

/// Long enough for a cold Python start on a busy machine; every wait is bounded by it.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

pub(crate) fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A slot command for the python3 on PATH with the fixtures on its path, and its own lifeline.
pub(crate) fn python_command() -> SlotCommand {
    let python = interpreter::resolve(None).expect("python3 on PATH");
    SlotCommand::new(python, fixtures().into_os_string()).expect("a lifeline pipe")
}

fn start(count: usize) -> (SlotsHandle, mpsc::UnboundedReceiver<News>) {
    SlotsHandle::start(python_command(), count, 1)
}

pub(crate) fn task(id: u64, function: &str, args: &str) -> Assignment {
    Assignment {
        task: TaskId(id),
        attempt: Attempt(1),
        spec: TaskSpec {
            function: function.into(),
            args: args.into(),
            kwargs: "{}".into(),
            policy: tatzelwurm_proto::task::TaskPolicy::default(),
            ..TaskSpec::default()
        },
    }
}

/// The next report (news of attempts reaching a slot are skipped).
pub(crate) async fn next(reports: &mut mpsc::UnboundedReceiver<News>) -> Report {
    loop {
        let news = tokio::time::timeout(PATIENCE, reports.recv())
            .await
            .expect("a report within the patience")
            .expect("the pool is alive");
        if let News::Report(report) = news {
            return report;
        }
    }
}

pub(crate) async fn run_one(
    slots: &SlotsHandle,
    reports: &mut mpsc::UnboundedReceiver<News>,
    t: Assignment,
) -> Report {
    let id = t.task;
    slots.run(vec![t]).await;
    let report = next(reports).await;
    assert_eq!(report.task, id);
    report
}

pub(crate) fn completed(report: &Report) -> &str {
    match &report.outcome {
        Outcome::Completed { result } => result,
        other => panic!("expected a result, got {other:?} with {:?}", report.output),
    }
}

pub(crate) fn failed(report: &Report) -> &TaskError {
    match &report.outcome {
        Outcome::Failed { error } => error,
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// The same task with a timeout.
pub(crate) fn with_timeout(mut assignment: Assignment, millis: u64) -> Assignment {
    assignment.spec.policy.timeout_ms = Some(millis);
    assignment
}

/// Polls `condition` until it holds or `PATIENCE` passes.
pub(crate) async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A process is gone when /proc has no entry for it or only a zombie waiting for its reaper.
pub(crate) fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// The processes (not zombies) in process group `pgid`, each with its parent's pid.
pub(crate) fn group(pgid: i32) -> Vec<(i32, i32)> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the command's closing parenthesis: state, ppid, pgrp, ...
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string() {
            members.push((pid, fields[1].parse().unwrap_or(0)));
        }
    }
    members
}

/// Waits up to `limit` until process group `pgid` has no process left, and says how long it took.
pub(crate) async fn wait_group_gone(pgid: i32, limit: Duration) -> Duration {
    let since = Instant::now();
    loop {
        let left = group(pgid);
        if left.is_empty() {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < limit,
            "processes {left:?} of group {pgid} outlived {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A task's return value comes back as JSON text, with positional and keyword arguments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returns_a_value() {
    let (slots, mut reports) = start(1);
    let report = run_one(&slots, &mut reports, task(1, "tasks:add", "[2, 3]")).await;
    assert_eq!(completed(&report), "5");
    let mut greet = task(2, "tasks:greet", r#"["Ada"]"#);
    greet.spec.kwargs = r#"{"punctuation": "?"}"#.into();
    let report = run_one(&slots, &mut reports, greet).await;
    assert_eq!(completed(&report), r#"{"greeting":"hello Ada?"}"#);
    slots.shutdown().await;
}

/// A raising task fails with its exception's type, message and a traceback of the user's code
/// (not the slot loop's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exception_fails_with_traceback() {
    let (slots, mut reports) = start(1);
    let report = run_one(&slots, &mut reports, task(1, "tasks:fail", "[7]")).await;
    let error = failed(&report);
    assert_eq!(error.kind, "ValueError");
    assert_eq!(error.message, "bad input 7");
    assert!(
        error.traceback.starts_with("Traceback"),
        "{}",
        error.traceback
    );
    assert!(
        error.traceback.contains("tasks.py\", line"),
        "{}",
        error.traceback
    );
    assert!(error.traceback.contains("in fail"), "{}", error.traceback);
    assert!(
        error.traceback.ends_with("ValueError: bad input 7\n"),
        "{}",
        error.traceback
    );
    assert!(!error.traceback.contains("run_one"), "{}", error.traceback);
    // Naming a function that does not exist is a failure of that task, with a useful message.
    let report = run_one(&slots, &mut reports, task(2, "tasks:nope", "[]")).await;
    assert_eq!(failed(&report).kind, "AttributeError");
    assert!(failed(&report).message.contains("nope"));
    let report = run_one(&slots, &mut reports, task(3, "no_such_module:f", "[]")).await;
    assert_eq!(failed(&report).kind, "ModuleNotFoundError");
    // The name rule is proto's (the coordinator refuses such a name); a slot handed one anyway
    // fails the task and serves on.
    let report = run_one(&slots, &mut reports, task(4, "tasks.add", "[]")).await;
    assert_eq!(failed(&report).kind, "ValueError");
    let report = run_one(&slots, &mut reports, task(5, "tasks:add", "[1, 2]")).await;
    assert_eq!(completed(&report), "3");
    slots.shutdown().await;
}

/// os._exit in a task fails it as SlotCrashed with the output it wrote, and a fresh slot serves
/// the next task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_is_reported_and_the_slot_replaced() {
    let (slots, mut reports) = start(1);
    let before: i64 = completed(&run_one(&slots, &mut reports, task(1, "tasks:pid", "[]")).await)
        .parse()
        .unwrap();
    let report = run_one(&slots, &mut reports, task(2, "tasks:crash", "[3]")).await;
    let error = failed(&report);
    assert_eq!(error.kind, "SlotCrashed");
    assert_eq!(
        error.message,
        "the slot process running this task exited with code 3; the worker started a fresh slot"
    );
    // What the task wrote before it took its slot down is kept.
    let report = run_one(&slots, &mut reports, task(5, "tasks:say_and_crash", "[3]")).await;
    assert_eq!(failed(&report).kind, "SlotCrashed");
    assert_eq!(report.output.stdout, "last words\n");
    let report = run_one(&slots, &mut reports, task(4, "tasks:segfault", "[]")).await;
    assert_eq!(
        failed(&report).message,
        "the slot process running this task was killed by signal 11; the worker started a fresh slot"
    );
    let after: i64 = completed(&run_one(&slots, &mut reports, task(3, "tasks:pid", "[]")).await)
        .parse()
        .unwrap();
    assert_ne!(before, after, "a fresh process serves after the crash");
    slots.shutdown().await;
}

/// A kill stops a task inside time.sleep(3600) within 2 s, takes the process it started with it,
/// and the slot serves the next task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_stops_a_sleeping_task_and_its_children() {
    let (slots, mut reports) = start(1);
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let args = serde_json::to_string(&[pid_file.to_str().unwrap()]).unwrap();
    slots
        .run(vec![task(1, "tasks:sleep_with_child", &args)])
        .await;
    wait_until("the task started its child", || pid_file.exists()).await;
    let pids: Vec<i32> = std::fs::read_to_string(&pid_file)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(slots.running().await, [(TaskId(1), Attempt(1))]);
    // The slot, its child, and the guardian, which the kill must take too.
    assert_eq!(group(pids[0]).len(), 3, "{:?}", group(pids[0]));

    let asked = Instant::now();
    slots.kill(vec![(TaskId(1), Attempt(1))]).await;
    let report = next(&mut reports).await;
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "kill took {:?}",
        asked.elapsed()
    );
    assert_eq!(
        (report.task, &report.outcome),
        (TaskId(1), &Outcome::Killed)
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while !pids.iter().all(|&p| gone(p)) {
        assert!(
            Instant::now() < deadline,
            "slot {} or its child {} outlived the kill",
            pids[0],
            pids[1]
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_group_gone(pids[0], Duration::from_secs(2)).await;
    assert!(slots.running().await.is_empty());
    // A kill for an attempt that is not here is ignored.
    slots
        .kill(vec![(TaskId(1), Attempt(1)), (TaskId(9), Attempt(1))])
        .await;
    let report = run_one(&slots, &mut reports, task(2, "tasks:add", "[1, 1]")).await;
    assert_eq!(completed(&report), "2");
    slots.shutdown().await;
}

/// Megabytes on stdout and stderr are captured (Python, raw fd and child process writes alike),
/// cut to their last 256 KiB with a note saying how much was dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captures_large_output() {
    let (slots, mut reports) = start(1);
    let report = run_one(&slots, &mut reports, task(1, "tasks:shout", "[3]")).await;
    assert_eq!(completed(&report), r#""done""#);
    let total_out =
        3 * 10000 * 100 + "raw fd write\n".len() + "from a child\n".len() + "last line\n".len();
    let dropped_out = total_out - 256 * 1024;
    let out = &report.output.stdout;
    let note = format!("[tatzelwurm: {dropped_out} earlier bytes not kept]\n");
    assert!(out.starts_with(&note), "{}", &out[..80]);
    assert_eq!(out.len(), note.len() + 256 * 1024);
    assert!(
        out.ends_with("raw fd write\nfrom a child\nlast line\n"),
        "{}",
        &out[out.len() - 80..]
    );
    let err = &report.output.stderr;
    let note = format!(
        "[tatzelwurm: {} earlier bytes not kept]\n",
        3 * 10000 * 100 - 256 * 1024
    );
    assert!(err.starts_with(&note), "{}", &err[..80]);
    assert!(err.ends_with(&format!("{}\n", "x".repeat(99))));

    // Small output is kept whole, and stdin reads as empty.
    let report = run_one(&slots, &mut reports, task(2, "tasks:chatter", "[]")).await;
    assert_eq!(completed(&report), r#""""#);
    assert_eq!(report.output.stdout, "to stdout\nraw\nchild\n");
    assert_eq!(report.output.stderr, "to stderr\n");
    // The next task starts with empty captures.
    let report = run_one(&slots, &mut reports, task(3, "tasks:add", "[1, 2]")).await;
    assert_eq!(
        (report.output.stdout.as_str(), report.output.stderr.as_str()),
        ("", "")
    );
    slots.shutdown().await;
}

/// A result JSON cannot carry fails the task with a message that says what to return instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_json_result_fails_clearly() {
    let (slots, mut reports) = start(1);
    let report = run_one(&slots, &mut reports, task(1, "tasks:give_set", "[]")).await;
    let error = failed(&report);
    assert_eq!(error.kind, "TypeError");
    assert_eq!(
        error.message,
        "the task returned a value of type set, which is not JSON-serialisable; \
         return lists, dicts, strings, numbers, booleans or None"
    );
    let report = run_one(&slots, &mut reports, task(2, "tasks:nested_set", "[]")).await;
    assert!(failed(&report)
        .message
        .contains("of type dict containing a value of type set"));
    let report = run_one(&slots, &mut reports, task(3, "tasks:nan", "[]")).await;
    assert_eq!(failed(&report).kind, "ValueError");
    let report = run_one(&slots, &mut reports, task(4, "tasks:big", "[17000000]")).await;
    assert_eq!(failed(&report).kind, "ResultTooLarge");
    assert_eq!(
        failed(&report).message,
        "the task returned 17000002 bytes of JSON (UTF-8), more than the limit of 16777216 \
         bytes; store large results elsewhere and return where to find them"
    );
    let report = run_one(&slots, &mut reports, task(5, "tasks:big", "[3]")).await;
    assert_eq!(completed(&report), r#""xxx""#);
    slots.shutdown().await;
}

/// The result limit counts bytes of UTF-8, as the frame carries them: 9 million "é" are fewer
/// characters than the limit but more bytes, and the message counts bytes too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_limit_counts_utf8_bytes() {
    let (slots, mut reports) = start(1);
    let report = run_one(
        &slots,
        &mut reports,
        task(1, "tasks:big_text", r#"[9000000, "é"]"#),
    )
    .await;
    let error = failed(&report);
    assert_eq!(error.kind, "ResultTooLarge");
    assert!(
        error
            .message
            .starts_with("the task returned 18000002 bytes of JSON (UTF-8), more than the limit of 16777216 bytes"),
        "{}",
        error.message
    );
    let report = run_one(
        &slots,
        &mut reports,
        task(2, "tasks:big_text", r#"[2, "é"]"#),
    )
    .await;
    assert_eq!(completed(&report), r#""éé""#);
    slots.shutdown().await;
}

/// Reads the pids a `leave_processes` task wrote.
fn left_pids(file: &Path) -> Vec<i32> {
    std::fs::read_to_string(file)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

/// Kills a process a test started outside the slots' groups.
fn kill(pid: i32) {
    // SAFETY: kill(2) touches no memory; the pid is one the test's task started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// When a task returns, the processes it left in the slot's group (a child, and a grandchild
/// orphaned by its shell) are gone by the time its report arrives; a process that left the group
/// on purpose, the guardian and the slot itself live on, and the slot serves the next task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_task_leaves_no_processes_behind() {
    let (slots, mut reports) = start(1);
    let slot: i32 = completed(&run_one(&slots, &mut reports, task(1, "tasks:pid", "[]")).await)
        .parse()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let args = serde_json::to_string(&[pid_file.to_str().unwrap()]).unwrap();
    let report = run_one(
        &slots,
        &mut reports,
        task(2, "tasks:leave_processes", &args),
    )
    .await;
    let pids: Vec<i32> = serde_json::from_str(completed(&report)).unwrap();
    let [child, orphan, own_session] = pids[..] else {
        panic!("three pids: {pids:?}");
    };
    let survivor = !gone(own_session);
    kill(own_session);
    assert!(gone(child), "the task's child {child} outlived it");
    assert!(
        gone(orphan),
        "the task's orphaned grandchild {orphan} outlived it"
    );
    assert!(survivor, "the process that left the group was killed");
    let members = group(slot);
    assert_eq!(members.len(), 2, "the slot and its guardian: {members:?}");
    // The same slot serves on. The process that left the group is still the slot's child (a
    // zombie now): the end of the next task reaps it, and then the slot has no child at all.
    wait_until("the killed process is a zombie", || gone(own_session)).await;
    let report = run_one(&slots, &mut reports, task(3, "tasks:add", "[1, 1]")).await;
    assert_eq!(completed(&report), "2");
    let report = run_one(&slots, &mut reports, task(5, "tasks:wait_any", "[]")).await;
    assert_eq!(completed(&report), r#""no children""#);
    let report = run_one(&slots, &mut reports, task(4, "tasks:pid", "[]")).await;
    assert_eq!(completed(&report), slot.to_string());
    slots.shutdown().await;
}

/// With `--keep-children`, what a task left running lives on after it, and dies with its slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_children_leaves_them_to_the_slot() {
    let mut command = python_command();
    command.keep_children = true;
    let (slots, mut reports) = SlotsHandle::start(command, 1, 1);
    let slot: i32 = completed(&run_one(&slots, &mut reports, task(1, "tasks:pid", "[]")).await)
        .parse()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let args = serde_json::to_string(&[pid_file.to_str().unwrap()]).unwrap();
    let report = run_one(
        &slots,
        &mut reports,
        task(2, "tasks:leave_processes", &args),
    )
    .await;
    let pids = left_pids(&pid_file);
    kill(pids[2]);
    completed(&report);
    assert!(!gone(pids[0]) && !gone(pids[1]), "{pids:?} were killed");
    slots.shutdown().await;
    wait_group_gone(slot, Duration::from_secs(2)).await;
}

/// sys.exit fails the task as SystemExit and the same slot process serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_exit_fails_only_the_task() {
    let (slots, mut reports) = start(1);
    let before =
        completed(&run_one(&slots, &mut reports, task(1, "tasks:pid", "[]")).await).to_string();
    let report = run_one(&slots, &mut reports, task(2, "tasks:leave", "[4]")).await;
    let error = failed(&report);
    assert_eq!(error.kind, "SystemExit");
    assert!(
        error.message.starts_with("the task called sys.exit(4)"),
        "{}",
        error.message
    );
    let after =
        completed(&run_one(&slots, &mut reports, task(3, "tasks:pid", "[]")).await).to_string();
    assert_eq!(before, after, "the slot survived sys.exit");
    slots.shutdown().await;
}

/// `path/to/file.py:function` loads the file once (relative to the working directory, or
/// absolute) and keeps it loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_form_loads_and_keeps_the_module() {
    let (slots, mut reports) = start(1);
    let report = run_one(
        &slots,
        &mut reports,
        task(1, "tests/fixtures/by_file.py:triple", "[2]"),
    )
    .await;
    assert_eq!(completed(&report), "[6,1]");
    let absolute = format!("{}:triple", fixtures().join("by_file.py").display());
    let report = run_one(&slots, &mut reports, task(2, &absolute, "[3]")).await;
    assert_eq!(completed(&report), "[9,1]", "loaded once per absolute path");
    let report = run_one(
        &slots,
        &mut reports,
        task(3, "tests/fixtures/missing.py:f", "[]"),
    )
    .await;
    assert_eq!(failed(&report).kind, "FileNotFoundError");
    slots.shutdown().await;
}

/// --path dirs come right after the working directory on sys.path, and sys.executable is the
/// interpreter workwurm was given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_dirs_and_executable() {
    let (slots, mut reports) = start(1);
    let report = run_one(&slots, &mut reports, task(1, "tasks:path_head", "[]")).await;
    let head: Vec<String> = serde_json::from_str(completed(&report)).unwrap();
    assert_eq!(head, ["".to_string(), fixtures().display().to_string()]);
    let report = run_one(&slots, &mut reports, task(2, "tasks:executable", "[]")).await;
    let executable: String = serde_json::from_str(completed(&report)).unwrap();
    assert!(Path::new(&executable).is_absolute(), "{executable}");
    slots.shutdown().await;
}

/// Module state stays between the tasks of one slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_state_is_kept() {
    let (slots, mut reports) = start(1);
    for expected in ["1", "2", "3"] {
        let report = run_one(&slots, &mut reports, task(1, "tasks:count", "[]")).await;
        assert_eq!(completed(&report), expected);
    }
    slots.shutdown().await;
}

/// Two slots run two tasks at the same time, in different processes; extras wait locally and
/// a queued attempt can be killed before it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_run_in_parallel_and_extras_queue() {
    let (slots, mut reports) = start(2);
    let tasks = (1..=3).map(|i| task(i, "tasks:nap", "[0.5]")).collect();
    slots.run(tasks).await;
    slots.run(vec![task(4, "tasks:add", "[1, 1]")]).await;
    let mut running = slots.running().await;
    running.sort();
    assert_eq!(running.len(), 4, "{running:?}");
    slots.kill(vec![(TaskId(4), Attempt(1))]).await;
    let mut pids = std::collections::HashSet::new();
    let mut killed = 0;
    for _ in 0..4 {
        let report = next(&mut reports).await;
        match report.outcome {
            Outcome::Killed => {
                assert_eq!(report.task, TaskId(4));
                killed += 1;
            }
            _ => {
                pids.insert(completed(&report).to_string());
            }
        }
    }
    assert_eq!(
        (killed, pids.len()),
        (1, 2),
        "three naps on two slots, the add killed"
    );
    slots.shutdown().await;
}

/// Abandoning (a lost connection) kills running attempts without reporting them, and the slots
/// are restarted and serve again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandon_kills_without_reports() {
    let (slots, mut reports) = start(1);
    slots.run(vec![task(1, "tasks:nap", "[3600]")]).await;
    assert_eq!(slots.running().await.len(), 1);
    slots.abandon().await;
    assert!(slots.running().await.is_empty());
    let report = run_one(&slots, &mut reports, task(2, "tasks:add", "[2, 2]")).await;
    assert_eq!(
        completed(&report),
        "4",
        "no report of the abandoned attempt came first"
    );
    slots.shutdown().await;
}

/// An interpreter that dies at once is restarted with growing pauses, not in a hot loop, and a
/// task waits instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_interpreter_backs_off() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("starts");
    let fake = dir.path().join("python3");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\necho started >> {}\nexit 1\n", log.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let command = SlotCommand::new(fake, Default::default()).unwrap();
    let (slots, mut reports) = SlotsHandle::start(command, 1, 1);
    slots.run(vec![task(1, "tasks:add", "[1, 1]")]).await;
    // Measuring, not synchronising: count the starts in a fixed window.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let starts = std::fs::read_to_string(&log)
        .map(|s| s.lines().count())
        .unwrap_or(0);
    assert!((2..=7).contains(&starts), "{starts} starts in 1.6 s");
    assert!(
        reports.try_recv().is_err(),
        "the task waits for a working slot"
    );
    assert_eq!(slots.running().await, [(TaskId(1), Attempt(1))]);
    slots.shutdown().await;
}

/// A slot killed from outside while idle is replaced, and the next task runs on the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_slot_death_is_replaced() {
    let (slots, mut reports) = start(1);
    let pid: i32 = completed(&run_one(&slots, &mut reports, task(1, "tasks:pid", "[]")).await)
        .parse()
        .unwrap();
    // SAFETY: signals a process this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    // Once it is reaped (by its watcher) its pipe is closed, and the pool must not lose the next
    // task to it. (A zombie is not enough: its other threads may still hold the pipe.)
    wait_until("the slot is reaped", || {
        !Path::new(&format!("/proc/{pid}")).exists()
    })
    .await;
    let report = run_one(&slots, &mut reports, task(2, "tasks:pid", "[]")).await;
    assert_ne!(completed(&report), pid.to_string());
    slots.shutdown().await;
}

/// With a virtualenv's python3 (a symlink, kept unresolved), tasks import what only that venv
/// has, and sys.executable is the venv's interpreter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtualenv_packages_import() {
    let dir = tempfile::tempdir().unwrap();
    let (venv, site) = make_venv(dir.path()).await;
    std::fs::write(site.join("only_in_venv.py"), "MARK = 1\n").unwrap();

    let python = interpreter::resolve(Some(&venv.join("bin/python3"))).unwrap();
    let command = SlotCommand::new(python.clone(), fixtures().into_os_string()).unwrap();
    let (slots, mut reports) = SlotsHandle::start(command, 1, 1);
    let report = run_one(
        &slots,
        &mut reports,
        task(1, "tasks:imports", r#"["only_in_venv"]"#),
    )
    .await;
    let [file, executable, prefix]: [String; 3] = serde_json::from_str(completed(&report)).unwrap();
    assert!(file.starts_with(site.to_str().unwrap()), "{file}");
    assert_eq!(Path::new(&executable), python);
    assert_eq!(Path::new(&prefix), venv);
    slots.shutdown().await;
}

/// As the Python package's workwurm runs them: slots of a venv's python running
/// `-m tatzelwurm.slot` (here a stand-in package with the same slot.py and an empty
/// `__init__`) run tasks as the carried loop does: results, tracebacks without the loop's
/// frames, the venv's interpreter, and leftover processes ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_module_runs_tasks_like_the_carried_loop() {
    let dir = tempfile::tempdir().unwrap();
    let (venv, site) = make_venv(dir.path()).await;
    let package = site.join("tatzelwurm");
    std::fs::create_dir(&package).unwrap();
    std::fs::write(package.join("__init__.py"), "").unwrap();
    std::fs::write(package.join("slot.py"), slot_process::SLOT_PY).unwrap();

    let python = interpreter::resolve(Some(&venv.join("bin/python3"))).unwrap();
    let mut command = SlotCommand::new(python.clone(), fixtures().into_os_string()).unwrap();
    command.program = slot_process::SlotProgram::Module("tatzelwurm.slot".into());
    let (slots, mut reports) = SlotsHandle::start(command, 1, 1);
    let report = run_one(&slots, &mut reports, task(1, "tasks:slot_argv", "[]")).await;
    let argv: Vec<String> = serde_json::from_str(completed(&report)).unwrap();
    assert_eq!(argv, [package.join("slot.py").display().to_string()]);
    let report = run_one(&slots, &mut reports, task(2, "tasks:executable", "[]")).await;
    assert_eq!(
        serde_json::from_str::<String>(completed(&report)).unwrap(),
        python.display().to_string()
    );
    let report = run_one(&slots, &mut reports, task(3, "tasks:fail", "[7]")).await;
    let trace = &failed(&report).traceback;
    assert!(trace.contains("in fail"), "{trace}");
    assert!(!trace.contains("run_one"), "{trace}");
    let pid_file = dir.path().join("pids");
    let args = serde_json::to_string(&[pid_file.to_str().unwrap()]).unwrap();
    let report = run_one(
        &slots,
        &mut reports,
        task(4, "tasks:leave_processes", &args),
    )
    .await;
    completed(&report);
    let pids = left_pids(&pid_file);
    kill(pids[2]);
    assert!(
        gone(pids[0]) && gone(pids[1]),
        "{pids:?} outlived their task"
    );
    slots.shutdown().await;
}

/// A virtualenv (without pip) in `dir`, and its site-packages directory.
async fn make_venv(dir: &Path) -> (PathBuf, PathBuf) {
    let venv = dir.join("venv");
    let base = interpreter::resolve(None).unwrap();
    let made = tokio::process::Command::new(&base)
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .status();
    assert!(tokio::time::timeout(PATIENCE, made)
        .await
        .unwrap()
        .unwrap()
        .success());
    let site = tokio::process::Command::new(venv.join("bin/python3"))
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ])
        .output();
    let site = tokio::time::timeout(PATIENCE, site).await.unwrap().unwrap();
    let site = PathBuf::from(String::from_utf8(site.stdout).unwrap().trim());
    (venv, site)
}

/// A shutdown kills every slot process and returns once they are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_leaves_no_processes() {
    let (slots, mut reports) = start(2);
    let a = run_one(&slots, &mut reports, task(1, "tasks:pid", "[]")).await;
    slots.run(vec![task(2, "tasks:nap", "[3600]")]).await;
    let pid: i32 = completed(&a).parse().unwrap();
    tokio::time::timeout(PATIENCE, slots.shutdown())
        .await
        .expect("shutdown ends");
    let deadline = Instant::now() + Duration::from_secs(2);
    while !gone(pid) {
        assert!(
            Instant::now() < deadline,
            "slot {pid} outlived the shutdown"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A task past its timeout is stopped within moments, in Python's time.sleep and in a C call that
/// holds the GIL alike: it fails with kind Timeout and keeps the output it wrote, its process
/// group (the guardian too) is gone, and a fresh slot serves the next task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_kills_the_task_and_a_fresh_slot_serves() {
    let (slots, mut reports) = start(1);
    // A ready slot, so that what is measured below is the timeout and not Python's start.
    let mut pid: i32 = completed(&run_one(&slots, &mut reports, task(1, "tasks:pid", "[]")).await)
        .parse()
        .unwrap();
    for (id, function) in [(2, "tasks:announce_and_sleep"), (3, "tasks:hold_gil")] {
        let asked = Instant::now();
        let timed = with_timeout(task(id, function, "[3600]"), 500);
        let report = run_one(&slots, &mut reports, timed).await;
        let took = asked.elapsed();
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_secs(2),
            "{function}: reported after {took:?}"
        );
        assert_eq!(
            failed(&report),
            &TaskError {
                kind: "Timeout".into(),
                message: "the task ran longer than its timeout of 0.5 s and was killed".into(),
                traceback: String::new(),
            }
        );
        if id == 2 {
            assert_eq!(report.output.stdout, "before the timeout\n");
            assert_eq!(report.output.stderr, "on stderr too\n");
        }
        wait_group_gone(pid, Duration::from_secs(2)).await;
        let fresh: i32 =
            completed(&run_one(&slots, &mut reports, task(id + 10, "tasks:pid", "[]")).await)
                .parse()
                .unwrap();
        assert_ne!(fresh, pid, "a fresh slot serves after the timeout");
        pid = fresh;
    }
    slots.shutdown().await;
}

/// While a task runs, TATZELWURM_TASK_ID and TATZELWURM_ATTEMPT hold its id and attempt; an idle
/// slot has neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_id_and_attempt_are_in_the_environment() {
    let (slots, mut reports) = start(1);
    let dir = tempfile::tempdir().unwrap();
    let sample = dir.path().join("sample");
    let args = serde_json::to_string(&[sample.to_str().unwrap()]).unwrap();
    let mut first = task(7, "tasks:sample_env", &args);
    first.attempt = Attempt(3);
    let report = run_one(&slots, &mut reports, first).await;
    assert_eq!(completed(&report), r#"["7","3"]"#);
    // The thread the task left behind samples the environment of the idle slot.
    wait_until("the idle slot has no task id in its environment", || {
        std::fs::read_to_string(&sample).is_ok_and(|seen| seen == "-")
    })
    .await;
    let report = run_one(&slots, &mut reports, task(8, "tasks:env", "[]")).await;
    assert_eq!(completed(&report), r#"["8","1"]"#);
    slots.shutdown().await;
}

/// Not a test of behaviour: how many one-at-a-time tasks a slot turns around per second
/// (`cargo test -p workwurm --release -- --ignored --nocapture slot_throughput`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn slot_throughput() {
    for count in [1usize, 2] {
        let (slots, mut reports) = start(count);
        // Warm up every slot (process start and the import of `tasks`).
        slots
            .run(
                (0..count as u64)
                    .map(|i| task(i, "tasks:noop", "[0]"))
                    .collect(),
            )
            .await;
        for _ in 0..count {
            next(&mut reports).await;
        }
        let n = 20_000u64;
        let started = Instant::now();
        // Keep every slot fed, as a coordinator would: one new task per report.
        slots
            .run(
                (0..count as u64)
                    .map(|i| task(100 + i, "tasks:noop", "[1]"))
                    .collect(),
            )
            .await;
        let mut sent = count as u64;
        for _ in 0..n {
            let report = next(&mut reports).await;
            completed(&report);
            if sent < n {
                slots.run(vec![task(100 + sent, "tasks:noop", "[1]")]).await;
                sent += 1;
            }
        }
        let elapsed = started.elapsed();
        eprintln!(
            "{count} slot(s): {n} tasks in {:.2} s = {:.0} tasks/s",
            elapsed.as_secs_f64(),
            n as f64 / elapsed.as_secs_f64()
        );
        slots.shutdown().await;
    }
}

/// Not a test of behaviour: how many tasks a slot turns around per second when the worker holds
/// them all at once (prefetched), and the pool's and slots' CPU time per task
/// (`cargo test -p workwurm --release -- --ignored --nocapture prefetched_throughput`).
#[tokio::test(flavor = "current_thread")]
#[ignore]
async fn prefetched_throughput() {
    fn cpu_of(pid: u32) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        // utime and stime (fields 14 and 15 of stat), in clock ticks of 10 ms.
        let ticks: f64 = fields
            .get(11..13)
            .map(|f| f.iter().map(|v| v.parse::<f64>().unwrap_or(0.0)).sum())
            .unwrap_or(0.0);
        ticks / 100.0
    }
    for count in [1usize, 2] {
        let (slots, mut reports) = start(count);
        let mut pids = Vec::new();
        for i in 0..count as u64 {
            // One at a time, so that each slot answers once (and is warm).
            let report = run_one(&slots, &mut reports, task(i, "tasks:pid", "[]")).await;
            pids.push(completed(&report).parse::<u32>().unwrap());
        }
        // The noop's function is known fast only after one has run.
        run_one(&slots, &mut reports, task(99, "tasks:noop", "[0]")).await;
        let n = 100_000u64;
        let own = cpu_of(std::process::id());
        let slots_cpu: f64 = pids.iter().map(|&p| cpu_of(p)).sum();
        let started = Instant::now();
        slots
            .run(
                (0..n)
                    .map(|i| task(1000 + i, "tasks:noop", "[1]"))
                    .collect(),
            )
            .await;
        for _ in 0..n {
            completed(&next(&mut reports).await);
        }
        let elapsed = started.elapsed();
        let own = cpu_of(std::process::id()) - own;
        let slots_cpu = pids.iter().map(|&p| cpu_of(p)).sum::<f64>() - slots_cpu;
        eprintln!(
            "{count} slot(s), prefetched: {n} tasks in {:.2} s = {:.0} tasks/s; CPU per task: workwurm {:.1} us, slots {:.1} us",
            elapsed.as_secs_f64(),
            n as f64 / elapsed.as_secs_f64(),
            own / n as f64 * 1e6,
            slots_cpu / n as f64 * 1e6,
        );
        slots.shutdown().await;
    }
}

/// A task handed to a busy slot behind its running task (fast functions go several to a slot)
/// and then killed is reported at once and skipped by the slot, which serves on in the same
/// process; the task behind it still runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_of_a_task_held_by_a_slot_skips_it() {
    let (slots, mut reports) = start(1);
    // `tasks:nap` is known fast after a short one, so the next naps go to the slot together.
    let pid =
        completed(&run_one(&slots, &mut reports, task(1, "tasks:nap", "[0]")).await).to_string();
    slots
        .run(vec![
            task(2, "tasks:nap", "[0.5]"),
            task(3, "tasks:nap", "[0]"),
            task(4, "tasks:nap", "[0]"),
        ])
        .await;
    let asked = Instant::now();
    slots.kill(vec![(TaskId(3), Attempt(1))]).await;
    let first = next(&mut reports).await;
    assert_eq!((first.task, &first.outcome), (TaskId(3), &Outcome::Killed));
    assert!(
        asked.elapsed() < Duration::from_millis(400),
        "reported at once"
    );
    for id in [2, 4] {
        let report = next(&mut reports).await;
        assert_eq!(report.task, TaskId(id));
        assert_eq!(completed(&report), pid, "the same slot process serves on");
    }
    assert!(slots.running().await.is_empty());
    slots.shutdown().await;
}
