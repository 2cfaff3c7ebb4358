//! The command line: what a user can say to `workwurm`, and the settled `Config` it becomes.
//!
//! `main` (in `entry`) parses [`Args`] and turns them, with the [`Launch`] of whoever started
//! workwurm, into a [`Config`] with every default filled in and every path made absolute;
//! `lib::run` takes it from there. Nothing later reads the environment or the working directory
//! to decide a setting.

use crate::interpreter;
use crate::slot_process::SlotProgram;
use anyhow::{bail, Context};
use clap::Parser;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;
use tatzelwurm_proto::handshake::{token_from_env, MAX_WORKER_QUEUES};
use tatzelwurm_proto::task::DEFAULT_QUEUE;
use tatzelwurm_proto::tls::ClientTls;
use tatzelwurm_proto::{seconds, COORDINATOR_ENV, DEFAULT_COORDINATOR};

/// What the program that calls [`crate::main`] knows better than the command line: the cargo
/// binary passes `Launch::default()`, the Python package its own interpreter and slot module.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Launch {
    /// The interpreter when `--python` is not given (the package: `sys.executable`, a venv's
    /// python kept as a symlink); `None`: the `python3` on PATH.
    pub default_python: Option<PathBuf>,
    /// The module that is the slot loop in that interpreter (the package: `tatzelwurm.slot`),
    /// run as `PYTHON -m MODULE`; `None`, or a `--python` given, runs the slot loop carried in
    /// this binary with `-c`.
    pub slot_module: Option<String>,
}

/// workwurm: the tatzelwurm worker. Runs Python tasks from the coordinator in slot processes of
/// your own Python interpreter.
///
/// Set TATZELWURM_TOKEN if the coordinator has a token.
#[derive(Debug, Parser)]
#[command(name = "workwurm", version)]
pub struct Args {
    /// Address of the coordinator (HOST:PORT).
    #[arg(long, value_name = "ADDR", env = COORDINATOR_ENV, default_value = DEFAULT_COORDINATOR,
          value_parser = tatzelwurm_proto::address::check_coordinator_address)]
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
    /// Leave the processes a task started running when the task ends (they end with its slot).
    /// By default they are killed then, as a kill or a timeout of the task kills them; a process
    /// that left the slot's process group (start_new_session=True, setsid) is never touched.
    #[arg(long)]
    pub keep_children: bool,
    /// A queue to take tasks from; repeatable, so one worker can serve several queues
    /// [default: default].
    #[arg(long = "queue", value_name = "NAME", value_parser = queue_name)]
    pub queues: Vec<String>,
    /// How many tasks of an `async def` function one slot runs at once, on its event loop.
    /// Each such task counts as 1/N of a slot, so the coordinator hands this worker up to
    /// slots x N of them.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=MAX_ASYNC_CONCURRENCY as i64))]
    pub async_concurrency: u32,
    /// Do not reload your code when its source files change: the modules a slot imported stay
    /// as they were until the slot ends. By default a slot notices a changed source file within
    /// about a second and imports your modules afresh for its next task.
    #[arg(long)]
    pub no_reload: bool,
    /// Replace a slot whose resident memory (RSS) is past this many MB (MiB) after a task (the
    /// task's result stands), and kill one that stays past it while a task runs (measured ten
    /// times a second, past it twice in a row): that task fails with `MemoryLimit` and is
    /// retried as any failure is [default: no limit].
    #[arg(long, value_name = "MB",
          value_parser = clap::value_parser!(u64).range(1..=MAX_MEMORY_MB))]
    pub max_memory: Option<u64>,
    /// Connect to the coordinator over TLS, trusting the system's root certificates (or
    /// --tls-ca); also TATZELWURM_TLS=1.
    #[arg(long)]
    pub tls: bool,
    /// Connect over TLS and trust only the CA certificate (PEM) in FILE; also
    /// TATZELWURM_TLS_CA=FILE.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// How log lines are written to stderr: text for people, json (one object per line) for
    /// log collectors.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written (`--log-format`), as the coordinator's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event, coloured on a terminal.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The largest `--max-memory`, in MiB (1 PiB): past it the number is a typo.
