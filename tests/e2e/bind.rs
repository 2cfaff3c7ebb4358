//! A `--bind` the coordinator cannot use: one that is not an address, and a port another
//! program holds. Either is refused before the store is opened, so a new `--db` is not created.

use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tatzelwurm_e2e::actionwurm::{run_command, Action};
use tatzelwurm_e2e::{Binaries, Profile};

/// How long a refusal may take.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(10);

/// `--bind 127.0.0.1:99999` exits 2 with one sentence saying it is not an address (not blaming
/// another program), and the new `--db` directory is not created.
#[test]
fn a_bind_that_is_not_an_address_leaves_no_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("new.db");
    let action = run_coordinator("127.0.0.1:99999", &db);
    assert_eq!(action.status.code(), Some(2), "{action}");
    let sentence = one_line(&action);
    assert!(
        sentence.contains("`127.0.0.1:99999` is not an address; write HOST:PORT"),
        "{action}"
    );
    assert!(!sentence.contains("another program"), "{action}");
    assert!(!db.exists(), "the database directory was created");
}

/// A port another program listens on exits 1 with one sentence asking whether another program
/// uses it, and the new `--db` directory is not created.
#[test]
fn a_port_in_use_leaves_no_database() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("new.db");
    let action = run_coordinator(&addr, &db);
    assert_eq!(action.status.code(), Some(1), "{action}");
    let sentence = one_line(&action);
    assert!(sentence.contains(&addr), "{action}");
    assert!(
        sentence.contains("another program using that port"),
        "{action}"
    );
    assert!(!db.exists(), "the database directory was created");
}

/// An unknown flag exits 2 with one line on stderr; `--help` exits 0.
#[test]
fn a_bad_flag_is_one_sentence() {
    let bins = Binaries::locate(Profile::Debug);
    let mut cmd = Command::new(&bins.tatzelwurm);
    cmd.arg("--no-such-flag").env_remove("RUST_LOG");
    let action = run_command(cmd, REFUSAL_TIMEOUT);
    assert_eq!(action.status.code(), Some(2), "{action}");
    assert!(one_line(&action).contains("--no-such-flag"), "{action}");
    let mut cmd = Command::new(&bins.tatzelwurm);
    cmd.arg("--help");
    let action = run_command(cmd, REFUSAL_TIMEOUT);
    assert_eq!(action.status.code(), Some(0), "{action}");
    assert!(action.stdout.contains("--bind"), "{action}");
}

fn run_coordinator(bind: &str, db: &Path) -> Action {
    let bins = Binaries::locate(Profile::Debug);
    let mut cmd = Command::new(&bins.tatzelwurm);
    cmd.arg("--bind")
        .arg(bind)
        .arg("--db")
        .arg(db)
        .env_remove("RUST_LOG");
    run_command(cmd, REFUSAL_TIMEOUT)
}

/// Stderr's one line; panics on more or none.
fn one_line(action: &Action) -> &str {
    let lines: Vec<&str> = action.stderr.trim().lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {action}");
    assert!(!lines[0].contains("panicked"), "{action}");
    lines[0]
}
