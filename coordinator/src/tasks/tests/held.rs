//! The task actor with held dependents (`task_table/held.rs`) as a worker sees them in its
//! frames: a chain's links go to the worker of their head within its prefetch room, a failed
//! head fails them and orders them killed, and a worker's unasked `Returned` ends their flights.

use super::*;
use tatzelwurm_proto::task::{Outcome, TaskError, DEPENDENCY_FAILED};

fn report(task: u64, outcome: Outcome) -> Report {
    Report {
        task: TaskId(task),
        attempt: Attempt(1),
        outcome,
        output: Default::default(),
    }
}

/// Adds one task running after `after` (played) and returns its id.
async fn add_after(tasks: &TasksHandle, sink: &PushSink, request: u64, after: &[u64]) -> TaskId {
    let mut spec = TaskSpec::call("tasks:square", "[1]", "{}");
    spec.after = after.iter().map(|id| TaskId(*id)).collect();
    let add = Command::Add {
        tasks: vec![spec],
        play: true,
        key: None,
        watch: false,
    };
    match tasks.command(add, origin(1, request, sink)).await {
        Reply::Added(ids) => ids[0],
        other => panic!("{other:?}"),
    }
}

/// The attempts of the `Run` frames sent to a worker until `count` came (other frames are
/// collected too and returned second).
async fn runs(
    frames: &mut mpsc::UnboundedReceiver<ToWorker>,
    count: usize,
) -> (Vec<(TaskId, Attempt)>, Vec<ToWorker>) {
    let mut run = Vec::new();
    let mut other = Vec::new();
    while run.len() < count {
        match next_frame(frames).await {
            ToWorker::Run(list) => run.extend(keys(&list)),
            frame => other.push(frame),
        }
    }
    (run, other)
}

async fn show(tasks: &TasksHandle, sink: &PushSink, id: u64) -> tatzelwurm_proto::task::TaskInfo {
    match tasks
        .command(Command::Show(TaskId(id)), origin(1, 900 + id, sink))
        .await
    {
        Reply::Task(info) => *info,
        other => panic!("{other:?}"),
    }
}

/// A chain goes to the worker that runs its head, one held link per prefetch place (an
/// unmeasured function: one queued per slot); a completion makes room for the next link. A
/// held link shows as `blocked`. When a link fails, the held one after it fails with
/// `DependencyFailed` (never ran: no attempts) and the worker is told to kill it; the worker's
/// unasked `Returned` ends its flight.
#[tokio::test]
async fn a_chain_flows_to_the_worker_of_its_head() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = start(dir.path());
    let (sink, _pushed) = mpsc::unbounded_channel();
    let (a, mut to_a) = worker(&tasks, "a", 1).await;
    let first = add_after(&tasks, &sink, 1, &[]).await;
    let second = add_after(&tasks, &sink, 2, &[first.0]).await;
    let third = add_after(&tasks, &sink, 3, &[second.0]).await;
    let (run, _) = runs(&mut to_a, 2).await;
    assert_eq!(run, vec![(first, Attempt(1)), (second, Attempt(1))]);
    assert_eq!(show(&tasks, &sink, 2).await.state, TaskState::Blocked);
    let workers = tasks.list_workers().await;
    assert_eq!((workers[0].running, workers[0].queued), (2, 2));

    let done = Outcome::Completed { result: "1".into() };
    tasks
        .started(a, vec![(first, Attempt(1))], held().await)
        .await;
    tasks.reports(a, vec![report(1, done)], held().await).await;
    let (run, _) = runs(&mut to_a, 1).await;
    assert_eq!(run, vec![(third, Attempt(1))], "room for the next link");
    assert_eq!(show(&tasks, &sink, 2).await.state, TaskState::Running);

    let error = TaskError {
        kind: "ValueError".into(),
        message: "no".into(),
        traceback: String::new(),
    };
    tasks
        .started(a, vec![(second, Attempt(1))], held().await)
        .await;
    tasks
        .reports(a, vec![report(2, Outcome::Failed { error })], held().await)
        .await;
    let mut kill = None;
    while kill.is_none() {
        if let ToWorker::Kill(list) = next_frame(&mut to_a).await {
            kill = Some(list);
        }
    }
    assert_eq!(kill.unwrap(), vec![(third, Attempt(1))]);
    let info = show(&tasks, &sink, 3).await;
    assert_eq!(info.state, TaskState::Failed);
    assert_eq!(info.error.unwrap().kind, DEPENDENCY_FAILED);
    assert_eq!(info.attempts, Attempt(0), "it never ran");
    // The worker gave it back unasked (its dependency failed there): the flight ends.
    tasks
        .returned(a, vec![(third, Attempt(1))], held().await)
        .await;
    let workers = tasks.list_workers().await;
    assert_eq!((workers[0].running, workers[0].queued), (0, 0));
}

/// A link whose head fails with a retry left is taken back; given back, it waits `blocked`;
/// when the head runs again, the link is held again, and its `Run` reaches the worker after the
/// head's (the worker counts a dependency it does not hold as done), although the head's waits
/// for the round's flush and the link's record would let it leave before.
#[tokio::test]
async fn a_retried_head_is_sent_before_its_held_link() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = start(dir.path());
    let (sink, _pushed) = mpsc::unbounded_channel();
    let (a, mut to_a) = worker(&tasks, "a", 1).await;
    let mut head = TaskSpec::call("tasks:square", "[1]", "{}");
    head.policy.retries = 1;
    head.policy.backoff_ms = 20;
    let add = Command::Add {
        tasks: vec![head],
        play: true,
        key: None,
        watch: false,
    };
    tasks.command(add, origin(1, 1, &sink)).await;
    let link = add_after(&tasks, &sink, 2, &[1]).await;
    let (run, _) = runs(&mut to_a, 2).await;
    assert_eq!(run, vec![(TaskId(1), Attempt(1)), (link, Attempt(1))]);

    let error = TaskError {
        kind: "ValueError".into(),
        message: "once".into(),
        traceback: String::new(),
    };
    tasks
        .started(a, vec![(TaskId(1), Attempt(1))], held().await)
        .await;
    tasks
        .reports(a, vec![report(1, Outcome::Failed { error })], held().await)
        .await;
    let mut taken = None;
    while taken.is_none() {
        if let ToWorker::TakeBack(list) = next_frame(&mut to_a).await {
            taken = Some(list);
        }
    }
    assert_eq!(taken.unwrap(), vec![(link, Attempt(1))]);
    tasks
        .returned(a, vec![(link, Attempt(1))], held().await)
        .await;
    assert_eq!(show(&tasks, &sink, 2).await.state, TaskState::Blocked);
    let (run, _) = runs(&mut to_a, 2).await;
    assert_eq!(
        run,
        vec![(TaskId(1), Attempt(2)), (link, Attempt(2))],
        "the head's Run first"
    );
}
