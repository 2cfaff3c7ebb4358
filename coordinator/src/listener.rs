//! The accept loop: frames every new socket (with TLS when the coordinator serves it), greets
//! it (`handshake::open`), and hands it to the worker or actioner connection by its role. Each connection is its own task; its failure is logged once with the
//! peer's address and never reaches the loop. The number of open connections is capped so that
//! a flood of idle sockets cannot exhaust memory; the hello time limit frees silent ones, and at
//! the cap a new connection displaces the longest-idle actioner (`admission`). Repeated
//! warnings about one address are aggregated (`log_limit::PeerLog`).

use crate::admission::{Admission, Permit};
use crate::handshake::open;
use crate::{actioner_conn, worker_conn, Context};
use tatzelwurm_proto::handshake::Role;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tracing::{info, warn};

/// Open connections at most unless `--max-connections` says otherwise.
pub const MAX_CONNECTIONS: usize = 4096;

/// Connections the kernel queues before we accept them. tokio's default of 128 overflowed under
/// a burst of connects, and each dropped SYN cost its client a second before the retry.
const BACKLOG: u32 = 1024;

/// Why `bind` failed; each reads as one sentence for the operator.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The host part does not resolve.
    #[error("cannot listen on `{addr}`: its host does not resolve ({cause}); write HOST:PORT with a name or address of this machine, such as 127.0.0.1:5677")]
    Resolve { addr: String, cause: std::io::Error },
    /// The port is taken.
    #[error("cannot listen on {addr}; is another program using that port? pass another --bind")]
    InUse { addr: String },
    /// Anything else the system refused (an address of another machine, a privileged port).
    #[error("cannot listen on {addr}: {cause}; pass another --bind")]
    Other { addr: String, cause: std::io::Error },
}

/// Binds `addr` (a host:port, resolved) with a backlog that absorbs bursts of connects.
pub async fn bind(addr: &str) -> Result<TcpListener, BindError> {
    let resolved = tokio::net::lookup_host(addr)
        .await
        .map_err(|cause| BindError::Resolve {
            addr: addr.to_string(),
            cause,
        })?;
    let mut last_error = None;
    for resolved in resolved {
        match listen(resolved) {
            Ok(listener) => return Ok(listener),
            Err(err) => last_error = Some(err),
        }
    }
    let addr = addr.to_string();
    Err(match last_error {
        Some(cause) if cause.kind() == std::io::ErrorKind::AddrInUse => BindError::InUse { addr },
        Some(cause) => BindError::Other { addr, cause },
        None => BindError::Resolve {
            addr,
            cause: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
        },
    })
}

fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Accepts connections until the future that owns this loop is dropped.
pub async fn accept_loop(listener: TcpListener, ctx: Context) {
    let admission = Admission::new(ctx.config.max_connections);
    loop {
        match listener.accept().await {
            Ok((socket, _)) => {
                // At the cap this displaces an idle actioner, or waits (holding this one socket)
                // until a connection closes; the kernel queues the next ones meanwhile.
                let permit = admission.admit().await;
                let ctx = ctx.clone();
                let admission = admission.clone();
                tokio::spawn(async move {
                    serve(socket, ctx, admission, permit).await;
                });
            }
            Err(err) => {
                // Out of file descriptors and the like: pause briefly instead of spinning.
                warn!("accepting a connection failed: {err}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve(socket: TcpStream, ctx: Context, admission: Admission, permit: Permit) {
    let peer = match socket.peer_addr() {
        Ok(peer) => peer,
        Err(err) => {
            warn!("a new connection failed before its hello: {err}");
            return;
        }
    };
    let config = &ctx.config;
    let token = config.token.as_deref();
    match open(socket, config.tls.as_ref(), config.handshake_timeout, token).await {
        Ok((conn, Role::Worker(hello))) => worker_conn::serve(conn, hello, ctx).await,
        Ok((conn, Role::Actioner { name })) => {
            let ticket = admission.actioner();
            actioner_conn::serve(conn, name, ctx, ticket).await
        }
        Err(reason) => {
            if let Some(note) = ctx.peer_log.note("refused", peer.ip()) {
                info!(%peer, "refused a connection: {reason}{note}");
            }
        }
    }
    drop(permit);
}
