//! W2, how close short tasks come to the ideal: 200 × `sleep(0.05)` on 2 workers × 1 slot, timed
//! from the start of their add to all completed, as a ratio to the ideal 5 s (200 × 0.05 s over
//! 2 slots). Beside it, in the same invocation, the same ratio for `multiprocessing.Pool(2)` with
//! one `apply_async` per task (no queue, nothing durable). Target (issue 10): <= 1.01.
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo run --release -p tatzelwurm-bench --bin w2 [-- --tasks 200 --seconds 0.05]
//! ```
//!
//! Runs the release binaries through the end-to-end harness, as `w1` does. Every wait is bounded
//! by `--timeout`; past it the run ends non-zero, and all processes it started are killed.
//!
//! Both sides are warmed before their clocks: the Pool's processes are started and have run a
//! `noop` (they were forked after `import tasks`), and so every worker has run `noop`s of
//! `examples/tasks.py` before the sleeps are added, so that its slot has imported the file (a
//! one-off ~2 ms of a first task that the Pool does not pay on its clock either). Only `noop`
//! runs before the clock, so neither side has measured `sleep` yet.

use clap::Parser;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tatzelwurm_bench::wait_tasks;
use tatzelwurm_bench::warm_up;
use tatzelwurm_bench::{add_from_file, conclude, print_figure, print_target};
use tatzelwurm_bench::{python_figure, release_cluster, require_release_binaries, start_workers};
use tatzelwurm_e2e::example;

/// The issue's target for wall time / ideal.
const TARGET_RATIO: f64 = 1.01;

/// Command-line options of `w2`.
#[derive(Debug, Parser)]
#[command(about = "W2: sleep(0.05) tasks on 2 workers x 1 slot, wall time / ideal, beside Pool(2)")]
struct Options {
    /// How many `sleep` tasks to add.
    #[arg(long, default_value_t = 200)]
    tasks: u64,
    /// How long each task sleeps, in seconds.
    #[arg(long, default_value_t = 0.05)]
    seconds: f64,
    /// How many workers to start (and processes in the Pool baseline, times `--slots`).
    #[arg(long, default_value_t = 2)]
    workers: u32,
    /// How many slots each worker has.
    #[arg(long, default_value_t = 1)]
    slots: u32,
    /// Seconds the whole run may take before it gives up and exits non-zero.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

fn main() -> ExitCode {
    let options = Options::parse();
    if let Err(message) = require_release_binaries("w2") {
        eprintln!("{message}");
        return ExitCode::from(2);
    }
    let deadline = Instant::now() + Duration::from_secs(options.timeout);
    let measured = run(&options, deadline).and_then(|wall| {
        let pool = pool_baseline(&options, deadline)?;
        Ok((wall, pool))
    });
    conclude("w2", measured, |(wall, pool)| report(&options, wall, pool))
}

/// The ideal wall time: every slot busy from the first task to the last.
fn ideal(options: &Options) -> f64 {
    let slots = f64::from(options.workers * options.slots);
    options.tasks as f64 * options.seconds / slots
}

/// Adds the sleeps to a cluster whose workers are connected and waits for all of them: the
/// seconds from the start of the add to the end of the wait.
fn run(options: &Options, deadline: Instant) -> Result<f64, String> {
    let cluster = release_cluster();
    let _workers = start_workers(&cluster, options.workers, options.slots);
    warm_up(&cluster, options.workers, options.slots, deadline)?;
    let lines: Vec<String> = (0..options.tasks)
        .map(|_| format!("[{}]", options.seconds))
        .collect();
    let file = cluster.write_args_file(&lines);
    let start = Instant::now();
    add_from_file(
        &cluster,
        &example("sleep"),
        &file,
        options.tasks,
        true,
        deadline,
    )?;
    wait_tasks(&cluster, &[], deadline)?;
    Ok(start.elapsed().as_secs_f64())
}

/// `multiprocessing.Pool(workers × slots)` running the same `tasks.sleep` with one
/// `apply_async` each, its processes started before the clock: its wall seconds.
fn pool_baseline(options: &Options, deadline: Instant) -> Result<f64, String> {
    let processes = options.workers * options.slots;
    let script = format!(
        "import multiprocessing, time\n\
         import tasks\n\
         with multiprocessing.Pool({processes}) as pool:\n\
         \x20   pool.map(tasks.noop, range({processes}))\n\
         \x20   start = time.perf_counter()\n\
         \x20   results = [pool.apply_async(tasks.sleep, ({seconds},)) for _ in range({n})]\n\
         \x20   for r in results:\n\
         \x20       r.get(timeout=600)\n\
         \x20   print(time.perf_counter() - start)\n",
        seconds = options.seconds,
        n = options.tasks,
    );
    let left = deadline.saturating_duration_since(Instant::now());
    python_figure(&script, left.max(Duration::from_secs(30)))
}

fn report(options: &Options, wall: f64, pool: f64) {
    let ideal = ideal(options);
    println!(
        "W2: {} x sleep({}), {} workers x {} slot(s), release binaries; ideal {ideal:.3} s",
        options.tasks, options.seconds, options.workers, options.slots
    );
    print_figure("tatzelwurm wall seconds", format!("{wall:.3} s"));
    print_target("tatzelwurm wall / ideal", wall / ideal, "", TARGET_RATIO, 3);
    let processes = options.workers * options.slots;
    print_figure(
        &format!("baseline Pool({processes}) wall seconds"),
        format!("{pool:.3} s"),
    );
    print_figure(
        &format!("baseline Pool({processes}) wall / ideal"),
        format!("{:.3}", pool / ideal),
    );
}