pub const MAX_MEMORY_MB: u64 = 1 << 30;

/// Bytes in one MB as `--max-memory` counts them (a MiB, as `ps` and `top` count).
pub const MB: u64 = 1024 * 1024;

/// The most tasks one slot runs at once on its event loop (`--async-concurrency`).
pub const MAX_ASYNC_CONCURRENCY: u32 = 10_000;

/// clap's check of a `--queue` name: proto's naming rule, in its one sentence.
fn queue_name(name: &str) -> Result<String, String> {
    tatzelwurm_proto::queue::check_name(name)?;
    Ok(name.to_string())
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
    /// How the slots start the slot loop in it.
    pub program: SlotProgram,
    /// Leave a task's leftover processes running when it ends.
    pub keep_children: bool,
    /// How long the first SIGTERM or ctrl-c lets running tasks finish; zero stops at once.
    pub drain_timeout: Duration,
    /// The coordinator's token, from `TATZELWURM_TOKEN` (not a flag: it would show in `ps`).
    pub token: Option<String>,
    /// The queues this worker serves, in the order given, without repeats; never empty.
    pub queues: Vec<String>,
    /// How many tasks of a coroutine function one slot runs at once (at least 1).
    pub async_concurrency: u32,
    /// Whether slots import changed source files afresh (hot reload; off with `--no-reload`).
    pub reload: bool,
    /// `--max-memory` in bytes: the resident memory past which a slot is replaced (after a
    /// task) or killed (during one); `None`: no limit.
    pub max_memory: Option<u64>,
    /// How to reach the coordinator over TLS (`--tls`, `--tls-ca`, `TATZELWURM_TLS`,
    /// `TATZELWURM_TLS_CA`); `None`: plain TCP.
    pub tls: Option<ClientTls>,
}

impl Args {
    /// Fills in the defaults (from `launch` where it has them) and resolves the paths; errors are
    /// one sentence for the user.
    pub fn into_config(self, launch: Launch) -> anyhow::Result<Config> {
        // A --python of the user's own runs the carried slot loop: the package need not be
        // installed in that interpreter.
        let (python, program) = match self.python {
            Some(given) => (interpreter::resolve(Some(&given))?, SlotProgram::Carried),
            None => (
                interpreter::resolve(launch.default_python.as_deref())?,
                launch
                    .slot_module
                    .map_or(SlotProgram::Carried, SlotProgram::Module),
            ),
        };
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
        let mut queues: Vec<String> = Vec::new();
        for queue in self.queues {
            if !queues.contains(&queue) {
                queues.push(queue);
            }
        }
        if queues.is_empty() {
            queues.push(DEFAULT_QUEUE.to_string());
        }
        if queues.len() > MAX_WORKER_QUEUES {
            bail!(
                "a worker may serve at most {MAX_WORKER_QUEUES} queues, not {}; start more workers",
                queues.len()
            );
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
            program,
            keep_children: self.keep_children,
            drain_timeout: Duration::from_secs_f64(self.drain_timeout),
            token: token_from_env(),
            queues,
            async_concurrency: self.async_concurrency,
            reload: !self.no_reload,
            max_memory: self.max_memory.map(|mb| mb * MB),
            // Flags win; the environment fills in what they leave open. A broken setting is
            // refused here, never a quiet fall back to plain text.
            tls: ClientTls::from_flags(self.tls, self.tls_ca.as_deref())
                .map_err(|sentence| anyhow::anyhow!(sentence))?,
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
    use std::path::Path;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("workwurm").chain(args.iter().copied()))
    }

