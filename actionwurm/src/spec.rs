//! Turning what a user typed for `task add` into the parts of its `TaskSpec`s, with errors that
//! show the fix.
//!
//! Used by `commands::task` before it sends anything, so that a typo fails at once and adds
//! nothing. Checks `FUNC`'s shape, that `--args` is a JSON array and `--kwargs` a JSON object;
//! `args_file` reads an `--args-file` of one JSON array per line (`compact` tells the lines that
//! can be sent as they are). Arguments are sent as compact JSON text, the form `TaskSpec`
//! carries. The policy flags (`--at-most-once`, `--retries`, `--backoff`, `--timeout`,
//! `--crash-limit`), already range-checked by `cli`, become the `TaskPolicy` that every task of
//! the add shares; `--delay`/`--at` become its `When`, and `--after` its
//! dependencies. `schedule add` builds the task of its firings the same way.

use crate::cli::{PolicyArgs, TimingArgs};
use anyhow::{bail, Result};
use serde_json::Value;
use tatzelwurm_proto::task::{TaskPolicy, When, MAX_AFTER};
use tatzelwurm_proto::TaskId;

pub mod args_file;
mod compact;

/// Checks that `func` is `package.module:function` or `path/to/file.py:function`, the two forms a
/// worker can import (proto's one rule, shared with the coordinator and the Python client), so
/// that a slip fails here rather than as a traceback on a worker.
pub fn check_function(func: &str) -> Result<()> {
    tatzelwurm_proto::function::check_function(func).map_err(anyhow::Error::msg)
}

/// The policy of every task of one `task add`, from its flags; seconds become milliseconds.
pub fn policy(args: &PolicyArgs) -> TaskPolicy {
    TaskPolicy {
        at_most_once: args.at_most_once,
        retries: args.retries,
        backoff_ms: millis(args.backoff),
        timeout_ms: args.timeout.map(millis),
        crash_limit: args.crash_limit,
    }
}

/// When the tasks of an add may start: `--delay` as a delay the coordinator counts from when
/// it adds them, `--at` as that moment, or at once.
pub fn run_at(timing: &TimingArgs) -> Option<When> {
    match (timing.delay, timing.at) {
        (Some(millis), _) => Some(When::Delay(millis)),
        (None, Some(at)) => Some(When::At(at)),
        (None, None) => None,
    }
}

/// `--after` as task ids, at most `MAX_AFTER` of them, each once.
pub fn after(timing: &TimingArgs) -> Result<Vec<TaskId>> {
    let mut ids: Vec<u64> = timing.after.clone();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() > MAX_AFTER {
        bail!(
            "--after names {} tasks, more than the {MAX_AFTER} one task may run after; chain through a task that runs after some of them",
            ids.len()
        );
    }
    Ok(ids.into_iter().map(TaskId).collect())
}

/// Seconds as whole milliseconds, rounded, and never 0: `cli` accepts only positive seconds,
/// and a backoff or timeout of 0 ms would mean something else than what was asked for.
fn millis(secs: f64) -> u64 {
    ((secs * 1000.0).round() as u64).max(1)
}

/// `--args` as compact JSON text; `[]` when not given.
pub fn parse_args(text: Option<&str>) -> Result<String> {
    parse_json(
        text,
        "--args",
        "a JSON array",
        "'[1, \"a\"]'",
        Value::is_array,
    )
    .map(|value| value.map_or_else(|| "[]".into(), |v| v.to_string()))
}

/// `--kwargs` as compact JSON text; `{}` when not given.
pub fn parse_kwargs(text: Option<&str>) -> Result<String> {
    parse_json(
        text,
        "--kwargs",
        "a JSON object",
        "'{\"n\": 3}'",
        Value::is_object,
    )
    .map(|value| value.map_or_else(|| "{}".into(), |v| v.to_string()))
}

/// Parses a flag's JSON and checks its kind; the error names the flag, what it must be, and an
/// example.
fn parse_json(
    text: Option<&str>,
    flag: &str,
    must_be: &str,
    example: &str,
    is_right_kind: fn(&Value) -> bool,
) -> Result<Option<Value>> {
    let Some(text) = text else {
        return Ok(None);
    };
    match serde_json::from_str::<Value>(text) {
        Ok(value) if is_right_kind(&value) => Ok(Some(value)),
        Ok(other) => bail!(
            "{flag} is not {must_be}: it is {}; for example {flag} {example}",
            kind_of(&other)
        ),
        Err(err) => bail!("{flag} is not {must_be}: {err}; for example {flag} {example}"),
    }
}

