//! Service levels: plans, customers, targets, and when a ticket is due.
//!
//! Owns the `[sla]` table of the config: the raw structs as deserialized,
//! the check that turns them into an [`SlaModel`] (reporting every problem
//! at once, each with its key path), which plan applies to a sender, and
//! the due instants of a ticket. Pure: `now` and reception times are
//! parameters; calendar arithmetic lives in [`crate::core::calendar`].
//!
//! ```toml
//! [sla]
//! default_plan = "standard"          # senders matching no customer
//!
//! [sla.calendars.office]
//! timezone = "Europe/Paris"
//! follow_customer_timezone = true    # hours in the customer's zone when known
//! holiday_sets = ["fr"]              # built-in French public holidays
//! holidays = ["12-24..12-31", "2026-05-15", "easter-2"]
//! hours = { mon-fri = "08:00-12:00, 13:00-17:00", sat = "09:00-12:00" }
//!
//! [sla.calendars.always]
//! always_open = true
//!
//! # A rule applies to its category and/or priority (all when omitted); for
//! # each clock the most specific rule wins; no rule means best effort.
//! [sla.plans.standard]
//! calendar = "office"
//! targets = [
//!   { priority = "P1", first_response = "1h", resolution = { business_days = 2 } },
//!   { priority = "P2", first_response = { inside_hours = { wall_clock = "1h" }, outside_hours = { wall_clock = "12h" } } },
//!   { priority = "P3", first_response = { business_days = 1 } },
//!   { category = "request", priority = "P1", first_response = { wall_clock = "4h" } },
//! ]
//!
//! [sla.plans.premium]
//! calendar = "always"
//! targets = [{ first_response = "15m", resolution = "1h30m" }]
//!
//! [sla.customers.acme]
//! domains = ["acme.example"]         # and its subdomains
//! addresses = ["boss@partner.example"]
//! plan = "premium"
//! until = 2026-06-30                 # premium through 30 June, then `after`
//! after = "standard"
//! timezone = "America/New_York"
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

use crate::core::calendar::{
    BUILTIN_HOLIDAY_SETS, Calendar, CalendarError, HolidayRule, Holidays, WeeklyHours,
    builtin_holiday_set, local_to_utc, parse_days, parse_spans,
};
use crate::core::escalation::Clock;
use crate::core::problem::Problem;

/// Longest duration a target may give; longer is surely a typo.
pub const MAX_TARGET: TimeDelta = TimeDelta::days(366);
/// Most business days a target may give.
pub const MAX_BUSINESS_DAYS: i64 = 366;

// ---------------------------------------------------------------- raw config

/// The `[sla]` table as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSla {
    /// Plan of senders that match no customer.
    pub default_plan: String,
    #[serde(default)]
    pub calendars: BTreeMap<String, RawCalendar>,
    #[serde(default)]
    pub plans: BTreeMap<String, RawPlan>,
    #[serde(default)]
    pub customers: BTreeMap<String, RawCustomer>,
}

/// `[sla.calendars.NAME]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCalendar {
    /// IANA zone of the hours (the default zone when following the customer's).
    pub timezone: Option<String>,
    /// Read the hours in the customer's zone when the customer has one.
    #[serde(default)]
    pub follow_customer_timezone: bool,
    /// 24x7x365: no hours, no holidays.
    #[serde(default)]
    pub always_open: bool,
    /// Day or day range ("mon", "mon-fri") to intervals ("08:00-12:00, 13:00-17:00").
    #[serde(default)]
    pub hours: BTreeMap<String, String>,
    /// Built-in holiday sets, e.g. "fr".
    #[serde(default)]
    pub holiday_sets: Vec<String>,
    /// "2026-12-24", "12-25", "easter+39", "12-24..12-31", "2026-08-03..2026-08-21".
    #[serde(default)]
    pub holidays: Vec<String>,
}

/// `[sla.plans.NAME]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlan {
    /// Needed by business-time, business-day and inside/outside-hours targets.
    pub calendar: Option<String>,
    #[serde(default)]
    pub targets: Vec<RawRule>,
}

/// One target rule: applies to a category and/or priority, or to all when
/// omitted. For each of first response and resolution, the most specific
/// rule that sets it wins; none means best effort.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub category: Option<String>,
    pub priority: Option<String>,
    pub first_response: Option<RawTarget>,
    pub resolution: Option<RawTarget>,
}

/// A target as written: `"3h"` (business time), `"best effort"`, or a table.
#[derive(Debug, Clone, PartialEq)]
pub enum RawTarget {
    Text(String),
    Table(Box<RawTargetTable>),
}

/// `{ business_time = "3h" }`, `{ wall_clock = "4h" }`, `{ business_days = 2 }`,
/// `{ inside_hours = T, outside_hours = T }`: exactly one kind.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTargetTable {
    pub business_time: Option<String>,
    pub wall_clock: Option<String>,
    pub business_days: Option<i64>,
    pub inside_hours: Option<RawTarget>,
    pub outside_hours: Option<RawTarget>,
}

// A hand-written impl rather than `#[serde(untagged)]`, whose error
// ("did not match any variant") would tell an admin nothing.
impl<'de> Deserialize<'de> for RawTarget {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<RawTarget, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawTarget;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a target: \"3h\" (business time), \"best effort\", { wall_clock = \"4h\" }, \
                     { business_days = 2 } or { inside_hours = .., outside_hours = .. }",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawTarget, E> {
                Ok(RawTarget::Text(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<RawTarget, A::Error> {
                RawTargetTable::deserialize(de::value::MapAccessDeserializer::new(m))
                    .map(|t| RawTarget::Table(Box::new(t)))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[sla.customers.NAME]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCustomer {
    /// Exact sender addresses (matched before domains).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Sender domains; subdomains match too, the most specific domain wins.
    #[serde(default)]
    pub domains: Vec<String>,
    pub plan: String,
    /// The customer's IANA zone, for calendars that follow the customer.
    pub timezone: Option<String>,
    /// End of `plan`: a date (plan holds through that day, in the customer's
    /// zone, else UTC) or a date-time.
    pub until: Option<toml::value::Datetime>,
    /// Plan once `until` has passed; the default plan when omitted.
    pub after: Option<String>,
}

// ------------------------------------------------------------- typed model

/// A commitment for one clock (first response or resolution).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Target {
    /// No due instant.
    #[default]
    BestEffort,
    /// Open time of the plan's calendar.
    BusinessTime(TimeDelta),
    /// Elapsed time, calendar ignored.
    WallClock(TimeDelta),
    /// Same local time of day, N business days after the clock starts.
    BusinessDays(u32),
    /// One target for tickets received while open, another for the rest.
    /// A ticket received while closed is never due later than one received
    /// at the next opening: otherwise a mail sent at 07:59 would be due
    /// after one sent at 08:00.
    ByReception {
        inside: Box<Target>,
        outside: Box<Target>,
    },
}

impl Target {
    fn needs_calendar(&self) -> bool {
        !matches!(self, Target::BestEffort | Target::WallClock(_))
    }
}

/// Both commitments of one plan x category x priority.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    pub first_response: Target,
    pub resolution: Target,
}

#[derive(Debug, Clone)]
struct Plan {
    calendar: Option<Calendar>,
    /// Indexed by `category_slot * priority_slots + priority_slot`.
    cells: Vec<Targets>,
}

#[derive(Debug, Clone)]
struct Customer {
    name: String,
    plan: String,
    until: Option<DateTime<Utc>>,
    after: String,
    timezone: Option<Tz>,
}

/// The checked `[sla]` table.
#[derive(Debug, Clone)]
pub struct SlaModel {
    priorities: Vec<String>,
    categories: Vec<String>,
    default_plan: String,
    plans: BTreeMap<String, Plan>,
    customers: Vec<Customer>,
    by_address: HashMap<String, usize>,
    by_domain: HashMap<String, usize>,
}

/// Which customer and plan a sender gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerMatch {
    pub customer: Option<String>,
    pub plan: String,
    pub timezone: Option<Tz>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueQuery<'a> {
    pub plan: &'a str,
    /// None: the lowest priority.
    pub priority: Option<&'a str>,
    /// None: the first category (or none when there are no categories).
    pub category: Option<&'a str>,
    /// The customer's zone, used when the plan's calendar follows the customer.
    pub timezone: Option<Tz>,
    pub received: DateTime<Utc>,
}

/// Due instants; None means best effort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub first_response: Option<DateTime<Utc>>,
    pub resolution: Option<DateTime<Utc>>,
}

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum SlaError {
    #[error("unknown plan {0:?}")]
    UnknownPlan(String),
    #[error("unknown priority {0:?}")]
    UnknownPriority(String),
    #[error("unknown category {0:?}")]
    UnknownCategory(String),
    #[error("plan {plan:?}: {source}")]
    Calendar {
        plan: String,
        #[source]
        source: CalendarError,
    },
    #[error("due instant out of the supported range")]
    OutOfRange,
}

// ------------------------------------------------------------------ queries

impl SlaModel {
    pub fn has_plan(&self, plan: &str) -> bool {
        self.plans.contains_key(plan)
    }

