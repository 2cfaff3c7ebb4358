//! `LogLimit`: aggregates repeated warnings per peer and kind, so that a hostile or broken peer
//! cannot flood the log.
//!
//! The first warning of a (peer, kind) is logged in full; further ones within `interval` are
//! counted, and the first one after the interval is logged in full again with the count of
//! those left out ("and 1234 more like it in the last 10 s"). A count left when a peer goes
//! quiet is handed back by `sweep`. At most `max_keys` (peer, kind) pairs are tracked; past
//! that, new ones share one overflow entry. So each tracked pair writes at most two lines per
//! interval, and all of them at most `2 * (max_keys + 1)` lines per interval, whatever the input.
//! A plain struct with the time passed in (milliseconds), tested directly.

use std::collections::HashMap;
use std::hash::Hash;

/// What to do with one warning.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Log it in full; `left_out` warnings like it were counted and not logged since the last
    /// one that was (say so when it is not 0).
    Log { left_out: u64 },
    /// Count it, log nothing.
    Quiet,
}

/// Counts of one (peer, kind).
#[derive(Debug)]
struct Entry {
    /// When the last logged warning was.
    logged_at: u64,
    /// Warnings counted since then.
    left_out: u64,
}

/// Repeated warnings per key; see the module comment.
#[derive(Debug)]
pub struct LogLimit<K> {
    /// How long after a logged warning the same key is only counted, in ms.
    interval: u64,
    /// Keys tracked at most; more share the overflow entry.
    max_keys: usize,
    /// Tracked keys.
    entries: HashMap<K, Entry>,
    /// The shared entry of keys past `max_keys`.
    overflow: Option<Entry>,
}

impl<K: Hash + Eq + Clone> LogLimit<K> {
    /// A limiter that logs each key at most once per `interval_ms` (plus its count).
    pub fn new(interval_ms: u64, max_keys: usize) -> LogLimit<K> {
        LogLimit {
            interval: interval_ms,
            max_keys,
            entries: HashMap::new(),
            overflow: None,
        }
    }

    /// Whether a warning of `key` at `now` (ms) is logged.
    pub fn check(&mut self, key: &K, now: u64) -> Decision {
        if !self.entries.contains_key(key) && self.entries.len() >= self.max_keys {
            // Make room from keys that went quiet; their counts are lost only if the caller
            // never sweeps, which the tasks actor and the listener do.
            let interval = self.interval;
            self.entries
                .retain(|_, e| e.left_out > 0 || now.saturating_sub(e.logged_at) < interval);
        }
        let interval = self.interval;
        let entry = if let Some(entry) = self.entries.get_mut(key) {
            entry
        } else if self.entries.len() < self.max_keys {
            self.entries.insert(
                key.clone(),
                Entry {
                    logged_at: now,
                    left_out: 0,
                },
            );
            return Decision::Log { left_out: 0 };
        } else {
            match &mut self.overflow {
                Some(entry) => entry,
                none => {
                    *none = Some(Entry {
                        logged_at: now,
                        left_out: 0,
                    });
                    return Decision::Log { left_out: 0 };
                }
            }
        };
        if now.saturating_sub(entry.logged_at) < interval {
            entry.left_out += 1;
            return Decision::Quiet;
        }
        let left_out = std::mem::take(&mut entry.left_out);
        entry.logged_at = now;
        Decision::Log { left_out }
    }

    /// Forgets keys whose interval has passed and returns the counts they still held (`None`
    /// for the overflow entry), for one summary line each.
    pub fn sweep(&mut self, now: u64) -> Vec<(Option<K>, u64)> {
        let interval = self.interval;
        let mut counts = Vec::new();
        self.entries.retain(|key, entry| {
            if now.saturating_sub(entry.logged_at) < interval {
                return true;
            }
            if entry.left_out > 0 {
                counts.push((Some(key.clone()), entry.left_out));
            }
            false
        });
        if let Some(entry) = &self.overflow {
            if now.saturating_sub(entry.logged_at) >= interval {
                if entry.left_out > 0 {
                    counts.push((None, entry.left_out));
                }
                self.overflow = None;
            }
        }
        counts
    }

    /// How many keys are tracked (without the overflow entry).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.overflow.is_none()
    }
}

/// The words added to a logged warning for `left_out` counted ones ("" for none).
pub fn left_out_note(left_out: u64, interval_ms: u64) -> String {
    if left_out == 0 {
        String::new()
    } else {
        format!(
            " (and {left_out} more like it in the last {} s, not logged)",
            interval_ms.div_ceil(1000)
        )
    }
}

