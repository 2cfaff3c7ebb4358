//! When a schedule fires: a `Trigger` from the wire, checked and read once into a `Timer` that
//! answers "what is the first firing after now?".
//!
//! `Every(ms)` fires at `created_at + k * ms` (k = 1, 2, ...): a schedule keeps its phase
//! however late the coordinator looks, and the first firing after a long sleep is the next of
//! those times, so missed ones collapse. A cron line's times are local times in its zone
//! (UTC unless named), evaluated by croner on jiff's zoned times: a time that a clock change
//! skips (02:30 when clocks jump from 02:00 to 03:00) fires at the jump, and one that it
//! repeats fires once, at its first occurrence.

use super::cron_line;
use croner::Cron;
use jiff::tz::TimeZone;
use jiff::Zoned;
use tatzelwurm_proto::schedule::Trigger;
use tatzelwurm_proto::task::Timestamp;

/// The shortest interval of `Every`, in ms: a schedule fires at most once a second.
pub const MIN_EVERY_MS: u64 = 1_000;

/// The longest interval of `Every`, in ms (100 years of 365 days): longer ones are mistakes, and
/// the bound keeps every firing time far inside what a timestamp and a calendar can show.
pub const MAX_EVERY_MS: u64 = 100 * 365 * 24 * 60 * 60 * 1_000;

/// The longest time zone name read, in bytes (IANA names have at most about 30).
pub const MAX_ZONE_NAME: usize = 64;

/// A checked trigger, ready to say when it fires next.
#[derive(Debug, Clone)]
pub enum Timer {
    /// Every this many ms since the schedule was added.
    Every(u64),
    /// At the times of this cron line, read in this zone.
    Cron {
        /// The parsed line.
        cron: Box<Cron>,
        /// Its time zone.
        zone: TimeZone,
    },
}

impl Timer {
    /// Checks `trigger` and reads it; the error is the one sentence a user reads.
    pub fn new(trigger: &Trigger) -> Result<Timer, String> {
        match trigger {
            Trigger::Every(ms) if *ms < MIN_EVERY_MS => Err(format!(
                "a schedule fires at most once a second, so its interval must be 1s or more, not {}",
                span(*ms)
            )),
            Trigger::Every(ms) if *ms > MAX_EVERY_MS => Err(format!(
                "a schedule's interval may be at most 100 years, not {}",
                span(*ms)
            )),
            Trigger::Every(ms) => Ok(Timer::Every(*ms)),
            Trigger::Cron { line, tz } => {
                let zone = zone(tz.as_deref())?;
                let cron = Box::new(cron_line::parse(line)?);
                Ok(Timer::Cron { cron, zone })
            }
        }
    }

    /// The first firing strictly after `now` of a schedule added at `created_at`; `None` when
    /// there is none (a cron line whose dates never come, or past what a calendar holds).
    pub fn next_after(&self, created_at: Timestamp, now: Timestamp) -> Option<Timestamp> {
        match self {
            Timer::Every(every) => {
                // The clock may have gone back since the schedule was added: then the first
                // firing is still one interval after it was added.
                let periods = now.0.saturating_sub(created_at.0) / every + 1;
                let next = created_at.0.checked_add(periods.checked_mul(*every)?)?;
                Some(Timestamp(next))
            }
            Timer::Cron { cron, zone } => {
                let millis = i64::try_from(now.0).ok()?;
                let instant = jiff::Timestamp::from_millisecond(millis).ok()?;
                let start = Zoned::new(instant, zone.clone());
                // Not inclusive: croner steps past `now`'s second, so a time equal to `now`
                // (the firing being made) is not found again.
                let next = cron.find_next_occurrence(&start, false).ok()?;
                let next = u64::try_from(next.timestamp().as_millisecond()).ok()?;
                (next > now.0).then_some(Timestamp(next))
            }
        }
    }
}

/// The time zone named `tz` (IANA, any case), UTC when none is named.
fn zone(tz: Option<&str>) -> Result<TimeZone, String> {
    match tz {
        None => Ok(TimeZone::UTC),
        Some(name) if name.len() > MAX_ZONE_NAME => Err(format!(
            "a time zone name has at most {MAX_ZONE_NAME} bytes; use an IANA name such as `Europe/Berlin` or `UTC`"
        )),
        Some(name) => TimeZone::get(name).map_err(|_| {
            format!(
                "unknown time zone `{}`; use an IANA name such as `Europe/Berlin` or `UTC`",
                name.escape_debug()
            )
        }),
    }
}

/// `ms` as a refusal shows it: whole seconds as `30s`, anything else as `1500ms`.
fn span(ms: u64) -> String {
    match (ms / 1_000, ms % 1_000) {
        (seconds, 0) => format!("{seconds}s"),
        _ => format!("{ms}ms"),
    }
}
