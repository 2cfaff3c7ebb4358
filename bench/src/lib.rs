//! What the benchmarks share: a cluster of the release binaries, bounded commands that return an
//! error instead of a verdict, the `python3` runners (the baselines, and the Python client with
//! the release build's extension), and how a figure is printed beside its target.
//!
//! Layout: this file, and [`scheduling`] (a Rust client, queue-serving workers and the
//! play-to-done clock of the issue 11 benchmarks); each benchmark is a binary of its own under
//! `src/bin/` (`w1` to `w4`, `soak`, `due`, `w1_queues`, `chain`, and `purge`: 10^6 completed tasks purged, disk before and after). A benchmark never fails
//! on a missed target:
//! it prints the figure, the target and whether it was met, and exits non-zero only when the run
//! itself breaks (a command fails, a bounded wait runs out; the harness panics on its own
//! timeouts, which also ends the run non-zero). Every process a benchmark starts is owned by a
//! harness handle and killed when that handle is dropped, on success, error or panic alike.

pub mod scheduling;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};
use tatzelwurm_e2e::actionwurm::run_command;
use tatzelwurm_e2e::wait::poll_every;
use tatzelwurm_e2e::{
    example, examples_dir, workspace_root, Action, Binaries, Cluster, ClusterOptions,
};
use tatzelwurm_e2e::{Profile, Worker, WorkerSpec};

/// The end of every benchmark's `main`: prints what was `measured` with `report` and exits 0,
/// or says why the run broke, after the benchmark's name, and exits 1 (a missed target is
/// printed by `report`; it is not a broken run).
pub fn conclude<M>(bench: &str, measured: Result<M, String>, report: impl FnOnce(M)) -> ExitCode {
    match measured {
        Ok(measured) => {
            report(measured);
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{bench}: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Exits with 2 and the build command when the release binaries are missing.
pub fn require_release_binaries(bench: &str) -> Result<(), String> {
    Binaries::try_locate(Profile::Release)
        .map(|_| ())
        .map_err(|message| format!("{bench}: {message}"))
}

/// A coordinator of the release build on a temp database, logging warnings only (logging stays
/// off the clock).
pub fn release_cluster() -> Cluster {
    Cluster::start_with(ClusterOptions {
        profile: Profile::Release,
        log_level: "warn".to_string(),
        ..ClusterOptions::default()
    })
}

/// Starts `workers` workers of `slots` slots each, named `w1`, `w2`, ..., working in the
/// workspace root; returns once the coordinator lists each of them (bounded by the harness).
pub fn start_workers(cluster: &Cluster, workers: u32, slots: u32) -> Vec<Worker> {
    (1..=workers)
        .map(|n| {
            let spec = WorkerSpec::new(slots)
                .name(&format!("w{n}"))
                .cwd(workspace_root());
            cluster.start_worker(spec)
        })
        .collect()
}

/// Runs rounds of `noop`s (two per slot each) until every worker has run one, so that each
/// slot has imported `examples/tasks.py` and `noop` has been measured before a benchmark's
/// clock starts, as the processes of its `multiprocessing.Pool` baseline were forked after
/// `import tasks` and have run a `noop`; an error if five rounds were not enough. Returns the
/// ids of the tasks it ran.
pub fn warm_up(
    cluster: &Cluster,
    workers: u32,
    slots: u32,
    deadline: Instant,
) -> Result<Vec<u64>, String> {
    let per_round = 2 * u64::from(workers * slots);
    let names: BTreeSet<String> = (1..=workers).map(|n| format!("w{n}")).collect();
    let mut ran_ids = Vec::new();
    for _ in 0..5 {
        let file = cluster.write_args_file(&counting_lines(per_round));
        let ids = add_from_file(cluster, &example("noop"), &file, per_round, true, deadline)?;
        wait_tasks(cluster, &ids, deadline)?;
        ran_ids.extend(ids);
        let listed = cluster.action(&["task", "list", "--limit", "0", "--json"]);
        check(&listed, "listing the warm-up tasks")?;
        let serde_json::Value::Array(tasks) = listed.json() else {
            return Err("`task list --json` printed no array".to_string());
        };
        let ran: BTreeSet<String> = tasks
            .iter()
            .filter_map(|task| task["worker"].as_str().map(str::to_string))
            .collect();
        if names.is_subset(&ran) {
            return Ok(ran_ids);
        }
    }
    Err("after 5 rounds of noops, some worker had run none (warm-up)".to_string())
}

/// One args-file line per task: `[0]`, `[1]`, ... (the arguments of `noop(x)`).
pub fn counting_lines(tasks: u64) -> Vec<String> {
    (0..tasks).map(|i| format!("[{i}]")).collect()
}

/// An error saying what failed, unless `action` exited 0.
pub fn check(action: &Action, what: &str) -> Result<(), String> {
    if action.success() {
        Ok(())
    } else {
        Err(format!("{what} failed: {action}"))
    }
}

/// Time left until `deadline` (at least a second, so a command always gets a chance).
pub fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1))
}