    pub fn default_plan(&self) -> &str {
        &self.default_plan
    }

    pub fn plan_names(&self) -> impl Iterator<Item = &str> {
        self.plans.keys().map(String::as_str)
    }

    /// The zone a plan's hours are read in for a customer in `customer`;
    /// None for a plan without a calendar. For showing due instants locally.
    pub fn plan_zone(&self, plan: &str, customer: Option<Tz>) -> Option<Tz> {
        let cal = self.plans.get(plan)?.calendar.as_ref()?;
        Some(cal.zone_for(customer))
    }

    /// The zone to show a customer their due instants in: their own when
    /// known, else the zone of the plan's calendar, else UTC.
    pub fn display_zone(&self, plan: &str, customer: Option<Tz>) -> Tz {
        customer
            .or_else(|| self.plan_zone(plan, None))
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
            },
            None => CustomerMatch {
                customer: None,
                plan: self.default_plan.clone(),
                timezone: None,
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
        if let (Target::ByReception { inside, outside }, Some(cal)) = (target, business_cal) {
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
            Target::ByReception { inside, outside } => {
                if cal.is_open(received, self.zone) {
                    return self.eval(inside, received);
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

// ------------------------------------------------------------------ parsing

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

fn parse_zone(s: &str) -> Result<Tz, String> {
    s.trim()
        .parse::<Tz>()
        .map_err(|_| format!("unknown time zone {s:?}; use an IANA name such as \"Europe/Paris\""))
}

// ----------------------------------------------------------------- checking

struct Problems(Vec<Problem>);

impl Problems {
    fn push<S: AsRef<str>>(&mut self, path: &[S], message: impl Into<String>) {
        self.0.push(Problem {
            path: path.iter().map(|s| s.as_ref().to_owned()).collect(),
            message: message.into(),
        });
    }
}

/// `path` with one more key.
fn sub<S: AsRef<str>>(path: &[S], key: &str) -> Vec<String> {
    path.iter()
        .map(|s| s.as_ref())
        .chain([key])
        .map(str::to_owned)
        .collect()
}

fn known(list: &[String]) -> String {
    if list.is_empty() {
        "none are defined".to_owned()
    } else {
        format!("known: {}", list.join(", "))
    }
}

impl SlaModel {
    /// Checks the raw table against the config's priorities and categories,
    /// reporting every problem found.
    pub fn from_raw(
        raw: &RawSla,
        priorities: &[String],
        categories: &[String],
    ) -> Result<SlaModel, Vec<Problem>> {
        let mut pr = Problems(Vec::new());

        let mut calendars = BTreeMap::new();
        for (name, rc) in &raw.calendars {
            if let Some(c) = check_calendar(name, rc, &mut pr) {
                calendars.insert(name.as_str(), c);
            }
        }

        if raw.plans.is_empty() {
            pr.push(&["sla", "plans"], "no plans are defined");
        }
        let mut plans = BTreeMap::new();
        for (name, rp) in &raw.plans {
            let path = ["sla", "plans", name.as_str()];
            let calendar = match &rp.calendar {
                None => None,
                Some(c) => match calendars.get(c.as_str()) {
                    Some(cal) => Some(cal.clone()),
                    None => {
                        // A calendar that exists but failed its own check
                        // is reported there already.
                        if !raw.calendars.contains_key(c) {
                            pr.push(
                                &[&path[..], &["calendar"]].concat(),
                                format!(
                                    "unknown calendar {c:?}; {}",
                                    known(&raw.calendars.keys().cloned().collect::<Vec<_>>())
                                ),
                            );
                        }
                        None
                    }
                },
            };
            let cells = check_rules(
                &path,
                rp,
                rp.calendar.is_some(),
                priorities,
                categories,
                &mut pr,
            );
            plans.insert(name.clone(), Plan { calendar, cells });
        }

        let plan_names: Vec<String> = raw.plans.keys().cloned().collect();
        if !raw.plans.contains_key(&raw.default_plan) {
            pr.push(
                &["sla", "default_plan"],
                format!(
                    "unknown plan {:?}; {}",
                    raw.default_plan,
                    known(&plan_names)
                ),
            );
        }

        let mut customers = Vec::new();
        let mut by_address: HashMap<String, usize> = HashMap::new();
        let mut by_domain: HashMap<String, usize> = HashMap::new();
        for (name, rc) in &raw.customers {
            let path = ["sla", "customers", name.as_str()];
            let at = |k: &str| sub(&path, k);
            if !raw.plans.contains_key(&rc.plan) {
                pr.push(
                    &at("plan"),
                    format!("unknown plan {:?}; {}", rc.plan, known(&plan_names)),
                );
            }
            if let Some(a) = &rc.after {
                if !raw.plans.contains_key(a) {
                    pr.push(
                        &at("after"),
                        format!("unknown plan {a:?}; {}", known(&plan_names)),
                    );
                }
                if rc.until.is_none() {
                    pr.push(&at("after"), "`after` needs `until`, the end of `plan`");
                }
            }
            let timezone = match rc.timezone.as_deref().map(parse_zone) {
                None => None,
                Some(Ok(z)) => Some(z),
                Some(Err(m)) => {
                    pr.push(&at("timezone"), m);
                    None
                }
            };
            let until = match &rc.until {
                None => None,
                Some(dt) => match until_instant(dt, timezone) {
                    Ok(t) => Some(t),
                    Err(m) => {
                        pr.push(&at("until"), m);
                        None
                    }
                },
            };
            if rc.addresses.is_empty() && rc.domains.is_empty() {
                pr.push(&path, "matches no sender: give `addresses` or `domains`");
            }
            let index = customers.len();
            for (i, a) in rc.addresses.iter().enumerate() {
                let a_norm = a.trim().to_lowercase();
                let ok = a_norm.split_once('@').is_some_and(|(l, d)| {
                    !l.is_empty() && !d.is_empty() && !d.contains('@') && !d.contains(' ')
                });
                let i = i.to_string();
                if !ok {
                    pr.push(
                        &[&path[..], &["addresses", &i]].concat(),
                        format!("{a:?} is not an email address"),
                    );
                } else if let Some(&other) = by_address.get(&a_norm) {
                    pr.push(
                        &[&path[..], &["addresses", &i]].concat(),
                        format!(
                            "{a:?} is also listed by customer {:?}",
                            raw_name(raw, other)
                        ),
                    );
                } else {
                    by_address.insert(a_norm, index);
                }
            }
            for (i, d) in rc.domains.iter().enumerate() {
                let d_norm = d.trim().trim_end_matches('.').to_lowercase();
                let i = i.to_string();
                if d_norm.is_empty() || d_norm.contains('@') || d_norm.contains(' ') {
                    pr.push(
                        &[&path[..], &["domains", &i]].concat(),
                        format!("{d:?} is not a domain; write e.g. \"example.com\", without @"),
                    );
                } else if let Some(&other) = by_domain.get(&d_norm) {
                    pr.push(
                        &[&path[..], &["domains", &i]].concat(),
                        format!(
                            "{d:?} is also listed by customer {:?}",
                            raw_name(raw, other)
                        ),
                    );
                } else {
                    by_domain.insert(d_norm, index);
                }
            }
            customers.push(Customer {
                name: name.clone(),
                plan: rc.plan.clone(),
                until,
                after: rc.after.clone().unwrap_or_else(|| raw.default_plan.clone()),
                timezone,
            });
        }

        if !pr.0.is_empty() {
            return Err(pr.0);
        }
        Ok(SlaModel {
            priorities: priorities.to_vec(),
            categories: categories.to_vec(),
            default_plan: raw.default_plan.clone(),
            plans,
            customers,
            by_address,
            by_domain,
        })
    }
}

/// The name of the `index`-th customer in `raw` (customers are checked in
/// map order).
fn raw_name(raw: &RawSla, index: usize) -> String {
    raw.customers.keys().nth(index).cloned().unwrap_or_default()
}

/// When a customer's `until` ends: a date holds through its last day.
fn until_instant(dt: &toml::value::Datetime, zone: Option<Tz>) -> Result<DateTime<Utc>, String> {
    use toml::value::Offset;
    let zone = zone.unwrap_or(Tz::UTC);
    let Some(d) = dt.date else {
        return Err("give a date (2026-06-30) or a date and time".to_owned());
    };
    let date = NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
        .ok_or_else(|| format!("{dt} is not a date"))?;
    let bad = || format!("{dt} is out of range");
    let Some(t) = dt.time else {
        let next = date
            .succ_opt()
            .and_then(|n| n.and_hms_opt(0, 0, 0))
            .ok_or_else(bad)?;
        return local_to_utc(zone, next).ok_or_else(bad);
    };
    let naive = date
        .and_hms_nano_opt(
            u32::from(t.hour),
            u32::from(t.minute),
            u32::from(t.second),
            t.nanosecond,
        )
        .ok_or_else(|| format!("{dt} is not a time"))?;
    match dt.offset {
        None => local_to_utc(zone, naive).ok_or_else(bad),
        Some(Offset::Z) => Ok(naive.and_utc()),
        Some(Offset::Custom { minutes }) => naive
            .and_utc()
            .checked_sub_signed(TimeDelta::minutes(i64::from(minutes)))
            .ok_or_else(bad),
    }
}

fn check_calendar(name: &str, rc: &RawCalendar, pr: &mut Problems) -> Option<Calendar> {
    let path = ["sla", "calendars", name];
    let at = |k: &str| sub(&path, k);
    let before = pr.0.len();
    let zone = match rc.timezone.as_deref() {
        Some(s) => parse_zone(s).map_err(|m| pr.push(&at("timezone"), m)).ok(),
        None if rc.always_open => Some(Tz::UTC),
        None => {
            pr.push(
                &at("timezone"),
                "missing: give the zone of the hours, e.g. \"Europe/Paris\"",
            );
            None
        }
    };
    if rc.always_open {
        for (key, set) in [
            ("hours", !rc.hours.is_empty()),
            ("holiday_sets", !rc.holiday_sets.is_empty()),
            ("holidays", !rc.holidays.is_empty()),
        ] {
            if set {
                pr.push(
                    &at(key),
                    "an always-open calendar has no hours or holidays; drop this or always_open",
                );
            }
        }
        let z = zone?;
        return (pr.0.len() == before)
            .then(|| Calendar::always_open(z).following_customer(rc.follow_customer_timezone));
    }

    let mut week = WeeklyHours::default();
    let mut given_by: [Option<&str>; 7] = [None; 7];
    for (key, value) in &rc.hours {
        let kp = [&path[..], &["hours", key.as_str()]].concat();
        let days = parse_days(key).map_err(|m| pr.push(&kp, m));
        let spans = parse_spans(value).map_err(|m| pr.push(&kp, m));
        let (Ok(days), Ok(spans)) = (days, spans) else {
            continue;
        };
        for d in days {
            let slot = &mut given_by[d.num_days_from_monday() as usize];
            match slot {
                Some(other) => pr.push(&kp, format!("{d} is already given by {other:?}")),
                None => {
                    *slot = Some(key.as_str());
                    week.set(d, spans.clone());
                }
            }
        }
    }
    if week.is_closed() && pr.0.len() == before {
        pr.push(
            &at("hours"),
            "no opening hours: give e.g. hours = { mon-fri = \"09:00-18:00\" }, or always_open = true",
        );
    }

    let mut holidays = Holidays::default();
    for (i, set) in rc.holiday_sets.iter().enumerate() {
        match builtin_holiday_set(set) {
            Some(rules) => {
                // Built-in sets are constants covered by tests.
                for r in rules.iter().filter_map(|r| HolidayRule::parse(r).ok()) {
                    holidays.add(r);
                }
            }
            None => pr.push(
                &[&path[..], &["holiday_sets", &i.to_string()]].concat(),
                format!(
                    "unknown holiday set {set:?}; known: {}",
                    BUILTIN_HOLIDAY_SETS.join(", ")
                ),
            ),
        }
    }
    for (i, h) in rc.holidays.iter().enumerate() {
        match HolidayRule::parse(h) {
            Ok(r) => holidays.add(r),
            Err(m) => pr.push(&[&path[..], &["holidays", &i.to_string()]].concat(), m),
        }
    }
    let z = zone?;
    (pr.0.len() == before)
        .then(|| Calendar::new(z, week, holidays).following_customer(rc.follow_customer_timezone))
}

fn check_target(
    raw: &RawTarget,
    path: &[String],
    nested: bool,
    pr: &mut Problems,
) -> Option<Target> {
    let at = |k: &str| sub(path, k);
    let duration = |s: &str, p: &[String], pr: &mut Problems| {
        parse_duration(s).map_err(|m| pr.push(p, m)).ok()
    };
    match raw {
        RawTarget::Text(s) => {
            let t = s.trim().to_ascii_lowercase();
            if matches!(t.as_str(), "best effort" | "best-effort" | "none") {
                Some(Target::BestEffort)
            } else {
                duration(s, path, pr).map(Target::BusinessTime)
            }
        }
        RawTarget::Table(t) => {
            let kinds = [
                t.business_time.is_some(),
                t.wall_clock.is_some(),
                t.business_days.is_some(),
                t.inside_hours.is_some() || t.outside_hours.is_some(),
            ];
            let n = kinds.iter().filter(|k| **k).count();
            let one_of =
                "business_time, wall_clock, business_days, or inside_hours with outside_hours";
            if n != 1 {
                pr.push(
                    path,
                    if n == 0 {
                        format!("empty target: give one of {one_of}")
                    } else {
                        format!("give only one of {one_of}")
                    },
                );
                return None;
            }
            if let Some(s) = &t.business_time {
                return duration(s, &at("business_time"), pr).map(Target::BusinessTime);
            }
            if let Some(s) = &t.wall_clock {
                return duration(s, &at("wall_clock"), pr).map(Target::WallClock);
            }
            if let Some(n) = t.business_days {
                return match u32::try_from(n) {
                    Ok(n) if n >= 1 && i64::from(n) <= MAX_BUSINESS_DAYS => {
                        Some(Target::BusinessDays(n))
                    }
                    _ => {
                        pr.push(
                            &at("business_days"),
                            format!("{n} business days: give 1 to {MAX_BUSINESS_DAYS}"),
                        );
                        None
                    }
                };
            }
            if nested {
                pr.push(path, "inside_hours/outside_hours cannot be nested");
                return None;
            }
            let side = |key: &str, v: &Option<RawTarget>, pr: &mut Problems| match v {
                Some(v) => check_target(v, &at(key), true, pr),
                None => {
                    pr.push(path, format!("{key} is missing"));
                    None
                }
            };
            let inside = side("inside_hours", &t.inside_hours, pr);
            let outside = side("outside_hours", &t.outside_hours, pr);
            Some(Target::ByReception {
                inside: Box::new(inside?),
                outside: Box::new(outside?),
            })
        }
    }
}

/// Checks a plan's rules and resolves them into one cell per category x
/// priority.
fn check_rules(
    plan_path: &[&str],
    rp: &RawPlan,
    has_calendar: bool,
    priorities: &[String],
    categories: &[String],
    pr: &mut Problems,
) -> Vec<Targets> {
    struct Rule {
        index: usize,
        category: Option<usize>,
        priority: Option<usize>,
        first_response: Option<Target>,
        resolution: Option<Target>,
    }
    let mut rules = Vec::new();
    let mut seen: BTreeSet<(Option<usize>, Option<usize>, &str)> = BTreeSet::new();
    for (index, r) in rp.targets.iter().enumerate() {
        let i = index.to_string();
        let path = [plan_path, &["targets", &i]].concat();
        let at = |k: &str| sub(&path, k);
        let category = match &r.category {
            None => Some(None),
            Some(c) => match categories.iter().position(|x| x == c) {
                Some(p) => Some(Some(p)),
                None => {
                    pr.push(
                        &at("category"),
                        format!("unknown category {c:?}; {}", known(categories)),
                    );
                    None
                }
            },
        };
        let priority = match &r.priority {
            None => Some(None),
            Some(p) => match priorities.iter().position(|x| x == p) {
                Some(x) => Some(Some(x)),
                None => {
                    pr.push(
                        &at("priority"),
                        format!("unknown priority {p:?}; {}", known(priorities)),
                    );
                    None
                }
            },
        };
        if r.first_response.is_none() && r.resolution.is_none() {
            pr.push(&path, "sets neither first_response nor resolution");
        }
        let mut clock = |key: &'static str, t: &Option<RawTarget>| -> Option<Target> {
            let t = check_target(t.as_ref()?, &at(key), false, pr)?;
            if t.needs_calendar() && !has_calendar {
                pr.push(
                    &at(key),
                    "this target counts opening hours but the plan has no `calendar`",
                );
            }
            Some(t)
        };
        let first_response = clock("first_response", &r.first_response);
        let resolution = clock("resolution", &r.resolution);
        let (Some(category), Some(priority)) = (category, priority) else {
            continue;
        };
        for (key, set) in [
            ("first_response", r.first_response.is_some()),
            ("resolution", r.resolution.is_some()),
        ] {
            if set && !seen.insert((category, priority, key)) {
                pr.push(
                    &at(key),
                    "an earlier rule with the same category and priority already sets it",
                );
            }
        }
        rules.push(Rule {
            index,
            category,
            priority,
            first_response,
            resolution,
        });
    }

    let (ncat, nprio) = (categories.len().max(1), priorities.len().max(1));
    let mut cells = vec![Targets::default(); ncat * nprio];
    let mut conflicts = BTreeSet::new();
    for c in 0..ncat {
        for p in 0..nprio {
            let applies =
                |r: &&Rule| r.category.is_none_or(|x| x == c) && r.priority.is_none_or(|x| x == p);
            for field in 0..2 {
                let get = |r: &Rule| {
                    if field == 0 {
                        r.first_response.clone()
                    } else {
                        r.resolution.clone()
                    }
                };
                let set: Vec<&Rule> = rules
                    .iter()
                    .filter(applies)
                    .filter(|r| get(r).is_some())
                    .collect();
                let pick = |cat: bool, prio: bool| {
                    set.iter()
                        .find(|r| r.category.is_some() == cat && r.priority.is_some() == prio)
                };
                let chosen = match (pick(true, true), pick(false, true), pick(true, false)) {
                    (Some(r), _, _) => Some(r),
                    (None, Some(a), Some(b)) if get(a) != get(b) => {
                        conflicts.insert((b.index.min(a.index), b.index.max(a.index), field));
                        None
                    }
                    (None, a, b) => a.or(b).or_else(|| pick(false, false)),
                };
                if let (Some(t), Some(cell)) =
                    (chosen.and_then(|r| get(r)), cells.get_mut(c * nprio + p))
                {
                    if field == 0 {
                        cell.first_response = t;
                    } else {
                        cell.resolution = t;
                    }
                }
            }
        }
    }
    for (a, b, field) in conflicts {
        let key = if field == 0 {
            "first_response"
        } else {
            "resolution"
        };
        pr.push(
            &[plan_path, &["targets", &b.to_string(), key]].concat(),
            format!(
                "rule {a} (by priority or category) and rule {b} (by the other) both apply to \
                 one category and priority; add a rule naming both"
            ),
        );
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;
    use proptest::prelude::*;

    const ZMANDA: &str = include_str!("../../config/examples/zmanda.toml");
    const METEORAGE: &str = include_str!("../../config/examples/meteorage.toml");
    const CIRRUS: &str = include_str!("../../config/examples/cirrus-shield.toml");
    const CLOUD_AVENUE: &str = include_str!("../../config/examples/cloud-avenue.toml");
    const CEGEDIM: &str = include_str!("../../config/examples/cegedim.toml");
    const EXAMPLES: [(&str, &str); 5] = [
        ("zmanda", ZMANDA),
        ("meteorage", METEORAGE),
        ("cirrus-shield", CIRRUS),
        ("cloud-avenue", CLOUD_AVENUE),
        ("cegedim", CEGEDIM),
    ];

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Part {
        priorities: Vec<String>,
        categories: Vec<String>,
        sla: RawSla,
    }

    /// The SLA sections of a full example config.
    fn part(src: &str) -> Part {
        let mut t: toml::Table = toml::from_str(src).unwrap();
        t.retain(|k, _| matches!(k, "priorities" | "categories" | "sla"));
        // Through text: a Value loses TOML dates on the way to a struct.
        toml::from_str(&toml::to_string(&t).unwrap()).unwrap()
    }

    fn model(src: &str) -> SlaModel {
        let p = part(src);
        SlaModel::from_raw(&p.sla, &p.priorities, &p.categories).unwrap()
    }

    fn problems(src: &str) -> Vec<Problem> {
        let p = part(src);
        SlaModel::from_raw(&p.sla, &p.priorities, &p.categories).unwrap_err()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn opt(s: &str) -> Option<DateTime<Utc>> {
        (s != "-").then(|| utc(s))
    }

    /// Runs a table of cases, one a line: plan, priority, category, customer
    /// zone, received, first response due, resolution due; "-" for none.
    /// Lines starting with '#' are comments.
    fn run(src: &str, table: &str) {
        let m = model(src);
        let dash = |s: &str| s != "-";
        let mut rows = 0;
        for line in table.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let cols: Vec<&str> = line.split_whitespace().collect();
            let [plan, priority, category, zone, received, first, resolution] = cols[..] else {
                panic!("bad case line {line:?}");
            };
            let q = DueQuery {
                plan,
                priority: dash(priority).then_some(priority),
                category: dash(category).then_some(category),
                timezone: dash(zone).then(|| zone.parse().unwrap()),
                received: utc(received),
            };
            let got = m.due(&q).unwrap();
            let want = Due {
                first_response: opt(first),
                resolution: opt(resolution),
            };
            assert_eq!(got, want, "{line}");
            rows += 1;
        }
        assert!(rows > 0);
    }

    #[test]
    fn example_policies_check() {
        for (name, src) in EXAMPLES {
            let p = part(src);
            if let Err(ps) = SlaModel::from_raw(&p.sla, &p.priorities, &p.categories) {
                panic!("{name}: {ps:#?}");
            }
        }
    }

    #[test]
    fn warnings_count_the_target_the_way_it_counts() {
        let m = model(ZMANDA);
        let q = |plan, received| DueQuery {
            plan,
            priority: Some("P2"),
            category: None,
            timezone: None,
            received: utc(received),
        };
        // Standard P2, 3 business hours from Friday 16:00 Paris: due Monday
        // 10:00; 80% (2h24m of open time) falls on Monday 09:24, not over
        // the weekend.
        let fri = q("standard", "2026-11-20T15:00:00Z");
        let due = m.due(&fri).unwrap().first_response.unwrap();
        assert_eq!(due, utc("2026-11-23T09:00:00Z"));
        let warn = m.warning_at(&fri, Clock::FirstResponse, due, 0.8).unwrap();
        assert_eq!(warn, Some(utc("2026-11-23T08:24:00Z")));
        // Premium P2, 60 minutes wall clock: 48 minutes.
        let p = q("premium", "2026-11-21T10:00:00Z");
        let due = m.due(&p).unwrap().first_response.unwrap();
        let warn = m.warning_at(&p, Clock::FirstResponse, due, 0.8).unwrap();
        assert_eq!(warn, Some(utc("2026-11-21T10:48:00Z")));
        // Best effort: nothing to warn about.
        let c = q("community", "2026-11-21T10:00:00Z");
        assert_eq!(m.warning_at(&c, Clock::Resolution, due, 0.8).unwrap(), None);
    }

    #[test]
    fn zmanda_table() {
        run(
            ZMANDA,
            r#"
            # plan      priority category zone             received                  first response            resolution
            # Standard: business time, Mon-Fri 08:00-17:00 Paris by default.
              standard  P1       -        -                2026-03-02T10:00:00+01:00 2026-03-02T11:00:00+01:00 -
              standard  P1       -        -                2026-03-06T16:59:00+01:00 2026-03-09T08:59:00+01:00 -
              standard  P1       -        -                2026-03-06T16:00:00+01:00 2026-03-06T17:00:00+01:00 -
              standard  P1       -        -                2026-03-06T17:00:00+01:00 2026-03-09T09:00:00+01:00 -
              standard  P1       -        -                2026-03-07T12:00:00+01:00 2026-03-09T09:00:00+01:00 -
              standard  P2       -        -                2026-03-27T16:00:00+01:00 2026-03-30T10:00:00+02:00 -
              standard  P2       -        -                2026-10-23T16:00:00+02:00 2026-10-26T10:00:00+01:00 -
              standard  P3       -        -                2026-03-02T12:00:00+01:00 2026-03-03T11:00:00+01:00 -
              standard  P4       -        -                2026-03-02T08:00:00+01:00 2026-03-04T14:00:00+01:00 -
            # No priority: the lowest, P4.
              standard  -        -        -                2026-03-02T08:00:00+01:00 2026-03-04T14:00:00+01:00 -
            # No holidays in this calendar (the policy names none): 14 July counts.
              standard  P1       -        -                2026-07-14T10:00:00+02:00 2026-07-14T11:00:00+02:00 -
            # A New York customer: New York hours, across the US DST change (8 March).
              standard  P1       -        America/New_York 2026-03-02T16:30:00-05:00 2026-03-03T08:30:00-05:00 -
              standard  P1       -        America/New_York 2026-03-06T16:30:00-05:00 2026-03-09T08:30:00-04:00 -
            # Premium: wall clock, weekends and nights included.
              premium   P1       -        -                2026-03-07T03:00:00Z      2026-03-07T03:15:00Z      -
              premium   P2       -        America/New_York 2026-03-29T00:30:00Z      2026-03-29T01:30:00Z      -
              premium   P3       -        -                2026-12-24T22:00:00Z      2026-12-25T02:00:00Z      -
              premium   P4       -        -                2026-10-25T00:30:00Z      2026-10-25T08:30:00Z      -
            # Community: best effort.
              community P1       -        -                2026-03-02T10:00:00+01:00 -                         -
            "#,
        );
    }

    #[test]
    fn module_doc_example_checks() {
        let doc: String = include_str!("sla.rs")
            .lines()
            .skip_while(|l| *l != "//! ```toml")
            .skip(1)
            .take_while(|l| *l != "//! ```")
            .map(|l| l.trim_start_matches("//!").trim_start_matches(' '))
            .collect::<Vec<_>>()
            .join("\n");
        let src = format!(
            "priorities = [\"P1\", \"P2\", \"P3\"]\ncategories = [\"incident\", \"request\"]\n{doc}"
        );
        let m = model(&src);
        // The customer's zone: New York hours, trial until New York midnight.
        let c = m.customer_for("dev@eu.acme.example", utc("2026-07-01T03:59:00Z"));
        assert_eq!((c.plan.as_str(), c.timezone), ("premium", Some(New_York)));
        let c = m.customer_for("dev@acme.example", utc("2026-07-01T04:00:00Z"));
        assert_eq!(c.plan, "standard");
        run(
            &src,
            r#"
            # plan    priority category zone             received                  first response            resolution
              standard P1      incident America/New_York 2026-03-06T16:30:00-05:00 2026-03-07T09:30:00-05:00 2026-03-09T16:30:00-04:00
              standard P1      request  -                2026-03-06T16:30:00+01:00 2026-03-06T20:30:00+01:00 2026-03-09T16:30:00+01:00
              standard P2      -        -                2026-03-07T13:00:00+01:00 2026-03-08T01:00:00+01:00 -
              standard P3      -        -                2026-12-23T10:00:00+01:00 2027-01-02T10:00:00+01:00 -
              premium  -       -        -                2026-03-29T01:00:00+01:00 2026-03-29T01:15:00+01:00 2026-03-29T03:30:00+02:00
            "#,
        );
    }

    #[test]
    fn zmanda_customers() {
        let m = model(ZMANDA);
        let now = utc("2026-03-02T10:00:00Z");
        let c = m.customer_for("Someone@Acme-NYC.example", now);
        assert_eq!(c.customer.as_deref(), Some("example-nyc"));
        assert_eq!((c.plan.as_str(), c.timezone), ("standard", Some(New_York)));
        // Subdomains match their domain.
        let c = m.customer_for("ops@eu.acme-nyc.example", now);
        assert_eq!(c.customer.as_deref(), Some("example-nyc"));
        // The exact address wins over the domain.
        let c = m.customer_for(" CIO@acme-nyc.example ", now);
        assert_eq!(
            (c.customer.as_deref(), c.plan.as_str()),
            (Some("example-cio"), "premium")
        );
        // Unknown senders, and garbage, get the default plan.
        for s in ["someone@elsewhere.example", "", "not an address", "@", "a@"] {
            let c = m.customer_for(s, now);
            assert_eq!(
                c,
                CustomerMatch {
                    customer: None,
                    plan: "community".into(),
                    timezone: None
                },
                "{s:?}"
            );
        }
        // Trial: premium through 30 June 2026 (UTC), then community.
        let trial = |now: &str| m.customer_for("dev@trial.example", utc(now)).plan;
        assert_eq!(trial("2026-06-30T23:59:59Z"), "premium");
        assert_eq!(trial("2026-07-01T00:00:00Z"), "community");
        assert_eq!(trial("2027-01-01T00:00:00Z"), "community");
    }

    #[test]
    fn meteorage_table() {
        run(
            METEORAGE,
            r#"
            # plan     priority category   zone received                  first response            resolution
            # Inside hours: 1h / 2h wall clock.
              standard high     technical  -    2026-03-02T10:00:00+01:00 2026-03-02T11:00:00+01:00 -
              standard average  technical  -    2026-03-02T10:00:00+01:00 2026-03-02T12:00:00+01:00 -
            # The minute before closing is inside: due after closing.
              standard high     technical  -    2026-03-02T16:59:00+01:00 2026-03-02T17:59:00+01:00 -
            # At closing it is outside: 12h.
              standard high     technical  -    2026-03-02T17:00:00+01:00 2026-03-03T05:00:00+01:00 -
            # Weekend.
              standard high     technical  -    2026-03-07T10:00:00+01:00 2026-03-07T22:00:00+01:00 -
              standard low      technical  -    2026-03-07T10:00:00+01:00 2026-03-08T10:00:00+01:00 -
            # 14 July is a public holiday: outside hours.
              standard high     technical  -    2026-07-14T10:00:00+02:00 2026-07-14T22:00:00+02:00 -
            # Ascension 2026 (14 May): 24h, capped by "2h after Friday's opening".
              standard average  technical  -    2026-05-14T09:00:00+02:00 2026-05-15T09:00:00+02:00 -
            # Easter Monday 2026 (6 April): 24h and the cap meet.
              standard low      technical  -    2026-04-06T10:00:00+02:00 2026-04-07T10:00:00+02:00 -
            # Early Monday: never later than a ticket received at 08:00.
              standard average  technical  -    2026-03-02T06:00:00+01:00 2026-03-02T10:00:00+01:00 -
            # DST weekends: Monday's opening is in summer (winter) time.
              standard high     technical  -    2026-03-30T07:30:00+02:00 2026-03-30T09:00:00+02:00 -
              standard high     technical  -    2026-10-26T07:30:00+01:00 2026-10-26T09:00:00+01:00 -
              standard high     technical  -    2026-03-28T23:30:00+01:00 2026-03-29T12:30:00+02:00 -
            # Christmas Day.
              standard average  technical  -    2026-12-25T10:00:00+01:00 2026-12-26T10:00:00+01:00 -
            # Other categories: no SLA.
              standard high     question   -    2026-03-02T10:00:00+01:00 -                         -
              standard high     commercial -    2026-03-02T10:00:00+01:00 -                         -
            # Defaults: technical, low.
              standard -        -          -    2026-03-02T10:00:00+01:00 2026-03-02T12:00:00+01:00 -
            "#,
        );
    }

    #[test]
    fn cirrus_shield_table() {
        run(
            CIRRUS,
            r#"
            # plan     priority category zone received                  first response            resolution
              payant   critique -        -    2026-03-02T10:00:00+01:00 2026-03-04T10:00:00+01:00 -
              premium  mineure  -        -    2026-03-06T17:59:00+01:00 2026-03-09T17:59:00+01:00 -
            # Received at closing: the clock starts Monday 09:00.
              premium  majeure  -        -    2026-03-06T18:00:00+01:00 2026-03-10T09:00:00+01:00 -
              payant   -        -        -    2026-03-07T12:00:00+01:00 2026-03-11T09:00:00+01:00 -
            # Ascension, Easter Monday, 14 July skipped.
              payant   majeure  -        -    2026-05-13T15:00:00+02:00 2026-05-18T15:00:00+02:00 -
              payant   majeure  -        -    2026-04-03T10:00:00+02:00 2026-04-08T10:00:00+02:00 -
              premium  critique -        -    2026-07-13T11:00:00+02:00 2026-07-15T11:00:00+02:00 -
            # DST: same local time.
              payant   majeure  -        -    2026-03-27T10:00:00+01:00 2026-03-31T10:00:00+02:00 -
              premium  majeure  -        -    2026-10-23T10:00:00+02:00 2026-10-26T10:00:00+01:00 -
            # A holiday on a Saturday (15 August) shifts nothing.
              payant   mineure  -        -    2026-08-14T10:00:00+02:00 2026-08-18T10:00:00+02:00 -
            # Christmas and New Year.
              premium  critique -        -    2026-12-24T10:00:00+01:00 2026-12-28T10:00:00+01:00 -
              payant   critique -        -    2026-12-31T10:00:00+01:00 2027-01-05T10:00:00+01:00 -
              gratuite critique -        -    2026-03-02T10:00:00+01:00 -                         -
            "#,
        );
    }

    #[test]
    fn cloud_avenue_table() {
        run(
            CLOUD_AVENUE,
            r#"
            # plan     priority category zone received             first response resolution
              gold     P1       -        -    2026-03-07T23:00:00Z -              2026-03-08T03:00:00Z
              silver   P1       -        -    2026-12-25T10:00:00Z -              2026-12-25T18:00:00Z
            # Wall clock across the DST change: 8 real hours.
              bronze   P1       -        -    2026-03-29T00:30:00Z -              2026-03-29T08:30:00Z
              bronze   P1       -        -    2026-10-25T00:30:00Z -              2026-10-25T08:30:00Z
              gold     P2       -        -    2026-03-07T23:00:00Z -              -
              standard P1       -        -    2026-03-07T23:00:00Z -              -
            "#,
        );
    }

    #[test]
    fn cegedim_table() {
        run(
            CEGEDIM,
            r#"
            # plan     priority           category zone received                  first response            resolution
            # Requests: 7 business days, whatever the priority.
              standard -                  request  -    2026-12-21T10:00:00+01:00 -                         2026-12-31T10:00:00+01:00
              standard service-disruption request  -    2026-07-09T14:00:00+02:00 -                         2026-07-21T14:00:00+02:00
            # Incidents.
              standard degradation        incident -    2026-10-23T16:00:00+02:00 2026-10-26T11:00:00+01:00 2026-10-27T16:00:00+01:00
              standard service-disruption incident -    2026-03-07T12:00:00Z      2026-03-07T13:00:00Z      2026-03-07T16:00:00Z
              standard no-impact          incident -    2026-05-13T18:30:00+02:00 2026-05-18T09:00:00+02:00 2026-05-27T09:00:00+02:00
            # Defaults: incident, no-impact.
              standard -                  -        -    2026-03-02T10:00:00+01:00 2026-03-03T10:00:00+01:00 2026-03-11T10:00:00+01:00
            "#,
        );
    }

    #[test]
    fn unknown_names_are_distinct_errors() {
        let m = model(METEORAGE);
        let q = |plan, priority, category| DueQuery {
            plan,
            priority,
            category,
            timezone: None,
            received: utc("2026-03-02T10:00:00Z"),
        };
        assert_eq!(
            m.due(&q("gold", None, None)),
            Err(SlaError::UnknownPlan("gold".into()))
        );
        assert_eq!(
            m.due(&q("standard", Some("P1"), None)),
            Err(SlaError::UnknownPriority("P1".into()))
        );
        assert_eq!(
            m.due(&q("standard", None, Some("billing"))),
            Err(SlaError::UnknownCategory("billing".into()))
        );
        // No categories configured: any category is unknown.
        let z = model(ZMANDA);
        assert_eq!(
            z.due(&q("standard", None, Some("incident"))),
            Err(SlaError::UnknownCategory("incident".into()))
        );
        assert!(z.has_plan("premium") && !z.has_plan("gold"));
        assert_eq!(z.plan_zone("standard", Some(New_York)), Some(New_York));
        assert_eq!(z.plan_zone("premium", Some(New_York)), None);
        assert_eq!(z.display_zone("premium", None), Tz::UTC);
        assert_eq!(z.display_zone("standard", None), Tz::Europe__Paris);
        assert_eq!(z.display_zone("premium", Some(New_York)), New_York);
    }

    const BASE: &str = r#"
priorities = ["P1", "P2"]
categories = ["incident", "request"]
[sla]
default_plan = "std"
[sla.calendars.office]
timezone = "Europe/Paris"
hours = { mon-fri = "09:00-18:00" }
[sla.plans.std]
calendar = "office"
targets = [{ priority = "P1", first_response = "1h" }]
"#;

    fn paths(ps: &[Problem]) -> Vec<String> {
        ps.iter().map(|p| p.path.join(".")).collect()
    }

    #[test]
    fn rejects_bad_references_with_their_path() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "[sla.plans.x]\ntargets = [{ priority = \"P9\", first_response = \"1h\" }]\ncalendar = \"office\"",
                "sla.plans.x.targets.0.priority",
                "unknown priority",
            ),
            (
                "[sla.plans.x]\ntargets = [{ category = \"billing\", first_response = \"1h\" }]\ncalendar = \"office\"",
                "sla.plans.x.targets.0.category",
                "unknown category",
            ),
            (
                "[sla.plans.x]\ncalendar = \"nope\"",
                "sla.plans.x.calendar",
                "unknown calendar",
            ),
            (
                "[sla.customers.c]\ndomains = [\"c.example\"]\nplan = \"gold\"",
                "sla.customers.c.plan",
                "unknown plan",
            ),
            (
                "[sla.customers.c]\ndomains = [\"c.example\"]\nplan = \"std\"\ntimezone = \"Europe/Pariss\"",
                "sla.customers.c.timezone",
                "unknown time zone",
            ),
            (
                "[sla.calendars.c]\ntimezone = \"Mars/Olympus\"\nhours = { mon = \"09:00-10:00\" }",
                "sla.calendars.c.timezone",
                "unknown time zone",
            ),
            (
                "[sla.calendars.c]\ntimezone = \"UTC\"\nhours = { mon-fri = \"9-18\" }",
                "sla.calendars.c.hours.mon-fri",
                "not a time of day",
            ),
            (
                "[sla.calendars.c]\ntimezone = \"UTC\"\nhours = { funday = \"09:00-18:00\" }",
                "sla.calendars.c.hours.funday",
                "not a day",
            ),
            (
                "[sla.calendars.c]\ntimezone = \"UTC\"\nhours = { mon-fri = \"09:00-18:00\", fri = \"09:00-12:00\" }",
                "sla.calendars.c.hours.mon-fri",
                "already given",
            ),
            (
                "[sla.calendars.c]\ntimezone = \"UTC\"\nhours = { mon = \"closed\" }",
                "sla.calendars.c.hours",
                "no opening hours",
            ),
            (
                "[sla.calendars.c]\ntimezone = \"UTC\"\nhours = { mon = \"09:00-10:00\" }\nholiday_sets = [\"xx\"]",
                "sla.calendars.c.holiday_sets.0",
                "unknown holiday set",
            ),
            (
                "[sla.calendars.c]\ntimezone = \"UTC\"\nhours = { mon = \"09:00-10:00\" }\nholidays = [\"12-25\", \"12-32\"]",
                "sla.calendars.c.holidays.1",
                "not a holiday rule",
            ),
            (
                "[sla.plans.x]\ncalendar = \"office\"\ntargets = [{ first_response = \"2 weeks\" }]",
                "sla.plans.x.targets.0.first_response",
                "unknown unit",
            ),
            (
                "[sla.plans.x]\ntargets = [{ first_response = { wall_clock = \"0m\" } }]",
                "sla.plans.x.targets.0.first_response.wall_clock",
                "zero",
            ),
            (
                "[sla.plans.x]\ncalendar = \"office\"\ntargets = [{ resolution = { business_days = 0 } }]",
                "sla.plans.x.targets.0.resolution.business_days",
                "business days",
            ),
            (
                "[sla.plans.x]\ntargets = [{ first_response = \"1h\" }]",
                "sla.plans.x.targets.0.first_response",
                "no `calendar`",
            ),
            (
                "[sla.plans.x]\ncalendar = \"office\"\ntargets = [{ first_response = { wall_clock = \"1h\", business_days = 1 } }]",
                "sla.plans.x.targets.0.first_response",
                "only one",
            ),
            (
                "[sla.plans.x]\ncalendar = \"office\"\ntargets = [{ first_response = { inside_hours = \"1h\" } }]",
                "sla.plans.x.targets.0.first_response",
                "outside_hours is missing",
            ),
            (
                "[sla.plans.x]\ncalendar = \"office\"\ntargets = [{ priority = \"P1\", first_response = \"1h\" }, { category = \"request\", first_response = \"2h\" }]",
                "sla.plans.x.targets.1.first_response",
                "add a rule naming both",
            ),
            (
                "[sla.plans.x]\ncalendar = \"office\"\ntargets = [{ priority = \"P1\", first_response = \"1h\" }, { priority = \"P1\", first_response = \"2h\" }]",
                "sla.plans.x.targets.1.first_response",
                "earlier rule",
            ),
            (
                "[sla.customers.a]\naddresses = [\"x@a.example\"]\nplan = \"std\"\n[sla.customers.b]\naddresses = [\"X@a.example\"]\nplan = \"std\"",
                "sla.customers.b.addresses.0",
                "also listed by customer \"a\"",
            ),
            (
                "[sla.customers.a]\nplan = \"std\"\nuntil = 12:00:00",
                "sla.customers.a.until",
                "give a date",
            ),
        ];
        for (extra, path, message) in cases {
            let ps = problems(&format!("{BASE}\n{extra}"));
            assert!(
                ps.iter()
                    .any(|p| p.path.join(".") == *path && p.message.contains(message)),
                "{extra}\n expected {path}: {message}\n got {ps:#?}"
            );
        }
        // A bad default plan.
        let ps = problems(&BASE.replace("default_plan = \"std\"", "default_plan = \"gold\""));
        assert_eq!(paths(&ps), ["sla.default_plan"]);
    }

    #[test]
    fn reports_every_problem_at_once() {
        let src = format!(
            "{BASE}\n[sla.plans.x]\ncalendar = \"nope\"\ntargets = [{{ priority = \"P9\", first_response = \"soon\" }}]\n\
             [sla.customers.c]\ndomains = [\"c.example\"]\nplan = \"gold\"\ntimezone = \"Nowhere\""
        );
        let ps = problems(&src);
        assert_eq!(
            paths(&ps),
            [
                "sla.plans.x.calendar",
                "sla.plans.x.targets.0.priority",
                "sla.plans.x.targets.0.first_response",
                "sla.customers.c.plan",
                "sla.customers.c.timezone",
            ]
        );
    }

    #[test]
    fn unknown_keys_are_rejected_when_parsing() {
        for src in [
            "[sla]\ndefault_plan = \"a\"\ndefualt = 1",
            "[sla]\ndefault_plan = \"a\"\n[sla.plans.a]\ncalender = \"x\"",
            "[sla]\ndefault_plan = \"a\"\n[sla.plans.a]\ntargets = [{ first_respons = \"1h\" }]",
            "[sla]\ndefault_plan = \"a\"\n[sla.plans.a]\ntargets = [{ first_response = { wallclock = \"1h\" } }]",
            "[sla]\ndefault_plan = \"a\"\n[sla.plans.a]\ntargets = [{ first_response = 3 }]",
        ] {
            #[derive(Deserialize, Debug)]
            #[allow(dead_code)]
            struct Doc {
                sla: RawSla,
            }
            assert!(toml::from_str::<Doc>(src).is_err(), "{src}");
        }
    }

    #[test]
    fn durations() {
        let m = TimeDelta::minutes;
        for (s, d) in [
            ("15m", m(15)),
            ("1h", m(60)),
            ("90min", m(90)),
            ("1h30m", m(90)),
            ("2d", m(2880)),
            ("15 mins", m(15)),
            ("1 hour 5 minutes", m(65)),
            ("60mins", m(60)),
        ] {
            assert_eq!(parse_duration(s), Ok(d), "{s}");
        }
        for s in [
            "",
            "15",
            "h",
            "1.5h",
            "0h",
            "1w",
            "367d",
            "99999999999999999999m",
            "-1h",
            "1h½",
        ] {
            assert!(parse_duration(s).is_err(), "{s:?}");
        }
    }

    // ------------------------------------------------------------ proptests

    fn examples() -> Vec<(SlaModel, Vec<String>, Vec<String>)> {
        EXAMPLES
            .iter()
            .map(|(_, src)| {
                let p = part(src);
                let m = SlaModel::from_raw(&p.sla, &p.priorities, &p.categories).unwrap();
                (m, p.priorities, p.categories)
            })
            .collect()
    }

    /// A query on one of the example models, by indexes into its names.
    fn query<'a>(
        ex: &'a (SlaModel, Vec<String>, Vec<String>),
        pick: (usize, usize, usize, usize),
        received: DateTime<Utc>,
    ) -> DueQuery<'a> {
        let (m, prios, cats) = ex;
        let plans: Vec<&str> = m.plan_names().collect();
        let zones = [
            None,
            Some(New_York),
            Some(Tz::Asia__Kolkata),
            Some(Tz::Australia__Sydney),
        ];
        DueQuery {
            plan: plans[pick.0 % plans.len()],
            priority: prios.get(pick.1 % (prios.len() + 1)).map(String::as_str),
            category: cats.get(pick.2 % (cats.len() + 1)).map(String::as_str),
            timezone: zones[pick.3 % zones.len()],
            received,
        }
    }

