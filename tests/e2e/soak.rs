//! The soak test of issue 3: 5,000 tasks over 3 workers while workers are killed with SIGKILL
//! every second and the coordinator twice, after which every acknowledged task is `completed`
//! exactly once and every recorded result comes from a run that really happened with the
//! task's current attempt number.
//!
//! Three threads take part. The test's own thread owns the cluster: it kills a random worker
//! every second and starts it again, and kills the coordinator twice (once while a `task add`
//! is under way, once while the tasks run) and starts it again on the same port and database.
//! An adder thread runs `actionwurm task add ... --args-file F --play` for each chunk of tasks,
//! adding a chunk again when its add failed, and then `task wait -a`. The tasks
//! (`tests/python/soak.py`) append "<id> <attempt> <run>" to a side-effect file.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tatzelwurm_e2e::actionwurm::{self, Action};
use tatzelwurm_e2e::{fixtures_dir, Cluster, Stop, Worker, WorkerSpec};

/// Tasks acknowledged in all.
const TASKS: usize = 5_000;
/// `task add` commands they are added in, one after the other.
const CHUNKS: usize = 5;
/// Workers, and slots of each.
const WORKERS: usize = 3;
const SLOTS: u32 = 2;
/// How long each task sleeps after writing its line, in seconds.
const TASK_SECONDS: &str = "0.008";
/// How often a random worker is killed and started again.
const WORKER_KILL_EVERY: Duration = Duration::from_secs(1);
/// The pause between two chunks' adds, so that the adds are spread over the first seconds.
const CHUNK_PAUSE: Duration = Duration::from_secs(1);
/// The first coordinator kill comes while the add of this chunk is under way.
const KILL_DURING_CHUNK: i64 = 2;
/// The second coordinator kill comes once this share of the tasks has written its line.
const SECOND_KILL_AT: f64 = 0.6;
/// The whole run (adds, chaos, waiting) must be over within this; on 2 cores it takes about
/// 12 s alone and under 30 s beside the rest of the suite.
const RUN_LIMIT: Duration = Duration::from_secs(120);
/// How long one CLI command may take before the test calls it a hang.
const CLI_LIMIT: Duration = Duration::from_secs(60);

