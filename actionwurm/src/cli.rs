//! The command line as clap parses it: `actionwurm [--coordinator ADDR] [--tls] [--tls-ca FILE]
//! task|queue|schedule|worker|events ...`.
//!
//! Only shapes and help text live here (`queue`, `schedule`, `events`, `logs`, `purge` and the
//! TLS flags in `tls` in files of their own, the value parsers in `values`); `commands` gives them meaning. The names are the contract of
//! issues 5 and 11 (tests and docs use them), so change them only together with those.

mod events;
mod logs;
mod purge;
mod queue;
mod schedule;
pub mod tls;
pub mod values;

pub use events::{EventsArgs, Since};
pub use logs::LogsArgs;
pub use purge::PurgeArgs;
pub use queue::{LimitArgs, QueueCommand, QueueName};
pub use schedule::{ScheduleAddArgs, ScheduleCommand, ScheduleName, ScheduleShowArgs, TriggerArgs};
pub use tls::TlsArgs;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use tatzelwurm_proto::address::check_coordinator_address;
use tatzelwurm_proto::task::{TaskState, DEFAULT_CRASH_LIMIT, DEFAULT_QUEUE};
use tatzelwurm_proto::{seconds, COORDINATOR_ENV, DEFAULT_COORDINATOR};
use values::{parse_crash_limit, parse_priority, parse_queue, parse_retries};

/// Add, play, pause, kill, list, show, wait for, follow and purge tatzelwurm tasks; manage
/// queues and schedules; list and drain workers; watch the event log.
#[derive(Debug, Parser)]
#[command(name = "actionwurm", version)]
pub struct Cli {
    /// Address of the coordinator (HOST:PORT).
    #[arg(long, global = true, value_name = "ADDR", env = COORDINATOR_ENV, default_value = DEFAULT_COORDINATOR, value_parser = check_coordinator_address)]
    pub coordinator: String,
    /// How to reach a coordinator that serves TLS.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: TopCommand,
}

/// What an actioner handles: tasks, queues, schedules and workers.
#[derive(Debug, Subcommand)]
pub enum TopCommand {
    /// Add, play, pause, kill, list, show and wait for tasks; print their output; purge them.
    #[command(subcommand)]
    Task(TaskCommand),
    /// List queues; pause, resume or limit one.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Add, list, show, pause, resume and remove schedules that add tasks over time.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Inspect the connected workers, or drain one.
    #[command(subcommand)]
    Worker(WorkerCommand),
    /// Print the event log: every state change of a task, every worker joining, draining or
    /// leaving, each with its sequence number; with --follow, as they happen.
    ///
    /// Exit status: 0 at the end of the log (without --follow); 1 on an error, or when a
    /// follower fell too far behind and was dropped (the sentence names the last sequence
    /// number printed: follow on with --since it).
    Events(EventsArgs),
}

/// `actionwurm task ...`.
#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Add tasks and print their ids, one per line.
    Add(AddArgs),
    /// Move created or paused tasks on, so that workers run them: to blocked while a task
    /// they run after (--after) has not completed, to scheduled while their start time
    /// (--delay, --at) is ahead, else to ready.
    Play(SelectArgs),
    /// Hold created, ready or scheduled tasks as paused until `task play` (a scheduled task
    /// keeps its start time).
    Pause(SelectArgs),
    /// End tasks that are not finished (a running one is stopped on its worker).
    Kill(SelectArgs),
    /// List tasks as a table, or as one JSON array with --json.
    List(ListArgs),
    /// Show one task in full: arguments, result, error with traceback, output.
    Show(ShowArgs),
    /// Wait until tasks finish; exit 0 only if all of them completed.
    ///
    /// Exit status: 0 when every task waited for completed; 1 when one failed or was killed,
    /// when a named task is `created` (never played, it would never finish: the wait fails at
    /// once and says how to play it), or, with -a, when any task had already failed or been
    /// killed before the wait began (so a failure just before the wait is not missed); 2 when
    /// --timeout expired first.
    Wait(WaitArgs),
    /// Print a task's output: stdout to stdout, stderr to stderr. With --follow, a running
    /// task's output as it is written, until the task finishes.
    Logs(LogsArgs),
    /// Remove finished tasks (completed, failed, killed) with their results and output, by id
    /// or by age; the store's disk use shrinks. A purged id is reported as purged afterwards.
    ///
    /// Exit status: 0 when every named task was purged (or had been); 1 when a named task is
    /// not finished (it is left and named).
    Purge(PurgeArgs),
}

