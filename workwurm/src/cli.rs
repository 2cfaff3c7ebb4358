//! The command line: what a user can say to `workwurm`, and the settled `Config` it becomes.
//!
//! `main` parses [`Args`] and turns them into a [`Config`] with every default filled in and every
//! path made absolute; `lib::run` takes it from there. Nothing later reads the environment or the
//! working directory to decide a setting.

use crate::interpreter;
use anyhow::{bail, Context};
use clap::Parser;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;
use tatzelwurm_proto::handshake::token_from_env;
use tatzelwurm_proto::{seconds, COORDINATOR_ENV, DEFAULT_COORDINATOR};

/// workwurm: the tatzelwurm worker. Runs Python tasks from the coordinator in slot processes of
/// your own Python interpreter.
///
/// Set TATZELWURM_TOKEN if the coordinator has a token.
#[derive(Debug, Parser)]
#[command(name = "workwurm", version)]
pub struct Args {
    /// Address of the coordinator.
    #[arg(long, value_name = "ADDR", env = COORDINATOR_ENV, default_value = DEFAULT_COORDINATOR)]
    pub coordinator: String,
    /// How many tasks to run at once, each in its own Python process.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub slots: u32,
    /// A directory to put on the tasks' sys.path (after the working directory); repeatable.
    #[arg(long = "path", value_name = "DIR")]
    pub paths: Vec<PathBuf>,
    /// Name shown in `actionwurm worker list` [default: hostname:pid].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The Python interpreter to run tasks with [default: the python3 on PATH].
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// On the first SIGTERM or ctrl-c, let running tasks finish for up to this long before
    /// stopping them (0: stop them at once); a second signal stops at once.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0, value_parser = seconds::non_negative)]
    pub drain_timeout: f64,
}

/// Everything `run` needs, settled: defaults applied and paths absolute.
#[derive(Debug, Clone)]
pub struct Config {
    /// The coordinator's address.
    pub coordinator: String,
    /// How many slots (at least 1).
    pub slots: u32,
    /// Absolute directories to put on the tasks' sys.path.
    pub paths: Vec<PathBuf>,
    /// This worker's name.
    pub name: String,
    /// Absolute path of the interpreter, symlinks kept as given.
    pub python: PathBuf,
    /// How long the first SIGTERM or ctrl-c lets running tasks finish; zero stops at once.
    pub drain_timeout: Duration,
    /// The coordinator's token, from `TATZELWURM_TOKEN` (not a flag: it would show in `ps`).
    pub token: Option<String>,
}

impl Args {
    /// Fills in the defaults and resolves the paths; errors are one sentence for the user.
    pub fn into_config(self) -> anyhow::Result<Config> {
        let python = interpreter::resolve(self.python.as_deref())?;
        let mut paths = Vec::new();
        for dir in self.paths {
            let absolute = std::path::absolute(&dir)
                .with_context(|| format!("cannot make --path {} absolute", dir.display()))?;
            if !absolute.is_dir() {
                bail!("--path {} is not a directory", dir.display());
            }
            if absolute.as_os_str().as_encoded_bytes().contains(&b':') {
                bail!(
                    "--path {} contains ':', which Python's path list cannot carry",
                    dir.display()
                );
            }
            paths.push(absolute);
        }
        let name = self
            .name
            .unwrap_or_else(|| format!("{}:{}", hostname(), std::process::id()));
        Ok(Config {
            coordinator: self.coordinator,
            slots: self.slots,
            paths,
            name,
            python,
            drain_timeout: Duration::from_secs_f64(self.drain_timeout),
            token: token_from_env(),
        })
    }
}

impl Config {
    /// The `--path` dirs joined with `:`, as slot.py reads them.
    pub fn extra_path(&self) -> OsString {
        let mut joined = OsString::new();
        for (i, dir) in self.paths.iter().enumerate() {
            if i > 0 {
                joined.push(":");
            }
            joined.push(dir);
        }
        joined
    }
}

/// This machine's name, for the default worker name; `localhost` if it cannot be read.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        let name = String::from_utf8_lossy(&buf[..end]).trim().to_string();
        if !name.is_empty() {
            return name;
        }
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("workwurm").chain(args.iter().copied()))
    }

    /// Defaults: one slot, hostname:pid, and --path dirs made absolute and joined for slot.py.
    #[test]
    fn defaults_and_paths() {
        let dir = tempfile::tempdir().unwrap();
        let args = parse(&["--path", dir.path().to_str().unwrap(), "--path", "."]).unwrap();
        let config = args.into_config().unwrap();
        assert_eq!(config.slots, 1);
        assert_eq!(
            config.name,
            format!("{}:{}", hostname(), std::process::id())
        );
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(config.paths, [dir.path().to_path_buf(), cwd.clone()]);
        assert_eq!(
            config.extra_path(),
            OsString::from(format!("{}:{}", dir.path().display(), cwd.display()))
        );
    }

    /// Zero slots and a missing --path dir are refused up front.
    #[test]
    fn refuses_bad_values() {
        assert!(parse(&["--slots", "0"]).is_err());
        let err = parse(&["--path", "/nonexistent/dir"])
            .unwrap()
            .into_config()
            .unwrap_err();
        assert!(err.to_string().contains("is not a directory"), "{err}");
    }
}
