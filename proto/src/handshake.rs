//! The first frame of every connection. A peer says which protocol version it speaks, whether it
//! is a worker or an actioner, and shows the shared token if it has one; the coordinator
//! welcomes it or refuses it with a reason.
//!
//! These types cross the wire: changing one breaks compatibility, bump `PROTOCOL_VERSION`.

use crate::ids::WorkerId;
use serde::{Deserialize, Serialize};

/// The opening frame a peer sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Always `MAGIC`: tells a tatzelwurm peer from random bytes.
    pub magic: [u8; 4],
    /// The peer's `PROTOCOL_VERSION`.
    pub version: u32,
    /// What the peer is, which decides the messages it may send afterwards.
    pub role: Role,
    /// The shared secret (`TATZELWURM_TOKEN`), empty for none. A coordinator that has a token
    /// refuses every peer that does not show it; one that has none ignores this.
    pub token: String,
}

/// What a peer is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Runs tasks.
    Worker(WorkerHello),
    /// Adds, plays, kills and inspects tasks: the CLI or a Python client.
    Actioner {
        /// Free text naming the client, for the coordinator's log.
        name: String,
    },
}

/// What a worker tells about itself when it connects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerHello {
    /// Shown in `worker list`; defaults to `hostname:pid`.
    pub name: String,
    /// How many tasks it runs at once.
    pub slots: u32,
    /// The version of the Python its slots run, shown in `worker list`.
    pub python: String,
    /// The queues it serves (`task::DEFAULT_QUEUE` alone unless told otherwise), each named as
    /// `queue::check_name` allows; at most `MAX_WORKER_QUEUES`.
    pub queues: Vec<String>,
    /// How many tasks of a coroutine function (`async def`) one slot runs at once, at least 1.
    /// Such a task counts as 1/`async_concurrency` of a slot toward the worker's load, once the
    /// worker has named its function in `FromWorker::Coroutines`.
    pub async_concurrency: u32,
}

/// The most queues one worker may serve.
pub const MAX_WORKER_QUEUES: usize = 256;

/// The coordinator's answer to a `Hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloReply {
    /// The peer may go on.
    Welcome(Welcome),
    /// The peer is refused; the connection closes after this frame.
    Refused {
        /// One sentence that says what was wrong and what to do.
        reason: String,
    },
}

/// What a welcomed peer needs to know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The id of this connection, for workers; `None` for actioners.
    pub worker_id: Option<WorkerId>,
    /// How often a worker must send a heartbeat, in milliseconds.
    pub heartbeat_ms: u64,
}

