//! `Outcome`: what a command has to say and how the process should exit.
//!
//! Commands return an `Outcome` instead of printing, so that tests can read exactly what a
//! user would see; `output::emit` is the one place that writes it to the terminal.

/// How the process ends; the codes are part of the contract scripts rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: everything asked for happened.
    Success,
    /// 1: an error, or some tasks were not changed or did not complete.
    Failure,
    /// 2: `task wait --timeout` expired first.
    TimedOut,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::TimedOut => 2,
        }
    }
}

/// Text for stdout, sentences for stderr, and the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Written to stdout as it is: the data a script reads (ids, a table, JSON).
    pub stdout: String,
    /// Written to stderr one per line, each prefixed `actionwurm: `.
    pub stderr: Vec<String>,
    /// How the process exits.
    pub exit: Exit,
}

impl Outcome {
    /// Success with this text on stdout.
    pub fn success(stdout: String) -> Outcome {
        Outcome {
            stdout,
            stderr: Vec::new(),
            exit: Exit::Success,
        }
    }

    /// Failure with one sentence on stderr and nothing on stdout.
    pub fn error(sentence: String) -> Outcome {
        Outcome {
            stdout: String::new(),
            stderr: vec![sentence],
            exit: Exit::Failure,
        }
    }
}
