//! The one backoff curve of every tatzelwurm program: waits that double from a first one up to
//! a cap, with random jitter so that peers that failed together (workers cut off by a restarted
//! coordinator, tasks that failed on the same outage) do not come back in step. Used by the
//! worker's reconnects and slot restarts, the client's reconnects and the coordinator's task
//! retries. Not on the wire. The randomness is `fastrand`'s; nothing here needs to be secret.

use std::time::Duration;

/// Waits that double from `first` up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Curve {
    /// The wait after the first failure.
    pub first: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Curve {
    /// The wait after `failures` failures in a row: nothing after none, then `first`, doubling
    /// up to `max`.
    pub fn delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32 << (failures - 1).min(30);
        self.first.saturating_mul(factor).min(self.max)
    }

    /// `delay(failures)` scaled by `factor` (from [`Jitter::factor`]).
    pub fn jittered(&self, failures: u32, factor: f64) -> Duration {
        self.delay(failures).mul_f64(factor)
    }
}

/// A source of jitter factors: uniform in `[1 - spread, 1 + spread)`.
#[derive(Debug, Clone)]
pub struct Jitter {
    rng: fastrand::Rng,
    spread: f64,
}

impl Jitter {
    /// Jitter of `spread` (0.25 gives factors in [0.75, 1.25)), seeded from the system.
    pub fn new(spread: f64) -> Jitter {
        Jitter {
            rng: fastrand::Rng::new(),
            spread,
        }
    }

    /// The same from a fixed seed, for tests that want repeatable factors.
    pub fn with_seed(spread: f64, seed: u64) -> Jitter {
        Jitter {
            rng: fastrand::Rng::with_seed(seed),
            spread,
        }
    }

    /// The next factor.
    pub fn factor(&mut self) -> f64 {
        1.0 - self.spread + 2.0 * self.spread * self.rng.f64()
    }
}

/// Failures in a row on one curve, and jittered waits for them; reset after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    curve: Curve,
    jitter: Jitter,
    failures: u32,
}

impl Backoff {
    /// A backoff on `curve` with jitter of `spread`.
    pub fn new(curve: Curve, spread: f64) -> Backoff {
        Backoff {
            curve,
            jitter: Jitter::new(spread),
            failures: 0,
        }
    }

    /// Records one more failure and returns how long to wait before the next try.
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let factor = self.jitter.factor();
        self.curve.jittered(self.failures, factor)
    }

    /// Failures recorded since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Forgets the failures after a success: the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CURVE: Curve = Curve {
        first: Duration::from_millis(100),
        max: Duration::from_secs(5),
    };

    /// Waits double from the first and stop growing at the cap; a huge count does not overflow.
    #[test]
    fn doubles_up_to_the_cap() {
        let waits: Vec<u128> = (0..10).map(|n| CURVE.delay(n).as_millis()).collect();
        assert_eq!(waits, [0, 100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        assert_eq!(CURVE.delay(u32::MAX), CURVE.max);
    }

    /// Factors stay within the spread, and seeds a step apart give different first factors.
    #[test]
    fn jitter_stays_within_its_spread() {
        let mut jitter = Jitter::new(0.5);
        for _ in 0..1000 {
            let f = jitter.factor();
            assert!((0.5..1.5).contains(&f), "{f}");
        }
        let firsts: Vec<f64> = (0..50u64)
            .map(|seed| Jitter::with_seed(0.5, 1_795_486_000_000 + seed).factor())
            .collect();
        let low = firsts.iter().filter(|f| **f < 1.0).count();
        assert!((10..=40).contains(&low), "{firsts:?}");
    }

    /// A backoff counts failures, jitters each wait, and starts over after a reset.
    #[test]
    fn backoff_resets() {
        let mut backoff = Backoff::new(CURVE, 0.25);
        for n in 1..=12 {
            let wait = backoff.next_delay();
            let plain = CURVE.delay(n);
            assert!(
                wait >= plain.mul_f64(0.75) && wait <= plain.mul_f64(1.25),
                "{wait:?}"
            );
        }
        assert_eq!(backoff.failures(), 12);
        backoff.reset();
        assert!(backoff.next_delay() <= CURVE.first.mul_f64(1.25));
    }
}