/// `actionwurm worker ...`.
#[derive(Debug, Subcommand)]
pub enum WorkerCommand {
    /// List the connected workers with their load, memory, CPU and uptime.
    List(JsonFlag),
    /// Drain workers by name (or connection id), as SIGTERM on their host does: they get
    /// nothing new, finish what they hold, and leave.
    Drain(DrainArgs),
}

/// Arguments of `worker drain`.
#[derive(Debug, Args)]
pub struct DrainArgs {
    /// The worker's name (as `worker list` shows it) or connection id.
    #[arg(value_name = "NAME")]
    pub name: String,
}

/// Arguments of `task add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The function to run: `package.module:function` or `path/to/file.py:function`.
    #[arg(value_name = "FUNC")]
    pub function: String,
    /// Positional arguments as a JSON array.
    #[arg(long, value_name = "JSON_ARRAY")]
    pub args: Option<String>,
    /// Keyword arguments as a JSON object (for every task with --args-file).
    #[arg(long, value_name = "JSON_OBJECT")]
    pub kwargs: Option<String>,
    /// A file with one JSON array of arguments per line: one task per line, one round trip.
    #[arg(long, value_name = "FILE", conflicts_with = "args")]
    pub args_file: Option<PathBuf>,
    /// Play the tasks at once instead of leaving them created (they go to ready, or to
    /// blocked or scheduled as --after, --delay and --at say).
    #[arg(long)]
    pub play: bool,
    /// Where the tasks wait and in which order.
    #[command(flatten)]
    pub placement: PlacementArgs,
    /// When the tasks may start.
    #[command(flatten)]
    pub timing: TimingArgs,
    /// How the tasks are retried, fenced and timed.
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// The queue and priority of tasks, shared by `task add` and `schedule add`.
#[derive(Debug, Args)]
pub struct PlacementArgs {
    /// The queue the tasks wait in; only workers started with `--queue NAME` run them.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_QUEUE, value_parser = parse_queue)]
    pub queue: String,
    /// Higher runs first, from -100 to 100; tasks of one priority run first in, first out.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = parse_priority, allow_negative_numbers = true)]
    pub priority: i8,
}

/// When the tasks of `task add` may start.
#[derive(Debug, Args)]
pub struct TimingArgs {
    /// Start no sooner than this long after the coordinator adds them: 30s, 5m, 2h, 1h30m.
    #[arg(long, value_name = "SPAN", value_parser = values::parse_delay, conflicts_with = "at", allow_hyphen_values = true)]
    pub delay: Option<u64>,
    /// Start no sooner than this moment, RFC 3339 with an offset: 2026-12-01T09:00:00Z. A
    /// moment already past starts them at once (said on stderr).
    #[arg(long, value_name = "TIME", value_parser = values::parse_at)]
    pub at: Option<tatzelwurm_proto::task::Timestamp>,
    /// Start only after these tasks completed (ids, repeat or separate with commas); if one
    /// fails or is killed, these tasks fail too.
    #[arg(long, value_name = "ID", value_delimiter = ',')]
    pub after: Vec<u64>,
}

/// What happens when an attempt fails, is lost or runs too long; shared by `task add` and
/// `schedule add`.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Never start a task twice: if its worker is lost while it runs, it ends failed instead
    /// of running again.
    #[arg(long, conflicts_with = "crash_limit")]
    pub at_most_once: bool,
    /// Run a task that raises or times out again, up to N more times.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = parse_retries, allow_negative_numbers = true)]
    pub retries: u32,
    /// Wait this long before the first retry, doubling for each later one (with jitter).
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0, value_parser = seconds::positive, allow_negative_numbers = true)]
    pub backoff: f64,
    /// Kill an attempt that runs longer than this; it counts as a failure (and is retried if
    /// --retries allows).
    #[arg(long, value_name = "SECONDS", value_parser = seconds::positive, allow_negative_numbers = true)]
    pub timeout: Option<f64>,
    /// Fail a task once this many of its attempts were lost with their worker, so that a task
    /// that kills its worker cannot loop forever.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CRASH_LIMIT, value_parser = parse_crash_limit, allow_negative_numbers = true)]
    pub crash_limit: u32,
}

