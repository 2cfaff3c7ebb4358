//! Spans and moments as people type them on the command line: `--delay 1h30m`, `--every 30s`
//! and `--at 2026-12-01T09:00:00Z`. jiff parses them (its "friendly" spans and RFC 3339
//! times); this module turns what jiff refuses into a sentence that names the part that is
//! wrong and shows a form that works.
//!
//! Shared by every command line (actionwurm's `--delay`, `--every`, `--at`, `--finished-before`;
//! the coordinator's `--keep-finished`), as clap value parsers, so a bad value fails before
//! anything is sent or opened. Not on the wire.

use crate::task::Timestamp;
use jiff::{Span, SpanTotal, Unit};

/// Examples shown in every error about a span.
const SPAN_EXAMPLES: &str = "such as 30s, 5m, 2h or 1h30m";

/// A span such as `30s`, `5m`, `2h`, `1h30m`, `1d` or `250ms` (jiff's friendly format; ISO 8601
/// `PT5M` works too), in whole milliseconds. A day is 24 hours; months and years, whose length
/// depends on the date, are refused, and so is a negative span.
pub fn parse_span(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!(
            "is empty; give a number with a unit, {SPAN_EXAMPLES}"
        ));
    }
    let span: Span = match trimmed.parse() {
        Ok(span) => span,
        Err(err) => return Err(span_error(trimmed, &err.to_string())),
    };
    if span.is_negative() {
        return Err(format!(
            "`{trimmed}` is negative; give a span of 0 or more, {SPAN_EXAMPLES}"
        ));
    }
    if span.get_months() != 0 || span.get_years() != 0 {
        return Err(format!(
            "`{trimmed}` uses months or years, whose length depends on the date; use days (d) or smaller units, {SPAN_EXAMPLES}"
        ));
    }
    let total = SpanTotal::from(Unit::Millisecond).days_are_24_hours();
    match span.total(total) {
        Ok(millis) if millis.is_finite() && millis >= 0.0 && millis < u64::MAX as f64 => {
            Ok(millis.round() as u64)
        }
        _ => Err(format!("`{trimmed}` is too long; {SPAN_EXAMPLES}")),
    }
}

/// `parse_span` for `--every`: at least one second, the coordinator's shortest interval (a
/// faster schedule would be a busy loop that fills the store).
pub fn parse_every(text: &str) -> Result<u64, String> {
    let millis = parse_span(text)?;
    if millis < 1_000 {
        return Err(format!(
            "`{}` is shorter than 1 second, the shortest interval of a schedule; give 1s or more, such as 30s, 5m or 1h",
            text.trim()
        ));
    }
    Ok(millis)
}

/// The sentence for a span jiff refused: the first part that is not a number followed by a
/// known unit, or (when each part reads fine) what jiff said, such as units out of order.
fn span_error(text: &str, jiff_says: &str) -> String {
    match bad_part(text) {
        Some(part) if part == text => format!(
            "`{text}` is not a span: give a number followed by a unit (ms, s, m, h, d or w), {SPAN_EXAMPLES}"
        ),
        Some(part) => format!(
            "`{text}` is not a span: its part `{part}` is not a number followed by a unit (ms, s, m, h, d or w); {SPAN_EXAMPLES}"
        ),
        None if jiff_says.contains("largest to smallest") => format!(
            "`{text}` is not a span: write each unit once, from largest to smallest, {SPAN_EXAMPLES}"
        ),
        None => format!(
            "`{text}` is not a span ({}); give a number with a unit, {SPAN_EXAMPLES}",
            first_clause(jiff_says)
        ),
    }
}

/// The first piece of `text` that is not `<number><unit>` (spaces allowed between pieces and
/// between a number and its unit), or `None` when every piece is.
fn bad_part(text: &str) -> Option<String> {
    const UNITS: [&str; 25] = [
        "ms",
        "msec",
        "millisecond",
        "milliseconds",
        "s",
        "sec",
        "secs",
        "second",
        "seconds",
        "m",
        "min",
        "mins",
        "minute",
        "minutes",
        "h",
        "hr",
        "hrs",
        "hour",
        "hours",
        "d",
        "day",
        "days",
        "w",
        "week",
        "weeks",
    ];
    if text.starts_with(['P', 'p', '-', '+']) {
        // ISO 8601 (`PT5M`) or a sign: not pieces of the friendly form; let jiff's words speak.
        return None;
    }
    let chars: Vec<char> = text.chars().collect();
    let mut at = 0;
    while at < chars.len() {
        while at < chars.len() && chars[at].is_whitespace() {
            at += 1;
        }
        let start = at;
        while at < chars.len() && (chars[at].is_ascii_digit() || chars[at] == '.') {
            at += 1;
        }
        let digits = at - start;
        while at < chars.len() && chars[at] == ' ' {
            at += 1;
        }
        let unit_start = at;
        while at < chars.len() && chars[at].is_alphabetic() {
            at += 1;
        }
        let unit: String = chars[unit_start..at].iter().collect();
        // Take the rest of a broken piece (`3x!`) so the message shows all of it.
        let mut end = at;
        let fine = digits > 0 && UNITS.contains(&unit.to_lowercase().as_str());
        if !fine {
            while end < chars.len() && !chars[end].is_whitespace() && !chars[end].is_ascii_digit() {
                end += 1;
            }
            end = end.max(start + 1).min(chars.len());
            return Some(chars[start..end].iter().collect::<String>().trim().into());
        }
        at = end;
        // A comma between pieces (`1h, 30m`) is fine in jiff's friendly form.
        if at < chars.len() && chars[at] == ',' {
            at += 1;
        }
    }
    None
}

