//! The schedule table: every schedule by name, when each fires next, and which changes the
//! store has yet to write.
//!
//! A plain struct with the time passed in, like `TaskTable`: no channel, no socket, no store.
//! The task actor holds it, asks `next_due` when to wake, calls `due` when that time passes,
//! adds the tasks `due` returns (ready, in the same round), tells `fired` which task each
//! firing added, and writes `take_changes` into the round's batch, so a firing and the task it
//! added are durable together.
//!
//! Missed firings collapse: a schedule whose time passed (while the coordinator was down, or
//! while it was busy) fires once at the next `due`, and its next time is the first one after
//! that `now`. A paused schedule has no next time and does not fire; resuming continues from
//! the first time after the resume, not from the times it missed.
//!
//! Layout: [`trigger`] reads a `Trigger` into a `Timer` (next firing after now); [`cron_line`]
//! reads cron lines and names the bad field; [`recipe`] checks the task a schedule adds.

pub mod cron_line;
pub mod recipe;
pub mod trigger;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use tatzelwurm_proto::actioner::{Failure, FailureKind};
use tatzelwurm_proto::schedule::{
    check_name, ScheduleChange, ScheduleInfo, ScheduleSpec, LAST_FIRINGS,
};
use tatzelwurm_proto::task::{TaskSpec, Timestamp};
use tatzelwurm_proto::TaskId;
use trigger::Timer;

/// How many schedule names an `UnknownSchedule` refusal lists.
pub const NAMED_SCHEDULES: usize = 10;

/// Why a schedule request changed nothing; `failure` is what the actioner reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// `schedule add` with a name already in use.
    #[error("there is already a schedule `{0}`; remove it first (`schedule remove {0}`) or choose another name")]
    Exists(String),
    /// A name no schedule has; `known` holds the first `NAMED_SCHEDULES` names in use (by
    /// name) and `more` counts the rest.
    #[error("there is no schedule `{name}`; {}", known_list(known, *more))]
    Unknown {
        /// The name asked for.
        name: String,
        /// Names in use, at most `NAMED_SCHEDULES`.
        known: Vec<String>,
        /// How many names in use `known` leaves out.
        more: usize,
    },
    /// A malformed `schedule add`: the sentence says what is wrong.
    #[error("{0}")]
    Bad(String),
}

impl ScheduleError {
    /// The refusal as the actioner reads it: `ScheduleExists`, `UnknownSchedule` or
    /// `BadRequest`, with the one sentence of `Display`.
    pub fn failure(&self) -> Failure {
        let kind = match self {
            ScheduleError::Exists(_) => FailureKind::ScheduleExists,
            ScheduleError::Unknown { .. } => FailureKind::UnknownSchedule,
            ScheduleError::Bad(_) => FailureKind::BadRequest,
        };
        Failure::new(kind, self.to_string())
    }
}

/// The end of an `Unknown` refusal: the names in use, or that there are none.
fn known_list(known: &[String], more: usize) -> String {
    if known.is_empty() {
        return "there are no schedules yet (`schedule add` makes one)".into();
    }
    let names = known.join(", ");
    match more {
        0 => format!("the schedules are: {names}"),
        more => format!("the schedules are: {names} and {more} more (`schedule list` shows all)"),
    }
}

/// One schedule: what the store keeps and shows, and its trigger read once.
#[derive(Debug)]
struct Entry {
    /// The schedule as stored and shown.
    info: ScheduleInfo,
    /// Its trigger, read; `None` when a stored trigger can no longer be read (its time zone
    /// left the time zone database): such a schedule fires no more until removed.
    timer: Option<Timer>,
}

impl Entry {
    /// The first firing after `now`, if any.
    fn next_after(&self, now: Timestamp) -> Option<Timestamp> {
        self.timer
            .as_ref()
            .and_then(|timer| timer.next_after(self.info.created_at, now))
    }
}

/// Every schedule by name, and the names changed since the last `take_changes`.
#[derive(Debug, Default)]
pub struct Schedules {
    /// The schedules, by name (so `list` and `due` go in name order).
    entries: BTreeMap<String, Entry>,
    /// Names added, changed, fired or removed since the last `take_changes`.
    changed: BTreeSet<String>,
}

impl Schedules {
    /// An empty table.
    pub fn new() -> Schedules {
        Schedules::default()
    }

    /// The table of the schedules the store kept. A schedule whose `next_at` passed while the
    /// coordinator was down keeps it, so it fires once at the first `due` (not once per missed
    /// time). A stored trigger that can no longer be read (its time zone is gone from this
    /// machine's database) is kept, shown, and fires no more; a warning names it.
    pub fn load(stored: Vec<ScheduleInfo>, now: Timestamp) -> Schedules {
        let mut table = Schedules::new();
        for info in stored {
            let timer = match Timer::new(&info.spec.trigger) {
                Ok(timer) => Some(timer),
                Err(why) => {
                    tracing::warn!(
                        schedule = %info.spec.name,
                        "schedule `{}` fires no more after its next due time: {why}; remove it and add it anew",
                        info.spec.name
                    );
                    None
                }
            };
            let mut entry = Entry { info, timer };
            // A schedule stored unpaused with no next time but a timer that has one (written
            // by a coordinator whose clock or zone data differed) gets its next time back.
            if !entry.info.paused && entry.info.next_at.is_none() {
                entry.info.next_at = entry.next_after(now);
                if entry.info.next_at.is_some() {
                    table.changed.insert(entry.info.spec.name.clone());
                }
            }
            table.entries.insert(entry.info.spec.name.clone(), entry);
        }
        table
    }

