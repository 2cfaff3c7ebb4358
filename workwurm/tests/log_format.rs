//! `workwurm --log-format json`: the binary's log lines on stderr are JSON objects, one per
//! line, for log collectors (and text by default).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Starts workwurm against a port nobody listens on and returns its first log line that
/// mentions the coordinator it cannot reach (it retries for ever; it is killed after).
fn unreachable_line(extra: &[&str]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_workwurm"))
        .args(["--coordinator", "127.0.0.1:1", "--name", "log-test"])
        .args(extra)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("workwurm starts");
    let stderr = child.stderr.take().unwrap();
    let (lines, seen) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let found = loop {
        match seen.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.contains("cannot reach the coordinator") => break Some(line),
            Ok(_) => continue,
            Err(_) => break None,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    found.expect("workwurm logs that it cannot reach the coordinator within 30 s")
}

/// With --log-format json each log line is a JSON object with a level and the message in its
/// fields; without it the line is plain text.
#[test]
fn json_log_lines_are_json_objects() {
    let line = unreachable_line(&["--log-format", "json"]);
    let value: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(value["level"], "WARN", "{value}");
    let message = value["fields"]["message"].as_str().expect("a message");
    assert!(message.contains("127.0.0.1:1"), "{message}");

    let line = unreachable_line(&[]);
    assert!(
        serde_json::from_str::<serde_json::Value>(&line).is_err(),
        "{line}"
    );
    assert!(line.contains("WARN"), "{line}");
}
