//! `ClientTls`: what a worker, an actioner or the Python client trusts, how the flags and the
//! environment choose it, and the client's side of the handshake, whose failures it sorts into
//! `TlsError` sentences.

use super::{provider, read_certs, ConnectError, TlsError, TLS_CA_ENV, TLS_ENV};
use crate::stream::Stream;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, RootCertStore};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// How a peer connects with TLS: the roots it verifies the coordinator's certificate against.
/// Cheap to clone (the rustls config is shared).
#[derive(Clone)]
pub struct ClientTls {
    connector: TlsConnector,
    trust: Trust,
}

/// Whom a `ClientTls` trusts, as its untrusted-certificate sentence names it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Trust {
    System,
    Ca(PathBuf),
}

impl ClientTls {
    /// Trusts only the CA certificate(s) in the PEM file `ca`, or with `None` the system's root
    /// certificates (read once per process). The error is one sentence for the user.
    pub fn new(ca: Option<&Path>) -> Result<ClientTls, String> {
        let (config, trust) = match ca {
            Some(path) => (
                Arc::new(client_config(ca_roots(path)?)),
                Trust::Ca(path.into()),
            ),
            None => (system_config()?, Trust::System),
        };
        Ok(ClientTls {
            connector: TlsConnector::from(config),
            trust,
        })
    }

    /// TLS as `TATZELWURM_TLS` and `TATZELWURM_TLS_CA` say: `None` for plain TCP.
    pub fn from_env() -> Result<Option<ClientTls>, String> {
        ClientTls::from_flags(false, None)
    }

    /// TLS as the flags `--tls` and `--tls-ca FILE` say, falling back to the environment
    /// (`TATZELWURM_TLS`, `TATZELWURM_TLS_CA`) for what they leave open; `--tls-ca` alone turns
    /// TLS on. `None` for plain TCP. This is the one call a program with those flags needs.
    pub fn from_flags(tls: bool, ca: Option<&Path>) -> Result<Option<ClientTls>, String> {
        let switch = match std::env::var(TLS_ENV) {
            Ok(value) => Some(value),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => Some("(not text)".into()),
        };
        let env_ca = std::env::var_os(TLS_CA_ENV)
            .filter(|ca| !ca.is_empty())
            .map(PathBuf::from);
        match choose(tls, ca, switch.as_deref(), env_ca)? {
            Some(ca) => ClientTls::new(ca.as_deref()).map(Some),
            None => Ok(None),
        }
    }

    /// The TLS handshake over a connected socket, verifying the certificate against the host
    /// part of `addr` (`HOST:PORT`).
    pub(crate) async fn handshake(
        &self,
        addr: &str,
        tcp: TcpStream,
    ) -> Result<Stream, ConnectError> {
        let host = host_of(addr);
        let name = ServerName::try_from(host.to_string()).map_err(|_| TlsError::BadName {
            addr: addr.to_string(),
        })?;
        match self.connector.connect(name, tcp).await {
            Ok(tls) => Ok(Stream::Tls(Box::new(tls.into()))),
            Err(err) => Err(self.explain(addr, err)),
        }
    }

