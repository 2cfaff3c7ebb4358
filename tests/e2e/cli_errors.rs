//! What the CLI says when a command cannot be done: one sentence on stderr and a non-zero exit,
//! for a missing coordinator, an unknown task id, bad JSON and a wait that runs out of time.

use crate::TASK_TIMEOUT;
use std::net::TcpListener;
use std::time::Duration;
use tatzelwurm_e2e::actionwurm::run;
use tatzelwurm_e2e::{example, Binaries, Cluster, Profile};

/// With no coordinator at the address (given by flag or by environment), the CLI exits non-zero
/// with one sentence naming that address.
#[test]
fn no_coordinator_is_one_sentence_naming_the_address() {
    let bins = Binaries::locate(Profile::Debug);
    let addr = unused_address();
    let by_flag = run(
        &bins.actionwurm,
        Some(&addr),
        &["task", "list"],
        &[],
        TASK_TIMEOUT,
        None,
    );
    let env = [(tatzelwurm_proto::COORDINATOR_ENV, addr.as_str())];
    let by_env = run(
        &bins.actionwurm,
        None,
        &["worker", "list"],
        &env,
        TASK_TIMEOUT,
        None,
    );
    for action in [by_flag, by_env] {
        let action = action.failed();
        action.one_sentence();
        assert!(action.stderr.contains(&addr), "{action}");
    }
}

/// Unknown task ids are refused by show, play, kill and wait with a sentence naming the id.
#[test]
fn unknown_task_ids_are_refused() {
    let cluster = Cluster::start();
    for command in ["show", "play", "kill", "wait"] {
        let action = cluster.action(&["task", command, "424242"]).failed();
        action.one_sentence();
        assert!(action.stderr.contains("424242"), "{action}");
    }
}

/// Bad JSON or the wrong JSON type in `--args`, `--kwargs` or an args file is refused, and no
/// task is added.
#[test]
fn bad_arguments_are_refused_and_add_nothing() {
    let cluster = Cluster::start();
    let square = example("square");
    let bad_file = cluster.write_args_file(&["[1]".into(), "[2,".into()]);
    let bad_file = bad_file.to_str().unwrap();
    let missing_file = cluster.dir().join("no-such-file.jsonl");
    let missing_file = missing_file.to_str().unwrap();
    let attempts: [&[&str]; 6] = [
        &["--args", "[1,"],
        &["--args", r#"{"x": 1}"#],
        &["--kwargs", "[1]"],
        &["--kwargs", "{x: 1}"],
        &["--args-file", bad_file],
        &["--args-file", missing_file],
    ];
    for extra in attempts {
        let mut argv = vec!["task", "add", &square];
        argv.extend_from_slice(extra);
        let action = cluster.action(&argv).failed();
        action.one_sentence();
        assert!(action.stdout.is_empty(), "no id printed: {action}");
    }
    assert!(cluster.list(&[]).is_empty(), "nothing was added");
    cluster
        .action(&["task", "list", "--state", "done"])
        .failed();
}

/// `task wait --timeout` exits non-zero once the timeout passes with the task unfinished.
#[test]
fn wait_with_an_expired_timeout_fails() {
    let cluster = Cluster::start();
    let id = cluster.add(&example("square"), "[2]").to_string();
    for argv in [
        ["task", "wait", &id, "--timeout", "1"],
        ["task", "wait", "-a", "--timeout", "1"],
    ] {
        let action = cluster.action(&argv).failed();
        assert!(action.elapsed >= Duration::from_millis(900), "{action}");
        assert!(action.elapsed < Duration::from_secs(10), "{action}");
    }
    assert_eq!(cluster.show(id.parse().unwrap())["state"], "ready");
}

/// An address where nothing listens: a port the kernel just handed out and took back.
fn unused_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}
