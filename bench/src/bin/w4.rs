//! W4, scale: 10^6 tasks in one add, the coordinator's memory with them stored, its restart
//! after kill -9, then all of them run through 2 workers × 4 slots with the coordinator's memory
//! sampled, and the store's disk use after all completed beside the bytes of their records.
//! Targets (issue 10, for 10^6 tasks): add <= 5 s; RSS <= 300 MB stored and while they run;
//! first answer after kill -9 <= 1 s; disk <= 2 × records. Beside it, in the same invocation:
//! W1's add (10,000 noops, 2 workers × 1 slot) on a cluster of its own, so that the cost per task
//! of the two adds can be compared.
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo run --release -p tatzelwurm-bench --bin w4                        # the issue's size
//! cargo run --release -p tatzelwurm-bench --bin w4 -- --tasks 100000 --skip-run   # quicker
//! ```
//!
//! The tasks are `noop(x)` added with `--play` while no worker is connected, so they are stored
//! `ready`. The first answer after the restart is timed from the start of the new coordinator
//! process to the end of the first `task list --state running` that succeeds. Completion is
//! followed through `worker list` (attempts reported per worker), not `task wait -a`, whose final
//! reply lists every task and would itself weigh on the memory being measured.
//!
//! Record bytes after the run are read back from the store: the coordinator is stopped, the
//! store opened with the coordinator's own `Store`, and every task record weighed as it is
//! written (8-byte key + bincode of the `TaskRecord`). Beside them, and for the ready tasks
//! before the run, an estimate of the same: per task its arguments' JSON (the args file's
//! line), the function name, the result's JSON and the worker's name once completed, and 48
//! bytes of framing and fixed fields (id, state, policy, timestamps, counters, length prefixes).
//!
//! Runs the release binaries through the end-to-end harness, as `w1` does. Every wait is bounded
//! by `--timeout`; past it the run ends non-zero, and all processes it started are killed.

use clap::Parser;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};
use tatzelwurm_bench::{add_from_file, check, conclude, count_in_state, counting_lines, megabytes};
use tatzelwurm_bench::{print_figure, print_target, release_cluster, remaining};
use tatzelwurm_bench::{require_release_binaries, start_workers};
use tatzelwurm_e2e::wait::poll_every;
use tatzelwurm_e2e::{example, status_kib, Cluster, Stop};

/// The issue's targets.
const TARGET_ADD_SECONDS: f64 = 5.0;
const TARGET_RSS_MB: f64 = 300.0;
const TARGET_FIRST_ANSWER_SECONDS: f64 = 1.0;
const TARGET_DISK_RATIO: f64 = 2.0;
/// The size of the targets: figures of a smaller run are not comparable to them one to one.
const TARGET_TASKS: u64 = 1_000_000;
/// How often the coordinator's memory and the workers' progress are sampled during `--run`.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(250);
/// How long the restarted coordinator may take to answer its first request.
const FIRST_ANSWER_TIMEOUT: Duration = Duration::from_secs(120);
/// Bytes counted per task besides its arguments, function, result and worker name, as bincode
/// with varint integers would write them: id (up to 9), state (1), policy (retries, backoff,
/// timeout option, at-most-once, crash limit: 12), three timestamps (up to 9 each, 27), no
/// kwargs (`{}`, 3), length prefixes and option tags (about 6, counted once here; the counters
/// attempts, failures, crashes take 3 more when small). 48 in all, rounded up.
const FIXED_BYTES_PER_TASK: u64 = 48;

/// Command-line options of `w4`.
#[derive(Debug, Parser)]
#[command(about = "W4: many tasks in one add, memory, restart after kill -9, disk use")]
struct Options {
    /// How many `noop(x)` tasks to add (the targets are for 1000000).
    #[arg(long, default_value_t = 1_000_000)]
    tasks: u64,
    /// Do not run the tasks through the workers (no RSS while they run, no disk after
    /// completion): the add, the memory stored and the restart only.
    #[arg(long)]
    skip_run: bool,
    /// How many workers run the tasks with `--run`.
    #[arg(long, default_value_t = 2)]
    workers: u32,
    /// How many slots each of them has.
    #[arg(long, default_value_t = 4)]
    slots: u32,
    /// How many tasks the W1 baseline adds.
    #[arg(long, default_value_t = 10_000)]
    baseline_tasks: u64,
    /// Seconds the whole run may take before it gives up and exits non-zero.
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
}

