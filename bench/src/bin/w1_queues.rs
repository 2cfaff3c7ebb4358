//! W1 over queues: W1's 10,000 `noop(x)` on 2 workers × 1 slot, spread over 100 queues × 10
//! priorities (task i in queue `q{i mod 100}` at priority `(i / 100) mod 10`), the workers
//! serving all 100 queues, against single-queue W1 in the same invocation (target: within 20%,
//! that is a rate at least 0.8 of it; issue 11). Each run is a fresh cluster; the tasks are
//! added with one request of the Rust client with play, and the clock runs from the start of
//! that add to the end of `task wait -a`, the same way for both. The two kinds of run alternate
//! `--rounds` times (this machine is shared and noisy) and the medians are compared.
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo run --release -p tatzelwurm-bench --bin w1_queues [-- --tasks 10000 --queues 100 --priorities 10]
//! ```
//!
//! Runs the release binaries through the end-to-end harness, as `w1` does. Every wait is bounded
//! by `--timeout`; past it the run ends non-zero, and all processes it started are killed.

use clap::Parser;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tatzelwurm_bench::scheduling::{check_all_completed, noop_specs, print_ratio_at_least};
use tatzelwurm_bench::scheduling::{start_queue_workers, BenchClient};
use tatzelwurm_bench::{
    conclude, print_figure, release_cluster, require_release_binaries, wait_tasks,
};

/// The issue's target: the spread run's rate at least this share of single-queue W1's.
const TARGET_RATIO: f64 = 0.8;

/// Command-line options of `w1_queues`.
#[derive(Debug, Parser)]
#[command(about = "W1 spread over 100 queues x 10 priorities, beside single-queue W1")]
struct Options {
    /// How many `noop(x)` tasks each run adds.
    #[arg(long, default_value_t = 10_000)]
    tasks: u64,
    /// Over how many queues the spread run's tasks go (every worker serves them all).
    #[arg(long, default_value_t = 100)]
    queues: u64,
    /// Over how many priorities (0, 1, ...) the spread run's tasks go.
    #[arg(long, default_value_t = 10)]
    priorities: u64,
    /// How many workers to start.
    #[arg(long, default_value_t = 2)]
    workers: u32,
    /// How many slots each worker has.
    #[arg(long, default_value_t = 1)]
    slots: u32,
    /// How many times each kind of run is made (alternating); the medians are compared.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Seconds the whole run may take before it gives up and exits non-zero.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

fn main() -> ExitCode {
    let options = Options::parse();
    if let Err(message) = require_release_binaries("w1_queues") {
        eprintln!("{message}");
        return ExitCode::from(2);
    }
    if options.queues == 0 || options.priorities == 0 || options.priorities > 100 {
        eprintln!("w1_queues: give at least one queue and 1 to 100 priorities");
        return ExitCode::from(2);
    }
    if options.rounds == 0 {
        eprintln!("w1_queues: give at least one round");
        return ExitCode::from(2);
    }
    let deadline = Instant::now() + Duration::from_secs(options.timeout);
    conclude(
        "w1_queues",
        rounds(&options, deadline),
        |(single, spread)| report(&options, &single, &spread),
    )
}

/// `--rounds` of each kind of run, alternating (single first in odd rounds, spread first in
/// even ones, so neither always runs on a machine warmed by the other): their seconds.
fn rounds(options: &Options, deadline: Instant) -> Result<(Vec<f64>, Vec<f64>), String> {
    let (mut single, mut spread) = (Vec::new(), Vec::new());
    for round in 0..options.rounds {
        for spread_run in [round % 2 == 1, round % 2 == 0] {
            let seconds = run(options, spread_run, deadline)?;
            if spread_run {
                spread.push(seconds);
            } else {
                single.push(seconds);
            }
        }
    }
    Ok((single, spread))
}

/// The median of some figures (the mean of the middle two for an even count).
fn median(figures: &[f64]) -> f64 {
    let mut sorted = figures.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 0 {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

/// One run on a fresh cluster, single-queue or spread: seconds from the add to the end of the
/// wait.
fn run(options: &Options, spread: bool, deadline: Instant) -> Result<f64, String> {
    let cluster = release_cluster();
    let queues: Vec<String> = if spread {
        (0..options.queues).map(|q| format!("q{q}")).collect()
    } else {
        Vec::new()
    };
    let _workers = start_queue_workers(&cluster, options.workers, options.slots, &queues);
    let client = BenchClient::connect(&cluster)?;
    let mut specs = noop_specs(options.tasks);
    if spread {
        for (i, spec) in specs.iter_mut().enumerate() {
            let i = i as u64;
            spec.queue = queues[(i % options.queues) as usize].clone();
            spec.priority = ((i / options.queues) % options.priorities) as i8;
        }
    }
    let start = Instant::now();
    client.add(specs, true)?;
    wait_tasks(&cluster, &[], deadline)?;
    let seconds = start.elapsed().as_secs_f64();
    check_all_completed(&cluster, options.tasks)?;
    Ok(seconds)
}

fn report(options: &Options, single: &[f64], spread: &[f64]) {
    let n = options.tasks as f64;
    println!(
        "W1 over queues: {} noop tasks, {} workers x {} slot(s), release binaries; add (Rust \
         client, played) to the end of `task wait -a`; median of {} round(s)",
        options.tasks, options.workers, options.slots, options.rounds
    );
    let rates = |runs: &[f64]| {
        let each: Vec<String> = runs.iter().map(|s| format!("{:.0}", n / s)).collect();
        each.join(" ")
    };
    let (single_median, spread_median) = (median(single), median(spread));
    print_figure(
        "baseline: one queue",
        format!("{:.0} tasks/s", n / single_median),
    );
    print_figure("  each round", rates(single));
    print_figure(
        &format!(
            "{} queues x {} priorities",
            options.queues, options.priorities
        ),
        format!("{:.0} tasks/s", n / spread_median),
    );
    print_figure("  each round", rates(spread));
    print_ratio_at_least(
        "spread rate / one queue's",
        single_median / spread_median,
        TARGET_RATIO,
    );
}
