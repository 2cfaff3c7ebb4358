//! Reading an `--args-file`: one JSON array per line, each the arguments of one task, all
//! checked before anything is sent.
//!
//! `task add` reads the file, then checks it a slice of lines at a time (`Check::step`) while
//! it connects, and cuts the arguments into adds only once every line has passed. A line
//! already in compact form (`spec::compact`), as a program usually writes it, is kept as a
//! slice of the file's text; any other line is parsed into a `serde_json::Value` and re-encoded,
//! which is also what words the error of a bad line. So the arguments of 10^6 tasks are the file
//! and a `Cow` per line, not 10^6 `TaskSpec`s: those are built one add at a time.

use super::{compact, kind_of};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::borrow::Cow;
use std::iter::Enumerate;
use std::path::Path;
use std::str::Lines;

/// The text of an `--args-file`; the error names the file.
pub fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --args-file {}", path.display()))
}

/// Every task's arguments in `text`, one per non-blank line in order, as compact JSON text;
/// `name` is how errors call the file. One bad line fails the whole file, so that nothing is
/// added half-way.
pub fn args<'a>(name: &str, text: &'a str) -> Result<Vec<Cow<'a, str>>> {
    Check::new(name, text).finish()
}

/// The check of an args file, resumable: `step` checks a number of lines and returns, so that
/// the caller can do something else (connect) between slices.
pub struct Check<'a> {
    /// The file as errors call it.
    name: String,
    /// The lines not checked yet, with their indexes (blank lines count).
    lines: Enumerate<Lines<'a>>,
    /// The arguments of the lines checked so far.
    args: Vec<Cow<'a, str>>,
}

impl<'a> Check<'a> {
    /// A check of `text` that has not begun; room for its arguments is reserved for a task
    /// per line, so that the list is never copied as it grows.
    pub fn new(name: &str, text: &'a str) -> Check<'a> {
        let lines = text.bytes().filter(|&b| b == b'\n').count() + 1;
        Check {
            name: name.to_string(),
            lines: text.lines().enumerate(),
            args: Vec::with_capacity(lines),
        }
    }

    /// Checks up to `most` more lines; `Ok(true)` once every line is checked, an error naming
    /// the first bad line.
    pub fn step(&mut self, most: usize) -> Result<bool> {
        let mut taken = 0;
        for (index, line) in self.lines.by_ref().take(most) {
            taken += 1;
            if line.trim().is_empty() {
                continue;
            }
            if compact::is_compact_array(line) {
                self.args.push(Cow::Borrowed(line));
                continue;
            }
            let args = args_line(line).map_err(|why| {
                anyhow::anyhow!(
                    "{} line {} is not a JSON array: {why}; write one array of arguments per line, such as [1, \"a\"]; nothing was added",
                    self.name,
                    index + 1
                )
            })?;
            self.args.push(Cow::Owned(args));
        }
        Ok(taken < most)
    }

    /// Checks the lines left and returns every task's arguments; an error if a line is bad or
    /// the file holds no task.
    pub fn finish(mut self) -> Result<Vec<Cow<'a, str>>> {
        self.step(usize::MAX)?;
        if self.args.is_empty() {
            bail!(
                "{} has no tasks: every line is blank; write one JSON array of arguments per line",
                self.name
            );
        }
        Ok(self.args)
    }
}

