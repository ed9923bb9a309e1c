//! Questions asked of a checked model: which plan a sender gets, the
//! targets of a plan, due instants and warning instants.

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;

use super::model::{
    CustomerMatch, Due, DueQuery, PendingDue, Reopen, SlaError, SlaModel, Target, Targets,
};
use crate::core::calendar::{Calendar, CalendarError};
use crate::core::escalation::Clock;

impl SlaModel {
    /// A calendar of `[sla.calendars]` by name.
    pub fn calendar(&self, name: &str) -> Option<&Calendar> {
        self.calendars.get(name)
    }

    pub fn calendar_names(&self) -> impl Iterator<Item = &str> {
        self.calendars.keys().map(String::as_str)
    }

    pub fn has_plan(&self, plan: &str) -> bool {
        self.plans.contains_key(plan)
    }

    pub fn default_plan(&self) -> &str {
        &self.default_plan
    }

    pub fn plan_names(&self) -> impl Iterator<Item = &str> {
        self.plans.keys().map(String::as_str)
    }

    /// The calendar a plan counts business time on: `Some(None)` for a
    /// plan counting wall-clock time, `None` for a plan the config no
    /// longer has.
    pub fn plan_calendar(&self, plan: &str) -> Option<Option<&Calendar>> {
        self.plans.get(plan).map(|p| p.calendar.as_ref())
    }

    /// The zone a plan's hours are read in for a customer in `customer`;
    /// None for a plan without a calendar. For showing due instants locally.
    pub fn plan_zone(&self, plan: &str, customer: Option<Tz>) -> Option<Tz> {
        let cal = self.plans.get(plan)?.calendar.as_ref()?;
        Some(cal.zone_for(customer))
    }

    /// The zone to show a customer their due instants in: their own when
    /// known, else the zone of the plan's calendar, else `desk` (the
    /// desk-wide zone), else UTC.
    pub fn display_zone(&self, plan: &str, customer: Option<Tz>, desk: Option<Tz>) -> Tz {
        customer
            .or_else(|| self.plan_zone(plan, None))
            .or(desk)
            .unwrap_or(Tz::UTC)
    }

    /// Which customer/plan applies to `email` at `now`: exact address
    /// first, then the most specific domain, then the default plan. A plan
    /// whose `until` has passed gives way to the customer's `after` plan.
    pub fn customer_for(&self, email: &str, now: DateTime<Utc>) -> CustomerMatch {
        let email = email.trim().to_lowercase();
        let found = self.by_address.get(&email).copied().or_else(|| {
            let (_, mut domain) = email.rsplit_once('@')?;
            loop {
                if let Some(&i) = self.by_domain.get(domain) {
                    return Some(i);
                }
                domain = domain.split_once('.')?.1;
            }
        });
        match found.and_then(|i| self.customers.get(i)) {
            Some(c) => CustomerMatch {
                customer: Some(c.name.clone()),
                plan: match c.until {
                    Some(end) if now >= end => c.after.clone(),
                    _ => c.plan.clone(),
                },
                timezone: c.timezone,
                language: c.language.clone(),
            },
            None => CustomerMatch {
                customer: None,
                plan: self.default_plan.clone(),
                timezone: None,
                language: None,
            },
        }
    }

    /// The targets of a plan for a priority and category (see [`DueQuery`]
    /// for what None means).
    pub fn targets(
        &self,
        plan: &str,
        priority: Option<&str>,
        category: Option<&str>,
    ) -> Result<&Targets, SlaError> {
        let p = self
            .plans
            .get(plan)
            .ok_or_else(|| SlaError::UnknownPlan(plan.to_owned()))?;
        let prio = match priority {
            None => self.priorities.len().saturating_sub(1),
            Some(name) => self
                .priorities
                .iter()
                .position(|x| x == name)
                .ok_or_else(|| SlaError::UnknownPriority(name.to_owned()))?,
        };
        let cat = match category {
            None => 0,
            Some(name) => self
                .categories
                .iter()
                .position(|x| x == name)
                .ok_or_else(|| SlaError::UnknownCategory(name.to_owned()))?,
        };
        let width = self.priorities.len().max(1);
        p.cells
            .get(cat * width + prio)
            .ok_or_else(|| SlaError::UnknownPlan(plan.to_owned()))
    }

