//! `/metrics`: the Prometheus text format, all of it written by `metrics-exporter-prometheus`.
//!
//! Two parts: what the coordinator recorded as it ran (`telemetry`: tasks added and finished,
//! events written, dispatch latency and store flush histograms), and gauges read at each scrape
//! from the task actor (tasks by queue and state, workers, slots, busy slots, each worker's
//! RSS and CPU) and the store's disk use. The gauges go into a fresh recorder per scrape, so a
//! queue or worker that is gone is gone from the next scrape too, instead of lingering at its
//! last value.

use super::api_error::ApiError;
use super::ask;
use crate::{telemetry, Context};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::PrometheusBuilder;
use tatzelwurm_proto::actioner::{Command, Reply, WorkerInfo};
use tatzelwurm_proto::queue::QueueInfo;
use tatzelwurm_proto::task::TaskState;

/// The content type of the Prometheus text format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`.
pub async fn scrape(State(ctx): State<Context>) -> Result<impl IntoResponse, ApiError> {
    let recorded = telemetry::handle();
    let queues = match ask(&ctx, Command::Queues).await? {
        Reply::Queues(queues) => queues,
        _ => Vec::new(),
    };
    let workers = ctx.tasks.list_workers().await;
    // A walk of the database directory: off the runtime, as any blocking read.
    let reader = ctx.reader.clone();
    let disk = tokio::task::spawn_blocking(move || reader.disk_bytes())
        .await
        .ok();
    recorded.run_upkeep();
    let mut text = recorded.render();
    text.push_str(&gauges(&queues, &workers, disk));
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text))
}

/// The gauges of this moment, rendered by a recorder of their own; `disk` is the store's size
/// (`None` if it could not be measured).
fn gauges(queues: &[QueueInfo], workers: &[WorkerInfo], disk: Option<u64>) -> String {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        metrics::describe_gauge!(
            "tatzelwurm_tasks",
            "Tasks in the coordinator now, by queue and state (finished ones until purged)."
        );
        metrics::describe_gauge!(
            "tatzelwurm_queue_paused",
            "1 while dispatch from the queue is paused."
        );
        metrics::describe_gauge!("tatzelwurm_workers", "Connected workers.");
        metrics::describe_gauge!(
            "tatzelwurm_workers_draining",
            "Connected workers that are draining."
        );
        metrics::describe_gauge!("tatzelwurm_slots", "Slots of all connected workers.");
        metrics::describe_gauge!(
            "tatzelwurm_slots_busy",
            "Slots running a task now (prefetched tasks not counted)."
        );
        metrics::describe_gauge!(
            "tatzelwurm_worker_rss_bytes",
            metrics::Unit::Bytes,
            "Resident memory of a worker's slots, as it last reported."
        );
        metrics::describe_gauge!(
            "tatzelwurm_worker_cpu_cores",
            "CPU of a worker's slots, in cores, as it last reported."
        );
        metrics::describe_gauge!(
            "tatzelwurm_store_disk_bytes",
            metrics::Unit::Bytes,
            "Disk the store's database directory takes (blocks allocated, as du counts)."
        );
        if let Some(disk) = disk {
            metrics::gauge!("tatzelwurm_store_disk_bytes").set(disk as f64);
        }
        for queue in queues {
            for state in TaskState::ALL {
                metrics::gauge!("tatzelwurm_tasks", "queue" => queue.name.clone(), "state" => state.as_str())
                    .set(queue.count(state) as f64);
            }
            metrics::gauge!("tatzelwurm_queue_paused", "queue" => queue.name.clone())
                .set(if queue.paused { 1.0 } else { 0.0 });
        }
        let slots: u64 = workers.iter().map(|w| u64::from(w.slots)).sum();
        let busy: u64 = workers
            .iter()
            .map(|w| u64::from(w.running.saturating_sub(w.queued).min(w.slots)))
            .sum();
        metrics::gauge!("tatzelwurm_workers").set(workers.len() as f64);
        metrics::gauge!("tatzelwurm_workers_draining")
            .set(workers.iter().filter(|w| w.draining).count() as f64);
        metrics::gauge!("tatzelwurm_slots").set(slots as f64);
        metrics::gauge!("tatzelwurm_slots_busy").set(busy as f64);
        for worker in workers {
            let Some(usage) = &worker.usage else { continue };
            let labels = [
                ("worker", worker.name.clone()),
                ("id", worker.id.0.to_string()),
            ];
            let rss: u64 = usage.slots.iter().map(|s| s.rss).sum();
            let cpu: f64 = usage
                .slots
                .iter()
                .map(|s| f64::from(s.cpu_permille))
                .sum::<f64>()
                / 1000.0;
            metrics::gauge!("tatzelwurm_worker_rss_bytes", &labels).set(rss as f64);
            metrics::gauge!("tatzelwurm_worker_cpu_cores", &labels).set(cpu);
        }
    });
    handle.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tatzelwurm_proto::task::Timestamp;
    use tatzelwurm_proto::worker::{SlotUsage, WorkerUsage};
    use tatzelwurm_proto::WorkerId;

    fn worker(name: &str, slots: u32, running: u32, queued: u32, rss: &[u64]) -> WorkerInfo {
        WorkerInfo {
            id: WorkerId(1),
            name: name.into(),
            address: "127.0.0.1:1".into(),
            slots,
            running,
            queued,
            done: 0,
            python: "3.11".into(),
            connected_at: Timestamp(0),
            queues: vec!["default".into()],
            async_concurrency: 1,
            draining: false,
            held_off_until: None,
            usage: Some(WorkerUsage {
                at: Timestamp(0),
                slots: rss
                    .iter()
                    .map(|&rss| SlotUsage {
                        pid: 1,
                        rss,
                        cpu_permille: 500,
                        running: 1,
                    })
                    .collect(),
                max_memory: None,
                memory_replaced: 0,
                memory_killed: 0,
            }),
        }
    }

    /// Queue counts, slots, busy slots (prefetched not counted) and a worker's summed RSS
    /// show as gauges with their labels.
    #[test]
    fn gauges_of_a_moment() {
        let queue = QueueInfo {
            name: "gpu".into(),
            paused: true,
            limit: 0,
            counts: TaskState::ALL
                .iter()
                .map(|s| (*s, u64::from(*s == TaskState::Ready) * 7))
                .collect(),
            workers: vec![],
        };
        let text = gauges(&[queue], &[worker("w1", 4, 5, 2, &[100, 200])], Some(4096));
        assert!(
            text.contains("tatzelwurm_tasks{queue=\"gpu\",state=\"ready\"} 7"),
            "{text}"
        );
        assert!(
            text.contains("tatzelwurm_tasks{queue=\"gpu\",state=\"failed\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("tatzelwurm_queue_paused{queue=\"gpu\"} 1"),
            "{text}"
        );
        assert!(text.contains("tatzelwurm_slots 4"), "{text}");
        assert!(text.contains("tatzelwurm_store_disk_bytes 4096"), "{text}");
        assert!(text.contains("tatzelwurm_slots_busy 3"), "{text}");
        assert!(
            text.contains("tatzelwurm_worker_rss_bytes{worker=\"w1\",id=\"1\"} 300"),
            "{text}"
        );
        assert!(
            text.contains("tatzelwurm_worker_cpu_cores{worker=\"w1\",id=\"1\"} 1"),
            "{text}"
        );
    }
}
