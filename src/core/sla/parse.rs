//! Parsing of SLA scalars: target durations and time zones.

use chrono::TimeDelta;
use chrono_tz::Tz;

use super::MAX_TARGET;

/// "15m", "1h", "90min", "1h30m", "2d" (a day is 24 hours), "15 mins".
pub fn parse_duration(text: &str) -> Result<TimeDelta, String> {
    let help = "write e.g. \"15m\", \"90min\", \"1h30m\" or \"2d\"";
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(format!("empty duration; {help}"));
    }
    let mut minutes: i64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("{text:?} is not a duration; {help}"));
        }
        let n: i64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{text:?} is too long"))?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let per = match rest[..unit_len].to_ascii_lowercase().as_str() {
            "m" | "min" | "mins" | "minute" | "minutes" => 1,
            "h" | "hr" | "hrs" | "hour" | "hours" => 60,
            "d" | "day" | "days" => 1440,
            "" => return Err(format!("{text:?} lacks a unit (m, h or d); {help}")),
            u => return Err(format!("{text:?}: unknown unit {u:?}; {help}")),
        };
        minutes = n
            .checked_mul(per)
            .and_then(|x| minutes.checked_add(x))
            .ok_or_else(|| format!("{text:?} is too long"))?;
        rest = rest[unit_len..].trim_start();
    }
    if minutes == 0 {
        return Err(format!("{text:?} is zero; a target must be positive"));
    }
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
