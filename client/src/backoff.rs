//! The pause before the next reconnect attempt: doubling from a minimum up to a cap, with
//! jitter so that many clients of a restarted coordinator do not knock all at once.

use std::time::Duration;

/// The pause before attempt `attempt` (0 for the first after a drop): `min * 2^attempt`,
/// capped at `max`, then between 75 % and 100 % of that.
pub(crate) fn pause(attempt: u32, min: Duration, max: Duration) -> Duration {
    let full = min.saturating_mul(1u32 << attempt.min(16)).min(max);
    let jitter = getrandom::u32().unwrap_or(0) % 1000;
    full.mul_f64(0.75 + 0.25 * f64::from(jitter) / 1000.0)
}

/// 16 random bytes for an add's key; the OS generator, so keys of different clients (and of
/// one client's adds) do not meet.
pub(crate) fn random_key() -> [u8; 16] {
    let mut key = [0u8; 16];
    if getrandom::fill(&mut key).is_err() {
        // No OS randomness (a sandbox without getrandom): time and a counter still keep the
        // keys of this process apart, which is what matters for a re-sent add.
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        key[..8].copy_from_slice(&nanos.to_le_bytes());
        let count = COUNTER.fetch_add(1, Ordering::Relaxed) ^ u64::from(std::process::id());
        key[8..].copy_from_slice(&count.to_le_bytes());
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pauses double from the minimum, stay under the cap, and never drop below 75 %.
    #[test]
    fn doubles_up_to_the_cap() {
        let (min, max) = (Duration::from_millis(50), Duration::from_secs(1));
        for attempt in 0..40 {
            let full = (min * 2u32.pow(attempt.min(16))).min(max);
            let p = pause(attempt, min, max);
            assert!(p <= full && p >= full.mul_f64(0.75), "{attempt}: {p:?}");
        }
    }

    /// Two keys differ.
    #[test]
    fn keys_differ() {
        assert_ne!(random_key(), random_key());
    }
}