    /// Defaults: one slot, hostname:pid, and --path dirs made absolute and joined for slot.py.
    #[test]
    fn defaults_and_paths() {
        let dir = tempfile::tempdir().unwrap();
        let args = parse(&["--path", dir.path().to_str().unwrap(), "--path", "."]).unwrap();
        let config = args.into_config(Launch::default()).unwrap();
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

    /// The package's launch runs its slot module in its own interpreter, a symlink kept as given;
    /// a --python of the user's runs the carried loop; the binary's launch runs python3 on PATH.
    #[test]
    fn launch_decides_the_interpreter_and_the_slot_loop() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("python");
        std::os::unix::fs::symlink(interpreter::resolve(None).unwrap(), &link).unwrap();
        let package = || Launch {
            default_python: Some(link.clone()),
            slot_module: Some("tatzelwurm.slot".into()),
        };
        let config = parse(&[]).unwrap().into_config(package()).unwrap();
        assert_eq!(config.python, link);
        assert_eq!(
            config.program,
            SlotProgram::Module("tatzelwurm.slot".into())
        );
        let config = parse(&["--python", "/usr/bin/python3"])
            .unwrap()
            .into_config(package())
            .unwrap();
        assert_eq!(config.python, Path::new("/usr/bin/python3"));
        assert_eq!(config.program, SlotProgram::Carried);
        let config = parse(&[]).unwrap().into_config(Launch::default()).unwrap();
        assert_eq!(config.python, interpreter::resolve(None).unwrap());
        assert_eq!(config.program, SlotProgram::Carried);
        assert!(!config.keep_children);
        assert!(parse(&["--keep-children"]).unwrap().keep_children);
    }

    /// Queues default to `default`, keep their order without repeats; async concurrency
    /// defaults to 1 and reload to on.
    #[test]
    fn queues_async_concurrency_and_reload() {
        let config = parse(&[]).unwrap().into_config(Launch::default()).unwrap();
        assert_eq!(config.queues, ["default"]);
        assert_eq!(config.async_concurrency, 1);
        assert!(config.reload);
        let config = parse(&[
            "--queue",
            "gpu",
            "--queue",
            "io.bound",
            "--queue",
            "gpu",
            "--async-concurrency",
            "50",
            "--no-reload",
        ])
        .unwrap()
        .into_config(Launch::default())
        .unwrap();
        assert_eq!(config.queues, ["gpu", "io.bound"]);
        assert_eq!(config.async_concurrency, 50);
        assert!(!config.reload);
    }

    /// A bad queue name or async concurrency is refused by clap in one sentence that says what
    /// is allowed.
    #[test]
    fn refuses_bad_queues_and_concurrency() {
        let err = parse(&["--queue", "a b"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let sentence = crate::entry::one_sentence(&err);
        assert_eq!(
            sentence,
            "invalid value 'a b' for '--queue <NAME>': `a b` is not a queue name; use 1 to 64 \
             letters, digits, `_`, `-` or `.`, such as `default` or `nightly-report`"
        );
        assert!(parse(&["--queue", ""]).is_err());
        for bad in ["0", "-1", "many", "10001"] {
            let err = parse(&["--async-concurrency", bad]).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
            assert!(!crate::entry::one_sentence(&err).contains('\n'));
        }
    }

    /// --max-memory is MB (MiB) turned into bytes, none by default; zero is refused; the log
    /// format defaults to text; --tls-ca alone turns TLS on, and a CA file that cannot be read
    /// is refused in one sentence.
    #[test]
    fn memory_limit_log_format_and_tls() {
        let config = parse(&[]).unwrap().into_config(Launch::default()).unwrap();
        assert_eq!(config.max_memory, None);
        assert_eq!(parse(&[]).unwrap().log_format, LogFormat::Text);
        let args = parse(&["--max-memory", "300", "--log-format", "json"]).unwrap();
        assert_eq!(args.log_format, LogFormat::Json);
        let config = args.into_config(Launch::default()).unwrap();
        assert_eq!(config.max_memory, Some(300 * 1024 * 1024));
        for bad in ["0", "-5", "lots"] {
            let err = parse(&["--max-memory", bad]).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
        }
        assert!(parse(&["--log-format", "xml"]).is_err());
        let err = parse(&["--tls-ca", "/nonexistent/ca.pem"])
            .unwrap()
            .into_config(Launch::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    /// Zero slots and a missing --path dir are refused up front.
    #[test]
    fn refuses_bad_values() {
        assert!(parse(&["--slots", "0"]).is_err());
        let err = parse(&["--path", "/nonexistent/dir"])
            .unwrap()
            .into_config(Launch::default())
            .unwrap_err();
        assert!(err.to_string().contains("is not a directory"), "{err}");
    }
}
