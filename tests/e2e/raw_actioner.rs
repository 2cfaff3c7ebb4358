//! An actioner that speaks the protocol directly over a raw `tatzelwurm_proto::Connection`, for
//! the tests that need to see frames as the coordinator sends them (`watch`, `events`): one
//! connection, requests sent and frames read one at a time on a runtime of its own, every wait
//! bounded.

use std::time::Duration;
use tatzelwurm_proto::actioner::{Command, FromActioner, ToActioner};
use tatzelwurm_proto::handshake::{Hello, HelloReply, Role};
use tatzelwurm_proto::{Connection, RequestId};
use tokio::runtime::Runtime;

/// One welcomed actioner connection.
pub struct Raw {
    runtime: Runtime,
    conn: Connection<ToActioner, FromActioner>,
}

impl Raw {
    /// Connects to `addr` and says hello as the actioner `name`, within `timeout`. With
    /// `recv_buffer`, the socket's receive buffer is that small, so that what the test does not
    /// read backs up at the coordinator rather than in the kernel.
    pub fn connect(addr: &str, name: &str, recv_buffer: Option<u32>, timeout: Duration) -> Raw {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let conn = runtime.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
            if let Some(bytes) = recv_buffer {
                socket.set_recv_buffer_size(bytes).expect("a small buffer");
            }
            let connect = socket.connect(addr.parse().expect("an address"));
            let stream = tokio::time::timeout(timeout, connect)
                .await
                .expect("connect in time")
                .expect("connect");
            let mut conn: Connection<HelloReply, Hello> =
                Connection::new(stream).expect("a connection");
            let hello = Hello::new(Role::Actioner { name: name.into() });
            conn.send(&hello).await.expect("send the hello");
            match tokio::time::timeout(timeout, conn.recv()).await {
                Ok(Ok(Some(HelloReply::Welcome(_)))) => {}
                other => panic!("no welcome: {other:?}"),
            }
            conn.retype::<ToActioner, FromActioner>()
        });
        Raw { runtime, conn }
    }

    /// Sends `command` as request `request` without waiting for anything.
    pub fn send(&mut self, request: u64, command: Command) {
        let frame = FromActioner {
            request: RequestId(request),
            command,
        };
        self.runtime
            .block_on(self.conn.send(&frame))
            .expect("send a request");
    }

    /// The next frame; panics if none comes within `timeout` or the connection closes.
    pub fn recv_within(&mut self, timeout: Duration) -> ToActioner {
        let conn = &mut self.conn;
        let next = self
            .runtime
            .block_on(async { tokio::time::timeout(timeout, conn.recv()).await });
        match next {
            Ok(Ok(Some(frame))) => frame,
            Ok(other) => panic!("the connection ended: {other:?}"),
            Err(_) => panic!("no frame within {timeout:?}"),
        }
    }
}
