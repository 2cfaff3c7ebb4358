//! The task actor with queues and schedules: queue commands, limits and pauses as a worker
//! sees them in its frames, queue-aware dispatch, task pause, and schedules that fire.

use super::*;
use tatzelwurm_proto::actioner::FailureKind;
use tatzelwurm_proto::queue::QueueChange;
use tatzelwurm_proto::schedule::{ScheduleChange, ScheduleSpec, Trigger};
use tatzelwurm_proto::task::Outcome;

/// Registers a worker of `slots` slots serving `queues`.
async fn serving(
    tasks: &TasksHandle,
    name: &str,
    slots: u32,
    queues: &[&str],
) -> (WorkerId, mpsc::UnboundedReceiver<ToWorker>) {
    let (sender, frames) = mpsc::unbounded_channel();
    let hello = WorkerHello {
        name: name.into(),
        slots,
        python: "3.11.7".into(),
        queues: queues.iter().map(|q| q.to_string()).collect(),
        async_concurrency: 1,
    };
    let (id, _) = tasks.register(hello, "a".into(), sender).await.unwrap();
    tasks.wake().await;
    (id, frames)
}

fn in_queue(n: u64, queue: &str) -> TaskSpec {
    TaskSpec {
        queue: queue.into(),
        ..TaskSpec::call("tasks:square", format!("[{n}]"), "{}")
    }
}

fn add(tasks: Vec<TaskSpec>, play: bool) -> Command {
    Command::Add {
        tasks,
        play,
        key: None,
        watch: false,
    }
}

fn completed(task: TaskId, attempt: Attempt) -> Report {
    Report {
        task,
        attempt,
        outcome: Outcome::Completed { result: "1".into() },
        output: Default::default(),
    }
}

/// The runs among the frames already sent (acknowledgements and the like skipped).
fn runs_sent(frames: &mut mpsc::UnboundedReceiver<ToWorker>) -> Vec<Assignment> {
    let mut runs = Vec::new();
    while let Ok(frame) = frames.try_recv() {
        if let ToWorker::Run(run) = frame {
            runs.extend(run);
        }
    }
    runs
}

/// The next `Run` sent to a worker, other frames skipped.
async fn next_run(frames: &mut mpsc::UnboundedReceiver<ToWorker>) -> Vec<Assignment> {
    loop {
        if let ToWorker::Run(run) = next_frame(frames).await {
            return run;
        }
    }
}

/// A queue nothing names is refused with the known ones listed; a limit caps the queue's
/// tasks in flight; a paused queue hands out nothing until resumed; `queue list` counts.
#[tokio::test]
async fn queue_limits_and_pauses() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = start(dir.path());
    let (sink, _pushed) = mpsc::unbounded_channel();
    let change = |change| Command::Queue {
        name: "lim".into(),
        change,
    };
    match tasks
        .command(change(QueueChange::Pause), origin(1, 1, &sink))
        .await
    {
        Reply::Error(failure) => {
            assert_eq!(failure.kind, FailureKind::UnknownQueue);
            assert!(failure.message.starts_with("there is no queue `lim`"));
        }
        other => panic!("{other:?}"),
    }
    let (w, mut to_w) = serving(&tasks, "w", 4, &["lim", "other"]).await;
    match tasks
        .command(change(QueueChange::Limit(1)), origin(1, 2, &sink))
        .await
    {
        Reply::Queues(queues) => {
            assert_eq!(queues.len(), 1);
            assert_eq!(
                (queues[0].limit, &queues[0].workers),
                (1, &vec!["w".into()])
            );
        }
        other => panic!("{other:?}"),
    }
    let specs = (1..=3).map(|n| in_queue(n, "lim")).collect();
    tasks.command(add(specs, true), origin(1, 3, &sink)).await;
    let run = next_run(&mut to_w).await;
    assert_eq!(keys(&run), vec![(TaskId(1), Attempt(1))], "the limit is 1");
    tasks
        .reports(w, vec![completed(TaskId(1), Attempt(1))], held().await)
        .await;
    let run = next_run(&mut to_w).await;
    assert_eq!(keys(&run), vec![(TaskId(2), Attempt(1))]);
    tasks
        .command(change(QueueChange::Pause), origin(1, 4, &sink))
        .await;
    tasks
        .reports(w, vec![completed(TaskId(2), Attempt(1))], held().await)
        .await;
    // Answered after the round that applied the report (and would have dispatched).
    let listed = tasks.command(Command::Queues, origin(1, 5, &sink)).await;
    assert!(
        runs_sent(&mut to_w).is_empty(),
        "a paused queue hands out nothing"
    );
    let Reply::Queues(queues) = listed else {
        panic!("{listed:?}")
    };
    let names: Vec<&str> = queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, vec!["lim", "other"], "known by a worker, by name");
    let lim = &queues[0];
    assert!(lim.paused);
    assert_eq!(lim.count(TaskState::Completed), 2);
    assert_eq!(lim.count(TaskState::Ready), 1);
    tasks
        .command(change(QueueChange::Resume), origin(1, 6, &sink))
        .await;
    let run = next_run(&mut to_w).await;
    assert_eq!(keys(&run), vec![(TaskId(3), Attempt(1))]);
}

