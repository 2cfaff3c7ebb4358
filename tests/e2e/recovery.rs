//! Recovery from a coordinator killed with SIGKILL: under load, no acknowledged task is lost and
//! no completion is forgotten, the workers reconnect by themselves and finish everything, and an
//! actioner that was waiting gets a clear error instead of a hang.

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::panic::resume_unwind;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use tatzelwurm_e2e::actionwurm::{run, Action};
use tatzelwurm_e2e::{example, fixture, wait_until, Cluster, ClusterOptions, Stop, WorkerSpec};

/// How many tasks the load test adds, in batches of `BATCH` (one `task add --args-file` each).
const TOTAL: u64 = 2_000;
const BATCH: u64 = 100;
/// The coordinator is killed once this many adds were acknowledged, while the next batch is
/// being added and the workers are busy.
const KILL_AFTER: usize = 800;
/// At most this many `task add` runs may fail (while the coordinator is down) before the test
/// gives up on the coordinator coming back.
const MAX_REFUSED_ADDS: u32 = 200;
/// How long an actioner may take to report that its coordinator went away.
const ACTIONER_ERROR_DEADLINE: Duration = Duration::from_secs(2);

/// A coordinator killed with SIGKILL while 2,000 tasks are being added and run keeps every task
/// whose add was acknowledged and every completed result; the workers reconnect by themselves,
/// every task completes, and each recorded result comes from an attempt that really ran.
#[test]
fn coordinator_killed_under_load_loses_no_acknowledged_task() {
    let mut cluster = Cluster::start();
    let mut workers: Vec<_> = (1..=2)
        .map(|n| cluster.start_worker(WorkerSpec::new(2).name(&format!("w{n}"))))
        .collect();
    let worker_pids: Vec<i32> = workers.iter().map(|w| w.proc.pid()).collect();
    let effects = cluster.dir().join("effects");
    let batches: Vec<PathBuf> = (0..TOTAL / BATCH)
        .map(|b| {
            let lines: Vec<String> = (b * BATCH..(b + 1) * BATCH)
                .map(|x| json!([effects, x]).to_string())
                .collect();
            cluster.write_args_file(&lines)
        })
        .collect();

    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let adder = spawn_adder(&cluster, batches, acked.clone());
    wait_until(
        &format!("{KILL_AFTER} adds to be acknowledged"),
        Duration::from_secs(60),
        || acked.lock().unwrap().len() >= KILL_AFTER,
    );
    let completed_before = cluster.list(&["completed"]);
    assert!(
        !completed_before.is_empty(),
        "no task completed before the kill"
    );
    cluster.stop_coordinator(Stop::Kill);
    let acked_at_kill = acked.lock().unwrap().len();
    cluster.start_coordinator_again();
    let refused_adds = adder.join().unwrap_or_else(|panic| resume_unwind(panic));
    let acked: Vec<u64> = acked.lock().unwrap().clone();
    assert_eq!(
        acked.len() as u64,
        TOTAL,
        "every batch was added in the end"
    );

    let table = by_id(cluster.list(&[]));
    let lost: Vec<u64> = acked
        .iter()
        .copied()
        .filter(|id| !table.contains_key(id))
        .collect();
    eprintln!(
        "coordinator kill -9 under load: {} adds acknowledged ({acked_at_kill} before the kill), \
         {refused_adds} add runs refused while it was down, {} tasks after the restart, \
         acknowledged tasks lost: {}",
        acked.len(),
        table.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged tasks lost: {lost:?}");
    for before in &completed_before {
        let id = before["id"].as_u64().unwrap();
        let after = &table[&id];
        assert_eq!(
            after["state"], "completed",
            "task {id} after the restart: {after}"
        );
        assert_eq!(after["result"], before["result"], "task {id}: {after}");
    }

    for worker in &mut workers {
        assert!(worker.proc.is_running(), "worker {} died", worker.name);
    }
    cluster.wait_worker_count(2, Duration::from_secs(30));
    let wait = ["task", "wait", "-a", "--timeout", "60"];
    cluster.action_within(&wait, Duration::from_secs(90)).ok();
    let pids_now: Vec<i32> = workers.iter().map(|w| w.proc.pid()).collect();
    assert_eq!(pids_now, worker_pids, "the workers were not restarted");

    let table = by_id(cluster.list(&[]));
    let ran = read_effects(&effects);
    let mut ran_twice = 0;
    for (id, task) in &table {
        assert_eq!(task["state"], "completed", "task {id}: {task}");
        assert_eq!(task["result"]["x"], task["args"][1], "task {id}: {task}");
        let attempts = ran.get(id).cloned().unwrap_or_default();
        assert!(!attempts.is_empty(), "task {id} never ran: {task}");
        ran_twice += usize::from(attempts.len() > 1);
        let recorded = task["result"]["attempt"].as_u64().unwrap_or(0);
        assert!(
            attempts.contains(&recorded),
            "task {id}: the recorded result is from attempt {recorded}, which never ran \
             (ran {attempts:?}): {task}"
        );
        assert_eq!(
            task["attempts"], recorded,
            "task {id}: the recorded result is not from its current attempt: {task}"
        );
    }
    eprintln!(
        "coordinator kill -9 under load: all {} tasks completed, {ran_twice} ran more than once",
        table.len()
    );
}

/// An actioner waiting with `task wait -a` and no timeout when the coordinator is killed exits
/// non-zero within 2 s with one sentence on stderr, instead of hanging.
#[test]
fn waiting_actioner_gets_an_error_when_the_coordinator_dies() {
    // At debug level the coordinator logs each actioner that connects.
    let options = ClusterOptions {
        log_level: "info,tatzelwurm=debug".to_string(),
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start_with(options);
    // No worker: the task stays `ready`, so the wait below never ends by itself.
    cluster.add(&example("square"), "[3]");
    let connected_before = actioners_connected(&cluster.coordinator_log());
    let waiter = {
        let (program, addr) = (
            cluster.bins().actionwurm.clone(),
            cluster.addr().to_string(),
        );
        thread::spawn(move || {
            let wait = ["task", "wait", "-a"];
            run(
                &program,
                Some(&addr),
                &wait,
                &[],
                Duration::from_secs(20),
                None,
            )
        })
    };
    wait_until(
        "the waiting actioner to connect",
        Duration::from_secs(10),
        || actioners_connected(&cluster.coordinator_log()) > connected_before,
    );

    let killed = Instant::now();
    cluster.stop_coordinator(Stop::Kill);
    let action: Action = waiter.join().unwrap_or_else(|panic| resume_unwind(panic));
    let took = killed.elapsed();
    eprintln!(
        "waiting actioner after the coordinator's kill: {} after {} ms: {}",
        action.status,
        took.as_millis(),
        action.stderr.trim()
    );
    let action = action.failed();
    assert!(
        action.status.code().is_some(),
        "the CLI died of a signal: {action}"
    );
    action.one_sentence();
    assert!(
        took < ACTIONER_ERROR_DEADLINE,
        "the CLI took {took:?} to give up: {action}"
    );
}

/// Adds each batch file with `task add --args-file FILE --play` on a thread, trying a batch again
/// while the coordinator refuses it (it is down), and collects the acknowledged ids in `acked`.
/// Returns how many runs were refused.
fn spawn_adder(
    cluster: &Cluster,
    batches: Vec<PathBuf>,
    acked: Arc<Mutex<Vec<u64>>>,
) -> thread::JoinHandle<u32> {
    let program = cluster.bins().actionwurm.clone();
    let addr = cluster.addr().to_string();
    let log = cluster.log_dir().join("actionwurm.log");
    let function = fixture("record_attempt");
    thread::spawn(move || {
        let mut refused = 0;
        for batch in &batches {
            let file = batch.to_str().expect("temp paths are UTF-8");
            let argv = ["task", "add", &function, "--args-file", file, "--play"];
            loop {
                let action = run(
                    &program,
                    Some(&addr),
                    &argv,
                    &[],
                    Duration::from_secs(30),
                    Some(&log),
                );
                if action.success() {
                    let ids = action.ids();
                    assert_eq!(ids.len() as u64, BATCH, "one id per line: {action}");
                    acked.lock().unwrap().extend(ids);
                    break;
                }
                refused += 1;
                assert!(
                    refused < MAX_REFUSED_ADDS,
                    "the coordinator refused {refused} adds: {action}"
                );
                // The coordinator is down or starting: try the batch again a little later.
                thread::sleep(Duration::from_millis(50));
            }
        }
        refused
    })
}

/// "TASK_ID ATTEMPT" lines the tasks appended, as the attempts each task ran.
fn read_effects(path: &std::path::Path) -> BTreeMap<u64, BTreeSet<u64>> {
    let mut ran: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let mut words = line.split_whitespace().map(|w| w.parse::<u64>());
        match (words.next(), words.next()) {
            (Some(Ok(id)), Some(Ok(attempt))) => {
                ran.entry(id).or_default().insert(attempt);
            }
            _ => panic!("a malformed side-effect line: {line:?}"),
        }
    }
    ran
}

/// How many times the coordinator logged (at debug level) that an actioner connected.
fn actioners_connected(log: &str) -> usize {
    log.lines()
        .filter(|line| line.contains("actioner") && line.contains(" connected"))
        .count()
}

fn by_id(tasks: Vec<Value>) -> BTreeMap<u64, Value> {
    tasks
        .into_iter()
        .map(|t| (t["id"].as_u64().expect("a task id"), t))
        .collect()
}
