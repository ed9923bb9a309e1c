//! SLA compliance figures for managers (`stats`): per plan and priority,
//! optionally per day, week or month of arrival read in a zone, each
//! clock's met / breached / open tickets, its compliance, and the median
//! and p90 of the time taken, in wall time and in business time on the
//! plan's calendar with the time the resolution clock stood still left
//! out. Pure: the tickets' facts, the model and `now` are passed in.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::core::calendar::{Calendar, local_to_utc};
use crate::core::escalation::Clock;
use crate::core::sla::SlaModel;

/// A reporting period; a period starts at midnight in the report's zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    /// Monday to Sunday (ISO 8601).
    Week,
    Month,
}

impl std::str::FromStr for Period {
    type Err = String;

    fn from_str(s: &str) -> Result<Period, String> {
        match s {
            "day" => Ok(Period::Day),
            "week" => Ok(Period::Week),
            "month" => Ok(Period::Month),
            other => Err(format!("unknown period {other:?}; known: day, week, month")),
        }
    }
}

impl Period {
    /// The first day of the period holding `date`.
    pub fn start(self, date: NaiveDate) -> NaiveDate {
        match self {
            Period::Day => date,
            Period::Week => date - Days::new(u64::from(date.weekday().num_days_from_monday())),
            Period::Month => date.with_day(1).unwrap_or(date),
        }
    }
}

/// What changed a ticket's resolution clock, from its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockEvent {
    /// Set pending: the resolution clock stands still.
    Pending,
    /// A customer's reply to a pending ticket: the clock runs again.
    Resumed,
    /// Resolved or closed (a pending ticket's pause ends there).
    Resolved,
    /// Reopened with the resolution clock resumed: the time spent
    /// resolved does not count.
    ReopenedResumed,
}

/// What a report needs of one ticket.
#[derive(Debug, Clone)]
pub struct TicketFacts {
    pub reference: String,
    pub subject: String,
    pub plan: String,
    pub priority: Option<String>,
    pub received: DateTime<Utc>,
    /// Where the clocks count from: the reception, or a reopen's restart.
    pub start: DateTime<Utc>,
    /// The customer's zone, for a calendar that follows the customer.
    pub timezone: Option<Tz>,
    pub first_response_due: Option<DateTime<Utc>>,
    pub first_responded: Option<DateTime<Utc>>,
    pub resolution_due: Option<DateTime<Utc>>,
    pub resolved: Option<DateTime<Utc>>,
    /// The ticket's clock events in order.
    pub events: Vec<(DateTime<Utc>, ClockEvent)>,
}

/// One clock of one row. A clock without a due instant (best effort)
/// is neither met, breached nor open, but its times are counted.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct ClockStats {
    /// Answered (responded, resolved) by the due instant.
    pub met: u64,
    /// Answered late, or still running past the due instant.
    pub breached: u64,
    /// Still running, not yet due.
    pub open: u64,
    /// met / (met + breached), in percent to one decimal; None while
    /// nothing is decided.
    pub compliance_pct: Option<f64>,
    /// Wall-clock time taken by those answered, in minutes.
    pub median_minutes: Option<i64>,
    pub p90_minutes: Option<i64>,
    /// Business time on the plan's calendar, in minutes; None when the
    /// config no longer has the plan.
    pub business_median_minutes: Option<i64>,
    pub business_p90_minutes: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsRow {
    /// The period's first day, with `--by`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<NaiveDate>,
    pub plan: String,
    pub priority: Option<String>,
    pub tickets: u64,
    pub first_response: ClockStats,
    pub resolution: ClockStats,
}

#[derive(Default)]
struct Acc {
    tickets: u64,
    clocks: [Tally; 2],
}

#[derive(Default)]
struct Tally {
    stats: ClockStats,
    wall: Vec<i64>,
    business: Vec<i64>,
    business_unknown: bool,
}

impl Tally {
    fn count(
        &mut self,
        due: Option<DateTime<Utc>>,
        done: Option<DateTime<Utc>>,
        taken: Option<(TimeDelta, Option<TimeDelta>)>,
        now: DateTime<Utc>,
    ) {
        if let Some((wall, business)) = taken {
            self.wall.push(wall.num_minutes());
            match business {
                Some(b) => self.business.push(b.num_minutes()),
                None => self.business_unknown = true,
            }
        }
        let Some(due) = due else { return };
        match done {
            Some(done) if done <= due => self.stats.met += 1,
            Some(_) => self.stats.breached += 1,
            None if due < now => self.stats.breached += 1,
            None => self.stats.open += 1,
        }
    }

