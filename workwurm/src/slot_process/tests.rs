//! Tests of one slot process with real `python3`: the guardian that takes a slot's process group
//! down when workwurm is gone, and the watcher's reads at the doorbell. (The pool's tests in
//! `slots/tests.rs` cover everything else.)

use super::*;
use crate::slot_channel::encode_run;
use crate::slots::tests::{
    gone, group, python_command, task, wait_group_gone, wait_until, PATIENCE,
};
use tatzelwurm_proto::worker::Assignment;
use tatzelwurm_proto::{Attempt, TaskId};

async fn next_event(events: &mut mpsc::UnboundedReceiver<Event>) -> EventKind {
    tokio::time::timeout(PATIENCE, events.recv())
        .await
        .expect("an event within the patience")
        .expect("the watcher is alive")
        .kind
}

/// A slot of `command` (which holds workwurm's end of the lifeline: the slot lives while it
/// does), watched as slot 0 of `generation`, once it said hello: its pid, the writer to it and
/// the watcher's events.
async fn hello_slot(
    command: &SlotCommand,
    generation: u64,
) -> (i32, SlotWriter, mpsc::UnboundedReceiver<Event>) {
    let started = spawn(command).await.unwrap();
    let (pid, to_slot) = (started.pid, started.to_slot.clone());
    let (events, mut inbox) = mpsc::unbounded_channel();
    watch(started, 0, generation, events);
    assert!(matches!(
        next_event(&mut inbox).await,
        EventKind::Message(FromSlot::Hello(_))
    ));
    (pid, to_slot, inbox)
}

/// When workwurm's end of the lifeline closes, as it does when workwurm dies (even by kill -9),
/// the guardian SIGKILLs the slot's process group within 2 s: the slot, the process its task
/// started, and itself, though the task holds the GIL in a C call. The guardian is in the slot's
/// group but not its child, so a task's os.waitpid(-1) does not see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guardian_kills_the_group_when_the_lifeline_closes() {
    let command = python_command();
    let (pid, to_slot, mut inbox) = hello_slot(&command, 1).await;
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

/// No result waits behind a task that hangs: the slot does not ring for the `done`s of a fast
/// stream (see `doorbell`), yet those written before a long task began reach the pool within
/// a few milliseconds, not when the long task ends; and a result larger than the pipe, which the
/// slot writes in rung pieces, arrives whole.
#[tokio::test(flavor = "current_thread")]
async fn results_written_before_a_hanging_task_arrive_while_it_runs() {
    let command = python_command();
    let (pid, to_slot, mut inbox) = hello_slot(&command, 1).await;
    // Twenty noops in one hand (the slot holds them all), then a task that sleeps for 30 s.
    let noops: Vec<Assignment> = (1..=20)
        .map(|id| task(id, "tasks:noop", &format!("[{id}]")))
        .collect();
    let nap = task(21, "tasks:nap", "[30]");
    let hand: Vec<(&Assignment, &[(TaskId, Attempt)])> =
        noops.iter().chain([&nap]).map(|a| (a, &[][..])).collect();
    let began = std::time::Instant::now();
    assert!(to_slot.send(encode_run(hand, false)));
    let mut reported = Vec::new();
    while reported.len() < noops.len() {
        let EventKind::Message(FromSlot::Done(done)) = next_event(&mut inbox).await else {
            panic!("expected results");
        };
        reported.extend(done.iter().map(|d| d.task));
    }
    let took = began.elapsed();
    assert_eq!(reported, (1..=20).collect::<Vec<u64>>());
    assert!(
        took < Duration::from_secs(5),
        "the results came {took:?} after the hand, while the last task sleeps 30 s"
    );
    kill_group(pid);
    assert!(matches!(next_event(&mut inbox).await, EventKind::Exited(_)));

    // A result of 3 MB, over forty times the pipe's 64 KiB, in a slot started afresh.
    let (pid, to_slot, mut inbox) = hello_slot(&command, 2).await;
    assert!(to_slot.send(encode_run(
        [(&task(22, "tasks:big", "[3000000]"), &[][..])],
        false
    )));
    let EventKind::Message(FromSlot::Done(done)) = next_event(&mut inbox).await else {
        panic!("expected the big result");
    };
    assert!(done[0]
        .result
        .as_ref()
        .is_some_and(|r| r.len() >= 3_000_000));
    kill_group(pid);
}
