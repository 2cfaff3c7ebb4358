//! Exit statuses and sentences that tell the truth: a wait that could never end fails at once,
//! `task wait -a` counts failures from before it began, an argument too large for a request is
//! refused in one sentence, and usage errors are one sentence with exit status 2.

use crate::TASK_TIMEOUT;
use std::time::Duration;
use tatzelwurm_e2e::actionwurm::run;
use tatzelwurm_e2e::{example, Binaries, Cluster, Profile, WorkerSpec};

/// `task wait ID` on a `created` task fails at once (instead of blocking forever) with one
/// sentence that says how to play it.
#[test]
fn waiting_for_a_created_task_fails_at_once() {
    let cluster = Cluster::start();
    let id = cluster.add_created(&example("square"), "[2]").to_string();
    let action = cluster.action(&["task", "wait", &id]).failed();
    assert_eq!(action.status.code(), Some(1), "{action}");
    let sentence = action.one_sentence();
    assert!(
        sentence.contains(&format!("actionwurm task play {id}")),
        "{action}"
    );
    assert!(action.elapsed < Duration::from_secs(10), "{action}");
    assert_eq!(cluster.show(id.parse().unwrap())["state"], "created");
}

/// A task that failed before `task wait -a` began makes the wait fail and is named, instead
/// of the wait reading as "no tasks to wait for" with exit status 0.
#[test]
fn wait_all_counts_a_failure_from_before_the_wait() {
    let cluster = Cluster::start();
    let _worker = cluster.start_worker(WorkerSpec::new(1));
    let failing = cluster.add(&example("fail"), r#"["on purpose"]"#);
    cluster.wait_state(failing, "failed", TASK_TIMEOUT);
    let action = cluster
        .action(&["task", "wait", "-a", "--timeout", "30"])
        .failed();
    assert_eq!(action.status.code(), Some(1), "{action}");
    assert!(
        action
            .stderr
            .contains(&format!("task {failing} had already failed")),
        "{action}"
    );
}

/// An argument of 70 MB is refused before it is sent, in one sentence that gives the limit and
/// what to do; nothing is added and the coordinator goes on answering.
#[test]
fn an_argument_over_the_frame_limit_is_refused_in_one_sentence() {
    let cluster = Cluster::start();
    let big = format!("[\"{}\"]", "x".repeat(70_000_000));
    let file = cluster.write_args_file(&[big]);
    let action = cluster
        .action_within(
            &[
                "task",
                "add",
                &example("square"),
                "--args-file",
                file.to_str().unwrap(),
            ],
            Duration::from_secs(60),
        )
        .failed();
    let sentence = action.one_sentence();
    assert!(
        sentence.contains("64 MiB") && sentence.contains("by reference"),
        "{action}"
    );
    assert!(action.stdout.is_empty(), "{action}");
    assert!(cluster.list(&[]).is_empty(), "nothing was added");
}

/// clap's errors are one sentence on stderr with exit status 2 (`task show abc`, an unknown
/// flag, a missing argument, a coordinator address that is not HOST:PORT); --help and
/// --version print as usual and exit 0.
#[test]
fn usage_errors_are_one_sentence_with_status_2() {
    let bins = Binaries::locate(Profile::Debug);
    let cli = |args: &[&str]| run(&bins.actionwurm, None, args, &[], TASK_TIMEOUT, None);
    for (args, help) in [
        (&["task", "show", "abc"][..], "actionwurm task show --help"),
        (
            &["task", "list", "--colour"][..],
            "actionwurm task list --help",
        ),
        (&["task", "add"][..], "actionwurm task add --help"),
    ] {
        let action = cli(args).failed();
        assert_eq!(action.status.code(), Some(2), "{action}");
        assert!(action.one_sentence().contains(help), "{action}");
        assert!(action.stdout.is_empty(), "{action}");
    }
    for args in [
        &["--help"][..],
        &["task", "wait", "--help"][..],
        &["--version"][..],
    ] {
        let action = cli(args).ok();
        assert!(!action.stdout.trim().is_empty(), "{action}");
    }
    for addr in ["localhost", "127.0.0.1:2024x"] {
        let action = run(
            &bins.actionwurm,
            Some(addr),
            &["task", "list"],
            &[],
            TASK_TIMEOUT,
            None,
        );
        let action = action.failed();
        assert_eq!(action.status.code(), Some(2), "{action}");
        assert!(action.one_sentence().contains("HOST:PORT"), "{action}");
    }
    let help = cli(&["task", "wait", "--help"]).ok();
    assert!(help.stdout.contains("had already failed or been"), "{help}");
}