/// A moment as RFC 3339 with an offset (`2026-12-01T09:00:00Z`, `2026-12-01T10:00:00+01:00`).
/// A time without an offset is refused: it would mean different moments on different machines.
pub fn parse_time(text: &str) -> Result<Timestamp, String> {
    let trimmed = text.trim();
    match trimmed.parse::<jiff::Timestamp>() {
        Ok(at) => Ok(Timestamp(u64::try_from(at.as_millisecond()).unwrap_or(0))),
        Err(_) if trimmed.parse::<jiff::civil::DateTime>().is_ok() => Err(format!(
            "`{trimmed}` has no UTC offset; add Z for UTC or an offset such as +01:00, as in 2026-12-01T09:00:00Z"
        )),
        Err(err) => Err(format!(
            "`{trimmed}` is not an RFC 3339 time ({}); give one such as 2026-12-01T09:00:00Z",
            first_clause(&err.to_string())
        )),
    }
}

/// jiff's error chains read "failed to parse ...: reason: detail"; the last clause is the
/// reason a user can act on, without the repeated input.
fn first_clause(text: &str) -> String {
    let last = text.rsplit(": ").next().unwrap_or(text);
    last.replace('\n', " ").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The forms of the issue and a few more parse to their milliseconds.
    #[test]
    fn spans_parse() {
        for (text, millis) in [
            ("30s", 30_000),
            ("5m", 300_000),
            ("2h", 7_200_000),
            ("1h30m", 5_400_000),
            ("1h 30m", 5_400_000),
            ("1d", 86_400_000),
            ("250ms", 250),
            ("0s", 0),
            ("PT5M", 300_000),
            (" 90s ", 90_000),
        ] {
            assert_eq!(parse_span(text), Ok(millis), "{text}");
        }
    }

    /// A malformed span names the part that is wrong and shows forms that work.
    #[test]
    fn bad_spans_name_the_bad_part() {
        for (text, part) in [
            ("1h3x", "`3x`"),
            ("soon", "`soon`"),
            ("5", "`5`"),
            ("1h30", "`30`"),
            ("h", "`h`"),
            ("10 parsecs", "`10 parsecs`"),
        ] {
            let err = parse_span(text).unwrap_err();
            assert!(err.contains(part), "{text}: {err}");
            assert_eq!(err.matches(part).count(), 1, "{text}: {err}");
            assert!(
                err.contains("such as 30s, 5m, 2h or 1h30m"),
                "{text}: {err}"
            );
        }
        let err = parse_span("").unwrap_err();
        assert!(err.contains("is empty"), "{err}");
        let err = parse_span("30s1h").unwrap_err();
        assert!(err.contains("largest to smallest"), "{err}");
        let err = parse_span("-5m").unwrap_err();
        assert!(err.contains("`-5m` is negative"), "{err}");
        let err = parse_span("1mo").unwrap_err();
        assert!(err.contains("`1mo`"), "{err}");
    }

    /// `--every` refuses less than a second, and says why.
    #[test]
    fn every_is_at_least_a_second() {
        assert_eq!(parse_every("1s"), Ok(1_000));
        let err = parse_every("500ms").unwrap_err();
        assert!(err.contains("shorter than 1 second"), "{err}");
    }

    /// RFC 3339 times with an offset parse; one without an offset or not a time is refused
    /// with a sentence showing the form.
    #[test]
    fn times_parse() {
        assert_eq!(
            parse_time("2026-12-01T09:00:00Z"),
            Ok(Timestamp(1_796_115_600_000))
        );
        assert_eq!(
            parse_time("2026-12-01T10:00:00+01:00"),
            Ok(Timestamp(1_796_115_600_000))
        );
        let err = parse_time("2026-12-01T09:00:00").unwrap_err();
        assert!(err.contains("no UTC offset"), "{err}");
        let err = parse_time("tomorrow").unwrap_err();
        assert!(
            err.starts_with("`tomorrow` is not an RFC 3339 time")
                && err.contains("2026-12-01T09:00:00Z"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
        // Before the epoch reads as the epoch: long past, so the task runs now.
        assert_eq!(parse_time("1960-01-01T00:00:00Z"), Ok(Timestamp(0)));
    }
}
