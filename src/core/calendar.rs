//! Business calendars: when a support team is open, in which time zone, and
//! which days are holidays; and the arithmetic on top (open time elapsed,
//! business time added, business days counted).
//!
//! Pure: no clock reads, every function takes the instants it works on.
//! Work is done interval by interval and day by day, never minute by
//! minute, so the cost grows with the days crossed. Local times that do not
//! exist (DST spring-forward gap) mean the first instant after the gap;
//! local times that exist twice (DST fall-back) mean the first occurrence.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use chrono::{
    DateTime, Datelike, MappedLocalTime, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Utc,
    Weekday,
};
use chrono_tz::Tz;

/// Consecutive days without any opening after which a search gives up, so a
/// calendar closed by its holidays forever cannot loop: ten years.
pub const MAX_CLOSED_DAYS: u32 = 3660;

/// Easter offsets are kept within the year of the Easter they follow
/// (Easter falls between 22 March and 25 April).
pub const EASTER_OFFSETS: std::ops::RangeInclusive<i64> = -80..=240;

/// Years the arithmetic accepts; chrono cannot show every instant in
/// every zone near its own limits, and a help desk needs far less.
pub const SUPPORTED_YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

fn check_range(t: DateTime<Utc>) -> Result<(), CalendarError> {
    if SUPPORTED_YEARS.contains(&t.naive_utc().year()) {
        Ok(())
    } else {
        Err(CalendarError::OutOfRange)
    }
}

/// Built-in holiday sets, in the syntax of [`HolidayRule::parse`].
/// A new set is one more arm here.
pub fn builtin_holiday_set(name: &str) -> Option<&'static [&'static str]> {
    match name {
        // French public holidays (jours fériés) of the Code du travail.
        "fr" => Some(&[
            "01-01",     // Jour de l'an
            "easter+1",  // Lundi de Pâques
            "05-01",     // Fête du travail
            "05-08",     // Victoire 1945
            "easter+39", // Ascension
            "easter+50", // Lundi de Pentecôte
            "07-14",     // Fête nationale
            "08-15",     // Assomption
            "11-01",     // Toussaint
            "11-11",     // Armistice
            "12-25",     // Noël
        ]),
        _ => None,
    }
}

/// Names accepted by [`builtin_holiday_set`], for error messages.
pub const BUILTIN_HOLIDAY_SETS: &[&str] = &["fr"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("the calendar has no opening hours in {MAX_CLOSED_DAYS} consecutive days")]
    NeverOpens,
    #[error("date out of the supported range (years 1 to 9999)")]
    OutOfRange,
}

/// An opening interval within one local day, in minutes since midnight;
/// `end` may be 1440 (24:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

/// Opening hours for each day of the week (Monday first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WeeklyHours {
    days: [Vec<Span>; 7],
}

impl WeeklyHours {
    /// 00:00-24:00 every day.
    pub fn always() -> WeeklyHours {
        let all = vec![Span {
            start: 0,
            end: 1440,
        }];
        WeeklyHours {
            days: std::array::from_fn(|_| all.clone()),
        }
    }

    /// Sets one day's hours; `spans` come from [`parse_spans`] (sorted, disjoint).
    pub fn set(&mut self, day: Weekday, spans: Vec<Span>) {
        self.days[day.num_days_from_monday() as usize] = spans;
    }

    pub fn day(&self, day: Weekday) -> &[Span] {
        &self.days[day.num_days_from_monday() as usize]
    }

    /// True when no day has any opening.
    pub fn is_closed(&self) -> bool {
        self.days.iter().all(Vec::is_empty)
    }
}

/// Parses "08:00-12:00, 13:00-17:00" (or "closed", or "") into sorted,
/// non-overlapping spans.
pub fn parse_spans(text: &str) -> Result<Vec<Span>, String> {
    let t = text.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("closed") {
        return Ok(Vec::new());
    }
    let mut spans = Vec::new();
    for part in t.split(',') {
        let part = part.trim();
        let Some((a, b)) = part.split_once('-') else {
            return Err(format!(
                "{part:?} is not an interval; write e.g. \"08:00-17:00\""
            ));
        };
        let start = parse_clock(a.trim())?;
        let end = parse_clock(b.trim())?;
        if start >= end {
            return Err(format!(
                "{part:?} ends before it starts; an interval stays within one day (end at 24:00 at the latest)"
            ));
        }
        spans.push(Span { start, end });
    }
    spans.sort();
    for w in spans.windows(2) {
        if w[1].start < w[0].end {
            return Err(format!("intervals overlap in {t:?}"));
        }
    }
    Ok(spans)
}

