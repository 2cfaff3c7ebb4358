//! The coordinator's command line, and how a command line it cannot use is reported: one
//! sentence on stderr and status 2 (help and version as clap prints them, status 0).

use clap::error::ErrorKind;
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;
use tatzelwurm_proto::handshake::token_from_env;
use tatzelwurm_proto::seconds;

/// tatzelwurm: the coordinator of a persistent task queue for Python.
///
/// Set TATZELWURM_TOKEN to make every worker and actioner show that token.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Address to listen on for workers and actioners, HOST:PORT (port 0 picks a free one).
    #[arg(long, default_value = tatzelwurm_proto::DEFAULT_COORDINATOR, value_parser = bind_address)]
    pub bind: String,
    /// Directory of the task database; created if missing.
    #[arg(long, default_value = "tatzelwurm.db")]
    pub db: PathBuf,
    /// Database backend of a new --db: fjall (fsync per commit) or sled. An existing --db
    /// keeps the backend that wrote it; naming another one is refused. [default for a new
    /// --db: fjall]
    #[arg(long, value_enum)]
    pub store: Option<crate::store::StoreKind>,
    /// Seconds between a worker's heartbeats.
    #[arg(long, default_value_t = 1.0, value_parser = seconds::positive)]
    pub heartbeat: f64,
    /// Seconds a worker may stay silent (no heartbeat, no report) before it is taken for dead
    /// and its tasks are requeued, even if its connection stays open.
    #[arg(long, default_value_t = 5.0, value_parser = seconds::positive)]
    pub lease: f64,
    /// Seconds a new connection may take to introduce itself before it is closed.
    #[arg(long, default_value_t = 5.0, value_parser = seconds::positive)]
    pub handshake_timeout: f64,
    /// Open connections at most. At the cap, a new connection displaces the actioner idle
    /// longest (no request under way, no watch); workers are never displaced.
    #[arg(long, default_value_t = crate::listener::MAX_CONNECTIONS as u32, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Also serve HTTP on HOST:PORT: /metrics (Prometheus), the dashboard at /, and the JSON
    /// API under /api. Protected by TATZELWURM_TOKEN when it is set.
    #[arg(long, value_name = "ADDR", value_parser = bind_address)]
    pub http: Option<String>,
    /// Remove finished tasks (with their results and output) this long after they finished,
    /// such as 7d or 12h; checked every minute. Without it, finished tasks are kept until
    /// `actionwurm task purge`.
    #[arg(long, value_name = "DURATION", value_parser = keep_span)]
    pub keep_finished: Option<Duration>,
    /// Keep at most this many events in the event log (`actionwurm events`); older ones are
    /// removed, oldest first.
    #[arg(long, value_name = "COUNT", default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_events: u64,
    /// The certificate chain (PEM) to serve TLS with; needs --tls-key. Peers then connect with
    /// --tls (TATZELWURM_TLS=1).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// How log lines are written to stderr: text for people, json (one object per line) for
    /// log collectors.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event, coloured on a terminal.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// A `--keep-finished` span (`7d`, `12h`, `90m`), as every command line reads spans.
fn keep_span(value: &str) -> Result<Duration, String> {
    tatzelwurm_proto::when::parse_span(value).map(Duration::from_millis)
}

impl Cli {
    /// The timings these flags ask for, and the token from `TATZELWURM_TOKEN` (an environment
    /// variable rather than a flag, so that it does not show in `ps`; empty means none).
    /// The error is one sentence (a TLS certificate or key that cannot be used).
    pub fn config(&self) -> Result<crate::Config, String> {
        Ok(crate::Config {
            heartbeat: Duration::from_secs_f64(self.heartbeat),
            lease: Duration::from_secs_f64(self.lease.max(self.heartbeat)),
            handshake_timeout: Duration::from_secs_f64(self.handshake_timeout),
            token: token_from_env(),
            max_connections: self.max_connections as usize,
            keep_finished: self.keep_finished,
            keep_events: self.keep_events,
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some(tatzelwurm_proto::tls::ServerTls::load(cert, key)?),
                _ => None,
            },
        })
    }
}

/// Checks that `value` has the shape HOST:PORT with a port that fits 16 bits (`[::1]:5677`
/// included); whether the host resolves is found out when binding.
pub fn bind_address(value: &str) -> Result<String, String> {
    let shaped = match value.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
        None => false,
    };
    if shaped {
        Ok(value.to_string())
    } else {
        Err(format!(
            "`{value}` is not an address; write HOST:PORT with a port from 0 to 65535, such as 127.0.0.1:5677 (port 0 picks a free one)"
        ))
    }
}

/// Reports a command line clap refused; returns the exit status.
pub fn report_parse_error(err: clap::Error) -> i32 {
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = err.print();
            0
        }
        _ => {
            eprintln!("tatzelwurm: {}", parse_error_sentence(&err));
            2
        }
    }
}

/// clap's error as one sentence (`proto::usage`), and where to look.
fn parse_error_sentence(err: &clap::Error) -> String {
    let message = tatzelwurm_proto::usage::clap_message(&err.render().to_string());
    format!("{message}; see `tatzelwurm --help`")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HOST:PORT with a 16-bit port passes; a port out of range or a missing one is refused
    /// with a sentence that says how to write it.
    #[test]
    fn bind_addresses() {
        for good in ["127.0.0.1:0", "localhost:5677", "[::1]:80", "0.0.0.0:65535"] {
            assert_eq!(bind_address(good).as_deref(), Ok(good));
        }
        for bad in ["127.0.0.1:99999", "127.0.0.1", ":5677", "host:port", ""] {
            let err = bind_address(bad).unwrap_err();
            assert!(
                err.contains("is not an address; write HOST:PORT"),
                "{bad}: {err}"
            );
        }
    }

    /// A refused command line reads as one line naming the problem.
    #[test]
    fn parse_errors_are_one_sentence() {
        let err = Cli::try_parse_from(["tatzelwurm", "--bind", "127.0.0.1:99999"]).unwrap_err();
        let sentence = parse_error_sentence(&err);
        assert!(!sentence.contains('\n'), "{sentence}");
        assert!(
            sentence.contains("`127.0.0.1:99999` is not an address"),
            "{sentence}"
        );
        let err = Cli::try_parse_from(["tatzelwurm", "--bogus"]).unwrap_err();
        let sentence = parse_error_sentence(&err);
        assert!(
            sentence.starts_with("unexpected argument '--bogus'"),
            "{sentence}"
        );
        let help = Cli::try_parse_from(["tatzelwurm", "--help"]).unwrap_err();
        assert_eq!(help.kind(), ErrorKind::DisplayHelp);
    }
}
