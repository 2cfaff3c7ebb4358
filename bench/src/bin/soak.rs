//! The soak of issue 10: 100,000 tasks added and run while the coordinator is killed with
//! SIGKILL 20 times at random moments and started again on the same port and database. The
//! workers stay up and reconnect; every add is `task add --args-file --play`, which re-sends an
//! add cut by a crash with its same key (and a failed add is run again by the benchmark under a
//! new marker, as a user would). At the end it checks the record against what really ran:
//! every acknowledged task is in the table exactly once, `completed`, with the result of a run
//! that really happened for that task and its own arguments; nothing acknowledged is lost; no
//! add is stored twice. Runs beyond one per task are counted apart (at-least-once allows them).
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo run --release -p tatzelwurm-bench --bin soak [-- --tasks 100000 --kills 20 --seed N]
//! ```
//!
//! The tasks (`bench/python/soak_task.py:mark`) append "<id> <attempt> <seq> <run>" to a
//! side-effect file. The adds come in `--tasks / --chunk` chunks, released in `--kills` batches:
//! batch k is added after the k-th kill, so that every kill meets tasks being added, queued and
//! run whatever the speed of the build. Each kill comes at a random moment of its batch: a third
//! of them while one of the batch's adds is under way (a random time into it), the others once a
//! random share of the tasks acknowledged so far has run. `--seed` repeats a run's choices.
//!
//! Unlike the figures of `w1` to `w4`, a broken guarantee fails the run: the exit status is 1
//! with the first broken check named (after the counts are printed); 2 when the binaries are
//! missing. Every wait is bounded by `--timeout`, and every process it started is killed on
//! the way out.

use clap::Parser;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tatzelwurm_bench::{check, conclude, poll_until, print_figure, release_cluster, remaining};
use tatzelwurm_bench::{require_release_binaries, start_workers};
use tatzelwurm_e2e::actionwurm;
use tatzelwurm_e2e::{workspace_root, Cluster, Stop};

/// How long one `task add` may take, across the coordinator's restarts.
const ADD_LIMIT: Duration = Duration::from_secs(120);
/// The pause before an add that failed is run again.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// How often the kill loop looks at the adds and the side-effect file.
const LOOK_EVERY: Duration = Duration::from_millis(2);

/// Command-line options of `soak`.
#[derive(Debug, Parser)]
#[command(
    about = "soak: 100,000 tasks while the coordinator is killed 20 times; checks the record"
)]
struct Options {
    /// How many tasks to acknowledge in all.
    #[arg(long, default_value_t = 100_000)]
    tasks: u64,
    /// How many tasks one `task add` adds.
    #[arg(long, default_value_t = 1_000)]
    chunk: u64,
    /// How many times the coordinator is killed with SIGKILL.
    #[arg(long, default_value_t = 20)]
    kills: usize,
    /// How many workers to start; they stay up all along.
    #[arg(long, default_value_t = 2)]
    workers: u32,
    /// How many slots each worker has.
    #[arg(long, default_value_t = 2)]
    slots: u32,
    /// The random seed (default: from the clock); printed, so that a run can be repeated.
    #[arg(long)]
    seed: Option<u64>,
    /// Seconds the whole run may take before it gives up and exits non-zero.
    #[arg(long, default_value_t = 1800)]
    timeout: u64,
}

fn main() -> ExitCode {
    let options = Options::parse();
    if let Err(message) = require_release_binaries("soak") {
        eprintln!("{message}");
        return ExitCode::from(2);
    }
    if options.chunk == 0 || options.tasks % options.chunk != 0 || options.kills == 0 {
        eprintln!("soak: --tasks must be a multiple of --chunk, and --kills at least 1");
        return ExitCode::from(2);
    }
    let chunks = (options.tasks / options.chunk) as usize;
    if chunks < options.kills {
        eprintln!("soak: --tasks / --chunk must give at least one add per kill");
        return ExitCode::from(2);
    }
    // The verdict is printed as the run goes; a broken guarantee is an error.
    conclude("soak", run(&options), |()| {})
}

