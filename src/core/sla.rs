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
//! default_plan = "standard"
//!
//! [sla.calendars.office]
//! timezone = "Europe/Paris"
//! follow_customer_timezone = true   # hours in the customer's zone when known
//! holiday_sets = ["fr"]
//! holidays = ["12-24..12-31", "2026-05-15", "easter-2"]
//! hours = { mon-fri = "08:00-12:00, 13:00-17:00" }
//!
//! [sla.plans.standard]
//! calendar = "office"
//! targets = [
//!   { priority = "P1", first_response = "1h", resolution = { business_days = 2 } },
//!   { category = "request", first_response = { wall_clock = "4h" } },
//!   { priority = "P2", first_response = { inside_hours = "1h", outside_hours = { wall_clock = "12h" } } },
//! ]
//!
//! [sla.customers.acme]
//! domains = ["acme.example"]
//! addresses = ["boss@partner.example"]
//! plan = "premium"
//! until = 2026-06-30      # trial: premium through 30 June, then `after`
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
    s.trim().parse::<Tz>().map_err(|_| {
        format!("unknown time zone {s:?}; use an IANA name such as \"Europe/Paris\"")
    })
}

// ----------------------------------------------------------------- checking

struct Problems(Vec<Problem>);

impl Problems {
    fn push(&mut self, path: &[&str], message: impl Into<String>) {
        self.0.push(Problem {
            path: path.iter().map(|s| (*s).to_owned()).collect(),
            message: message.into(),
        });
    }
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
            let at = |k: &str| [&path[..], &[k]].concat();
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
                        format!("{a:?} is also listed by customer {:?}", raw_name(raw, other)),
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
                        format!("{d:?} is also listed by customer {:?}", raw_name(raw, other)),
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
    raw.customers
        .keys()
        .nth(index)
        .cloned()
        .unwrap_or_default()
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
        let next = date.succ_opt().and_then(|n| n.and_hms_opt(0, 0, 0)).ok_or_else(bad)?;
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
    let at = |k: &str| [&path[..], &[k]].concat();
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
    path: &[&str],
    nested: bool,
    pr: &mut Problems,
) -> Option<Target> {
    let at = |k: &str| [path, &[k]].concat();
    let duration = |s: &str, p: &[&str], pr: &mut Problems| {
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
            let one_of = "business_time, wall_clock, business_days, or inside_hours with outside_hours";
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
        let at = |k: &str| [&path[..], &[k]].concat();
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
            let applies = |r: &&Rule| {
                r.category.is_none_or(|x| x == c) && r.priority.is_none_or(|x| x == p)
            };
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
        let key = if field == 0 { "first_response" } else { "resolution" };
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
