//! The one duration syntax of the config file, for every key that takes a
//! duration (`[escalation] tick`, mailbox timeouts, SLA targets, ...).
//!
//! ```text
//! duration = part { part }          whitespace allowed around and between parts
//! part     = digits [whitespace] unit
//! digits   = ASCII digits, no sign, no fraction
//! unit     = ms | s | sec | secs | second | seconds
//!          | m | min | mins | minute | minutes
//!          | h | hr | hrs | hour | hours
//!          | d | day | days                 (ASCII case-insensitive)
//! ```
//!
//! So "30s", "500ms", "2 hours", "15 Mins", "1h30m" and "1 hour 5 minutes"
//! all parse; parts add up, in any order; a day is 24 hours. Zero is a
//! duration here: whether it is allowed, and every other range, is the
//! business of the key that reads it.

use std::time::Duration;

use chrono::TimeDelta;

/// Why a text is not a duration. Callers word the message for their key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    /// Nothing but whitespace.
    Empty,
    /// Something other than a number where a number must come (a sign, a
    /// fraction, a stray character).
    NotADuration,
    /// A number without its unit.
    MissingUnit,
    /// A unit outside the grammar, as written but in lowercase.
    UnknownUnit(String),
    /// More milliseconds than a u64 holds.
    TooLong,
}

/// Parses `text` by the grammar in the module comment.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut millis: u64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(DurationError::NotADuration);
        }
        let n: u64 = rest[..digits].parse().map_err(|_| DurationError::TooLong)?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let per: u64 = match rest[..unit_len].to_ascii_lowercase().as_str() {
            "ms" => 1,
            "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
            "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000,
            "d" | "day" | "days" => 86_400_000,
            "" => return Err(DurationError::MissingUnit),
            u => return Err(DurationError::UnknownUnit(u.to_owned())),
        };
        millis = n
            .checked_mul(per)
            .and_then(|x| millis.checked_add(x))
            .ok_or(DurationError::TooLong)?;
        rest = rest[unit_len..].trim_start();
    }
    Ok(Duration::from_millis(millis))
}

/// A length for people: "2d 3h", "1h 30m", "12m" (minutes, rounded down).
pub fn human(d: TimeDelta) -> String {
    let m = d.num_minutes().max(0);
    let (days, hours, mins) = (m / 1440, (m % 1440) / 60, m % 60);
    match (days, hours, mins) {
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted() {
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        for (text, want) in [
            // Each unit, short and long, as both parsers had them.
            ("500ms", ms(500)),
            ("30s", s(30)),
            ("30 sec", s(30)),
            ("30secs", s(30)),
            ("1 second", s(1)),
            ("45 seconds", s(45)),
            ("2m", s(120)),
            ("2min", s(120)),
            ("15 mins", s(900)),
            ("1 minute", s(60)),
            ("5 minutes", s(300)),
            ("1h", s(3600)),
            ("1hr", s(3600)),
            ("2 hrs", s(7200)),
            ("1 hour", s(3600)),
            ("2 hours", s(7200)),
            ("2d", s(172_800)),
            ("1 day", s(86_400)),
            ("7days", s(604_800)),
            // Case, whitespace, compounds.
            ("2 HOURS", s(7200)),
            ("30S", s(30)),
            ("250MS", ms(250)),
            ("  1h  ", s(3600)),
            ("1h30m", s(5400)),
            ("1h 30m", s(5400)),
            ("1 hour 5 minutes", s(3900)),
            ("1d2h3m4s5ms", ms(93_784_005)),
            ("30m1h", s(5400)),
            ("0s", s(0)),
            ("0m", s(0)),
            ("007m", s(420)),
        ] {
            assert_eq!(parse(text), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn rejected() {
        use DurationError::*;
        let unknown = |u: &str| UnknownUnit(u.to_owned());
        for (text, want) in [
            ("", Empty),
            ("   ", Empty),
            ("5", MissingUnit),
            ("1h30", MissingUnit),
            ("1 0m", MissingUnit),
            ("m", NotADuration),
            ("h", NotADuration),
            ("-1h", NotADuration),
            ("+1h", NotADuration),
            ("1.5h", MissingUnit),
            ("1h,30m", NotADuration),
            ("1h½", NotADuration),
            ("1w", unknown("w")),
            ("2 weeks", unknown("weeks")),
            ("3 Months", unknown("months")),
            ("1y", unknown("y")),
            ("30sx", unknown("sx")),
            ("10 msec", unknown("msec")),
            ("99999999999999999999m", TooLong),
            ("18446744073709551615s", TooLong),
            ("9223372036854775807d", TooLong),
            ("18446744073709551615ms 1ms", TooLong),
        ] {
            assert_eq!(parse(text), Err(want), "{text:?}");
        }
    }

    #[test]
    fn the_largest_duration_parses() {
        assert_eq!(
            parse("18446744073709551615ms"),
            Ok(Duration::from_millis(u64::MAX))
        );
    }
}
