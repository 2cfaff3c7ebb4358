//! The coordinator's side of the handshake: frame a new socket (with TLS when the coordinator
//! serves it and the peer opened with a TLS handshake), read one `Hello` before a deadline,
//! check magic, version and token, and learn the peer's role. A peer that fails is sent a
//! `Refused` with the reason where a reply can still be sent, and its connection is closed; no
//! other connection notices.
//!
//! The first byte tells a TLS peer from a plain one (`tls::sniff`): a plain peer at a TLS
//! coordinator gets a plain `Refused` it can read ("this coordinator only accepts TLS ..."), and
//! a TLS peer at a plain coordinator is logged as such (it reads our plain answer as a broken
//! TLS record and tells its user that the server does not speak TLS).

use std::time::Duration;
use tatzelwurm_proto::handshake::{Hello, HelloReply, Role};
use tatzelwurm_proto::tls::{self, Opening, ServerTls};
use tatzelwurm_proto::{Connection, MAX_FRAME_LEN, MAX_HELLO_LEN};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

/// A connection before its role is known.
pub type Greeting = Connection<Hello, HelloReply>;

/// Frames a new socket and reads its hello, all within `limit`: the role of a welcomed peer,
/// with its connection. `Err` carries the reason, already sent to the peer if possible.
pub async fn open(
    socket: TcpStream,
    tls: Option<&ServerTls>,
    limit: Duration,
    token: Option<&str>,
) -> Result<(Greeting, Role), String> {
    let deadline = Instant::now() + limit;
    let opening = match timeout_at(deadline, tls::sniff(&socket)).await {
        Err(_) => return Err(silent(limit)),
        Ok(Err(err)) => return Err(format!("the socket failed before its hello: {err}")),
        Ok(Ok(Opening::Closed)) => return Err("closed before its hello".into()),
        Ok(Ok(opening)) => opening,
    };
    let framed = match (tls, opening) {
        (Some(tls), Opening::Tls) => {
            match timeout_at(deadline, Greeting::accept_tls(socket, tls)).await {
                Err(_) => Err(format!(
                    "no TLS handshake within {} ms; a peer must introduce itself first",
                    limit.as_millis()
                )),
                Ok(framed) => framed,
            }
        }
        (_, _) => Greeting::new(socket)
            .map_err(|err| format!("the socket failed before its hello: {err}")),
    };
    let mut conn = framed?;
    // Answer each peer in a language it reads: a plain peer at a TLS coordinator is told in
    // plain frames; a TLS peer at a plain coordinator cannot read any answer of ours, but its
    // ClientHello is read (as an oversized frame) before the connection closes, so that it sees
    // our bytes rather than a reset.
    let refusal = match (tls, opening) {
        (Some(_), Opening::Plain) => Some(tls::plain_refusal()),
        (None, Opening::Tls) => Some(tls::tls_at_plain_refusal()),
        _ => None,
    };
    let role = greet(&mut conn, (deadline, limit), token, refusal).await?;
    Ok((conn, role))
}

/// Waits for the peer's hello until the deadline (`limit` after the connection came); with
/// `refusal`, refuses it with that reason whatever it says. `Err` carries the reason, already
/// sent to the peer if possible.
async fn greet(
    conn: &mut Greeting,
    (deadline, limit): (Instant, Duration),
    token: Option<&str>,
    refusal: Option<String>,
) -> Result<Role, String> {
    conn.set_max_frame_len(MAX_HELLO_LEN);
    let received = timeout_at(deadline, conn.recv()).await;
    let reason = match (received, refusal) {
        (Ok(Ok(None)), _) => return Err("closed before its hello".into()),
        (_, Some(refusal)) => refusal,
        (Err(_), None) => silent(limit),
        (Ok(Err(err)), None) => format!("bad hello: {err}"),
        (Ok(Ok(Some(hello))), None) => {
            match hello.check().and_then(|()| hello.check_token(token)) {
                Ok(()) => {
                    conn.set_max_frame_len(MAX_FRAME_LEN);
                    return Ok(hello.role);
                }
                Err(reason) => reason,
            }
        }
    };
    let refusal = HelloReply::Refused {
        reason: reason.clone(),
    };
    // Best effort: the peer may be gone or not reading; never wait long for it.
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.send(&refusal)).await;
    Err(reason)
}

/// The reason for a peer that said nothing in time.
fn silent(limit: Duration) -> String {
    format!(
        "no hello within {} ms; a peer must introduce itself first",
        limit.as_millis()
    )
}

#[cfg(test)]
mod tests;
