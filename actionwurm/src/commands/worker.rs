//! `actionwurm worker list|drain`: the connected workers as a table (with their slots' memory,
//! CPU and uptime) or one JSON array; draining workers by name.
//!
//! Exit code 0 when the coordinator answered, 1 on an error (a name no worker has, say).

use super::{connect, Target};
use crate::outcome::Outcome;
use crate::output::{to_json_text, WorkerJson};
use crate::table;
use anyhow::Result;
use tatzelwurm_proto::actioner::WorkerInfo;
use tatzelwurm_proto::task::Timestamp;

/// Lists the workers connected to the coordinator at `target`.
pub async fn list(target: &Target, json: bool) -> Result<Outcome> {
    let client = connect(target, false).await?;
    let workers = client.workers().await?;
    if json {
        let now = Timestamp::now();
        let json: Vec<WorkerJson> = workers.iter().map(|w| WorkerJson::new(w, now)).collect();
        return Ok(Outcome::success(to_json_text(&json)?));
    }
    if workers.is_empty() {
        return Ok(Outcome::success("no workers connected\n".into()));
    }
    Ok(Outcome::success(format!(
        "{}\n",
        table::worker_list(&workers, Timestamp::now())
    )))
}

/// Drains the workers named `name` (or with that connection id) and says which.
pub async fn drain(target: &Target, name: &str) -> Result<Outcome> {
    let client = connect(target, false).await?;
    let workers = client.drain_worker(name).await?;
    Ok(Outcome::success(drained(&workers)))
}

/// A line per drained worker: what it does now.
fn drained(workers: &[WorkerInfo]) -> String {
    workers
        .iter()
        .map(|w| {
            let then = match w.running {
                0 => "it holds no task and leaves now".to_string(),
                1 => "it finishes the 1 task it holds and leaves".to_string(),
                n => format!("it finishes the {n} tasks it holds and leaves"),
            };
            format!(
                "draining worker {} (id {}): it gets no new tasks; {then}\n",
                w.name, w.id
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tatzelwurm_client::fake_coordinator::{FakeCoordinator, Greeting, Step};
    use tatzelwurm_proto::actioner::{Command, Failure, FailureKind, Reply};
    use tatzelwurm_proto::WorkerId;

    fn worker(id: u64) -> WorkerInfo {
        WorkerInfo {
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
        }
    }

    /// `worker list --json` prints one array with one object per worker.
    #[tokio::test]
    async fn json_lists_every_worker() {
        let fake = FakeCoordinator::start(move |_| {
            vec![Step::Reply(Reply::Workers(vec![worker(1), worker(2)]))]
        })
        .await;
        let outcome = list(&Target::plain(&fake.addr), true).await.unwrap();
        let json: serde_json::Value = serde_json::from_str(&outcome.stdout).unwrap();
        let names: Vec<&str> = json
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["box:1", "box:2"]);
    }

    /// `worker drain NAME` sends the name and says what each drained worker does now; an
    /// unknown name is the coordinator's sentence and exit 1.
    #[tokio::test]
    async fn drain_names_the_workers() {
        let fake =
            FakeCoordinator::serve(Greeting::Welcome, 2, |seen| match &seen.message.command {
                Command::DrainWorker(name) if name == "box" => {
                    let mut busy = worker(3);
                    busy.running = 2;
                    busy.draining = true;
                    vec![Step::Reply(Reply::Workers(vec![busy]))]
                }
                _ => vec![Step::Reply(Reply::Error(Failure::new(
                FailureKind::UnknownWorker,
                "no connected worker is named nobody; `actionwurm worker list` shows their names",
            )))],
            })
            .await;
        let target = Target::plain(&fake.addr);
        let outcome = drain(&target, "box").await.unwrap();
        assert_eq!(
            outcome,
            Outcome::success(
                "draining worker box:3 (id 3): it gets no new tasks; it finishes the 2 tasks it holds and leaves\n"
                    .into()
            )
        );
        let err = drain(&target, "nobody").await.unwrap_err();
        assert!(
            crate::output::sentence(&err).starts_with("no connected worker is named nobody"),
            "{err}"
        );
    }
}
