//! Telemetry: the counters and histograms the coordinator keeps about itself, for `/metrics`.
//!
//! The task actor calls these functions once per round with sums (tasks added, finished,
//! events written, the store flush time) and once per handed-out task for the dispatch
//! latency; `http::metrics` renders them in the Prometheus text format with the gauges it
//! reads at scrape time. They are recorded with the `metrics` crate into the recorder of
//! `metrics-exporter-prometheus`, installed once per process on first use ([`handle`]); a
//! second coordinator in the same process (tests) shares it, so its counters add up.
//!
//! Cost: each metric's handle is looked up once and kept in a `LazyLock`, so a call is an
//! atomic add (counters) or a lock-free push into a buffer (histograms; a block of 64 samples
//! is allocated every 64 pushes): no lock and no map lookup on the hot path. A thread folds the
//! buffered samples into the buckets every two seconds, so memory stays bounded whether or not
//! anyone scrapes.

use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::{LazyLock, OnceLock};
use std::time::Duration;
use tatzelwurm_proto::task::TaskState;

/// Tasks added (`Command::Add`, schedules firing, the HTTP API), counted when durable.
pub const TASKS_ADDED: &str = "tatzelwurm_tasks_added_total";
/// Tasks that reached a finished state, labelled `state` (completed, failed, killed).
pub const TASKS_FINISHED: &str = "tatzelwurm_tasks_finished_total";
/// Seconds from when a task became ready to run until it was handed to a worker.
pub const DISPATCH_LATENCY: &str = "tatzelwurm_dispatch_latency_seconds";
/// Seconds one round's batch took to become durable in the store.
pub const STORE_FLUSH: &str = "tatzelwurm_store_flush_seconds";
/// Events written to the event log; `rate()` of it is events per second.
pub const EVENTS_WRITTEN: &str = "tatzelwurm_events_written_total";

/// Histogram buckets for the dispatch latency, in seconds: 1 ms to a minute (a task that waits
/// for a free slot waits as long as the tasks before it run).
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Histogram buckets for a store flush, in seconds: 100 µs (fjall, small batch) to 2.5 s.
const FLUSH_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The process's Prometheus recorder, installed on first use; `render()` gives the text of
/// every metric recorded so far. If another global recorder was installed first (an embedding
/// program's), ours stays uninstalled and `/metrics` shows only the gauges read at scrape.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = with_buckets(PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(handle) => {
                    describe();
                    start_upkeep(handle.clone());
                    handle
                }
                Err(err) => {
                    tracing::warn!(
                        "could not install the metrics recorder ({err}); /metrics shows only the gauges read at each scrape"
                    );
                    with_buckets(PrometheusBuilder::new())
                        .build_recorder()
                        .handle()
                }
            }
        })
        .clone()
}

/// How often histogram samples are folded into their buckets. Until then each sample waits in
/// a lock-free buffer; at W1's rate (~45k tasks/s) two seconds hold ~700 KB.
const UPKEEP_EVERY: Duration = Duration::from_secs(2);

/// Folds the histograms' buffered samples into their buckets every `UPKEEP_EVERY`, on a thread
/// of its own for the life of the process: without it (no `--http`, or nobody scraping) the
/// buffers would grow with every task.
fn start_upkeep(handle: PrometheusHandle) {
    let started = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_EVERY);
            handle.run_upkeep();
        });
    if let Err(err) = started {
        tracing::warn!(
            "could not start the metrics upkeep thread ({err}); histograms are folded only when /metrics is scraped"
        );
    }
}

/// `builder` with our histogram buckets, so histograms render as Prometheus histograms (not
/// summaries) that a server can aggregate across coordinators.
fn with_buckets(builder: PrometheusBuilder) -> PrometheusBuilder {
    builder
        .set_buckets_for_metric(Matcher::Full(DISPATCH_LATENCY.into()), LATENCY_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(STORE_FLUSH.into()), FLUSH_BUCKETS))
        .expect("the bucket lists are constant and not empty")
}

