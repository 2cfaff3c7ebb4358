//! `actionwurm schedule add|list|show|pause|resume|remove`.
//!
//! `add` checks the function and the arguments before connecting, as `task add` does; the
//! trigger's cron line and time zone are checked by the coordinator, whose sentence names the
//! field at fault. Exit code 0 when the coordinator did it, 1 on an error.

use super::{connect, Target};
use crate::cli::{ScheduleAddArgs, ScheduleCommand};
use crate::outcome::Outcome;
use crate::output::{to_json_text, ScheduleJson};
use crate::{spec, table, time};
use anyhow::Result;
use tatzelwurm_proto::schedule::{ScheduleChange, ScheduleInfo, ScheduleSpec, Trigger};
use tatzelwurm_proto::task::{TaskSpec, Timestamp};

/// Runs one schedule subcommand against the coordinator at `target`.
pub async fn run(target: &Target, command: &ScheduleCommand) -> Result<Outcome> {
    if let ScheduleCommand::Add(args) = command {
        // Checked before connecting: a typo fails even with no coordinator running.
        let spec = schedule_spec(args)?;
        let client = connect(target, false).await?;
        let added = client.add_schedule(spec).await?;
        return Ok(Outcome::success(format!(
            "added schedule {}; {}\n",
            added.spec.name,
            next_words(&added, Timestamp::now())
        )));
    }
    let client = connect(target, false).await?;
    let (name, change) = match command {
        ScheduleCommand::Add(_) => unreachable!("handled above"),
        ScheduleCommand::List(flag) => {
            return list(&client.schedules(None).await?, flag.json);
        }
        ScheduleCommand::Show(args) => {
            let found = client.schedules(Some(&args.name)).await?;
            return show(&found, &args.name, args.json);
        }
        ScheduleCommand::Pause(s) => (&s.name, ScheduleChange::Pause),
        ScheduleCommand::Resume(s) => (&s.name, ScheduleChange::Resume),
        ScheduleCommand::Remove(s) => (&s.name, ScheduleChange::Remove),
    };
    let now = client.schedule(name, change).await?;
    let said = match change {
        ScheduleChange::Pause => format!("paused schedule {name}"),
        ScheduleChange::Resume => {
            format!(
                "resumed schedule {name}; {}",
                next_words(&now, Timestamp::now())
            )
        }
        ScheduleChange::Remove => format!(
            "removed schedule {name}; the {} task(s) it added stay",
            now.fired
        ),
    };
    Ok(Outcome::success(format!("{said}\n")))
}

/// What `schedule add` sends: the trigger and the task each firing adds.
fn schedule_spec(args: &ScheduleAddArgs) -> Result<ScheduleSpec> {
    spec::check_function(&args.function)?;
    let trigger = match (&args.trigger.every, &args.trigger.cron) {
        (Some(millis), _) => Trigger::Every(*millis),
        (None, Some(line)) => Trigger::Cron {
            line: line.clone(),
            tz: args.tz.clone(),
        },
        // clap's group requires one of the two.
        (None, None) => {
            anyhow::bail!("give --every SPAN or --cron LINE; see `actionwurm schedule add --help`")
        }
    };
    Ok(ScheduleSpec {
        name: args.name.clone(),
        trigger,
        task: TaskSpec {
            function: args.function.clone(),
            args: spec::parse_args(args.args.as_deref())?,
            kwargs: spec::parse_kwargs(args.kwargs.as_deref())?,
            policy: spec::policy(&args.policy),
            queue: args.placement.queue.clone(),
            priority: args.placement.priority,
            run_at: None,
            after: Vec::new(),
        },
    })
}

/// "it fires next at 2026-11-25 18:45:00 UTC (in 4m 30s)", or why it does not.
fn next_words(info: &ScheduleInfo, now: Timestamp) -> String {
    match info.next_at {
        Some(at) => format!("it fires next at {}", time::moment(at, now)),
        None if info.paused => "it is paused".into(),
        None => "its cron line has no time left, so it will not fire".into(),
    }
}

/// The schedule list as a table, or one JSON array with `--json`.
fn list(schedules: &[ScheduleInfo], json: bool) -> Result<Outcome> {
    if json {
        let json: Vec<ScheduleJson> = schedules.iter().map(ScheduleJson::new).collect();
        return Ok(Outcome::success(to_json_text(&json)?));
    }
    if schedules.is_empty() {
        return Ok(Outcome::success("no schedules\n".into()));
    }
    let table = table::schedule_list(schedules, Timestamp::now());
    Ok(Outcome::success(format!("{table}\n")))
}

/// One schedule in full, or one JSON object with `--json`.
fn show(found: &[ScheduleInfo], name: &str, json: bool) -> Result<Outcome> {
    let Some(info) = found.iter().find(|s| s.spec.name == name) else {
        anyhow::bail!(
            "the coordinator answered no schedule `{name}`; use a client from the same release as the coordinator"
        );
    };
    if json {
        return Ok(Outcome::success(to_json_text(&ScheduleJson::new(info))?));
    }
    Ok(Outcome::success(table::schedule_detail(
        info,
        Timestamp::now(),
    )))
}

#[cfg(test)]
mod tests;
