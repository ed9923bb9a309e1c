//! When a manager's digest is due and which period it covers: `every =
//! "day"` at an hour, or `"week"` on a weekday at an hour, read in the
//! recipient's zone. A period runs from midnight to midnight there (a day,
//! or the seven days before the sending day), so a DST change makes it 23
//! or 25 hours long, never shifts it. Pure: `now` is passed in.

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;

use crate::core::calendar::local_to_utc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Every {
    Day,
    Week(Weekday),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub every: Every,
    /// The hour of the day it goes out, 0-23.
    pub hour: u32,
    pub zone: Tz,
}

/// One sending of a digest: when it was due, and the period it covers,
/// [since, until), with its first day (what the send is recorded under).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub at: DateTime<Utc>,
    pub first_day: NaiveDate,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

impl Schedule {
    /// The latest sending due at or before `now` (a digest missed while
    /// the daemon was down is the latest one, sent once, not every one
    /// missed).
    pub fn latest_due(&self, now: DateTime<Utc>) -> Option<Due> {
        let today = now.with_timezone(&self.zone).date_naive();
        // Today, then back one day at a time: a week has a sending day.
        (0..8u64)
            .filter_map(|back| today.checked_sub_days(Days::new(back)))
            .filter(|d| match self.every {
                Every::Day => true,
                Every::Week(w) => d.weekday() == w,
            })
            .filter_map(|d| self.due_on(d))
            .find(|due| due.at <= now)
    }

    /// The next sending after `now`.
    pub fn next_due(&self, now: DateTime<Utc>) -> Option<Due> {
        let today = now.with_timezone(&self.zone).date_naive();
        (0..9u64)
            .filter_map(|ahead| today.checked_add_days(Days::new(ahead)))
            .filter(|d| match self.every {
                Every::Day => true,
                Every::Week(w) => d.weekday() == w,
            })
            .filter_map(|d| self.due_on(d))
            .find(|due| due.at > now)
    }

    /// The sending on local date `day`.
    fn due_on(&self, day: NaiveDate) -> Option<Due> {
        let midnight = |d: NaiveDate| local_to_utc(self.zone, d.and_time(NaiveTime::MIN));
        let at = local_to_utc(self.zone, day.and_hms_opt(self.hour, 0, 0)?)?;
        let first_day = day.checked_sub_days(Days::new(match self.every {
            Every::Day => 1,
            Every::Week(_) => 7,
        }))?;
        Some(Due {
            at,
            first_day,
            since: midnight(first_day)?,
            until: midnight(day)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    const PARIS: Tz = chrono_tz::Europe::Paris;

    #[test]
    fn a_weekly_digest_covers_the_seven_days_before_its_monday() {
        let s = Schedule {
            every: Every::Week(Weekday::Mon),
            hour: 8,
            zone: PARIS,
        };
        // Monday 2 November 2026 07:59 in Paris: the last one was on
        // Monday 26 October, covering 19-25 October (CEST to CET: the week
        // holds 169 hours).
        let d = s.latest_due(utc("2026-11-02T07:59:00+01:00")).unwrap();
        assert_eq!(d.at, utc("2026-10-26T08:00:00+01:00"));
        assert_eq!(d.first_day.to_string(), "2026-10-19");
        assert_eq!(d.since, utc("2026-10-19T00:00:00+02:00"));
        assert_eq!(d.until, utc("2026-10-26T00:00:00+01:00"));
        assert_eq!((d.until - d.since).num_hours(), 169);
        // At 08:00 the new one is due: 26 October to 1 November.
        let d = s.latest_due(utc("2026-11-02T08:00:00+01:00")).unwrap();
        assert_eq!(d.first_day.to_string(), "2026-10-26");
        assert_eq!(d.until, utc("2026-11-02T00:00:00+01:00"));
        // And the next after that, a week on.
        let n = s.next_due(utc("2026-11-02T08:00:00+01:00")).unwrap();
        assert_eq!(n.at, utc("2026-11-09T08:00:00+01:00"));
        // The week before, from midnight on 19 October (summer time).
        let before = crate::core::stats::previous_start(PARIS, d.since, d.until);
        assert_eq!(before, utc("2026-10-19T00:00:00+02:00"));
    }

    #[test]
    fn a_daily_digest_covers_yesterday_in_the_recipient_s_zone() {
        let s = Schedule {
            every: Every::Day,
            hour: 7,
            zone: chrono_tz::America::New_York,
        };
        // 3 December 11:00 UTC is 06:00 in New York: today's is not due
        // yet; yesterday's covered 1 December.
        let d = s.latest_due(utc("2026-12-03T11:00:00Z")).unwrap();
        assert_eq!(d.at, utc("2026-12-02T07:00:00-05:00"));
        assert_eq!(d.first_day.to_string(), "2026-12-01");
        assert_eq!(d.since, utc("2026-12-01T00:00:00-05:00"));
        assert_eq!(d.until, utc("2026-12-02T00:00:00-05:00"));
        let d = s.latest_due(utc("2026-12-03T12:00:00Z")).unwrap();
        assert_eq!(d.first_day.to_string(), "2026-12-02");
    }
}
