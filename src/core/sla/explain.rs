//! Why a ticket is due when it is: the SLA arithmetic step by step, for
//! `sla due --explain` and `tickets show`. The steps come from the same
//! calendar walk that computes the due instants (the `*_counting`
//! functions of [`crate::core::calendar`]), so the explanation cannot
//! drift from the result; each clock ends on the due instant itself.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc, Weekday};
use chrono_tz::Tz;

use super::model::{DueQuery, SlaError, SlaModel, Target};
use crate::core::calendar::Calendar;
use crate::core::duration::human;

/// The explanation of both clocks, and the due instants it arrives at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explained {
    pub lines: Vec<String>,
    pub first_response: Option<DateTime<Utc>>,
    pub resolution: Option<DateTime<Utc>>,
}

fn at(t: DateTime<Utc>, zone: Tz) -> String {
    let l = t.with_timezone(&zone);
    if zone == Tz::UTC {
        l.format("%a %Y-%m-%d %H:%M UTC").to_string()
    } else {
        format!(
            "{} ({} UTC)",
            l.format("%a %Y-%m-%d %H:%M %Z"),
            t.format("%H:%M")
        )
    }
}

/// "3h of business time", "4h of elapsed time", "2 business days", ...
pub fn describe(t: &Target) -> String {
    match t {
        Target::BestEffort => "best effort".to_owned(),
        Target::BusinessTime(d) => format!("{} of business time", human(*d)),
        Target::WallClock(d) => format!("{} of elapsed time", human(*d)),
        Target::BusinessDays(n) => format!("{n} business day{}", if *n == 1 { "" } else { "s" }),
        Target::ByReception {
            inside,
            outside,
            cap_at_next_opening,
        } => format!(
            "{} when received inside hours, {} outside{}",
            describe(inside),
            describe(outside),
            if *cap_at_next_opening {
                " (never later than a ticket received at the next opening)"
            } else {
                ""
            }
        ),
    }
}

struct Walk<'a> {
    cal: &'a Calendar,
    zone: Tz,
    lines: Vec<String>,
}

impl Walk<'_> {
    fn say(&mut self, depth: usize, s: String) {
        self.lines.push(format!("{}{s}", "  ".repeat(depth)));
    }

    /// Why `date` does not count.
    fn closed_why(&self, date: NaiveDate) -> String {
        if self.cal.is_holiday(date) {
            format!("{}: holiday, skipped", date.format("%a %Y-%m-%d"))
        } else {
            format!("{}: closed, skipped", date.format("%a %Y-%m-%d"))
        }
    }

    fn eval(
        &mut self,
        t: &Target,
        received: DateTime<Utc>,
        depth: usize,
    ) -> Result<Option<DateTime<Utc>>, SlaError> {
        let err = |e| SlaError::Calendar {
            plan: String::new(),
            source: e,
        };
        let zone = self.zone;
        match t {
            Target::BestEffort => {
                self.say(depth, "best effort: no due instant".into());
                Ok(None)
            }
            Target::WallClock(d) => {
                let due = received
                    .checked_add_signed(*d)
                    .ok_or(SlaError::OutOfRange)?;
                self.say(
                    depth,
                    format!(
                        "{} + {} of elapsed time (nights, weekends and holidays count) = {}",
                        at(received, zone),
                        human(*d),
                        at(due, zone)
                    ),
                );
                Ok(Some(due))
            }
            Target::BusinessTime(d) => {
                self.say(
                    depth,
                    format!("{} of open time from {}:", human(*d), at(received, zone)),
                );
                let mut spans = Vec::new();
                let due = self
                    .cal
                    .add_business_time_counting(received, *d, zone, |a, b| spans.push((a, b)))
                    .map_err(err)?;
                let mut total = TimeDelta::zero();
                let mut last_day = received.with_timezone(&zone).date_naive();
                for (a, b) in spans {
                    let day = a.with_timezone(&zone).date_naive();
                    let mut gap = last_day.succ_opt();
                    while let Some(g) = gap.filter(|g| *g < day) {
                        let why = self.closed_why(g);
                        self.say(depth + 1, why);
                        gap = g.succ_opt();
                    }
                    last_day = day;
                    total += b - a;
                    self.say(
                        depth + 1,
                        format!(
                            "{} {}-{}: {} counted ({} of {})",
                            a.with_timezone(&zone).format("%a %Y-%m-%d"),
                            a.with_timezone(&zone).format("%H:%M"),
                            b.with_timezone(&zone).format("%H:%M"),
                            human(b - a),
                            human(total),
                            human(*d)
                        ),
                    );
                }
                self.say(depth, format!("due {}", at(due, zone)));
                Ok(Some(due))
            }
            Target::BusinessDays(n) => {
                let clock = self.cal.next_opening(received, zone).map_err(err)?;
                if clock == received {
                    self.say(
                        depth,
                        format!("the clock starts at reception, {}", at(clock, zone)),
                    );
                } else {
                    self.say(
                        depth,
                        format!(
                            "received while closed: the clock starts at the next opening, {}",
                            at(clock, zone)
                        ),
                    );
                }
                let mut days = Vec::new();
                let due = self
                    .cal
                    .add_business_days_counting(received, *n, zone, |d, ok| days.push((d, ok)))
                    .map_err(err)?;
                let mut k = 0;
                for (d, ok) in days {
                    if ok {
                        k += 1;
                        self.say(
                            depth + 1,
                            format!("{}: business day {k} of {n}", d.format("%a %Y-%m-%d")),
                        );
                    } else {
                        let why = self.closed_why(d);
                        self.say(depth + 1, why);
                    }
                }
                self.say(
                    depth,
                    format!("due {}, the same local time of day", at(due, zone)),
                );
                Ok(Some(due))
            }
            Target::ByReception {
                inside,
                outside,
                cap_at_next_opening,
            } => {
                if self.cal.is_open(received, zone) {
                    self.say(
                        depth,
                        format!("received inside hours: {}", describe(inside)),
                    );
                    return self.eval(inside, received, depth + 1);
                }
                self.say(
                    depth,
                    format!("received outside hours: {}", describe(outside)),
                );
                let late = self.eval(outside, received, depth + 1)?;
                if !cap_at_next_opening {
                    return Ok(late);
                }
                let Some(late) = late else {
                    return Ok(None);
                };
                let Ok(next) = self.cal.next_opening(received, zone) else {
                    return Ok(Some(late));
                };
                self.say(
                    depth,
                    format!(
                        "outside_hours_cap = \"next_opening\": a ticket received at the next opening, {}, would be due:",
                        at(next, zone)
                    ),
                );
                let early = self.eval(inside, next, depth + 1)?;
                let due = early.map_or(late, |e| late.min(e));
                self.say(depth, format!("the earlier wins: due {}", at(due, zone)));
                Ok(Some(due))
            }
        }
    }
}

