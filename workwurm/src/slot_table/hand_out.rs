//! Handing out: which queued attempts go to which slot, and how many a slot may hold.
//!
//! Part of the slot table (see there): an idle slot gets the next attempt; attempts of a function
//! this worker has seen end fast go behind a young fast front, up to [`HAND_MAX`] per slot and
//! spread evenly, so a slot never waits a round trip for its next task while nothing slow is held
//! back behind another (a handed task counts as started and is not given back). Short ones (under
//! [`SHORT`]) go one deep behind a young short front, for the same reason at a bounded cost. The
//! moving average of each function's duration, measured here from its start in the slot to its
//! report, decides what is fast and short. Tasks of coroutine functions are handed by the rules
//! of `together`, in the same pass and queue order.

use super::{Action, AttemptId, Handed, Phase, Slot, SlotTable};
use crate::slot_channel::encode_run;
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::time::Duration;
use tatzelwurm_proto::worker::Assignment;
use tokio::time::Instant;

/// Most tasks one slot holds at once (its front and those behind it). 64 rather than 32: on two
/// busy cores workwurm is often waiting for a core when a slot rings for more, and the deeper
/// hand (with slot.py's `RING_LOW` of 16) covers that wait; it also halves the run frames and
/// rings per task (W1, 100,000 noops: workwurm 4.0-4.2 -> 3.3-3.8 µs of CPU per task, slots
/// 9.1-9.2 -> 8.2-8.7). 128 rather than 64 (with a `RING_LOW` of 32) halved them again, and
/// with them the reports, the coordinator's rounds and its pushes to clients: W1 through
/// `submit_many`, 10,000 noops, 6 alternating runs, 14.2-14.8 µs of CPU per task over all
/// processes against 15.0-16.2 (workwurm 2.0-2.1 against 2.4-2.7, the coordinator 4.9-5.2
/// against 5.1-5.6).
pub const HAND_MAX: usize = 128;

/// A slot is topped up only once its hand is this short, so that a run frame carries many tasks.
pub(super) const HAND_LOW: usize = HAND_MAX / 2;

/// Waiting held tasks looked at per hand-out, the oldest first: a chain's next link is at the
/// front, and a long queue of held tasks is not looked through on every report.
const BEHIND_SCAN: usize = 2 * HAND_MAX;

/// A function whose runs here average less than this is fast: its tasks may wait in a slot
/// behind another fast one. At most `HAND_MAX` of them, so a slot holds at most ~130 ms of work
/// it cannot give back.
pub const FAST: Duration = Duration::from_millis(1);

/// A function whose runs here average less than this is short: one task of it (never more) may
/// wait in a slot behind a short front that has run less than this, so that the slot begins it
/// as soon as the front ends instead of after a round trip through workwurm (the slot waited
/// ~0.25 ms for its next frame after each `done`, measured in issue 10's W2 on 2 cores: 0.5 %
/// of a 50 ms task). A slot so holds at most ~`SHORT` of work it cannot give back; a longer
/// function gains too little from it to hold a task back.
pub const SHORT: Duration = Duration::from_millis(100);

/// The per-function averages are forgotten when this many functions are known.
const MAX_FUNCTIONS: usize = 4096;

impl SlotTable {
    /// Whether tasks of `function` may wait behind another in a slot, many deep.
    fn is_fast(&self, function: &str) -> bool {
        self.averages_below(function, FAST)
    }

    /// Whether a task of `function` may wait behind another in a slot, one deep.
    fn is_short(&self, function: &str) -> bool {
        self.averages_below(function, SHORT)
    }

    /// Whether `function` is known here to average less than `bound` and is not a coroutine
    /// function.
    fn averages_below(&self, function: &str, bound: Duration) -> bool {
        self.durations.get(function).is_some_and(|d| *d < bound) && !self.is_coroutine(function)
    }

    /// Whether `index` may take `next` behind what it holds: every task there is fast, and so
    /// is `next`, and the front has not run long; or the front alone is there, it and `next`
    /// are short, and the front has run less than `SHORT`. (Only the front can be slow: it may
    /// have been handed to an idle slot; every task behind it was fast or short when it went
    /// there.)
    fn may_hold_more(&self, index: usize, next: &Assignment, now: Instant) -> bool {
        let slot = &self.slots[index];
        let (Some(front), Some(began)) = (slot.hand.front(), slot.began) else {
            return false;
        };
        let ran = now.saturating_duration_since(began);
        let front = &front.assignment.spec.function;
        let next = &next.spec.function;
        let fast =
            slot.hand.len() < HAND_MAX && ran < FAST && self.is_fast(next) && self.is_fast(front);
        fast || (slot.hand.len() == 1 && ran < SHORT && self.is_short(next) && self.is_short(front))
    }

