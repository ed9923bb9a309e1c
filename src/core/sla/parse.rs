//! Parsing of SLA scalars: target durations (the config's one duration
//! syntax, with the range of a target) and time zones.

use chrono::TimeDelta;
use chrono_tz::Tz;

use super::MAX_TARGET;
use crate::core::duration::{self, DurationError};

/// An SLA target in the config's duration syntax ([`crate::core::duration`]):
/// "15m", "1h", "90min", "1h30m", "2d" (a day is 24 hours), "15 mins".
/// A target is a whole number of minutes, from one minute to
/// [`MAX_TARGET`].
pub fn parse_duration(text: &str) -> Result<TimeDelta, String> {
    let help = "write e.g. \"15m\", \"90min\", \"1h30m\" or \"2d\"";
    let d = duration::parse(text).map_err(|e| match e {
        DurationError::Empty => format!("empty duration; {help}"),
        DurationError::NotADuration => format!("{text:?} is not a duration; {help}"),
        DurationError::MissingUnit => format!("{text:?} lacks a unit (m, h or d); {help}"),
        DurationError::UnknownUnit(u) => format!("{text:?}: unknown unit {u:?}; {help}"),
        DurationError::TooLong => format!("{text:?} is too long"),
    })?;
    if d.is_zero() {
        return Err(format!("{text:?} is zero; a target must be positive"));
    }
    // Targets were always whole minutes (the calendar reads hours to the
    // minute); "90s" is more likely a slip than a promise.
    if d.as_millis() % 60_000 != 0 {
        return Err(format!("{text:?} is not a whole number of minutes; {help}"));
    }
    let minutes = i64::try_from(d.as_secs() / 60).unwrap_or(i64::MAX);
    if minutes > MAX_TARGET.num_minutes() {
        return Err(format!(
            "{text:?} is longer than {} days",
            MAX_TARGET.num_days()
        ));
    }
    Ok(TimeDelta::minutes(minutes))
}

pub(super) fn parse_zone(s: &str) -> Result<Tz, String> {
    s.trim()
        .parse::<Tz>()
        .map_err(|_| format!("unknown time zone {s:?}; use an IANA name such as \"Europe/Paris\""))
}