fn weekly(cal: &Calendar) -> String {
    use Weekday::*;
    [Mon, Tue, Wed, Thu, Fri, Sat, Sun]
        .into_iter()
        .map(|d| {
            let h = cal.hours_text(d);
            format!("{d} {}", if h.is_empty() { "closed".into() } else { h })
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl SlaModel {
    /// The arithmetic behind [`SlaModel::due`] for `q`, step by step.
    pub fn explain(&self, q: &DueQuery) -> Result<Explained, SlaError> {
        let targets = self.targets(q.plan, q.priority, q.category)?;
        let plan = self
            .plans
            .get(q.plan)
            .ok_or_else(|| SlaError::UnknownPlan(q.plan.to_owned()))?;
        let mut lines = vec![format!(
            "plan {}, priority {}, category {}",
            q.plan,
            q.priority.map(str::to_owned).unwrap_or_else(|| format!(
                "{} (the lowest)",
                self.priorities.last().map_or("-", |s| s)
            )),
            q.category.map(str::to_owned).unwrap_or_else(|| self
                .categories
                .first()
                .cloned()
                .unwrap_or_else(|| "-".into())),
        )];
        let always;
        let (cal, zone) = match &plan.calendar {
            Some(c) => {
                let zone = c.zone_for(q.timezone);
                let name = plan.calendar_name.as_deref().unwrap_or("?");
                if c.is_always_open() {
                    lines.push(format!("calendar {name:?}: always open"));
                } else {
                    let whose = match q.timezone {
                        Some(z) if c.follows_customer => format!("{z}, the customer's zone"),
                        _ if c.follows_customer => {
                            format!("{zone} (the calendar follows the customer's zone; none known)")
                        }
                        _ => zone.to_string(),
                    };
                    lines.push(format!("calendar {name:?} in {whose}: {}", weekly(c)));
                }
                (c, zone)
            }
            None => {
                let zone = q.timezone.unwrap_or(Tz::UTC);
                lines.push("no calendar: only elapsed-time targets".into());
                always = Calendar::always_open(zone);
                (&always, zone)
            }
        };
        let open = if cal.is_open(q.received, zone) {
            "open"
        } else {
            "closed"
        };
        lines.push(format!("received {} ({open})", at(q.received, zone)));
        let mut w = Walk { cal, zone, lines };
        let mut out = [None, None];
        for (i, (name, t)) in [
            ("first response", &targets.first_response),
            ("resolution", &targets.resolution),
        ]
        .into_iter()
        .enumerate()
        {
            w.say(0, format!("{name}: {}", describe(t)));
            out[i] = w.eval(t, q.received, 1).map_err(|e| match e {
                SlaError::Calendar { source, .. } => SlaError::Calendar {
                    plan: q.plan.to_owned(),
                    source,
                },
                e => e,
            })?;
        }
        Ok(Explained {
            lines: w.lines,
            first_response: out[0],
            resolution: out[1],
        })
    }
}
