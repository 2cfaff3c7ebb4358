//! TLS on the coordinator's port (`tatzelwurm --tls-cert FILE --tls-key FILE`), with
//! certificates made at run time by rcgen: workers and actioners connect with `--tls-ca FILE`
//! or `TATZELWURM_TLS=1` / `TATZELWURM_TLS_CA`, the token never crosses the wire in clear text,
//! and every mismatch gets one sentence: a plain peer at a TLS coordinator, a TLS peer at a
//! plain one, an untrusted, an expired and a wrong-name certificate.
//!
//! The harness's helpers speak plain TCP, so the commands here go through `act`, which gives
//! `actionwurm` the TLS environment.

use crate::TASK_TIMEOUT;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use tatzelwurm_e2e::actionwurm::{self, Action};
use tatzelwurm_e2e::{example, wait_for, Cluster, ClusterOptions, WorkerSpec};
use tatzelwurm_proto::tls::{TLS_CA_ENV, TLS_ENV};
use tatzelwurm_proto::TOKEN_ENV;
use tempfile::TempDir;

const TOKEN: &str = "tls-test-token-4f9c2a";

/// A CA and a coordinator certificate it signed, as PEM files in a temp dir of their own.
struct Pki {
    _dir: TempDir,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    /// A CA named `ca_name` and a certificate for `names` valid from the first of January of
    /// `years.0` to that of `years.1`.
    fn new(ca_name: &str, names: &[&str], years: (i32, i32)) -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("tatzelwurm-tls-")
            .tempdir()
            .expect("a temp dir");
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, ca_name);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("a CA certificate");
        let key = KeyPair::generate().expect("a key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("certificate params");
        params.not_before = rcgen::date_time_ymd(years.0, 1, 1);
        params.not_after = rcgen::date_time_ymd(years.1, 1, 1);
        let cert = params.signed_by(&key, &ca, &ca_key).expect("a certificate");
        let pki = Pki {
            ca: dir.path().join("ca.pem"),
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            _dir: dir,
        };
        std::fs::write(&pki.ca, ca.pem()).unwrap();
        std::fs::write(&pki.cert, cert.pem()).unwrap();
        std::fs::write(&pki.key, key.serialize_pem()).unwrap();
        pki
    }

    /// A CA and a certificate for 127.0.0.1, valid now.
    fn valid(ca_name: &str) -> Pki {
        Pki::new(ca_name, &["127.0.0.1"], (2020, 2100))
    }

    /// The coordinator's flags that serve this certificate.
    fn flags(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.cert.display().to_string(),
            "--tls-key".into(),
            self.key.display().to_string(),
        ]
    }
}

/// A cluster whose coordinator serves TLS with `pki`'s certificate and has the test's token.
fn tls_cluster(pki: &Pki) -> Cluster {
    let flags = pki.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Cluster::start_configured(
        ClusterOptions {
            token: Some(TOKEN.into()),
            ..ClusterOptions::default()
        },
        &flags,
    )
}

/// The environment of a TLS client trusting `ca` (the system's roots with `None`) and showing
/// the token.
fn tls_env(ca: Option<&Path>) -> Vec<(String, String)> {
    let mut env = vec![
        (TLS_ENV.to_string(), "1".to_string()),
        (TOKEN_ENV.to_string(), TOKEN.to_string()),
    ];
    if let Some(ca) = ca {
        env.push((TLS_CA_ENV.to_string(), ca.display().to_string()));
    }
    env
}

/// `actionwurm --coordinator ADDR ARGS...` with the environment `env` (bounded).
fn act(cluster: &Cluster, addr: &str, env: &[(String, String)], args: &[&str]) -> Action {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let log = cluster.log_dir().join("actionwurm.log");
    actionwurm::run(
        &cluster.bins().actionwurm,
        Some(addr),
        args,
        &env,
        TASK_TIMEOUT,
        Some(&log),
    )
}

