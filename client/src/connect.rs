//! One attempt at a welcomed connection: TCP connect, the TLS handshake when `opts.tls` asks
//! for one, then our hello and the coordinator's answer, all bounded by the connect timeout.
//! Used for the first connect and every reconnect.

use crate::error::{io_reason, ClientError};
use crate::options::ConnectOptions;
use tatzelwurm_proto::actioner::{FromActioner, ToActioner};
use tatzelwurm_proto::handshake::{Hello, HelloReply, Role};
use tatzelwurm_proto::tls::ConnectError;
use tatzelwurm_proto::{Connection, ProtoError, MAX_FRAME_LEN, MAX_HELLO_LEN};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

/// A connection that the coordinator welcomed, speaking as an actioner.
pub(crate) type ActionerConnection = Connection<ToActioner, FromActioner>;

/// Connects and shakes hands, both within `opts.connect_timeout` in all.
pub(crate) async fn connect_once(opts: &ConnectOptions) -> Result<ActionerConnection, ClientError> {
    let addr = opts.address.as_str();
    if let Some(sentence) = &opts.tls_error {
        return Err(ClientError::TlsSettings {
            reason: sentence.clone(),
        });
    }
    let limit = opts.connect_timeout;
    let deadline = Instant::now() + limit;
    let unreachable = |reason: String| ClientError::Unreachable {
        addr: addr.into(),
        reason,
    };
    let stream = timeout_at(deadline, TcpStream::connect(addr))
        .await
        .map_err(|_| unreachable(format!("no answer within {limit:?}")))?
        .map_err(|err| unreachable(io_reason(&err)))?;
    // A TLS handshake that stalls is a server that accepted and did not answer, as a hello
    // that stalls is.
    let conn = timeout_at(
        deadline,
        Connection::establish(stream, addr, opts.tls.as_ref()),
    )
    .await
    .map_err(|_| ClientError::Silent { addr: addr.into() })?
    .map_err(|err| match err {
        ConnectError::Io(err) => unreachable(io_reason(&err)),
        ConnectError::Tls(err) => ClientError::Tls(err),
    })?;
    timeout_at(deadline, handshake(conn, opts))
        .await
        .map_err(|_| ClientError::Silent { addr: addr.into() })?
}

/// Sends our hello and reads the coordinator's answer, then re-types the connection for the
/// actioner's messages.
async fn handshake(
    mut conn: Connection<HelloReply, Hello>,
    opts: &ConnectOptions,
) -> Result<ActionerConnection, ClientError> {
    let addr = opts.address.as_str();
    // A hello reply is small; a server that announces more is not a coordinator.
    conn.set_max_frame_len(MAX_HELLO_LEN);
    let hello = Hello::new(Role::Actioner {
        name: opts.name.clone(),
    })
    .with_token(opts.token.as_deref());
    conn.send(&hello)
        .await
        .map_err(|err| ClientError::from_proto(addr, err))?;
    match conn.recv().await {
        Ok(Some(HelloReply::Welcome(_))) => {
            conn.set_max_frame_len(MAX_FRAME_LEN);
            Ok(conn.retype())
        }
        Ok(Some(HelloReply::Refused { reason })) => Err(ClientError::Refused {
            addr: addr.into(),
            reason,
        }),
        Ok(None) => Err(ClientError::Closed { addr: addr.into() }),
        Err(ProtoError::Undecodable(detail)) => Err(ClientError::NotCoordinator {
            addr: addr.into(),
            detail,
        }),
        Err(ProtoError::FrameTooLarge) => Err(ClientError::NotCoordinator {
            addr: addr.into(),
            detail: "its first bytes are not a tatzelwurm frame".into(),
        }),
        Err(err) => Err(ClientError::from_proto(addr, err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TLS setting from the environment that cannot be used fails the connect with its
    /// sentence before anything is sent, rather than falling back to plain text.
    #[tokio::test]
    async fn unusable_tls_settings_fail_before_connecting() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut opts =
            ConnectOptions::from_env(Some(&listener.local_addr().unwrap().to_string()), "t");
        opts.tls_error = Some("TATZELWURM_TLS is `maybe`; set it to 1".into());
        let Err(err) = connect_once(&opts).await else {
            panic!("connected despite unusable TLS settings");
        };
        assert_eq!(err.to_string(), "TATZELWURM_TLS is `maybe`; set it to 1");
        assert_eq!(err.class(), crate::error::ErrorClass::Refused);
        let nobody = tokio::time::timeout(std::time::Duration::from_millis(100), listener.accept());
        assert!(nobody.await.is_err(), "nothing connected");
        let opts = opts.with_tls(None);
        assert!(opts.tls_error.is_none() && opts.tls.is_none());
    }
}