    fn finish(mut self) -> ClockStats {
        let s = &mut self.stats;
        let decided = s.met + s.breached;
        s.compliance_pct =
            (decided > 0).then(|| (s.met as f64 * 1000.0 / decided as f64).round() / 10.0);
        s.median_minutes = quantile(&mut self.wall, 0.5);
        s.p90_minutes = quantile(&mut self.wall, 0.9);
        if !self.business_unknown {
            s.business_median_minutes = quantile(&mut self.business, 0.5);
            s.business_p90_minutes = quantile(&mut self.business, 0.9);
        }
        self.stats
    }
}

/// The figures per (period,) plan and priority, sorted by them. Periods
/// are read from each ticket's arrival in `zone`.
pub fn compute(
    model: &SlaModel,
    tickets: &[TicketFacts],
    by: Option<Period>,
    zone: Tz,
    now: DateTime<Utc>,
) -> Vec<StatsRow> {
    let mut acc: BTreeMap<(Option<NaiveDate>, String, Option<String>), Acc> = BTreeMap::new();
    for t in tickets {
        let period = by.map(|p| p.start(t.received.with_timezone(&zone).date_naive()));
        let a = acc
            .entry((period, t.plan.clone(), t.priority.clone()))
            .or_default();
        a.tickets += 1;
        for (i, clock, due, done) in [
            (
                0,
                Clock::FirstResponse,
                t.first_response_due,
                t.first_responded,
            ),
            (1, Clock::Resolution, t.resolution_due, t.resolved),
        ] {
            let took = done
                .and_then(|at| stopped(model, t, clock, at))
                .map(|s| (s.wall, s.business));
            a.clocks[i].count(due, done, took, now);
        }
    }
    acc.into_iter()
        .map(|((period, plan, priority), a)| {
            let [fr, res] = a.clocks;
            StatsRow {
                period,
                plan,
                priority,
                tickets: a.tickets,
                first_response: fr.finish(),
                resolution: res.finish(),
            }
        })
        .collect()
}

/// What one clock's stop at `at` counts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// The wall-clock time it took, its pauses left out.
    pub wall: TimeDelta,
    /// The business time it took; None when the config no longer has the plan.
    pub business: Option<TimeDelta>,
    /// Whether it stopped by its due instant; None for a best-effort clock.
    pub met: Option<bool>,
}

/// A ticket's `clock` stopped at `at` (a response or a resolution), as
/// [`compute`] counts it; None when `at` comes before the clocks' start
/// (a run that a reopen's restart replaced).
pub fn stopped(
    model: &SlaModel,
    t: &TicketFacts,
    clock: Clock,
    at: DateTime<Utc>,
) -> Option<Stopped> {
    if at < t.start {
        return None;
    }
    let events: Vec<_> = t.events.iter().copied().filter(|(e, _)| *e <= at).collect();
    let pauses = pauses_of(clock, t.start, &events);
    let due = match clock {
        Clock::FirstResponse => t.first_response_due,
        Clock::Resolution => t.resolution_due,
    };
    let (wall, business) = taken(
        model.plan_calendar(&t.plan),
        t.timezone,
        t.start,
        at,
        &pauses,
    );
    Some(Stopped {
        wall,
        business,
        met: due.map(|d| at <= d),
    })
}

