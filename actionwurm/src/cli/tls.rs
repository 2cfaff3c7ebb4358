//! `--tls` and `--tls-ca FILE`: how actionwurm reaches a coordinator that serves TLS
//! (`tatzelwurm --tls-cert FILE --tls-key FILE`). Global flags; without them the environment
//! decides (`TATZELWURM_TLS=1`, `TATZELWURM_TLS_CA=FILE`, read by the client crate as workers
//! and the Python client read them), and the flags win over it (`ClientTls::from_flags`).

use clap::Args;
use std::path::PathBuf;

/// The TLS flags as typed.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// Connect over TLS, trusting the system's root certificates (or --tls-ca); the same as
    /// TATZELWURM_TLS=1.
    #[arg(long, global = true)]
    pub tls: bool,
    /// Connect over TLS, trusting only the CA certificates in this PEM file (implies --tls);
    /// the same as TATZELWURM_TLS_CA=FILE.
    #[arg(long, global = true, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
}

impl TlsArgs {
    /// Whether the flags ask for TLS (else the environment decides).
    pub fn enabled(&self) -> bool {
        self.tls || self.tls_ca.is_some()
    }
}