    /// Whether any plan sends pending reminders, and auto-closes.
    pub fn uses_pending(&self) -> (bool, bool) {
        self.plans.values().fold((false, false), |(r, c), p| {
            (
                r || p.pending.reminder_after.is_some(),
                c || p.pending.close_after.is_some(),
            )
        })
    }

    /// What a reopen does to the clocks of a ticket on `plan`.
    pub fn reopen_rule(&self, plan: &str) -> Reopen {
        self.plans.get(plan).map(|p| p.reopen).unwrap_or_default()
    }

    /// When a ticket of `plan` that went pending at `since` is reminded
    /// and closed; business days count the plan's calendar.
    pub fn pending_due(
        &self,
        plan: &str,
        timezone: Option<Tz>,
        since: DateTime<Utc>,
    ) -> Result<PendingDue, SlaError> {
        let p = self
            .plans
            .get(plan)
            .ok_or_else(|| SlaError::UnknownPlan(plan.to_owned()))?;
        let ctx = Ctx {
            plan,
            calendar: p.calendar.as_ref(),
            zone: match &p.calendar {
                Some(c) => c.zone_for(timezone),
                None => timezone.unwrap_or(Tz::UTC),
            },
        };
        let at = |t: &Option<Target>| match t {
            Some(t) => ctx.eval(t, since),
            None => Ok(None),
        };
        let close = at(&p.pending.close_after)?;
        let reminder = at(&p.pending.reminder_after)?.filter(|r| close.is_none_or(|c| *r < c));
        Ok(PendingDue { reminder, close })
    }

    pub fn due(&self, q: &DueQuery) -> Result<Due, SlaError> {
        let targets = self.targets(q.plan, q.priority, q.category)?;
        let plan = self
            .plans
            .get(q.plan)
            .ok_or_else(|| SlaError::UnknownPlan(q.plan.to_owned()))?;
        let ctx = Ctx {
            plan: q.plan,
            calendar: plan.calendar.as_ref(),
            zone: match &plan.calendar {
                Some(c) => c.zone_for(q.timezone),
                None => q.timezone.unwrap_or(Tz::UTC),
            },
        };
        Ok(Due {
            first_response: ctx.eval(&targets.first_response, q.received)?,
            resolution: ctx.eval(&targets.resolution, q.received)?,
        })
    }
}

impl SlaModel {
    /// The instant at which `share` (0..1) of the time from reception to
    /// `due` has elapsed, counted the way the target counts: open time of
    /// the plan's calendar for business-time and business-day targets (an
    /// office-hours promise never warns at night or on a weekend), elapsed
    /// time otherwise. None when the clock is best effort.
    pub fn warning_at(
        &self,
        q: &DueQuery,
        clock: Clock,
        due: DateTime<Utc>,
        share: f64,
    ) -> Result<Option<DateTime<Utc>>, SlaError> {
        let targets = self.targets(q.plan, q.priority, q.category)?;
        let plan = self
            .plans
            .get(q.plan)
            .ok_or_else(|| SlaError::UnknownPlan(q.plan.to_owned()))?;
        let mut target = match clock {
            Clock::FirstResponse => &targets.first_response,
            Clock::Resolution => &targets.resolution,
        };
        let share = share.clamp(0.0, 1.0);
        let scale = |d: TimeDelta| {
            TimeDelta::milliseconds((d.num_milliseconds() as f64 * share).round() as i64)
        };
        let business_cal = plan.calendar.as_ref().filter(|c| !c.is_always_open());
        if let (
            Target::ByReception {
                inside, outside, ..
            },
            Some(cal),
        ) = (target, business_cal)
        {
            let zone = cal.zone_for(q.timezone);
            target = if cal.is_open(q.received, zone) {
                inside
            } else {
                outside
            };
        }
        match (target, business_cal) {
            (Target::BestEffort, _) => Ok(None),
            (Target::BusinessTime(_) | Target::BusinessDays(_), Some(cal)) => {
                let zone = cal.zone_for(q.timezone);
                let open = cal.open_time_between(q.received, due, zone);
                cal.add_business_time(q.received, scale(open), zone)
                    .map(Some)
                    .map_err(|source| SlaError::Calendar {
                        plan: q.plan.to_owned(),
                        source,
                    })
            }
            _ => Ok(q
                .received
                .checked_add_signed(scale(due.signed_duration_since(q.received)))),
        }
    }
}