/// Whether a token a peer showed is the expected one, in a time that does not depend on where
/// they differ, so that timing does not tell how much of a guess was right. The one comparison
/// of tokens: the handshake's and the HTTP side's.
pub fn same_token(given: &str, expected: &str) -> bool {
    let (given, expected) = (given.as_bytes(), expected.as_bytes());
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The token in `TATZELWURM_TOKEN`, if it is set and not empty: how all three programs learn
/// it (an environment variable, not a flag, so that it does not show in `ps`).
pub fn token_from_env() -> Option<String> {
    std::env::var(crate::TOKEN_ENV)
        .ok()
        .filter(|token| !token.is_empty())
}

impl Hello {
    /// A hello of the present protocol version for the given role, without a token.
    pub fn new(role: Role) -> Hello {
        Hello {
            magic: crate::MAGIC,
            version: crate::PROTOCOL_VERSION,
            role,
            token: String::new(),
        }
    }

    /// The same hello showing `token` (`None` or empty: no token).
    pub fn with_token(self, token: Option<&str>) -> Hello {
        Hello {
            token: token.unwrap_or_default().to_string(),
            ..self
        }
    }

    /// Checks the token against the coordinator's own (`None`: every peer is let in); the error
    /// is the sentence to send back in `Refused`. The comparison takes the same time wherever
    /// the tokens differ, so that timing does not reveal how much of a guess was right.
    pub fn check_token(&self, expected: Option<&str>) -> Result<(), String> {
        let Some(expected) = expected else {
            return Ok(());
        };
        if self.token.is_empty() {
            return Err(format!(
                "this coordinator requires a token; set {} to the coordinator's token",
                crate::TOKEN_ENV
            ));
        }
        if !same_token(&self.token, expected) {
            return Err(format!(
                "the token does not match this coordinator's; set {} to the coordinator's token",
                crate::TOKEN_ENV
            ));
        }
        Ok(())
    }

    /// Checks magic and version; the error is the sentence to send back in `Refused`.
    pub fn check(&self) -> Result<(), String> {
        if self.magic != crate::MAGIC {
            return Err("this port speaks the tatzelwurm protocol; the first frame was not a tatzelwurm hello".into());
        }
        if self.version != crate::PROTOCOL_VERSION {
            return Err(format!(
                "protocol version {} is not supported by this coordinator, which speaks version {}; use workwurm and actionwurm from the same release as the coordinator",
                self.version,
                crate::PROTOCOL_VERSION
            ));
        }
        if let Role::Worker(hello) = &self.role {
            if hello.queues.len() > MAX_WORKER_QUEUES {
                return Err(format!(
                    "a worker may serve at most {MAX_WORKER_QUEUES} queues, not {}; run more workers",
                    hello.queues.len()
                ));
            }
            for queue in &hello.queues {
                crate::queue::check_name(queue)?;
            }
            if hello.async_concurrency == 0 {
                return Err("a worker's async concurrency must be at least 1".into());
            }
        }
        let (what, text) = match &self.role {
            Role::Worker(hello) if hello.python.len() > MAX_NAME_LEN => {
                ("Python version", &hello.python)
            }
            Role::Worker(hello) => ("name", &hello.name),
            Role::Actioner { name } => ("name", name),
        };
        if text.len() > MAX_NAME_LEN {
            return Err(format!(
                "a {what} of {} bytes is longer than the {MAX_NAME_LEN} bytes a peer's hello may give; choose a shorter one",
                text.len()
            ));
        }
        Ok(())
    }
}

/// The longest name (and Python version) a hello may carry: names appear in log lines and in
/// `worker list`, which must not grow with what a peer chooses to send.
pub const MAX_NAME_LEN: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    /// Equal tokens match; a prefix, a longer one and one differing in the last byte do not.
    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("s3cret", "s3cret"));
        assert!(!same_token("s3cre", "s3cret"));
        assert!(!same_token("s3crets", "s3cret"));
        assert!(!same_token("s3creT", "s3cret"));
        assert!(!same_token("", "s3cret"));
    }

    fn hello(token: Option<&str>) -> Hello {
        Hello::new(Role::Actioner { name: "t".into() }).with_token(token)
    }

    /// A name past `MAX_NAME_LEN` is refused with its length; one at the limit passes.
    #[test]
    fn long_names_are_refused() {
        let named = |n: usize| {
            Hello::new(Role::Actioner {
                name: "x".repeat(n),
            })
        };
        assert!(named(MAX_NAME_LEN).check().is_ok());
        let err = named(60_000).check().unwrap_err();
        assert!(err.starts_with("a name of 60000 bytes is longer"), "{err}");
    }

    /// Without a coordinator token every hello passes; with one, only the same token does, and
    /// the refusals say which variable to set.
    #[test]
    fn tokens_are_checked_only_when_the_coordinator_has_one() {
        assert!(hello(None).check_token(None).is_ok());
        assert!(hello(Some("x")).check_token(None).is_ok());
        assert!(hello(Some("s3cret")).check_token(Some("s3cret")).is_ok());
        for (given, says) in [
            (None, "requires a token"),
            (Some(""), "requires a token"),
            (Some("s3cre"), "does not match"),
            (Some("s3cret!"), "does not match"),
            (Some("S3cret"), "does not match"),
        ] {
            let err = hello(given).check_token(Some("s3cret")).unwrap_err();
            assert!(
                err.contains(says) && err.contains(crate::TOKEN_ENV),
                "{err}"
            );
        }
    }
}
