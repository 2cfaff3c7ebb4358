//! Finding the user's Python and checking, once at start, that it runs.
//!
//! `cli` resolves `--python` (or the `python3` on PATH) to an absolute path without following
//! symlinks: a virtualenv's `bin/python3` is a symlink, and only through that path does Python
//! find the venv's packages. `lib::run_until` probes it before anything else, so that a missing or
//! broken interpreter is one clear sentence at start instead of slots failing in a loop.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use thiserror::Error;

/// The interpreter used when `--python` is not given, looked up on PATH.
pub const DEFAULT_PYTHON: &str = "python3";

/// How long the probe may take (a cold start of a big venv on a slow disk is seconds, not this).
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the interpreter cannot be used. Each reads as one sentence that says what to do.
#[derive(Debug, Error)]
pub enum InterpreterError {
    /// No such program in any PATH directory.
    #[error("cannot find {name} on PATH; install Python 3 or pass --python PATH")]
    NotOnPath {
        /// The program looked for.
        name: String,
    },
    /// The program could not be started at all.
    #[error("cannot run Python at {path}: {error}; install Python 3 or pass --python PATH")]
    CannotRun {
        /// The interpreter.
        path: String,
        /// Why it did not start.
        error: String,
    },
    /// It started but failed, or printed no version.
    #[error("Python at {path} did not work ({detail}); fix it or pass --python PATH")]
    Broken {
        /// The interpreter.
        path: String,
        /// Its exit status and what it wrote on stderr.
        detail: String,
    },
    /// It is a Python 2 (or something else that answered).
    #[error("workwurm needs Python 3, but {path} is Python {version}; pass --python PATH")]
    NotPython3 {
        /// The interpreter.
        path: String,
        /// The version it reported.
        version: String,
    },
}

/// The absolute path of the interpreter to use: `given` made absolute against the working
/// directory when it contains a `/`, else the first executable of that name on PATH.
pub fn resolve(given: Option<&Path>) -> Result<PathBuf, InterpreterError> {
    let given = given.unwrap_or(Path::new(DEFAULT_PYTHON));
    if given.components().count() > 1 || given.is_absolute() {
        return std::path::absolute(given).map_err(|e| InterpreterError::CannotRun {
            path: given.display().to_string(),
            error: e.to_string(),
        });
    }
    let not_found = || InterpreterError::NotOnPath {
        name: given.display().to_string(),
    };
    let path = std::env::var_os("PATH").ok_or_else(not_found)?;
    std::env::split_paths(&path)
        .map(|dir| {
            if dir.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                dir
            }
        })
        .map(|dir| dir.join(given))
        .find(|candidate| is_executable(candidate))
        .and_then(|found| std::path::absolute(found).ok())
        .ok_or_else(not_found)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs the interpreter once and returns its version, such as `3.11.7`.
pub async fn probe(python: &Path) -> Result<String, InterpreterError> {
    let path = python.display().to_string();
    let run = tokio::process::Command::new(python)
        .args(["-c", "import sys; print(sys.version.split()[0])"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(PROBE_TIMEOUT, run).await {
        Ok(Ok(output)) => output,
        Ok(Err(err)) => {
            return Err(InterpreterError::CannotRun {
                path,
                error: err.to_string(),
            })
        }
        Err(_) => {
            return Err(InterpreterError::Broken {
                path,
                detail: format!("no answer within {} s", PROBE_TIMEOUT.as_secs()),
            })
        }
    };
    let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() || version.is_empty() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr = stderr.trim();
        return Err(InterpreterError::Broken {
            path,
            detail: if stderr.is_empty() {
                output.status.to_string()
            } else {
                format!("{}: {stderr}", output.status)
            },
        });
    }
    if !version.starts_with("3.") {
        return Err(InterpreterError::NotPython3 { path, version });
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A missing interpreter is one sentence naming the path and the way out.
    #[tokio::test]
    async fn missing_python_is_one_clear_sentence() {
        let err = probe(Path::new("/nonexistent/python3")).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("cannot run Python at /nonexistent/python3: No such file"),
            "{text}"
        );
        assert!(
            text.ends_with("install Python 3 or pass --python PATH"),
            "{text}"
        );
    }

    /// The python3 on PATH is found, kept unresolved (no symlinks followed), and reports 3.x.
    #[tokio::test]
    async fn python_on_path_answers_with_its_version() {
        let python = resolve(None).unwrap();
        assert!(python.is_absolute());
        assert!(python.ends_with(DEFAULT_PYTHON));
        let version = probe(&python).await.unwrap();
        assert!(version.starts_with("3."), "{version}");
    }

    /// A relative --python is made absolute against the working directory, not looked up.
    #[test]
    fn relative_python_becomes_absolute() {
        let python = resolve(Some(Path::new("venv/bin/python3"))).unwrap();
        assert_eq!(
            python,
            std::env::current_dir().unwrap().join("venv/bin/python3")
        );
    }
}
