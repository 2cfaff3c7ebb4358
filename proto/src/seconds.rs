//! Seconds as people type them on every command line (`--lease 5`, `--timeout 0.5`,
//! `--drain-timeout 30`): one rule for the three programs, so that a value one accepts the
//! others accept too, and none can panic turning a huge number into a `Duration`.

/// The longest span accepted, in seconds (about 31 years): beyond any real need, and small
/// enough that its milliseconds fit a `u64` with room for doubling (retry backoff).
pub const MAX_SECONDS: f64 = 1e9;

/// A finite number of seconds from 0 to [`MAX_SECONDS`]; for clap's `value_parser`.
pub fn non_negative(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && (0.0..=MAX_SECONDS).contains(&secs) => Ok(secs),
        _ => Err("must be a number of seconds, such as 30 or 0.5".into()),
    }
}

/// A finite number of seconds above 0, up to [`MAX_SECONDS`]: for spans where zero would mean
/// something absurd (a lease that expires at once, a timeout that kills every attempt).
pub fn positive(text: &str) -> Result<f64, String> {
    match non_negative(text) {
        Ok(secs) if secs > 0.0 => Ok(secs),
        _ => Err("must be a positive number of seconds, such as 2.5".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_in_and_out_of_range() {
        assert_eq!(non_negative("0"), Ok(0.0));
        assert_eq!(non_negative(" 0.5 "), Ok(0.5));
        assert_eq!(positive("2.5"), Ok(2.5));
        for bad in ["-1", "1e300", "inf", "NaN", "soon", ""] {
            assert!(non_negative(bad).is_err(), "{bad}");
            assert!(positive(bad).is_err(), "{bad}");
        }
        assert!(positive("0").is_err());
        // The largest accepted value still makes a Duration.
        let _ = std::time::Duration::from_secs_f64(MAX_SECONDS);
    }
}
