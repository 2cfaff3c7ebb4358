//! `TlsError`: each way a client's TLS connect fails, as one sentence that says what to do, and
//! `ConnectError`: what `Connection::connect_with` returns, a TCP failure or a TLS one.
//! `ClientTls::explain` (tls.rs) sorts rustls' errors into these.

use std::io;
use thiserror::Error;

/// Why a TLS connect to the coordinator failed; `Display` is one sentence that says what to do.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TlsError {
    /// The certificate is not signed by a CA this client trusts (or not signed properly).
    #[error("the coordinator at {addr} showed a certificate that is not signed by {trusted}; pass --tls-ca FILE (or set TATZELWURM_TLS_CA) with the CA that signed it")]
    Untrusted {
        /// Where the coordinator is.
        addr: String,
        /// What this client trusts, as the sentence names it: any of the system's root
        /// certificates, or the CA in a file.
        trusted: String,
    },
    /// The certificate's validity ended (at the given time, when known).
    #[error("the coordinator at {addr} showed a certificate that expired{}; renew the coordinator's certificate (--tls-cert) and restart it", at.as_ref().map(|at| format!(" at {at}")).unwrap_or_default())]
    Expired {
        /// Where the coordinator is.
        addr: String,
        /// When it expired (RFC 3339, UTC).
        at: Option<String>,
    },
    /// The certificate's validity has not begun.
    #[error("the coordinator at {addr} showed a certificate that is not valid yet{}; check this machine's clock and the certificate's start date", from.as_ref().map(|from| format!(" (it is valid from {from})")).unwrap_or_default())]
    NotYetValid {
        /// Where the coordinator is.
        addr: String,
        /// When it becomes valid (RFC 3339, UTC).
        from: Option<String>,
    },
    /// The certificate does not name the host this client dialled.
    #[error("the coordinator's certificate at {addr} is not valid for `{host}`{}; connect with a name the certificate holds, or give the coordinator a certificate for `{host}`", if names.is_empty() { String::new() } else { format!(" (it names {})", names.join(", ")) })]
    WrongName {
        /// Where the coordinator is.
        addr: String,
        /// The host part of the address, which the certificate must name.
        host: String,
        /// The names the certificate holds, when known.
        names: Vec<String>,
    },
    /// The server answered the TLS handshake with bytes that are not TLS: a plain coordinator.
    #[error("the server at {addr} did not answer in TLS, so it is probably a coordinator without TLS; connect without --tls (unset TATZELWURM_TLS), or start the coordinator with --tls-cert and --tls-key")]
    NotTls {
        /// Where the server is.
        addr: String,
    },
    /// The host part of the address cannot be checked against a certificate.
    #[error("cannot connect with TLS to `{addr}`: its host is neither a DNS name nor an IP address; write HOST:PORT with a name the coordinator's certificate holds")]
    BadName {
        /// The address as given.
        addr: String,
    },
    /// Any other handshake failure, with rustls' reason.
    #[error("the TLS handshake with the coordinator at {addr} failed ({detail}); check that it serves TLS (--tls-cert) and look in its log for the reason")]
    Handshake {
        /// Where the coordinator is.
        addr: String,
        /// What went wrong.
        detail: String,
    },
}

/// Why `Connection::connect_with` failed: the TCP connect (or a socket error during the TLS
/// handshake), or TLS itself.
#[derive(Debug, Error)]
pub enum ConnectError {
    /// The socket failed: refused, unreachable, reset.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// TLS failed; the sentence says what to do.
    #[error("{0}")]
    Tls(#[from] TlsError),
}
