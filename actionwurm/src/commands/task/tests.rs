//! Tests of the task subcommands against the scripted coordinator: what is sent, what the user
//! reads, and the exit code.

use super::*;
use crate::output::sentence;
use tatzelwurm_client::fake_coordinator::{shown_task, task, FakeCoordinator, Step};
use tatzelwurm_proto::actioner::{Command, Reply, Selection};
use tatzelwurm_proto::task::TaskPolicy;

/// The arguments of `task add FUNC EXTRA...` as clap parses them.
fn add_args_with(function: &str, extra: &[&str]) -> AddArgs {
    use clap::Parser;
    let argv = ["actionwurm", "task", "add", function]
        .into_iter()
        .chain(extra.iter().copied());
    match crate::cli::Cli::try_parse_from(argv).unwrap().command {
        crate::cli::TopCommand::Task(TaskCommand::Add(args)) => args,
        other => panic!("not an add: {other:?}"),
    }
}

fn add_args(function: &str) -> AddArgs {
    add_args_with(function, &[])
}

fn select(ids: &[u64], all: bool) -> SelectArgs {
    SelectArgs {
        ids: ids.to_vec(),
        all,
    }
}

/// Answers each `Add` (which must carry a key) with consecutive ids starting at 1.
fn numbering() -> impl FnMut(&Command) -> Vec<Step> + Send + 'static {
    let mut next = 1;
    move |command| {
        let Command::Add {
            tasks,
            key: Some(_),
            ..
        } = command
        else {
            panic!("unexpected {command:?}");
        };
        let ids = (next..next + tasks.len() as u64).map(TaskId).collect();
        next += tasks.len() as u64;
        vec![Step::Reply(Reply::Added(ids))]
    }
}

/// An args file becomes one `Add` with a task per line; stdout holds only the ids.
#[tokio::test]
async fn args_file_is_one_round_trip() {
    let path =
        std::env::temp_dir().join(format!("actionwurm-test-{}-args.txt", std::process::id()));
    std::fs::write(&path, "[1]\n[2, \"x\"]\n\n[3]\n").unwrap();
    let fake = FakeCoordinator::start(numbering()).await;
    let mut args = add_args("examples.words:count");
    args.args_file = Some(path.clone());
    args.kwargs = Some("{\"n\": 1}".into());
    args.play = true;
    let outcome = add(&Target::plain(&fake.addr), &args).await.unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(outcome, Outcome::success("1\n2\n3\n".into()));
    let seen = fake.requests().await;
    assert_eq!(seen.len(), 1);
    let Command::Add { tasks, play, .. } = &seen[0].command else {
        panic!("not an add");
    };
    assert!(*play);
    let args: Vec<&str> = tasks.iter().map(|t| t.args.as_str()).collect();
    assert_eq!(args, vec!["[1]", "[2,\"x\"]", "[3]"]);
    assert!(tasks.iter().all(|t| t.kwargs == "{\"n\":1}"));
}

/// The policy flags reach the coordinator in every spec of the add, from --args-file too.
#[tokio::test]
async fn policy_is_sent_with_every_task() {
    let path =
        std::env::temp_dir().join(format!("actionwurm-test-{}-policy.txt", std::process::id()));
    std::fs::write(&path, "[1]\n[2]\n").unwrap();
    let fake = FakeCoordinator::start(numbering()).await;
    let mut args = add_args("examples.words:count");
    args.args_file = Some(path.clone());
    args.policy.retries = 3;
    args.policy.backoff = 0.5;
    args.policy.timeout = Some(2.5);
    args.policy.crash_limit = 2;
    let outcome = add(&Target::plain(&fake.addr), &args).await.unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(outcome, Outcome::success("1\n2\n".into()));
    let expected = TaskPolicy {
        at_most_once: false,
        retries: 3,
        backoff_ms: 500,
        timeout_ms: Some(2_500),
        crash_limit: 2,
    };
    let seen = fake.requests().await;
    let Command::Add { tasks, .. } = &seen[0].command else {
        panic!("not an add");
    };
    assert_eq!(tasks.len(), 2);
    assert!(tasks.iter().all(|t| t.policy == expected), "{tasks:?}");

    let fake = FakeCoordinator::start(numbering()).await;
    let mut args = add_args("m:f");
    args.policy.at_most_once = true;
    add(&Target::plain(&fake.addr), &args).await.unwrap();
    let seen = fake.requests().await;
    let Command::Add { tasks, .. } = &seen[0].command else {
        panic!("not an add");
    };
    assert_eq!(
        tasks[0].policy,
        TaskPolicy {
            at_most_once: true,
            ..TaskPolicy::default()
        }
    );
}