/// `task add FUNC --args-file FILE [--play]`, bounded by `deadline`; the ids it printed, which
/// must be one per line of the file.
pub fn add_from_file(
    cluster: &Cluster,
    function: &str,
    file: &Path,
    lines: u64,
    play: bool,
    deadline: Instant,
) -> Result<Vec<u64>, String> {
    let file = file.to_str().ok_or("the args file's path is not UTF-8")?;
    let mut argv = vec!["task", "add", function, "--args-file", file];
    if play {
        argv.push("--play");
    }
    let added = cluster.action_within(&argv, remaining(deadline));
    check(&added, "adding the tasks")?;
    let ids = added.ids();
    if ids.len() as u64 != lines {
        return Err(format!(
            "`task add` printed {} ids for {lines} lines",
            ids.len()
        ));
    }
    Ok(ids)
}

/// `task wait` for `ids` (all tasks when `ids` is empty) with the time left until `deadline`;
/// an error if it fails (a task did not complete) or runs out of time.
pub fn wait_tasks(cluster: &Cluster, ids: &[u64], deadline: Instant) -> Result<(), String> {
    let left = remaining(deadline);
    let seconds = format!("{:.1}", left.as_secs_f64());
    let id_args: Vec<String> = ids.iter().map(u64::to_string).collect();
    let mut argv = vec!["task", "wait", "--timeout", &seconds];
    if ids.is_empty() {
        argv.push("-a");
    } else {
        argv.extend(id_args.iter().map(String::as_str));
    }
    let waited = cluster.action_within(&argv, left + Duration::from_secs(30));
    check(&waited, "waiting for the tasks to complete")
}

/// How many tasks `task list --state STATE --json` lists.
pub fn count_in_state(cluster: &Cluster, state: &str) -> Result<usize, String> {
    let listed = cluster.action(&["task", "list", "--state", state, "--limit", "0", "--json"]);
    check(&listed, &format!("listing the {state} tasks"))?;
    match listed.json() {
        serde_json::Value::Array(tasks) => Ok(tasks.len()),
        other => Err(format!("`task list --json` printed no array: {other}")),
    }
}

/// Runs `python3 -c SCRIPT` (the `python3` on PATH, the one the workers use) with
/// `examples/` importable, bounded by `timeout`, and returns the last line it printed parsed
/// as a number (the script prints its figure last).
pub fn python_figure(script: &str, timeout: Duration) -> Result<f64, String> {
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(script)
        .env("PYTHONPATH", examples_dir())
        .current_dir(workspace_root());
    let ran = run_command(cmd, timeout);
    check(&ran, "the python3 baseline")?;
    let last = ran.stdout.lines().last().unwrap_or("").trim();
    last.parse()
        .map_err(|_| format!("the python3 baseline printed `{last}`, not a number"))
}

/// The command that builds the Python extension beside the release binaries.
pub const PYTHON_BUILD: &str =
    "PYO3_BUILD_EXTENSION_MODULE=1 cargo build --release -p tatzelwurm-python";

