//! The coordinator's side of the handshake: read one `Hello` within a time limit, check magic,
//! version and token, and learn the peer's role. A peer that fails is sent a `Refused` with the reason
//! where a reply can still be sent, and its connection is closed; no other connection notices.

use std::time::Duration;
use tatzelwurm_proto::handshake::{Hello, HelloReply, Role};
use tatzelwurm_proto::{Connection, MAX_FRAME_LEN, MAX_HELLO_LEN};

/// A connection before its role is known.
pub type Greeting = Connection<Hello, HelloReply>;

/// Waits for the peer's hello. `Err` carries the reason, already sent to the peer if possible.
pub async fn greet(
    conn: &mut Greeting,
    limit: Duration,
    token: Option<&str>,
) -> Result<Role, String> {
    conn.set_max_frame_len(MAX_HELLO_LEN);
    let reason = match tokio::time::timeout(limit, conn.recv()).await {
        Err(_) => format!(
            "no hello within {} ms; a peer must introduce itself first",
            limit.as_millis()
        ),
        Ok(Ok(None)) => return Err("closed before its hello".into()),
        Ok(Err(err)) => format!("bad hello: {err}"),
        Ok(Ok(Some(hello))) => match hello.check().and_then(|()| hello.check_token(token)) {
            Ok(()) => {
                conn.set_max_frame_len(MAX_FRAME_LEN);
                return Ok(hello.role);
            }
            Err(reason) => reason,
        },
    };
    let refusal = HelloReply::Refused {
        reason: reason.clone(),
    };
    // Best effort: the peer may be gone or not reading; never wait long for it.
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.send(&refusal)).await;
    Err(reason)
}
