//! Add keys: 16 random bytes per add, so that an add re-sent after a dropped connection is
//! known to the coordinator as the same add, and adds of different clients never meet.

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

    /// Two keys differ.
    #[test]
    fn keys_differ() {
        assert_ne!(random_key(), random_key());
    }
}
