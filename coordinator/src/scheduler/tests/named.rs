//! Finding workers by name or connection id (`worker drain NAME`), and the usage `worker list`
//! shows.

use super::*;
use tatzelwurm_proto::worker::{SlotUsage, WorkerUsage};

fn usage(rss: u64) -> WorkerUsage {
    WorkerUsage {
        at: Timestamp(5),
        slots: vec![SlotUsage {
            pid: 42,
            rss,
            cpu_permille: 250,
            running: 1,
        }],
        max_memory: None,
        memory_replaced: 0,
        memory_killed: 0,
    }
}

/// A name finds every connection of that name; a number no worker is named finds the
/// connection with that id; anything else finds nothing.
#[test]
fn named_by_name_then_by_id() {
    let mut s = Scheduler::default();
    s.register(hello("alpha", 1), vec![Q], "a".into(), T0);
    s.register(hello("beta", 1), vec![Q], "a".into(), T0);
    s.register(hello("alpha", 2), vec![Q], "a".into(), T0);
    s.register(hello("2", 1), vec![Q], "a".into(), T0);
    assert_eq!(s.named("alpha"), vec![WorkerId(1), WorkerId(3)]);
    assert_eq!(s.named("beta"), vec![WorkerId(2)]);
    assert_eq!(s.named("2"), vec![WorkerId(4)], "a name wins over an id");
    assert_eq!(s.named("3"), vec![WorkerId(3)]);
    assert!(s.named("9").is_empty());
    assert!(s.named("gamma").is_empty());
    s.remove(WorkerId(1), T0);
    assert_eq!(s.named("alpha"), vec![WorkerId(3)]);
}

/// `worker list` shows the latest usage a worker sent, none before its first; a usage of a
/// worker that is gone is refused.
#[test]
fn list_shows_the_latest_usage() {
    let mut s = scheduler(&[1, 1]);
    assert!(s.list().iter().all(|w| w.usage.is_none()));
    assert!(s.set_usage(WorkerId(1), usage(100)));
    assert!(s.set_usage(WorkerId(1), usage(200)));
    let list = s.list();
    assert_eq!(list[0].usage, Some(usage(200)));
    assert_eq!(list[1].usage, None);
    assert!(!s.set_usage(WorkerId(9), usage(1)));
}