    /// Hands queued attempts to slots: in queue order, tasks of coroutine functions to slots
    /// that run together tasks and have room (or to idle slots, see `together`), the others
    /// one to each idle slot; then fast ones behind fast ones to slots whose hands ran low,
    /// spread evenly. One run frame per slot and kind.
    ///
    /// Held tasks that wait for others (see `waits`) are passed over, unless every task one
    /// waits for is in one slot's hand: then it may go behind them there, on the same terms as
    /// a fast task, with the condition that they completed (`needs`).
    pub(super) fn dispatch(&mut self, now: Instant) {
        if self.queue.is_empty() || self.stopping {
            return;
        }
        if self.waits.any_doomed() {
            self.give_back_doomed();
        }
        if !self.has_room() {
            // Nothing below would hand anything out: the common case after a `done` from a
            // slot whose hand is still deep (no allocation, no scan), and with held tasks (a
            // chain flows here) a long queue is looked through only when a slot could take
            // something.
            return;
        }
        let mut handed = vec![0usize; self.slots.len()];
        let mut together = vec![0usize; self.slots.len()];
        if self.waits.is_empty() {
            self.hand_startable(&mut handed, &mut together, now);
        } else {
            let (go, mut wait): (VecDeque<Assignment>, VecDeque<Assignment>) =
                std::mem::take(&mut self.queue)
                    .into_iter()
                    .partition(|a| self.waits.startable(a.task));
            self.queue = go;
            self.hand_startable(&mut handed, &mut together, now);
            self.hand_behind(&mut wait, &mut handed, now);
            // Those still waiting go back ahead of the rest: they are older.
            wait.append(&mut self.queue);
            self.queue = wait;
        }
        self.send_hands(handed, together);
    }

    /// Whether some slot could take a task now: an idle one, one whose hand ran low, or any
    /// while coroutine functions are known (their rules are `together`'s).
    fn has_room(&self) -> bool {
        !self.coroutines.is_empty()
            || self.slots.iter().any(|slot| {
                matches!(slot.phase, Phase::Ready) && !slot.broken && slot.hand.len() <= HAND_LOW
            })
    }

    /// Gives back the queued held tasks that are doomed (see `waits`), and so dooms what waits
    /// for them in turn, until none is left.
    fn give_back_doomed(&mut self) {
        loop {
            let before = self.returned.len();
            let waits = &self.waits;
            let (doomed, keep): (VecDeque<Assignment>, VecDeque<Assignment>) =
                std::mem::take(&mut self.queue)
                    .into_iter()
                    .partition(|a| waits.doomed(a.task));
            self.queue = keep;
            for assignment in doomed {
                self.waits
                    .ended(assignment.task, false, Some(Instant::now()));
                self.returned.push((assignment.task, assignment.attempt));
            }
            if self.returned.len() == before {
                return;
            }
        }
    }

    /// Hands waiting tasks (in `wait`, in queue order) behind all the tasks each waits for, if
    /// those are in one slot's hand and the slot may hold one more; they run there only if
    /// those completed. Handed ones leave `wait`.
    fn hand_behind(&mut self, wait: &mut VecDeque<Assignment>, handed: &mut [usize], now: Instant) {
        let mut at = 0;
        while at < wait.len().min(BEHIND_SCAN) {
            let next = &wait[at];
            let Some(needs) = self.waits.condition(next.task) else {
                at += 1;
                continue;
            };
            let target = (0..self.slots.len()).find(|&index| {
                let slot = &self.slots[index];
                // Topped up only once its hand ran low, as for fast tasks, so that a chain
                // goes to a slot in frames of many tasks. A full hand is passed over before
                // its tasks are looked through (`may_hold_more` would refuse it anyway): the
                // rest of a long chain is scanned on every `done` that finds the hand low, and
                // looking through a full hand for each waiting link made that scan cost
                // `BEHIND_SCAN` times `HAND_MAX` comparisons.
                matches!(slot.phase, Phase::Ready)
                    && !slot.broken
                    && slot.hand.len() - handed[index] <= HAND_LOW
                    && slot.hand.len() < HAND_MAX
                    && needs.iter().all(|id| {
                        slot.hand
                            .iter()
                            .any(|h| h.assignment.task == *id && !h.cancelled)
                    })
            });
            let Some(index) = target.filter(|&index| self.may_hold_more(index, next, now)) else {
                at += 1;
                continue;
            };
            let hand = &self.slots[index].hand;
            let needs: Vec<AttemptId> = needs
                .iter()
                .filter_map(|id| hand.iter().find(|h| h.assignment.task == *id))
                .map(Handed::id)
                .collect();
            let assignment = wait.remove(at).expect("the index is in the list");
            self.slots[index].hand.push_back(Handed {
                assignment,
                cancelled: false,
                needs,
            });
            handed[index] += 1;
        }
    }