/// Which tasks `task play`, `pause`, `kill` or `wait` is about: ids, or `-a` for all it
/// applies to.
#[derive(Debug, Args)]
pub struct SelectArgs {
    /// Task ids.
    #[arg(
        value_name = "ID",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub ids: Vec<u64>,
    /// Every task the command applies to.
    #[arg(short = 'a', long)]
    pub all: bool,
}

/// Arguments of `task list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only tasks in this state: created, blocked, scheduled, paused, ready, running, waiting,
    /// completed, failed or killed (repeat, or separate with commas, for several).
    #[arg(long = "state", value_name = "STATE", value_delimiter = ',')]
    pub states: Vec<TaskState>,
    /// Only tasks of this queue.
    #[arg(long, value_name = "NAME", value_parser = parse_queue)]
    pub queue: Option<String>,
    /// At most this many tasks (0: all of them).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LIST_LIMIT)]
    pub limit: usize,
    /// Only tasks with ids above this one: the next page after a listing that ended at ID.
    #[arg(long, value_name = "ID")]
    pub after: Option<u64>,
    /// Print one JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// How many tasks `task list` shows unless `--limit` says otherwise: a table of a million
/// rows helps nobody, and the next page is one `--after` away.
pub const DEFAULT_LIST_LIMIT: usize = 1_000;

