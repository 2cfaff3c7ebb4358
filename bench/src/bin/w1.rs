//! W1, the yardstick of tatzelwurm's speed: 10,000 `noop(x)` tasks on 2 workers × 1 slot, timed
//! from the first add to all completed, and the rate at which `task add --args-file` adds them.
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo run --release -p tatzelwurm-bench --bin w1 [-- --tasks 10000]
//! ```
//!
//! It builds nothing itself: it runs the release binaries through the end-to-end harness (a
//! coordinator on a temp database, workers with the `python3` on PATH), so it measures exactly
//! what a user gets. Every wait is bounded by `--timeout`; past it the run ends non-zero, and all
//! processes it started are killed on the way out.

use clap::Parser;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tatzelwurm_e2e::{example, workspace_root, Binaries, Cluster, ClusterOptions, Profile};
use tatzelwurm_e2e::{Action, WorkerSpec};

/// Command-line options of `w1`.
#[derive(Debug, Parser)]
#[command(about = "W1: noop tasks end to end on 2 workers x 1 slot, with the release binaries")]
struct Options {
    /// How many `noop(x)` tasks to add.
    #[arg(long, default_value_t = 10_000)]
    tasks: u64,
    /// How many workers to start.
    #[arg(long, default_value_t = 2)]
    workers: u32,
    /// How many slots each worker has.
    #[arg(long, default_value_t = 1)]
    slots: u32,
    /// Seconds the whole run may take before it gives up and exits non-zero.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

/// What one run measured.
struct Measurement {
    add: Duration,
    end_to_end: Duration,
    done_per_worker: BTreeMap<String, u64>,
}

fn main() -> ExitCode {
    let options = Options::parse();
    if let Err(message) = Binaries::try_locate(Profile::Release) {
        eprintln!("w1: {message}");
        return ExitCode::from(2);
    }
    match run(&options) {
        Ok(measured) => {
            report(&options, &measured);
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("w1: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Starts the cluster, adds the tasks, waits for them, and checks that all of them completed.
fn run(options: &Options) -> Result<Measurement, String> {
    let deadline = Instant::now() + Duration::from_secs(options.timeout);
    let cluster = Cluster::start_with(ClusterOptions {
        profile: Profile::Release,
        log_level: "warn".to_string(),
        ..ClusterOptions::default()
    });
    let _workers: Vec<_> = (1..=options.workers)
        .map(|n| {
            let spec = WorkerSpec::new(options.slots)
                .name(&format!("w{n}"))
                .cwd(workspace_root());
            cluster.start_worker(spec)
        })
        .collect();
    let lines: Vec<String> = (0..options.tasks).map(|i| format!("[{i}]")).collect();
    let args_file = cluster.write_args_file(&lines);

    let start = Instant::now();
    let noop = example("noop");
    let file = args_file.to_str().expect("temp paths are UTF-8");
    let added = cluster.action_within(
        &["task", "add", &noop, "--args-file", file, "--play"],
        remaining(deadline),
    );
    let add = start.elapsed();
    check(&added, "adding the tasks")?;
    if added.ids().len() as u64 != options.tasks {
        return Err(format!("`task add` printed {} ids", added.ids().len()));
    }
    wait_all(&cluster, deadline)?;
    let end_to_end = start.elapsed();

    let completed = cluster.list(&["completed"]).len() as u64;
    if completed != options.tasks {
        return Err(format!("{completed} of {} tasks completed", options.tasks));
    }
    Ok(Measurement {
        add,
        end_to_end,
        done_per_worker: done_per_worker(&cluster),
    })
}

/// `task wait -a` with the time left; an error if it fails or runs out of time.
fn wait_all(cluster: &Cluster, deadline: Instant) -> Result<(), String> {
    let left = remaining(deadline);
    let seconds = format!("{:.1}", left.as_secs_f64());
    let waited = cluster.action_within(
        &["task", "wait", "-a", "--timeout", &seconds],
        left + Duration::from_secs(30),
    );
    check(&waited, "waiting for the tasks to complete")
}

fn check(action: &Action, what: &str) -> Result<(), String> {
    if action.success() {
        Ok(())
    } else {
        Err(format!("{what} failed: {action}"))
    }
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

/// Time left until `deadline` (at least a second, so a command always gets a chance).
fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1))
}

fn report(options: &Options, m: &Measurement) {
    let n = options.tasks as f64;
    let add = m.add.as_secs_f64();
    let e2e = m.end_to_end.as_secs_f64();
    println!(
        "W1: {} noop tasks, {} workers x {} slot(s), release binaries",
        options.tasks, options.workers, options.slots
    );
    println!("tasks               {}", options.tasks);
    println!("add seconds         {add:.3}");
    println!("add rate            {:.0} tasks/s", n / add);
    println!("end-to-end seconds  {e2e:.3}");
    println!("end-to-end rate     {:.0} tasks/s", n / e2e);
    let spread: Vec<String> = m
        .done_per_worker
        .iter()
        .map(|(name, done)| format!("{name}={done}"))
        .collect();
    println!("done per worker     {}", spread.join(" "));
}