/// 5,000 tasks added in 5 chunks over 3 workers of 2 slots, while a random worker is killed
/// with SIGKILL and started again every second and the coordinator is killed with SIGKILL twice
/// (once during an add) and started again: every acknowledged task ends `completed` exactly
/// once, every task ran at least once, no attempt number was handed out twice, and every
/// recorded result is that of a run of the task's last attempt.
#[test]
fn soak_with_workers_and_coordinator_killed() {
    let started = Instant::now();
    let mut cluster = Cluster::start();
    let side_effects = cluster.dir().join("side-effects.txt");
    let mut workers: Vec<Worker> = (1..=WORKERS)
        .map(|i| cluster.spawn_worker(worker_spec(i)))
        .collect();
    cluster.wait_worker_count(WORKERS, Duration::from_secs(30));

    let shared = Arc::new(Shared::default());
    let _stop_adder_on_panic = StopOnDrop(shared.clone());
    let adder = {
        let adder = Adder {
            actionwurm: cluster.bins().actionwurm.clone(),
            addr: cluster.addr().to_string(),
            dir: cluster.dir().to_path_buf(),
            log: cluster.log_dir().join("actionwurm.log"),
            side_effects: side_effects.clone(),
            shared: shared.clone(),
        };
        thread::Builder::new()
            .name("soak-adder".into())
            .spawn(move || adder.run())
            .unwrap()
    };

    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("soak: random seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut worker_kills = 0;
    let mut last_worker_kill = Instant::now();
    let mut coordinator_kills = 0;
    while !shared.finished.load(Ordering::SeqCst) {
        assert!(
            started.elapsed() < RUN_LIMIT,
            "the soak did not finish within {RUN_LIMIT:?}: {} of {TASKS} acknowledged, {} lines \
             of side effects, {coordinator_kills} coordinator kills",
            shared.acknowledged(),
            count_lines(&side_effects)
        );
        assert!(
            !adder.is_finished() || shared.finished.load(Ordering::SeqCst),
            "the adder thread ended early (it panicked; see above)"
        );
        if last_worker_kill.elapsed() >= WORKER_KILL_EVERY {
            let i = rng.usize(..WORKERS);
            workers[i].proc.kill9();
            workers[i] = cluster.spawn_worker(worker_spec(i + 1));
            worker_kills += 1;
            last_worker_kill = Instant::now();
        }
        let due = match coordinator_kills {
            // While chunk 2's add is under way (or, should the polling miss it, right after it).
            0 => {
                shared.adding.load(Ordering::SeqCst) == KILL_DURING_CHUNK
                    || shared.acknowledged() > KILL_DURING_CHUNK as usize * TASKS / CHUNKS
            }
            1 => count_lines(&side_effects) as f64 >= TASKS as f64 * SECOND_KILL_AT,
            _ => false,
        };
        if due {
            if coordinator_kills == 0 {
                // Somewhere in the add: before it reached the coordinator, while it is made
                // durable, or after it was acknowledged.
                thread::sleep(Duration::from_millis(rng.usize(..40) as u64));
            }
            cluster.stop_coordinator(Stop::Kill);
            cluster.start_coordinator_again();
            coordinator_kills += 1;
            shared
                .coordinator_kills
                .store(coordinator_kills, Ordering::SeqCst);
            println!(
                "soak: killed and restarted the coordinator after {:?}",
                started.elapsed()
            );
        }
        // Polling, not synchronisation: the loop must notice the add of chunk 2 within
        // milliseconds of its start.
        thread::sleep(Duration::from_millis(5));
    }
    adder.join().expect("the adder thread panicked");
    let run_time = started.elapsed();
    drop(workers);

    let tries = shared.tries.lock().unwrap().clone();
    let tasks = cluster.list(&[]);
    let lines = read_side_effects(&side_effects);
    let report = check(&tries, &tasks, &lines);
    println!(
        "soak: {TASKS} tasks acknowledged over {WORKERS} workers x {SLOTS} slots in {run_time:?} \
         ({worker_kills} worker kills, {coordinator_kills} coordinator kills); {} add(s) failed \
         and were repeated, {} task(s) of failed adds landed anyway; {} runs in all, {} beyond \
         one per task; attempts beyond one per task: {}",
        report.failed_adds,
        report.landed_unacknowledged,
        lines.len(),
        lines.len() - tasks.len(),
        report.extra_attempts
    );
    let log = std::fs::read_to_string(cluster.log_dir().join("coordinator.stderr.log"))
        .unwrap_or_default();
    println!(
        "soak: the coordinator logged {} ignored report(s) and {} ignored heartbeat(s) of \
         fenced attempts",
        log.matches("ignored report of task").count(),
        log.matches("ignored heartbeat for task").count()
    );
    assert_eq!(coordinator_kills, 2);
}

fn worker_spec(i: usize) -> WorkerSpec {
    WorkerSpec::new(SLOTS).name(&format!("w{i}"))
}

// ---------------------------------------------------------------------------------------------
// The adder thread.

/// One `task add` of a chunk.
#[derive(Debug, Clone)]
struct Try {
    /// `c<chunk>t<try>`: the second argument of each of its tasks.
    marker: String,
    /// The ids it printed: acknowledged.
    ids: Vec<u64>,
    /// Whether it exited with status 0.
    success: bool,
    /// What it said on stderr, for the closing lines.
    stderr: String,
}

/// What the test's thread and the adder share.
#[derive(Default)]
struct Shared {
    /// The chunk whose add is under way, or -1.
    adding: AtomicI64,
    /// How many coordinator kills the test's thread has done.
    coordinator_kills: AtomicUsize,
    /// Every add, in order.
    tries: Mutex<Vec<Try>>,
    /// Set by the adder once every task is finished.
    finished: AtomicBool,
    /// Set when the test's thread panics: the adder stops.
    stop: AtomicBool,
}

impl Shared {
    fn acknowledged(&self) -> usize {
        self.tries.lock().unwrap().iter().map(|t| t.ids.len()).sum()
    }
}

/// Tells the adder to stop when the test's thread unwinds.
struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::SeqCst);
    }
}

