//! Due: 10^5 tasks added with the same `--at` (a whole second a few seconds ahead) with no
//! worker connected, so they wait `scheduled`; the figure is the time from that second until
//! all of them are `ready` (target <= 1 s, issue 11), read from the queue counts of `queue
//! list` polled every few milliseconds. Beside it, in the same invocation, on a cluster of its
//! own: the same tasks added `created` and made ready by one `task play -a`, timed from the
//! start of the play until all are `ready` the same way (what turning 10^5 tasks ready costs
//! when no clock is involved).
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo run --release -p tatzelwurm-bench --bin due [-- --tasks 100000 --lead 5]
//! ```
//!
//! Runs the release binaries through the end-to-end harness, as `w1` does. Every wait is bounded
//! by `--timeout`; past it the run ends non-zero, and all processes it started are killed.

use clap::Parser;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tatzelwurm_bench::scheduling::{poll_fast, BenchClient};
use tatzelwurm_bench::{add_from_file, conclude, counting_lines, print_figure, print_target};
use tatzelwurm_bench::{release_cluster, remaining, require_release_binaries};
use tatzelwurm_client::TaskState;
use tatzelwurm_e2e::control::rfc3339_utc;
use tatzelwurm_e2e::example;

/// The issue's target: all ready within this many seconds of their time.
const TARGET_SECONDS: f64 = 1.0;
/// How often the queue counts are read while the clock runs.
const POLL: Duration = Duration::from_millis(5);

/// Command-line options of `due`.
#[derive(Debug, Parser)]
#[command(about = "Due: 10^5 tasks with the same --at; time from that second until all are ready")]
struct Options {
    /// How many `noop(x)` tasks to add.
    #[arg(long, default_value_t = 100_000)]
    tasks: u64,
    /// At least this many seconds between the start of the add and the tasks' time: the add
    /// must end before it (the run fails and says so otherwise).
    #[arg(long, default_value_t = 5)]
    lead: u64,
    /// Seconds the whole run may take before it gives up and exits non-zero.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

/// What the timed run measured.
struct Due {
    /// Seconds the add took.
    add: f64,
    /// Seconds from the tasks' time until the first poll that saw one `ready`.
    first: f64,
    /// Seconds from the tasks' time until the first poll that saw all `ready`.
    all: f64,
}

fn main() -> ExitCode {
    let options = Options::parse();
    if let Err(message) = require_release_binaries("due") {
        eprintln!("{message}");
        return ExitCode::from(2);
    }
    let deadline = Instant::now() + Duration::from_secs(options.timeout);
    let measured = due(&options, deadline).and_then(|due| Ok((due, played(&options, deadline)?)));
    conclude("due", measured, |(due, played)| {
        report(&options, &due, played)
    })
}

/// Seconds since the epoch now, by the wall clock (the coordinator's clock too: same machine).
fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The timed run: add with `--at`, then poll the ready count from before that second on.
fn due(options: &Options, deadline: Instant) -> Result<Due, String> {
    let cluster = release_cluster();
    let client = BenchClient::connect(&cluster)?;
    let file = cluster.write_args_file(&counting_lines(options.tasks));
    let at = (epoch_now() + options.lead as f64).ceil();
    let at_text = rfc3339_utc(UNIX_EPOCH + Duration::from_secs(at as u64));
    let file_text = file.to_str().ok_or("the args file's path is not UTF-8")?;
    let start = Instant::now();
    let added = cluster.action_within(
        &[
            "task",
            "add",
            &example("noop"),
            "--args-file",
            file_text,
            "--at",
            &at_text,
            "--play",
        ],
        remaining(deadline),
    );
    tatzelwurm_bench::check(&added, "adding the tasks")?;
    let add = start.elapsed().as_secs_f64();
    if epoch_now() >= at {
        return Err(format!(
            "the add of {} tasks took {add:.1} s and ended after their time {at_text}; \
             give a longer --lead",
            options.tasks
        ));
    }
    let scheduled = client.count(TaskState::Scheduled)?;
    if scheduled != options.tasks {
        return Err(format!(
            "{scheduled} of {} tasks are scheduled before their time",
            options.tasks
        ));
    }
    let n = options.tasks;
    let mut first = None;
    let all = poll_fast("all tasks ready", POLL, deadline, || {
        let ready = client.count(TaskState::Ready)?;
        let seen = epoch_now();
        if ready > 0 && first.is_none() {
            first = Some(seen - at);
        }
        Ok((ready == n).then_some(seen - at))
    })?;
    Ok(Due {
        add,
        first: first.unwrap_or(all),
        all,
    })
}

/// The baseline: the same tasks added `created`, then one `task play -a`: seconds from the
/// start of the play until the first poll that saw all `ready`.
fn played(options: &Options, deadline: Instant) -> Result<f64, String> {
    let cluster = release_cluster();
    let client = BenchClient::connect(&cluster)?;
    let file = cluster.write_args_file(&counting_lines(options.tasks));
    add_from_file(
        &cluster,
        &example("noop"),
        &file,
        options.tasks,
        false,
        deadline,
    )?;
    let start = Instant::now();
    let played = cluster.action_within(&["task", "play", "-a"], remaining(deadline));
    tatzelwurm_bench::check(&played, "playing the tasks")?;
    let n = options.tasks;
    poll_fast("all played tasks ready", POLL, deadline, || {
        let ready = client.count(TaskState::Ready)?;
        Ok((ready == n).then(|| start.elapsed().as_secs_f64()))
    })
}

fn report(options: &Options, due: &Due, played: f64) {
    println!(
        "Due: {} noop tasks with one --at, no worker, release binaries; polled every {} ms",
        options.tasks,
        POLL.as_millis()
    );
    print_figure("add with --at", format!("{:.2} s", due.add));
    print_figure(
        "their time to the first ready",
        format!("{:.3} s", due.first),
    );
    print_target("their time to all ready", due.all, "s", TARGET_SECONDS, 3);
    print_figure(
        "baseline: task play -a to all ready",
        format!("{played:.3} s"),
    );
}
