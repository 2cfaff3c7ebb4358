//! The event log (`actionwurm events`): a follower killed with its coordinator and started again
//! with `--since` the last event it printed misses nothing and prints nothing twice; task and
//! queue filters and JSON lines; a watcher that does not read is dropped with one sentence
//! while the coordinator goes on serving everyone else.

use crate::raw_actioner::Raw;
use crate::TASK_TIMEOUT;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;
use tatzelwurm_e2e::{example, wait_for, Cluster, Proc, Stop, WorkerSpec};
use tatzelwurm_proto::actioner::Selection;
use tatzelwurm_proto::actioner::{Command as Request, FailureKind, Reply};
use tatzelwurm_proto::event::{EventFilter, EventsFrom};
use tatzelwurm_proto::task::TaskSpec;

/// How long a follower may take to print what has happened.
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a command over 100,000 tasks may take on a loaded machine (debug build).
const FLOOD_TIMEOUT: Duration = Duration::from_secs(180);

/// An add of `tasks`, not played.
fn add(tasks: Vec<TaskSpec>) -> Request {
    Request::Add {
        tasks,
        play: false,
        key: None,
        watch: false,
    }
}

/// Starts `actionwurm events --follow --json [ARGS]` against the cluster, its stdout going to a
/// log file of its own (`events-NAME.stdout.log`).
fn follower(cluster: &Cluster, name: &str, args: &[&str]) -> Proc {
    let mut cmd = Command::new(&cluster.bins().actionwurm);
    cmd.env_remove(tatzelwurm_proto::COORDINATOR_ENV)
        .env_remove(tatzelwurm_proto::TOKEN_ENV)
        .args([
            "--coordinator",
            cluster.addr(),
            "events",
            "--follow",
            "--json",
        ])
        .args(args);
    let (proc, _) = Proc::spawn(&format!("events-{name}"), cmd, &cluster.log_dir(), false);
    proc
}

/// The events a follower has printed so far: its complete JSON lines (a last line cut by a
/// kill is left out, as the follower never finished printing it).
fn printed(proc: &Proc) -> Vec<Value> {
    let log = proc.stdout_log();
    let complete = match log.rfind('\n') {
        Some(end) => &log[..=end],
        None => "",
    };
    complete
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .collect()
}