fn run(options: &Options) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(options.timeout);
    let seed = options.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    println!(
        "soak: {} tasks in adds of {}, {} workers x {} slots, {} coordinator kills, seed {seed}",
        options.tasks, options.chunk, options.workers, options.slots, options.kills
    );
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut cluster = release_cluster();
    let side_effects = cluster.dir().join("side-effects.txt");
    let _workers = start_workers(&cluster, options.workers, options.slots);

    let chunks = (options.tasks / options.chunk) as usize;
    let batch_end = |k: usize| (k + 1) * chunks / options.kills;
    let shared = Arc::new(Shared::default());
    shared.released.store(batch_end(0), Ordering::SeqCst);
    let _stop_adder = StopOnDrop(shared.clone());
    let adder = Adder {
        actionwurm: cluster.bins().actionwurm.clone(),
        addr: cluster.addr().to_string(),
        dir: cluster.dir().to_path_buf(),
        log: cluster.log_dir().join("actionwurm.log"),
        side_effects: side_effects.clone(),
        chunk: options.chunk,
        chunks,
        shared: shared.clone(),
    };
    let adder = thread::Builder::new()
        .name("soak-adder".into())
        .spawn(move || adder.run())
        .map_err(|e| e.to_string())?;

    let started = Instant::now();
    let mut lines = LineCounter::new(&side_effects);
    let mut kills = Vec::new();
    for k in 0..options.kills {
        let (first, end) = (if k == 0 { 0 } else { batch_end(k - 1) }, batch_end(k));
        let alive = || {
            if adder.is_finished() && shared.acknowledged_chunks() < chunks {
                Some(Err("the adder thread ended early".to_string()))
            } else {
                None
            }
        };
        let during_add = rng.usize(..3) == 0;
        let moment = if during_add {
            // While the add of a random chunk of this batch is under way: a random time into
            // it, up to the last acknowledged add's duration.
            let chunk = first + rng.usize(..(end - first).max(1));
            poll_until(
                &format!("the add of chunk {chunk}"),
                Duration::from_micros(200),
                remaining(deadline),
                || {
                    alive().or_else(|| {
                        let adding = shared.adding.load(Ordering::SeqCst);
                        (adding == chunk as i64 || shared.acknowledged_chunks() > chunk)
                            .then_some(Ok(()))
                    })
                },
            )?;
            let last = shared.last_add_micros.load(Ordering::SeqCst).max(1000);
            thread::sleep(Duration::from_micros(rng.usize(..last) as u64));
            let still = shared.adding.load(Ordering::SeqCst) == chunk as i64;
            format!(
                "{} the add of chunk {chunk}",
                if still { "during" } else { "just after" }
            )
        } else {
            // Once the batch is acknowledged, after a random share of the tasks acknowledged
            // but not yet run has run.
            poll_until(
                &format!("the adds of batch {k}"),
                LOOK_EVERY,
                remaining(deadline),
                || alive().or_else(|| (shared.acknowledged_chunks() >= end).then_some(Ok(()))),
            )?;
            let acknowledged = (end as u64 * options.chunk) as usize;
            let now = lines.count();
            let share = rng.usize(..1000) as f64 / 1000.0;
            let target = now + (acknowledged.saturating_sub(now) as f64 * share) as usize;
            poll_until(
                &format!("{target} runs"),
                LOOK_EVERY,
                remaining(deadline),
                || (lines.count() >= target).then_some(Ok(())),
            )?;
            format!("after {share:.3} of the tasks waiting had run")
        };
        let at = started.elapsed();
        let runs_then = lines.count();
        cluster.stop_coordinator(Stop::Kill);
        let restart = Instant::now();
        cluster.start_coordinator_again();
        let restart = restart.elapsed();
        shared.kills.store(k + 1, Ordering::SeqCst);
        if k + 1 < options.kills {
            shared.released.store(batch_end(k + 1), Ordering::SeqCst);
        }
        println!(
            "kill {:>2} at {:>7.3} s, {moment}: {} adds acknowledged, {runs_then} runs; \
             listening again after {:.3} s",
            k + 1,
            at.as_secs_f64(),
            shared.acknowledged_chunks(),
            restart.as_secs_f64()
        );
        kills.push(restart);
    }
    poll_until(
        "the adder to finish",
        LOOK_EVERY,
        remaining(deadline),
        || adder.is_finished().then_some(Ok(())),
    )?;
    adder.join().map_err(|_| "the adder thread panicked")??;
    let waited = cluster.action_within(
        &[
            "task",
            "wait",
            "-a",
            "--timeout",
            &format!("{:.0}", remaining(deadline).as_secs_f64()),
        ],
        remaining(deadline) + Duration::from_secs(30),
    );
    let run_time = started.elapsed();
    check(&waited, "waiting for every task")?;
    let tries = shared.tries.lock().map_err(|_| "poisoned")?.clone();
    let tasks = list_all(&cluster, deadline)?;
    let runs = read_side_effects(&side_effects)?;
    let log = cluster.coordinator_log();
    let report = verify(options, &tries, &tasks, &runs);
    print_report(options, &report, run_time, &kills, &tries, runs.len(), &log);
    match report.broken.first() {
        None => {
            println!("verdict: every guarantee held");
            Ok(())
        }
        Some(first) => Err(format!(
            "{} broken guarantee(s), the first: {first}",
            report.broken.len()
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// The adder thread.

/// One `task add` of a chunk.
#[derive(Debug, Clone)]
struct Try {
    chunk: usize,
    /// `c<chunk>t<try>`: the third argument of each of its tasks.
    marker: String,
    /// The ids it printed: acknowledged (all of the chunk, or none).
    ids: Vec<u64>,
    /// What it said on stderr when it failed.
    stderr: String,
}

/// What the kill loop and the adder share.
#[derive(Default)]
struct Shared {
    /// How many chunks the adder may add by now.
    released: AtomicUsize,
    /// The chunk whose add is under way, or -1.
    adding: AtomicI64,
    /// How long the last acknowledged add took, in microseconds.
    last_add_micros: AtomicUsize,
    /// How many kills are done.
    kills: AtomicUsize,
    /// Every add, in order.
    tries: Mutex<Vec<Try>>,
    /// Set when the main thread unwinds: the adder stops.
    stop: AtomicBool,
}

impl Shared {
    fn acknowledged_chunks(&self) -> usize {
        self.tries
            .lock()
            .map(|tries| tries.iter().filter(|t| !t.ids.is_empty()).count())
            .unwrap_or(0)
    }
}

/// Tells the adder to stop when the main thread leaves `run`.
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
    chunk: u64,
    chunks: usize,
    shared: Arc<Shared>,
}

impl Adder {
    fn run(self) -> Result<(), String> {
        self.shared.adding.store(-1, Ordering::SeqCst);
        let function = format!(
            "{}:mark",
            workspace_root()
                .join("bench")
                .join("python")
                .join("soak_task.py")
                .display()
        );
        for chunk in 0..self.chunks {
            while chunk >= self.shared.released.load(Ordering::SeqCst) {
                self.check_stop()?;
                thread::sleep(Duration::from_millis(1));
            }
            for attempt in 0.. {
                self.check_stop()?;
                let marker = format!("c{chunk}t{attempt}");
                let file = self.args_file(chunk, &marker)?;
                let file = file.to_str().ok_or("a temp path is not UTF-8")?;
                let argv = ["task", "add", &function, "--args-file", file, "--play"];
                self.shared.adding.store(chunk as i64, Ordering::SeqCst);
                let start = Instant::now();
                let action = actionwurm::run(
                    &self.actionwurm,
                    Some(&self.addr),
                    &argv,
                    &[],
                    ADD_LIMIT,
                    Some(&self.log),
                );
                let took = start.elapsed();
                self.shared.adding.store(-1, Ordering::SeqCst);
                let ids = action.printed_ids();
                let acknowledged = action.success() && ids.len() as u64 == self.chunk;
                if !ids.is_empty() && !acknowledged {
                    return Err(format!("an add printed some ids but not all: {action}"));
                }
                if acknowledged {
                    self.shared
                        .last_add_micros
                        .store(took.as_micros() as usize, Ordering::SeqCst);
                }
                self.shared.tries.lock().map_err(|_| "poisoned")?.push(Try {
                    chunk,
                    marker,
                    ids,
                    stderr: action.stderr.trim().to_string(),
                });
                if acknowledged {
                    break;
                }
                thread::sleep(RETRY_PAUSE);
            }
        }
        Ok(())
    }

    fn check_stop(&self) -> Result<(), String> {
        if self.shared.stop.load(Ordering::SeqCst) {
            Err("stopped".to_string())
        } else {
            Ok(())
        }
    }

    /// The args file of one try of a chunk: each line `[SIDE_EFFECTS, SEQ, MARKER]`.
    fn args_file(&self, chunk: usize, marker: &str) -> Result<PathBuf, String> {
        let side = serde_json::to_string(&self.side_effects.display().to_string())
            .map_err(|e| e.to_string())?;
        let first = chunk as u64 * self.chunk;
        let text: String = (first..first + self.chunk)
            .map(|seq| format!("[{side}, {seq}, \"{marker}\"]\n"))
            .collect();
        let path = self.dir.join(format!("soak-{marker}.jsonl"));
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }
}

// ---------------------------------------------------------------------------------------------
// Reading what happened.

/// Counts the lines of the side-effect file as it grows, reading only what was appended.
struct LineCounter {
    path: PathBuf,
    file: Option<File>,
    count: usize,
}

impl LineCounter {
    fn new(path: &Path) -> LineCounter {
        LineCounter {
            path: path.to_path_buf(),
            file: None,
            count: 0,
        }
    }

    fn count(&mut self) -> usize {
        if self.file.is_none() {
            self.file = File::open(&self.path).ok();
        }
        if let Some(file) = self.file.as_mut() {
            let mut buffer = [0u8; 64 * 1024];
            while let Ok(read) = file.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                self.count += buffer[..read].iter().filter(|&&b| b == b'\n').count();
            }
        }
        self.count
    }
}

/// One line of the side-effect file: a run of a task.
#[derive(Debug, Clone)]
struct Run {
    task: u64,
    attempt: u64,
    seq: u64,
    run: String,
}

fn read_side_effects(path: &Path) -> Result<Vec<Run>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .map(|line| {
            let parts: Vec<&str> = line.split(' ').collect();
            let number = |i: usize| -> Result<u64, String> {
                parts
                    .get(i)
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| format!("a torn side-effect line: {line:?}"))
            };
            if parts.len() != 4 {
                return Err(format!("a torn side-effect line: {line:?}"));
            }
            Ok(Run {
                task: number(0)?,
                attempt: number(1)?,
                seq: number(2)?,
                run: parts[3].to_string(),
            })
        })
        .collect()
}

