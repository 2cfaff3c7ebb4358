//! Tests of the queue, schedule and pause requests against the scripted coordinator: what
//! each method sends, what it returns, and how the new refusals are classed.

use crate::fake_coordinator::{queue, schedule, FakeCoordinator, Step};
use crate::{Changed, Client, ConnectOptions, ErrorClass};
use std::time::Duration;
use tatzelwurm_proto::actioner::{Command, Failure, FailureKind, Reply, Selection};
use tatzelwurm_proto::queue::QueueChange;
use tatzelwurm_proto::schedule::{ScheduleChange, Trigger};
use tatzelwurm_proto::task::{TaskState, DEFAULT_QUEUE};
use tatzelwurm_proto::TaskId;

async fn connect(addr: &str) -> Client {
    Client::connect(ConnectOptions {
        address: addr.into(),
        token: None,
        name: "test".into(),
        connect_timeout: Duration::from_secs(2),
        reconnect: false,
        tls: None,
        tls_error: None,
    })
    .await
    .unwrap()
}

/// `queues` returns the list as answered, and `queue` sends the name and the change and
/// returns the one queue of the answer.
#[tokio::test]
async fn queues_are_listed_and_changed() {
    let fake = FakeCoordinator::start(|command| match command {
        Command::Queues => vec![Step::Reply(Reply::Queues(vec![
            queue("default"),
            queue("gpu"),
        ]))],
        Command::Queue { name, change } => {
            let mut now = queue(name);
            now.paused = *change == QueueChange::Pause;
            if let QueueChange::Limit(n) = change {
                now.limit = *n;
            }
            vec![Step::Reply(Reply::Queues(vec![now]))]
        }
        other => panic!("unexpected {other:?}"),
    })
    .await;
    let client = connect(&fake.addr).await;
    let names: Vec<String> = client
        .queues()
        .await
        .unwrap()
        .into_iter()
        .map(|q| q.name)
        .collect();
    assert_eq!(names, ["default", "gpu"]);
    let paused = client.queue("gpu", QueueChange::Pause).await.unwrap();
    assert!(paused.paused);
    assert_eq!(paused.name, "gpu");
    let limited = client.queue("gpu", QueueChange::Limit(3)).await.unwrap();
    assert_eq!(limited.limit, 3);
    assert_eq!(limited.count(TaskState::Ready), 2);
    drop(client);
    let sent: Vec<Command> = fake
        .requests()
        .await
        .into_iter()
        .map(|m| m.command)
        .collect();
    assert_eq!(
        sent[1],
        Command::Queue {
            name: "gpu".into(),
            change: QueueChange::Pause
        }
    );
}

/// The refusals of this issue map to classes of their own, and keep the coordinator's sentence.
#[tokio::test]
async fn unknown_queue_and_schedule_refusals_have_classes() {
    let fake = FakeCoordinator::start(|command| {
        let (kind, message) = match command {
            Command::Queue { .. } => (
                FailureKind::UnknownQueue,
                "there is no queue `x`; the queues are: default",
            ),
            Command::Schedule { .. } => (
                FailureKind::UnknownSchedule,
                "there is no schedule `nightly`",
            ),
            Command::AddSchedule(_) => (
                FailureKind::ScheduleExists,
                "there is already a schedule `nightly`",
            ),
            other => panic!("unexpected {other:?}"),
        };
        vec![Step::Reply(Reply::Error(Failure::new(kind, message)))]
    })
    .await;
    let client = connect(&fake.addr).await;
    let err = client.queue("x", QueueChange::Resume).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::UnknownQueue);
    assert_eq!(
        err.to_string(),
        "there is no queue `x`; the queues are: default"
    );
    let err = client
        .schedule("nightly", ScheduleChange::Remove)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::UnknownSchedule);
    let err = client
        .add_schedule(schedule("nightly").spec)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::ScheduleExists);
}

