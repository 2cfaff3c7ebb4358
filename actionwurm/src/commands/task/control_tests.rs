//! Tests of what issue 11 added to the task subcommands, against the scripted coordinator:
//! queue, priority, start time and dependencies in `task add`, `task pause`, the queue filter
//! of `task list`, and what `task show` says of a task that waits to start.

use super::*;
use crate::cli::{Cli, TopCommand};
use clap::Parser;
use tatzelwurm_client::fake_coordinator::{shown_task, task, FakeCoordinator, Greeting, Step};
use tatzelwurm_proto::actioner::{Command, Reply, Selection};
use tatzelwurm_proto::task::When;

/// The arguments of `task add FUNC EXTRA...` as clap parses them.
fn add_args(function: &str, extra: &[&str]) -> AddArgs {
    let argv = ["actionwurm", "task", "add", function]
        .into_iter()
        .chain(extra.iter().copied());
    match Cli::try_parse_from(argv).unwrap().command {
        TopCommand::Task(TaskCommand::Add(args)) => args,
        other => panic!("not an add: {other:?}"),
    }
}

/// Answers every `Add` with ids from 1.
fn added(command: &Command) -> Vec<Step> {
    let Command::Add { tasks, .. } = command else {
        panic!("unexpected {command:?}");
    };
    vec![Step::Reply(Reply::Added(
        (1..=tasks.len() as u64).map(TaskId).collect(),
    ))]
}

/// Queue, priority, delay and dependencies reach the coordinator in the spec as typed.
#[tokio::test]
async fn add_sends_placement_and_timing() {
    let fake = FakeCoordinator::start(added).await;
    let args = add_args(
        "m:f",
        &[
            "--queue",
            "gpu",
            "--priority",
            "7",
            "--delay",
            "1h30m",
            "--after",
            "3,1",
        ],
    );
    let outcome = add(&Target::plain(&fake.addr), &args).await.unwrap();
    assert_eq!(outcome, Outcome::success("1\n".into()));
    let seen = fake.requests().await;
    let Command::Add { tasks, .. } = &seen[0].command else {
        panic!("not an add");
    };
    assert_eq!(tasks[0].queue, "gpu");
    assert_eq!(tasks[0].priority, 7);
    assert_eq!(tasks[0].run_at, Some(When::Delay(5_400_000)));
    assert_eq!(tasks[0].after, vec![TaskId(1), TaskId(3)]);
}

/// An `--at` in the past adds the task all the same and says on stderr, in one sentence, that
/// it runs now; exit 0, the id on stdout.
#[tokio::test]
async fn add_at_in_the_past_says_it_runs_now() {
    let fake = FakeCoordinator::start(added).await;
    let args = add_args("m:f", &["--at", "2020-01-01T00:00:00Z", "--play"]);
    let outcome = add(&Target::plain(&fake.addr), &args).await.unwrap();
    assert_eq!(outcome.stdout, "1\n");
    assert_eq!(outcome.exit, Exit::Success);
    assert_eq!(
        outcome.stderr,
        vec!["--at 2020-01-01 00:00:00 UTC is in the past, so the task runs now"]
    );
    let seen = fake.requests().await;
    let Command::Add { tasks, .. } = &seen[0].command else {
        panic!("not an add");
    };
    assert_eq!(
        tasks[0].run_at,
        Some(When::At(Timestamp(1_577_836_800_000)))
    );
    let later = add_args("m:f", &["--at", "2999-01-01T00:00:00Z"]);
    assert_eq!(past_start(&later, Timestamp::now()), None);
    let unplayed = add_args("m:f", &["--at", "2020-01-01T00:00:00Z"]);
    assert!(past_start(&unplayed, Timestamp::now())
        .unwrap()
        .ends_with("so the task runs as soon as played"));
}

