//! The coordinator's command line.

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
    /// Address to listen on for workers and actioners (port 0 picks a free one).
    #[arg(long, default_value = tatzelwurm_proto::DEFAULT_COORDINATOR)]
    pub bind: String,
    /// Directory of the task database; created if missing.
    #[arg(long, default_value = "tatzelwurm.db")]
    pub db: PathBuf,
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
}

impl Cli {
    /// The timings these flags ask for, and the token from `TATZELWURM_TOKEN` (an environment
    /// variable rather than a flag, so that it does not show in `ps`; empty means none).
    pub fn config(&self) -> crate::Config {
        crate::Config {
            heartbeat: Duration::from_secs_f64(self.heartbeat),
            lease: Duration::from_secs_f64(self.lease.max(self.heartbeat)),
            handshake_timeout: Duration::from_secs_f64(self.handshake_timeout),
            token: token_from_env(),
        }
    }
}
