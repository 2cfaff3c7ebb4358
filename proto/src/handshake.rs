//! The first frame of every connection. A peer says which protocol version it speaks and whether
//! it is a worker or an actioner; the coordinator welcomes it or refuses it with a reason.
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
}

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

impl Hello {
    /// A hello of the present protocol version for the given role.
    pub fn new(role: Role) -> Hello {
        Hello {
            magic: crate::MAGIC,
            version: crate::PROTOCOL_VERSION,
            role,
        }
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
        Ok(())
    }
}