/// The final state each task's events show, by task id.
fn final_states(events: &[Value]) -> BTreeMap<u64, String> {
    events
        .iter()
        .filter(|e| e["kind"] == "task")
        .map(|e| {
            let id = e["task"].as_u64().expect("a task id");
            (id, e["state"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

/// Waits until `proc` has printed a `completed` event for each of `ids`; returns its events.
fn wait_completed_events(proc: &Proc, ids: &[u64]) -> Vec<Value> {
    wait_for(
        "the follower to print every task's completion",
        FOLLOW_TIMEOUT,
        || {
            let events = printed(proc);
            let states = final_states(&events);
            ids.iter()
                .all(|id| states.get(id).is_some_and(|s| s == "completed"))
                .then_some(events)
        },
    )
}

fn lines(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("[{i}]")).collect()
}

/// A follower sees tasks added, handed out and completed and a worker join; killed together
/// with the coordinator (`kill -9`) and started again with `--since` the last event it printed,
/// it goes on: across both, every sequence number from 1 appears exactly once and in order,
/// and every task's completion is among them.
#[test]
fn a_follower_started_again_since_its_last_event_misses_nothing() {
    let mut cluster = Cluster::start();
    let mut first = follower(&cluster, "first", &[]);
    let _worker = cluster.start_worker(WorkerSpec::new(2).name("w1"));
    let mut ids = cluster.add_from_file(&example("square"), &lines(40), true);
    let seen = wait_completed_events(&first, &ids);
    assert!(
        seen.iter()
            .any(|e| e["kind"] == "worker" && e["change"] == "joined" && e["worker"] == "w1"),
        "a worker's joining is an event: {seen:?}"
    );
    // Events keep coming while both die: tasks still running, more added.
    let more = cluster.add_from_file(&example("sleep"), &vec!["[0.05]".to_string(); 20], true);
    ids.extend(&more);
    first.kill9();
    cluster.stop_coordinator(Stop::Kill);
    let before = printed(&first);
    let last = before.last().expect("the first follower printed events")["seq"]
        .as_u64()
        .unwrap();
    cluster.start_coordinator_again();
    let second = follower(&cluster, "second", &["--since", &last.to_string()]);
    ids.extend(cluster.add_from_file(&example("square"), &lines(20), true));
    let after = wait_completed_events_since(&second, &before, &ids);
    let seqs: Vec<u64> = before
        .iter()
        .chain(&after)
        .map(|e| e["seq"].as_u64().expect("a seq"))
        .collect();
    let expected: Vec<u64> = (1..=*seqs.last().unwrap()).collect();
    assert_eq!(
        seqs, expected,
        "every event once, in order, across the restart"
    );
}

/// `wait_completed_events` over the events of an earlier follower and this one together;
/// returns this one's.
fn wait_completed_events_since(proc: &Proc, before: &[Value], ids: &[u64]) -> Vec<Value> {
    wait_for(
        "the second follower to print every task's completion",
        FOLLOW_TIMEOUT,
        || {
            let after = printed(proc);
            let all: Vec<Value> = before.iter().chain(&after).cloned().collect();
            let states = final_states(&all);
            ids.iter()
                .all(|id| states.get(id).is_some_and(|s| s == "completed"))
                .then_some(after)
        },
    )
}

/// Without `--follow` the log is printed and the command exits 0; `--task` and `--queue` pass
/// only that task's or queue's events, a line each (or a JSON object each with `--json`).
#[test]
fn filters_and_lines() {
    let cluster = Cluster::start();
    let a = cluster.add_with(&example("square"), "[2]", &["--queue", "a"]);
    let b = cluster.add_with(&example("square"), "[3]", &["--queue", "b"]);
    let _worker = cluster.start_worker(WorkerSpec::new(1).queue("a").queue("b"));
    cluster.wait_completed(a, TASK_TIMEOUT);
    cluster.wait_completed(b, TASK_TIMEOUT);
    let json = |args: &[&str]| -> Vec<Value> {
        let mut argv = vec!["events", "--json"];
        argv.extend_from_slice(args);
        let action = cluster.action(&argv).ok();
        action
            .stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    };
    let all = json(&[]);
    let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let of_a = json(&["--queue", "a"]);
    assert!(!of_a.is_empty());
    assert!(
        of_a.iter()
            .all(|e| e["kind"] == "task" && e["queue"] == "a"),
        "{of_a:?}"
    );
    assert_eq!(
        final_states(&of_a).get(&a).map(String::as_str),
        Some("completed")
    );
    let of_b = json(&["--task", &b.to_string()]);
    assert!(of_b.iter().all(|e| e["task"] == b), "{of_b:?}");
    let states: BTreeSet<&str> = of_b.iter().filter_map(|e| e["state"].as_str()).collect();
    assert!(
        states.contains("ready") && states.contains("completed"),
        "{of_b:?}"
    );
    let since = json(&["--since", &seqs[seqs.len() - 2].to_string()]);
    assert_eq!(since.len(), 1, "--since N starts right after N");
    let text = cluster.action(&["events"]).ok();
    assert_eq!(
        text.stdout.lines().count(),
        all.len(),
        "one line per event: {text}"
    );
    let first: u64 = text
        .stdout
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(first, 1, "a line starts with its sequence number: {text}");
}

impl Raw {
    /// An actioner over a socket with a small receive buffer, so that what it does not read
    /// backs up at the coordinator rather than in the kernel.
    fn connect_small(addr: &str) -> Raw {
        Raw::connect(addr, "events-test", Some(4096), TASK_TIMEOUT)
    }

    /// The next reply, within `timeout`.
    fn reply_within(&mut self, timeout: Duration) -> Reply {
        self.recv_within(timeout).reply
    }
}

/// A watcher that stops reading is dropped once it is far behind, with a sentence naming the
/// last event it was sent; meanwhile 300,000 events' worth of commands are answered and a task
/// runs as usual, and the events it was sent before the drop follow on without a gap.
#[test]
fn a_watcher_that_does_not_read_is_dropped() {
    let cluster = Cluster::start();
    let mut slow = Raw::connect_small(cluster.addr());
    let follow = Request::Events {
        from: EventsFrom::Now,
        follow: true,
        filter: EventFilter::default(),
    };
    slow.send(1, follow);
    // A follow from now is answered first by an empty frame once it is subscribed.
    match slow.reply_within(TASK_TIMEOUT) {
        Reply::Events { events, more: true } if events.is_empty() => {}
        other => panic!("expected the empty frame of a subscribed watcher: {other:?}"),
    }
    // One task's event reaches the watcher: it is subscribed before the flood.
    let mut flood = Raw::connect_small(cluster.addr());
    let noop = example("noop");
    flood.send(1, add(vec![TaskSpec::call(noop.clone(), "[0]", "{}")]));
    assert!(matches!(flood.reply_within(TASK_TIMEOUT), Reply::Added(_)));
    let mut last = match slow.reply_within(TASK_TIMEOUT) {
        Reply::Events { events, .. } => events.last().expect("an event").seq,
        other => panic!("{other:?}"),
    };
    // Three rounds of 100,000 events each: created, ready, killed.
    let tasks: Vec<TaskSpec> = (0..100_000)
        .map(|i| TaskSpec::call(noop.clone(), format!("[{i}]"), "{}"))
        .collect();
    let commands = [
        add(tasks),
        Request::Play(Selection::All),
        Request::Kill(Selection::All),
    ];
    for (n, command) in commands.into_iter().enumerate() {
        flood.send(n as u64 + 2, command);
        let reply = flood.reply_within(FLOOD_TIMEOUT);
        assert!(!matches!(reply, Reply::Error(_)), "{reply:?}");
    }
    // The coordinator still serves: a task runs while the watcher is stuck.
    let _worker = cluster.start_worker(WorkerSpec::new(1));
    let id = cluster.add(&example("square"), "[4]");
    cluster.wait_completed(id, TASK_TIMEOUT);
    let failure = loop {
        match slow.reply_within(TASK_TIMEOUT) {
            Reply::Events { events, more } => {
                assert!(more, "a follower's frames all say more");
                for event in events {
                    assert_eq!(event.seq, last + 1, "no gap, no repeat");
                    last = event.seq;
                }
            }
            Reply::Error(failure) => break failure,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(failure.kind, FailureKind::Lagged, "{failure:?}");
    assert!(
        failure
            .message
            .contains("read more slowly than events came"),
        "{}",
        failure.message
    );
    assert!(
        failure.message.contains(&format!("--since {last}")),
        "{} (last {last})",
        failure.message
    );
}
