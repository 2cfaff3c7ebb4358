//! When a failed attempt is tried again: the task's `backoff` doubled per failure, on proto's
//! one backoff curve, scaled by a random factor in [0.5, 1.5) so that tasks which failed
//! together (a database that went away, say) do not retry in step.

use std::time::Duration;
use tatzelwurm_proto::backoff::{Curve, Jitter};

/// The longest single backoff, so that a large retry count cannot push a retry years away.
const MAX_DELAY: Duration = Duration::from_secs(24 * 60 * 60);

/// How far a retry's delay may stray from the curve: factors in [0.5, 1.5).
const SPREAD: f64 = 0.5;

/// The jitter of retries, seeded from the system.
#[derive(Debug, Clone)]
pub struct RetryJitter(Jitter);

impl Default for RetryJitter {
    fn default() -> Self {
        RetryJitter(Jitter::new(SPREAD))
    }
}

impl RetryJitter {
    /// The next factor, in [0.5, 1.5).
    pub fn factor(&mut self) -> f64 {
        self.0.factor()
    }
}

/// How long the retry after the `failures`-th failed attempt waits, in milliseconds.
pub fn delay_ms(backoff_ms: u64, failures: u32, factor: f64) -> u64 {
    let curve = Curve {
        first: Duration::from_millis(backoff_ms),
        max: MAX_DELAY,
    };
    curve.jittered(failures, factor).as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Delays double with each failure and the jitter keeps them within half to one and a half.
    #[test]
    fn delays_double_within_jitter() {
        let mut jitter = RetryJitter::default();
        for failures in 1..=5u32 {
            let nominal = 200u64 << (failures - 1);
            let delay = delay_ms(200, failures, jitter.factor());
            assert!(
                delay >= nominal / 2 && delay < nominal * 3 / 2,
                "{delay} vs {nominal}"
            );
        }
    }

    /// A huge retry count or backoff is capped instead of overflowing.
    #[test]
    fn delay_is_capped() {
        let cap = MAX_DELAY.as_millis() as u64;
        assert!(delay_ms(u64::MAX / 2, 100, 1.49) <= cap * 3 / 2);
        assert_eq!(delay_ms(1_000, 1, 1.0), 1_000);
    }
}