/// The first and last local day of [since, until) when both ends are
/// midnights in `zone` (a period of whole days), else None.
pub fn whole_days(
    zone: Tz,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Option<(NaiveDate, NaiveDate)> {
    let local = |t: DateTime<Utc>| t.with_timezone(&zone);
    let midnight = |t: DateTime<Utc>| local(t).time() == NaiveTime::MIN;
    if !(midnight(since) && midnight(until) && since < until) {
        return None;
    }
    Some((
        local(since).date_naive(),
        local(until).date_naive().pred_opt()?,
    ))
}

/// Where the period just before [since, until) starts: as many local days
/// back for a period of whole days (a DST change makes them an hour longer
/// or shorter), else as long back.
pub fn previous_start(zone: Tz, since: DateTime<Utc>, until: DateTime<Utc>) -> DateTime<Utc> {
    let same_length = since - (until - since);
    let Some((first, last)) = whole_days(zone, since, until) else {
        return same_length;
    };
    let days = (last - first).num_days() + 1;
    first
        .checked_sub_days(Days::new(days as u64))
        .and_then(|d| local_to_utc(zone, d.and_time(NaiveTime::MIN)))
        .unwrap_or(same_length)
}

/// First-response compliance per period over every plan and priority of
/// `rows` (computed with a period): (period, met, breached).
pub fn first_response_by_period(rows: &[StatsRow]) -> Vec<(NaiveDate, u64, u64)> {
    let mut out: BTreeMap<NaiveDate, (u64, u64)> = BTreeMap::new();
    for r in rows {
        if let Some(p) = r.period {
            let e = out.entry(p).or_default();
            e.0 += r.first_response.met;
            e.1 += r.first_response.breached;
        }
    }
    out.into_iter().map(|(p, (m, b))| (p, m, b)).collect()
}

/// A ticket answered in the period, with the time its first response took.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Slow {
    pub reference: String,
    pub subject: String,
    pub plan: String,
    pub priority: Option<String>,
    pub business_minutes: Option<i64>,
    pub wall_minutes: i64,
    /// Whether the response met its due instant; None for best effort.
    pub met: Option<bool>,
}

/// The `n` answered tickets whose first response took longest, in
/// business time (wall time where the plan is gone), slowest first.
pub fn slowest(model: &SlaModel, tickets: &[TicketFacts], n: usize) -> Vec<Slow> {
    let mut out: Vec<Slow> = tickets
        .iter()
        .filter_map(|t| {
            let at = t.first_responded?;
            let done = stopped(model, t, Clock::FirstResponse, at)?;
            Some(Slow {
                reference: t.reference.clone(),
                subject: t.subject.clone(),
                plan: t.plan.clone(),
                priority: t.priority.clone(),
                business_minutes: done.business.map(|b| b.num_minutes()),
                wall_minutes: done.wall.num_minutes(),
                met: done.met,
            })
        })
        .collect();
    out.sort_by_key(|s| {
        (
            std::cmp::Reverse(s.business_minutes.unwrap_or(s.wall_minutes)),
            s.reference.clone(),
        )
    });
    out.truncate(n);
    out
}