/// Memory of one process, in bytes.
#[derive(Clone, Copy)]
struct Memory {
    rss: u64,
    hwm: u64,
}

impl Memory {
    fn of(pid: i32) -> Memory {
        Memory {
            rss: status_kib(pid, "VmRSS") * 1024,
            hwm: status_kib(pid, "VmHWM") * 1024,
        }
    }
}

/// Disk use of a directory tree: blocks allocated (what `du` shows) and file lengths.
#[derive(Clone, Copy, Default)]
struct Disk {
    allocated: u64,
    apparent: u64,
}

/// The records as the store holds them, read after the run: their count and bincode bytes.
struct Stored {
    records: u64,
    bytes: u64,
}

/// What the run through the workers measured.
struct Played {
    seconds: f64,
    peak_rss: u64,
    samples: usize,
    after: Memory,
    disk: Disk,
    result_bytes: u64,
    /// The store's own records, or why they could not be read.
    stored: Result<Stored, String>,
}

/// Everything one invocation measured.
struct Measurement {
    baseline_add: f64,
    add: f64,
    function_bytes: u64,
    args_file_bytes: u64,
    stored: Memory,
    disk_stored: Disk,
    listening: f64,
    first_answer: f64,
    restarted: Memory,
    played: Option<Played>,
}

fn main() -> ExitCode {
    let options = Options::parse();
    if let Err(message) = require_release_binaries("w4") {
        eprintln!("{message}");
        return ExitCode::from(2);
    }
    let deadline = Instant::now() + Duration::from_secs(options.timeout);
    conclude("w4", run(&options, deadline), |measured| {
        report(&options, &measured)
    })
}

fn run(options: &Options, deadline: Instant) -> Result<Measurement, String> {
    let baseline_add = w1_add(options, deadline)?;

    let mut cluster = release_cluster();
    let noop = example("noop");
    let file = cluster.write_args_file(&counting_lines(options.tasks));
    let args_file_bytes = fs::metadata(&file).map_err(|e| e.to_string())?.len();
    let start = Instant::now();
    add_from_file(&cluster, &noop, &file, options.tasks, true, deadline)?;
    let add = start.elapsed().as_secs_f64();
    let stored = Memory::of(cluster.coordinator().proc.pid());
    let db = cluster.dir().join("db");
    let disk_stored = disk_use(&db);

    cluster.stop_coordinator(Stop::Kill);
    let start = Instant::now();
    cluster.start_coordinator_again();
    let listening = start.elapsed().as_secs_f64();
    let first = poll_every(Duration::from_millis(10), FIRST_ANSWER_TIMEOUT, || {
        let listed = cluster.action_within(
            &["task", "list", "--state", "running", "--json"],
            FIRST_ANSWER_TIMEOUT,
        );
        listed.success().then_some(())
    });
    first.ok_or_else(|| {
        format!("the restarted coordinator did not answer within {FIRST_ANSWER_TIMEOUT:?}")
    })?;
    let first_answer = start.elapsed().as_secs_f64();
    let restarted = Memory::of(cluster.coordinator().proc.pid());

    let played = if !options.skip_run {
        Some(play(&mut cluster, options, deadline)?)
    } else {
        None
    };
    Ok(Measurement {
        baseline_add,
        add,
        function_bytes: noop.len() as u64,
        args_file_bytes,
        stored,
        disk_stored,
        listening,
        first_answer,
        restarted,
        played,
    })
}

/// W1's add, the baseline: `--baseline-tasks` noops added with `--play` while 2 workers × 1 slot
/// run them, on a cluster of its own; its seconds.
fn w1_add(options: &Options, deadline: Instant) -> Result<f64, String> {
    let cluster = release_cluster();
    let _workers = start_workers(&cluster, 2, 1);
    let file = cluster.write_args_file(&counting_lines(options.baseline_tasks));
    let start = Instant::now();
    let noop = example("noop");
    add_from_file(
        &cluster,
        &noop,
        &file,
        options.baseline_tasks,
        true,
        deadline,
    )?;
    Ok(start.elapsed().as_secs_f64())
}

