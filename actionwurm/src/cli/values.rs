//! The value parsers of the command line: each turns one flag's text into its value or into
//! the reason it is wrong, which clap shows as "invalid value 'X' for '--flag <N>': REASON".
//!
//! Spans and times are `when`'s; queue and schedule names follow proto's one naming rule,
//! shared with the coordinator and the Python client.

use crate::when;
use tatzelwurm_proto::task::{check_priority, Timestamp, DEFAULT_CRASH_LIMIT, PRIORITIES};

/// `--retries`: a whole number, zero or more.
pub fn parse_retries(text: &str) -> Result<u32, String> {
    text.trim()
        .parse::<u32>()
        .map_err(|_| "must be a whole number of 0 or more, such as 3".into())
}

/// `--crash-limit`: a whole number, at least 1 (a limit of 0 would fail a task before it ran).
pub fn parse_crash_limit(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(limit) if limit >= 1 => Ok(limit),
        _ => Err(format!(
            "must be a whole number of 1 or more, such as {DEFAULT_CRASH_LIMIT}"
        )),
    }
}

/// `--priority`: a whole number within `PRIORITIES`; out of range, the sentence the
/// coordinator and the Python client give (`check_priority`).
pub fn parse_priority(text: &str) -> Result<i8, String> {
    match text.trim().parse::<i64>() {
        Ok(n) => check_priority(n),
        Err(_) => Err(format!(
            "must be a whole number from {} to {} (higher runs first), such as 10",
            PRIORITIES.start(),
            PRIORITIES.end()
        )),
    }
}

/// `--queue` (and a queue's name in `queue pause|resume|limit`): proto's naming rule.
pub fn parse_queue(text: &str) -> Result<String, String> {
    tatzelwurm_proto::queue::check_name(text)?;
    Ok(text.to_string())
}

/// A schedule's name: proto's naming rule.
pub fn parse_schedule_name(text: &str) -> Result<String, String> {
    tatzelwurm_proto::schedule::check_name(text)?;
    Ok(text.to_string())
}

/// `--delay`: a span, in milliseconds.
pub fn parse_delay(text: &str) -> Result<u64, String> {
    when::parse_span(text)
}

/// `--every`: a span of at least a second, in milliseconds.
pub fn parse_every(text: &str) -> Result<u64, String> {
    when::parse_every(text)
}

/// `--at`: an RFC 3339 moment.
pub fn parse_at(text: &str) -> Result<Timestamp, String> {
    when::parse_time(text)
}

/// `queue limit NAME N`: a whole number, 0 (no limit) or more.
pub fn parse_limit(text: &str) -> Result<u32, String> {
    text.trim()
        .parse::<u32>()
        .map_err(|_| "must be a whole number of 0 (no limit) or more, such as 4".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bounds of the priority range pass; beyond them, or not a whole number, fails with
    /// the range in the sentence.
    #[test]
    fn priorities() {
        for (text, n) in [("100", 100), ("-100", -100), ("0", 0), (" 7 ", 7)] {
            assert_eq!(parse_priority(text), Ok(n), "{text}");
        }
        for bad in ["101", "-101", "1000"] {
            let err = parse_priority(bad).unwrap_err();
            assert_eq!(
                err,
                check_priority(bad.parse().unwrap()).unwrap_err(),
                "{bad}"
            );
            assert!(err.contains("use -100 to 100"), "{bad}: {err}");
        }
        for bad in ["high", "1.5", "99999999999999999999"] {
            let err = parse_priority(bad).unwrap_err();
            assert!(err.contains("from -100 to 100"), "{bad}: {err}");
        }
    }

    /// A queue name outside the alphabet is refused with proto's sentence, naming it.
    #[test]
    fn queue_names() {
        assert_eq!(parse_queue("gpu-jobs"), Ok("gpu-jobs".into()));
        let err = parse_queue("a b").unwrap_err();
        assert!(err.contains("`a b` is not a queue name"), "{err}");
        let err = parse_schedule_name("x/y").unwrap_err();
        assert!(err.contains("not a schedule name"), "{err}");
    }

    /// A limit is 0 or more.
    #[test]
    fn limits() {
        assert_eq!(parse_limit("0"), Ok(0));
        assert_eq!(parse_limit("12"), Ok(12));
        assert!(parse_limit("-1").unwrap_err().contains("0 (no limit)"));
    }
}