/// "HH:MM" from 00:00 to 24:00, as minutes since midnight.
fn parse_clock(s: &str) -> Result<u32, String> {
    let bad = || format!("{s:?} is not a time of day; write HH:MM, from 00:00 to 24:00");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// Parses a day ("mon", "monday") or a range of days ("mon-fri"; a range
/// may wrap past Sunday, "sat-mon").
pub fn parse_days(text: &str) -> Result<Vec<Weekday>, String> {
    let t = text.trim().to_ascii_lowercase();
    let day = |s: &str| -> Result<Weekday, String> {
        let s = s.trim();
        let found = [
            ("mon", "monday", Weekday::Mon),
            ("tue", "tuesday", Weekday::Tue),
            ("wed", "wednesday", Weekday::Wed),
            ("thu", "thursday", Weekday::Thu),
            ("fri", "friday", Weekday::Fri),
            ("sat", "saturday", Weekday::Sat),
            ("sun", "sunday", Weekday::Sun),
        ]
        .into_iter()
        .find(|(short, long, _)| s == *short || s == *long);
        found.map(|(_, _, d)| d).ok_or_else(|| {
            format!("{text:?} is not a day or a range of days; write e.g. \"mon\" or \"mon-fri\"")
        })
    };
    match t.split_once('-') {
        None => Ok(vec![day(&t)?]),
        Some((a, b)) => {
            let (mut d, last) = (day(a)?, day(b)?);
            let mut out = vec![d];
            while d != last {
                d = d.succ();
                out.push(d);
            }
            Ok(out)
        }
    }
}

/// One way a day can be a holiday.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HolidayRule {
    /// "2026-12-24"
    Date(NaiveDate),
    /// "2026-12-24..2027-01-01", both ends included.
    DateRange(NaiveDate, NaiveDate),
    /// "12-25", every year.
    Yearly { month: u32, day: u32 },
    /// "12-24..01-01", every year, both ends included, may wrap past 31 December.
    YearlyRange { from: (u32, u32), to: (u32, u32) },
    /// "easter+39": days after (or before, with '-') Easter Sunday.
    Easter(i64),
}

impl HolidayRule {
    pub fn parse(text: &str) -> Result<HolidayRule, String> {
        let t: String = text
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        let syntax = "write \"2026-12-24\", \"12-25\", \"easter+39\", or a range \"12-24..12-31\"";
        if let Some(rest) = t.strip_prefix("easter") {
            let offset: i64 = if rest.is_empty() {
                0
            } else {
                let digits = rest
                    .strip_prefix('+')
                    .or_else(|| rest.strip_prefix('-'))
                    .ok_or_else(|| format!("{text:?} is not a holiday rule; {syntax}"))?;
                let n: i64 = digits
                    .parse()
                    .map_err(|_| format!("{text:?} is not a holiday rule; {syntax}"))?;
                if rest.starts_with('-') { -n } else { n }
            };
            if !EASTER_OFFSETS.contains(&offset) {
                return Err(format!(
                    "{text:?}: Easter offsets go from {} to +{} days",
                    EASTER_OFFSETS.start(),
                    EASTER_OFFSETS.end()
                ));
            }
            return Ok(HolidayRule::Easter(offset));
        }
        if let Some((a, b)) = t.split_once("..") {
            return match (parse_day(a), parse_day(b)) {
                (Some(Day::Date(a)), Some(Day::Date(b))) if a <= b => {
                    Ok(HolidayRule::DateRange(a, b))
                }
                (Some(Day::Date(_)), Some(Day::Date(_))) => {
                    Err(format!("{text:?}: the range ends before it starts"))
                }
                (Some(Day::Yearly(from)), Some(Day::Yearly(to))) => {
                    Ok(HolidayRule::YearlyRange { from, to })
                }
                _ => Err(format!("{text:?} is not a holiday rule; {syntax}")),
            };
        }
        match parse_day(&t) {
            Some(Day::Date(d)) => Ok(HolidayRule::Date(d)),
            Some(Day::Yearly((month, day))) => Ok(HolidayRule::Yearly { month, day }),
            None => Err(format!("{text:?} is not a holiday rule; {syntax}")),
        }
    }
}

enum Day {
    Date(NaiveDate),
    Yearly((u32, u32)),
}

