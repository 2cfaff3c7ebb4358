//! W1, the yardstick of tatzelwurm's speed: 10,000 `noop(x)` tasks on 2 workers × 1 slot, timed
//! from the start of the add to the last result, three ways, each on a fresh cluster: through the
//! command line (`task add --args-file --play`, then `task wait -a`), through the Python client
//! with one `submit_many`, and with one `submit` per task. Beside them, in the same invocation,
//! the baseline of the issue: `multiprocessing.Pool(2)` with one `apply_async` per task.
//! Targets (issue 10): >= 100,000 tasks/s end to end for the command line and `submit_many`,
//! ahead of `Pool(2)`; >= 50,000 tasks/s with one `submit` per task.
//!
//! ```text
//! cargo build --release --workspace --bins
//! PYO3_BUILD_EXTENSION_MODULE=1 cargo build --release -p tatzelwurm-python
//! cargo run --release -p tatzelwurm-bench --bin w1 [-- --tasks 10000]
//! ```
//!
//! Every run's workers are warmed before its clock, as the Pool's processes are (started, and
//! having run a `noop`): a few `noop`s until each worker has run one (`warm_up`, as `w2`
//! does), so that each slot has imported `examples/tasks.py` and the coordinator has measured
//! `noop`. A task queue's workers are long-lived; a cold start (a fresh worker's first task
//! imports the file, and an unmeasured function is prefetched one task per slot at first) is
//! printed too, for the command line.
//!
//! The Python runs use `bench/python/w1_client.py` with the `python3` on PATH (the workers'
//! too) and a `tatzelwurm` package assembled from `python/tatzelwurm/` and the release build's
//! `lib_native.so` (`--skip-python` leaves them out). It builds nothing itself: it runs the
//! release binaries through the end-to-end harness, so it measures exactly what a user gets.
//! Every wait is bounded by `--timeout`; past it the run ends non-zero, and all processes it
//! started are killed on the way out.

use clap::Parser;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tatzelwurm_bench::{add_from_file, conclude, counting_lines, print_at_least, print_figure};
use tatzelwurm_bench::{python_json, python_package, release_cluster, remaining};
use tatzelwurm_bench::{require_release_binaries, start_workers, wait_tasks, warm_up};
use tatzelwurm_e2e::{example, workspace_root, Cluster};

/// The issue's targets, in tasks per second end to end.
const TARGET_BATCH_RATE: f64 = 100_000.0;
const TARGET_SUBMIT_RATE: f64 = 50_000.0;

/// Command-line options of `w1`.
#[derive(Debug, Parser)]
#[command(
    about = "W1: noop tasks end to end on 2 workers x 1 slot (CLI, Python client), beside Pool(2)"
)]
struct Options {
    /// How many `noop(x)` tasks each run adds.
    #[arg(long, default_value_t = 10_000)]
    tasks: u64,
    /// How many workers to start (and processes in the Pool baseline, times `--slots`).
    #[arg(long, default_value_t = 2)]
    workers: u32,
    /// How many slots each worker has.
    #[arg(long, default_value_t = 1)]
    slots: u32,
    /// Leave out the Python client's runs (the command line's and the Pool's still run).
    #[arg(long)]
    skip_python: bool,
    /// Seconds the whole run may take before it gives up and exits non-zero.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
}

/// One run's clock: the add (or the submit calls) and the whole run to the last result.
struct Timing {
    add: f64,
    end_to_end: f64,
}

/// What one invocation measured.
struct Measurement {
    cli: Timing,
    /// The command line on workers that had run nothing.
    cold: Timing,
    done_per_worker: BTreeMap<String, u64>,
    /// `submit_many`, then one `submit` per task; `None` with `--skip-python`.
    python: Option<(Timing, Timing)>,
    pool: f64,
}

fn main() -> ExitCode {
    let options = Options::parse();
    if let Err(message) = require_release_binaries("w1") {
        eprintln!("{message}");
        return ExitCode::from(2);
    }
    if !options.skip_python {
        let probe = tempfile::tempdir().expect("create a temp dir");
        if let Err(message) = python_package(probe.path()) {
            eprintln!("w1: {message} (or run with --skip-python)");
            return ExitCode::from(2);
        }
    }
    conclude("w1", run(&options), |measured| report(&options, &measured))
}

fn run(options: &Options) -> Result<Measurement, String> {
    let deadline = Instant::now() + Duration::from_secs(options.timeout);
    let (cli, done_per_worker) = cli_run(options, true, deadline)?;
    let (cold, _) = cli_run(options, false, deadline)?;
    let python = if options.skip_python {
        None
    } else {
        let many = python_run(options, "submit_many", deadline)?;
        let each = python_run(options, "submit", deadline)?;
        Some((many, each))
    };
    let pool = pool_run(options, deadline)?;
    Ok(Measurement {
        cli,
        cold,
        done_per_worker,
        python,
        pool,
    })
}

