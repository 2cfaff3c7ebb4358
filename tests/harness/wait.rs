//! Bounded polling: the only way a test waits for something to happen.
//!
//! A test never sleeps for a guessed time to let something happen; it names the event it awaits
//! and a deadline, and a missed deadline panics with that name, so a hang becomes a failure that
//! says what did not happen.

use std::thread;
use std::time::{Duration, Instant};

/// How often a condition is polled: short enough that a test is not slowed down noticeably,
/// long enough that polling through the CLI (a process start each time) does not load the machine.
pub const POLL_INTERVAL: Duration = Duration::from_millis(40);

/// Polls `condition` until it holds; panics naming `what` once `timeout` has passed.
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    wait_for(what, timeout, || condition().then_some(()))
}

/// Polls `probe` until it returns `Some`, and returns that value; panics naming `what` once
/// `timeout` has passed. The probe runs at least once, even with a zero timeout.
pub fn wait_for<T>(what: &str, timeout: Duration, probe: impl FnMut() -> Option<T>) -> T {
    poll(timeout, probe).unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Polls `probe` until it returns `Some` or `timeout` has passed (then `None`), for callers
/// that want to say more than `wait_for` does when the deadline passes.
pub fn poll<T>(timeout: Duration, probe: impl FnMut() -> Option<T>) -> Option<T> {
    poll_every(POLL_INTERVAL, timeout, probe)
}

/// `poll` with another interval: a test that measures how soon something happens polls more
/// often than `POLL_INTERVAL`, so that the figure is not mostly the polling's.
pub fn poll_every<T>(
    interval: Duration,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if start.elapsed() >= timeout {
            return None;
        }
        thread::sleep(interval);
    }
}
