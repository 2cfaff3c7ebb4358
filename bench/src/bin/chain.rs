//! Chain: 10,000 `noop(x)` tasks, each `--after` the one before, on 2 workers × 1 slot, against
//! W1's 10,000 independent noops on the same slots in the same invocation (target: the chain's
//! rate at least 50% of W1's; issue 11). In both runs, each on a fresh cluster, the tasks are
//! added `created` first (the chain one request of the Rust client per task, as each needs the
//! id before it; W1's in one request), and the clock runs from the start of `task play -a` to
//! the end of `task wait -a`. The chain's tasks must then have run in chain order.
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo run --release -p tatzelwurm-bench --bin chain [-- --tasks 10000]
//! ```
//!
//! Runs the release binaries through the end-to-end harness, as `w1` does. Every wait is bounded
//! by `--timeout`; past it the run ends non-zero, and all processes it started are killed.

use clap::Parser;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tatzelwurm_bench::scheduling::{noop_specs, play_all_and_wait, print_ratio_at_least};
use tatzelwurm_bench::scheduling::{start_queue_workers, BenchClient};
use tatzelwurm_bench::{conclude, print_figure, release_cluster, require_release_binaries};
use tatzelwurm_client::TaskId;
use tatzelwurm_e2e::Cluster;

/// The issue's target: the chain's rate at least this share of W1's.
const TARGET_RATIO: f64 = 0.5;

/// Command-line options of `chain`.
#[derive(Debug, Parser)]
#[command(about = "A chain of 10,000 dependent noops, beside W1's 10,000 independent ones")]
struct Options {
    /// How many `noop(x)` tasks each run adds.
    #[arg(long, default_value_t = 10_000)]
    tasks: u64,
    /// How many workers to start.
    #[arg(long, default_value_t = 2)]
    workers: u32,
    /// How many slots each worker has.
    #[arg(long, default_value_t = 1)]
    slots: u32,
    /// Seconds the whole run may take before it gives up and exits non-zero.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
}

/// What the chain's run measured.
struct Chain {
    /// Seconds the adds took, one request per task.
    add: f64,
    /// Seconds from the play to the end of the wait.
    run: f64,
}

fn main() -> ExitCode {
    let options = Options::parse();
    if let Err(message) = require_release_binaries("chain") {
        eprintln!("{message}");
        return ExitCode::from(2);
    }
    let deadline = Instant::now() + Duration::from_secs(options.timeout);
    let measured = w1(&options, deadline).and_then(|w1| Ok((w1, chain(&options, deadline)?)));
    conclude("chain", measured, |(w1, chain)| {
        report(&options, w1, &chain)
    })
}

/// The baseline: W1's independent noops, added `created` in one request, then played.
fn w1(options: &Options, deadline: Instant) -> Result<f64, String> {
    let cluster = release_cluster();
    let _workers = start_queue_workers(&cluster, options.workers, options.slots, &[]);
    let client = BenchClient::connect(&cluster)?;
    client.add(noop_specs(options.tasks), false)?;
    play_all_and_wait(&cluster, options.tasks, deadline)
}

/// The chain: each task added `created` after the one before, then all played.
fn chain(options: &Options, deadline: Instant) -> Result<Chain, String> {
    let cluster = release_cluster();
    let _workers = start_queue_workers(&cluster, options.workers, options.slots, &[]);
    let client = BenchClient::connect(&cluster)?;
    let start = Instant::now();
    let mut previous: Option<u64> = None;
    let mut ids = Vec::with_capacity(options.tasks as usize);
    for mut spec in noop_specs(options.tasks) {
        spec.after = previous.map(TaskId).into_iter().collect();
        let id = client.add(vec![spec], false)?[0];
        ids.push(id);
        previous = Some(id);
        if Instant::now() >= deadline {
            return Err("the chain's adds did not end before the run's deadline".into());
        }
    }
    let add = start.elapsed().as_secs_f64();
    let run = play_all_and_wait(&cluster, options.tasks, deadline)?;
    check_chain_order(&cluster, &ids)?;
    Ok(Chain { add, run })
}

/// An error unless each task of the chain started no earlier than the one before it finished.
fn check_chain_order(cluster: &Cluster, ids: &[u64]) -> Result<(), String> {
    let tasks = cluster.list(&["completed"]);
    let mut times = std::collections::HashMap::new();
    for task in &tasks {
        let id = task["id"].as_u64().unwrap_or(0);
        let started = task["started_at"].as_f64().unwrap_or(f64::NAN);
        let finished = task["finished_at"].as_f64().unwrap_or(f64::NAN);
        times.insert(id, (started, finished));
    }
    for pair in ids.windows(2) {
        let (_, before_finished) = times[&pair[0]];
        let (started, _) = times[&pair[1]];
        // Both are the coordinator's millisecond times.
        if started.is_nan() || before_finished.is_nan() || started < before_finished {
            return Err(format!(
                "task {} started at {started} before task {} (which it runs after) finished \
                 at {before_finished}",
                pair[1], pair[0]
            ));
        }
    }
    Ok(())
}

fn report(options: &Options, w1: f64, chain: &Chain) {
    let n = options.tasks as f64;
    println!(
        "Chain: {} noop tasks, {} workers x {} slot(s), release binaries; play -a to the end of \
         `task wait -a`",
        options.tasks, options.workers, options.slots
    );
    print_figure(
        "baseline: W1 (independent)",
        format!("{:.0} tasks/s", n / w1),
    );
    print_figure(
        "chain: adds, one request each",
        format!("{:.0} tasks/s", n / chain.add),
    );
    print_figure("chain: run", format!("{:.0} tasks/s", n / chain.run));
    print_ratio_at_least("chain rate / W1's", w1 / chain.run, TARGET_RATIO);
}
