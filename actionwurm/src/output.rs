//! What scripts read and how everything reaches the terminal: the JSON form of tasks, workers,
//! queues, events and a worker's usage (re-exported from `tatzelwurm_proto::json`, which the
//! coordinator's HTTP API shares, and schedules in `schedule_json`), the one-sentence form
//! of errors (clap's included), and `emit`, which writes an `Outcome`.
//!
//! Used by `commands` (JSON and error sentences) and by `main` (`emit`, `clap_error`). The JSON
//! keys and value types are a contract for scripts: add keys freely, never rename or retype one.

mod schedule_json;

pub use schedule_json::ScheduleJson;
pub use tatzelwurm_proto::json::{
    run_at, worker_state, EventJson, QueueJson, TaskJson, WorkerJson,
};

use crate::outcome::Outcome;
use serde::Serialize;
use std::io::{self, Write};

/// Indented JSON with a final newline, for stdout.
pub fn to_json_text<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<String> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    Ok(text)
}

/// An error as the one sentence a user reads (the client's sentences already say what to do,
/// an unreachable coordinator's how to start one or point at another).
pub fn sentence(err: &anyhow::Error) -> String {
    format!("{err:#}")
}

/// Prints a clap error the way every other error is printed, one sentence on stderr, and gives
/// the exit code: 2 for a usage error. Help and version are printed as clap prints them (exit 0);
/// a missing subcommand prints the help on stderr with clap's exit code.
pub fn clap_error(err: &clap::Error, argv: &[String]) -> i32 {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = err.print();
            0
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            err.exit_code()
        }
        _ => {
            let rendered = err.render().to_string();
            eprintln!(
                "actionwurm: {}",
                clap_sentence(&rendered, &command_path(argv))
            );
            2
        }
    }
}

/// The subcommand the user meant, such as `actionwurm task show`, from the words of `argv`
/// that name subcommands.
pub fn command_path(argv: &[String]) -> String {
    use clap::CommandFactory;
    let mut command = crate::cli::Cli::command();
    let mut path = vec!["actionwurm".to_string()];
    for arg in argv.iter().skip(1) {
        let Some(sub) = command.find_subcommand(arg).cloned() else {
            continue;
        };
        path.push(sub.get_name().to_string());
        command = sub;
    }
    path.join(" ")
}

/// Clap's rendered error (`error: ...`, tips, usage, a pointer to --help) as one sentence: its
/// first paragraph on one line, then where to read the usage of `command`.
pub fn clap_sentence(rendered: &str, command: &str) -> String {
    format!(
        "{}; see `{command} --help`",
        tatzelwurm_proto::usage::clap_message(rendered)
    )
}

/// Writes an outcome to the terminal and gives the exit code. A closed stdout (`| head`) is not
/// an error: the reader has what it wanted.
pub fn emit(outcome: &Outcome) -> i32 {
    let mut code = outcome.exit.code();
    if let Err(err) = write_stdout(&outcome.stdout) {
        if err.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("actionwurm: cannot write to standard output: {err}");
            code = code.max(1);
        }
    }
    let mut stderr = io::stderr().lock();
    for line in &outcome.stderr {
        // Nothing sensible is left to do if stderr itself is gone.
        let _ = writeln!(stderr, "actionwurm: {line}");
    }
    i32::from(code)
}

