//! What each subcommand does: validate what the user typed, ask the coordinator through
//! `Client`, and turn the answer into an `Outcome` (text and exit code) without printing.
//!
//! `task`, `queue`, `schedule`, `worker` and `events` hold their subcommands; `lib::run`
//! dispatches to them with the `Target` to reach. Input is checked before connecting, so a typo
//! fails even with no coordinator running.

pub mod events;
pub mod queue;
pub mod schedule;
pub mod task;
pub mod worker;

use crate::cli::TlsArgs;
use tatzelwurm_proto::tls::ClientTls;

use std::time::{Duration, Instant};
use tatzelwurm_client::{Client, ClientError, ConnectOptions, Tuning};
use tatzelwurm_proto::actioner::Selection;
use tatzelwurm_proto::backoff::{Backoff, Curve};
use tatzelwurm_proto::TaskId;

/// How long `task add` waits for a lost connection to come back before it gives up.
pub const ADD_RECONNECT_LIMIT: Duration = Duration::from_secs(20);

/// The coordinator to reach and how: its address and the TLS flags as typed.
#[derive(Debug, Clone)]
pub struct Target {
    /// `HOST:PORT`.
    pub addr: String,
    /// `--tls`, `--tls-ca`.
    pub tls: TlsArgs,
}

impl Target {
    /// A coordinator at `addr` over plain TCP (the tests' fake coordinator, say).
    pub fn plain(addr: &str) -> Target {
        Target {
            addr: addr.into(),
            tls: TlsArgs::default(),
        }
    }
}

/// Connects to the coordinator as this process, over TLS when the flags or the environment ask
/// for it, named so in the coordinator's log, with the
/// token in `TATZELWURM_TOKEN` if one is set (an environment variable, not a flag, so that it
/// does not show in `ps`). With `reconnect` (for `task add`), a dropped connection is made
/// again and the request under way re-sent with its same key, for up to
/// `ADD_RECONNECT_LIMIT`, and so is a first connection that a coordinator closed during the
/// handshake (it was going away; nothing was sent yet), while a first connection that nothing
/// answers still fails at once. Without it, a drop fails the command at once (a `task wait`
/// whose coordinator died must say so, not hang).
pub async fn connect(target: &Target, reconnect: bool) -> Result<Client, ClientError> {
    let name = format!("actionwurm (pid {})", std::process::id());
    let mut opts = ConnectOptions::from_env(Some(&target.addr), &name);
    if target.tls.enabled() {
        // The flags win over TATZELWURM_TLS / TATZELWURM_TLS_CA; the environment fills in what
        // they leave open (a CA for a bare --tls).
        let tls = ClientTls::from_flags(target.tls.tls, target.tls.tls_ca.as_deref())
            .map_err(|reason| ClientError::TlsSettings { reason })?;
        opts = opts.with_tls(tls);
    }
    opts.reconnect = reconnect;
    let tuning = Tuning {
        reconnect_limit: ADD_RECONNECT_LIMIT,
        ..Tuning::default()
    };
    let started = Instant::now();
    let mut backoff = Backoff::new(FIRST_CONNECT, 0.25);
    let mut met_a_coordinator = false;
    loop {
        let err = match Client::connect_tuned(opts.clone(), tuning.clone()).await {
            Ok(client) => return Ok(client),
            Err(err) => err,
        };
        match err {
            ClientError::Closed { .. } if reconnect => met_a_coordinator = true,
            ClientError::Unreachable { .. } if reconnect && met_a_coordinator => {}
            err => return Err(err),
        }
        if started.elapsed() >= ADD_RECONNECT_LIMIT {
            return Err(err);
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Waits between first connection attempts of `task add` to a coordinator that is restarting.
const FIRST_CONNECT: Curve = Curve {
    first: Duration::from_millis(50),
    max: Duration::from_secs(1),
};

/// The selection for explicit ids, or `All` with `-a`.
pub fn selection(ids: &[u64], all: bool) -> Selection {
    if all {
        Selection::All
    } else {
        Selection::Ids(ids.iter().copied().map(TaskId).collect())
    }
}

/// At most `limit` items of a long list of notes, then one line saying how many were left out,
/// so that `task play $(seq 10000)` does not flood the terminal.
pub fn capped(mut lines: Vec<String>, limit: usize) -> Vec<String> {
    if lines.len() > limit {
        let rest = lines.len() - limit;
        lines.truncate(limit);
        lines.push(format!("... and {rest} more"));
    }
    lines
}

/// "1 task" or "3 tasks".
pub fn tasks(count: usize) -> String {
    if count == 1 {
        "1 task".into()
    } else {
        format!("{count} tasks")
    }
}