/// What the checks need of a task of `task list --json`.
#[derive(Debug, Deserialize)]
struct Task {
    id: u64,
    state: String,
    #[serde(default)]
    args: Vec<serde_json::Value>,
    #[serde(default)]
    result: serde_json::Value,
    #[serde(default)]
    attempts: u64,
    #[serde(default)]
    crashes: u64,
}

/// Every task, from `task list --limit 0 --json`.
fn list_all(cluster: &Cluster, deadline: Instant) -> Result<Vec<Task>, String> {
    let listed = cluster.action_within(
        &["task", "list", "--limit", "0", "--json"],
        remaining(deadline),
    );
    check(&listed, "listing every task")?;
    serde_json::from_str(&listed.stdout).map_err(|e| format!("`task list --json`: {e}"))
}

// ---------------------------------------------------------------------------------------------
// The checks.

/// What the checks counted.
#[derive(Default)]
struct Report {
    acknowledged: usize,
    failed_adds: usize,
    landed_unacknowledged: usize,
    tasks_in_table: usize,
    run_more_than_once: usize,
    extra_runs: usize,
    reused_attempts: usize,
    attempts_beyond_one: u64,
    crashes: u64,
    double_records: usize,
    lost: usize,
    wrong_results: usize,
    /// Every broken guarantee, a sentence each (the first few of each kind).
    broken: Vec<String>,
}