fn write_stdout(text: &str) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use tatzelwurm_client::fake_coordinator::{shown_task, task};
    use tatzelwurm_client::ClientError;
    use tatzelwurm_proto::actioner::WorkerInfo;
    use tatzelwurm_proto::task::TaskState;
    use tatzelwurm_proto::task::{TaskPolicy, Timestamp, When};
    use tatzelwurm_proto::{Attempt, WorkerId};

    fn as_value<T: Serialize>(value: &T) -> Value {
        serde_json::to_value(value).unwrap()
    }

    /// A failed task has every contract key, with the contract's value types.
    #[test]
    fn failed_task_json() {
        let info = task(4, TaskState::Failed);
        let json = as_value(&TaskJson::new(&info, false));
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = vec![
            "id",
            "state",
            "function",
            "args",
            "kwargs",
            "queue",
            "priority",
            "run_at",
            "after",
            "policy",
            "result",
            "error",
            "worker",
            "attempts",
            "failures",
            "crashes",
            "retry_at",
            "created_at",
            "started_at",
            "finished_at",
        ];
        expected.sort_unstable();
        assert_eq!(keys, expected, "keys (serde_json sorts them)");
        assert_eq!(json["id"], 4);
        assert_eq!(json["state"], "failed");
        assert_eq!(json["function"], "examples.words:count");
        assert_eq!(json["args"], serde_json::json!(["a b c", 2]));
        assert_eq!(json["kwargs"], serde_json::json!({"lower": true}));
        assert_eq!(json["result"], Value::Null);
        assert_eq!(json["error"]["type"], "ValueError");
        assert_eq!(json["error"]["message"], "bad value");
        assert!(json["error"]["traceback"]
            .as_str()
            .unwrap()
            .starts_with("Traceback"));
        assert_eq!(json["worker"], "host:42");
        assert_eq!(json["attempts"], 1);
        assert_eq!(json["created_at"].as_f64(), Some(1_795_484_412.0));
        assert_eq!(json["finished_at"].as_f64(), Some(1_795_484_414.2));
        assert_eq!(json["failures"], 1);
        assert_eq!(json["crashes"], 0);
        assert_eq!(json["retry_at"], Value::Null);
        assert_eq!(json["queue"], "default");
        assert_eq!(json["priority"], 0);
        assert_eq!(json["run_at"], Value::Null);
        assert_eq!(json["after"], serde_json::json!([]));
        assert_eq!(
            json["policy"],
            serde_json::json!({"at_most_once": false, "retries": 0, "backoff": 1.0,
                "timeout": null, "crash_limit": 5})
        );
    }

    /// A waiting task shows its counters, when its retry is due, and its policy in seconds.
    #[test]
    fn waiting_task_json() {
        let mut info = task(6, TaskState::Waiting);
        info.attempts = Attempt(3);
        info.failures = 2;
        info.crashes = 1;
        info.retry_at = Some(Timestamp(1_795_484_415_250));
        info.spec.policy = TaskPolicy {
            at_most_once: true,
            retries: 4,
            backoff_ms: 250,
            timeout_ms: Some(2_500),
            crash_limit: 3,
        };
        let json = as_value(&TaskJson::new(&info, false));
        assert_eq!(json["state"], "waiting");
        assert_eq!(json["attempts"], 3);
        assert_eq!(json["failures"], 2);
        assert_eq!(json["crashes"], 1);
        assert_eq!(json["retry_at"].as_f64(), Some(1_795_484_415.25));
        assert_eq!(
            json["policy"],
            serde_json::json!({"at_most_once": true, "retries": 4, "backoff": 0.25,
                "timeout": 2.5, "crash_limit": 3})
        );
    }

    /// A completed task's result is the JSON value; a created one has nulls where nothing happened.
    #[test]
    fn result_and_nulls() {
        let done = task(1, TaskState::Completed);
        let json = as_value(&TaskJson::new(&done, false));
        assert_eq!(json["result"], serde_json::json!({"words": 3}));
        assert_eq!(json["error"], Value::Null);
        let created = task(2, TaskState::Created);
        let json = as_value(&TaskJson::new(&created, false));
        for key in [
            "result",
            "error",
            "worker",
            "started_at",
            "finished_at",
            "retry_at",
        ] {
            assert_eq!(json[key], Value::Null, "{key}");
        }
        for key in ["attempts", "failures", "crashes"] {
            assert_eq!(json[key], 0, "{key}");
        }
    }

    /// A scheduled task has its start time in seconds; a blocked one the ids it runs after; a
    /// delay not yet resolved counts from when the task was added.
    #[test]
    fn scheduling_fields() {
        let scheduled = task(9, TaskState::Scheduled);
        let json = as_value(&TaskJson::new(&scheduled, false));
        assert_eq!(json["run_at"].as_f64(), Some(1_795_484_712.0));
        assert_eq!(json["state"], "scheduled");
        let blocked = task(10, TaskState::Blocked);
        let json = as_value(&TaskJson::new(&blocked, false));
        assert_eq!(json["after"], serde_json::json!([1, 2]));
        let mut delayed = task(11, TaskState::Created);
        delayed.spec.run_at = Some(When::Delay(1_500));
        delayed.spec.priority = -7;
        delayed.spec.queue = "gpu".into();
        let json = as_value(&TaskJson::new(&delayed, false));
        assert_eq!(json["run_at"].as_f64(), Some(1_795_484_413.5));
        assert_eq!(json["priority"], -7);
        assert_eq!(json["queue"], "gpu");
    }

    /// `show` adds the output; a list leaves it out.
    #[test]
    fn output_only_in_show() {
        let info = shown_task(3, TaskState::Completed);
        let shown = as_value(&TaskJson::new(&info, true));
        assert_eq!(shown["stdout"], "counting\n");
        assert_eq!(shown["stderr"], "warning: slow\n");
        let listed = as_value(&TaskJson::new(&info, false));
        assert!(listed.get("stdout").is_none());
    }

    /// Keys come out in the documented order, id first, in the printed text.
    #[test]
    fn printed_key_order() {
        let info = task(1, TaskState::Ready);
        let text = to_json_text(&[TaskJson::new(&info, false)]).unwrap();
        assert!(
            text.starts_with("[\n  {\n    \"id\": 1,\n    \"state\": \"ready\""),
            "{text}"
        );
        assert!(text.ends_with("]\n"));
    }

    /// A worker has exactly its contract keys.
    #[test]
    fn worker_json() {
        let info = WorkerInfo {
            usage: None,
            id: WorkerId(2),
            name: "host:7".into(),
            address: "127.0.0.1:4000".into(),
            slots: 4,
            running: 1,
            queued: 0,
            done: 10,
            python: "3.11.7".into(),
            connected_at: Timestamp(1_500),
            draining: true,
            held_off_until: None,
            queues: vec!["default".into(), "gpu".into()],
            async_concurrency: 4,
        };
        let json = as_value(&WorkerJson::new(&info, Timestamp(4_000)));
        assert_eq!(
            json,
            serde_json::json!({"id": 2, "name": "host:7", "address": "127.0.0.1:4000", "slots": 4,
                "running": 1, "queued": 0, "done": 10, "python": "3.11.7", "connected_at": 1.5,
                "state": "draining", "held_off_until": null, "queues": ["default", "gpu"],
                "async_concurrency": 4, "uptime": 2.5, "usage": null})
        );
        let mut measured = info;
        measured.usage = Some(tatzelwurm_proto::worker::WorkerUsage {
            at: Timestamp(3_000),
            slots: vec![tatzelwurm_proto::worker::SlotUsage {
                pid: 42,
                rss: 1_000,
                cpu_permille: 250,
                running: 1,
            }],
            max_memory: None,
            memory_replaced: 0,
            memory_killed: 0,
        });
        let json = as_value(&WorkerJson::new(&measured, Timestamp(4_000)));
        assert_eq!(
            json["usage"],
            serde_json::json!({"at": 3.0, "rss": 1000, "cpu": 0.25, "max_memory": null,
                "memory_replaced": 0, "memory_killed": 0,
                "slots": [{"pid": 42, "rss": 1000, "cpu": 0.25, "running": 1}]})
        );
    }

    /// A queue has its contract keys; counts name every state; no limit is null.
    #[test]
    fn queue_json() {
        let mut info = tatzelwurm_client::fake_coordinator::queue("gpu");
        let json = as_value(&QueueJson::new(&info));
        assert_eq!(
            json,
            serde_json::json!({"name": "gpu", "paused": false, "limit": null,
                "counts": {"created": 0, "blocked": 0, "scheduled": 0, "paused": 0, "ready": 2,
                    "running": 1, "waiting": 0, "completed": 5, "failed": 0, "killed": 0},
                "workers": ["host:42"]})
        );
        info.limit = 3;
        info.paused = true;
        let json = as_value(&QueueJson::new(&info));
        assert_eq!(json["limit"], 3);
        assert_eq!(json["paused"], true);
    }

    /// An unreachable coordinator says how to start one; a rejection is shown as it is.
    #[test]
    fn error_sentences() {
        let unreachable = anyhow::Error::new(ClientError::Unreachable {
            addr: "127.0.0.1:5677".into(),
            reason: "connection refused".into(),
        });
        assert_eq!(
            sentence(&unreachable),
            "cannot reach the coordinator at 127.0.0.1:5677 (connection refused); start it with `tatzelwurm`, or set TATZELWURM_COORDINATOR to the address of a running one"
        );
        let rejected = anyhow::Error::new(ClientError::Rejected(
            tatzelwurm_proto::actioner::Failure::unknown_task("there is no task 9"),
        ));
        assert_eq!(sentence(&rejected), "there is no task 9");
    }

    /// Clap's errors become one line naming the subcommand's help; the real rendering of a
    /// bad id, an unknown flag and a missing argument is checked.
    #[test]
    fn clap_errors_are_one_sentence() {
        use crate::cli::Cli;
        use clap::Parser;
        let render = |line: &str| {
            let argv: Vec<String> = line.split_whitespace().map(String::from).collect();
            let err = Cli::try_parse_from(&argv).unwrap_err();
            clap_sentence(&err.render().to_string(), &command_path(&argv))
        };
        assert_eq!(
            render("actionwurm task show abc"),
            "invalid value 'abc' for '<ID>': invalid digit found in string; see `actionwurm task show --help`"
        );
        let unknown = render("actionwurm task list --colour");
        assert!(
            unknown.starts_with("unexpected argument '--colour' found")
                && unknown.ends_with("; see `actionwurm task list --help`"),
            "{unknown}"
        );
        let missing = render("actionwurm task add");
        assert!(
            missing.contains("<FUNC>") && missing.ends_with("; see `actionwurm task add --help`"),
            "{missing}"
        );
        for text in [unknown, missing] {
            assert!(!text.contains('\n'), "{text}");
        }
    }
}