    /// Hands startable queued attempts to slots (see `dispatch`).
    fn hand_startable(&mut self, handed: &mut [usize], together: &mut [usize], now: Instant) {
        let ready = |slot: &Slot| matches!(slot.phase, Phase::Ready) && !slot.broken;
        while let Some(front) = self.queue.front() {
            if self.is_coroutine(&front.spec.function) {
                let Some(index) = self.together_target(None) else {
                    break;
                };
                let assignment = self.queue.pop_front().expect("the front was just seen");
                self.push_together(index, assignment, now);
                together[index] += 1;
                continue;
            }
            let idle = self
                .slots
                .iter()
                .position(|slot| ready(slot) && slot.hand.is_empty() && slot.together.is_empty());
            let Some(index) = idle else {
                // It waits for an idle slot; together tasks behind it may pass it.
                self.pass_waiting(together, now);
                break;
            };
            let assignment = self.queue.pop_front().expect("the front was just seen");
            let slot = &mut self.slots[index];
            slot.began = Some(now);
            slot.hand.push_back(Handed {
                assignment,
                cancelled: false,
                needs: Vec::new(),
            });
            handed[index] += 1;
        }
        // Slots that may be topped up: those whose hands ran low (or just got their front).
        let mut open: Vec<usize> = (0..self.slots.len())
            .filter(|&i| {
                let slot = &self.slots[i];
                ready(slot) && !slot.hand.is_empty() && slot.hand.len() - handed[i] <= HAND_LOW
            })
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
                    needs: Vec::new(),
                });
                handed[index] += 1;
                still.push(index);
            }
            open = still;
        }
    }

    /// One run frame per slot and kind for what `dispatch` handed.
    fn send_hands(&mut self, handed: Vec<usize>, together: Vec<usize>) {
        for (index, count) in handed.into_iter().enumerate() {
            if count == 0 {
                continue;
            }
            let hand = &self.slots[index].hand;
            let new = hand
                .iter()
                .skip(hand.len() - count)
                .map(|h| (&h.assignment, h.needs.as_slice()));
            self.started
                .extend(new.clone().map(|(a, _)| (a.task, a.attempt)));
            self.actions.push_back(Action::Hand {
                slot: index,
                count,
                together: false,
                frame: encode_run(new, false),
            });
        }
        for (index, count) in together.into_iter().enumerate() {
            if count == 0 {
                continue;
            }
            let running = &self.slots[index].together;
            let new = running
                .iter()
                .skip(running.len() - count)
                .map(|t| (&t.assignment, &[][..]));
            self.started
                .extend(new.clone().map(|(a, _)| (a.task, a.attempt)));
            self.actions.push_back(Action::Hand {
                slot: index,
                count,
                together: true,
                frame: encode_run(new, true),
            });
        }
    }

    /// While the queue's front waits for an idle slot, hands the together tasks queued behind
    /// it (among the first `together::SCAN`) to slots with room, except the one kept free for
    /// it (see `together`).
    fn pass_waiting(&mut self, together: &mut [usize], now: Instant) {
        if self.coroutines.is_empty() {
            // The common case, on every report while sync tasks wait: nothing to look for.
            return;
        }
        let reserved = self.reserved_for_waiting();
        if self.together_target(reserved).is_none() {
            return;
        }
        let mut at = 1;
        while at < self.queue.len().min(super::together::SCAN) {
            if !self.is_coroutine(&self.queue[at].spec.function) {
                at += 1;
                continue;
            }
            let Some(index) = self.together_target(reserved) else {
                return;
            };
            let assignment = self.queue.remove(at).expect("the index is in the queue");
            self.push_together(index, assignment, now);
            together[index] += 1;
        }
    }
}

/// Folds one observed duration of `function` into its moving average.
pub(super) fn learn(durations: &mut FxHashMap<String, Duration>, function: &str, took: Duration) {
    if let Some(average) = durations.get_mut(function) {
        *average = (*average * 7 + took) / 8;
        return;
    }
    if durations.len() >= MAX_FUNCTIONS {
        durations.clear();
    }
    durations.insert(function.to_string(), took);
}
