//! `actionwurm task logs ID [--follow]`: a task's output, its stdout on stdout and its stderr
//! on stderr, written as it arrives (with `--follow`, as the task writes it, until it finishes).
//!
//! The kept output of a finished task, what a running one wrote so far, and then (following)
//! each piece as the worker forwards it. When a retry starts a new attempt, one line on stderr
//! says so. Exit codes: 0 once the output ended; 1 on an error (an unknown or purged task, a
//! lost connection), after whatever was printed before it.

use crate::cli::LogsArgs;
use crate::commands::{connect, Target};
use crate::outcome::Outcome;
use anyhow::Result;
use std::io::{self, Write};
use tatzelwurm_client::LogPage;
use tatzelwurm_proto::worker::OutputStream;
use tatzelwurm_proto::{Attempt, TaskId};

/// Runs `task logs` against the coordinator at `target`, writing the task's stdout to `out`
/// and its stderr to `err`.
pub async fn logs(
    target: &Target,
    args: &LogsArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Outcome> {
    let client = connect(target, false).await?;
    let mut stream = client.logs(TaskId(args.id), args.follow);
    let mut printer = Printer {
        task: TaskId(args.id),
        attempt: None,
    };
    while let Some(page) = stream.next().await {
        match printer.page(&page?, out, err) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => break,
            Err(e) => {
                return Ok(Outcome::error(format!(
                    "cannot write the output of task {}: {e}",
                    args.id
                )))
            }
        }
    }
    Ok(Outcome::success(String::new()))
}

/// Writes pages of output, remembering which attempt wrote the last chunk.
struct Printer {
    /// The task, for the retry line.
    task: TaskId,
    /// The attempt of the last chunk written.
    attempt: Option<Attempt>,
}

impl Printer {
    /// Writes one page's chunks, each to its stream, and flushes both.
    fn page(&mut self, page: &LogPage, out: &mut dyn Write, err: &mut dyn Write) -> io::Result<()> {
        for chunk in &page.chunks {
            if self.attempt.is_some_and(|seen| seen != chunk.attempt) {
                out.flush()?;
                writeln!(
                    err,
                    "actionwurm: task {} was tried again; the output of attempt {} follows",
                    self.task, chunk.attempt
                )?;
            }
            self.attempt = Some(chunk.attempt);
            match chunk.stream {
                OutputStream::Stdout => out.write_all(chunk.text.as_bytes())?,
                OutputStream::Stderr => err.write_all(chunk.text.as_bytes())?,
            }
        }
        out.flush()?;
        err.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Exit;
    use tatzelwurm_client::fake_coordinator::{FakeCoordinator, Step};
    use tatzelwurm_proto::actioner::{Command, Failure, FailureKind, Reply};
    use tatzelwurm_proto::task::TaskState;
    use tatzelwurm_proto::worker::OutputChunk;

    fn chunk(attempt: u32, stream: OutputStream, text: &str) -> OutputChunk {
        OutputChunk {
            task: TaskId(5),
            attempt: Attempt(attempt),
            stream,
            text: text.into(),
        }
    }

    /// Stdout chunks go to stdout and stderr chunks to stderr, in order; a new attempt is
    /// announced on stderr; the command ends 0 after the page with `done`.
    #[tokio::test]
    async fn streams_go_where_they_belong() {
        let fake = FakeCoordinator::start(|command| {
            assert_eq!(
                command,
                &Command::Logs {
                    task: TaskId(5),
                    follow: true
                }
            );
            vec![
                Step::Reply(Reply::Logs {
                    chunks: vec![
                        chunk(1, OutputStream::Stdout, "one\n"),
                        chunk(1, OutputStream::Stderr, "oops\n"),
                    ],
                    done: None,
                }),
                Step::Reply(Reply::Logs {
                    chunks: vec![chunk(2, OutputStream::Stdout, "two\n")],
                    done: Some(TaskState::Completed),
                }),
            ]
        })
        .await;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let args = LogsArgs {
            id: 5,
            follow: true,
        };
        let outcome = logs(&Target::plain(&fake.addr), &args, &mut out, &mut err)
            .await
            .unwrap();
        assert_eq!(outcome, Outcome::success(String::new()));
        assert_eq!(String::from_utf8(out).unwrap(), "one\ntwo\n");
        assert_eq!(
            String::from_utf8(err).unwrap(),
            "oops\nactionwurm: task 5 was tried again; the output of attempt 2 follows\n"
        );
    }

    /// A purged task is one sentence and exit 1.
    #[tokio::test]
    async fn purged_task_is_a_sentence() {
        let fake = FakeCoordinator::start(|_| {
            vec![Step::Reply(Reply::Error(Failure::new(
                FailureKind::Purged,
                "task 5 was purged",
            )))]
        })
        .await;
        let args = LogsArgs {
            id: 5,
            follow: false,
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let result = logs(&Target::plain(&fake.addr), &args, &mut out, &mut err).await;
        let outcome = result.unwrap_or_else(|e| Outcome::error(crate::output::sentence(&e)));
        assert_eq!(outcome.exit, Exit::Failure);
        assert_eq!(outcome.stderr, vec!["task 5 was purged".to_string()]);
        assert!(out.is_empty() && err.is_empty());
    }
}
