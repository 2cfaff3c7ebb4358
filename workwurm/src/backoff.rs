//! Exponential back-off: how long to wait before trying again after a failure.
//!
//! Used by `session` between attempts to reach the coordinator (with jitter, so that many workers
//! cut off together do not all come back in the same millisecond) and by `slots` before
//! restarting a slot that keeps dying without running a task (so a broken interpreter is retried
//! slowly instead of in a hot loop).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The first wait.
pub const FIRST: Duration = Duration::from_millis(100);
/// The longest wait.
pub const MAX: Duration = Duration::from_secs(5);

/// The wait before the next try after `failures` failures in a row: nothing after none, then
/// 100 ms doubling up to 5 s.
pub fn delay(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32 << (failures - 1).min(16);
    FIRST.saturating_mul(factor).min(MAX)
}

/// Counts failures in a row and hands out jittered waits; reset it after a success.
#[derive(Debug)]
pub struct Backoff {
    failures: u32,
    seed: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64 ^ d.as_secs())
            .unwrap_or(0);
        Backoff {
            failures: 0,
            // Mixed with the pid so that workers started in the same instant still differ.
            seed: (nanos ^ (u64::from(std::process::id()) << 32)) | 1,
        }
    }
}

impl Backoff {
    /// Records one more failure and returns how long to wait: `delay(failures)` scaled by a
    /// random factor between 0.75 and 1.25.
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        // xorshift64: plenty for spreading retries, and no dependency.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let jitter = 0.75 + (self.seed % 1000) as f64 / 2000.0;
        delay(self.failures).mul_f64(jitter)
    }

    /// Forgets the failures after a success: the next failure waits `FIRST` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits double from 100 ms and stop growing at 5 s.
    #[test]
    fn doubles_up_to_the_cap() {
        let waits: Vec<u64> = (0..10).map(|n| delay(n).as_millis() as u64).collect();
        assert_eq!(waits, [0, 100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        assert_eq!(delay(u32::MAX), MAX);
    }

    /// Jittered waits stay within a quarter of the plain ones, and a reset starts over.
    #[test]
    fn jitter_stays_near_the_plain_wait() {
        let mut backoff = Backoff::default();
        for n in 1..=12 {
            let wait = backoff.next_delay();
            let plain = delay(n);
            assert!(
                wait >= plain.mul_f64(0.75) && wait <= plain.mul_f64(1.25),
                "{wait:?}"
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= FIRST.mul_f64(1.25));
    }
}
