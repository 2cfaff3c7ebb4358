//! `actionwurm events`: prints the event log, a line (or a JSON object) per event, as the
//! events arrive, and with `--follow` goes on until interrupted.
//!
//! Lines are written and flushed batch by batch as they come, not gathered into the `Outcome`,
//! so a follower shows each event when it happens. A follower reconnects to a coordinator that
//! restarts (for up to `ADD_RECONNECT_LIMIT`) and goes on after the last event it printed, so
//! it prints nothing twice and misses nothing. Exit codes: 0 at the end of the log (or when
//! the reader of a pipe went away); 1 on an error, `Lagged` included.

use super::{connect, Target};
use crate::cli::{EventsArgs, Since};
use crate::outcome::Outcome;
use crate::output::EventJson;
use crate::table::event_line;
use anyhow::Result;
use std::io::{self, Write};
use tatzelwurm_client::{ClientError, ErrorClass, EventFilter, EventsFrom};
use tatzelwurm_proto::event::Event;
use tatzelwurm_proto::TaskId;

/// Runs `events` against the coordinator at `target`, writing the events to `out`.
pub async fn run(target: &Target, args: &EventsArgs, out: &mut dyn Write) -> Result<Outcome> {
    let filter = EventFilter {
        task: args.task.map(TaskId),
        queue: args.queue.clone(),
    };
    let client = connect(target, args.follow).await?;
    let mut stream = client.events(from(args.since), args.follow, filter);
    while let Some(batch) = stream.next().await {
        let batch = match batch {
            Ok(batch) => batch,
            Err(err) => return Ok(failure(&err, stream.last_seq())),
        };
        match write_batch(out, &batch, args.json) {
            Ok(()) => {}
            // `events | head`: the reader has what it wanted.
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => break,
            Err(err) => {
                return Ok(Outcome::error(format!(
                    "cannot write to standard output: {err}"
                )))
            }
        }
    }
    Ok(Outcome::success(String::new()))
}

/// Where the log is read from: after `--since SEQ`, at the next event with `--since now`, else
/// at the oldest event kept.
fn from(since: Option<Since>) -> EventsFrom {
    match since {
        None => EventsFrom::Start,
        Some(Since::Seq(seq)) => EventsFrom::After(seq),
        Some(Since::Now) => EventsFrom::Now,
    }
}

/// Writes one batch, a line each, and flushes it so a follower sees it at once.
fn write_batch(out: &mut dyn Write, batch: &[Event], json: bool) -> io::Result<()> {
    let mut text = String::new();
    for event in batch {
        if json {
            let line = serde_json::to_string(&EventJson::new(event)).map_err(io::Error::other)?;
            text.push_str(&line);
        } else {
            text.push_str(&event_line(event));
        }
        text.push('\n');
    }
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// The sentence for an error that ended the log; a follower that fell behind is also told
/// where to follow on from.
fn failure(err: &ClientError, last_printed: Option<u64>) -> Outcome {
    let sentence = match (err.class(), last_printed) {
        (ErrorClass::Lagged, Some(seq)) => format!(
            "{err}; the last event printed was {seq}: follow on with `actionwurm events --follow --since {seq}`"
        ),
        _ => err.to_string(),
    };
    Outcome::error(sentence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Exit;
    use tatzelwurm_client::fake_coordinator::{FakeCoordinator, Step};
    use tatzelwurm_proto::actioner::{Command, Failure, FailureKind, Reply};
    use tatzelwurm_proto::event::EventKind;
    use tatzelwurm_proto::task::Timestamp;

    fn args(line: &str) -> EventsArgs {
        use clap::Parser;
        let argv = format!("actionwurm events {line}");
        match crate::cli::Cli::try_parse_from(argv.split_whitespace())
            .unwrap()
            .command
        {
            crate::cli::TopCommand::Events(args) => args,
            other => panic!("not events: {other:?}"),
        }
    }

    fn events(seqs: &[u64], more: bool) -> Reply {
        Reply::Events {
            events: seqs
                .iter()
                .map(|seq| Event {
                    seq: *seq,
                    at: Timestamp(1_795_484_412_000 + seq),
                    kind: EventKind::Purged { count: *seq },
                })
                .collect(),
            more,
        }
    }

    /// Without --since the log is read from its start, once (no follow), a line per event,
    /// and the command ends with 0.
    #[tokio::test]
    async fn prints_the_log_a_line_per_event() {
        let fake = FakeCoordinator::start(|command| {
            assert_eq!(
                command,
                &Command::Events {
                    from: EventsFrom::Start,
                    follow: false,
                    filter: EventFilter::default(),
                }
            );
            vec![
                Step::Reply(events(&[1, 2], true)),
                Step::Reply(events(&[3], false)),
            ]
        })
        .await;
        let mut out = Vec::new();
        let outcome = run(&Target::plain(&fake.addr), &args(""), &mut out)
            .await
            .unwrap();
        assert_eq!(outcome, Outcome::success(String::new()));
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "1  2026-11-24 01:40:12.001  purged 1 finished task\n\
             2  2026-11-24 01:40:12.002  purged 2 finished tasks\n\
             3  2026-11-24 01:40:12.003  purged 3 finished tasks\n"
        );
    }

    /// --since, --task, --queue and --follow reach the coordinator; --json prints JSON lines.
    #[tokio::test]
    async fn filters_and_json_lines() {
        let fake = FakeCoordinator::start(|command| {
            assert_eq!(
                command,
                &Command::Events {
                    from: EventsFrom::After(41),
                    follow: true,
                    filter: EventFilter {
                        task: Some(TaskId(4)),
                        queue: Some("gpu".into()),
                    },
                }
            );
            vec![
                Step::Reply(events(&[42, 43], true)),
                Step::Reply(Reply::Error(Failure::new(
                    FailureKind::Stopping,
                    "the coordinator is stopping",
                ))),
            ]
        })
        .await;
        let mut out = Vec::new();
        let line = "--follow --since 41 --task 4 --queue gpu --json";
        let outcome = run(&Target::plain(&fake.addr), &args(line), &mut out)
            .await
            .unwrap();
        assert_eq!(outcome.exit, Exit::Failure);
        assert_eq!(
            outcome.stderr,
            vec!["the coordinator is stopping".to_string()]
        );
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["seq"], 43);
        assert_eq!(lines[1]["kind"], "purged");
    }

    /// A follower dropped for lagging exits 1 with the coordinator's sentence and where to
    /// follow on from.
    #[tokio::test]
    async fn lagged_follower_says_where_to_go_on() {
        let fake = FakeCoordinator::start(|_| {
            vec![
                Step::Reply(events(&[7], true)),
                Step::Reply(Reply::Error(Failure::new(
                    FailureKind::Lagged,
                    "this watcher fell behind and was dropped after event 7",
                ))),
            ]
        })
        .await;
        let mut out = Vec::new();
        let outcome = run(
            &Target::plain(&fake.addr),
            &args("-f --since now"),
            &mut out,
        )
        .await
        .unwrap();
        assert_eq!(outcome.exit, Exit::Failure);
        assert_eq!(
            outcome.stderr,
            vec!["this watcher fell behind and was dropped after event 7; the last event printed was 7: follow on with `actionwurm events --follow --since 7`".to_string()]
        );
    }
}