/// A worker gets only tasks of the queues it serves; a task of another queue waits for a
/// worker of its own.
#[tokio::test]
async fn workers_get_their_queues_only() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = start(dir.path());
    let (sink, _pushed) = mpsc::unbounded_channel();
    let (_, mut to_a) = serving(&tasks, "a", 2, &["a"]).await;
    tasks
        .command(
            add(vec![in_queue(1, "b"), in_queue(2, "a")], true),
            origin(1, 1, &sink),
        )
        .await;
    let run = next_run(&mut to_a).await;
    assert_eq!(keys(&run), vec![(TaskId(2), Attempt(1))]);
    let (_, mut to_b) = serving(&tasks, "b", 1, &["b"]).await;
    let run = next_run(&mut to_b).await;
    assert_eq!(keys(&run), vec![(TaskId(1), Attempt(1))]);
    assert!(runs_sent(&mut to_a).is_empty());
}

/// Pause and play through the actor; a bad queue name or priority refuses the whole add.
#[tokio::test]
async fn pause_play_and_bad_placement() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = start(dir.path());
    let (sink, _pushed) = mpsc::unbounded_channel();
    tasks
        .command(add(specs(2), false), origin(1, 1, &sink))
        .await;
    let paused = tasks
        .command(Command::Pause(Selection::All), origin(1, 2, &sink))
        .await;
    assert_eq!(
        paused,
        Reply::Changed {
            changed: vec![TaskId(1), TaskId(2)],
            unchanged: Vec::new()
        }
    );
    let played = tasks
        .command(
            Command::Play(Selection::Ids(vec![TaskId(2)])),
            origin(1, 3, &sink),
        )
        .await;
    assert!(matches!(played, Reply::Changed { ref changed, .. } if changed == &vec![TaskId(2)]));
    let bad_queue = add(vec![in_queue(1, "no spaces")], true);
    let bad_priority = add(
        vec![TaskSpec {
            priority: 101,
            ..in_queue(1, "default")
        }],
        true,
    );
    for (n, command) in [bad_queue, bad_priority].into_iter().enumerate() {
        match tasks.command(command, origin(1, 4 + n as u64, &sink)).await {
            Reply::Error(failure) => {
                assert_eq!(failure.kind, FailureKind::BadRequest);
                assert!(!failure.message.starts_with("task "), "{}", failure.message);
            }
            other => panic!("{other:?}"),
        }
    }
    // In a larger add, the refusal names the bad task by its place.
    let second_bad = add(vec![in_queue(1, "default"), in_queue(2, "no spaces")], true);
    match tasks.command(second_bad, origin(1, 8, &sink)).await {
        Reply::Error(failure) => {
            assert_eq!(failure.kind, FailureKind::BadRequest);
            assert!(
                failure.message.starts_with("task 2 of this add: "),
                "{}",
                failure.message
            );
        }
        other => panic!("{other:?}"),
    }
    let refused = tasks
        .command(
            add(
                vec![TaskSpec {
                    after: vec![TaskId(77)],
                    ..in_queue(1, "default")
                }],
                true,
            ),
            origin(1, 9, &sink),
        )
        .await;
    assert!(
        matches!(refused, Reply::Error(ref f) if f.kind == FailureKind::UnknownTask),
        "{refused:?}"
    );
    match tasks
        .command(Command::Show(TaskId(3)), origin(1, 10, &sink))
        .await
    {
        Reply::Error(failure) => assert_eq!(failure.kind, FailureKind::UnknownTask),
        other => panic!("nothing was added: {other:?}"),
    }
}

/// A schedule is added durably, refused when its name is taken, and fires: each firing adds
/// a ready task that the schedule remembers.
#[tokio::test]
async fn schedules_fire_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = start(dir.path());
    let (sink, _pushed) = mpsc::unbounded_channel();
    let spec = ScheduleSpec {
        name: "tick".into(),
        trigger: Trigger::Every(1_000),
        task: TaskSpec::call("tasks:square", "[2]", "{}"),
    };
    let added = tasks
        .command(Command::AddSchedule(spec.clone()), origin(1, 1, &sink))
        .await;
    assert!(
        matches!(added, Reply::Schedules(ref s) if s.len() == 1),
        "{added:?}"
    );
    match tasks
        .command(Command::AddSchedule(spec), origin(1, 2, &sink))
        .await
    {
        Reply::Error(failure) => assert_eq!(failure.kind, FailureKind::ScheduleExists),
        other => panic!("{other:?}"),
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let fired = loop {
        let shown = tasks
            .command(Command::Schedules(Some("tick".into())), origin(1, 3, &sink))
            .await;
        let Reply::Schedules(list) = shown else {
            panic!("{shown:?}")
        };
        if list[0].fired > 0 {
            break list[0].clone();
        }
        assert!(std::time::Instant::now() < deadline, "no firing within 5 s");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let (task, _) = fired.last[0];
    match tasks
        .command(Command::Show(task), origin(1, 4, &sink))
        .await
    {
        Reply::Task(info) => assert_eq!(info.state, TaskState::Ready),
        other => panic!("{other:?}"),
    }
    let removed = tasks
        .command(
            Command::Schedule {
                name: "tick".into(),
                change: ScheduleChange::Remove,
            },
            origin(1, 5, &sink),
        )
        .await;
    assert!(matches!(removed, Reply::Schedules(_)), "{removed:?}");
    let listed = tasks
        .command(Command::Schedules(None), origin(1, 6, &sink))
        .await;
    assert_eq!(listed, Reply::Schedules(Vec::new()));
}
