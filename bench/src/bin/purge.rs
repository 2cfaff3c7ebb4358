//! Purge: 10^6 tasks added and completed through the real programs, then all of them purged
//! with `actionwurm task purge --finished-before 0s`: the store's disk use before, right after,
//! and once the coordinator's own compaction has settled, and the time the purge took. Beside
//! it, in the same run, the baseline the issue asks for: the time the same 10^6 tasks took to
//! add (`task add --args-file --play`, as W4 adds them).
//!
//! ```text
//! cargo build --release --workspace --bins
//! TATZELWURM_BIN_DIR=$PWD/target/release ./target/release/purge                 # 10^6 tasks
//! TATZELWURM_BIN_DIR=$PWD/target/release ./target/release/purge --tasks 100000  # quicker
//! ```
//!
//! Nothing is written behind the coordinator's back: the tasks (`noop(x)`, which prints
//! nothing) are added while no worker is connected, so they are stored `ready`, then run by
//! `--workers` workers of `--slots` slots, followed through `worker list` as W4 does. The
//! workers are stopped before the disk is measured. Disk use is what `du` counts (blocks
//! allocated) under the coordinator's `--db` directory, read from outside while it runs. The
//! coordinator compacts on its own: "before" is taken once the disk has stopped changing after
//! the run (the store compacts `live` as tasks leave it), "settled" once it has stopped
//! changing after the purge (for up to `--settle` seconds), so both include the compactions.
//!
//! Every wait is bounded by `--timeout`; past it the run ends non-zero, and all processes it
//! started are killed.

use clap::Parser;
use std::path::Path;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};
use tatzelwurm::store::dir_disk_bytes;
use tatzelwurm_bench::start_workers;
use tatzelwurm_bench::{add_from_file, check, conclude, count_in_state, counting_lines, megabytes};
use tatzelwurm_bench::{print_figure, release_cluster, remaining, require_release_binaries};
use tatzelwurm_e2e::{example, Binaries, Cluster, Profile};

/// How often the workers' progress and the disk are sampled.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(500);

/// The disk counts as settled when this many samples in a row read the same size.
const STEADY_SAMPLES: u32 = 4;

/// Command-line options of `purge`.
#[derive(Debug, Parser)]
#[command(
    about = "Purge: 10^6 completed tasks purged; disk before and after, and how long it took"
)]
struct Options {
    /// How many `noop(x)` tasks to add, run and purge.
    #[arg(long, default_value_t = 1_000_000)]
    tasks: u64,
    /// How many workers run the tasks.
    #[arg(long, default_value_t = 2)]
    workers: u32,
    /// How many slots each of them has.
    #[arg(long, default_value_t = 4)]
    slots: u32,
    /// Seconds to wait at most for the disk to stop changing, before and after the purge.
    #[arg(long, default_value_t = 120)]
    settle: u64,
    /// Seconds the whole run may take before it gives up and exits non-zero.
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
}

/// A disk size read once it stopped changing, and how long that took.
struct Settled {
    bytes: u64,
    seconds: f64,
    /// False when `--settle` ran out while it still changed.
    steady: bool,
}

/// Everything one invocation measured.
struct Measurement {
    add: f64,
    run: f64,
    before: Settled,
    purge: f64,
    purge_said: String,
    right_after: u64,
    after: Settled,
    /// What takes the disk before and after the purge (both settled), by part of the database
    /// directory.
    parts_before: Vec<(String, u64)>,
    parts_after: Vec<(String, u64)>,
}

fn main() -> ExitCode {
    let options = Options::parse();
    if let Err(message) = require_release_binaries("purge") {
        eprintln!("{message}");
        return ExitCode::from(2);
    }
    let deadline = Instant::now() + Duration::from_secs(options.timeout);
    conclude("purge", run(&options, deadline), |measured| {
        report(&options, &measured)
    })
}

fn run(options: &Options, deadline: Instant) -> Result<Measurement, String> {
    let cluster = release_cluster();
    let noop = example("noop");
    let file = cluster.write_args_file(&counting_lines(options.tasks));
    let start = Instant::now();
    add_from_file(&cluster, &noop, &file, options.tasks, true, deadline)?;
    let add = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let workers = start_workers(&cluster, options.workers, options.slots);
    wait_all_done(&cluster, options.tasks, deadline)?;
    let run = start.elapsed().as_secs_f64();
    drop(workers);
    for state in ["ready", "running", "waiting", "failed", "killed"] {
        let count = count_in_state(&cluster, state)?;
        if count != 0 {
            return Err(format!(
                "{count} task(s) {state} after every attempt was reported"
            ));
        }
    }

    let db = cluster.dir().join("db");
    let settle = Duration::from_secs(options.settle);
    let before = settled(&db, settle, deadline);
    let parts_before = by_part(&db);
    let start = Instant::now();
    let purged = cluster.action_within(
        &["task", "purge", "--finished-before", "0s"],
        remaining(deadline),
    );
    check(&purged, "purging the finished tasks")?;
    let purge = start.elapsed().as_secs_f64();
    let right_after = dir_disk_bytes(&db);
    let after = settled(&db, settle, deadline);
    let parts_after = by_part(&db);
    let left = count_in_state(&cluster, "completed")?;
    if left != 0 {
        return Err(format!(
            "{left} completed task(s) still listed after the purge"
        ));
    }
    Ok(Measurement {
        add,
        run,
        before,
        purge,
        purge_said: purged
            .stdout
            .trim()
            .lines()
            .next()
            .unwrap_or("")
            .to_string(),
        right_after,
        after,
        parts_before,
        parts_after,
    })
}