/// "a JSON object", "a string", ...: what was given instead of what was asked for.
fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, TaskCommand, TopCommand};
    use clap::Parser;
    use tatzelwurm_proto::task::DEFAULT_CRASH_LIMIT;

    fn policy_of(line: &str) -> TaskPolicy {
        let cli = Cli::try_parse_from(line.split_whitespace()).unwrap();
        let TopCommand::Task(TaskCommand::Add(args)) = cli.command else {
            panic!("not an add");
        };
        policy(&args.policy)
    }

    /// No flags give proto's default policy; each flag lands in its field, seconds as
    /// milliseconds.
    #[test]
    fn policy_from_flags() {
        assert_eq!(policy_of("actionwurm task add m:f"), TaskPolicy::default());
        assert_eq!(
            policy_of(
                "actionwurm task add m:f --at-most-once --retries 3 --backoff 0.1 --timeout 2.5"
            ),
            TaskPolicy {
                at_most_once: true,
                retries: 3,
                backoff_ms: 100,
                timeout_ms: Some(2_500),
                crash_limit: DEFAULT_CRASH_LIMIT,
            }
        );
        assert_eq!(
            policy_of("actionwurm task add m:f --crash-limit 1 --timeout 3600").crash_limit,
            1
        );
    }

    /// Seconds round to the nearest millisecond, and a tiny positive value is not read as 0.
    #[test]
    fn seconds_become_milliseconds() {
        assert_eq!(millis(1.0), 1_000);
        assert_eq!(millis(0.1), 100);
        assert_eq!(millis(2.5), 2_500);
        assert_eq!(millis(0.0004), 1);
        assert_eq!(millis(1e9), 1_000_000_000_000);
    }

    /// proto's rule is the one applied: a bad name fails with its sentence.
    #[test]
    fn function_rule_is_protos() {
        assert!(check_function("examples.words:count").is_ok());
        let err = check_function("count").unwrap_err().to_string();
        assert!(err.contains("package.module:function"), "{err}");
    }

    /// Arguments are re-encoded compactly; defaults are the empty array and object.
    #[test]
    fn args_and_kwargs_are_compact_json() {
        assert_eq!(parse_args(None).unwrap(), "[]");
        assert_eq!(
            parse_args(Some("[1, \"a\", {\"b\": null}]")).unwrap(),
            r#"[1,"a",{"b":null}]"#
        );
        assert_eq!(parse_kwargs(None).unwrap(), "{}");
        assert_eq!(parse_kwargs(Some("{\"n\": 3}")).unwrap(), r#"{"n":3}"#);
    }

    /// Bad `--args` says what is wrong and shows a correct example.
    #[test]
    fn bad_args_explain_themselves() {
        let err = parse_args(Some("[1,")).unwrap_err().to_string();
        assert!(err.starts_with("--args is not a JSON array: "), "{err}");
        assert!(err.ends_with("for example --args '[1, \"a\"]'"), "{err}");
        let err = parse_args(Some("{\"a\": 1}")).unwrap_err().to_string();
        assert!(err.contains("it is an object"), "{err}");
        let err = parse_kwargs(Some("[1]")).unwrap_err().to_string();
        assert!(
            err.starts_with("--kwargs is not a JSON object: it is an array"),
            "{err}"
        );
    }

    /// A bad line names the file and its line number, counting blank lines.
    #[test]
    fn bad_args_file_line_is_located() {
        let err = args_file::args("jobs.txt", "[1]\n\n{\"a\":1}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("jobs.txt line 3 is not a JSON array: it is an object"),
            "{err}"
        );
        assert!(err.ends_with("; nothing was added"), "{err}");
        let err = args_file::args("jobs.txt", "[1]\nnope\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("jobs.txt line 2 is not a JSON array: "),
            "{err}"
        );
        let err = args_file::args("jobs.txt", "\n \n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("has no tasks"), "{err}");
    }

    fn timing_of(line: &str) -> TimingArgs {
        let cli = Cli::try_parse_from(line.split_whitespace()).unwrap();
        let TopCommand::Task(TaskCommand::Add(args)) = cli.command else {
            panic!("not an add");
        };
        args.timing
    }

    /// `--delay` is sent as a delay, `--at` as a moment, nothing as nothing; `--after` ids
    /// are sorted and each named once.
    #[test]
    fn timing_from_flags() {
        use tatzelwurm_proto::task::Timestamp;
        assert_eq!(run_at(&timing_of("actionwurm task add m:f")), None);
        assert_eq!(
            run_at(&timing_of("actionwurm task add m:f --delay 1h30m")),
            Some(When::Delay(5_400_000))
        );
        assert_eq!(
            run_at(&timing_of(
                "actionwurm task add m:f --at 2026-12-01T09:00:00Z"
            )),
            Some(When::At(Timestamp(1_796_115_600_000)))
        );
        let ids = after(&timing_of("actionwurm task add m:f --after 3,1 --after 3")).unwrap();
        assert_eq!(ids, vec![TaskId(1), TaskId(3)]);
        let many: Vec<String> = (0..=MAX_AFTER as u64).map(|n| n.to_string()).collect();
        let line = format!("actionwurm task add m:f --after {}", many.join(","));
        let err = after(&timing_of(&line)).unwrap_err().to_string();
        assert!(err.contains("more than the 1000"), "{err}");
    }

    /// A missing file is named in the error.
    #[test]
    fn missing_args_file_is_named() {
        let err = args_file::read(std::path::Path::new("/nonexistent/jobs.txt")).unwrap_err();
        assert!(
            format!("{err:#}").starts_with("cannot read --args-file /nonexistent/jobs.txt: "),
            "{err:#}"
        );
    }
}