/// "YYYY-MM-DD" or "MM-DD" (checked against a leap year, so "02-29" is fine).
fn parse_day(s: &str) -> Option<Day> {
    let parts: Vec<&str> = s.split('-').collect();
    let num = |p: &str| -> Option<u32> {
        (!p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse().ok())
            .flatten()
    };
    match parts.as_slice() {
        [y, m, d] if y.len() == 4 => {
            let y = i32::try_from(num(y)?).ok()?;
            NaiveDate::from_ymd_opt(y, num(m)?, num(d)?).map(Day::Date)
        }
        [m, d] => {
            let (m, d) = (num(m)?, num(d)?);
            NaiveDate::from_ymd_opt(2000, m, d).map(|_| Day::Yearly((m, d)))
        }
        _ => None,
    }
}

/// Easter Sunday (Gregorian computus, Meeus/Jones/Butcher).
pub fn easter_sunday(year: i32) -> Option<NaiveDate> {
    let y = i64::from(year);
    let a = y.rem_euclid(19);
    let b = y.div_euclid(100);
    let c = y.rem_euclid(100);
    let d = b.div_euclid(4);
    let e = b.rem_euclid(4);
    let f = (b + 8).div_euclid(25);
    let g = (b - f + 1).div_euclid(3);
    let h = (19 * a + b - d - g + 15).rem_euclid(30);
    let i = c.div_euclid(4);
    let k = c.rem_euclid(4);
    let l = (32 + 2 * e + 2 * i - h - k).rem_euclid(7);
    let m = (a + 11 * h + 22 * l).div_euclid(451);
    let n = h + l - 7 * m + 114;
    let month = u32::try_from(n.div_euclid(31)).ok()?;
    let day = u32::try_from(n.rem_euclid(31) + 1).ok()?;
    NaiveDate::from_ymd_opt(year, month, day)
}

/// The holidays of a calendar: every rule given, in a shape quick to test.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holidays {
    dates: BTreeSet<NaiveDate>,
    date_ranges: Vec<(NaiveDate, NaiveDate)>,
    yearly: BTreeSet<(u32, u32)>,
    yearly_ranges: Vec<((u32, u32), (u32, u32))>,
    easter: BTreeSet<i64>,
}

impl Holidays {
    pub fn add(&mut self, rule: HolidayRule) {
        match rule {
            HolidayRule::Date(d) => {
                self.dates.insert(d);
            }
            HolidayRule::DateRange(a, b) => self.date_ranges.push((a, b)),
            HolidayRule::Yearly { month, day } => {
                self.yearly.insert((month, day));
            }
            HolidayRule::YearlyRange { from, to } => self.yearly_ranges.push((from, to)),
            HolidayRule::Easter(n) => {
                self.easter.insert(n);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.dates.is_empty()
            && self.date_ranges.is_empty()
            && self.yearly.is_empty()
            && self.yearly_ranges.is_empty()
            && self.easter.is_empty()
    }

    pub fn contains(&self, d: NaiveDate) -> bool {
        let md = (d.month(), d.day());
        self.dates.contains(&d)
            || self.yearly.contains(&md)
            || self.date_ranges.iter().any(|&(a, b)| a <= d && d <= b)
            || self.yearly_ranges.iter().any(|&(from, to)| {
                if from <= to {
                    from <= md && md <= to
                } else {
                    md >= from || md <= to
                }
            })
            || (!self.easter.is_empty()
                && easter_sunday(d.year())
                    .is_some_and(|e| self.easter.contains(&(d - e).num_days())))
    }
}

/// A business calendar: a zone, weekly hours and holidays, or always open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    /// The zone of the opening hours; the default zone when the calendar
    /// follows the customer's.
    pub zone: Tz,
    /// Opening hours are in the customer's local time when it is known.
    pub follows_customer: bool,
    always_open: bool,
    hours: WeeklyHours,
    holidays: Holidays,
}

impl Calendar {
    /// Open 24x7x365: business time is wall-clock time.
    pub fn always_open(zone: Tz) -> Calendar {
        Calendar {
            zone,
            follows_customer: false,
            always_open: true,
            hours: WeeklyHours::always(),
            holidays: Holidays::default(),
        }
    }

    pub fn new(zone: Tz, hours: WeeklyHours, holidays: Holidays) -> Calendar {
        Calendar {
            zone,
            follows_customer: false,
            always_open: false,
            hours,
            holidays,
        }
    }

    pub fn following_customer(mut self, follows: bool) -> Calendar {
        self.follows_customer = follows;
        self
    }

    pub fn is_always_open(&self) -> bool {
        self.always_open
    }

    /// The zone the hours are read in, for a customer in `customer` (if known).
    pub fn zone_for(&self, customer: Option<Tz>) -> Tz {
        match customer {
            Some(z) if self.follows_customer => z,
            _ => self.zone,
        }
    }