/// Starts the workers and follows them until every task's attempt was reported, sampling the
/// coordinator's memory; then checks that every task completed and measures the store.
fn play(cluster: &mut Cluster, options: &Options, deadline: Instant) -> Result<Played, String> {
    let pid = cluster.coordinator().proc.pid();
    let start = Instant::now();
    let _workers = start_workers(cluster, options.workers, options.slots);
    let mut peak_rss = 0;
    let mut samples = 0;
    loop {
        peak_rss = peak_rss.max(status_kib(pid, "VmRSS") * 1024);
        samples += 1;
        let listed = cluster.action(&["worker", "list", "--json"]);
        check(&listed, "listing the workers")?;
        let done: u64 = match listed.json() {
            serde_json::Value::Array(workers) => {
                workers.iter().filter_map(|w| w["done"].as_u64()).sum()
            }
            other => return Err(format!("`worker list --json` printed no array: {other}")),
        };
        if done >= options.tasks {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{done} of {} attempts reported within --timeout",
                options.tasks
            ));
        }
        thread::sleep(SAMPLE_INTERVAL.min(remaining(deadline)));
    }
    let seconds = start.elapsed().as_secs_f64();
    let after = Memory::of(pid);
    for state in ["ready", "running", "waiting", "failed", "killed"] {
        let count = count_in_state(cluster, state)?;
        if count != 0 {
            return Err(format!(
                "{count} task(s) {state} after all attempts reported"
            ));
        }
    }
    // Each result's JSON (`noop(x)` returns x) and the worker's name (`w1`, `w2`, ...).
    let result_bytes = (0..options.tasks)
        .map(|i| i.to_string().len() as u64 + 2)
        .sum();
    let db = cluster.dir().join("db");
    let disk = disk_use(&db);
    // The store is the coordinator's alone while it runs: stop it (every completion was
    // flushed before it was reported), then weigh its records.
    cluster.stop_coordinator(Stop::Kill);
    Ok(Played {
        seconds,
        peak_rss,
        samples,
        after,
        disk,
        result_bytes,
        stored: stored_records(&db),
    })
}

/// Opens the store the coordinator left and adds up its task records as it writes them: the
/// 8-byte key plus the bincode of the `TaskRecord` (the coordinator's own type and encoding),
/// read page by page. Outputs are not counted (`noop` prints nothing).
fn stored_records(db: &Path) -> Result<Stored, String> {
    use tatzelwurm::store::{Part, Store};
    let store = Store::open(db, None).map_err(|e| e.to_string())?;
    let mut total = Stored {
        records: 0,
        bytes: 0,
    };
    let mut after = None;
    loop {
        let page = store
            .scan(Part::All, after, 50_000, &[])
            .map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for record in &page {
            let encoded = bincode::serde::encode_to_vec(record, bincode::config::standard())
                .map_err(|e| e.to_string())?;
            total.bytes += 8 + encoded.len() as u64;
        }
        total.records += page.len() as u64;
    }
    Ok(total)
}

/// The disk use of every file under `dir`, as `du` and `du --apparent-size` count it.
fn disk_use(dir: &Path) -> Disk {
    let mut total = Disk::default();
    let Ok(entries) = fs::read_dir(dir) else {
        return total;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            let inner = disk_use(&entry.path());
            total.allocated += inner.allocated;
            total.apparent += inner.apparent;
        } else {
            total.allocated += meta.blocks() * 512;
            total.apparent += meta.len();
        }
    }
    total
}