    fn instant() -> impl Strategy<Value = DateTime<Utc>> {
        // 2025-01-01 .. 2028-01-01, to the second.
        (1_735_689_600i64..1_830_297_600).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap())
    }

    fn calendar() -> impl Strategy<Value = Calendar> {
        let zones = prop::sample::select(vec![
            Tz::Europe__Paris,
            Tz::America__New_York,
            Tz::Australia__Sydney,
            Tz::Asia__Kolkata,
            Tz::UTC,
        ]);
        let spans = prop::sample::select(vec![
            "08:00-17:00",
            "09:00-12:00, 13:00-18:00",
            "00:00-24:00",
            "01:30-02:45, 22:00-24:00",
            "closed",
        ]);
        (
            zones,
            prop::collection::vec(spans, 7),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(zone, days, fr, always)| {
                if always {
                    return Calendar::always_open(zone);
                }
                let mut w = WeeklyHours::default();
                for (i, s) in days.iter().enumerate() {
                    w.set(Weekday::try_from(i as u8).unwrap(), parse_spans(s).unwrap());
                }
                if w.is_closed() {
                    w.set(Weekday::Wed, parse_spans("10:00-11:00").unwrap());
                }
                let mut h = Holidays::default();
                if fr {
                    for r in builtin_holiday_set("fr").unwrap() {
                        h.add(HolidayRule::parse(r).unwrap());
                    }
                    h.add(HolidayRule::parse("12-24..12-31").unwrap());
                }
                Calendar::new(zone, w, h)
            })
    }