/// Follows the workers until `tasks` attempts were reported (as W4 does: `worker list`, not a
/// `task wait` whose reply would list every task).
fn wait_all_done(cluster: &Cluster, tasks: u64, deadline: Instant) -> Result<(), String> {
    loop {
        let listed = cluster.action(&["worker", "list", "--json"]);
        check(&listed, "listing the workers")?;
        let done: u64 = match listed.json() {
            serde_json::Value::Array(workers) => {
                workers.iter().filter_map(|w| w["done"].as_u64()).sum()
            }
            other => return Err(format!("`worker list --json` printed no array: {other}")),
        };
        if done >= tasks {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{done} of {tasks} attempts reported within --timeout"
            ));
        }
        thread::sleep(SAMPLE_INTERVAL.min(remaining(deadline)));
    }
}

/// The disk use under `db` by part: each fjall partition (`keyspace/partitions/NAME`), the
/// journals, and the rest (a sled database is all "the rest").
fn by_part(db: &Path) -> Vec<(String, u64)> {
    let mut parts = Vec::new();
    let keyspace = db.join("keyspace");
    if let Ok(entries) = std::fs::read_dir(keyspace.join("partitions")) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            parts.push((name, dir_disk_bytes(&entry.path())));
        }
    }
    parts.sort();
    parts.push((
        "journals".into(),
        dir_disk_bytes(&keyspace.join("journals")),
    ));
    let counted: u64 = parts.iter().map(|(_, bytes)| bytes).sum();
    parts.push((
        "the rest".into(),
        dir_disk_bytes(db).saturating_sub(counted),
    ));
    parts
}

/// The disk use of `db` once `STEADY_SAMPLES` samples in a row agree, or the last sample when
/// `limit` (or the deadline) runs out first.
fn settled(db: &Path, limit: Duration, deadline: Instant) -> Settled {
    let start = Instant::now();
    let mut last = dir_disk_bytes(db);
    let mut same = 0;
    while same < STEADY_SAMPLES && start.elapsed() < limit && Instant::now() < deadline {
        thread::sleep(SAMPLE_INTERVAL);
        let now = dir_disk_bytes(db);
        same = if now == last { same + 1 } else { 0 };
        last = now;
    }
    Settled {
        bytes: last,
        seconds: start.elapsed().as_secs_f64(),
        steady: same >= STEADY_SAMPLES,
    }
}

fn report(options: &Options, m: &Measurement) {
    let n = options.tasks as f64;
    let bins = Binaries::try_locate(Profile::Release)
        .ok()
        .and_then(|bins| {
            bins.tatzelwurm
                .parent()
                .map(|dir| dir.display().to_string())
        })
        .unwrap_or_default();
    println!(
        "Purge: {} noop tasks added (`task add --args-file --play`), run by {} workers x {} slots, \
         then purged with `task purge --finished-before 0s`; binaries of {bins}, fjall store",
        options.tasks, options.workers, options.slots
    );
    print_figure("baseline: add seconds", format!("{:.3} s", m.add));
    print_figure("baseline: add rate", format!("{:.0} tasks/s", n / m.add));
    print_figure("run seconds", format!("{:.3} s", m.run));
    print_figure("purge seconds", format!("{:.3} s", m.purge));
    print_figure("purge rate", format!("{:.0} tasks/s", n / m.purge));
    print_figure("purge / add", format!("{:.2} x", m.purge / m.add));
    println!("  actionwurm said: {}", m.purge_said);
    print_settled("disk (du) before the purge", &m.before);
    print_figure(
        "disk (du) right after the purge",
        format!("{:.1} MB", megabytes(m.right_after)),
    );
    print_settled("disk (du) after, settled", &m.after);
    println!("  by part, before -> after:");
    for (part, after) in &m.parts_after {
        let before = m
            .parts_before
            .iter()
            .find(|(name, _)| name == part)
            .map_or(0, |(_, bytes)| *bytes);
        print_figure(
            &format!("    {part}"),
            format!("{:.1} -> {:.1} MB", megabytes(before), megabytes(*after)),
        );
    }
    print_figure(
        "disk after / before",
        format!("{:.3}", m.after.bytes as f64 / m.before.bytes.max(1) as f64),
    );
    print_figure(
        "disk freed per task",
        format!(
            "{:.0} B",
            m.before.bytes.saturating_sub(m.after.bytes) as f64 / n
        ),
    );
}

/// A settled disk size, with how long it took to settle (or that it did not).
fn print_settled(label: &str, settled: &Settled) {
    let how = if settled.steady {
        format!("steady after {:.1} s", settled.seconds)
    } else {
        format!("still changing after {:.1} s", settled.seconds)
    };
    print_figure(label, format!("{:.1} MB", megabytes(settled.bytes)));
    println!("  ({how})");
}
