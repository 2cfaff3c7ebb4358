//! Tests of the schedule subcommands against the scripted coordinator: what `add` sends, what
//! each command prints, and the coordinator's refusals as one sentence.

use super::*;
use crate::cli::{Cli, ScheduleName, ScheduleShowArgs, TopCommand};
use crate::output::sentence;
use clap::Parser;
use tatzelwurm_client::fake_coordinator::{schedule, FakeCoordinator, Greeting, Seen, Step};
use tatzelwurm_proto::actioner::{Command, Failure, FailureKind, Reply};

/// The schedule command of a command line.
fn parse(line: &[&str]) -> ScheduleCommand {
    let argv = ["actionwurm", "schedule"].iter().chain(line);
    match Cli::try_parse_from(argv).unwrap().command {
        TopCommand::Schedule(command) => command,
        other => panic!("not a schedule command: {other:?}"),
    }
}

/// A script of commands as a script of what the fake sees.
fn adapt(
    mut script: impl FnMut(&Command) -> Vec<Step> + Send + 'static,
) -> impl FnMut(Seen<'_>) -> Vec<Step> + Send + 'static {
    move |seen| script(&seen.message.command)
}

/// Answers as a coordinator with one schedule, `nightly`, would.
fn script() -> impl FnMut(&Command) -> Vec<Step> + Send + 'static {
    |command| {
        let reply = match command {
            Command::AddSchedule(spec) if spec.name == "nightly" => Reply::Error(Failure::new(
                FailureKind::ScheduleExists,
                "there is already a schedule `nightly`; remove it first or choose another name",
            )),
            Command::AddSchedule(spec) => {
                let mut info = schedule(&spec.name);
                info.spec = spec.clone();
                info.fired = 0;
                info.last.clear();
                Reply::Schedules(vec![info])
            }
            Command::Schedules(None) => Reply::Schedules(vec![schedule("nightly")]),
            Command::Schedules(Some(name)) | Command::Schedule { name, .. }
                if name != "nightly" =>
            {
                Reply::Error(Failure::new(
                    FailureKind::UnknownSchedule,
                    format!("there is no schedule `{name}`; the schedules are: nightly"),
                ))
            }
            Command::Schedules(Some(name)) => Reply::Schedules(vec![schedule(name)]),
            Command::Schedule { name, change } => {
                let mut info = schedule(name);
                info.paused = *change == ScheduleChange::Pause;
                Reply::Schedules(vec![info])
            }
            other => panic!("unexpected {other:?}"),
        };
        vec![Step::Reply(reply)]
    }
}

/// `schedule add` sends the trigger and the task as typed, and says when it fires next.
#[tokio::test]
async fn add_sends_trigger_and_task() {
    let fake = FakeCoordinator::serve(Greeting::Welcome, 1, adapt(script())).await;
    let command = parse(&[
        "add",
        "hourly",
        "examples.words:count",
        "--cron",
        "0 * * * *",
        "--tz",
        "Europe/Berlin",
        "--args",
        "[1, 2]",
        "--queue",
        "reports",
        "--priority",
        "-5",
        "--retries",
        "2",
    ]);
    let outcome = run(&Target::plain(&fake.addr), &command).await.unwrap();
    assert!(
        outcome
            .stdout
            .starts_with("added schedule hourly; it fires next at 2026-11-24 01:50:12 UTC ("),
        "{}",
        outcome.stdout
    );
    let sent = fake.requests().await;
    let Command::AddSchedule(spec) = &sent[0].command else {
        panic!("not an add: {:?}", sent[0].command);
    };
    assert_eq!(
        spec.trigger,
        Trigger::Cron {
            line: "0 * * * *".into(),
            tz: Some("Europe/Berlin".into())
        }
    );
    assert_eq!(spec.task.function, "examples.words:count");
    assert_eq!(spec.task.args, "[1,2]");
    assert_eq!(spec.task.queue, "reports");
    assert_eq!(spec.task.priority, -5);
    assert_eq!(spec.task.policy.retries, 2);
    assert_eq!(spec.task.run_at, None);
    assert!(spec.task.after.is_empty());
}

/// A bad function or bad arguments fail before anything is sent (no coordinator needed).
#[tokio::test]
async fn add_checks_input_before_connecting() {
    let command = parse(&["add", "n", "count", "--every", "5m"]);
    let err = run(&Target::plain("127.0.0.1:1"), &command)
        .await
        .unwrap_err();
    assert!(
        sentence(&err).contains("package.module:function"),
        "{err:#}"
    );
    let command = parse(&["add", "n", "m:f", "--every", "5m", "--args", "{}"]);
    let err = run(&Target::plain("127.0.0.1:1"), &command)
        .await
        .unwrap_err();
    assert!(
        sentence(&err).starts_with("--args is not a JSON array"),
        "{err:#}"
    );
}

/// A taken name is the coordinator's one sentence.
#[tokio::test]
async fn taken_name_is_refused() {
    let fake = FakeCoordinator::serve(Greeting::Welcome, 8, adapt(script())).await;
    let command = parse(&["add", "nightly", "m:f", "--every", "1h"]);
    let err = run(&Target::plain(&fake.addr), &command).await.unwrap_err();
    assert_eq!(
        sentence(&err),
        "there is already a schedule `nightly`; remove it first or choose another name"
    );
}

/// list and show print tables, or JSON with --json; show names the latest tasks.
#[tokio::test]
async fn list_and_show() {
    let fake = FakeCoordinator::serve(Greeting::Welcome, 8, adapt(script())).await;
    let table = run(&Target::plain(&fake.addr), &parse(&["list"]))
        .await
        .unwrap();
    assert!(table.stdout.contains("every 5m"), "{}", table.stdout);
    let json = run(&Target::plain(&fake.addr), &parse(&["list", "--json"]))
        .await
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(value[0]["name"], "nightly");
    let shown = run(&Target::plain(&fake.addr), &parse(&["show", "nightly"]))
        .await
        .unwrap();
    assert!(
        shown.stdout.contains("latest tasks, newest first:"),
        "{}",
        shown.stdout
    );
    let command = ScheduleCommand::Show(ScheduleShowArgs {
        name: "nightly".into(),
        json: true,
    });
    let json = run(&Target::plain(&fake.addr), &command).await.unwrap();
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(value["last"][0]["id"], 8);
    let err = run(&Target::plain(&fake.addr), &parse(&["show", "weekly"]))
        .await
        .unwrap_err();
    assert_eq!(
        sentence(&err),
        "there is no schedule `weekly`; the schedules are: nightly"
    );
}

/// pause, resume and remove say what they did in one line.
#[tokio::test]
async fn changes_say_what_they_did() {
    let fake = FakeCoordinator::serve(Greeting::Welcome, 8, adapt(script())).await;
    let name = || ScheduleName {
        name: "nightly".into(),
    };
    let paused = run(&Target::plain(&fake.addr), &ScheduleCommand::Pause(name()))
        .await
        .unwrap();
    assert_eq!(paused.stdout, "paused schedule nightly\n");
    let resumed = run(&Target::plain(&fake.addr), &ScheduleCommand::Resume(name()))
        .await
        .unwrap();
    assert!(
        resumed
            .stdout
            .starts_with("resumed schedule nightly; it fires next at "),
        "{}",
        resumed.stdout
    );
    let removed = run(&Target::plain(&fake.addr), &ScheduleCommand::Remove(name()))
        .await
        .unwrap();
    assert_eq!(
        removed.stdout,
        "removed schedule nightly; the 2 task(s) it added stay\n"
    );
}