/// The `# HELP` lines of the recorded metrics.
fn describe() {
    metrics::describe_counter!(TASKS_ADDED, "Tasks added, counted when durable.");
    metrics::describe_counter!(
        TASKS_FINISHED,
        "Tasks that reached a finished state, by state."
    );
    metrics::describe_histogram!(
        DISPATCH_LATENCY,
        metrics::Unit::Seconds,
        "Time from a task becoming ready until it is handed to a worker."
    );
    metrics::describe_histogram!(
        STORE_FLUSH,
        metrics::Unit::Seconds,
        "Time one round's batch took to become durable in the store."
    );
    metrics::describe_counter!(EVENTS_WRITTEN, "Events written to the event log.");
}

/// A handle of the installed recorder: `handle()` runs first so the handle is a real one.
fn counter(make: impl FnOnce() -> Counter) -> Counter {
    handle();
    make()
}

static ADDED: LazyLock<Counter> = LazyLock::new(|| counter(|| metrics::counter!(TASKS_ADDED)));
/// The states a task finishes in, in the order of `FINISHED`.
const FINISHED_STATES: [TaskState; 3] =
    [TaskState::Completed, TaskState::Failed, TaskState::Killed];
static FINISHED: LazyLock<[Counter; 3]> = LazyLock::new(|| {
    FINISHED_STATES
        .map(|state| counter(|| metrics::counter!(TASKS_FINISHED, "state" => state.as_str())))
});
static EVENTS: LazyLock<Counter> = LazyLock::new(|| counter(|| metrics::counter!(EVENTS_WRITTEN)));
static LATENCY: LazyLock<Histogram> = LazyLock::new(|| {
    handle();
    metrics::histogram!(DISPATCH_LATENCY)
});
static FLUSH: LazyLock<Histogram> = LazyLock::new(|| {
    handle();
    metrics::histogram!(STORE_FLUSH)
});

/// `n` tasks were added in one round (call after the round's flush, once per round).
pub fn tasks_added(n: u64) {
    if n > 0 {
        ADDED.increment(n);
    }
}

/// `n` tasks reached `state` (completed, failed or killed) in one round; other states are
/// not finishing and are not counted.
pub fn tasks_finished(state: TaskState, n: u64) {
    if n > 0 {
        if let Some(index) = FINISHED_STATES.iter().position(|s| *s == state) {
            FINISHED[index].increment(n);
        }
    }
}

/// Creates every recorded metric now, so that a scrape shows each one (at zero) from the
/// start rather than only after its first change: Prometheus's `rate()` needs the zero.
pub fn register() {
    LazyLock::force(&ADDED);
    LazyLock::force(&FINISHED);
    LazyLock::force(&EVENTS);
    LazyLock::force(&LATENCY);
    LazyLock::force(&FLUSH);
}

/// One task was handed to a worker `ms` milliseconds after it became ready to run (the latest
/// of its creation, its start time and its retry time).
pub fn dispatch_latency_ms(ms: u64) {
    LATENCY.record(ms as f64 / 1000.0);
}

/// One round's batch took `elapsed` to become durable.
pub fn store_flush(elapsed: Duration) {
    FLUSH.record(elapsed.as_secs_f64());
}

/// `n` events were written to the event log in one round.
pub fn events_written(n: u64) {
    if n > 0 {
        EVENTS.increment(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the functions record shows in the rendered text under the documented names, and
    /// histograms render with buckets.
    #[test]
    fn recorded_values_render() {
        tasks_added(3);
        tasks_finished(TaskState::Completed, 2);
        tasks_finished(TaskState::Failed, 1);
        dispatch_latency_ms(4);
        store_flush(Duration::from_micros(700));
        events_written(5);
        let text = handle().render();
        assert!(text.contains("tatzelwurm_tasks_added_total"), "{text}");
        assert!(
            text.contains("tatzelwurm_tasks_finished_total{state=\"completed\"}"),
            "{text}"
        );
        assert!(
            text.contains("tatzelwurm_dispatch_latency_seconds_bucket{le=\"0.005\"}"),
            "{text}"
        );
        assert!(
            text.contains("tatzelwurm_store_flush_seconds_bucket{le=\"0.001\"}"),
            "{text}"
        );
        assert!(text.contains("tatzelwurm_events_written_total"), "{text}");
    }
}
