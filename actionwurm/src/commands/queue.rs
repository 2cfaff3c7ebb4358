//! `actionwurm queue list|pause|resume|limit`.
//!
//! Exit code 0 when the coordinator did it, 1 on an error (an unknown queue among them: the
//! coordinator's sentence names the queues there are).

use super::{connect, Target};
use crate::cli::QueueCommand;
use crate::outcome::Outcome;
use crate::output::{to_json_text, QueueJson};
use crate::table;
use anyhow::Result;
use tatzelwurm_proto::queue::{QueueChange, QueueInfo};

/// Runs one queue subcommand against the coordinator at `target`.
pub async fn run(target: &Target, command: &QueueCommand) -> Result<Outcome> {
    let client = connect(target, false).await?;
    let (name, change) = match command {
        QueueCommand::List(flag) => return list(client.queues().await?, flag.json),
        QueueCommand::Pause(queue) => (&queue.name, QueueChange::Pause),
        QueueCommand::Resume(queue) => (&queue.name, QueueChange::Resume),
        QueueCommand::Limit(args) => (&args.name, QueueChange::Limit(args.limit)),
    };
    let now = client.queue(name, change).await?;
    Ok(Outcome::success(format!("{}\n", changed(&now, change))))
}

/// The queue list as a table, or one JSON array with `--json`.
fn list(queues: Vec<QueueInfo>, json: bool) -> Result<Outcome> {
    if json {
        let json: Vec<QueueJson> = queues.iter().map(QueueJson::new).collect();
        return Ok(Outcome::success(to_json_text(&json)?));
    }
    if queues.is_empty() {
        return Ok(Outcome::success(
            "no queues yet: a queue appears when a task, a worker or a setting names it\n".into(),
        ));
    }
    Ok(Outcome::success(format!(
        "{}\n",
        table::queue_list(&queues)
    )))
}

/// What a change did, said about the queue as the coordinator now has it.
fn changed(queue: &QueueInfo, change: QueueChange) -> String {
    let name = &queue.name;
    match change {
        QueueChange::Pause => {
            let running = queue.count(tatzelwurm_proto::task::TaskState::Running);
            format!("paused queue {name}; its {running} running task(s) go on, nothing new starts")
        }
        QueueChange::Resume => format!("resumed queue {name}"),
        QueueChange::Limit(0) => format!("removed the limit of queue {name}"),
        QueueChange::Limit(n) => format!("limited queue {name} to {n} task(s) at once"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{JsonFlag, LimitArgs, QueueName};
    use crate::outcome::Exit;
    use crate::output::sentence;
    use tatzelwurm_client::fake_coordinator::{queue, FakeCoordinator, Greeting, Seen, Step};
    use tatzelwurm_proto::actioner::{Command, Failure, FailureKind, Reply};

    /// A script of commands as a script of what the fake sees.
    fn adapt(
        mut script: impl FnMut(&Command) -> Vec<Step> + Send + 'static,
    ) -> impl FnMut(Seen<'_>) -> Vec<Step> + Send + 'static {
        move |seen| script(&seen.message.command)
    }

    /// Answers `Queues` with `default` and `gpu`, and a change of a known queue with it changed;
    /// an unknown one is refused as the coordinator refuses it.
    fn script() -> impl FnMut(&Command) -> Vec<Step> + Send + 'static {
        |command| match command {
            Command::Queues => vec![Step::Reply(Reply::Queues(vec![
                queue("default"),
                queue("gpu"),
            ]))],
            Command::Queue { name, change } if name == "gpu" => {
                let mut now = queue(name);
                now.paused = *change == QueueChange::Pause;
                if let QueueChange::Limit(n) = change {
                    now.limit = *n;
                }
                vec![Step::Reply(Reply::Queues(vec![now]))]
            }
            Command::Queue { name, .. } => vec![Step::Reply(Reply::Error(Failure::new(
                FailureKind::UnknownQueue,
                format!("there is no queue `{name}`; the queues are: default, gpu"),
            )))],
            other => panic!("unexpected {other:?}"),
        }
    }

    /// `queue list` prints a table with a row per queue, or with --json an array of them.
    #[tokio::test]
    async fn list_as_table_and_json() {
        let fake = FakeCoordinator::serve(Greeting::Welcome, 8, adapt(script())).await;
        let table = run(
            &Target::plain(&fake.addr),
            &QueueCommand::List(JsonFlag { json: false }),
        )
        .await
        .unwrap();
        assert!(
            table.stdout.lines().any(|l| l.contains("gpu")),
            "{}",
            table.stdout
        );
        let json = run(
            &Target::plain(&fake.addr),
            &QueueCommand::List(JsonFlag { json: true }),
        )
        .await
        .unwrap();
        let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
        assert_eq!(value[1]["name"], "gpu");
        assert_eq!(value[1]["counts"]["ready"], 2);
    }

    /// Each change says what it did in one line on stdout, exit 0.
    #[tokio::test]
    async fn changes_say_what_they_did() {
        let fake = FakeCoordinator::serve(Greeting::Welcome, 8, adapt(script())).await;
        let gpu = || QueueName { name: "gpu".into() };
        for (command, said) in [
            (
                QueueCommand::Pause(gpu()),
                "paused queue gpu; its 1 running task(s) go on, nothing new starts\n",
            ),
            (QueueCommand::Resume(gpu()), "resumed queue gpu\n"),
            (
                QueueCommand::Limit(LimitArgs {
                    name: "gpu".into(),
                    limit: 3,
                }),
                "limited queue gpu to 3 task(s) at once\n",
            ),
            (
                QueueCommand::Limit(LimitArgs {
                    name: "gpu".into(),
                    limit: 0,
                }),
                "removed the limit of queue gpu\n",
            ),
        ] {
            let outcome = run(&Target::plain(&fake.addr), &command).await.unwrap();
            assert_eq!(outcome, Outcome::success(said.into()));
        }
    }

    /// An unknown queue is the coordinator's one sentence, which `run`'s caller prints with
    /// exit 1.
    #[tokio::test]
    async fn unknown_queue_is_one_sentence() {
        let fake = FakeCoordinator::serve(Greeting::Welcome, 8, adapt(script())).await;
        let err = run(
            &Target::plain(&fake.addr),
            &QueueCommand::Pause(QueueName {
                name: "nosuch".into(),
            }),
        )
        .await
        .unwrap_err();
        let outcome = Outcome::error(sentence(&err));
        assert_eq!(outcome.exit, Exit::Failure);
        assert_eq!(
            outcome.stderr,
            vec!["there is no queue `nosuch`; the queues are: default, gpu"]
        );
    }
}