/// Forwards one connection from a listener of its own to `target` and hands back every byte
/// the client sent, once both sides closed: what an eavesdropper on the network sees.
fn eavesdropper(target: &str) -> (String, mpsc::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the eavesdropper");
    let addr = listener.local_addr().unwrap().to_string();
    let target = target.to_string();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let Ok((mut client, _)) = listener.accept() else {
            return;
        };
        let mut server = TcpStream::connect(&target).expect("reach the coordinator");
        let (mut client_back, mut server_back) =
            (client.try_clone().unwrap(), server.try_clone().unwrap());
        let answers = thread::spawn(move || {
            let _ = std::io::copy(&mut server_back, &mut client_back);
            let _ = client_back.shutdown(Shutdown::Write);
        });
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = client.read(&mut buf) {
            if n == 0 || server.write_all(&buf[..n]).is_err() {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        let _ = server.shutdown(Shutdown::Write);
        let _ = answers.join();
        let _ = tx.send(seen);
    });
    (addr, rx)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A worker started with `--tls-ca` and an actioner with `TATZELWURM_TLS=1` and
/// `TATZELWURM_TLS_CA` (or `--tls-ca`) run a task through a TLS coordinator with a token; an eavesdropper
/// between the actioner and the coordinator sees TLS records and never the token.
#[test]
fn a_worker_and_an_actioner_run_a_task_over_tls() {
    let pki = Pki::valid("tatzelwurm test CA");
    let cluster = tls_cluster(&pki);
    let env = tls_env(Some(&pki.ca));
    let ca = pki.ca.display().to_string();
    let _worker = cluster.spawn_worker(
        WorkerSpec::new(1)
            .name("tls-worker")
            .args(&["--tls", "--tls-ca", &ca]),
    );
    wait_for("the TLS worker in `worker list`", TASK_TIMEOUT, || {
        let workers = act(
            &cluster,
            cluster.addr(),
            &env,
            &["worker", "list", "--json"],
        )
        .ok()
        .json();
        workers
            .as_array()?
            .iter()
            .find(|w| w["name"] == "tls-worker")
            .cloned()
    });

    let added = act(
        &cluster,
        cluster.addr(),
        &env,
        &[
            "task",
            "add",
            &example("square"),
            "--args",
            "[12]",
            "--play",
        ],
    )
    .ok();
    let id = added.ids()[0].to_string();
    act(&cluster, cluster.addr(), &env, &["task", "wait", &id]).ok();
    let task: Value = act(
        &cluster,
        cluster.addr(),
        &env,
        &["task", "show", &id, "--json"],
    )
    .ok()
    .json();
    assert_eq!(
        (&task["state"], &task["result"], &task["worker"]),
        (
            &serde_json::json!("completed"),
            &serde_json::json!(144),
            &serde_json::json!("tls-worker")
        ),
        "{task}"
    );

    // The same with actionwurm's flags instead of the environment.
    let token_only = vec![(TOKEN_ENV.to_string(), TOKEN.to_string())];
    let shown: Value = act(
        &cluster,
        cluster.addr(),
        &token_only,
        &["--tls-ca", &ca, "task", "show", &id, "--json"],
    )
    .ok()
    .json();
    assert_eq!(shown["result"], serde_json::json!(144), "{shown}");

    let (proxy, seen) = eavesdropper(cluster.addr());
    act(&cluster, &proxy, &env, &["task", "show", &id]).ok();
    let seen = seen
        .recv_timeout(TASK_TIMEOUT)
        .expect("the proxied connection ends");
    assert_eq!(
        seen.first(),
        Some(&0x16),
        "the client opened with a TLS handshake"
    );
    assert!(
        !contains(&seen, TOKEN.as_bytes()),
        "the token crossed the wire in clear text"
    );
    // Our peers close without TLS's close_notify; that is a clean close, not a warning.
    let log = cluster.coordinator_log();
    assert!(
        !log.contains("close_notify") && !log.contains("WARN tatzelwurm::actioner_conn"),
        "{log}"
    );
    assert!(
        !cluster.coordinator_log().contains(TOKEN),
        "the coordinator logged the token"
    );
}

/// A plain actioner and a plain worker at a TLS coordinator are refused with the sentence that
/// says to connect with --tls; a TLS actioner at a plain coordinator is told that the server
/// does not speak TLS, and the coordinator logs why; TLS settings that cannot be used are one
/// sentence each.
#[test]
fn plain_and_tls_peers_on_the_wrong_side_are_told() {
    let pki = Pki::valid("tatzelwurm test CA");
    let secured = tls_cluster(&pki);
    let plain_env = vec![(TOKEN_ENV.to_string(), TOKEN.to_string())];
    let refused = act(&secured, secured.addr(), &plain_env, &["task", "list"]).failed();
    assert!(
        refused
            .one_sentence()
            .ends_with("this coordinator only accepts TLS; connect with --tls (TATZELWURM_TLS=1)"),
        "{refused}"
    );
    let mut plain_worker = secured.spawn_worker(WorkerSpec::new(1).name("plain-worker"));
    let status = plain_worker
        .proc
        .wait_exit(TASK_TIMEOUT)
        .expect("a refused worker exits");
    assert!(!status.success(), "a refused worker exits non-zero");
    let log = plain_worker.proc.log_tails();
    assert!(log.contains("this coordinator only accepts TLS"), "{log}");

    let open = Cluster::start();
    let env = tls_env(Some(&pki.ca));
    let told = act(&open, open.addr(), &env, &["task", "list"]).failed();
    assert!(
        told.one_sentence().contains(&format!(
            "the server at {} did not answer in TLS, so it is probably a coordinator without TLS; connect without --tls",
            open.addr()
        )),
        "{told}"
    );
    open.wait_coordinator_log("the peer opened a TLS handshake", TASK_TIMEOUT);

    // Settings that cannot be used fail before a byte is sent, never falling back to plain text.
    let unusable = [
        (
            TLS_ENV,
            "maybe",
            "TATZELWURM_TLS is `maybe`; set it to 1 to connect with TLS".to_string(),
        ),
        (
            TLS_CA_ENV,
            "/nonexistent/ca.pem",
            "cannot read the CA file (--tls-ca) /nonexistent/ca.pem".to_string(),
        ),
    ];
    for (key, value, says) in unusable {
        let env = vec![(key.to_string(), value.to_string())];
        let told = act(&open, open.addr(), &env, &["task", "list"]).failed();
        assert!(told.one_sentence().contains(&says), "{told}");
    }
}

/// A certificate that the client's CA did not sign, one checked against the system's roots, one
/// for another name than the address dialled, and an expired one each fail the connect with
/// one sentence that says what to do (the coordinator logs the rejection); a worker with the
/// wrong CA says so in its log.
#[test]
fn certificate_problems_each_get_one_sentence() {
    let pki = Pki::valid("tatzelwurm test CA");
    let cluster = tls_cluster(&pki);
    let stranger = Pki::valid("another CA");

    let untrusted = act(
        &cluster,
        cluster.addr(),
        &tls_env(Some(&stranger.ca)),
        &["task", "list"],
    )
    .failed();
    assert!(
        untrusted.one_sentence().contains(&format!(
            "the coordinator at {} showed a certificate that is not signed by the CA in {}; pass --tls-ca FILE (or set TATZELWURM_TLS_CA) with the CA that signed it",
            cluster.addr(),
            stranger.ca.display()
        )),
        "{untrusted}"
    );
    cluster.wait_coordinator_log(
        "the peer rejected this coordinator's certificate",
        TASK_TIMEOUT,
    );
    // Without a CA file the system's roots decide, and none of them signed a test CA.
    let system = act(&cluster, cluster.addr(), &tls_env(None), &["task", "list"]).failed();
    assert!(system.one_sentence().contains("--tls-ca FILE"), "{system}");

    let port = cluster.addr().rsplit_once(':').unwrap().1;
    let by_name = format!("localhost:{port}");
    let wrong_name = act(
        &cluster,
        &by_name,
        &tls_env(Some(&pki.ca)),
        &["task", "list"],
    )
    .failed();
    assert!(
        wrong_name.one_sentence().contains(&format!(
            "the coordinator's certificate at {by_name} is not valid for `localhost` (it names 127.0.0.1)"
        )),
        "{wrong_name}"
    );

    let ca = stranger.ca.display().to_string();
    let worker = cluster.spawn_worker(WorkerSpec::new(1).name("doubter").args(&["--tls-ca", &ca]));
    wait_for(
        "the worker's log to name the untrusted certificate",
        TASK_TIMEOUT,
        || {
            worker
                .proc
                .log_tails()
                .contains("pass --tls-ca FILE")
                .then_some(())
        },
    );

    let old = Pki::new("tatzelwurm test CA", &["127.0.0.1"], (2019, 2020));
    let expired_cluster = tls_cluster(&old);
    let expired = act(
        &expired_cluster,
        expired_cluster.addr(),
        &tls_env(Some(&old.ca)),
        &["task", "list"],
    )
    .failed();
    assert!(
        expired.one_sentence().contains(&format!(
            "the coordinator at {} showed a certificate that expired at 2020-01-01T00:00:00Z; renew the coordinator's certificate (--tls-cert) and restart it",
            expired_cluster.addr()
        )),
        "{expired}"
    );
}

/// A coordinator given a key that does not belong to its certificate refuses to start, with a
/// sentence naming both files.
#[test]
fn a_key_of_another_certificate_is_refused_at_start() {
    let pki = Pki::valid("tatzelwurm test CA");
    let other = Pki::valid("another CA");
    let dir = tempfile::tempdir().unwrap();
    let bins = tatzelwurm_e2e::Binaries::locate(tatzelwurm_e2e::Profile::Debug);
    let mut cmd = std::process::Command::new(&bins.tatzelwurm);
    cmd.arg("--bind")
        .arg("127.0.0.1:0")
        .arg("--db")
        .arg(dir.path().join("db"))
        .arg("--tls-cert")
        .arg(&pki.cert)
        .arg("--tls-key")
        .arg(&other.key);
    let refused = actionwurm::run_command(cmd, TASK_TIMEOUT).failed();
    let sentence = refused.one_sentence();
    assert!(
        sentence.contains(&pki.cert.display().to_string())
            && sentence.contains(&other.key.display().to_string())
            && sentence.contains("pass the key that was made with that certificate"),
        "{refused}"
    );
}
