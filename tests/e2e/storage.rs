//! A `--db` the coordinator must not use: a regular file, a database another coordinator holds
//! (of either backend), a database of a newer schema, and one written by the other backend than
//! `--store` names. Each makes `tatzelwurm` exit with status 1 at once and one sentence on
//! stderr, and leaves what was there exactly as it was.

use crate::TASK_TIMEOUT;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tatzelwurm_e2e::actionwurm::{run_command, Action};
use tatzelwurm_e2e::{example, Binaries, Cluster, Profile, Stop, WorkerSpec};

/// How long a coordinator refusing its `--db` may take to say so and exit.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(10);

/// `--db` naming a regular file: exit status 1 within seconds, one sentence on stderr naming
/// the path, and the file's bytes unchanged.
#[test]
fn a_db_that_is_a_regular_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a-database.txt");
    let content = b"precious notes, not a sled database\n".repeat(100);
    std::fs::write(&path, &content).unwrap();

    let refusal = run_coordinator(&path);
    let sentence = one_sentence(&refusal);
    assert!(
        sentence.contains(&path.display().to_string()),
        "the sentence names the path: {refusal}"
    );
    assert!(path.is_file(), "{} is no longer a file", path.display());
    assert_eq!(
        std::fs::read(&path).unwrap(),
        content,
        "the file was changed"
    );
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "nothing was created beside the file");
}

/// `--db` naming the database a running coordinator holds: the second coordinator exits with
/// status 1 and one sentence saying the database is in use, and the first keeps serving.
#[test]
fn a_db_in_use_by_another_coordinator_is_refused() {
    a_db_in_use_is_refused(&[]);
}

/// The same for a sled database (the default backend is fjall).
#[test]
fn a_sled_db_in_use_by_another_coordinator_is_refused() {
    a_db_in_use_is_refused(&["--store", "sled"]);
}

fn a_db_in_use_is_refused(args: &[&str]) {
    let cluster = Cluster::start_with_args(args);
    let _worker = cluster.start_worker(WorkerSpec::new(1).name("w1"));
    let before = cluster.add(&example("square"), "[4]");
    cluster.wait_completed(before, TASK_TIMEOUT);

    let db = cluster.dir().join("db");
    let refusal = run_coordinator(&db);
    let sentence = one_sentence(&refusal).to_lowercase();
    assert!(
        sentence.contains("in use") || sentence.contains("locked"),
        "the sentence says the database is in use: {refusal}"
    );
    assert!(
        sentence.contains(&db.display().to_string().to_lowercase()),
        "the sentence names the database: {refusal}"
    );
    assert!(
        !refusal.stdout.contains("listening on"),
        "the second coordinator announced an address: {refusal}"
    );

    let after = cluster.add(&example("square"), "[5]");
    assert_eq!(cluster.wait_completed(after, TASK_TIMEOUT)["result"], 25);
    assert_eq!(
        cluster.show(before)["result"],
        16,
        "the first result is intact"
    );
    assert_eq!(cluster.list(&["completed"]).len(), 2);
}

/// A database whose `schema_version` is newer than this build's: exit status 1 with one
/// sentence about the schema version, and afterwards every tree holds exactly what it held, the
/// version still the newer one.
#[test]
fn a_db_of_a_newer_schema_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("db");
    let newer: u32 = tatzelwurm::store::SCHEMA_VERSION + 1;
    {
        let db = sled::open(&db_path).unwrap();
        let meta = db.open_tree("meta").unwrap();
        meta.insert("schema_version", &newer.to_be_bytes()).unwrap();
        meta.insert("next_task_id", &42u64.to_be_bytes()).unwrap();
        // Records this build cannot read: a coordinator that went past the version check and
        // "repaired" or dropped them would show here.
        let tasks = db.open_tree("records").unwrap();
        for id in 1..=41u64 {
            tasks
                .insert(
                    id.to_be_bytes(),
                    format!("a record of task {id} in a newer layout").as_bytes(),
                )
                .unwrap();
        }
        let future = db.open_tree("added_in_a_newer_schema").unwrap();
        future.insert("something", "new").unwrap();
        db.flush().unwrap();
    }
    let before = snapshot(&db_path);

    let refusal = run_coordinator(&db_path);
    let sentence = one_sentence(&refusal).to_lowercase();
    assert!(
        sentence.contains("schema version") || sentence.contains("schema_version"),
        "the sentence mentions the schema version: {refusal}"
    );
    assert!(
        sentence.contains(&db_path.display().to_string().to_lowercase()),
        "the sentence names the database: {refusal}"
    );

    let after = snapshot(&db_path);
    let version = &after["meta"][b"schema_version".as_slice()];
    assert_eq!(version.as_slice(), newer.to_be_bytes(), "schema_version");
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "the set of trees changed"
    );
    for (tree, entries) in &before {
        assert_eq!(
            entries.len(),
            after[tree].len(),
            "tree `{tree}` lost or gained entries"
        );
        assert!(entries == &after[tree], "tree `{tree}` was rewritten");
    }
}

