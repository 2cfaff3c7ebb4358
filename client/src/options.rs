//! `ConnectOptions`: where to connect and how, and `Tuning`, the limits a test or the CLI may
//! shorten. Read by `Client::connect` and by the session when it reconnects.

use std::fmt;
use std::time::Duration;
use tatzelwurm_proto::handshake::token_from_env;
use tatzelwurm_proto::tls::ClientTls;
use tatzelwurm_proto::{COORDINATOR_ENV, DEFAULT_COORDINATOR};

/// The bound on one connect and handshake when `from_env` is not told otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a request waits for a dropped connection to come back before it fails
/// `Unavailable`.
pub const RECONNECT_LIMIT: Duration = Duration::from_secs(30);

/// How to reach the coordinator.
#[derive(Clone)]
pub struct ConnectOptions {
    /// `host:port`.
    pub address: String,
    /// The shared secret, if the coordinator has one.
    pub token: Option<String>,
    /// Shown in the coordinator's log.
    pub name: String,
    /// Bound on the first connect and its handshake (and on each reconnect attempt).
    pub connect_timeout: Duration,
    /// Re-make a dropped connection with backoff, re-sending what was under way.
    pub reconnect: bool,
    /// Connect with TLS, verifying the coordinator's certificate as this says; `None` for plain
    /// TCP. `from_env` fills it from `TATZELWURM_TLS` and `TATZELWURM_TLS_CA`.
    pub tls: Option<ClientTls>,
    /// Why the TLS settings of the environment could not be used (a CA file that cannot be
    /// read, say), as one sentence. `from_env` stays infallible and puts the problem here;
    /// every connect then fails with it, so that a broken TLS setting never falls back to plain
    /// text (where the token would travel in clear). Setting `tls` by hand should clear it.
    pub tls_error: Option<String>,
}

impl ConnectOptions {
    /// address: `address` if given, else `$TATZELWURM_COORDINATOR`, else 127.0.0.1:5677; the
    /// token from `$TATZELWURM_TOKEN`; TLS from `$TATZELWURM_TLS` and `$TATZELWURM_TLS_CA`
    /// (see `ClientTls::from_env`; a broken setting lands in `tls_error`); a connect timeout of
    /// 5 s; no reconnect.
    pub fn from_env(address: Option<&str>, name: &str) -> ConnectOptions {
        let address = address
            .map(str::to_string)
            .or_else(|| {
                std::env::var(COORDINATOR_ENV)
                    .ok()
                    .filter(|a| !a.trim().is_empty())
            })
            .unwrap_or_else(|| DEFAULT_COORDINATOR.to_string());
        let (tls, tls_error) = match ClientTls::from_env() {
            Ok(tls) => (tls, None),
            Err(sentence) => (None, Some(sentence)),
        };
        ConnectOptions {
            address,
            token: token_from_env(),
            name: name.to_string(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            reconnect: false,
            tls,
            tls_error,
        }
    }

    /// These options with TLS as given (`None`: plain TCP), dropping any problem `from_env` met
    /// in the environment: for programs whose own flags (`--tls`, `--tls-ca`) decide.
    pub fn with_tls(self, tls: Option<ClientTls>) -> ConnectOptions {
        ConnectOptions {
            tls,
            tls_error: None,
            ..self
        }
    }
}

impl fmt::Debug for ConnectOptions {
    /// Everything but the token's value, so that a log line cannot leak it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("name", &self.name)
            .field("connect_timeout", &self.connect_timeout)
            .field("reconnect", &self.reconnect)
            .field("tls", &self.tls)
            .field("tls_error", &self.tls_error)
            .finish()
    }
}

/// Limits that tests (and the CLI) may change; `Tuning::default()` is what users get.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// How long a request waits for a lost connection to come back.
    pub reconnect_limit: Duration,
    /// The first pause between reconnect attempts, doubled up to `max_backoff`.
    pub min_backoff: Duration,
    /// The longest pause between reconnect attempts.
    pub max_backoff: Duration,
    /// Most pipeline adds in flight at once; submits made meanwhile wait and go together.
    pub adds_in_flight: usize,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            reconnect_limit: RECONNECT_LIMIT,
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            adds_in_flight: 3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A given address wins; the debug form hides the token.
    #[test]
    fn given_address_and_hidden_token() {
        let mut opts = ConnectOptions::from_env(Some("h:1"), "t");
        assert_eq!(opts.address, "h:1");
        opts.token = Some("s3cret".into());
        let shown = format!("{opts:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("<set>"),
            "{shown}"
        );
    }
}