/// The command line: one `task add --args-file --play`, then `task wait -a`, on `warm`ed
/// workers or cold ones; checks that every task completed.
fn cli_run(
    options: &Options,
    warm: bool,
    deadline: Instant,
) -> Result<(Timing, BTreeMap<String, u64>), String> {
    let cluster = release_cluster();
    let _workers = start_workers(&cluster, options.workers, options.slots);
    let warmed = if warm {
        warm_up(&cluster, options.workers, options.slots, deadline)?.len() as u64
    } else {
        0
    };
    let before = done_per_worker(&cluster);
    let file = cluster.write_args_file(&counting_lines(options.tasks));
    let noop = example("noop");
    let start = Instant::now();
    add_from_file(&cluster, &noop, &file, options.tasks, true, deadline)?;
    let add = start.elapsed().as_secs_f64();
    wait_tasks(&cluster, &[], deadline)?;
    let end_to_end = start.elapsed().as_secs_f64();
    let completed = cluster.list(&["completed"]).len() as u64 - warmed;
    if completed != options.tasks {
        return Err(format!("{completed} of {} tasks completed", options.tasks));
    }
    let mut done = done_per_worker(&cluster);
    for (name, count) in &mut done {
        *count -= before.get(name).copied().unwrap_or(0);
    }
    Ok((Timing { add, end_to_end }, done))
}

/// The Python client on a fresh cluster: `bench/python/w1_client.py --mode MODE`, which checks
/// every result itself.
fn python_run(options: &Options, mode: &str, deadline: Instant) -> Result<Timing, String> {
    let cluster = release_cluster();
    let _workers = start_workers(&cluster, options.workers, options.slots);
    warm_up(&cluster, options.workers, options.slots, deadline)?;
    let package = python_package(&cluster.dir().join("python"))?;
    let noop = example("noop");
    let tasks = options.tasks.to_string();
    let args = [
        "--coordinator",
        cluster.addr(),
        "--function",
        &noop,
        "--mode",
        mode,
        "--tasks",
        &tasks,
    ];
    let figures = python_json(&script(), &args, Some(&package), remaining(deadline))?;
    let figure = |key: &str| {
        figures[mode][key]
            .as_f64()
            .ok_or_else(|| format!("w1_client.py gave no {key} for {mode}: {figures}"))
    };
    Ok(Timing {
        add: figure("submit_seconds")?,
        end_to_end: figure("end_to_end_seconds")?,
    })
}

/// The baseline: `multiprocessing.Pool(workers × slots)`, one `apply_async` per task; seconds.
fn pool_run(options: &Options, deadline: Instant) -> Result<f64, String> {
    let tasks = options.tasks.to_string();
    let processes = (options.workers * options.slots).to_string();
    let args = [
        "--mode",
        "pool",
        "--tasks",
        &tasks,
        "--processes",
        &processes,
    ];
    let figures = python_json(&script(), &args, None, remaining(deadline))?;
    figures["pool"]["end_to_end_seconds"]
        .as_f64()
        .ok_or_else(|| format!("w1_client.py gave no Pool figure: {figures}"))
}

fn script() -> PathBuf {
    workspace_root()
        .join("bench")
        .join("python")
        .join("w1_client.py")
}

/// Tasks done per worker, from `worker list`: shows whether the load was shared.
fn done_per_worker(cluster: &Cluster) -> BTreeMap<String, u64> {
    cluster
        .workers()
        .iter()
        .map(|w| {
            let name = w["name"].as_str().unwrap_or("?").to_string();
            (name, w["done"].as_u64().unwrap_or(0))
        })
        .collect()
}

fn report(options: &Options, m: &Measurement) {
    let n = options.tasks as f64;
    let processes = options.workers * options.slots;
    println!(
        "W1: {} noop tasks, {} workers x {} slot(s) (warmed, as the Pool's), release binaries; rates are tasks/s",
        options.tasks, options.workers, options.slots
    );
    let pool_rate = n / m.pool;
    print_figure("command line: add", format!("{:.0} tasks/s", n / m.cli.add));
    print_at_least(
        "command line: end to end",
        n / m.cli.end_to_end,
        "tasks/s",
        TARGET_BATCH_RATE,
    );
    print_figure(
        "command line: cold workers",
        format!("{:.0} tasks/s", n / m.cold.end_to_end),
    );
    let spread: Vec<String> = m
        .done_per_worker
        .iter()
        .map(|(name, done)| format!("{name}={done}"))
        .collect();
    print_figure("  done per worker", spread.join(" "));
    let mut ahead = vec![("command line", n / m.cli.end_to_end)];
    match &m.python {
        None => println!("(the Python client's runs were skipped: --skip-python)"),
        Some((many, each)) => {
            print_figure(
                "python submit_many: submit",
                format!("{:.0} tasks/s", n / many.add),
            );
            print_at_least(
                "python submit_many: end to end",
                n / many.end_to_end,
                "tasks/s",
                TARGET_BATCH_RATE,
            );
            print_figure(
                "python submit x N: submit",
                format!("{:.0} tasks/s", n / each.add),
            );
            print_at_least(
                "python submit x N: end to end",
                n / each.end_to_end,
                "tasks/s",
                TARGET_SUBMIT_RATE,
            );
            ahead.push(("submit_many", n / many.end_to_end));
        }
    }
    print_figure(
        &format!("baseline Pool({processes}): end to end"),
        format!("{pool_rate:.0} tasks/s"),
    );
    for (what, rate) in ahead {
        let verdict = if rate > pool_rate { "yes" } else { "no" };
        print_figure(
            &format!("{what} ahead of Pool({processes})"),
            format!("{verdict} ({:.2} x)", rate / pool_rate),
        );
    }
}