/// A database written by one backend, opened with `--store` naming the other: exit status 1
/// and one sentence naming both backends; then the coordinator started as before (same
/// `--store`) finds its tasks and results intact.
#[test]
fn a_db_of_the_other_backend_is_refused() {
    for (wrote, asked) in [("fjall", "sled"), ("sled", "fjall")] {
        let mut cluster = Cluster::start_with_args(&["--store", wrote]);
        let _worker = cluster.start_worker(WorkerSpec::new(1).name("w1"));
        let id = cluster.add(&example("square"), "[6]");
        cluster.wait_completed(id, TASK_TIMEOUT);
        cluster.stop_coordinator(Stop::Term);

        let db = cluster.dir().join("db");
        let refusal = run_coordinator_with(&db, &["--store", asked]);
        let sentence = one_sentence(&refusal);
        assert!(
            sentence.contains(&format!("written by the {wrote} backend"))
                && sentence.contains(&format!("not by {asked}")),
            "the sentence names both backends: {refusal}"
        );
        assert!(
            sentence.contains(&db.display().to_string()),
            "the sentence names the database: {refusal}"
        );

        cluster.start_coordinator_again();
        assert_eq!(
            cluster.show(id)["result"],
            36,
            "{wrote}: the result is intact"
        );
    }
}

/// Opens the sled database at `path` in this process. sled's flusher thread may hold the file
/// lock a moment after the previous `Db` of this process was dropped (another process never
/// sees this), so a held lock is retried for a bounded time.
fn open_sled(path: &Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match sled::open(path) {
            Ok(db) => return db,
            Err(err)
                if err.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(err) => panic!("cannot open the sled database at {}: {err}", path.display()),
        }
    }
}

/// Every tree of the sled database at `path` (the default tree included) with its entries.
fn snapshot(path: &Path) -> BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>> {
    let db = open_sled(path);
    db.tree_names()
        .into_iter()
        .map(|name| {
            let tree = db.open_tree(&name).unwrap();
            let entries = tree
                .iter()
                .map(|entry| {
                    let (key, value) = entry.unwrap();
                    (key.to_vec(), value.to_vec())
                })
                .collect();
            (String::from_utf8_lossy(&name).into_owned(), entries)
        })
        .collect()
}

/// Runs `tatzelwurm --bind 127.0.0.1:0 --db DB` as a user would (no `RUST_LOG`), expecting it to
/// refuse: it must exit within `REFUSAL_TIMEOUT` with status 1.
fn run_coordinator(db: &Path) -> Action {
    run_coordinator_with(db, &[])
}

/// `run_coordinator` with extra arguments such as `--store sled`.
fn run_coordinator_with(db: &Path, args: &[&str]) -> Action {
    let bins = Binaries::locate(Profile::Debug);
    let mut cmd = Command::new(&bins.tatzelwurm);
    cmd.arg("--bind")
        .arg("127.0.0.1:0")
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove(tatzelwurm_proto::COORDINATOR_ENV);
    let action = run_command(cmd, REFUSAL_TIMEOUT);
    assert_eq!(
        action.status.code(),
        Some(1),
        "tatzelwurm must exit with status 1: {action}"
    );
    action
}

/// Stderr as one sentence on one line: not empty, no second line (a log, a backtrace, a chain
/// of causes), no panic.
fn one_sentence(action: &Action) -> &str {
    let lines: Vec<&str> = action.stderr.trim().lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {action}");
    let line = lines[0].trim();
    assert!(!line.is_empty(), "an empty line on stderr: {action}");
    assert!(!line.contains("panicked"), "a panic: {action}");
    line
}
