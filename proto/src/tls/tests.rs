//! TLS over loopback with certificates made at test time (rcgen): frames cross a TLS
//! connection, and each way a connect fails gets its own `TlsError`.

use super::client::{choose, host_of, plain_name};
use super::*;
use crate::handshake::{Hello, HelloReply, Role};
use crate::{Connection, ProtoError};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// A CA, and the files of a server certificate it signed.
struct Pki {
    dir: PathBuf,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh directory under the system's temp dir, removed with the `Pki`.
fn scratch_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tatzelwurm-tls-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A CA and a server certificate for `names`, valid from `not_before` to `not_after`
/// (years, UTC, 1 January).
fn make_pki(names: &[&str], valid: (i32, i32)) -> Pki {
    let dir = scratch_dir();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    // Each CA a name of its own, as real ones have: a client then finds no issuer for another
    // CA's certificate (rather than one of the same name whose signature does not fit).
    ca_params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("test CA {}", dir.display()),
    );
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.not_before = rcgen::date_time_ymd(valid.0, 1, 1);
    params.not_after = rcgen::date_time_ymd(valid.1, 1, 1);
    let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let pki = Pki {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        dir,
    };
    std::fs::write(&pki.ca, ca_cert.pem()).unwrap();
    std::fs::write(&pki.cert, cert.pem()).unwrap();
    std::fs::write(&pki.key, key.serialize_pem()).unwrap();
    pki
}

fn valid_now() -> (i32, i32) {
    (2020, 2100)
}

/// Serves one connection as a TLS coordinator would: sniff, TLS accept, read a hello, answer
/// `Refused` with the hello's name (so the client sees the frames crossed). The result is what
/// the sniff saw and the accept's error, if any.
async fn serve_once(
    tls: ServerTls,
) -> (String, tokio::task::JoinHandle<(Opening, Option<String>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let opening = sniff(&tcp).await.unwrap();
        let mut conn = match Connection::<Hello, HelloReply>::accept_tls(tcp, &tls).await {
            Ok(conn) => conn,
            Err(reason) => return (opening, Some(reason)),
        };
        assert!(conn.is_tls());
        let hello = conn.recv().await.unwrap().unwrap();
        let Role::Actioner { name } = hello.role else {
            panic!("an actioner's hello")
        };
        conn.send(&HelloReply::Refused { reason: name })
            .await
            .unwrap();
        (opening, None)
    });
    (addr, server)
}

async fn connect(
    addr: &str,
    tls: &ClientTls,
) -> Result<Connection<HelloReply, Hello>, ConnectError> {
    Connection::connect_with(addr, Some(tls)).await
}

fn tls_error(result: Result<Connection<HelloReply, Hello>, ConnectError>) -> TlsError {
    match result {
        Err(ConnectError::Tls(err)) => err,
        Err(other) => panic!("expected a TLS error, got {other}"),
        Ok(_) => panic!("expected a TLS error, got a connection"),
    }
}

/// Frames cross a TLS connection both ways, verified against the CA file, and the coordinator's
/// sniff saw a TLS opening.
#[tokio::test]
async fn frames_cross_a_tls_connection() {
    let pki = make_pki(&["127.0.0.1"], valid_now());
    let (addr, server) = serve_once(ServerTls::load(&pki.cert, &pki.key).unwrap()).await;
    let client = ClientTls::new(Some(&pki.ca)).unwrap();
    let mut conn = connect(&addr, &client).await.unwrap();
    assert!(conn.is_tls());
    conn.send(&Hello::new(Role::Actioner {
        name: "over tls".into(),
    }))
    .await
    .unwrap();
    let reply = conn.recv().await.unwrap().unwrap();
    assert_eq!(
        reply,
        HelloReply::Refused {
            reason: "over tls".into()
        }
    );
    assert_eq!(server.await.unwrap(), (Opening::Tls, None));
}