struct Adder {
    actionwurm: PathBuf,
    addr: String,
    dir: PathBuf,
    log: PathBuf,
    side_effects: PathBuf,
    shared: Arc<Shared>,
}

impl Adder {
    fn run(self) {
        self.shared.adding.store(-1, Ordering::SeqCst);
        let function = format!("{}:record", fixtures_dir().join("soak.py").display());
        for chunk in 0..CHUNKS {
            if chunk > 0 {
                thread::sleep(CHUNK_PAUSE);
            }
            for attempt in 0.. {
                self.check_stop();
                let marker = format!("c{chunk}t{attempt}");
                let file = self.args_file(&marker);
                let file = file.to_str().unwrap();
                self.shared.adding.store(chunk as i64, Ordering::SeqCst);
                let argv = ["task", "add", &function, "--args-file", file, "--play"];
                let action = self.cli(&argv);
                self.shared.adding.store(-1, Ordering::SeqCst);
                let ids = action.printed_ids();
                let acknowledged = ids.len() == TASKS / CHUNKS;
                assert!(
                    ids.is_empty() || acknowledged,
                    "an add printed some of its ids but not all: {action}"
                );
                self.shared.tries.lock().unwrap().push(Try {
                    marker,
                    ids,
                    success: action.success(),
                    stderr: action.stderr.trim().to_string(),
                });
                if acknowledged {
                    break;
                }
                // The coordinator is being started again: try again shortly.
                thread::sleep(Duration::from_millis(200));
            }
        }
        // Every task is in; wait for them once the coordinator will not be killed any more.
        loop {
            self.check_stop();
            if self.shared.coordinator_kills.load(Ordering::SeqCst) >= 2 {
                let action = self.cli(&["task", "wait", "-a", "--timeout", "50"]);
                if action.success() {
                    break;
                }
            }
            thread::sleep(Duration::from_millis(200));
        }
        self.shared.finished.store(true, Ordering::SeqCst);
    }

    fn check_stop(&self) {
        if self.shared.stop.load(Ordering::SeqCst) {
            panic!("the test stopped the adder");
        }
    }

    fn cli(&self, argv: &[&str]) -> Action {
        actionwurm::run(
            &self.actionwurm,
            Some(&self.addr),
            argv,
            &[],
            CLI_LIMIT,
            Some(&self.log),
        )
    }

    /// An args file of one chunk: each line `[SIDE_EFFECTS, MARKER, SECONDS]`.
    fn args_file(&self, marker: &str) -> PathBuf {
        let side = serde_json::to_string(&self.side_effects.display().to_string()).unwrap();
        let line = format!("[{side}, \"{marker}\", {TASK_SECONDS}]\n");
        let path = self.dir.join(format!("soak-{marker}.jsonl"));
        std::fs::write(&path, line.repeat(TASKS / CHUNKS)).unwrap();
        path
    }
}

// ---------------------------------------------------------------------------------------------
// The checks.

/// One line of the side-effect file: a run of a task.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Run {
    task: u64,
    attempt: u64,
    run: String,
}

fn read_side_effects(path: &Path) -> Vec<Run> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|line| {
            let parts: Vec<&str> = line.split(' ').collect();
            assert_eq!(parts.len(), 3, "a torn side-effect line: {line:?}");
            Run {
                task: parts[0].parse().unwrap(),
                attempt: parts[1].parse().unwrap(),
                run: parts[2].to_string(),
            }
        })
        .collect()
}

fn count_lines(path: &Path) -> usize {
    std::fs::read(path)
        .map(|bytes| bytes.iter().filter(|&&b| b == b'\n').count())
        .unwrap_or(0)
}

/// What the checks counted, for the closing line.
struct Report {
    failed_adds: usize,
    landed_unacknowledged: usize,
    extra_attempts: u64,
}

