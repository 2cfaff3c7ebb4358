//! When a failed attempt is tried again: exponential backoff with jitter.
//!
//! The n-th retry waits about `backoff * 2^(n-1)`, scaled by a random factor in [0.5, 1.5) so
//! that tasks which failed together (a database that went away, say) do not retry in step. The
//! jitter source is a small xorshift generator: no security matters here, and it keeps the task
//! table free of a dependency for one number per failure.

use tatzelwurm_proto::task::Timestamp;

/// The longest single backoff, so that a large retry count cannot push a retry years away.
const MAX_DELAY_MS: u64 = 24 * 60 * 60 * 1000;

/// A source of jitter factors.
#[derive(Debug)]
pub struct Jitter(u64);

impl Jitter {
    /// Seeds from the clock and the process id. Clock seeds differ only in their low bits, and
    /// xorshift's first outputs would too, so the seed is mixed first (splitmix64's finaliser).
    pub fn from_clock() -> Jitter {
        Jitter::from_seed(Timestamp::now().0 ^ (u64::from(std::process::id()) << 32))
    }

    /// A generator whose first factors already look random even for neighbouring seeds.
    pub fn from_seed(seed: u64) -> Jitter {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Jitter((z ^ (z >> 31)) | 1)
    }

    /// A factor in [0.5, 1.5).
    pub fn factor(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        0.5 + (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Default for Jitter {
    fn default() -> Self {
        Jitter::from_clock()
    }
}

/// How long the retry after the `failures`-th failed attempt waits, in milliseconds.
pub fn delay_ms(backoff_ms: u64, failures: u32, factor: f64) -> u64 {
    let exponent = failures.saturating_sub(1).min(40);
    let base = backoff_ms
        .saturating_mul(1u64 << exponent)
        .min(MAX_DELAY_MS);
    (base as f64 * factor) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Delays double with each failure and the jitter keeps them within half to one and a half.
    #[test]
    fn delays_double_within_jitter() {
        let mut jitter = Jitter(42);
        for failures in 1..=5u32 {
            let nominal = 200u64 << (failures - 1);
            let delay = delay_ms(200, failures, jitter.factor());
            assert!(
                delay >= nominal / 2 && delay < nominal * 3 / 2,
                "{delay} vs {nominal}"
            );
        }
    }

    /// Seeds a millisecond apart give first factors spread over the range, not one value.
    #[test]
    fn first_factor_varies_with_the_seed() {
        let firsts: Vec<f64> = (0..50u64)
            .map(|ms| Jitter::from_seed(1_795_486_000_000 + ms).factor())
            .collect();
        let low = firsts.iter().filter(|f| **f < 1.0).count();
        assert!((10..=40).contains(&low), "{firsts:?}");
    }

    /// A huge retry count is capped instead of overflowing.
    #[test]
    fn delay_is_capped() {
        assert!(delay_ms(u64::MAX, 100, 1.49) <= MAX_DELAY_MS * 3 / 2);
    }
}
