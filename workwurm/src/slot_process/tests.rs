//! Tests of one slot process with real `python3`: the guardian that takes a slot's process group
//! down when workwurm is gone. (The pool's tests in `slots/tests.rs` cover everything else.)

use super::*;
use crate::slot_channel::encode_run;
use crate::slots::tests::{
    gone, group, python_command, task, wait_group_gone, wait_until, PATIENCE,
};

async fn next_event(events: &mut mpsc::UnboundedReceiver<Event>) -> EventKind {
    tokio::time::timeout(PATIENCE, events.recv())
        .await
        .expect("an event within the patience")
        .expect("the watcher is alive")
        .kind
}

/// When workwurm's end of the lifeline closes, as it does when workwurm dies (even by kill -9),
/// the guardian SIGKILLs the slot's process group within 2 s: the slot, the process its task
/// started, and itself, though the task holds the GIL in a C call. The guardian is in the slot's
/// group but not its child, so a task's os.waitpid(-1) does not see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guardian_kills_the_group_when_the_lifeline_closes() {
    let command = python_command();
    let started = spawn(&command).await.unwrap();
    let (pid, to_slot) = (started.pid, started.to_slot.clone());
    let (events, mut inbox) = mpsc::unbounded_channel();
    watch(started, 0, 1, events);
    assert!(matches!(
        next_event(&mut inbox).await,
        EventKind::Message(FromSlot::Hello(_))
    ));
    let members = group(pid);
    assert_eq!(members.len(), 2, "the slot and its guardian: {members:?}");
    let (guardian, guardian_parent) = *members.iter().find(|(p, _)| *p != pid).unwrap();
    assert_ne!(guardian_parent, pid, "the guardian is not the slot's child");

    assert!(to_slot.send(encode_run(
        [(&task(1, "tasks:wait_any", "[]"), &[][..])],
        false
    )));
    let EventKind::Message(FromSlot::Done(done)) = next_event(&mut inbox).await else {
        panic!("expected the task's result");
    };
    assert_eq!(done[0].result.as_deref(), Some(r#""no children""#));

    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let args = serde_json::to_string(&[pid_file.to_str().unwrap()]).unwrap();
    assert!(to_slot.send(encode_run(
        [(&task(2, "tasks:hold_gil_with_child", &args), &[][..])],
        false
    )));
    wait_until("the task started its child", || pid_file.exists()).await;
    let pids: Vec<i32> = std::fs::read_to_string(&pid_file)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids[0], pid);
    assert_eq!(
        group(pid).len(),
        3,
        "slot, guardian and sleep: {:?}",
        group(pid)
    );

    // Play workwurm's death: this drops the only write end of the lifeline.
    drop(command);
    let took = wait_group_gone(pid, Duration::from_secs(2)).await;
    assert!(gone(pids[1]) && gone(guardian));
    let EventKind::Exited(status) = next_event(&mut inbox).await else {
        panic!("expected the slot's exit");
    };
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    eprintln!(
        "slot {pid}, sleep {} and guardian {guardian} were gone {took:?} after the lifeline closed",
        pids[1]
    );
}

/// Frames larger than the pipe, sent back to back while the reader is slow, arrive whole and in
/// order: a frame never interleaves with the rest of an earlier one.
#[tokio::test(flavor = "current_thread")]
async fn frames_larger_than_the_pipe_stay_in_order() {
    let (read, write) = pipe_cloexec().unwrap();
    let writer = SlotWriter::new(pipe::Sender::from_owned_fd(write).unwrap());
    let frames: Vec<Vec<u8>> = (0..4u8)
        .map(|i| vec![b'a' + i; 200_000 + i as usize])
        .collect();
    for frame in &frames {
        assert!(writer.send(frame.clone()));
    }
    drop(writer);
    // Read on a blocking thread while this runtime's task writes the backlog.
    let reader = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut all = Vec::new();
        std::fs::File::from(read).read_to_end(&mut all).unwrap();
        all
    });
    let all = tokio::time::timeout(PATIENCE, reader)
        .await
        .expect("every frame within the patience")
        .unwrap();
    assert_eq!(all, frames.concat());
}