/// `task pause` sends `Pause` and reports what it paused and what it left alone, failing when
/// a named task could not be paused (as play and kill do); with -a it succeeds.
#[tokio::test]
async fn pause_reports_tasks_left_alone() {
    let answer = |_: &Command| {
        vec![Step::Reply(Reply::Changed {
            changed: vec![TaskId(1)],
            unchanged: vec![(TaskId(2), TaskState::Running)],
        })]
    };
    let fake = FakeCoordinator::serve(Greeting::Welcome, 2, move |seen| {
        answer(&seen.message.command)
    })
    .await;
    let outcome = change(&Target::plain(&fake.addr), &select(&[1, 2]), Change::Pause)
        .await
        .unwrap();
    assert_eq!(outcome.stdout, "paused 1 task\n");
    assert_eq!(
        outcome.stderr,
        vec!["task 2 is running; only created, ready and scheduled tasks can be paused"]
    );
    assert_eq!(outcome.exit, Exit::Failure);
    let all = SelectArgs {
        ids: vec![],
        all: true,
    };
    let outcome = change(&Target::plain(&fake.addr), &all, Change::Pause)
        .await
        .unwrap();
    assert_eq!(outcome.exit, Exit::Success);
    let seen = fake.requests().await;
    assert_eq!(
        seen[0].command,
        Command::Pause(Selection::Ids(vec![TaskId(1), TaskId(2)]))
    );
    assert_eq!(seen[1].command, Command::Pause(Selection::All));
}

fn select(ids: &[u64]) -> SelectArgs {
    SelectArgs {
        ids: ids.to_vec(),
        all: false,
    }
}

/// `task show` of a blocked task looks its dependencies up (as one-task list pages, without
/// output) and names those not completed.
#[tokio::test]
async fn show_of_a_blocked_task_names_pending_dependencies() {
    let fake = FakeCoordinator::start(|command| match command {
        Command::Show(id) => vec![Step::Reply(Reply::Task(Box::new(shown_task(
            id.0,
            TaskState::Blocked,
        ))))],
        Command::List {
            after: Some(below),
            limit: 1,
            ..
        } => {
            let state = match below.0 + 1 {
                1 => TaskState::Completed,
                _ => TaskState::Running,
            };
            vec![Step::Reply(Reply::Tasks {
                tasks: vec![task(below.0 + 1, state)],
                more: false,
            })]
        }
        other => panic!("unexpected {other:?}"),
    })
    .await;
    let args = ShowArgs { id: 9, json: false };
    let outcome = show(&Target::plain(&fake.addr), &args).await.unwrap();
    assert!(outcome.stdout.contains("│ after "), "{}", outcome.stdout);
    assert!(outcome.stdout.contains("2 (running)"), "{}", outcome.stdout);
    assert!(
        !outcome.stdout.contains("1 (completed)"),
        "{}",
        outcome.stdout
    );
    let seen: Vec<Command> = fake
        .requests()
        .await
        .into_iter()
        .map(|m| m.command)
        .collect();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[0], Command::Show(TaskId(9)));
    assert!(
        matches!(&seen[2], Command::List { after: Some(TaskId(1)), limit: 1, states, queue: None } if states.is_empty()),
        "{seen:?}"
    );
}

/// The JSON of a listed scheduled task carries its queue, priority, start time and
/// dependencies.
#[tokio::test]
async fn list_json_has_the_scheduling_fields() {
    let fake = FakeCoordinator::start(|_| {
        vec![Step::Reply(Reply::Tasks {
            tasks: vec![task(3, TaskState::Scheduled), task(4, TaskState::Blocked)],
            more: false,
        })]
    })
    .await;
    let args = ListArgs {
        states: vec![TaskState::Scheduled, TaskState::Blocked],
        queue: None,
        limit: 0,
        after: None,
        json: true,
    };
    let outcome = list(&Target::plain(&fake.addr), &args).await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(json[0]["run_at"].as_f64(), Some(1_795_484_712.0));
    assert_eq!(json[0]["queue"], "default");
    assert_eq!(json[1]["after"], serde_json::json!([1, 2]));
}
