//! `Flaps`: workers that keep connecting and dropping, held off with a growing backoff.
//!
//! A worker connection that ends (not after draining) less than `QUICK_MS` after it was
//! welcomed is a quick drop of that worker's name. From the second quick drop in a row, the
//! name's next connections are welcomed but granted no task until `BASE_MS · 2^(drops-2)`
//! (at most `MAX_MS`) after the last drop; `worker list` shows until when. A connection that
//! lasts `QUICK_MS` or drains clears the name's record, and so does `FORGET_MS` without a drop.
//! Keyed by name, not address: workers on one machine share an address. A plain struct with
//! the time passed in, held by the `WorkerTable`.

use std::collections::HashMap;
use tatzelwurm_proto::task::Timestamp;

/// A connection shorter than this (ms) that ends without draining is a quick drop.
pub const QUICK_MS: u64 = 10_000;
/// The hold-off after the second quick drop in a row (ms); it doubles with each further one.
pub const BASE_MS: u64 = 1_000;
/// The longest hold-off (ms).
pub const MAX_MS: u64 = 60_000;
/// A name with no drop for this long (ms) is forgotten.
const FORGET_MS: u64 = 600_000;
/// Names remembered at most; past it, the oldest records go first.
const MAX_NAMES: usize = 10_000;

/// One name's record of quick drops.
#[derive(Debug, Clone, Copy)]
struct Record {
    /// Quick drops in a row.
    drops: u32,
    /// When the last one was.
    last: Timestamp,
}

/// Quick drops by worker name; see the module comment.
#[derive(Debug, Default)]
pub struct Flaps {
    names: HashMap<String, Record>,
}

impl Flaps {
    /// A connection of `name`, welcomed at `connected_at`, ended at `now`; `drained` if it
    /// left after draining.
    pub fn ended(&mut self, name: &str, connected_at: Timestamp, now: Timestamp, drained: bool) {
        if drained || now.0.saturating_sub(connected_at.0) >= QUICK_MS {
            self.names.remove(name);
            return;
        }
        if !self.names.contains_key(name) && self.names.len() >= MAX_NAMES {
            self.names
                .retain(|_, r| now.0.saturating_sub(r.last.0) < FORGET_MS);
            if self.names.len() >= MAX_NAMES {
                if let Some(oldest) = self
                    .names
                    .iter()
                    .min_by_key(|(_, r)| r.last)
                    .map(|(n, _)| n.clone())
                {
                    self.names.remove(&oldest);
                }
            }
        }
        let record = self.names.entry(name.to_string()).or_insert(Record {
            drops: 0,
            last: now,
        });
        if now.0.saturating_sub(record.last.0) >= FORGET_MS {
            record.drops = 0;
        }
        record.drops = record.drops.saturating_add(1);
        record.last = now;
    }

    /// Until when `name` gets no task, if it is held off at `now`.
    pub fn held_until(&self, name: &str, now: Timestamp) -> Option<Timestamp> {
        let record = self.names.get(name)?;
        if record.drops < 2 {
            return None;
        }
        let doublings = (record.drops - 2).min(16);
        let wait = BASE_MS.saturating_mul(1 << doublings).min(MAX_MS);
        let until = Timestamp(record.last.0 + wait);
        (until > now).then_some(until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Timestamp {
        Timestamp(ms)
    }

    /// One quick drop is forgiven; from the second the hold-off starts at a second and doubles
    /// up to a minute; a long connection or a drain clears it; other names are untouched.
    #[test]
    fn quick_drops_back_off() {
        let mut flaps = Flaps::default();
        flaps.ended("f", t(0), t(100), false);
        assert_eq!(flaps.held_until("f", t(100)), None);
        flaps.ended("f", t(200), t(300), false);
        assert_eq!(flaps.held_until("f", t(300)), Some(t(1300)));
        assert_eq!(flaps.held_until("f", t(1300)), None);
        flaps.ended("f", t(1400), t(1500), false);
        assert_eq!(flaps.held_until("f", t(1500)), Some(t(3500)));
        for i in 0..20 {
            flaps.ended("f", t(5000 + i), t(5000 + i), false);
        }
        assert_eq!(flaps.held_until("f", t(5019)), Some(t(5019 + MAX_MS)));
        assert_eq!(flaps.held_until("real", t(5019)), None);
        flaps.ended("f", t(6000), t(6000 + QUICK_MS), false);
        assert_eq!(flaps.held_until("f", t(6000 + QUICK_MS)), None);
        flaps.ended("g", t(0), t(1), false);
        flaps.ended("g", t(2), t(3), false);
        flaps.ended("g", t(4), t(5), true);
        assert_eq!(flaps.held_until("g", t(6)), None);
    }

    /// The record stays bounded however many names drop.
    #[test]
    fn bounded() {
        let mut flaps = Flaps::default();
        for i in 0..(MAX_NAMES as u64 + 50) {
            flaps.ended(&format!("n{i}"), t(i), t(i + 1), false);
        }
        assert!(flaps.names.len() <= MAX_NAMES);
    }
}