impl Report {
    fn broke(&mut self, sentence: String) {
        if self.broken.len() < 50 {
            self.broken.push(sentence);
        }
    }
}

fn verify(options: &Options, tries: &[Try], tasks: &[Task], runs: &[Run]) -> Report {
    let mut report = Report::default();
    // The acknowledged ids: one add per chunk, each id once.
    let mut acknowledged: HashMap<u64, &Try> = HashMap::new();
    for add in tries.iter().filter(|t| !t.ids.is_empty()) {
        for &id in &add.ids {
            if acknowledged.insert(id, add).is_some() {
                report.double_records += 1;
                report.broke(format!("id {id} was acknowledged by two adds"));
            }
        }
    }
    report.acknowledged = acknowledged.len();
    report.failed_adds = tries.iter().filter(|t| t.ids.is_empty()).count();
    let acked_chunks: HashSet<usize> = tries
        .iter()
        .filter(|t| !t.ids.is_empty())
        .map(|t| t.chunk)
        .collect();
    if report.acknowledged as u64 != options.tasks
        || acked_chunks.len() as u64 != options.tasks / options.chunk
    {
        report.broke(format!(
            "{} ids acknowledged over {} chunks, not {}",
            report.acknowledged,
            acked_chunks.len(),
            options.tasks
        ));
    }

    // The table: each id once; each (marker, seq) once (a re-sent add stored twice would
    // give one twice under new ids).
    let mut table: BTreeMap<u64, &Task> = BTreeMap::new();
    let mut by_logical: HashMap<(String, u64), u64> = HashMap::new();
    for task in tasks {
        if table.insert(task.id, task).is_some() {
            report.double_records += 1;
            report.broke(format!("task {} is listed twice", task.id));
        }
        let seq = task.args.get(1).and_then(|v| v.as_u64());
        let marker = task.args.get(2).and_then(|v| v.as_str());
        let (Some(seq), Some(marker)) = (seq, marker) else {
            report.broke(format!(
                "task {} has arguments of no add: {:?}",
                task.id, task.args
            ));
            continue;
        };
        if let Some(other) = by_logical.insert((marker.to_string(), seq), task.id) {
            report.double_records += 1;
            report.broke(format!(
                "seq {seq} of add {marker} is stored twice: tasks {other} and {}",
                task.id
            ));
        }
    }
    report.tasks_in_table = table.len();
    let markers: HashMap<&str, &Try> = tries.iter().map(|t| (t.marker.as_str(), t)).collect();
    for task in table.values() {
        let marker = task.args.get(2).and_then(|v| v.as_str()).unwrap_or("");
        match markers.get(marker) {
            Some(add) if add.ids.is_empty() => report.landed_unacknowledged += 1,
            Some(add) if !add.ids.contains(&task.id) => report.broke(format!(
                "task {} carries the marker of add {marker}, which did not print its id",
                task.id
            )),
            Some(_) => {}
            None => report.broke(format!("task {} comes from no known add", task.id)),
        }
    }

    // The runs, per task.
    let mut by_task: HashMap<u64, Vec<&Run>> = HashMap::new();
    let mut pairs = HashSet::new();
    for run in runs {
        if !pairs.insert((run.task, run.attempt)) {
            // Each (task, attempt) names one run (TATZELWURM_ATTEMPT is an idempotency key):
            // a restarted coordinator skips the number an unwritten assignment may have used.
            report.reused_attempts += 1;
            report.broke(format!(
                "attempt {} of task {} ran twice: an attempt number was handed out twice",
                run.attempt, run.task
            ));
        }
        by_task.entry(run.task).or_default().push(run);
    }
    for (id, ran) in &by_task {
        if ran.len() > 1 {
            report.run_more_than_once += 1;
            report.extra_runs += ran.len() - 1;
        }
        if !table.contains_key(id) {
            report.broke(format!("task {id} ran but the table does not have it"));
        }
    }

    // Every acknowledged task: in the table, completed once, with the result of one of its
    // own runs, for its own arguments.
    let mut ids: Vec<&u64> = acknowledged.keys().collect();
    ids.sort();
    for &id in ids {
        let Some(task) = table.get(&id) else {
            report.lost += 1;
            report.broke(format!("acknowledged task {id} is missing from the table"));
            continue;
        };
        report.attempts_beyond_one += task.attempts.saturating_sub(1);
        report.crashes += task.crashes;
        if task.state != "completed" {
            report.lost += 1;
            report.broke(format!("acknowledged task {id} is {}", task.state));
            continue;
        }
        let result = &task.result;
        let seq = task.args.get(1).and_then(|v| v.as_u64());
        let ran = by_task.get(&id).map(Vec::as_slice).unwrap_or(&[]);
        let from_a_run = ran.iter().any(|r| {
            result["run"] == r.run.as_str() && result["attempt"] == r.attempt && Some(r.seq) == seq
        });
        let right = result["id"] == id
            && result["seq"].as_u64() == seq
            && result["marker"] == task.args[2]
            && from_a_run;
        if !right {
            report.wrong_results += 1;
            report.broke(format!(
                "task {id}'s result {result} is not that of one of its runs {ran:?}"
            ));
        }
    }
    report
}

