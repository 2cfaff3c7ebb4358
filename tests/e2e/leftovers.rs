//! What a task leaves behind and what workwurm refuses to start with: a process a task started
//! and did not wait for ends when the task ends (unless `--keep-children`), and a coordinator
//! address that cannot be parsed ends workwurm at once instead of being retried forever.

use crate::TASK_TIMEOUT;
use serde_json::json;
use std::process::Command;
use std::time::Duration;
use tatzelwurm_e2e::actionwurm::run_command;
use tatzelwurm_e2e::{
    fixture, pid_alive, wait_until, Binaries, Cluster, Proc, Profile, WorkerSpec,
};

/// A task that starts `sleep 1000` and returns has no process left once it is `completed`: the
/// worker ended its child before reporting it, and its slot serves on.
#[test]
fn a_finished_task_leaves_no_process_running() {
    let cluster = Cluster::start();
    let _worker = cluster.start_worker(WorkerSpec::new(1).name("w1"));
    let pid_file = cluster.dir().join("child.pid");
    let id = cluster.add(
        &fixture("start_child_and_return"),
        &json!([pid_file]).to_string(),
    );
    let task = cluster.wait_completed(id, TASK_TIMEOUT);
    let child = task["result"].as_i64().expect("the child's pid") as i32;
    assert!(
        !pid_alive(child),
        "the task's child {child} outlived the task"
    );
    let next = cluster.add(&fixture("python_version"), "[]");
    assert_eq!(cluster.wait_completed(next, TASK_TIMEOUT)["worker"], "w1");
}

/// With `--keep-children` the child lives on after its task, and ends with the worker's slots.
#[test]
fn keep_children_leaves_the_child_to_the_slot() {
    let cluster = Cluster::start();
    let mut cmd = Command::new(&cluster.bins().workwurm);
    cmd.env_remove(tatzelwurm_proto::COORDINATOR_ENV)
        .env_remove(tatzelwurm_proto::TOKEN_ENV)
        .args(["--coordinator", cluster.addr(), "--name", "keeper"])
        .arg("--keep-children")
        .current_dir(cluster.dir())
        .env("RUST_LOG", "info");
    let (mut worker, _) = Proc::spawn("worker-keeper", cmd, &cluster.log_dir(), false);
    worker.kill_descendants_on_drop();
    cluster.wait_worker_connected("keeper");
    let pid_file = cluster.dir().join("child.pid");
    let id = cluster.add(
        &fixture("start_child_and_return"),
        &json!([pid_file]).to_string(),
    );
    let child = cluster.wait_completed(id, TASK_TIMEOUT)["result"]
        .as_i64()
        .expect("the child's pid") as i32;
    assert!(pid_alive(child), "the child {child} was ended");
    worker.kill9();
    wait_until(
        &format!("the child {child} to end with the worker's slot"),
        Duration::from_secs(5),
        || !pid_alive(child),
    );
}

/// `--coordinator localhost` (no port) and `TATZELWURM_COORDINATOR=127.0.0.1:2024x` end workwurm
/// at once with exit status 2 and one sentence naming the flag, the variable and the form.
#[test]
fn an_address_that_cannot_be_parsed_ends_workwurm_at_once() {
    let program = &Binaries::locate(Profile::Debug).workwurm;
    let by_flag = {
        let mut cmd = Command::new(program);
        cmd.env_remove(tatzelwurm_proto::COORDINATOR_ENV)
            .args(["--coordinator", "localhost"]);
        cmd
    };
    let by_env = {
        let mut cmd = Command::new(program);
        cmd.env(tatzelwurm_proto::COORDINATOR_ENV, "127.0.0.1:2024x");
        cmd
    };
    for (cmd, bad) in [(by_flag, "localhost"), (by_env, "127.0.0.1:2024x")] {
        let action = run_command(cmd, Duration::from_secs(10));
        assert_eq!(action.status.code(), Some(2), "{action}");
        assert!(action.stdout.is_empty(), "{action}");
        let sentence = action.one_sentence();
        for needle in [bad, "HOST:PORT", "--coordinator", "TATZELWURM_COORDINATOR"] {
            assert!(sentence.contains(needle), "{needle:?} in {sentence}");
        }
    }
}