fn report(options: &Options, m: &Measurement) {
    let n = options.tasks as f64;
    println!(
        "W4: {} noop tasks in one `task add --args-file --play`, release binaries{}",
        options.tasks,
        if options.tasks == TARGET_TASKS {
            String::new()
        } else {
            format!(" (the targets are for {TARGET_TASKS} tasks)")
        }
    );
    let baseline_n = options.baseline_tasks as f64;
    print_figure(
        &format!("baseline W1 add ({} tasks)", options.baseline_tasks),
        format!("{:.3} s", m.baseline_add),
    );
    print_figure(
        "baseline W1 add per task",
        format!("{:.1} us", m.baseline_add / baseline_n * 1e6),
    );
    print_target("add seconds", m.add, "s", TARGET_ADD_SECONDS, 3);
    print_figure("add per task", format!("{:.1} us", m.add / n * 1e6));
    print_figure("add rate", format!("{:.0} tasks/s", n / m.add));
    print_target(
        "coordinator VmRSS, tasks stored",
        megabytes(m.stored.rss),
        "MB",
        TARGET_RSS_MB,
        1,
    );
    print_figure(
        "coordinator VmHWM, tasks stored",
        format!("{:.1} MB", megabytes(m.stored.hwm)),
    );
    print_figure(
        "VmRSS / tasks stored",
        format!("{:.0} B", m.stored.rss as f64 / n),
    );
    print_figure("restart: listening after", format!("{:.3} s", m.listening));
    print_target(
        "restart: first answer after",
        m.first_answer,
        "s",
        TARGET_FIRST_ANSWER_SECONDS,
        3,
    );
    print_figure(
        "restart: VmRSS / VmHWM",
        format!(
            "{:.1} / {:.1} MB",
            megabytes(m.restarted.rss),
            megabytes(m.restarted.hwm)
        ),
    );
    let fixed = options.tasks * FIXED_BYTES_PER_TASK;
    let stored_records = m.args_file_bytes + options.tasks * m.function_bytes + fixed;
    print_disk("ready tasks stored", m.disk_stored, stored_records, None);
    match &m.played {
        None => println!("(--skip-run: the tasks were not played through the workers)"),
        Some(p) => {
            println!(
                "run through {} workers x {} slots:",
                options.workers, options.slots
            );
            print_figure("run seconds", format!("{:.3} s", p.seconds));
            print_figure("run rate", format!("{:.0} tasks/s", n / p.seconds));
            print_target(
                "coordinator peak VmRSS while run",
                megabytes(p.peak_rss),
                "MB",
                TARGET_RSS_MB,
                1,
            );
            print_figure("  (samples)", p.samples);
            print_figure(
                "coordinator VmRSS / VmHWM after",
                format!(
                    "{:.1} / {:.1} MB",
                    megabytes(p.after.rss),
                    megabytes(p.after.hwm)
                ),
            );
            let estimate = stored_records + p.result_bytes;
            let records = match &p.stored {
                Ok(stored) => {
                    print_figure(
                        "records read back from the store",
                        format!(
                            "{} ({:.1} MB, {:.0} B each)",
                            stored.records,
                            megabytes(stored.bytes),
                            stored.bytes as f64 / stored.records.max(1) as f64
                        ),
                    );
                    print_figure(
                        "  (estimate beside it)",
                        format!("{:.1} MB", megabytes(estimate)),
                    );
                    stored.bytes
                }
                Err(message) => {
                    println!("  could not read the store ({message}); using the estimate");
                    estimate
                }
            };
            print_disk("all completed", p.disk, records, Some(p.result_bytes));
        }
    }
    println!(
        "record bytes: after the run, read back from the store (8-byte key + the bincode of each \
         stored TaskRecord, as the coordinator encodes it); before it, and beside it, estimated: \
         the args file ({} B, one line of arguments per task), the function name ({} B) per \
         task, the result's JSON and the worker's name once completed, and \
         {FIXED_BYTES_PER_TASK} B per task of fixed fields and framing",
        m.args_file_bytes, m.function_bytes
    );
}

/// The store's disk use beside the record bytes counted, and their ratio; against the target
/// only after completion, when `results` (their bytes) is known.
fn print_disk(when: &str, disk: Disk, records: u64, results: Option<u64>) {
    println!("store ({when}):");
    print_figure(
        "  disk use (du)",
        format!("{:.1} MB", megabytes(disk.allocated)),
    );
    print_figure(
        "  disk use (apparent size)",
        format!("{:.1} MB", megabytes(disk.apparent)),
    );
    if let Some(results) = results {
        print_figure("  result bytes", format!("{:.1} MB", megabytes(results)));
    }
    print_figure("  record bytes", format!("{:.1} MB", megabytes(records)));
    let ratio = disk.allocated as f64 / records.max(1) as f64;
    if results.is_some() {
        print_target(
            "  disk (du) / record bytes",
            ratio,
            "x",
            TARGET_DISK_RATIO,
            2,
        );
    } else {
        // The target is for the store after the tasks completed (`--run`).
        print_figure("  disk (du) / record bytes", format!("{ratio:.2} x"));
    }
}