fn check(tries: &[Try], tasks: &[Value], lines: &[Run]) -> Report {
    // The acknowledged ids: 5,000, none twice.
    let acknowledged: Vec<u64> = tries.iter().flat_map(|t| t.ids.iter().copied()).collect();
    let acknowledged_set: BTreeSet<u64> = acknowledged.iter().copied().collect();
    assert_eq!(acknowledged.len(), TASKS, "acknowledged ids");
    assert_eq!(
        acknowledged_set.len(),
        TASKS,
        "an id was acknowledged twice"
    );

    // The table: each id once, every task completed.
    let mut table: BTreeMap<u64, &Value> = BTreeMap::new();
    for task in tasks {
        let id = task["id"].as_u64().expect("a task id");
        assert!(
            table.insert(id, task).is_none(),
            "task {id} is listed twice"
        );
    }
    let not_completed: Vec<String> = table
        .values()
        .filter(|t| t["state"] != "completed")
        .map(|t| format!("{} {} ({})", t["id"], t["state"], t["error"]))
        .collect();
    assert!(
        not_completed.is_empty(),
        "{} task(s) did not complete: {}",
        not_completed.len(),
        not_completed
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ")
    );
    let missing: Vec<&u64> = acknowledged_set
        .iter()
        .filter(|id| !table.contains_key(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged task(s) are missing from the table, such as {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );

    // Every task in the table came from one add; those of failed adds landed unacknowledged.
    let by_marker: BTreeMap<&str, &Try> = tries.iter().map(|t| (t.marker.as_str(), t)).collect();
    let mut landed_unacknowledged = 0;
    for (id, task) in &table {
        let marker = task["args"][1].as_str().unwrap_or_default();
        let add = by_marker
            .get(marker)
            .unwrap_or_else(|| panic!("task {id} has no known add: {task}"));
        if add.ids.is_empty() {
            landed_unacknowledged += 1;
        } else {
            assert!(
                add.ids.contains(id),
                "task {id} carries the marker of add {marker}, which did not print its id"
            );
        }
    }
    assert_eq!(table.len(), TASKS + landed_unacknowledged);
    for add in tries.iter().filter(|t| t.ids.is_empty()) {
        let landed = table
            .values()
            .filter(|t| t["args"][1] == add.marker.as_str())
            .count();
        println!(
            "soak: add {} failed (exit {}, stderr {:?}); {landed} of its {} tasks landed anyway",
            add.marker,
            if add.success { "0" } else { "non-zero" },
            add.stderr,
            TASKS / CHUNKS
        );
    }

    // The side effects: each id ran at least once, no attempt number ran twice, and no run had
    // an attempt number above the task's final one.
    let mut runs: BTreeMap<u64, Vec<&Run>> = BTreeMap::new();
    let mut pairs = HashSet::new();
    for line in lines {
        assert!(
            pairs.insert((line.task, line.attempt)),
            "attempt {} of task {} ran twice: the fencing token was handed out twice",
            line.attempt,
            line.task
        );
        runs.entry(line.task).or_default().push(line);
    }
    let unknown: Vec<&u64> = runs.keys().filter(|id| !table.contains_key(id)).collect();
    println!(
        "soak: {} side-effect line(s) of task ids the table does not have",
        unknown.len()
    );
    let mut extra_attempts = 0;
    for (id, task) in &table {
        let attempts = task["attempts"].as_u64().expect("attempts");
        extra_attempts += attempts - 1;
        let ran = runs
            .get(id)
            .unwrap_or_else(|| panic!("task {id} is completed but never ran: {task}"));
        for run in ran {
            assert!(
                run.attempt <= attempts,
                "task {id} ran attempt {} but its table says {attempts} attempts",
                run.attempt
            );
        }
        // The recorded result is that of a run of the current attempt.
        let result = &task["result"];
        assert_eq!(
            result["id"], *id,
            "task {id}'s result is another task's: {result}"
        );
        assert_eq!(
            result["attempt"], attempts,
            "task {id}'s result comes from attempt {}, not its last attempt {attempts}",
            result["attempt"]
        );
        let run = result["run"].as_str().unwrap_or_default();
        assert!(
            ran.iter().any(|r| r.attempt == attempts && r.run == run),
            "task {id}'s result (attempt {attempts}, run {run}) matches no line of the side \
             effects: {ran:?}"
        );
    }
    Report {
        failed_adds: tries.iter().filter(|t| t.ids.is_empty()).count(),
        landed_unacknowledged,
        extra_attempts,
    }
}
