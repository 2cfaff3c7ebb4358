//! `/metrics` of `tatzelwurm --http ADDR`, read as Prometheus reads it (the `prometheus-parse`
//! crate): counters, histograms and gauges are there under their documented names, and they
//! move as tasks are added and run.

use crate::http_api::{get, http_cluster};
use crate::{number_lines, TASK_TIMEOUT};
use prometheus_parse::{Sample, Scrape, Value};
use tatzelwurm_e2e::{example, wait_for, ClusterOptions, WorkerSpec};

/// One scrape, parsed; panics unless it answers 200 in the text format.
fn scrape(base: &str) -> Scrape {
    let answer = get(base, "/metrics", None);
    assert_eq!(answer.status, 200, "{}", answer.text);
    Scrape::parse(answer.text.lines().map(|line| Ok(line.to_string()))).unwrap_or_else(|err| {
        panic!(
            "/metrics is not the Prometheus text format: {err}\n{}",
            answer.text
        )
    })
}

/// The samples named `name` whose labels include every pair of `labels`.
fn samples<'a>(scrape: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect()
}

/// The value of the one counter or gauge sample `name{labels}` (0 when absent, as Prometheus
/// treats a counter not yet created).
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    match samples(scrape, name, labels).first().map(|s| &s.value) {
        Some(Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v)) => *v,
        Some(other) => panic!("{name} is not a counter or gauge: {other:?}"),
        None => 0.0,
    }
}

/// How many observations histogram `name` holds (its `_count`, or its `+Inf` bucket).
fn observations(scrape: &Scrape, name: &str) -> f64 {
    samples(scrape, name, &[])
        .iter()
        .map(|s| match &s.value {
            Value::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
            _ => 0.0,
        })
        .sum()
}

/// After 20 tasks (15 complete, 5 fail) run on a worker of two slots: the added and finished
/// counters rose by as many, the gauges count the tasks by queue and state and show the worker,
/// its slots and the store's disk use, the dispatch latency and store flush histograms hold observations, and the
/// event counter moved.
#[test]
fn counters_histograms_and_gauges_move_as_tasks_run() {
    let (cluster, base) = http_cluster(ClusterOptions::default());
    let before = scrape(&base);
    // Every recorded metric is there from the start, at zero, for `rate()`.
    for name in [
        "tatzelwurm_tasks_added_total",
        "tatzelwurm_tasks_finished_total",
        "tatzelwurm_events_written_total",
    ] {
        assert!(!samples(&before, name, &[]).is_empty(), "{name} missing");
    }
    let added_before = value(&before, "tatzelwurm_tasks_added_total", &[]);
    let completed_before = value(
        &before,
        "tatzelwurm_tasks_finished_total",
        &[("state", "completed")],
    );
    let failed_before = value(
        &before,
        "tatzelwurm_tasks_finished_total",
        &[("state", "failed")],
    );
    let events_before = value(&before, "tatzelwurm_events_written_total", &[]);

    let _worker = cluster.start_worker(WorkerSpec::new(2).name("metrics-w"));
    let ok = cluster.add_from_file(&example("square"), &number_lines(0..15), true);
    let bad = cluster.add_from_file(
        &example("fail"),
        &(0..5).map(|i| format!("[\"no {i}\"]")).collect::<Vec<_>>(),
        true,
    );
    for id in ok.iter().chain(&bad) {
        cluster.wait_finished(*id, TASK_TIMEOUT);
    }

    // Counters are recorded after each round's flush: the scrape after the waits sees them.
    let after = wait_for("the counters to count the 20 tasks", TASK_TIMEOUT, || {
        let after = scrape(&base);
        let completed = value(
            &after,
            "tatzelwurm_tasks_finished_total",
            &[("state", "completed")],
        );
        (completed - completed_before >= 15.0).then_some(after)
    });
    // The coordinator is a process of this test's own: the differences are its tasks alone.
    assert_eq!(
        value(&after, "tatzelwurm_tasks_added_total", &[]) - added_before,
        20.0
    );
    assert_eq!(
        value(
            &after,
            "tatzelwurm_tasks_finished_total",
            &[("state", "completed")]
        ) - completed_before,
        15.0
    );
    assert_eq!(
        value(
            &after,
            "tatzelwurm_tasks_finished_total",
            &[("state", "failed")]
        ) - failed_before,
        5.0
    );
    // Each task is written at least twice (handed out, finished), each time with an event.
    let events = value(&after, "tatzelwurm_events_written_total", &[]) - events_before;
    assert!(events >= 40.0, "{events} events for 20 tasks");
    let dispatched = observations(&after, "tatzelwurm_dispatch_latency_seconds");
    assert!(
        dispatched >= 20.0,
        "{dispatched} dispatch latencies for 20 tasks"
    );
    let flushes = observations(&after, "tatzelwurm_store_flush_seconds");
    assert!(flushes >= 1.0, "{flushes} store flushes");

    let default = [("queue", "default")];
    let state = |s: &'static str| [("queue", "default"), ("state", s)];
    assert_eq!(value(&after, "tatzelwurm_tasks", &state("completed")), 15.0);
    assert_eq!(value(&after, "tatzelwurm_tasks", &state("failed")), 5.0);
    assert_eq!(value(&after, "tatzelwurm_tasks", &state("ready")), 0.0);
    assert_eq!(value(&after, "tatzelwurm_queue_paused", &default), 0.0);
    assert_eq!(value(&after, "tatzelwurm_workers", &[]), 1.0);
    assert_eq!(value(&after, "tatzelwurm_slots", &[]), 2.0);
    assert_eq!(value(&after, "tatzelwurm_slots_busy", &[]), 0.0);
    assert!(value(&after, "tatzelwurm_store_disk_bytes", &[]) > 0.0);

    // Held work shows as busy slots; RSS once the worker has reported its usage.
    let sleeper = cluster.add(&example("sleep"), "[30]");
    cluster.wait_state(sleeper, "running", TASK_TIMEOUT);
    let busy = wait_for("a busy slot and the worker's RSS", TASK_TIMEOUT, || {
        let now = scrape(&base);
        let rss = value(
            &now,
            "tatzelwurm_worker_rss_bytes",
            &[("worker", "metrics-w")],
        );
        (value(&now, "tatzelwurm_slots_busy", &[]) == 1.0 && rss > 1e6).then_some(now)
    });
    assert_eq!(value(&busy, "tatzelwurm_tasks", &state("running")), 1.0);
}