    /// Adds a schedule, unpaused, first firing after `now`. Refused (changing nothing) when
    /// the name is malformed or taken, the trigger cannot be read (an interval under 1 s, a
    /// bad cron line or time zone, a cron line that never fires), or the task is one no firing
    /// could add ready (a start time, tasks to run after, a bad function, queue or priority).
    pub fn add(
        &mut self,
        spec: ScheduleSpec,
        now: Timestamp,
    ) -> Result<ScheduleInfo, ScheduleError> {
        check_name(&spec.name).map_err(ScheduleError::Bad)?;
        if self.entries.contains_key(&spec.name) {
            return Err(ScheduleError::Exists(spec.name));
        }
        let timer = Timer::new(&spec.trigger).map_err(ScheduleError::Bad)?;
        recipe::check(&spec.task).map_err(ScheduleError::Bad)?;
        let Some(next_at) = timer.next_after(now, now) else {
            return Err(ScheduleError::Bad(never(&spec)));
        };
        let info = ScheduleInfo {
            spec,
            paused: false,
            created_at: now,
            next_at: Some(next_at),
            fired: 0,
            last: Vec::new(),
        };
        let name = info.spec.name.clone();
        self.entries.insert(
            name.clone(),
            Entry {
                info: info.clone(),
                timer: Some(timer),
            },
        );
        self.changed.insert(name);
        Ok(info)
    }

    /// Pauses, resumes or removes schedule `name`; answers the schedule as it is now (as it
    /// was, for a removal). Pausing a paused or resuming a running schedule changes nothing.
    pub fn change(
        &mut self,
        name: &str,
        change: ScheduleChange,
        now: Timestamp,
    ) -> Result<ScheduleInfo, ScheduleError> {
        if !self.entries.contains_key(name) {
            return Err(self.unknown(name));
        }
        if change == ScheduleChange::Remove {
            let entry = self.entries.remove(name).expect("checked above");
            self.changed.insert(name.to_string());
            return Ok(entry.info);
        }
        let entry = self.entries.get_mut(name).expect("checked above");
        let pause = change == ScheduleChange::Pause;
        if entry.info.paused != pause {
            entry.info.paused = pause;
            entry.info.next_at = if pause { None } else { entry.next_after(now) };
            self.changed.insert(name.to_string());
        }
        Ok(entry.info.clone())
    }

    /// Schedule `name` as it is now.
    pub fn get(&self, name: &str) -> Result<ScheduleInfo, ScheduleError> {
        match self.entries.get(name) {
            Some(entry) => Ok(entry.info.clone()),
            None => Err(self.unknown(name)),
        }
    }

    /// Every schedule, by name.
    pub fn list(&self) -> Vec<ScheduleInfo> {
        self.entries
            .values()
            .map(|entry| entry.info.clone())
            .collect()
    }

    /// How many schedules there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// When the next schedule fires: the earliest `next_at` of the schedules not paused (a
    /// scan: schedules are few, and this is asked once per round at most).
    pub fn next_due(&self) -> Option<Timestamp> {
        self.entries
            .values()
            .filter(|entry| !entry.info.paused)
            .filter_map(|entry| entry.info.next_at)
            .min()
    }

    /// Fires every schedule due at `now` once (however many of its times passed) and moves its
    /// next time to the first one after `now`; answers the task each firing adds, by schedule
    /// name. The caller adds those tasks and reports each with `fired`.
    pub fn due(&mut self, now: Timestamp) -> Vec<(String, TaskSpec)> {
        let mut firings = Vec::new();
        for (name, entry) in &mut self.entries {
            let is_due = !entry.info.paused && entry.info.next_at.is_some_and(|at| at <= now);
            if !is_due {
                continue;
            }
            entry.info.next_at = entry.next_after(now);
            self.changed.insert(name.clone());
            firings.push((name.clone(), entry.info.spec.task.clone()));
        }
        firings
    }

    /// Records that a firing of `name` at `now` added `task`: counted in `fired`, first in
    /// `last`. A name no longer in the table (removed since `due`) is ignored: its tasks stay.
    pub fn fired(&mut self, name: &str, task: TaskId, now: Timestamp) {
        let Some(entry) = self.entries.get_mut(name) else {
            return;
        };
        entry.info.fired += 1;
        entry.info.last.insert(0, (task, now));
        entry.info.last.truncate(LAST_FIRINGS);
        self.changed.insert(name.to_string());
    }

    /// The schedules changed since the last call, by name, each as it is now (`None`: removed),
    /// for the store's batch; each change is handed out once.
    pub fn take_changes(&mut self) -> Vec<(String, Option<ScheduleInfo>)> {
        std::mem::take(&mut self.changed)
            .into_iter()
            .map(|name| {
                let info = self.entries.get(&name).map(|entry| entry.info.clone());
                (name, info)
            })
            .collect()
    }

    /// The refusal of `name`, naming the schedules there are.
    fn unknown(&self, name: &str) -> ScheduleError {
        let known: Vec<String> = self.entries.keys().take(NAMED_SCHEDULES).cloned().collect();
        ScheduleError::Unknown {
            name: name.to_string(),
            more: self.entries.len() - known.len(),
            known,
        }
    }
}

/// The refusal of a schedule whose trigger has no time after now (a cron line such as
/// `0 0 30 2 *`, whose dates never come).
fn never(spec: &ScheduleSpec) -> String {
    match &spec.trigger {
        tatzelwurm_proto::schedule::Trigger::Cron { line, .. } => format!(
            "the cron line `{line}` never fires: no date in the coming years has its day-of-month in its months; choose a day that every month named has"
        ),
        tatzelwurm_proto::schedule::Trigger::Every(_) => format!(
            "schedule `{}` has no firing time that a timestamp can hold; check the coordinator's clock",
            spec.name
        ),
    }
}
