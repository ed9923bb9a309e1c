//! Escalation levels of one SLA clock: when a warning, a breach notice and
//! a second-level notice are due, and which one a sweep at `now` owes.
//!
//! Pure: the sweeper (I/O shell) stores per ticket and clock the highest
//! level already handled and the instant it must look again; this module
//! says what to send and when to look next. A sweep that comes late (the
//! daemon was down) owes only the highest level reached: lower levels are
//! recorded as skipped, never sent after the higher one.

use chrono::{DateTime, TimeDelta, Utc};

/// Due and warning instants of both clocks of a ticket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clocks {
    pub first_response_due: Option<DateTime<Utc>>,
    pub first_response_warn: Option<DateTime<Utc>>,
    pub resolution_due: Option<DateTime<Utc>>,
    pub resolution_warn: Option<DateTime<Utc>>,
}

/// Which promise a notice is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Clock {
    FirstResponse,
    Resolution,
}

impl Clock {
    pub fn as_str(self) -> &'static str {
        match self {
            Clock::FirstResponse => "first_response",
            Clock::Resolution => "resolution",
        }
    }
}

/// Ordered: a higher level supersedes a lower one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    Warning = 1,
    Breach = 2,
    Second = 3,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::Warning, Level::Breach, Level::Second];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Warning => "warning",
            Level::Breach => "breach",
            Level::Second => "second",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.as_str() == s)
    }

    pub fn rank(self) -> u8 {
        self as u8
    }
}

/// The instants of each level for one clock of one ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// None when warnings are off.
    pub warning: Option<DateTime<Utc>>,
    pub breach: DateTime<Utc>,
    /// None when no second level is configured.
    pub second: Option<DateTime<Utc>>,
}

impl Schedule {
    /// `warning` comes from the SLA engine (a share of the target in the
    /// plan's own time, see `SlaModel::warning_at`); the second level is a
    /// wall-clock delay after the breach.
    pub fn new(
        warning: Option<DateTime<Utc>>,
        due: DateTime<Utc>,
        second_after: Option<TimeDelta>,
    ) -> Schedule {
        Schedule {
            warning: warning.filter(|w| *w < due),
            breach: due,
            second: second_after.and_then(|d| due.checked_add_signed(d)),
        }
    }

    pub fn at(&self, level: Level) -> Option<DateTime<Utc>> {
        match level {
            Level::Warning => self.warning,
            Level::Breach => Some(self.breach),
            Level::Second => self.second,
        }
    }

    /// The highest level reached at `now` above `done` (the rank already
    /// handled, 0 for none), if any.
    pub fn owed(&self, done: u8, now: DateTime<Utc>) -> Option<Level> {
        Level::ALL
            .into_iter()
            .rev()
            .filter(|l| l.rank() > done)
            .find(|l| self.at(*l).is_some_and(|t| t <= now))
    }

    /// When to look again once `done` is handled: the first later level's
    /// instant, or None when nothing is left.
    pub fn next_after(&self, done: u8) -> Option<DateTime<Utc>> {
        Level::ALL
            .into_iter()
            .filter(|l| l.rank() > done)
            .find_map(|l| self.at(l))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn levels_in_order_and_catch_up_sends_only_the_highest() {
        let s = Schedule::new(
            Some(t("2026-11-23T09:48:00Z")),
            t("2026-11-23T10:00:00Z"),
            Some(TimeDelta::hours(4)),
        );
        assert_eq!(s.next_after(0), Some(t("2026-11-23T09:48:00Z")));
        assert_eq!(s.owed(0, t("2026-11-23T09:47:59Z")), None);
        assert_eq!(s.owed(0, t("2026-11-23T09:48:00Z")), Some(Level::Warning));
        assert_eq!(s.next_after(1), Some(t("2026-11-23T10:00:00Z")));
        assert_eq!(s.owed(1, t("2026-11-23T09:59:00Z")), None);
        assert_eq!(s.owed(1, t("2026-11-23T10:00:00Z")), Some(Level::Breach));
        // Down for a day: only the second level, once.
        assert_eq!(s.owed(0, t("2026-11-24T10:00:00Z")), Some(Level::Second));
        assert_eq!(s.owed(3, t("2026-11-24T10:00:00Z")), None);
        assert_eq!(s.next_after(3), None);
    }

    #[test]
    fn optional_levels() {
        let s = Schedule::new(None, t("2026-11-23T10:00:00Z"), None);
        assert_eq!(s.next_after(0), Some(t("2026-11-23T10:00:00Z")));
        assert_eq!(s.owed(0, t("2026-11-30T00:00:00Z")), Some(Level::Breach));
        assert_eq!(s.next_after(2), None);
        // A warning at or after the due instant is no warning.
        let s = Schedule::new(
            Some(t("2026-11-23T10:00:00Z")),
            t("2026-11-23T10:00:00Z"),
            None,
        );
        assert_eq!(s.warning, None);
    }
}