/// A TLS peer that goes away without TLS's close_notify, as ours do, reads as a clean close
/// between frames (not an error to log), and as a cut frame inside one.
#[tokio::test]
async fn a_close_without_close_notify_is_a_clean_close() {
    let pki = make_pki(&["127.0.0.1"], valid_now());
    let tls = ServerTls::load(&pki.cert, &pki.key).unwrap();
    let client = ClientTls::new(Some(&pki.ca)).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    for cut_inside_a_frame in [false, true] {
        let accept = async {
            let (tcp, _) = listener.accept().await.unwrap();
            Connection::<Hello, HelloReply>::accept_tls(tcp, &tls).await
        };
        let (peer, server) = tokio::join!(connect(&addr, &client), accept);
        let (mut peer, mut server) = (peer.unwrap(), server.unwrap());
        peer.send(&Hello::new(Role::Actioner { name: "x".into() }))
            .await
            .unwrap();
        assert!(server.recv().await.unwrap().is_some(), "the hello arrives");
        // The peer reads an answer, as ours always do, and with it what TLS sent after the
        // handshake (session tickets): a socket closed with unread bytes would be reset.
        let answer = HelloReply::Refused { reason: "x".into() };
        server.send(&answer).await.unwrap();
        assert_eq!(peer.recv().await.unwrap(), Some(answer));
        if cut_inside_a_frame {
            // A length prefix that announces more than ever comes.
            let (_, mut writer) = peer.split();
            writer.raw().write_all(&[0, 0, 0, 9, 1]).await.unwrap();
            writer.raw().flush().await.unwrap();
        } else {
            drop(peer);
        }
        let end = server.recv().await;
        if cut_inside_a_frame {
            assert!(matches!(end, Err(ProtoError::Truncated)), "{end:?}");
        } else {
            assert!(matches!(end, Ok(None)), "{end:?}");
        }
    }
}

/// A certificate signed by a CA the client does not trust reads as untrusted, names the CA
/// file it was checked against and says to pass --tls-ca; the coordinator learns the peer
/// rejected its certificate.
#[tokio::test]
async fn another_ca_is_untrusted() {
    let pki_served = make_pki(&["127.0.0.1"], valid_now());
    let other = make_pki(&["127.0.0.1"], valid_now());
    let (addr, server) =
        serve_once(ServerTls::load(&pki_served.cert, &pki_served.key).unwrap()).await;
    let client = ClientTls::new(Some(&other.ca)).unwrap();
    let err = tls_error(connect(&addr, &client).await);
    assert!(matches!(err, TlsError::Untrusted { .. }), "{err:?}");
    let sentence = err.to_string();
    assert!(
        sentence.contains("--tls-ca FILE") && sentence.contains(&other.ca.display().to_string()),
        "{sentence}"
    );
    let (_, accept_error) = server.await.unwrap();
    let accept_error = accept_error.expect("the accept fails");
    assert!(
        accept_error.contains("rejected this coordinator's certificate"),
        "{accept_error}"
    );
}

/// An expired certificate says when it expired.
#[tokio::test]
async fn expired_certificate_says_when() {
    let pki = make_pki(&["127.0.0.1"], (2019, 2020));
    let (addr, _server) = serve_once(ServerTls::load(&pki.cert, &pki.key).unwrap()).await;
    let err = tls_error(connect(&addr, &ClientTls::new(Some(&pki.ca)).unwrap()).await);
    assert_eq!(
        err,
        TlsError::Expired {
            addr: addr.clone(),
            at: Some("2020-01-01T00:00:00Z".into())
        }
    );
    assert!(
        err.to_string()
            .contains("expired at 2020-01-01T00:00:00Z; renew"),
        "{err}"
    );
}

/// A certificate for another name than the one dialled says which names it holds.
#[tokio::test]
async fn wrong_name_lists_the_certificates_names() {
    let pki = make_pki(&["coordinator.example"], valid_now());
    let (addr, _server) = serve_once(ServerTls::load(&pki.cert, &pki.key).unwrap()).await;
    let err = tls_error(connect(&addr, &ClientTls::new(Some(&pki.ca)).unwrap()).await);
    let TlsError::WrongName { host, names, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(host, "127.0.0.1");
    assert_eq!(names, &["coordinator.example"]);
    assert!(
        err.to_string()
            .contains("is not valid for `127.0.0.1` (it names coordinator.example)"),
        "{err}"
    );
}

/// A TLS client at a plain server that answers its ClientHello with a plain frame (as a plain
/// coordinator does) reports that the server does not speak TLS.
#[tokio::test]
async fn tls_client_at_a_plain_server_is_told() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let opening = sniff(&tcp).await.unwrap();
        let mut conn = Connection::<Hello, HelloReply>::new(tcp).unwrap();
        conn.set_max_frame_len(crate::MAX_HELLO_LEN);
        assert!(conn.recv().await.is_err(), "a ClientHello is no frame");
        let refusal = HelloReply::Refused {
            reason: tls_at_plain_refusal(),
        };
        conn.send(&refusal).await.unwrap();
        opening
    });
    let pki = make_pki(&["127.0.0.1"], valid_now());
    let err = tls_error(connect(&addr, &ClientTls::new(Some(&pki.ca)).unwrap()).await);
    assert_eq!(err, TlsError::NotTls { addr });
    assert!(err.to_string().contains("connect without --tls"), "{err}");
    assert_eq!(server.await.unwrap(), Opening::Tls);
}