    use chrono::Weekday;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn due_is_never_before_reception(
            ex in 0usize..5, pick in any::<(usize, usize, usize, usize)>(), t in instant()
        ) {
            let all = examples();
            let q = query(&all[ex], pick, t);
            let d = all[ex].0.due(&q).unwrap();
            for x in [d.first_response, d.resolution].into_iter().flatten() {
                prop_assert!(x >= t, "{q:?} -> {x}");
            }
        }

        #[test]
        fn any_instant_and_any_text_never_panic(
            ex in 0usize..5, pick in any::<(usize, usize, usize, usize)>(),
            secs in -8_300_000_000_000i64..8_300_000_000_000,
            chars in prop::collection::vec(
                prop::sample::select("0123456789 hmdinours.\u{e9}\u{bd}".chars().collect::<Vec<_>>()),
                0..16,
            ),
        ) {
            let all = examples();
            if let Some(t) = DateTime::from_timestamp(secs, 0) {
                let _ = all[ex].0.due(&query(&all[ex], pick, t));
                let _ = all[ex].0.customer_for("a@trial.example", t);
            }
            let _ = parse_duration(&chars.into_iter().collect::<String>());
        }

        #[test]
        fn later_reception_is_never_due_earlier(
            ex in 0usize..5, pick in any::<(usize, usize, usize, usize)>(),
            t in instant(), gap in 0i64..(10 * 86_400)
        ) {
            let all = examples();
            let t2 = t + TimeDelta::seconds(gap);
            let (q1, q2) = (query(&all[ex], pick, t), query(&all[ex], pick, t2));
            let (d1, d2) = (all[ex].0.due(&q1).unwrap(), all[ex].0.due(&q2).unwrap());
            for (a, b) in [(d1.first_response, d2.first_response), (d1.resolution, d2.resolution)] {
                if let (Some(a), Some(b)) = (a, b) {
                    prop_assert!(a <= b, "{q1:?} -> {a}, {q2:?} -> {b}");
                }
            }
        }

