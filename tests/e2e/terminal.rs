//! The terminal side of `task wait`: a progress bar (done/total, rate, time left) on a terminal,
//! and not a byte of it when the output is piped, where the summary stays what scripts read.
//! The terminal is a pseudo-terminal made by util-linux's `script`, as a user's would be.

use crate::TASK_TIMEOUT;
use std::process::Command;
use tatzelwurm_e2e::actionwurm::run_command;
use tatzelwurm_e2e::{example, Cluster, WorkerSpec};

/// Three tasks of `seconds` each on a worker with one slot, so that they end one by one.
fn three_sleeps(cluster: &Cluster, seconds: &str) -> Vec<String> {
    (0..3)
        .map(|_| {
            cluster
                .add(&example("sleep"), &format!("[{seconds}]"))
                .to_string()
        })
        .collect()
}

/// Piped, `task wait` draws no bar: stderr is empty (no carriage return, no escape sequence)
/// and stdout is exactly the summary it always printed.
#[test]
fn piped_wait_prints_no_bar() {
    let cluster = Cluster::start();
    let _worker = cluster.start_worker(WorkerSpec::new(1));
    let ids = three_sleeps(&cluster, "0.3");
    let mut args = vec!["task", "wait"];
    args.extend(ids.iter().map(String::as_str));
    let waited = cluster.action_within(&args, TASK_TIMEOUT).ok();
    assert_eq!(
        waited.stdout, "waited for 3 tasks: 3 completed\n",
        "{waited}"
    );
    assert_eq!(waited.stderr, "", "{waited}");
}

/// On a terminal, `task wait` shows the bar with done/total, a rate and the time left while the
/// tasks run, clears it, and ends with the same summary line and exit status.
#[test]
fn terminal_wait_shows_a_bar() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: util-linux `script` is not installed to make a pseudo-terminal");
        return;
    }
    let cluster = Cluster::start();
    let _worker = cluster.start_worker(WorkerSpec::new(1));
    let ids = three_sleeps(&cluster, "1.0");
    let line = format!(
        "{} --coordinator {} task wait {}",
        cluster.bins().actionwurm.display(),
        cluster.addr(),
        ids.join(" ")
    );
    // `script` runs the line on a new pseudo-terminal and copies what it drew to our pipe.
    let mut cmd = Command::new("script");
    cmd.args(["-qefc", &line, "/dev/null"])
        .env("TERM", "xterm")
        .env("COLUMNS", "120");
    let run = run_command(cmd, TASK_TIMEOUT);
    assert!(run.success(), "{run}");
    let drawn = run.stdout.replace('\r', "\n");
    for part in ["/3 done", "/s", "left"] {
        assert!(
            drawn.contains(part),
            "no {part:?} in what was drawn: {drawn:?}"
        );
    }
    assert!(
        drawn.contains("1/3 done") || drawn.contains("2/3 done"),
        "the bar never showed a task done before the last: {drawn:?}"
    );
    assert!(
        drawn.contains("waited for 3 tasks: 3 completed"),
        "the summary is missing: {drawn:?}"
    );
}
