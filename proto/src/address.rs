//! The one rule for the coordinator's address as a peer gives it (`--coordinator`,
//! `TATZELWURM_COORDINATOR`): HOST:PORT. Not on the wire. An address that cannot be parsed
//! would fail every connect the same way, so programs check it before connecting and stop at
//! once with this sentence.

use crate::{COORDINATOR_ENV, DEFAULT_COORDINATOR};
use std::net::SocketAddr;

/// `address` if it has the form HOST:PORT (a host name, an IPv4 address or a bracketed IPv6
/// one, and a port from 1 to 65535); whether the host resolves and listens is left to
/// connecting. The error is one sentence that says how to write it.
pub fn check_coordinator_address(address: &str) -> Result<String, String> {
    let well_formed = address.parse::<SocketAddr>().is_ok_and(|a| a.port() != 0)
        || address.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty()
                && !host.contains([':', '[', ']', '/', ' '])
                && port.parse::<u16>().is_ok_and(|port| port != 0)
        });
    if well_formed {
        Ok(address.to_string())
    } else {
        Err(format!(
            "not an address of the form HOST:PORT (such as {DEFAULT_COORDINATOR}); set --coordinator or {COORDINATOR_ENV} to one"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Host names, IPv4 and bracketed IPv6 addresses with a port pass; no port, port 0, a port
    /// over 65535 or a bare IPv6 address do not.
    #[test]
    fn address_shapes() {
        for good in [
            "127.0.0.1:5677",
            "localhost:1",
            "[::1]:5677",
            "box.example:65535",
        ] {
            assert_eq!(check_coordinator_address(good).as_deref(), Ok(good));
        }
        for bad in [
            "localhost",
            "127.0.0.1:2024x",
            "127.0.0.1:0",
            "127.0.0.1:65536",
            ":5677",
            "::1:5677",
            "http://h:1",
            "",
        ] {
            let err = check_coordinator_address(bad).unwrap_err();
            assert!(
                err.contains("HOST:PORT") && err.contains(COORDINATOR_ENV),
                "{bad}"
            );
        }
    }
}
