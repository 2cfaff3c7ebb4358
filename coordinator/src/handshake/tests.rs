//! `open` over loopback, with a certificate made at test time: each pairing of a plain or TLS
//! coordinator with a plain or TLS peer ends as it should, and silence is bounded.

use super::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use std::path::PathBuf;
use tatzelwurm_proto::tls::{ClientTls, ConnectError, TlsError};
use tokio::net::TcpListener;

const LIMIT: Duration = Duration::from_secs(5);

/// The coordinator's certificate for 127.0.0.1 and its CA, as PEM files.
struct Files {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    server: ServerTls,
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "handshake test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("ca.pem"), ca.pem()).unwrap();
    std::fs::write(path("cert.pem"), cert.pem()).unwrap();
    std::fs::write(path("key.pem"), key.serialize_pem()).unwrap();
    let server = ServerTls::load(&path("cert.pem"), &path("key.pem")).unwrap();
    Files {
        ca: path("ca.pem"),
        server,
        _dir: dir,
    }
}

/// Accepts one connection and runs `open` on it as a coordinator with `tls` and no token.
async fn coordinator(
    tls: Option<ServerTls>,
    limit: Duration,
) -> (String, tokio::task::JoinHandle<Result<Role, String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        open(socket, tls.as_ref(), limit, None)
            .await
            .map(|(_, role)| role)
    });
    (addr, task)
}

fn hello() -> Hello {
    Hello::new(Role::Actioner {
        name: "handshake test".into(),
    })
}

/// A TLS peer at a TLS coordinator is welcomed with its role.
#[tokio::test]
async fn tls_peer_at_a_tls_coordinator_gets_in() {
    let files = files();
    let (addr, coordinator) = coordinator(Some(files.server.clone()), LIMIT).await;
    let tls = ClientTls::new(Some(&files.ca)).unwrap();
    let mut peer = Connection::<HelloReply, Hello>::connect_with(&addr, Some(&tls))
        .await
        .unwrap();
    peer.send(&hello()).await.unwrap();
    assert_eq!(coordinator.await.unwrap(), Ok(hello().role));
}

/// A plain peer at a TLS coordinator reads a plain refusal that says to connect with --tls.
#[tokio::test]
async fn plain_peer_at_a_tls_coordinator_is_told_in_plain() {
    let files = files();
    let (addr, coordinator) = coordinator(Some(files.server.clone()), LIMIT).await;
    let mut peer = Connection::<HelloReply, Hello>::connect(&addr)
        .await
        .unwrap();
    peer.send(&hello()).await.unwrap();
    let reason = tls::plain_refusal();
    assert_eq!(
        peer.recv().await.unwrap(),
        Some(HelloReply::Refused {
            reason: reason.clone()
        })
    );
    assert_eq!(coordinator.await.unwrap(), Err(reason));
}

/// A TLS peer at a plain coordinator learns that the server does not speak TLS, and the
/// coordinator's reason says what happened.
#[tokio::test]
async fn tls_peer_at_a_plain_coordinator_is_told() {
    let files = files();
    let (addr, coordinator) = coordinator(None, LIMIT).await;
    let tls = ClientTls::new(Some(&files.ca)).unwrap();
    let Err(err) = Connection::<HelloReply, Hello>::connect_with(&addr, Some(&tls)).await else {
        panic!("a TLS connect to a plain coordinator succeeded");
    };
    assert!(
        matches!(&err, ConnectError::Tls(TlsError::NotTls { .. })),
        "{err}"
    );
    assert_eq!(coordinator.await.unwrap(), Err(tls::tls_at_plain_refusal()));
}

/// A peer that connects and says nothing, at a TLS coordinator, is let go after the limit,
/// which covers the first byte as well as the hello.
#[tokio::test]
async fn silence_is_bounded_before_the_first_byte() {
    let files = files();
    let limit = Duration::from_millis(200);
    let (addr, coordinator) = coordinator(Some(files.server.clone()), limit).await;
    let _silent = TcpStream::connect(&addr).await.unwrap();
    let reason = tokio::time::timeout(LIMIT, coordinator)
        .await
        .expect("open gives up within its limit")
        .unwrap()
        .unwrap_err();
    assert_eq!(
        reason,
        "no hello within 200 ms; a peer must introduce itself first"
    );
}