/// Arguments of `task show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The task's id.
    #[arg(value_name = "ID")]
    pub id: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `task wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Which tasks.
    #[command(flatten)]
    pub select: SelectArgs,
    /// Give up after this many seconds (exit code 2).
    #[arg(long, value_name = "SECONDS", value_parser = seconds::non_negative)]
    pub timeout: Option<f64>,
}

/// Just `--json`.
#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print one JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(line.split_whitespace())
    }

    /// The definition is internally consistent (clap's own check).
    #[test]
    fn definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    /// `--coordinator` works before and after the subcommand.
    #[test]
    fn coordinator_is_global() {
        let before = parse("actionwurm --coordinator h:1 task list").unwrap();
        assert_eq!(before.coordinator, "h:1");
        let after = parse("actionwurm worker list --coordinator h:2 --json").unwrap();
        assert_eq!(after.coordinator, "h:2");
    }

    /// An address that is not HOST:PORT, by flag or environment, is a usage error naming the
    /// form and the variable.
    #[test]
    fn coordinator_must_be_host_port() {
        for bad in ["localhost", "127.0.0.1:2024x"] {
            let err = parse(&format!("actionwurm --coordinator {bad} task list"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("HOST:PORT") && err.contains(COORDINATOR_ENV),
                "{err}"
            );
        }
        assert!(parse("actionwurm task list --coordinator [::1]:5677").is_ok());
    }

    /// States repeat or come comma-separated; a wrong one is refused with the valid names.
    #[test]
    fn state_filters_parse() {
        let cli = parse("actionwurm task list --state ready --state failed,killed").unwrap();
        let TopCommand::Task(TaskCommand::List(list)) = cli.command else {
            panic!("not a list");
        };
        assert_eq!(
            list.states,
            vec![TaskState::Ready, TaskState::Failed, TaskState::Killed]
        );
        let err = parse("actionwurm task list --state done")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("use one of: created, blocked, scheduled, paused, ready, running, waiting, completed, failed, killed"),
            "{err}"
        );
        let cli = parse("actionwurm task list --state waiting,running").unwrap();
        let TopCommand::Task(TaskCommand::List(list)) = cli.command else {
            panic!("not a list");
        };
        assert_eq!(list.states, vec![TaskState::Waiting, TaskState::Running]);
    }

    /// play, pause, kill and wait take ids or -a, not both and not neither.
    #[test]
    fn selections_need_ids_or_all() {
        assert!(parse("actionwurm task play 1 2 3").is_ok());
        assert!(parse("actionwurm task pause 1 2").is_ok());
        assert!(parse("actionwurm task pause -a").is_ok());
        assert!(parse("actionwurm task pause").is_err());
        assert!(parse("actionwurm task kill -a").is_ok());
        assert!(parse("actionwurm task wait -a --timeout 0.5").is_ok());
        assert!(parse("actionwurm task play").is_err());
        assert!(parse("actionwurm task play -a 3").is_err());
        assert!(parse("actionwurm task wait 1 --timeout soon").is_err());
        assert!(parse("actionwurm task wait 1 --timeout -1").is_err());
    }

    /// The operations commands parse: events with its filters, logs, purge by ids or age,
    /// worker drain, and the global TLS flags anywhere.
    #[test]
    fn operations_commands_parse() {
        let cli = parse("actionwurm events -f --since 12 --task 4 --queue gpu --json").unwrap();
        let TopCommand::Events(events) = cli.command else {
            panic!("not events");
        };
        assert!(events.follow && events.json);
        assert_eq!(events.since, Some(Since::Seq(12)));
        assert_eq!(
            (events.task, events.queue.as_deref()),
            (Some(4), Some("gpu"))
        );
        assert!(parse("actionwurm events --since soon").is_err());
        let cli = parse("actionwurm task logs 7 --follow").unwrap();
        assert!(matches!(
            cli.command,
            TopCommand::Task(TaskCommand::Logs(LogsArgs {
                id: 7,
                follow: true
            }))
        ));
        let cli =
            parse("actionwurm task purge --finished-before 7d --state failed,killed").unwrap();
        let TopCommand::Task(TaskCommand::Purge(purge)) = cli.command else {
            panic!("not a purge");
        };
        assert_eq!(purge.finished_before, Some(7 * 86_400_000));
        assert_eq!(purge.states, vec![TaskState::Failed, TaskState::Killed]);
        assert!(parse("actionwurm task purge 1 2 3").is_ok());
        assert!(parse("actionwurm task purge").is_err());
        assert!(parse("actionwurm task purge 1 --finished-before 1d").is_err());
        assert!(parse("actionwurm task purge 1 --state failed").is_err());
        let err = parse("actionwurm task purge --finished-before 1d --state running")
            .unwrap_err()
            .to_string();
        assert!(err.contains("only finished tasks are purged"), "{err}");
        let cli = parse("actionwurm worker drain box:12 --tls-ca ca.pem").unwrap();
        assert!(cli.tls.enabled() && !cli.tls.tls);
        assert!(
            matches!(cli.command, TopCommand::Worker(WorkerCommand::Drain(DrainArgs { ref name })) if name == "box:12")
        );
        assert!(parse("actionwurm --tls task list").unwrap().tls.enabled());
        assert!(!parse("actionwurm task list").unwrap().tls.enabled());
    }

    /// --args and --args-file cannot be combined.
    #[test]
    fn args_and_args_file_exclude_each_other() {
        assert!(parse("actionwurm task add m:f --args [1] --args-file x").is_err());
        assert!(parse("actionwurm task add m:f --args-file x --kwargs {} --play").is_ok());
    }

    fn add(line: &str) -> Result<AddArgs, String> {
        match parse(line).map_err(|err| err.to_string())?.command {
            TopCommand::Task(TaskCommand::Add(add)) => Ok(add),
            other => panic!("not an add: {other:?}"),
        }
    }

    /// Without policy flags, `task add` asks for proto's default policy.
    #[test]
    fn policy_flags_default() {
        let args = add("actionwurm task add m:f").unwrap();
        assert!(!args.policy.at_most_once);
        assert_eq!(args.policy.retries, 0);
        assert_eq!(args.policy.backoff, 1.0);
        assert_eq!(args.policy.timeout, None);
        assert_eq!(args.policy.crash_limit, DEFAULT_CRASH_LIMIT);
    }

    /// Every policy flag parses, with --args-file too.
    #[test]
    fn policy_flags_parse() {
        let args = add(
            "actionwurm task add m:f --args-file x --retries 3 --backoff 0.25 --timeout 2.5 --crash-limit 2",
        )
        .unwrap();
        assert_eq!(args.policy.retries, 3);
        assert_eq!(args.policy.backoff, 0.25);
        assert_eq!(args.policy.timeout, Some(2.5));
        assert_eq!(args.policy.crash_limit, 2);
        let args = add("actionwurm task add m:f --at-most-once --retries 1").unwrap();
        assert!(args.policy.at_most_once);
    }

    /// Each bad value is refused with a sentence that names the value and shows a good one.
    #[test]
    fn bad_policy_values_explain_themselves() {
        let seconds = "must be a positive number of seconds, such as 2.5";
        let retries = "must be a whole number of 0 or more, such as 3";
        let limit = "must be a whole number of 1 or more, such as 5";
        for (line, expected) in [
            (
                "--timeout 0",
                format!("invalid value '0' for '--timeout <SECONDS>': {seconds}"),
            ),
            (
                "--timeout -1",
                format!("invalid value '-1' for '--timeout <SECONDS>': {seconds}"),
            ),
            ("--timeout soon", seconds.to_string()),
            ("--timeout inf", seconds.to_string()),
            ("--timeout NaN", seconds.to_string()),
            (
                "--backoff 0",
                format!("invalid value '0' for '--backoff <SECONDS>': {seconds}"),
            ),
            ("--backoff 1e10", seconds.to_string()),
            (
                "--retries -1",
                format!("invalid value '-1' for '--retries <N>': {retries}"),
            ),
            ("--retries 1.5", retries.to_string()),
            ("--retries 5000000000", retries.to_string()),
            (
                "--crash-limit 0",
                format!("invalid value '0' for '--crash-limit <N>': {limit}"),
            ),
            ("--crash-limit two", limit.to_string()),
        ] {
            let err = add(&format!("actionwurm task add m:f {line}")).unwrap_err();
            assert!(err.contains(&expected), "{line}: {err}");
        }
    }

    /// A crash limit means nothing for an at-most-once task, which is never re-run after a
    /// crash, so asking for both is refused rather than silently ignored.
    #[test]
    fn at_most_once_excludes_crash_limit() {
        let err = add("actionwurm task add m:f --at-most-once --crash-limit 3").unwrap_err();
        assert!(err.contains("cannot be used with"), "{err}");
    }

    /// The new states filter a list, and so does a queue.
    #[test]
    fn new_states_and_queue_filter() {
        let cli =
            parse("actionwurm task list --state blocked,scheduled,paused --queue gpu").unwrap();
        let TopCommand::Task(TaskCommand::List(list)) = cli.command else {
            panic!("not a list");
        };
        assert_eq!(
            list.states,
            vec![TaskState::Blocked, TaskState::Scheduled, TaskState::Paused]
        );
        assert_eq!(list.queue.as_deref(), Some("gpu"));
    }

    /// Queue, priority, delay, time and dependencies parse; the defaults are the default
    /// queue, priority 0, now and nothing.
    #[test]
    fn placement_and_timing_flags() {
        let args = add("actionwurm task add m:f").unwrap();
        assert_eq!(args.placement.queue, DEFAULT_QUEUE);
        assert_eq!(args.placement.priority, 0);
        assert_eq!(args.timing.delay, None);
        assert_eq!(args.timing.at, None);
        assert!(args.timing.after.is_empty());
        let args = add(
            "actionwurm task add m:f --queue gpu --priority -100 --delay 1h30m --after 4,5 --after 9",
        )
        .unwrap();
        assert_eq!(args.placement.queue, "gpu");
        assert_eq!(args.placement.priority, -100);
        assert_eq!(args.timing.delay, Some(5_400_000));
        assert_eq!(args.timing.after, vec![4, 5, 9]);
        let args = add("actionwurm task add m:f --at 2026-12-01T09:00:00Z").unwrap();
        assert_eq!(
            args.timing.at,
            Some(tatzelwurm_proto::task::Timestamp(1_796_115_600_000))
        );
    }

    /// Each bad value of the new flags is refused naming the flag and the value.
    #[test]
    fn bad_placement_and_timing_values() {
        for (line, flag, part) in [
            ("--priority 101", "--priority <N>", "use -100 to 100"),
            ("--priority high", "--priority <N>", "from -100 to 100"),
            ("--delay 1h3x", "--delay <SPAN>", "`3x`"),
            ("--delay soon", "--delay <SPAN>", "`soon`"),
            ("--at tomorrow", "--at <TIME>", "RFC 3339"),
            ("--at 2026-12-01T09:00:00", "--at <TIME>", "no UTC offset"),
            ("--queue a/b", "--queue <NAME>", "not a queue name"),
            ("--after x", "--after <ID>", "invalid digit"),
        ] {
            let err = add(&format!("actionwurm task add m:f {line}")).unwrap_err();
            assert!(err.contains(flag) && err.contains(part), "{line}: {err}");
        }
        let err = add("actionwurm task add m:f --delay 5m --at 2026-12-01T09:00:00Z").unwrap_err();
        assert!(err.contains("cannot be used with"), "{err}");
    }
}