/// A schedule is added, listed (all or by name) and changed; each answer is handed back as
/// the coordinator gave it.
#[tokio::test]
async fn schedules_are_added_listed_and_changed() {
    let fake = FakeCoordinator::start(|command| match command {
        Command::AddSchedule(spec) => {
            let mut info = schedule(&spec.name);
            info.spec = spec.clone();
            info.fired = 0;
            info.last.clear();
            vec![Step::Reply(Reply::Schedules(vec![info]))]
        }
        Command::Schedules(None) => vec![Step::Reply(Reply::Schedules(vec![
            schedule("a"),
            schedule("b"),
        ]))],
        Command::Schedules(Some(name)) => {
            vec![Step::Reply(Reply::Schedules(vec![schedule(name)]))]
        }
        Command::Schedule { name, change } => {
            let mut info = schedule(name);
            info.paused = *change == ScheduleChange::Pause;
            vec![Step::Reply(Reply::Schedules(vec![info]))]
        }
        other => panic!("unexpected {other:?}"),
    })
    .await;
    let client = connect(&fake.addr).await;
    let mut spec = schedule("hourly").spec;
    spec.trigger = Trigger::Cron {
        line: "0 * * * *".into(),
        tz: Some("Europe/Berlin".into()),
    };
    let added = client.add_schedule(spec.clone()).await.unwrap();
    assert_eq!(added.spec, spec);
    assert_eq!(added.fired, 0);
    assert_eq!(client.schedules(None).await.unwrap().len(), 2);
    let one = client.schedules(Some("a")).await.unwrap();
    assert_eq!(one[0].spec.name, "a");
    assert_eq!(one[0].last[0].0, TaskId(8));
    let paused = client.schedule("a", ScheduleChange::Pause).await.unwrap();
    assert!(paused.paused);
    assert_eq!(paused.spec.task.queue, DEFAULT_QUEUE);
}

/// An answer about one queue that carries two is a coordinator of another build, said so.
#[tokio::test]
async fn two_queues_for_one_is_unexpected() {
    let fake =
        FakeCoordinator::start(|_| vec![Step::Reply(Reply::Queues(vec![queue("a"), queue("b")]))])
            .await;
    let client = connect(&fake.addr).await;
    let err = client.queue("a", QueueChange::Pause).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Internal);
    assert!(
        err.to_string().contains("answered Queues with 2 entries"),
        "{err}"
    );
}

/// `pause` sends `Pause` and returns what moved and what did not; more ids than one request
/// carries go as several requests whose answers add up.
#[tokio::test]
async fn pause_sends_pause_in_chunks() {
    let fake = FakeCoordinator::start(|command| match command {
        Command::Pause(Selection::Ids(ids)) => vec![Step::Reply(Reply::Changed {
            changed: ids.iter().copied().filter(|id| id.0 != 2).collect(),
            unchanged: ids
                .iter()
                .filter(|id| id.0 == 2)
                .map(|id| (*id, TaskState::Running))
                .collect(),
        })],
        other => panic!("unexpected {other:?}"),
    })
    .await;
    let client = connect(&fake.addr).await;
    let changed = client
        .pause(Selection::Ids(vec![TaskId(1), TaskId(2), TaskId(3)]))
        .await
        .unwrap();
    assert_eq!(
        changed,
        Changed {
            changed: vec![TaskId(1), TaskId(3)],
            unchanged: vec![(TaskId(2), TaskState::Running)],
        }
    );
    let many: Vec<TaskId> = (1..=(tatzelwurm_proto::limits::MAX_IDS_PER_REQUEST as u64 + 1))
        .map(TaskId)
        .collect();
    let changed = client.pause(Selection::Ids(many)).await.unwrap();
    assert_eq!(
        changed.changed.len(),
        tatzelwurm_proto::limits::MAX_IDS_PER_REQUEST
    );
    drop(client);
    assert_eq!(fake.requests().await.len(), 3);
}

/// A list with a queue filter sends the queue with every page.
#[tokio::test]
async fn list_sends_the_queue() {
    let fake = FakeCoordinator::start(|command| match command {
        Command::List { queue, .. } => {
            assert_eq!(queue.as_deref(), Some("gpu"));
            vec![Step::Reply(Reply::Tasks {
                tasks: vec![],
                more: false,
            })]
        }
        other => panic!("unexpected {other:?}"),
    })
    .await;
    let client = connect(&fake.addr).await;
    let tasks = client
        .list_page(vec![TaskState::Paused], Some("gpu"), None, 0)
        .await
        .unwrap();
    assert!(tasks.is_empty());
    drop(client);
    assert_eq!(fake.requests().await.len(), 1);
}