fn print_report(
    options: &Options,
    report: &Report,
    run_time: Duration,
    restarts: &[Duration],
    tries: &[Try],
    runs: usize,
    log: &str,
) {
    let slowest = restarts.iter().max().copied().unwrap_or_default();
    let mean = restarts.iter().sum::<Duration>() / restarts.len().max(1) as u32;
    print_figure(
        "run time (first add to all done)",
        format!("{:.1} s", run_time.as_secs_f64()),
    );
    print_figure(
        "rate, kills and restarts included",
        format!(
            "{:.0} tasks/s",
            options.tasks as f64 / run_time.as_secs_f64()
        ),
    );
    print_figure("coordinator kills", restarts.len());
    print_figure(
        "restart to listening, mean / max",
        format!("{:.3} / {:.3} s", mean.as_secs_f64(), slowest.as_secs_f64()),
    );
    print_figure("tasks acknowledged", report.acknowledged);
    print_figure("adds failed and run again", report.failed_adds);
    for add in tries.iter().filter(|t| t.ids.is_empty()).take(5) {
        println!(
            "  add {} failed: {}",
            add.marker,
            add.stderr.lines().last().unwrap_or("")
        );
    }
    print_figure(
        "tasks of failed adds that landed",
        report.landed_unacknowledged,
    );
    print_figure("tasks in the table", report.tasks_in_table);
    print_figure("runs in all", runs);
    print_figure("tasks run more than once", report.run_more_than_once);
    print_figure("  runs beyond one per task", report.extra_runs);
    print_figure(
        "  runs that reused an attempt number",
        report.reused_attempts,
    );
    print_figure(
        "attempts beyond one (acknowledged)",
        report.attempts_beyond_one,
    );
    print_figure("crashes counted (acknowledged)", report.crashes);
    print_figure("double records (must be 0)", report.double_records);
    print_figure("acknowledged but lost (must be 0)", report.lost);
    print_figure("wrong results (must be 0)", report.wrong_results);
    print_figure(
        "coordinator log: ignored reports",
        log.matches("ignored report of task").count(),
    );
    for sentence in report.broken.iter().take(10) {
        println!("BROKEN: {sentence}");
    }
}