    /// Opening hours of a weekday, as written ("08:00-12:00, 13:00-17:00"),
    /// empty when closed.
    pub fn hours_text(&self, day: Weekday) -> String {
        self.hours
            .day(day)
            .iter()
            .map(|s| {
                let hm = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
                format!("{}-{}", hm(s.start), hm(s.end))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn is_holiday(&self, d: NaiveDate) -> bool {
        self.holidays.contains(d)
    }

    /// A day with opening hours that is not a holiday.
    pub fn is_business_day(&self, d: NaiveDate) -> bool {
        self.always_open || (!self.hours.day(d.weekday()).is_empty() && !self.is_holiday(d))
    }

    /// The open intervals of local day `date` in `zone`, as instants, in order.
    pub fn day_intervals(
        &self,
        date: NaiveDate,
        zone: Tz,
    ) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_ {
        let spans: &[Span] = if self.is_holiday(date) {
            &[]
        } else {
            self.hours.day(date.weekday())
        };
        spans.iter().filter_map(move |s| {
            let a = at_minute(zone, date, s.start)?;
            let b = at_minute(zone, date, s.end)?;
            (a < b).then_some((a, b))
        })
    }

    /// Visits the open intervals that end after `from`, clipped to start at
    /// `from` at the earliest, in order, until `f` breaks.
    fn scan<T>(
        &self,
        from: DateTime<Utc>,
        zone: Tz,
        mut f: impl FnMut(DateTime<Utc>, DateTime<Utc>) -> ControlFlow<T>,
    ) -> Result<T, CalendarError> {
        check_range(from)?;
        let first = from.with_timezone(&zone).date_naive();
        // The day before may hold an interval still open at `from` when
        // midnight is itself ambiguous in `zone`.
        let mut date = first.pred_opt().unwrap_or(first);
        let mut closed_days = 0u32;
        loop {
            let mut open = false;
            for (a, b) in self.day_intervals(date, zone) {
                if b <= from {
                    continue;
                }
                open = true;
                if let ControlFlow::Break(x) = f(a.max(from), b) {
                    return Ok(x);
                }
            }
            if open {
                closed_days = 0;
            } else {
                closed_days += 1;
                if closed_days > MAX_CLOSED_DAYS {
                    return Err(CalendarError::NeverOpens);
                }
            }
            date = date.succ_opt().ok_or(CalendarError::OutOfRange)?;
        }
    }

    /// Whether instant `t` is within opening hours (holidays are closed).
    pub fn is_open(&self, t: DateTime<Utc>, zone: Tz) -> bool {
        if self.always_open {
            return true;
        }
        if check_range(t).is_err() {
            return false;
        }
        let d = t.with_timezone(&zone).date_naive();
        [d.pred_opt(), Some(d)]
            .into_iter()
            .flatten()
            .any(|day| self.day_intervals(day, zone).any(|(a, b)| a <= t && t < b))
    }

    /// `t` itself when open, else the next opening.
    pub fn next_opening(&self, t: DateTime<Utc>, zone: Tz) -> Result<DateTime<Utc>, CalendarError> {
        if self.always_open {
            return Ok(t);
        }
        self.scan(t, zone, |a, _| ControlFlow::Break(a))
    }

    /// The earliest instant at which the open time elapsed since `start`
    /// equals `duration`; a target reached exactly at closing time is due
    /// at closing time.
    pub fn add_business_time(
        &self,
        start: DateTime<Utc>,
        duration: TimeDelta,
        zone: Tz,
    ) -> Result<DateTime<Utc>, CalendarError> {
        self.add_business_time_counting(start, duration, zone, |_, _| {})
    }

    /// [`Self::add_business_time`], telling `counted` each open interval
    /// it counts (the last one cut at the due instant): what `sla due
    /// --explain` shows.
    pub fn add_business_time_counting(
        &self,
        start: DateTime<Utc>,
        duration: TimeDelta,
        zone: Tz,
        mut counted: impl FnMut(DateTime<Utc>, DateTime<Utc>),
    ) -> Result<DateTime<Utc>, CalendarError> {
        if duration <= TimeDelta::zero() {
            return Ok(start);
        }
        if self.always_open {
            let due = start
                .checked_add_signed(duration)
                .ok_or(CalendarError::OutOfRange)?;
            counted(start, due);
            return Ok(due);
        }
        let mut remaining = duration;
        self.scan(start, zone, |a, b| {
            let len = b - a;
            if remaining <= len {
                let due = a.checked_add_signed(remaining).unwrap_or(b);
                counted(a, due);
                ControlFlow::Break(due)
            } else {
                counted(a, b);
                remaining -= len;
                ControlFlow::Continue(())
            }
        })
    }

    /// The clock starts at `start`, or at the next opening when closed; the
    /// due instant is the same local time of day `days` business days later.
    pub fn add_business_days(
        &self,
        start: DateTime<Utc>,
        days: u32,
        zone: Tz,
    ) -> Result<DateTime<Utc>, CalendarError> {
        self.add_business_days_counting(start, days, zone, |_, _| {})
    }

    /// [`Self::add_business_days`], telling `day` each local date after the
    /// clock's start that it looks at, and whether it counted.
    pub fn add_business_days_counting(
        &self,
        start: DateTime<Utc>,
        days: u32,
        zone: Tz,
        mut day: impl FnMut(NaiveDate, bool),
    ) -> Result<DateTime<Utc>, CalendarError> {
        let clock = self.next_opening(start, zone)?;
        check_range(clock)?;
        let local = clock.with_timezone(&zone).naive_local();
        let mut date = local.date();
        let (mut counted, mut closed_days) = (0u32, 0u32);
        while counted < days {
            date = date.succ_opt().ok_or(CalendarError::OutOfRange)?;
            let business = self.is_business_day(date);
            day(date, business);
            if business {
                counted += 1;
                closed_days = 0;
            } else {
                closed_days += 1;
                if closed_days > MAX_CLOSED_DAYS {
                    return Err(CalendarError::NeverOpens);
                }
            }
        }
        local_to_utc(zone, date.and_time(local.time())).ok_or(CalendarError::OutOfRange)
    }

    /// Open time within [a, b).
    pub fn open_time_between(&self, a: DateTime<Utc>, b: DateTime<Utc>, zone: Tz) -> TimeDelta {
        if b <= a {
            return TimeDelta::zero();
        }
        if self.always_open {
            return b - a;
        }
        let mut total = TimeDelta::zero();
        // Running out of openings only ends the sum early.
        let _ = self.scan(a, zone, |x, y| {
            if x >= b {
                return ControlFlow::Break(());
            }
            total += y.min(b) - x;
            ControlFlow::Continue(())
        });
        total
    }
}

/// Local `date` at `minute` since midnight (1440 = next midnight) in `zone`.
fn at_minute(zone: Tz, date: NaiveDate, minute: u32) -> Option<DateTime<Utc>> {
    let naive = if minute >= 1440 {
        date.succ_opt()?.and_hms_opt(0, 0, 0)?
    } else {
        date.and_hms_opt(minute / 60, minute % 60, 0)?
    };
    local_to_utc(zone, naive)
}

/// A local time as an instant: the first occurrence when it happens twice,
/// the end of the gap when it does not exist.
pub fn local_to_utc(zone: Tz, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    match zone.from_local_datetime(&naive) {
        MappedLocalTime::Single(t) => Some(t.with_timezone(&Utc)),
        MappedLocalTime::Ambiguous(a, _) => Some(a.with_timezone(&Utc)),
        MappedLocalTime::None => first_instant_at_or_after(zone, naive),
    }
}

/// The first instant whose local time in `zone` is at or after `naive`,
/// searched within a day either side (offsets stay under 26 hours).
fn first_instant_at_or_after(zone: Tz, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    const WINDOW: i64 = 27 * 3600;
    let local = |s: i64| {
        DateTime::<Utc>::from_timestamp(s, 0).map(|u| u.with_timezone(&zone).naive_local())
    };
    let guess = naive.and_utc().timestamp();
    let (mut lo, mut hi) = (guess.checked_sub(WINDOW)?, guess.checked_add(WINDOW)?);
    if local(lo)? >= naive || local(hi)? < naive {
        return None;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if local(mid)? >= naive {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    DateTime::<Utc>::from_timestamp(hi, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America::New_York, Europe::Paris};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn fr() -> Holidays {
        let mut h = Holidays::default();
        for r in builtin_holiday_set("fr").unwrap() {
            h.add(HolidayRule::parse(r).unwrap());
        }
        h
    }

    fn office(zone: Tz, spans: &str, extra: &[&str]) -> Calendar {
        let mut w = WeeklyHours::default();
        for d in parse_days("mon-fri").unwrap() {
            w.set(d, parse_spans(spans).unwrap());
        }
        let mut h = fr();
        for r in extra {
            h.add(HolidayRule::parse(r).unwrap());
        }
        Calendar::new(zone, w, h)
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(
            chars in proptest::collection::vec(
                proptest::sample::select("0123456789:-.,+ eastrlomnfidy\u{e9}\u{bd}".chars().collect::<Vec<_>>()),
                0..24,
            ),
            year in proptest::prelude::any::<i32>(),
        ) {
            let s: String = chars.into_iter().collect();
            let _ = parse_spans(&s);
            let _ = parse_days(&s);
            let _ = HolidayRule::parse(&s);
            let _ = easter_sunday(year);
        }
    }

    #[test]
    fn easter_dates() {
        for (y, e) in [
            (2024, "2024-03-31"),
            (2025, "2025-04-20"),
            (2026, "2026-04-05"),
            (2027, "2027-03-28"),
            (2038, "2038-04-25"),
            (2285, "2285-03-22"),
        ] {
            assert_eq!(easter_sunday(y), Some(date(e)), "{y}");
        }
    }

    #[test]
    fn french_holidays_2026() {
        let h = fr();
        for d in [
            "2026-01-01",
            "2026-04-06", // Easter Monday
            "2026-05-01",
            "2026-05-08",
            "2026-05-14", // Ascension
            "2026-05-25", // Whit Monday
            "2026-07-14",
            "2026-08-15",
            "2026-11-01",
            "2026-11-11",
            "2026-12-25",
        ] {
            assert!(h.contains(date(d)), "{d}");
        }
        for d in [
            "2026-04-05",
            "2026-04-07",
            "2026-05-15",
            "2026-12-24",
            "2026-12-26",
        ] {
            assert!(!h.contains(date(d)), "{d}");
        }
        // Every built-in set parses.
        for name in BUILTIN_HOLIDAY_SETS {
            for r in builtin_holiday_set(name).unwrap() {
                HolidayRule::parse(r).unwrap();
            }
        }
    }

    #[test]
    fn holiday_rules_parse() {
        use HolidayRule::*;
        assert_eq!(
            HolidayRule::parse("2026-12-24"),
            Ok(Date(date("2026-12-24")))
        );
        assert_eq!(
            HolidayRule::parse("12-25"),
            Ok(Yearly { month: 12, day: 25 })
        );
        assert_eq!(
            HolidayRule::parse("02-29"),
            Ok(Yearly { month: 2, day: 29 })
        );
        assert_eq!(HolidayRule::parse("Easter + 39"), Ok(Easter(39)));
        assert_eq!(HolidayRule::parse("easter-2"), Ok(Easter(-2)));
        assert_eq!(HolidayRule::parse("easter"), Ok(Easter(0)));
        assert_eq!(
            HolidayRule::parse("12-24..01-01"),
            Ok(YearlyRange {
                from: (12, 24),
                to: (1, 1)
            })
        );
        assert_eq!(
            HolidayRule::parse("2026-08-03..2026-08-21"),
            Ok(DateRange(date("2026-08-03"), date("2026-08-21")))
        );
        for bad in [
            "",
            "13-01",
            "2026-02-30",
            "easter+400",
            "easter*2",
            "2026-08-21..2026-08-03",
            "12-24..2026-01-01",
            "christmas",
            "1-2-3-4",
        ] {
            assert!(HolidayRule::parse(bad).is_err(), "{bad:?}");
        }
        let mut h = Holidays::default();
        h.add(HolidayRule::parse("12-24..01-01").unwrap());
        assert!(h.contains(date("2026-12-24")));
        assert!(h.contains(date("2026-12-31")));
        assert!(h.contains(date("2027-01-01")));
        assert!(!h.contains(date("2027-01-02")));
        assert!(!h.contains(date("2026-12-23")));
    }

    #[test]
    fn spans_and_days_parse() {
        assert_eq!(
            parse_spans("13:00-17:00, 08:00-12:00").unwrap(),
            vec![
                Span {
                    start: 480,
                    end: 720
                },
                Span {
                    start: 780,
                    end: 1020
                }
            ]
        );
        assert_eq!(
            parse_spans("00:00-24:00").unwrap(),
            vec![Span {
                start: 0,
                end: 1440
            }]
        );
        assert_eq!(parse_spans("closed").unwrap(), vec![]);
        for bad in [
            "8-17",
            "08:00",
            "17:00-08:00",
            "08:00-08:00",
            "08:00-24:30",
            "08:60-09:00",
            "08:00-12:00, 11:00-13:00",
            "8h-17h",
        ] {
            assert!(parse_spans(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_days("mon-fri").unwrap().len(), 5);
        assert_eq!(parse_days("Saturday").unwrap(), vec![Weekday::Sat]);
        assert_eq!(
            parse_days("sat-mon").unwrap(),
            vec![Weekday::Sat, Weekday::Sun, Weekday::Mon]
        );
        assert!(parse_days("funday").is_err());
        assert!(parse_days("mon-").is_err());
    }

    #[test]
    fn dst_days_have_the_right_length() {
        let always = {
            let mut w = WeeklyHours::always();
            w.set(Weekday::Mon, vec![]);
            Calendar::new(Paris, w, Holidays::default())
        };
        let len = |d: &str| -> i64 {
            always
                .day_intervals(date(d), Paris)
                .map(|(a, b)| (b - a).num_minutes())
                .sum()
        };
        assert_eq!(len("2026-03-28"), 24 * 60);
        assert_eq!(len("2026-03-29"), 23 * 60);
        assert_eq!(len("2026-10-25"), 25 * 60);
        // 02:00-03:00 does not exist on 29 March: that interval is empty;
        // on 25 October it starts at its first occurrence.
        let mut w = WeeklyHours::default();
        w.set(Weekday::Sun, parse_spans("02:00-03:00").unwrap());
        let night = Calendar::new(Paris, w, Holidays::default());
        assert_eq!(night.day_intervals(date("2026-03-29"), Paris).count(), 0);
        let oct: Vec<_> = night.day_intervals(date("2026-10-25"), Paris).collect();
        assert_eq!(
            oct,
            vec![(utc("2026-10-25T00:00:00Z"), utc("2026-10-25T02:00:00Z"))]
        );
    }

    #[test]
    fn business_time_table() {
        let cal = office(Paris, "08:00-17:00", &[]);
        let split = office(Paris, "08:00-12:00, 13:00-17:00", &["12-24..01-01"]);
        let h = TimeDelta::hours;
        let m = TimeDelta::minutes;
        for (c, received, dur, due) in [
            // Inside hours.
            (
                &cal,
                "2026-03-02T10:00:00+01:00",
                h(1),
                "2026-03-02T11:00:00+01:00",
            ),
            // The minute before closing carries 59 minutes to Monday.
            (
                &cal,
                "2026-03-06T16:59:00+01:00",
                h(1),
                "2026-03-09T08:59:00+01:00",
            ),
            // Ending exactly at closing time is due at closing time.
            (
                &cal,
                "2026-03-06T16:00:00+01:00",
                h(1),
                "2026-03-06T17:00:00+01:00",
            ),
            // Received at closing: nothing left today.
            (
                &cal,
                "2026-03-06T17:00:00+01:00",
                h(1),
                "2026-03-09T09:00:00+01:00",
            ),
            // Weekend.
            (
                &cal,
                "2026-03-07T12:00:00+01:00",
                h(1),
                "2026-03-09T09:00:00+01:00",
            ),
            // Before opening.
            (
                &cal,
                "2026-03-02T06:00:00+01:00",
                m(90),
                "2026-03-02T09:30:00+01:00",
            ),
            // Spring forward weekend: Friday CET, Monday CEST.
            (
                &cal,
                "2026-03-27T16:00:00+01:00",
                h(3),
                "2026-03-30T10:00:00+02:00",
            ),
            // Fall back weekend.
            (
                &cal,
                "2026-10-23T16:00:00+02:00",
                h(3),
                "2026-10-26T10:00:00+01:00",
            ),
            // 14 July and Ascension are closed.
            (
                &cal,
                "2026-07-13T16:30:00+02:00",
                h(1),
                "2026-07-15T08:30:00+02:00",
            ),
            (
                &cal,
                "2026-05-13T16:00:00+02:00",
                h(2),
                "2026-05-15T09:00:00+02:00",
            ),
            // Easter Monday.
            (
                &cal,
                "2026-04-03T16:00:00+02:00",
                h(2),
                "2026-04-07T09:00:00+02:00",
            ),
            // 24 open hours across three days.
            (
                &cal,
                "2026-03-02T08:00:00+01:00",
                h(24),
                "2026-03-04T14:00:00+01:00",
            ),
            // Lunch break.
            (
                &split,
                "2026-03-02T11:30:00+01:00",
                h(1),
                "2026-03-02T13:30:00+01:00",
            ),
            (
                &split,
                "2026-03-02T11:00:00+01:00",
                h(1),
                "2026-03-02T12:00:00+01:00",
            ),
            // Christmas week closed: 7h on the 23rd, 8h on 4 and 5 January 2027.
            (
                &split,
                "2026-12-23T09:00:00+01:00",
                h(24),
                "2027-01-06T09:00:00+01:00",
            ),
        ] {
            let got = c.add_business_time(utc(received), dur, Paris).unwrap();
            assert_eq!(got, utc(due), "{received} + {dur}");
            assert_eq!(c.open_time_between(utc(received), got, Paris), dur);
        }
    }

    #[test]
    fn business_days_table() {
        let cal = office(Paris, "09:00-18:00", &[]);
        for (received, n, due) in [
            ("2026-03-02T10:00:00+01:00", 2, "2026-03-04T10:00:00+01:00"),
            ("2026-03-06T17:59:00+01:00", 1, "2026-03-09T17:59:00+01:00"),
            // At closing the clock starts at the next opening.
            ("2026-03-06T18:00:00+01:00", 1, "2026-03-10T09:00:00+01:00"),
            ("2026-03-07T12:00:00+01:00", 2, "2026-03-11T09:00:00+01:00"),
            // Ascension (Thursday) skipped.
            ("2026-05-13T15:00:00+02:00", 2, "2026-05-18T15:00:00+02:00"),
            // Easter Monday skipped.
            ("2026-04-03T10:00:00+02:00", 2, "2026-04-08T10:00:00+02:00"),
            // Same local time across the DST change.
            ("2026-03-27T10:00:00+01:00", 2, "2026-03-31T10:00:00+02:00"),
            ("2026-10-23T10:00:00+02:00", 1, "2026-10-26T10:00:00+01:00"),
            // 15 August on a Saturday shifts nothing.
            ("2026-08-14T10:00:00+02:00", 2, "2026-08-18T10:00:00+02:00"),
            // Christmas and New Year's Day.
            ("2026-12-24T10:00:00+01:00", 1, "2026-12-28T10:00:00+01:00"),
            ("2026-12-31T10:00:00+01:00", 2, "2027-01-05T10:00:00+01:00"),
        ] {
            let got = cal.add_business_days(utc(received), n, Paris).unwrap();
            assert_eq!(got, utc(due), "{received} + {n} business days");
        }
    }

    #[test]
    fn other_zone_and_always_open() {
        let cal = office(Paris, "08:00-17:00", &[]).following_customer(true);
        let ny = cal.zone_for(Some(New_York));
        assert_eq!(ny, New_York);
        assert_eq!(cal.zone_for(None), Paris);
        // US DST starts 8 March 2026: Friday EST, Monday EDT.
        let got = cal
            .add_business_time(utc("2026-03-06T16:30:00-05:00"), TimeDelta::hours(1), ny)
            .unwrap();
        assert_eq!(got, utc("2026-03-09T08:30:00-04:00"));
        let a = Calendar::always_open(Paris);
        let t = utc("2026-03-29T00:30:00Z");
        assert!(a.is_open(t, Paris));
        assert_eq!(
            a.add_business_time(t, TimeDelta::hours(8), Paris).unwrap(),
            utc("2026-03-29T08:30:00Z")
        );
        assert_eq!(
            a.add_business_days(t, 1, Paris).unwrap(),
            utc("2026-03-30T01:30:00+02:00")
        );
    }

    #[test]
    fn closed_forever_and_extremes_do_not_hang_or_panic() {
        let mut h = Holidays::default();
        h.add(HolidayRule::parse("01-01..12-31").unwrap());
        let mut w = WeeklyHours::default();
        w.set(Weekday::Mon, parse_spans("09:00-10:00").unwrap());
        let never = Calendar::new(Paris, w, h);
        let t = utc("2026-03-02T10:00:00Z");
        assert!(!never.is_open(t, Paris));
        assert_eq!(never.next_opening(t, Paris), Err(CalendarError::NeverOpens));
        assert_eq!(
            never.add_business_time(t, TimeDelta::hours(1), Paris),
            Err(CalendarError::NeverOpens)
        );
        assert_eq!(
            never.add_business_days(t, 1, Paris),
            Err(CalendarError::NeverOpens)
        );
        let cal = office(Paris, "08:00-17:00", &[]);
        for t in [DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::MIN_UTC] {
            let _ = cal.is_open(t, Paris);
            let _ = cal.next_opening(t, Paris);
            let _ = cal.add_business_time(t, TimeDelta::days(300), Paris);
            let _ = cal.add_business_days(t, 300, Paris);
            let _ = cal.open_time_between(t, DateTime::<Utc>::MAX_UTC, Paris);
            let _ = Calendar::always_open(Paris).add_business_time(t, TimeDelta::days(300), Paris);
        }
    }
}
