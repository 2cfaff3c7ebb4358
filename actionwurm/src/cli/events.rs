//! `actionwurm events`: the shape of the event log command.
//!
//! Every state change of a task and every worker joining, draining or leaving is an event with
//! a durable, increasing sequence number; this command prints them, one line (or one JSON
//! object) each, and with `--follow` goes on as they happen.

use super::values::parse_queue;
use clap::Args;

/// Where `events` starts: after a sequence number, or at the next event to happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// After this sequence number (the last one a watcher printed).
    Seq(u64),
    /// At the next event (only useful with `--follow`).
    Now,
}

/// Arguments of `events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Go on printing events as they happen, until interrupted.
    #[arg(short, long)]
    pub follow: bool,
    /// Start after this sequence number (the last one you saw: nothing is missed, nothing
    /// printed twice), or `now` for only events still to come; without it, start at the oldest
    /// event kept.
    #[arg(long, value_name = "SEQ", value_parser = parse_since)]
    pub since: Option<Since>,
    /// Only events of this task.
    #[arg(long, value_name = "ID")]
    pub task: Option<u64>,
    /// Only events of tasks of this queue.
    #[arg(long, value_name = "NAME", value_parser = parse_queue)]
    pub queue: Option<String>,
    /// Print one JSON object per line (JSON lines) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `--since`: a sequence number or `now`.
pub fn parse_since(text: &str) -> Result<Since, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("now") {
        return Ok(Since::Now);
    }
    text.parse().map(Since::Seq).map_err(|_| {
        format!(
            "`{text}` is not a sequence number; give the last one you saw, such as 1234, or `now`"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A number or `now`; anything else names what to give.
    #[test]
    fn since_values() {
        assert_eq!(parse_since("17"), Ok(Since::Seq(17)));
        assert_eq!(parse_since("NOW"), Ok(Since::Now));
        let err = parse_since("-3").unwrap_err();
        assert!(err.contains("`-3` is not a sequence number"), "{err}");
    }
}
