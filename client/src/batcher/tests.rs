//! The pipeline's rules alone: tickets, the window, batches, acknowledgements.

use super::*;

fn spec(args: &str) -> TaskSpec {
    TaskSpec {
        function: "m:f".into(),
        args: args.into(),
        kwargs: "{}".into(),
        ..TaskSpec::default()
    }
}

/// Tickets count from 1; the window refuses a submit once that many are unacknowledged, and
/// an acknowledgement makes room.
#[test]
fn window_bounds_unacknowledged_tickets() {
    let mut b = Batcher::new(3, 2);
    assert_eq!(b.try_submit(spec("[1]"), true, false), Ok(1));
    assert_eq!(b.try_submit(spec("[2]"), true, false), Ok(2));
    assert_eq!(b.try_submit(spec("[3]"), true, false), Ok(3));
    assert_eq!(b.try_submit(spec("[4]"), true, false), Err(spec("[4]")));
    let batch = b.take_batch().unwrap();
    assert_eq!((batch.first, batch.specs.len()), (1, 3));
    assert_eq!(b.try_submit(spec("[4]"), true, false), Err(spec("[4]")));
    b.acknowledged(1);
    assert_eq!(b.try_submit(spec("[4]"), true, false), Ok(4));
}

/// Submits made while batches are in flight wait, and go together once one is acknowledged.
#[test]
fn submits_during_flight_go_together() {
    let mut b = Batcher::new(100, 2);
    b.try_submit(spec("[1]"), true, false).unwrap();
    assert_eq!(b.take_batch().unwrap().specs.len(), 1);
    b.try_submit(spec("[2]"), true, false).unwrap();
    assert_eq!(b.take_batch().unwrap().first, 2);
    for i in 3..=7 {
        b.try_submit(spec(&format!("[{i}]")), true, false).unwrap();
    }
    assert_eq!(b.take_batch(), None, "two in flight already");
    b.acknowledged(2);
    let batch = b.take_batch().unwrap();
    assert_eq!((batch.first, batch.specs.len()), (3, 5));
    assert_eq!(b.settled_below(), 1);
    b.acknowledged(1);
    assert_eq!(b.settled_below(), 3);
    b.acknowledged(3);
    assert_eq!(b.settled_below(), 8);
    assert_eq!(b.next_ticket(), 8);
}

/// A batch holds tasks of one `play` only, and a task over the byte budget goes alone.
#[test]
fn batches_split_on_play_and_size() {
    let mut b = Batcher::new(100, 10);
    b.try_submit(spec("[1]"), true, false).unwrap();
    b.try_submit(spec("[2]"), false, false).unwrap();
    let big = format!("[\"{}\"]", "x".repeat(BATCH_BYTES));
    b.try_submit(spec(&big), false, false).unwrap();
    b.try_submit(spec("[4]"), false, false).unwrap();
    let sizes: Vec<(Ticket, usize, bool)> = std::iter::from_fn(|| b.take_batch())
        .map(|batch| (batch.first, batch.specs.len(), batch.play))
        .collect();
    assert_eq!(
        sizes,
        vec![(1, 1, true), (2, 1, false), (3, 1, false), (4, 1, false)]
    );
}

/// While a bulk submit runs, other submits are refused, so its tickets are consecutive.
#[test]
fn bulk_submits_keep_their_tickets_together() {
    let mut b = Batcher::new(100, 2);
    assert!(b.set_bulk(true));
    assert!(!b.set_bulk(true));
    assert_eq!(b.try_submit(spec("[1]"), true, true), Ok(1));
    assert_eq!(b.try_submit(spec("[x]"), true, false), Err(spec("[x]")));
    assert_eq!(b.try_submit(spec("[2]"), true, true), Ok(2));
    b.set_bulk(false);
    assert_eq!(b.try_submit(spec("[3]"), true, false), Ok(3));
}

/// Closing takes every queued task as batches, whatever is in flight.
#[test]
fn take_all_empties_the_queue() {
    let mut b = Batcher::new(100, 1);
    b.try_submit(spec("[1]"), true, false).unwrap();
    b.take_batch().unwrap();
    b.try_submit(spec("[2]"), true, false).unwrap();
    b.try_submit(spec("[3]"), false, false).unwrap();
    let all = b.take_all();
    assert_eq!(all.len(), 2);
    assert_eq!(b.queued(), 0);
    assert_eq!(b.unacknowledged(), 3);
}

/// A burst starts with a small batch and grows with what is in flight (as many as in flight),
/// up to a frame's worth, so that the first tasks are durable (and run) early.
#[test]
fn a_burst_starts_small_and_grows() {
    let first = tatzelwurm_proto::batch::FIRST_ADD_TASKS;
    let total = 8 * first;
    let mut b = Batcher::new(total, 3);
    for i in 0..total {
        b.try_submit(spec(&format!("[{i}]")), true, false).unwrap();
    }
    let sizes: Vec<usize> = (0..3)
        .map(|_| b.take_batch().unwrap().specs.len())
        .collect();
    assert_eq!(sizes, vec![first, first, 2 * first]);
    assert_eq!(b.take_batch(), None, "three in flight already");
    b.acknowledged(1);
    // 3,000 tasks in flight: the next batch may carry as many.
    assert_eq!(b.take_batch().unwrap().specs.len(), 3 * first);
    b.acknowledged(1 + first as u64);
    assert_eq!(b.take_batch().unwrap().specs.len(), first, "what was left");
}
