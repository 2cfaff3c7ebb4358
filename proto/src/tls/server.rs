//! `ServerTls`: the coordinator's certificate and key and its side of the handshake, and
//! `sniff`, which tells a TLS peer from a plain one by its first byte.

use super::{provider, read_certs, TLS_ENV};
use crate::stream::Stream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use rustls::ServerConfig;
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

/// The first byte of every TLS connection (a handshake record); a tatzelwurm frame starts with
/// the high byte of its length, which is 0 for every hello (`MAX_HELLO_LEN` is 64 KiB).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// The coordinator's certificate and key, ready to accept TLS connections. Cheap to clone.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
}

impl ServerTls {
    /// Reads the certificate chain (PEM, the coordinator's own certificate first) and its private
    /// key (PEM: PKCS#8, SEC1 or PKCS#1) for `--tls-cert` and `--tls-key`; the error is one
    /// sentence for the operator.
    pub fn load(cert: &Path, key: &Path) -> Result<ServerTls, String> {
        let chain = read_certs(cert, "certificate file (--tls-cert)")?;
        let private = PrivateKeyDer::from_pem_file(key).map_err(|e| match e {
            rustls::pki_types::pem::Error::Io(io) => format!(
                "cannot read the key file (--tls-key) {} ({io}); check the path",
                key.display()
            ),
            rustls::pki_types::pem::Error::NoItemsFound => format!(
                "the key file (--tls-key) {} holds no private key; pass the PEM key (`-----BEGIN PRIVATE KEY-----`) made with the certificate",
                key.display()
            ),
            other => format!(
                "the key file (--tls-key) {} is not PEM ({other}); pass the PEM key made with the certificate",
                key.display()
            ),
        })?;
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| {
                format!(
                    "cannot serve TLS with the certificate {} and the key {} ({}); pass the key that was made with that certificate",
                    cert.display(),
                    key.display(),
                    e
                )
            })?;
        Ok(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The server side of the handshake on an accepted socket; the error is the reason for the
    /// coordinator's log.
    pub(crate) async fn handshake(&self, tcp: TcpStream) -> Result<Stream, String> {
        match self.acceptor.accept(tcp).await {
            Ok(tls) => Ok(Stream::Tls(Box::new(tls.into()))),
            Err(err) => Err(accept_failure(&err)),
        }
    }
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerTls")
    }
}

/// Why a TLS accept failed, for the coordinator's log: most often the peer did not trust our
/// certificate and said so with an alert.
fn accept_failure(err: &io::Error) -> String {
    use rustls::AlertDescription as Alert;
    match err.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::AlertReceived(
            alert @ (Alert::UnknownCA
            | Alert::BadCertificate
            | Alert::CertificateExpired
            | Alert::CertificateUnknown),
        )) => format!(
            "the TLS handshake failed: the peer rejected this coordinator's certificate ({alert:?}); give the peer the CA that signed it (--tls-ca) or renew it"
        ),
        Some(other) => format!("the TLS handshake failed: {other}"),
        None if err.kind() == io::ErrorKind::UnexpectedEof => {
            "the TLS handshake failed: the peer closed the connection".into()
        }
        None => format!("the TLS handshake failed: {err}"),
    }
}

/// What a new connection speaks, from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// A TLS handshake record: a peer connecting with TLS.
    Tls,
    /// Anything else: a plain tatzelwurm hello, or a stray client.
    Plain,
    /// The peer closed before sending a byte.
    Closed,
}

/// Peeks at the first byte of a new connection without consuming it, so that the coordinator
/// can tell a TLS peer from a plain one (and answer each in a language it reads).
pub async fn sniff(tcp: &TcpStream) -> io::Result<Opening> {
    let mut first = [0u8; 1];
    Ok(match tcp.peek(&mut first).await? {
        0 => Opening::Closed,
        _ if first[0] == TLS_HANDSHAKE_RECORD => Opening::Tls,
        _ => Opening::Plain,
    })
}

/// The sentence a TLS coordinator sends (in a plain `Refused`) to a peer that connected
/// without TLS.
pub fn plain_refusal() -> String {
    format!("this coordinator only accepts TLS; connect with --tls ({TLS_ENV}=1)")
}

/// The reason a plain coordinator logs for a peer that opened with a TLS handshake (the peer
/// cannot read a plain answer; it reports `TlsError::NotTls` on its side).
pub fn tls_at_plain_refusal() -> String {
    format!("the peer opened a TLS handshake, but this coordinator serves plain TCP; start it with --tls-cert and --tls-key, or connect without --tls (unset {TLS_ENV})")
}