/// A line that is not already compact: re-encoded through `Value`, or why it is no array.
fn args_line(line: &str) -> std::result::Result<String, String> {
    match serde_json::from_str::<Value>(line) {
        Ok(value @ Value::Array(_)) => Ok(value.to_string()),
        Ok(other) => Err(format!("it is {}", kind_of(&other))),
        Err(err) => Err(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each non-blank line is one task's arguments, kept when compact, re-encoded otherwise.
    #[test]
    fn lines_become_arguments() {
        let text = "[1]\n\n  \n[\"two\", 2]\r\n[]\n[{\"b\":1,\"a\":2}]";
        let args = args("jobs.txt", text).unwrap();
        assert_eq!(
            args,
            vec!["[1]", r#"["two",2]"#, "[]", r#"[{"a":2,"b":1}]"#]
        );
        assert!(matches!(args[0], Cow::Borrowed(_)));
        assert!(matches!(args[1], Cow::Owned(_)));
    }

    /// A random JSON value, sometimes with whitespace between its tokens.
    fn random_value(rng: &mut fastrand::Rng, depth: usize) -> String {
        const ATOMS: [&str; 16] = [
            "0",
            "7",
            "-1",
            "18446744073709551615",
            "18446744073709551616",
            "1.5",
            "-0",
            "1e3",
            "\"a\"",
            "\"a b\"",
            "\"\\u0041\"",
            "\"é\"",
            "\"\\n\"",
            "true",
            "false",
            "null",
        ];
        let space = |rng: &mut fastrand::Rng| if rng.usize(..6) == 0 { " " } else { "" };
        match rng.usize(..10) {
            0..=3 if depth < 3 => {
                let items: Vec<String> = (0..rng.usize(..4))
                    .map(|_| format!("{}{}", space(rng), random_value(rng, depth + 1)))
                    .collect();
                format!("[{}{}]", items.join(","), space(rng))
            }
            4 if depth < 3 => format!("{{\"k\":{}}}", random_value(rng, depth + 1)),
            _ => ATOMS[rng.usize(..ATOMS.len())].to_string(),
        }
    }

    /// On random lines (arrays mostly, some other values, some cut or spoiled), the check gives
    /// what the `Value` path alone gives: the same text for a good line, the same error for a
    /// bad one.
    #[test]
    fn same_as_reencoding_every_line() {
        let mut rng = fastrand::Rng::with_seed(0x9e37_79b9_7f4a_7c15);
        let (mut kept, mut reencoded, mut refused) = (0, 0, 0);
        for _ in 0..20_000 {
            let mut line = random_value(&mut rng, 0);
            if !line.starts_with('[') && rng.usize(..2) == 0 {
                line = format!("[{line}]");
            }
            let mut at = rng.usize(..line.len() + 1);
            while !line.is_char_boundary(at) {
                at -= 1;
            }
            match rng.usize(..12) {
                0 => line.insert_str(at, ",]x{"),
                1 => line.truncate(at),
                2 => line.push(' '),
                _ => {}
            }
            if line.trim().is_empty() {
                continue;
            }
            let old = args_line(&line).map_err(|why| {
                format!(
                    "f line 1 is not a JSON array: {why}; write one array of arguments per line, such as [1, \"a\"]; nothing was added"
                )
            });
            let new = args("f", &line).map_err(|err| err.to_string());
            match &new {
                Ok(args) if matches!(args[0], Cow::Borrowed(_)) => kept += 1,
                Ok(_) => reencoded += 1,
                Err(_) => refused += 1,
            }
            let new = new.map(|args| args[0].to_string());
            assert_eq!(new, old, "{line}");
        }
        assert!(
            kept > 2_000 && reencoded > 2_000 && refused > 2_000,
            "{kept} {reencoded} {refused}"
        );
    }

    /// Checked a few lines at a time, the file gives the same arguments, and a bad line is
    /// found in the step that reaches it.
    #[test]
    fn steps_check_the_same_lines() {
        let text: String = (0..10).map(|i| format!("[{i}, {i}]\n")).collect();
        let mut check = Check::new("f", &text);
        let mut steps = 1;
        while !check.step(3).unwrap() {
            steps += 1;
        }
        assert_eq!(steps, 4);
        assert_eq!(check.finish().unwrap(), args("f", &text).unwrap());
        let mut check = Check::new("f", "[1]\n[2]\n[3]\n{}\n");
        assert!(!check.step(3).unwrap());
        let err = check.step(3).unwrap_err().to_string();
        assert!(
            err.starts_with("f line 4 is not a JSON array: it is an object"),
            "{err}"
        );
    }
}
