//! `actionwurm schedule add|list|show|pause|resume|remove`: the shapes of the schedule
//! commands. A schedule adds an ordinary task each time it fires; the task's flags are those
//! of `task add` (queue, priority, policy), without the start time and dependencies, which a
//! firing decides.

use super::values::{parse_every, parse_schedule_name};
use super::{JsonFlag, PlacementArgs, PolicyArgs};
use clap::{Args, Subcommand};

/// `actionwurm schedule ...`.
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Add a schedule that adds a ready task every SPAN or at the times of a cron line.
    ///
    /// Firings missed while the coordinator was down run once when it starts again, not once
    /// per missed time. Cron lines are read in UTC unless --tz names a zone.
    Add(ScheduleAddArgs),
    /// List the schedules, by name.
    List(JsonFlag),
    /// Show one schedule: its trigger, its task, its next time and its latest tasks.
    Show(ScheduleShowArgs),
    /// Stop a schedule from firing until it is resumed.
    Pause(ScheduleName),
    /// Let a paused schedule fire again, from its next time after now (missed times are not
    /// made up).
    Resume(ScheduleName),
    /// Forget a schedule; the tasks it added stay.
    Remove(ScheduleName),
}

/// One schedule, by name.
#[derive(Debug, Args)]
pub struct ScheduleName {
    /// The schedule's name.
    #[arg(value_name = "NAME", value_parser = parse_schedule_name)]
    pub name: String,
}

/// Arguments of `schedule show`.
#[derive(Debug, Args)]
pub struct ScheduleShowArgs {
    /// The schedule's name.
    #[arg(value_name = "NAME", value_parser = parse_schedule_name)]
    pub name: String,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `schedule add`.
#[derive(Debug, Args)]
pub struct ScheduleAddArgs {
    /// The schedule's name: letters, digits, `_`, `-` or `.`.
    #[arg(value_name = "NAME", value_parser = parse_schedule_name)]
    pub name: String,
    /// The function each firing runs: `package.module:function` or `path/to/file.py:function`.
    #[arg(value_name = "FUNC")]
    pub function: String,
    /// When it fires.
    #[command(flatten)]
    pub trigger: TriggerArgs,
    /// Read the cron line in this IANA time zone, such as Europe/Berlin (UTC if not given).
    #[arg(long, value_name = "ZONE", requires = "cron", conflicts_with = "every")]
    pub tz: Option<String>,
    /// Positional arguments of every task, as a JSON array.
    #[arg(long, value_name = "JSON_ARRAY")]
    pub args: Option<String>,
    /// Keyword arguments of every task, as a JSON object.
    #[arg(long, value_name = "JSON_OBJECT")]
    pub kwargs: Option<String>,
    /// Where its tasks wait and in which order.
    #[command(flatten)]
    pub placement: PlacementArgs,
    /// How its tasks are retried, fenced and timed.
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// `--every SPAN` or `--cron LINE`, exactly one of the two (`--tz`, which goes with `--cron`,
/// is outside the group so that it may be given with it).
#[derive(Debug, Args)]
#[group(required = true, multiple = false, id = "trigger")]
pub struct TriggerArgs {
    /// Fire every SPAN (at least 1s), counted from when the schedule is added: 30s, 5m, 1h30m.
    #[arg(long, value_name = "SPAN", value_parser = parse_every)]
    pub every: Option<u64>,
    /// Fire at the times of a five-field cron line (minute hour day-of-month month
    /// day-of-week), such as "*/5 * * * *" or "0 9 * * MON-FRI".
    #[arg(long, value_name = "LINE")]
    pub cron: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, TopCommand};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<ScheduleCommand, String> {
        let argv = ["actionwurm", "schedule"].iter().chain(args);
        match Cli::try_parse_from(argv).map_err(|e| e.to_string())? {
            Cli {
                command: TopCommand::Schedule(command),
                ..
            } => Ok(command),
            other => panic!("not a schedule command: {other:?}"),
        }
    }

    fn add(args: &[&str]) -> Result<ScheduleAddArgs, String> {
        let mut all = vec!["add"];
        all.extend_from_slice(args);
        match parse(&all)? {
            ScheduleCommand::Add(add) => Ok(add),
            other => panic!("not an add: {other:?}"),
        }
    }

    /// `--every` and `--cron [--tz]` parse with the task's flags.
    #[test]
    fn triggers_parse() {
        let every = add(&[
            "n",
            "m:f",
            "--every",
            "5m",
            "--queue",
            "q",
            "--priority",
            "3",
        ])
        .unwrap();
        assert_eq!(every.trigger.every, Some(300_000));
        assert_eq!(every.placement.queue, "q");
        assert_eq!(every.placement.priority, 3);
        let cron = add(&[
            "n",
            "m:f",
            "--cron",
            "*/5 * * * *",
            "--tz",
            "Europe/Berlin",
            "--retries",
            "2",
            "--args",
            "[1]",
        ])
        .unwrap();
        assert_eq!(cron.trigger.cron.as_deref(), Some("*/5 * * * *"));
        assert_eq!(cron.tz.as_deref(), Some("Europe/Berlin"));
        assert_eq!(cron.policy.retries, 2);
        assert_eq!(cron.placement.queue, "default");
    }

    /// Exactly one trigger; --tz only with --cron; --every at least a second; a bad name is
    /// refused naming it.
    #[test]
    fn trigger_rules() {
        let err = add(&["n", "m:f"]).unwrap_err();
        assert!(err.contains("--every") && err.contains("--cron"), "{err}");
        let err = add(&["n", "m:f", "--every", "5m", "--cron", "* * * * *"]).unwrap_err();
        assert!(err.contains("cannot be used with"), "{err}");
        let err = add(&["n", "m:f", "--every", "5m", "--tz", "UTC"]).unwrap_err();
        assert!(err.contains("--cron"), "{err}");
        let err = add(&["n", "m:f", "--every", "200ms"]).unwrap_err();
        assert!(err.contains("shorter than 1 second"), "{err}");
        let err = add(&["n", "m:f", "--every", "5x"]).unwrap_err();
        assert!(err.contains("`5x`"), "{err}");
        let err = add(&["a b", "m:f", "--every", "5m"]).unwrap_err();
        assert!(err.contains("not a schedule name"), "{err}");
    }

    /// list, show, pause, resume and remove take a name (list takes none).
    #[test]
    fn other_commands_parse() {
        assert!(matches!(parse(&["list", "--json"]), Ok(ScheduleCommand::List(f)) if f.json));
        assert!(matches!(parse(&["show", "n"]), Ok(ScheduleCommand::Show(s)) if s.name == "n"));
        assert!(matches!(parse(&["pause", "n"]), Ok(ScheduleCommand::Pause(s)) if s.name == "n"));
        assert!(matches!(
            parse(&["resume", "n"]),
            Ok(ScheduleCommand::Resume(_))
        ));
        assert!(matches!(
            parse(&["remove", "n"]),
            Ok(ScheduleCommand::Remove(_))
        ));
        assert!(parse(&["remove"]).is_err());
    }
}
