//! `actionwurm queue list|pause|resume|limit`: the shapes of the queue commands.
//!
//! A queue comes into being when a task, a worker or a setting names it; these commands look
//! at and steer the queues that exist (the coordinator refuses a name nothing uses).

use super::values::{parse_limit, parse_queue};
use super::JsonFlag;
use clap::{Args, Subcommand};

/// `actionwurm queue ...`.
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// List the queues: paused or not, their limit, their tasks by state and the workers
    /// serving them.
    List(JsonFlag),
    /// Dispatch nothing new from a queue; its running tasks go on. Durable.
    Pause(QueueName),
    /// Dispatch from a paused queue again.
    Resume(QueueName),
    /// Run at most N tasks of a queue at once across all workers (0 removes the limit).
    /// Durable.
    Limit(LimitArgs),
}

/// One queue, by name.
#[derive(Debug, Args)]
pub struct QueueName {
    /// The queue's name.
    #[arg(value_name = "NAME", value_parser = parse_queue)]
    pub name: String,
}

/// Arguments of `queue limit`.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// The queue's name.
    #[arg(value_name = "NAME", value_parser = parse_queue)]
    pub name: String,
    /// At most this many of its tasks run (or wait on a worker) at once; 0 removes the limit.
    #[arg(value_name = "N", value_parser = parse_limit, allow_negative_numbers = true)]
    pub limit: u32,
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, QueueCommand, TopCommand};
    use clap::Parser;

    fn parse(line: &str) -> Result<QueueCommand, String> {
        match Cli::try_parse_from(line.split_whitespace()).map_err(|e| e.to_string())? {
            Cli {
                command: TopCommand::Queue(command),
                ..
            } => Ok(command),
            other => panic!("not a queue command: {other:?}"),
        }
    }

    /// Each queue command parses; a bad name or limit is refused naming it.
    #[test]
    fn queue_commands_parse() {
        assert!(matches!(
            parse("actionwurm queue list --json"),
            Ok(QueueCommand::List(flag)) if flag.json
        ));
        assert!(matches!(
            parse("actionwurm queue pause gpu"),
            Ok(QueueCommand::Pause(q)) if q.name == "gpu"
        ));
        assert!(matches!(
            parse("actionwurm queue resume gpu"),
            Ok(QueueCommand::Resume(q)) if q.name == "gpu"
        ));
        assert!(matches!(
            parse("actionwurm queue limit gpu 0"),
            Ok(QueueCommand::Limit(l)) if l.name == "gpu" && l.limit == 0
        ));
        let err = parse("actionwurm queue limit gpu -2").unwrap_err();
        assert!(
            err.contains("'-2'") && err.contains("0 (no limit)"),
            "{err}"
        );
        let err = parse("actionwurm queue pause a/b").unwrap_err();
        assert!(err.contains("`a/b` is not a queue name"), "{err}");
        assert!(parse("actionwurm queue limit gpu").is_err());
    }
}