/// An open ticket whose clock runs, for the list of those at risk.
#[derive(Debug, Clone)]
pub struct Running {
    pub reference: String,
    pub subject: String,
    pub plan: String,
    pub priority: Option<String>,
    pub received: DateTime<Utc>,
    pub timezone: Option<Tz>,
    pub assignee: Option<String>,
    /// Due instants of the clocks still running (a first response not
    /// yet made; a resolution not paused).
    pub first_response_due: Option<DateTime<Utc>>,
    pub resolution_due: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AtRisk {
    pub reference: String,
    pub subject: String,
    pub plan: String,
    pub priority: Option<String>,
    pub assignee: Option<String>,
    /// "first_response" or "resolution": the clock due first.
    pub clock: &'static str,
    pub due: DateTime<Utc>,
    pub breached: bool,
    /// Since arrival, in minutes of wall time.
    pub age_minutes: i64,
}

/// The tickets breaching at `now` or due within one business day on their
/// plan's calendar (by this time of day on the next business day; 24
/// hours for a plan without a calendar), soonest due first.
pub fn at_risk(model: &SlaModel, tickets: &[Running], now: DateTime<Utc>) -> Vec<AtRisk> {
    let mut out: Vec<AtRisk> = tickets
        .iter()
        .filter_map(|t| {
            let (clock, due) = [
                ("first_response", t.first_response_due),
                ("resolution", t.resolution_due),
            ]
            .into_iter()
            .filter_map(|(c, d)| Some((c, d?)))
            .min_by_key(|(_, d)| *d)?;
            let horizon = match model.plan_calendar(&t.plan).flatten() {
                Some(cal) if !cal.is_always_open() => cal
                    .add_business_days(now, 1, cal.zone_for(t.timezone))
                    .unwrap_or(now + TimeDelta::hours(24)),
                _ => now + TimeDelta::hours(24),
            };
            (due <= horizon).then(|| AtRisk {
                reference: t.reference.clone(),
                subject: t.subject.clone(),
                plan: t.plan.clone(),
                priority: t.priority.clone(),
                assignee: t.assignee.clone(),
                clock,
                due,
                breached: due < now,
                age_minutes: (now - t.received).num_minutes().max(0),
            })
        })
        .collect();
    out.sort_by_key(|a| (a.due, a.reference.clone()));
    out
}

/// The time from `start` to `done` less the `pauses`: in wall time, and
/// in business time when the plan is known (its open time on the
/// calendar; a plan without a calendar counts wall time).
fn taken(
    calendar: Option<Option<&Calendar>>,
    customer: Option<Tz>,
    start: DateTime<Utc>,
    done: DateTime<Utc>,
    pauses: &[(DateTime<Utc>, DateTime<Utc>)],
) -> (TimeDelta, Option<TimeDelta>) {
    let clip = |(a, b): (DateTime<Utc>, DateTime<Utc>)| (a.max(start), b.min(done));
    let span = |(a, b): (DateTime<Utc>, DateTime<Utc>)| (b - a).max(TimeDelta::zero());
    let paused: TimeDelta = pauses.iter().map(|&p| span(clip(p))).sum();
    let wall = (span((start, done)) - paused).max(TimeDelta::zero());
    let business = calendar.map(|cal| match cal {
        None => wall,
        Some(cal) => {
            let zone = cal.zone_for(customer);
            let open = |(a, b)| cal.open_time_between(a, b, zone);
            let paused: TimeDelta = pauses.iter().map(|&p| open(clip(p))).sum();
            (open((start, done)) - paused).max(TimeDelta::zero())
        }
    });
    (wall, business)
}

/// The intervals `clock` stood still after `start`: the resolution clock
/// as [`pauses`] says; the first-response clock only while resolved before
/// a reopen resumed it (it does not wait while pending: a ticket goes
/// pending by an agent's answer).
pub fn pauses_of(
    clock: Clock,
    start: DateTime<Utc>,
    events: &[(DateTime<Utc>, ClockEvent)],
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    match clock {
        Clock::Resolution => pauses(start, events),
        Clock::FirstResponse => {
            let events: Vec<_> = events
                .iter()
                .copied()
                .filter(|(_, e)| !matches!(e, ClockEvent::Pending | ClockEvent::Resumed))
                .collect();
            pauses(start, &events)
        }
    }
}

/// The intervals the resolution clock stood still after `start`: from
/// pending to the reply that resumed it (or to the close), and from a
/// resolution to a reopen that resumed the clock.
pub fn pauses(
    start: DateTime<Utc>,
    events: &[(DateTime<Utc>, ClockEvent)],
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut out = Vec::new();
    let mut pending: Option<DateTime<Utc>> = None;
    let mut resolved: Option<DateTime<Utc>> = None;
    for &(at, e) in events.iter().filter(|(at, _)| *at >= start) {
        match e {
            ClockEvent::Pending => {
                if resolved.is_none() {
                    pending.get_or_insert(at);
                }
            }
            ClockEvent::Resumed => {
                if let Some(from) = pending.take() {
                    out.push((from, at));
                }
            }
            ClockEvent::Resolved => {
                if let Some(from) = pending.take() {
                    out.push((from, at));
                }
                resolved.get_or_insert(at);
            }
            ClockEvent::ReopenedResumed => {
                if let Some(from) = resolved.take() {
                    out.push((from, at));
                }
            }
        }
    }
    out
}

/// The `q` quantile of `v` (sorted here), interpolated between the two
/// nearest values as a spreadsheet's MEDIAN and PERCENTILE.INC do (the
/// median of 10 and 20 is 15), rounded to the minute.
pub fn quantile(v: &mut [i64], q: f64) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let pos = (v.len() - 1) as f64 * q;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let x = v[lo] as f64 + (v[hi] - v[lo]) as f64 * (pos - lo as f64);
    Some(x.round() as i64)
}

#[cfg(test)]
mod tests;