        #[test]
        fn business_time_counts_exactly_the_target(
            cal in calendar(), t in instant(), minutes in 1i64..(40 * 60)
        ) {
            let zone = cal.zone;
            let d = TimeDelta::minutes(minutes);
            let due = cal.add_business_time(t, d, zone).unwrap();
            prop_assert!(due >= t);
            prop_assert_eq!(cal.open_time_between(t, due, zone), d);
            // The earliest such instant.
            let before = due - TimeDelta::seconds(1);
            prop_assert!(cal.open_time_between(t, before, zone) < d);
            // Business days land on a business day, at or after reception.
            let bd = cal.add_business_days(t, 1 + (minutes % 5) as u32, zone).unwrap();
            prop_assert!(bd > t);
            prop_assert!(cal.is_business_day(bd.with_timezone(&zone).date_naive()));
        }

        #[test]
        fn wall_clock_ignores_the_calendar(
            cal in calendar(), t in instant(), minutes in 1i64..(20 * 24 * 60)
        ) {
            let d = TimeDelta::minutes(minutes);
            let plan = Plan {
                calendar: Some(cal),
                cells: vec![Targets { first_response: Target::WallClock(d), resolution: Target::BestEffort }],
            };
            let m = SlaModel {
                priorities: vec![],
                categories: vec![],
                default_plan: "p".into(),
                plans: BTreeMap::from([("p".to_owned(), plan)]),
                customers: vec![],
                by_address: HashMap::new(),
                by_domain: HashMap::new(),
            };
            let q = DueQuery { plan: "p", priority: None, category: None, timezone: Some(New_York), received: t };
            prop_assert_eq!(m.due(&q).unwrap(), Due { first_response: Some(t + d), resolution: None });
        }
    }
}
