//! `actionwurm worker list`: the connected workers as a table, or one JSON array.
//!
//! Exit code 0 when the coordinator answered, 1 on an error.

use super::connect;
use crate::outcome::Outcome;
use crate::output::{to_json_text, WorkerJson};
use crate::table;
use anyhow::Result;

/// Lists the workers connected to the coordinator at `addr`.
pub async fn list(addr: &str, json: bool) -> Result<Outcome> {
    let client = connect(addr, false).await?;
    let workers = client.workers().await?;
    if json {
        let json: Vec<WorkerJson> = workers.iter().map(WorkerJson::new).collect();
        return Ok(Outcome::success(to_json_text(&json)?));
    }
    if workers.is_empty() {
        return Ok(Outcome::success("no workers connected\n".into()));
    }
    Ok(Outcome::success(format!(
        "{}\n",
        table::worker_list(&workers)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tatzelwurm_client::fake_coordinator::{FakeCoordinator, Step};
    use tatzelwurm_proto::actioner::{Reply, WorkerInfo};
    use tatzelwurm_proto::task::Timestamp;
    use tatzelwurm_proto::WorkerId;

    /// `worker list --json` prints one array with one object per worker.
    #[tokio::test]
    async fn json_lists_every_worker() {
        let worker = |id| WorkerInfo {
            usage: None,
            id: WorkerId(id),
            name: format!("box:{id}"),
            address: "127.0.0.1:9".into(),
            slots: 2,
            running: 0,
            queued: 0,
            done: 0,
            python: "3.11.2".into(),
            connected_at: Timestamp(0),
            draining: false,
            held_off_until: None,
            queues: vec!["default".into()],
            async_concurrency: 1,
        };
        let fake = FakeCoordinator::start(move |_| {
            vec![Step::Reply(Reply::Workers(vec![worker(1), worker(2)]))]
        })
        .await;
        let outcome = list(&fake.addr, true).await.unwrap();
        let json: serde_json::Value = serde_json::from_str(&outcome.stdout).unwrap();
        let names: Vec<&str> = json
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["box:1", "box:2"]);
    }
}
