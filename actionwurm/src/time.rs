//! Times and durations as people read them in tables: `2026-11-24 01:40:12` (UTC), `1.2s`,
//! `in 4m 30s`, and the seconds of a task's policy as typed (`2.5s`).
//!
//! Used by `table` and the commands' messages; JSON carries seconds since the epoch instead.
//! jiff does the calendar.

use tatzelwurm_proto::task::Timestamp;

/// A moment as `YYYY-MM-DD HH:MM:SS` in UTC: sortable, unambiguous, and the same on every machine
/// that reads the same coordinator. Milliseconds are cut, not rounded.
pub fn utc(at: Timestamp) -> String {
    let millis = i64::try_from(at.0).unwrap_or(i64::MAX);
    match jiff::Timestamp::from_millisecond(millis) {
        Ok(moment) => moment.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        // Beyond jiff's range (year 9999): no coordinator's clock says that; show the number.
        Err(_) => format!("{} ms after 1970", at.0),
    }
}

/// A moment as `YYYY-MM-DD HH:MM:SS.mmm` in UTC, for the event log, where many things happen
/// within one second.
pub fn utc_millis(at: Timestamp) -> String {
    format!("{}.{:03}", utc(at), at.0 % 1000)
}

/// The time between two moments, short enough for a table column: `350ms`, `1.2s`, `4m05s`,
/// `2h10m`. A `to` before `from` (clocks of different machines) reads as zero.
pub fn duration(from: Timestamp, to: Timestamp) -> String {
    let millis = to.0.saturating_sub(from.0);
    match millis {
        0..1_000 => format!("{millis}ms"),
        1_000..60_000 => format!("{:.1}s", millis as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m{:02}s", millis / 60_000, millis / 1000 % 60),
        _ => format!("{}h{:02}m", millis / 3_600_000, millis / 60_000 % 60),
    }
}

/// How far `at` is from `now`, in its two largest units: `in 4m 30s`, `in 2d 3h`, `now`, or
/// `3m 10s ago` for a moment that has passed.
pub fn relative(at: Timestamp, now: Timestamp) -> String {
    let (millis, ahead) = if at >= now {
        (at.0 - now.0, true)
    } else {
        (now.0 - at.0, false)
    };
    let secs = millis / 1000;
    if secs == 0 {
        return "now".into();
    }
    let units = units(secs);
    let first = units.iter().position(|(n, _)| *n > 0).unwrap_or(3);
    let shown: Vec<String> = units[first..(first + 2).min(4)]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    let span = shown.join(" ");
    if ahead {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// A moment with how far it is from now: `2026-11-24 01:45:12 UTC (in 4m 30s)`.
pub fn moment(at: Timestamp, now: Timestamp) -> String {
    format!("{} UTC ({})", utc(at), relative(at, now))
}

/// Whole seconds as days, hours, minutes and seconds, largest first.
fn units(secs: u64) -> [(u64, &'static str); 4] {
    [
        (secs / 86_400, "d"),
        (secs / 3_600 % 24, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
    ]
}

/// A span given in seconds on the command line (`--backoff`, `--timeout`), shown the way it was
/// typed: `1s`, `2.5s`, `0.25s`, `3600s`.
pub fn seconds(millis: u64) -> String {
    format!("{}s", millis as f64 / 1000.0)
}

/// An interval in the units a person would type it in: `30s`, `5m`, `1h30m`, `1d`, `1.5s`.
pub fn span(millis: u64) -> String {
    if millis % 1000 != 0 {
        return seconds(millis);
    }
    let text: String = units(millis / 1000)
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if text.is_empty() {
        "0s".into()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known instants, including a leap day and the epoch, print as the calendar says.
    #[test]
    fn utc_matches_the_calendar() {
        assert_eq!(utc(Timestamp(0)), "1970-01-01 00:00:00");
        // 2024-02-29 12:34:56 UTC
        assert_eq!(utc(Timestamp(1_709_210_096_000)), "2024-02-29 12:34:56");
        // 2026-11-24 01:40:12.999 UTC: milliseconds are cut, not rounded.
        assert_eq!(utc(Timestamp(1_795_484_412_999)), "2026-11-24 01:40:12");
        assert_eq!(utc(Timestamp(951_782_400_000)), "2000-02-29 00:00:00");
        assert_eq!(
            utc(Timestamp(u64::MAX)),
            format!("{} ms after 1970", u64::MAX)
        );
    }

    /// Event times keep their milliseconds.
    #[test]
    fn utc_with_millis() {
        assert_eq!(
            utc_millis(Timestamp(1_795_484_412_009)),
            "2026-11-24 01:40:12.009"
        );
    }

    /// Every magnitude of duration gets its own short form, and a negative one reads as zero.
    #[test]
    fn durations_are_short() {
        let at = |ms: u64| Timestamp(1_000_000 + ms);
        assert_eq!(duration(at(0), at(350)), "350ms");
        assert_eq!(duration(at(0), at(1_234)), "1.2s");
        assert_eq!(duration(at(0), at(245_000)), "4m05s");
        assert_eq!(duration(at(0), at(7_800_000)), "2h10m");
        assert_eq!(duration(at(500), at(0)), "0ms");
    }

    /// Moments ahead read "in", passed ones "ago", in their two largest units.
    #[test]
    fn relative_times() {
        let now = Timestamp(1_000_000_000);
        let later = |ms: u64| Timestamp(now.0 + ms);
        assert_eq!(relative(later(270_000), now), "in 4m 30s");
        assert_eq!(relative(later(270_400), now), "in 4m 30s");
        assert_eq!(relative(later(12_000), now), "in 12s");
        assert_eq!(relative(later(3_600_000), now), "in 1h");
        assert_eq!(
            relative(later(2 * 86_400_000 + 3 * 3_600_000 + 60_000), now),
            "in 2d 3h"
        );
        assert_eq!(relative(later(400), now), "now");
        assert_eq!(relative(Timestamp(now.0 - 190_000), now), "3m 10s ago");
        assert_eq!(
            moment(Timestamp(1_795_484_712_000), Timestamp(1_795_484_442_000)),
            "2026-11-24 01:45:12 UTC (in 4m 30s)"
        );
    }

    /// Policy spans read as the seconds a user typed.
    #[test]
    fn seconds_as_typed() {
        assert_eq!(seconds(1_000), "1s");
        assert_eq!(seconds(2_500), "2.5s");
        assert_eq!(seconds(250), "0.25s");
        assert_eq!(seconds(1), "0.001s");
        assert_eq!(seconds(3_600_000), "3600s");
    }

    /// Intervals read in the units one would type.
    #[test]
    fn spans_as_typed() {
        assert_eq!(span(30_000), "30s");
        assert_eq!(span(300_000), "5m");
        assert_eq!(span(5_400_000), "1h30m");
        assert_eq!(span(86_400_000), "1d");
        assert_eq!(span(90_061_000), "1d1h1m1s");
        assert_eq!(span(1_500), "1.5s");
    }
}