/// Assembles an importable `tatzelwurm` package in `dir`: links to the sources in
/// `python/tatzelwurm/` and, as its `_native` extension, the `lib_native.so` beside the
/// release binaries (not whatever `_native*.so` a `maturin develop` left in the source tree,
/// which may be of another build or protocol). Returns the directory to put on PYTHONPATH.
pub fn python_package(dir: &Path) -> Result<PathBuf, String> {
    let bins = Binaries::try_locate(Profile::Release)?;
    let bin_dir = bins
        .tatzelwurm
        .parent()
        .ok_or("the release binaries have no directory")?;
    let native = bin_dir.join("lib_native.so");
    if !native.exists() {
        return Err(format!(
            "{} is missing; build the Python extension first: {PYTHON_BUILD}",
            native.display()
        ));
    }
    let sources = workspace_root().join("python").join("tatzelwurm");
    let package = dir.join("tatzelwurm");
    std::fs::create_dir_all(&package).map_err(|e| format!("{}: {e}", package.display()))?;
    let entries = std::fs::read_dir(&sources).map_err(|e| format!("{}: {e}", sources.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let text = name.to_string_lossy();
        if text.starts_with("_native") && text.ends_with(".so") || text == "__pycache__" {
            continue;
        }
        std::os::unix::fs::symlink(entry.path(), package.join(&name))
            .map_err(|e| format!("linking {}: {e}", entry.path().display()))?;
    }
    std::os::unix::fs::symlink(&native, package.join("_native.abi3.so"))
        .map_err(|e| format!("linking {}: {e}", native.display()))?;
    Ok(dir.to_path_buf())
}

/// Runs `python3 SCRIPT ARGS... --json` with `pythonpath` (and `examples/`) importable, bounded
/// by `timeout`, and returns the JSON object it printed last.
pub fn python_json(
    script: &Path,
    args: &[&str],
    pythonpath: Option<&Path>,
    timeout: Duration,
) -> Result<serde_json::Value, String> {
    let mut path = vec![examples_dir()];
    path.extend(pythonpath.map(Path::to_path_buf));
    let joined = std::env::join_paths(path).map_err(|e| e.to_string())?;
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .args(args)
        .arg("--json")
        .env("PYTHONPATH", joined)
        .current_dir(workspace_root());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TATZELWURM_") {
            cmd.env_remove(key);
        }
    }
    let ran = run_command(cmd, timeout);
    check(&ran, &format!("`python3 {}`", script.display()))?;
    let last = ran.stdout.lines().last().unwrap_or("").trim();
    serde_json::from_str(last)
        .map_err(|_| format!("`python3 {}` printed `{last}`, not JSON", script.display()))
}

/// Polls `probe` every `interval` until it gives `Some(Ok(_))` or an error, or `timeout` runs
/// out (an error naming `what`).
pub fn poll_until<T>(
    what: &str,
    interval: Duration,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<Result<T, String>>,
) -> Result<T, String> {
    poll_every(interval, timeout, &mut probe)
        .ok_or_else(|| format!("{what} did not happen within {timeout:?}"))?
}

/// Whether a figure met an upper-bound target, as printed after it.
pub fn verdict(measured: f64, target: f64) -> &'static str {
    if measured <= target {
        "met"
    } else {
        "missed"
    }
}

/// One line of a report: the label, the figure with its unit, and the target beside it.
pub fn print_target(label: &str, measured: f64, unit: &str, target: f64, precision: usize) {
    let unit = if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    };
    let figure = format!("{measured:.precision$}{unit}");
    println!(
        "{label:<34} {figure:>16}   target <= {target}{unit} ({})",
        verdict(measured, target)
    );
}

/// One line of a report: a figure with a lower-bound target (a rate) beside it.
pub fn print_at_least(label: &str, measured: f64, unit: &str, target: f64) {
    let figure = format!("{measured:.0} {unit}");
    let verdict = if measured >= target { "met" } else { "missed" };
    println!("{label:<34} {figure:>16}   target >= {target:.0} {unit} ({verdict})");
}

/// One line of a report without a target.
pub fn print_figure(label: &str, figure: impl std::fmt::Display) {
    println!("{label:<34} {figure:>16}");
}

/// Bytes in MB (10^6 bytes), the unit of the memory and disk targets.
pub fn megabytes(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}
