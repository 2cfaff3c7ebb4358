//! W3, skew: short tasks must not queue behind long ones. On 2 workers × 2 slots two `sleep(3)`
//! tasks are added and started (the benchmark waits until both are `running`), then 10,000
//! `noop(x)` are added at once (`task add --args-file --play`); the figure is the time from the
//! start of that add until every noop completed (target <= 1.0 s, issue 10; a noop prefetched
//! behind a sleeping slot would wait ~3 s). Beside it, in the same invocation: the same 10,000
//! noops on an idle 2 × 2 cluster of its own.
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo run --release -p tatzelwurm-bench --bin w3 [-- --tasks 10000 --sleep 3]
//! ```
//!
//! Runs the release binaries through the end-to-end harness, as `w1` does. Every wait is bounded
//! by `--timeout`; past it the run ends non-zero, and all processes it started are killed.

use clap::Parser;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tatzelwurm_bench::{add_from_file, conclude, count_in_state, counting_lines, print_figure};
use tatzelwurm_bench::{print_target, release_cluster, require_release_binaries};
use tatzelwurm_bench::{start_workers, wait_tasks};
use tatzelwurm_e2e::wait::poll_every;
use tatzelwurm_e2e::{example, Cluster};

/// The issue's target for the noops' time under skew, in seconds.
const TARGET_SECONDS: f64 = 1.0;
/// How long the sleep tasks may take to be handed out and reported `running`.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Command-line options of `w3`.
#[derive(Debug, Parser)]
#[command(about = "W3: noops added while two sleep(3) tasks hold 2 of 4 slots, beside idle")]
struct Options {
    /// How many `noop(x)` tasks to add.
    #[arg(long, default_value_t = 10_000)]
    tasks: u64,
    /// How long each of the two long tasks sleeps, in seconds.
    #[arg(long, default_value_t = 3.0)]
    sleep: f64,
    /// How many workers to start.
    #[arg(long, default_value_t = 2)]
    workers: u32,
    /// How many slots each worker has.
    #[arg(long, default_value_t = 2)]
    slots: u32,
    /// Seconds the whole run may take before it gives up and exits non-zero.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

/// What one cluster measured: the noops' add, and their add plus completion.
struct Timing {
    add: f64,
    done: f64,
}

/// The skewed run's extra facts: which workers held the sleeps, and whether they still ran
/// when the last noop completed.
struct Skew {
    timing: Timing,
    sleepers: Vec<String>,
    sleeps_running_after: usize,
}

fn main() -> ExitCode {
    let options = Options::parse();
    if let Err(message) = require_release_binaries("w3") {
        eprintln!("{message}");
        return ExitCode::from(2);
    }
    let deadline = Instant::now() + Duration::from_secs(options.timeout);
    let measured = skewed(&options, deadline).and_then(|skew| {
        let idle = idle(&options, deadline)?;
        Ok((skew, idle))
    });
    conclude("w3", measured, |(skew, idle)| {
        report(&options, &skew, &idle)
    })
}

/// Two sleeps started, then the noops: the skew the target is about.
fn skewed(options: &Options, deadline: Instant) -> Result<Skew, String> {
    let cluster = release_cluster();
    let _workers = start_workers(&cluster, options.workers, options.slots);
    let sleeps = vec![format!("[{}]", options.sleep); 2];
    let file = cluster.write_args_file(&sleeps);
    let sleep_ids = add_from_file(&cluster, &example("sleep"), &file, 2, true, deadline)?;
    let started = poll_every(Duration::from_millis(20), START_TIMEOUT, || {
        let running = count_in_state(&cluster, "running");
        match running {
            Ok(2) => Some(Ok(())),
            Ok(_) => None,
            Err(message) => Some(Err(message)),
        }
    });
    started.ok_or_else(|| {
        format!("the two sleep tasks were not both running within {START_TIMEOUT:?}")
    })??;
    let sleepers = sleep_ids
        .iter()
        .map(|&id| {
            cluster.show(id)["worker"]
                .as_str()
                .unwrap_or("?")
                .to_string()
        })
        .collect();
    let timing = noops(&cluster, options, deadline)?;
    let sleeps_running_after = count_in_state(&cluster, "running")?;
    Ok(Skew {
        timing,
        sleepers,
        sleeps_running_after,
    })
}

/// The same noops on an idle cluster of their own.
fn idle(options: &Options, deadline: Instant) -> Result<Timing, String> {
    let cluster = release_cluster();
    let _workers = start_workers(&cluster, options.workers, options.slots);
    noops(&cluster, options, deadline)
}

/// Adds the noops in one `--args-file --play` and waits for exactly them (`task wait ID...`,
/// so that the sleeps do not count): seconds from the start of the add.
fn noops(cluster: &Cluster, options: &Options, deadline: Instant) -> Result<Timing, String> {
    let file = cluster.write_args_file(&counting_lines(options.tasks));
    let start = Instant::now();
    let ids = add_from_file(
        cluster,
        &example("noop"),
        &file,
        options.tasks,
        true,
        deadline,
    )?;
    let add = start.elapsed().as_secs_f64();
    wait_tasks(cluster, &ids, deadline)?;
    Ok(Timing {
        add,
        done: start.elapsed().as_secs_f64(),
    })
}

fn report(options: &Options, skew: &Skew, idle: &Timing) {
    println!(
        "W3: {} noop tasks added while 2 x sleep({}) hold 2 of the {} slots ({} workers x {}), \
         release binaries",
        options.tasks,
        options.sleep,
        options.workers * options.slots,
        options.workers,
        options.slots
    );
    print_figure(
        "sleeps held by",
        format!("{} and {}", skew.sleepers[0], skew.sleepers[1]),
    );
    print_figure("skewed: add seconds", format!("{:.3} s", skew.timing.add));
    print_target(
        "skewed: add to all noops done",
        skew.timing.done,
        "s",
        TARGET_SECONDS,
        3,
    );
    print_figure(
        "skewed: sleeps still running then",
        skew.sleeps_running_after,
    );
    print_figure("baseline idle: add seconds", format!("{:.3} s", idle.add));
    print_figure(
        "baseline idle: add to all done",
        format!("{:.3} s", idle.done),
    );
    print_figure(
        "skewed / idle",
        format!("{:.2}", skew.timing.done / idle.done),
    );
}