/// A bad FUNC fails before connecting: the message is about FUNC, not the coordinator.
#[tokio::test]
async fn bad_function_fails_before_connecting() {
    let err = add(&Target::plain("127.0.0.1:1"), &add_args("count"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("package.module:function"), "{err}");
}

/// Large inputs are split by count (the first adds smaller, then as many as all before, up
/// to `BATCH_TASKS`) and by size, keeping the order.
#[test]
fn batches_split_by_count_and_bytes() {
    let template = TaskSpec::call("m:f", "[]", "{}");
    let total = BATCH_TASKS * 3 + 1;
    let many: Vec<Cow<str>> = (0..total).map(|i| format!("[{i}]").into()).collect();
    let cut: Vec<Vec<TaskSpec>> = batches(&template, many).collect();
    let sizes: Vec<usize> = cut.iter().map(Vec::len).collect();
    let first = tatzelwurm_proto::batch::FIRST_ADD_TASKS;
    assert_eq!(&sizes[..3], &[first, first, 2 * first]);
    assert!(sizes.iter().all(|size| *size <= BATCH_TASKS));
    assert_eq!(sizes.iter().sum::<usize>(), total);
    assert!(sizes.contains(&BATCH_TASKS), "{sizes:?}");
    let args: Vec<&str> = cut.iter().flatten().map(|s| s.args.as_str()).collect();
    assert_eq!(args[total - 1], format!("[{}]", total - 1));
    let big = "x".repeat(BATCH_BYTES / 2);
    let sizes: Vec<usize> = batches(&template, vec![big.as_str().into(); 3])
        .map(|batch| batch.len())
        .collect();
    assert_eq!(sizes, vec![1, 1, 1]);
}

/// Every spec of an add is the template (function, kwargs, policy, queue, priority, start,
/// dependencies) with its own arguments.
#[test]
fn batches_give_every_task_the_shared_fields() {
    let template = TaskSpec {
        policy: TaskPolicy {
            retries: 2,
            ..TaskPolicy::default()
        },
        queue: "q".into(),
        priority: 5,
        run_at: Some(tatzelwurm_proto::task::When::Delay(7)),
        after: vec![TaskId(3)],
        ..TaskSpec::call("m:f", "[]", r#"{"k":1}"#)
    };
    let args: Vec<Cow<str>> = vec!["[1]".into(), r#"["two",2]"#.to_string().into()];
    let specs: Vec<TaskSpec> = batches(&template, args).flatten().collect();
    assert_eq!(
        specs,
        vec![
            TaskSpec {
                args: "[1]".into(),
                ..template.clone()
            },
            TaskSpec {
                args: r#"["two",2]"#.into(),
                ..template.clone()
            },
        ]
    );
}

/// A bad line fails the add before any add is sent, with or without a coordinator to answer:
/// the line's error, not the connection's.
#[tokio::test]
async fn bad_args_file_sends_nothing() {
    let path = std::env::temp_dir().join(format!("actionwurm-test-{}-bad.txt", std::process::id()));
    let mut text: String = (0..5_000).map(|i| format!("[{i}]\n")).collect();
    text.push_str("[1,\n");
    std::fs::write(&path, &text).unwrap();
    let mut args = add_args("m:f");
    args.args_file = Some(path.clone());
    let fake = FakeCoordinator::start(numbering()).await;
    let err = add(&Target::plain(&fake.addr), &args).await.unwrap_err();
    let unreachable = add(&Target::plain("127.0.0.1:1"), &args).await.unwrap_err();
    std::fs::remove_file(&path).unwrap();
    for err in [err, unreachable] {
        let err = err.to_string();
        assert!(err.contains(" line 5001 is not a JSON array: "), "{err}");
        assert!(err.ends_with("; nothing was added"), "{err}");
    }
    assert!(fake.requests().await.is_empty());
}

/// A file that passes is added even when the connection was made long before the check ended.
#[tokio::test]
async fn large_args_file_is_added_in_order() {
    let path =
        std::env::temp_dir().join(format!("actionwurm-test-{}-large.txt", std::process::id()));
    let total = 3 * tatzelwurm_proto::batch::FIRST_ADD_TASKS + 5;
    let text: String = (0..total).map(|i| format!("[{i}, \"x\"]\n")).collect();
    std::fs::write(&path, &text).unwrap();
    let fake = FakeCoordinator::start(numbering()).await;
    let mut args = add_args("m:f");
    args.args_file = Some(path.clone());
    let outcome = add(&Target::plain(&fake.addr), &args).await.unwrap();
    std::fs::remove_file(&path).unwrap();
    let expected: String = (1..=total).map(|id| format!("{id}\n")).collect();
    assert_eq!(outcome, Outcome::success(expected));
    let sent: Vec<String> = fake
        .requests()
        .await
        .into_iter()
        .flat_map(|request| match request.command {
            Command::Add { tasks, .. } => tasks,
            other => panic!("not an add: {other:?}"),
        })
        .map(|task| task.args)
        .collect();
    let lines: Vec<String> = (0..total).map(|i| format!("[{i},\"x\"]")).collect();
    assert_eq!(sent, lines);
}

/// Ids are printed as `Display` prints them, one per line.
#[test]
fn ids_print_as_displayed() {
    let mut out = String::new();
    let ids = [0, 7, 10, 99, 1_000_001, u64::MAX];
    for id in ids {
        push_id(&mut out, TaskId(id));
    }
    let expected: String = ids.iter().map(|id| format!("{}\n", TaskId(*id))).collect();
    assert_eq!(out, expected);
}

/// Playing named tasks of which one is running tells why and exits 1; with -a it exits 0.
#[tokio::test]
async fn play_reports_tasks_left_alone() {
    let answer = || {
        vec![Step::Reply(Reply::Changed {
            changed: vec![TaskId(1), TaskId(2)],
            unchanged: vec![(TaskId(4), TaskState::Running)],
        })]
    };
    let fake = FakeCoordinator::start(move |_| answer()).await;
    let outcome = change(
        &Target::plain(&fake.addr),
        &select(&[1, 2, 4], false),
        Change::Play,
    )
    .await
    .unwrap();
    assert_eq!(outcome.stdout, "played 2 tasks\n");
    assert_eq!(
        outcome.stderr,
        vec!["task 4 is running; only created and paused tasks can be played"]
    );
    assert_eq!(outcome.exit, Exit::Failure);
    let seen = fake.requests().await;
    assert_eq!(
        seen[0].command,
        Command::Play(Selection::Ids(vec![TaskId(1), TaskId(2), TaskId(4)]))
    );

    let fake = FakeCoordinator::start(move |_| answer()).await;
    let outcome = change(&Target::plain(&fake.addr), &select(&[], true), Change::Play)
        .await
        .unwrap();
    assert_eq!(outcome.exit, Exit::Success);
    assert_eq!(
        fake.requests().await[0].command,
        Command::Play(Selection::All)
    );
}

/// Killing a finished task names its state and the rule.
#[test]
fn kill_note() {
    let changed = Changed {
        changed: vec![TaskId(3)],
        unchanged: vec![(TaskId(4), TaskState::Completed)],
    };
    let outcome = change_outcome(&changed, false, Change::Kill);
    assert_eq!(outcome.stdout, "killed 1 task\n");
    assert_eq!(
        outcome.stderr,
        vec!["task 4 is completed; only unfinished tasks can be killed"]
    );
}

/// `list --json` prints one array; the states asked for are sent.
#[tokio::test]
async fn list_json_is_one_array() {
    let fake = FakeCoordinator::start(|_| {
        vec![
            Step::Reply(Reply::Tasks {
                tasks: vec![task(1, TaskState::Failed)],
                more: true,
            }),
            Step::Reply(Reply::Tasks {
                tasks: vec![task(2, TaskState::Failed)],
                more: false,
            }),
        ]
    })
    .await;
    let args = ListArgs {
        states: vec![TaskState::Failed],
        queue: Some("gpu".into()),
        limit: 1_000,
        after: None,
        json: true,
    };
    let outcome = list(&Target::plain(&fake.addr), &args).await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert_eq!(json[1]["error"]["type"], "ValueError");
    let seen = fake.requests().await;
    assert_eq!(
        seen[0].command,
        Command::List {
            states: vec![TaskState::Failed],
            queue: Some("gpu".into()),
            after: None,
            limit: 1_000,
        }
    );
}

/// `show --json` is one object with the output.
#[tokio::test]
async fn show_json_is_one_object() {
    let fake = FakeCoordinator::start(|_| {
        vec![Step::Reply(Reply::Task(Box::new(shown_task(
            5,
            TaskState::Completed,
        ))))]
    })
    .await;
    let outcome = show(&Target::plain(&fake.addr), &ShowArgs { id: 5, json: true })
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(json["id"], 5);
    assert_eq!(json["stdout"], "counting\n");
}

/// An unknown id: the coordinator's sentence is the error.
#[tokio::test]
async fn show_unknown_task() {
    let fake = FakeCoordinator::start(|_| {
        vec![Step::Reply(Reply::Error(
            tatzelwurm_proto::actioner::Failure::unknown_task("there is no task 99"),
        ))]
    })
    .await;
    let err = show(
        &Target::plain(&fake.addr),
        &ShowArgs {
            id: 99,
            json: false,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(sentence(&err), "there is no task 99");
}

/// A wait where one task failed and one was killed exits 1 and names both.
#[tokio::test]
async fn wait_names_what_did_not_complete() {
    let fake = FakeCoordinator::start(|command| match command {
        Command::List { .. } => vec![Step::Reply(Reply::Tasks {
            tasks: vec![task(9, TaskState::Created)],
            more: false,
        })],
        _ => vec![Step::Reply(Reply::Waited(summary(&[
            task(1, TaskState::Completed),
            task(2, TaskState::Failed),
            task(3, TaskState::Killed),
        ])))],
    })
    .await;
    let args = WaitArgs {
        select: select(&[1, 2, 3], false),
        timeout: None,
    };
    let outcome = wait(&Target::plain(&fake.addr), &args).await.unwrap();
    assert_eq!(
        outcome.stdout,
        "waited for 3 tasks: 1 completed, 1 failed, 1 killed\n"
    );
    assert_eq!(
        outcome.stderr,
        vec!["task 2 failed: ValueError: bad value", "task 3 was killed"]
    );
    assert_eq!(outcome.exit, Exit::Failure);
}

/// A wait where every task completed exits 0.
#[test]
fn wait_success() {
    let outcome = wait_outcome(
        &summary(&[task(1, TaskState::Completed), task(2, TaskState::Completed)]),
        &[],
    );
    assert_eq!(
        outcome,
        Outcome::success("waited for 2 tasks: 2 completed\n".into())
    );
    assert_eq!(
        wait_outcome(&WaitSummary::default(), &[]),
        Outcome::success("no tasks to wait for\n".into())
    );
}

/// A wait that outlasts --timeout ends with exit 2 and says so, without hanging.
#[tokio::test]
async fn wait_times_out() {
    let fake = FakeCoordinator::start(|command| match command {
        Command::List { .. } => vec![Step::Reply(Reply::Tasks {
            tasks: vec![],
            more: false,
        })],
        _ => vec![],
    })
    .await;
    let args = WaitArgs {
        select: select(&[7, 8], false),
        timeout: Some(0.2),
    };
    let outcome = wait(&Target::plain(&fake.addr), &args).await.unwrap();
    assert_eq!(outcome.exit, Exit::TimedOut);
    assert_eq!(
        outcome.stderr,
        vec!["timed out after 0.2 s waiting for tasks 7, 8"]
    );
    assert!(outcome.stdout.is_empty());
}

/// A wait for every task that times out names the states it waited on, `waiting` among them.
#[test]
fn wait_all_times_out_naming_waiting() {
    let outcome = timed_out(1.0, &select(&[], true));
    assert_eq!(
        outcome.stderr,
        vec!["timed out after 1 s waiting for every task that was played and not finished"]
    );
}

/// The summary counts each state a waited task is in, `waiting` too, and only completed ones
/// count as success.
#[test]
fn wait_counts_waiting_tasks() {
    let outcome = wait_outcome(
        &summary(&[
            task(1, TaskState::Completed),
            task(2, TaskState::Waiting),
            task(3, TaskState::Completed),
        ]),
        &[],
    );
    assert_eq!(
        outcome.stdout,
        "waited for 3 tasks: 1 waiting, 2 completed\n"
    );
    assert_eq!(outcome.stderr, vec!["task 2 is waiting"]);
    assert_eq!(outcome.exit, Exit::Failure);
}

/// A wait for a `created` task fails at once, saying how to play it, and never sends the wait.
#[tokio::test]
async fn wait_for_a_created_task_fails_at_once() {
    let fake = FakeCoordinator::start(|command| match command {
        Command::List { states, .. } => {
            assert_eq!(states, &vec![TaskState::Created, TaskState::Paused]);
            vec![Step::Reply(Reply::Tasks {
                tasks: vec![task(4, TaskState::Created), task(5, TaskState::Created)],
                more: false,
            })]
        }
        other => panic!("sent {other:?}"),
    })
    .await;
    let args = WaitArgs {
        select: select(&[3, 5], false),
        timeout: None,
    };
    let outcome = wait(&Target::plain(&fake.addr), &args).await.unwrap();
    assert_eq!(outcome.exit, Exit::Failure);
    assert_eq!(
        outcome.stderr,
        vec!["task 5 is created but not played, so waiting would never end; play it with `actionwurm task play 5` (or add with --play), then wait"]
    );
    assert_eq!(fake.requests().await.len(), 1, "no wait was sent");
}

/// `wait -a` with nothing left to wait for, after a task failed and one was killed, exits 1
/// and names both, instead of reading as a success.
#[tokio::test]
async fn wait_all_counts_failures_from_before_the_wait() {
    let fake = FakeCoordinator::start(|command| match command {
        Command::Wait(Selection::All) => {
            let mut summary = summary(&[task(3, TaskState::Failed)]);
            summary.earlier_unsuccessful = 2;
            vec![Step::Reply(Reply::Waited(summary))]
        }
        Command::List { states, .. } => {
            assert_eq!(states, &vec![TaskState::Failed, TaskState::Killed]);
            vec![Step::Reply(Reply::Tasks {
                tasks: vec![
                    task(1, TaskState::Failed),
                    task(2, TaskState::Killed),
                    task(3, TaskState::Failed),
                ],
                more: false,
            })]
        }
        other => panic!("sent {other:?}"),
    })
    .await;
    let args = WaitArgs {
        select: select(&[], true),
        timeout: Some(10.0),
    };
    let outcome = wait(&Target::plain(&fake.addr), &args).await.unwrap();
    assert_eq!(outcome.exit, Exit::Failure);
    assert_eq!(outcome.stdout, "waited for 1 task: 1 failed\n");
    assert_eq!(
        outcome.stderr,
        vec![
            "task 3 failed: ValueError: bad value",
            "task 1 had already failed: ValueError: bad value",
            "task 2 had already been killed",
        ]
    );
    let nothing = wait_outcome(&WaitSummary::default(), &[task(1, TaskState::Failed)]);
    assert_eq!(nothing.stdout, "no tasks to wait for\n");
    assert_eq!(nothing.exit, Exit::Failure);
}

/// An add whose connection drops before the answer is sent again with the same key, and the
/// ids are printed once.
#[tokio::test]
async fn add_is_resent_with_its_key_after_a_drop() {
    use tatzelwurm_client::fake_coordinator::{Greeting, Seen};
    let fake = FakeCoordinator::serve(Greeting::Welcome, 2, |seen: Seen<'_>| {
        match (seen.connection, &seen.message.command) {
            (0, Command::Add { .. }) => vec![Step::Close],
            (1, Command::Add { tasks, .. }) => vec![Step::Reply(Reply::Added(
                (0..tasks.len() as u64).map(|i| TaskId(7 + i)).collect(),
            ))],
            other => panic!("{:?}", other.1),
        }
    })
    .await;
    let outcome = add(&Target::plain(&fake.addr), &add_args("m:f"))
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::success("7\n".into()));
    let seen = fake.requests().await;
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].command, seen[1].command, "the same add, same key");
}

/// `task list --limit N` asks the coordinator for N tasks after `--after`, and when it shows N
/// it says on stderr how to get the next ones.
#[tokio::test]
async fn list_is_limited_and_says_how_to_page_on() {
    let fake = FakeCoordinator::start(|command| match command {
        Command::List { after, limit, .. } => {
            assert_eq!((*after, *limit), (Some(TaskId(10)), 2));
            vec![Step::Reply(Reply::Tasks {
                tasks: vec![task(11, TaskState::Completed), task(12, TaskState::Failed)],
                more: false,
            })]
        }
        other => panic!("sent {other:?}"),
    })
    .await;
    let args = ListArgs {
        states: vec![],
        queue: None,
        limit: 2,
        after: Some(10),
        json: true,
    };
    let outcome = list(&Target::plain(&fake.addr), &args).await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert_eq!(
        outcome.stderr,
        vec!["showing the first 2 matching tasks; pass --after 12 for the next ones, or --limit 0 for all"]
    );
}

/// The coordinator's answer to a wait for `tasks`: their counts by state, and those that did
/// not complete.
fn summary(tasks: &[TaskInfo]) -> WaitSummary {
    let mut summary = WaitSummary::default();
    for info in tasks {
        let unsuccessful = (info.state != TaskState::Completed).then(|| info.clone());
        summary.merge(WaitSummary {
            counts: vec![(info.state, 1)],
            unsuccessful: unsuccessful.into_iter().collect(),
            earlier_unsuccessful: 0,
        });
    }
    summary
}