    /// Sorts a failed handshake into the sentence a user can act on.
    fn explain(&self, addr: &str, err: io::Error) -> ConnectError {
        let addr = addr.to_string();
        let Some(tls) = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        else {
            if err.kind() == io::ErrorKind::UnexpectedEof {
                return TlsError::Handshake {
                    addr,
                    detail: "the server closed the connection during the handshake".into(),
                }
                .into();
            }
            return ConnectError::Io(err);
        };
        match tls {
            rustls::Error::InvalidCertificate(cert) => match cert {
                CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                    TlsError::Untrusted {
                        addr,
                        trusted: match &self.trust {
                            Trust::System => "any of the system's root certificates".into(),
                            Trust::Ca(path) => format!("the CA in {}", path.display()),
                        },
                    }
                }
                CertificateError::Expired => TlsError::Expired { addr, at: None },
                CertificateError::ExpiredContext { not_after, .. } => TlsError::Expired {
                    addr,
                    at: Some(show_time(*not_after)),
                },
                CertificateError::NotValidYet => TlsError::NotYetValid { addr, from: None },
                CertificateError::NotValidYetContext { not_before, .. } => TlsError::NotYetValid {
                    addr,
                    from: Some(show_time(*not_before)),
                },
                CertificateError::NotValidForName => TlsError::WrongName {
                    host: host_of(&addr).to_string(),
                    addr,
                    names: Vec::new(),
                },
                CertificateError::NotValidForNameContext { presented, .. } => TlsError::WrongName {
                    host: host_of(&addr).to_string(),
                    addr,
                    names: presented.iter().map(|name| plain_name(name)).collect(),
                },
                other => TlsError::Handshake {
                    addr,
                    detail: format!("its certificate is not valid: {}", other),
                },
            },
            // A plain coordinator answers a ClientHello with a plain `Refused` frame, whose
            // first byte (0) is no TLS record type.
            rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
                TlsError::NotTls { addr }
            }
            other => TlsError::Handshake {
                addr,
                detail: other.to_string(),
            },
        }
        .into()
    }
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("trust", &self.trust)
            .finish()
    }
}

/// Decides from the flags and the environment whether to use TLS: `None` for plain TCP,
/// `Some(ca)` for TLS trusting `ca` (or the system's roots). Pure, so that it is tested without
/// touching the process environment.
pub(super) fn choose(
    tls: bool,
    ca: Option<&Path>,
    env_switch: Option<&str>,
    env_ca: Option<PathBuf>,
) -> Result<Option<Option<PathBuf>>, String> {
    let switch = match env_switch.map(str::trim) {
        None => None,
        Some("1" | "true" | "yes" | "on") => Some(true),
        Some("" | "0" | "false" | "no" | "off") => Some(false),
        Some(other) => {
            return Err(format!(
                "{TLS_ENV} is `{other}`; set it to 1 to connect with TLS, or to 0 (or unset it) to connect without"
            ))
        }
    };
    let on = tls || ca.is_some() || switch.unwrap_or(env_ca.is_some());
    Ok(on.then(|| ca.map(Path::to_path_buf).or(env_ca)))
}

/// The client config for the system's roots, made once per process: reading and parsing the
/// system's certificate store takes milliseconds, and a Python program may connect many times.
fn system_config() -> Result<Arc<ClientConfig>, String> {
    static SYSTEM: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    SYSTEM
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _unusable) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                return Err(format!(
                    "no root certificates were found on this system{why}; pass --tls-ca FILE (or set {TLS_CA_ENV}) with the CA that signed the coordinator's certificate"
                ));
            }
            Ok(Arc::new(client_config(roots)))
        })
        .clone()
}

fn client_config(roots: RootCertStore) -> ClientConfig {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// The roots in a CA file given by the user.
fn ca_roots(path: &Path) -> Result<RootCertStore, String> {
    let certs = read_certs(path, "CA file (--tls-ca)")?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| {
            format!(
                "the CA file {} holds a certificate that cannot serve as a root ({}); pass the PEM certificate of the CA that signed the coordinator's certificate",
                path.display(),
                e
            )
        })?;
    }
    Ok(roots)
}

/// The host part of `HOST:PORT` (`[::1]:5677` -> `::1`), which the certificate must name.
pub(super) fn host_of(addr: &str) -> &str {
    let host = match addr.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => addr,
    };
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// A name as a certificate holds it, without webpki's debug dress (`DnsName("x")` -> `x`,
/// `IpAddress(1.2.3.4)` -> `1.2.3.4`).
pub(super) fn plain_name(presented: &str) -> String {
    let inner = ["DnsName(", "IpAddress("]
        .iter()
        .find_map(|kind| presented.strip_prefix(kind)?.strip_suffix(')'))
        .unwrap_or(presented);
    inner.trim_matches('"').to_string()
}

/// A certificate time as RFC 3339 in UTC.
fn show_time(time: UnixTime) -> String {
    i64::try_from(time.as_secs())
        .ok()
        .and_then(|secs| jiff::Timestamp::from_second(secs).ok())
        .map_or_else(
            || format!("{} s after 1970", time.as_secs()),
            |t| t.to_string(),
        )
}
