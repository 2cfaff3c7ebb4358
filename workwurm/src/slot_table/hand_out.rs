//! Handing out: which queued attempts go to which slot, and how many a slot may hold.
//!
//! Part of the slot table (see there): an idle slot gets the next attempt; attempts of a function
//! this worker has seen end fast go behind a young fast front, up to [`HAND_MAX`] per slot and
//! spread evenly, so a slot never waits a round trip for its next task while nothing slow is held
//! back behind another (a handed task counts as started and is not given back). The moving
//! average of each function's duration, measured here from its start in the slot to its report,
//! decides what is fast.

use super::{Action, Handed, Phase, Slot, SlotTable};
use crate::slot_channel::encode_run;
use std::collections::HashMap;
use std::time::Duration;
use tatzelwurm_proto::worker::Assignment;
use tokio::time::Instant;

/// Most tasks one slot holds at once (its front and those behind it).
pub const HAND_MAX: usize = 32;

/// A slot is topped up only once its hand is this short, so that a run frame carries many tasks.
pub(super) const HAND_LOW: usize = HAND_MAX / 2;

/// A function whose runs here average less than this is fast: its tasks may wait in a slot
/// behind another fast one. At most `HAND_MAX` of them, so a slot holds at most ~60 ms of work
/// it cannot give back.
pub const FAST: Duration = Duration::from_millis(2);

/// The per-function averages are forgotten when this many functions are known.
const MAX_FUNCTIONS: usize = 4096;

impl SlotTable {
    /// Whether tasks of `function` may wait behind another in a slot.
    fn is_fast(&self, function: &str) -> bool {
        self.durations.get(function).is_some_and(|d| *d < FAST)
    }

    /// Whether `index` may take `next` behind what it holds: every task there is fast, and so
    /// is `next`, and the front has not run long. (Only the front can be slow: it may have been
    /// handed to an idle slot; every task behind it was fast when it went there.)
    fn may_hold_more(&self, index: usize, next: &Assignment, now: Instant) -> bool {
        let slot = &self.slots[index];
        slot.hand.len() < HAND_MAX
            && slot
                .began
                .is_some_and(|began| now.saturating_duration_since(began) < FAST)
            && self.is_fast(&next.spec.function)
            && slot
                .hand
                .front()
                .is_some_and(|front| self.is_fast(&front.assignment.spec.function))
    }

    /// Hands queued attempts to slots: first one to each idle slot, then fast ones behind fast
    /// ones to slots whose hands ran low, spread evenly; one run frame per slot.
    pub(super) fn dispatch(&mut self, now: Instant) {
        if self.queue.is_empty() || self.stopping {
            return;
        }
        let ready = |slot: &Slot| matches!(slot.phase, Phase::Ready) && !slot.broken;
        let mut handed = vec![0usize; self.slots.len()];
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if ready(slot) && slot.hand.is_empty() {
                let Some(assignment) = self.queue.pop_front() else {
                    break;
                };
                slot.began = Some(now);
                slot.hand.push_back(Handed {
                    assignment,
                    cancelled: false,
                });
                handed[index] += 1;
            }
        }
        // Slots that may be topped up: those whose hands ran low (or just got their front).
        let mut open: Vec<usize> = (0..self.slots.len())
            .filter(|&i| ready(&self.slots[i]) && self.slots[i].hand.len() - handed[i] <= HAND_LOW)
            .collect();
        while !open.is_empty() && !self.queue.is_empty() {
            let mut still = Vec::with_capacity(open.len());
            for &index in &open {
                let Some(next) = self.queue.front() else {
                    break;
                };
                if !self.may_hold_more(index, next, now) {
                    continue;
                }
                let assignment = self.queue.pop_front().expect("the front was just seen");
                self.slots[index].hand.push_back(Handed {
                    assignment,
                    cancelled: false,
                });
                handed[index] += 1;
                still.push(index);
            }
            open = still;
        }
        for (index, count) in handed.into_iter().enumerate() {
            if count == 0 {
                continue;
            }
            let hand = &self.slots[index].hand;
            let new = hand.iter().skip(hand.len() - count).map(|h| &h.assignment);
            self.started
                .extend(new.clone().map(|a| (a.task, a.attempt)));
            self.actions.push_back(Action::Hand {
                slot: index,
                count,
                frame: encode_run(new),
            });
        }
    }
}

/// Folds one observed duration of `function` into its moving average.
pub(super) fn learn(durations: &mut HashMap<String, Duration>, function: &str, took: Duration) {
    if let Some(average) = durations.get_mut(function) {
        *average = (*average * 7 + took) / 8;
        return;
    }
    if durations.len() >= MAX_FUNCTIONS {
        durations.clear();
    }
    durations.insert(function.to_string(), took);
}