/// How long connection-level warnings of one address and kind are aggregated.
pub const PEER_INTERVAL_MS: u64 = 10_000;

/// Addresses whose connection-level warnings are tracked one by one; more share one count.
pub const PEER_KEYS: usize = 256;

/// A `LogLimit` over (kind, peer address) shared by every connection: refused hellos, bad
/// frames, dropped peers. Behind a mutex held only for a map lookup, never across an await.
pub struct PeerLog {
    inner: std::sync::Mutex<(LogLimit<(&'static str, std::net::IpAddr)>, u64)>,
}

impl Default for PeerLog {
    fn default() -> Self {
        PeerLog {
            inner: std::sync::Mutex::new((LogLimit::new(PEER_INTERVAL_MS, PEER_KEYS), 0)),
        }
    }
}

impl PeerLog {
    /// Whether a warning of `kind` about a peer at `ip` is logged now: `Some(note)` (append
    /// the note, which counts those left out), or `None` (counted only). Every interval it
    /// also logs the counts of addresses that went quiet.
    pub fn note(&self, kind: &'static str, ip: std::net::IpAddr) -> Option<String> {
        let now = now_ms();
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (limit, last_sweep) = &mut *guard;
        if now.saturating_sub(*last_sweep) >= PEER_INTERVAL_MS {
            *last_sweep = now;
            for (key, count) in limit.sweep(now) {
                let who = key.map_or("other addresses".to_string(), |(kind, ip)| {
                    format!("{ip} ({kind})")
                });
                tracing::warn!(
                    "{count} more warnings about {who} were not logged in the last {} s",
                    PEER_INTERVAL_MS / 1000
                );
            }
        }
        match limit.check(&(kind, ip), now) {
            Decision::Log { left_out } => Some(left_out_note(left_out, PEER_INTERVAL_MS)),
            Decision::Quiet => None,
        }
    }
}

/// Milliseconds since the epoch, the time `check` and `sweep` take.
pub fn now_ms() -> u64 {
    tatzelwurm_proto::task::Timestamp::now().0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first warning is logged, repeats within the interval are counted, and the first one
    /// after it is logged with the count.
    #[test]
    fn first_in_full_then_one_per_interval_with_a_count() {
        let mut limit = LogLimit::new(1000, 8);
        assert_eq!(limit.check(&"a", 0), Decision::Log { left_out: 0 });
        for t in 1..500 {
            assert_eq!(limit.check(&"a", t), Decision::Quiet);
        }
        assert_eq!(limit.check(&"b", 600), Decision::Log { left_out: 0 });
        assert_eq!(limit.check(&"a", 1000), Decision::Log { left_out: 499 });
        assert_eq!(limit.check(&"a", 1001), Decision::Quiet);
        assert_eq!(limit.check(&"a", 2000), Decision::Log { left_out: 1 });
    }

    /// A count left when the key goes quiet comes back from `sweep`, once; quiet keys go.
    #[test]
    fn sweep_returns_leftover_counts() {
        let mut limit = LogLimit::new(1000, 8);
        limit.check(&"a", 0);
        limit.check(&"a", 10);
        limit.check(&"a", 20);
        limit.check(&"b", 0);
        assert!(limit.sweep(999).is_empty());
        assert_eq!(limit.sweep(1000), vec![(Some("a"), 2)]);
        assert!(limit.is_empty());
        assert!(limit.sweep(5000).is_empty());
    }

    /// However many keys warn, at most `max_keys + 1` lines come per interval.
    #[test]
    fn many_keys_share_the_overflow_entry() {
        let mut limit = LogLimit::new(1000, 4);
        let logged = (0..10_000u32)
            .filter(|key| limit.check(key, 5) != Decision::Quiet)
            .count();
        assert_eq!(logged, 5);
        assert_eq!(limit.len(), 4);
        let swept: u64 = limit.sweep(1005).iter().map(|(_, n)| n).sum();
        assert_eq!(swept, 10_000 - 5);
        // After the interval, quiet keys make room for new ones.
        assert_eq!(limit.check(&77_777, 3000), Decision::Log { left_out: 0 });
    }

    /// The note reads as part of the sentence, and is empty when nothing was left out.
    #[test]
    fn note() {
        assert_eq!(left_out_note(0, 10_000), "");
        assert_eq!(
            left_out_note(12, 10_000),
            " (and 12 more like it in the last 10 s, not logged)"
        );
    }
}
