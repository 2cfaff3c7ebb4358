//! Times and durations as people read them in tables: `2026-11-24 01:40:12` (UTC), `1.2s`, and
//! the seconds of a task's policy as typed (`2.5s`).
//!
//! Used by `table` only; JSON carries seconds since the epoch instead. The calendar arithmetic is
//! Howard Hinnant's `civil_from_days`, so that no date crate is needed for one format.

use tatzelwurm_proto::task::Timestamp;

const MILLIS_PER_DAY: u64 = 86_400_000;

/// A moment as `YYYY-MM-DD HH:MM:SS` in UTC: sortable, unambiguous, and the same on every machine
/// that reads the same coordinator.
pub fn utc(at: Timestamp) -> String {
    let days = at.0 / MILLIS_PER_DAY;
    let secs_of_day = (at.0 % MILLIS_PER_DAY) / 1000;
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60
    )
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

/// A span given in seconds on the command line (`--backoff`, `--timeout`), shown the way it was
/// typed: `1s`, `2.5s`, `0.25s`, `3600s`.
pub fn seconds(millis: u64) -> String {
    format!("{}s", millis as f64 / 1000.0)
}

/// Year, month (1-12) and day (1-31) of the proleptic Gregorian calendar for a count of days
/// since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
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

    /// Policy spans read as the seconds a user typed.
    #[test]
    fn seconds_as_typed() {
        assert_eq!(seconds(1_000), "1s");
        assert_eq!(seconds(2_500), "2.5s");
        assert_eq!(seconds(250), "0.25s");
        assert_eq!(seconds(1), "0.001s");
        assert_eq!(seconds(3_600_000), "3600s");
    }
}