impl SlaModel {
    /// Where `due` (a due or warning instant of `clock`) moves when the
    /// clock stood still from `from` to `to`, counted the way its target
    /// counts: for business-time and business-day targets, the open time
    /// that was left at `from` is counted again from `to` (a ticket
    /// resolved on Friday at 17:00 with 3 open hours left and reopened on
    /// Monday at 09:00 is due Monday at 12:00); for elapsed-time targets,
    /// the pause is added. An instant already past at `from` stays.
    pub fn resumed_at(
        &self,
        q: &DueQuery,
        clock: Clock,
        due: DateTime<Utc>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let pause = (to - from).max(TimeDelta::zero());
        let wall = due.checked_add_signed(pause).unwrap_or(due);
        if due <= from {
            return due;
        }
        let Ok(targets) = self.targets(q.plan, q.priority, q.category) else {
            return wall;
        };
        let Some(cal) = self
            .plans
            .get(q.plan)
            .and_then(|p| p.calendar.as_ref())
            .filter(|c| !c.is_always_open())
        else {
            return wall;
        };
        let zone = cal.zone_for(q.timezone);
        let mut target = match clock {
            Clock::FirstResponse => &targets.first_response,
            Clock::Resolution => &targets.resolution,
        };
        if let Target::ByReception {
            inside, outside, ..
        } = target
        {
            target = if cal.is_open(q.received, zone) {
                inside
            } else {
                outside
            };
        }
        match target {
            Target::BusinessTime(_) | Target::BusinessDays(_) => {
                let left = cal.open_time_between(from, due, zone);
                cal.add_business_time(to, left, zone).unwrap_or(wall)
            }
            _ => wall,
        }
    }
}

struct Ctx<'a> {
    plan: &'a str,
    calendar: Option<&'a Calendar>,
    zone: Tz,
}

impl Ctx<'_> {
    fn cal_err(&self, source: CalendarError) -> SlaError {
        SlaError::Calendar {
            plan: self.plan.to_owned(),
            source,
        }
    }

    fn eval(&self, t: &Target, received: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, SlaError> {
        // The check gives every calendar-bound target a calendar; should one
        // slip through, an always-open calendar is the safe reading.
        let always;
        let cal = match self.calendar {
            Some(c) => c,
            None => {
                always = Calendar::always_open(self.zone);
                &always
            }
        };
        match t {
            Target::BestEffort => Ok(None),
            Target::WallClock(d) => received
                .checked_add_signed(*d)
                .map(Some)
                .ok_or(SlaError::OutOfRange),
            Target::BusinessTime(d) => cal
                .add_business_time(received, *d, self.zone)
                .map(Some)
                .map_err(|e| self.cal_err(e)),
            Target::BusinessDays(n) => cal
                .add_business_days(received, *n, self.zone)
                .map(Some)
                .map_err(|e| self.cal_err(e)),
            Target::ByReception {
                inside,
                outside,
                cap_at_next_opening,
            } => {
                if cal.is_open(received, self.zone) {
                    return self.eval(inside, received);
                }
                if !cap_at_next_opening {
                    return self.eval(outside, received);
                }
                let Some(late) = self.eval(outside, received)? else {
                    return Ok(None);
                };
                let Ok(next) = cal.next_opening(received, self.zone) else {
                    return Ok(Some(late));
                };
                Ok(Some(match self.eval(inside, next)? {
                    Some(early) => late.min(early),
                    None => late,
                }))
            }
        }
    }
}
