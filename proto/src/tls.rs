//! TLS on the protocol port (rustls with the ring provider).
//!
//! - [`ClientTls`] (`tls/client.rs`): what a worker, an actioner or the Python client trusts: the system's root
//!   certificates, or only the CA in one PEM file (`--tls-ca FILE`, `TATZELWURM_TLS_CA`).
//!   `Connection::connect_with` uses it to verify the coordinator's certificate against the host
//!   part of the address it dials.
//! - [`ServerTls`] (`tls/server.rs`): the coordinator's certificate chain and key (`--tls-cert`, `--tls-key`);
//!   `Connection::accept_tls` uses it.
//! - [`sniff`]: a coordinator that serves TLS peeks at a new connection's first byte, so that a
//!   plain peer is answered with a plain `Refused` it can read instead of a TLS error it cannot.
//! - [`TlsError`] (`tls/error.rs`): each way a client's TLS connect fails, as one sentence that
//!   says what to do; [`ConnectError`]: a TCP or a TLS failure of `connect_with`.
//!
//! Nothing here crosses the wire as a message: TLS wraps the frames, which stay as they are.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::path::Path;
use std::sync::Arc;

mod client;
mod error;
mod server;
pub use client::ClientTls;
pub use error::{ConnectError, TlsError};
pub use server::{plain_refusal, sniff, tls_at_plain_refusal, Opening, ServerTls};

/// The environment variable that turns TLS on for workers, actioners and the Python client
/// (`1`; `0` or unset: plain TCP), as `--tls` does.
pub const TLS_ENV: &str = "TATZELWURM_TLS";

/// The environment variable naming a PEM file of the CA(s) to trust instead of the system's
/// roots, as `--tls-ca FILE` does; setting it turns TLS on unless `TATZELWURM_TLS=0`.
pub const TLS_CA_ENV: &str = "TATZELWURM_TLS_CA";

/// The crypto of every config here: ring, named explicitly so that no process-wide default
/// has to be installed first.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file; none at all is an error, as is a file that cannot be read.
fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let bad = |e: rustls::pki_types::pem::Error| {
        match e {
        rustls::pki_types::pem::Error::Io(io) => {
            format!("cannot read the {what} {shown} ({io}); check the path")
        }
        other => format!("the {what} {shown} is not PEM ({other}); pass a file with `-----BEGIN CERTIFICATE-----` blocks"),
    }
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(bad)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    if certs.is_empty() {
        return Err(format!(
            "the {what} {shown} holds no certificate; pass a PEM file with `-----BEGIN CERTIFICATE-----` blocks"
        ));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests;
