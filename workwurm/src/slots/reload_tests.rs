//! Tests of hot reload with real `python3` slots: a changed module (or a module it imports) is
//! imported afresh for the next task, module state starts over, and `--no-reload` keeps the old
//! code.

use super::tests::{completed, fixtures, python_command, run_one, task};
use super::*;
use std::ffi::OsString;
use std::path::Path;

/// A pool of one slot with `dir` on its path after the fixtures, reloading or not.
fn start_in(dir: &Path, reload: bool) -> (SlotsHandle, mpsc::UnboundedReceiver<News>) {
    let mut command = python_command();
    let mut path = OsString::from(fixtures());
    path.push(":");
    path.push(dir);
    command.extra_path = path;
    command.reload = reload;
    SlotsHandle::start(command, 1, 1)
}

/// A module whose `version()` returns `version` and counts its calls, importing `helper`.
fn write_module(dir: &Path, version: u32) {
    std::fs::write(
        dir.join("reloadme.py"),
        format!(
            "import helper\ncalls = 0\n\ndef version():\n    global calls\n    calls += 1\n    \
             return [{version}, calls, helper.NAME]\n"
        ),
    )
    .unwrap();
}

fn write_helper(dir: &Path, name: &str) {
    std::fs::write(dir.join("helper.py"), format!("NAME = {name:?}\n")).unwrap();
}

/// Runs `reloadme:version` once and returns its result.
async fn version(slots: &SlotsHandle, news: &mut mpsc::UnboundedReceiver<News>) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    completed(&run_one(slots, news, task(id, "reloadme:version", "[]")).await).to_string()
}

/// Longer than the slot's look-again period (0.5 s), so that the next task sees the change.
const NOTICE: Duration = Duration::from_millis(700);

/// A rewritten module (same size, same second) runs afresh in the next task, with its
/// module-level state started over; so does one whose imported helper changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_module_is_imported_afresh() {
    let dir = tempfile::tempdir().unwrap();
    write_helper(dir.path(), "first");
    write_module(dir.path(), 1);
    let (slots, mut news) = start_in(dir.path(), true);
    assert_eq!(version(&slots, &mut news).await, r#"[1,1,"first"]"#);
    assert_eq!(version(&slots, &mut news).await, r#"[1,2,"first"]"#);
    write_module(dir.path(), 2);
    tokio::time::sleep(NOTICE).await;
    assert_eq!(version(&slots, &mut news).await, r#"[2,1,"first"]"#);
    write_helper(dir.path(), "again");
    tokio::time::sleep(NOTICE).await;
    assert_eq!(version(&slots, &mut news).await, r#"[2,1,"again"]"#);
    assert_eq!(version(&slots, &mut news).await, r#"[2,2,"again"]"#);
    slots.shutdown().await;
}

/// With reload off (`--no-reload`), a slot keeps running the code it imported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_reload_keeps_the_imported_code() {
    let dir = tempfile::tempdir().unwrap();
    write_helper(dir.path(), "first");
    write_module(dir.path(), 1);
    let (slots, mut news) = start_in(dir.path(), false);
    let report = run_one(&slots, &mut news, task(1, "reloadme:version", "[]")).await;
    assert_eq!(completed(&report), r#"[1,1,"first"]"#);
    write_module(dir.path(), 2);
    tokio::time::sleep(NOTICE).await;
    let report = run_one(&slots, &mut news, task(2, "reloadme:version", "[]")).await;
    assert_eq!(completed(&report), r#"[1,2,"first"]"#);
    slots.shutdown().await;
}
