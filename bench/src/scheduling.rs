//! What the scheduling benchmarks of issue 11 (`due`, `w1_queues`, `chain`) share: a Rust
//! client on a runtime of its own (to add tasks with queues, priorities and dependencies in one
//! request each, and to read queue counts without starting a process per poll), workers that
//! serve given queues, and the clock that runs from `task play -a` to the end of `task wait -a`.

use crate::{check, remaining, wait_tasks};
use std::time::{Duration, Instant};
use tatzelwurm_client::{Client, ConnectOptions, QueueInfo, TaskSpec, TaskState};
use tatzelwurm_e2e::{workspace_root, Cluster, Worker, WorkerSpec};
use tokio::runtime::Runtime;

/// A client of one cluster's coordinator with the runtime that drives it; each call blocks the
/// benchmark's thread until its answer.
pub struct BenchClient {
    runtime: Runtime,
    client: Client,
}

impl BenchClient {
    /// Connects to the cluster's coordinator.
    pub fn connect(cluster: &Cluster) -> Result<BenchClient, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("could not start a tokio runtime: {e}"))?;
        let options = ConnectOptions::from_env(Some(cluster.addr()), "bench");
        let client = runtime
            .block_on(Client::connect(options))
            .map_err(|e| format!("could not connect to {}: {e}", cluster.addr()))?;
        Ok(BenchClient { runtime, client })
    }

    /// Adds `specs` (played when `play`) in as few requests as the client needs; their ids.
    pub fn add(&self, specs: Vec<TaskSpec>, play: bool) -> Result<Vec<u64>, String> {
        let ids = self
            .runtime
            .block_on(self.client.add(specs, play))
            .map_err(|e| format!("adding tasks failed: {e}"))?;
        Ok(ids.into_iter().map(|id| id.0).collect())
    }

    /// Every queue as `queue list` shows it.
    pub fn queues(&self) -> Result<Vec<QueueInfo>, String> {
        self.runtime
            .block_on(self.client.queues())
            .map_err(|e| format!("listing the queues failed: {e}"))
    }

    /// How many tasks are in `state`, over all queues.
    pub fn count(&self, state: TaskState) -> Result<u64, String> {
        Ok(self.queues()?.iter().map(|q| q.count(state)).sum())
    }
}

/// `noop(x)` for `x` in `0..tasks`, in the default queue at priority 0.
pub fn noop_specs(tasks: u64) -> Vec<TaskSpec> {
    let noop = tatzelwurm_e2e::example("noop");
    (0..tasks)
        .map(|x| TaskSpec::call(noop.clone(), format!("[{x}]"), "{}"))
        .collect()
}

/// Starts `workers` workers of `slots` slots each, named `w1`, `w2`, ..., working in the
/// workspace root and serving `queues` (the default queue when empty); returns once the
/// coordinator lists each of them.
pub fn start_queue_workers(
    cluster: &Cluster,
    workers: u32,
    slots: u32,
    queues: &[String],
) -> Vec<Worker> {
    (1..=workers)
        .map(|n| {
            let mut spec = WorkerSpec::new(slots)
                .name(&format!("w{n}"))
                .cwd(workspace_root());
            for queue in queues {
                spec = spec.queue(queue);
            }
            cluster.start_worker(spec)
        })
        .collect()
}

/// The clock of `w1_queues` and `chain`: seconds from the start of `task play -a` to the end of
/// `task wait -a`; an error unless every one of `expected` tasks then is `completed`.
pub fn play_all_and_wait(
    cluster: &Cluster,
    expected: u64,
    deadline: Instant,
) -> Result<f64, String> {
    let start = Instant::now();
    let played = cluster.action_within(&["task", "play", "-a"], remaining(deadline));
    check(&played, "playing the tasks")?;
    wait_tasks(cluster, &[], deadline)?;
    let seconds = start.elapsed().as_secs_f64();
    check_all_completed(cluster, expected)?;
    Ok(seconds)
}

/// An error unless `expected` tasks are `completed`.
pub fn check_all_completed(cluster: &Cluster, expected: u64) -> Result<(), String> {
    let completed = crate::count_in_state(cluster, "completed")? as u64;
    if completed == expected {
        Ok(())
    } else {
        Err(format!("{completed} of {expected} tasks completed"))
    }
}

/// Polls `probe` every `interval` until it returns `Some`, an error, or `deadline` passes.
pub fn poll_fast<T>(
    what: &str,
    interval: Duration,
    deadline: Instant,
    mut probe: impl FnMut() -> Result<Option<T>, String>,
) -> Result<T, String> {
    loop {
        if let Some(value) = probe()? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(format!("{what} did not happen before the run's deadline"));
        }
        std::thread::sleep(interval);
    }
}

/// One line of a report: a ratio against the baseline with a lower-bound target.
pub fn print_ratio_at_least(label: &str, ratio: f64, target: f64) {
    let verdict = if ratio >= target { "met" } else { "missed" };
    println!(
        "{label:<34} {:>16}   target >= {target:.2} ({verdict})",
        format!("{ratio:.3}")
    );
}