/// A plain hello is sniffed as plain: its first byte is the high byte of a small length.
#[tokio::test]
async fn plain_hello_is_sniffed_as_plain() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut client = Connection::<HelloReply, Hello>::connect(&addr)
        .await
        .unwrap();
    let (tcp, _) = listener.accept().await.unwrap();
    client
        .send(&Hello::new(Role::Actioner {
            name: "plain".into(),
        }))
        .await
        .unwrap();
    assert_eq!(sniff(&tcp).await.unwrap(), Opening::Plain);
    assert!(!client.is_tls());
    drop(client);
}

/// The coordinator's files are checked at start, each problem in a sentence naming the file.
#[test]
fn server_files_are_checked() {
    let pki = make_pki(&["127.0.0.1"], valid_now());
    let other = make_pki(&["127.0.0.1"], valid_now());
    let missing = pki.dir.join("missing.pem");
    let err = ServerTls::load(&missing, &pki.key).unwrap_err();
    assert!(
        err.starts_with("cannot read the certificate file (--tls-cert)"),
        "{err}"
    );
    let err = ServerTls::load(&pki.cert, &pki.cert).unwrap_err();
    assert!(err.contains("holds no private key"), "{err}");
    let err = ServerTls::load(&pki.key, &pki.key).unwrap_err();
    assert!(err.contains("holds no certificate"), "{err}");
    let err = ServerTls::load(&pki.cert, &other.key).unwrap_err();
    assert!(
        err.contains("pass the key that was made with that certificate"),
        "{err}"
    );
    let err = ClientTls::new(Some(&missing)).unwrap_err();
    assert!(
        err.starts_with("cannot read the CA file (--tls-ca)"),
        "{err}"
    );
}

/// Flags win over the environment, a CA turns TLS on, `TATZELWURM_TLS=0` turns it off, and a
/// value that is neither is a sentence.
#[test]
fn flags_and_environment_choose_tls() {
    let ca = Path::new("/ca.pem");
    let env_ca = || Some(PathBuf::from("/env-ca.pem"));
    assert_eq!(choose(false, None, None, None), Ok(None));
    assert_eq!(choose(true, None, None, None), Ok(Some(None)));
    assert_eq!(
        choose(false, Some(ca), None, None),
        Ok(Some(Some(ca.into())))
    );
    assert_eq!(choose(false, None, Some("1"), None), Ok(Some(None)));
    assert_eq!(choose(false, None, Some("0"), None), Ok(None));
    assert_eq!(choose(false, None, None, env_ca()), Ok(Some(env_ca())));
    assert_eq!(choose(false, None, Some("off"), env_ca()), Ok(None));
    assert_eq!(choose(true, None, Some("0"), env_ca()), Ok(Some(env_ca())));
    assert_eq!(
        choose(false, Some(ca), None, env_ca()),
        Ok(Some(Some(ca.into())))
    );
    let err = choose(false, None, Some("maybe"), None).unwrap_err();
    assert!(
        err.starts_with("TATZELWURM_TLS is `maybe`; set it to 1"),
        "{err}"
    );
}

/// webpki's names are shown as a user writes them.
#[test]
fn names_are_shown_plainly() {
    assert_eq!(plain_name("DnsName(\"q.example\")"), "q.example");
    assert_eq!(plain_name("IpAddress(10.0.0.1)"), "10.0.0.1");
    assert_eq!(plain_name("something else"), "something else");
}

/// The host a certificate must name is the address without its port (and brackets).
#[test]
fn host_is_the_address_without_its_port() {
    assert_eq!(host_of("127.0.0.1:5677"), "127.0.0.1");
    assert_eq!(host_of("queue.example:5677"), "queue.example");
    assert_eq!(host_of("[::1]:5677"), "::1");
    assert_eq!(host_of("queue.example"), "queue.example");
}
