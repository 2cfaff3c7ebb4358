//! `Durations`: how long each function's attempts take, as a moving average per function.
//!
//! The scheduler measures an attempt from its `Started` to its report (both seen here, so the
//! figure includes the report's way back, which is what a prefetched queue must cover) and keeps
//! an exponentially weighted average per function name. Prefetch depth is sized from it
//! (`prefetch`). Timestamps are milliseconds, so a sub-millisecond task measures 0 or 1; the
//! average of such samples still tends to the true duration, since where a millisecond tick
//! falls within an attempt is random. Function names are interned to small ids, so a flight
//! holds a number, not a string; past `MAX_FUNCTIONS` names, the rest share one entry.

use std::collections::HashMap;

/// Weight of a new sample in the average: about the last ten attempts count.
const WEIGHT: f64 = 0.1;

/// Function names tracked one by one at most; further names share the last entry.
pub const MAX_FUNCTIONS: usize = 4096;

/// An interned function name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FunctionId(u32);

/// The moving average of one function's attempt durations.
#[derive(Debug, Clone, Copy, Default)]
struct Average {
    /// Milliseconds; meaningful once `samples > 0`.
    ms: f64,
    /// Samples seen (saturating): the first sets the average outright.
    samples: u32,
}

/// Durations per function. See the module comment.
#[derive(Debug, Default)]
pub struct Durations {
    ids: HashMap<String, FunctionId>,
    averages: Vec<Average>,
}

impl Durations {
    /// The id of `function`, interning it if new (or the shared overflow entry).
    pub fn intern(&mut self, function: &str) -> FunctionId {
        if let Some(id) = self.ids.get(function) {
            return *id;
        }
        if self.averages.len() >= MAX_FUNCTIONS {
            return FunctionId(MAX_FUNCTIONS as u32 - 1);
        }
        let id = FunctionId(self.averages.len() as u32);
        self.averages.push(Average::default());
        self.ids.insert(function.to_string(), id);
        id
    }

    /// The average duration of `function` in ms, if any attempt of it was measured.
    pub fn average(&self, function: &str) -> Option<f64> {
        self.measured(function).map(|(ms, _)| ms)
    }

    /// The average duration of `function` in ms and how many samples it rests on, if any.
    pub fn measured(&self, function: &str) -> Option<(f64, u32)> {
        let id = self.ids.get(function)?;
        let average = self.averages.get(id.0 as usize)?;
        (average.samples > 0).then_some((average.ms, average.samples))
    }

    /// `measured`, by interned id.
    pub fn measured_id(&self, id: FunctionId) -> Option<(f64, u32)> {
        let average = self.averages.get(id.0 as usize)?;
        (average.samples > 0).then_some((average.ms, average.samples))
    }

    /// Adds one measured attempt of `id` that took `ms`.
    pub fn sample(&mut self, id: FunctionId, ms: u64) {
        let Some(average) = self.averages.get_mut(id.0 as usize) else {
            return;
        };
        let ms = ms as f64;
        average.ms = if average.samples == 0 {
            ms
        } else {
            average.ms + WEIGHT * (ms - average.ms)
        };
        average.samples = average.samples.saturating_add(1);
    }
}
