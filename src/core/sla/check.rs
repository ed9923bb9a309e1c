//! The check from the raw `[sla]` table to an [`SlaModel`], reporting
//! every problem at once with its key path.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;

use super::MAX_BUSINESS_DAYS;
use super::model::{Customer, Pending, Plan, Reopen, SlaModel, Target, Targets};
use super::parse::{parse_duration, parse_zone};
use super::raw::{RawCalendar, RawPlan, RawSla, RawTarget};
use crate::core::calendar::{
    BUILTIN_HOLIDAY_SETS, Calendar, HolidayRule, Holidays, WeeklyHours, builtin_holiday_set,
    local_to_utc, parse_days, parse_spans,
};
use crate::core::problem::{Problem, Problems};

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
        let mut pr = Problems::new();

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
            let reopen = match rp.reopen.as_deref().map(str::trim) {
                None | Some("restart") => Reopen::Restart,
                Some("resume") => Reopen::Resume,
                Some(other) => {
                    pr.push(
                        &[&path[..], &["reopen"]].concat(),
                        format!("unknown reopen rule {other:?}; give \"restart\" or \"resume\""),
                    );
                    Reopen::Restart
                }
            };
            let pending = check_pending(&path, rp, raw, rp.calendar.is_some(), &mut pr);
            plans.insert(
                name.clone(),
                Plan {
                    calendar,
                    calendar_name: rp.calendar.clone(),
                    cells,
                    reopen,
                    pending,
                },
            );
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
                language: rc.language.clone(),
            });
        }

        if !pr.is_empty() {
            return Err(pr.into_vec());
        }
        Ok(SlaModel {
            calendars: calendars
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
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
    let before = pr.len();
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
            ("holidays_ics", rc.holidays_ics.is_some()),
        ] {
            if set {
                pr.push(
                    &at(key),
                    "an always-open calendar has no hours or holidays; drop this or always_open",
                );
            }
        }
        let z = zone?;
        return (pr.len() == before)
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
    if week.is_closed() && pr.len() == before {
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
    if rc.holidays_ics.is_some() {
        match &rc.holidays_ics_text {
            None => pr.push(&at("holidays_ics"), "the file was not read"),
            Some((shown, Err(e))) => pr.push(&at("holidays_ics"), format!("{shown}: {e}")),
            Some((shown, Ok(text))) => match crate::core::ics::holidays(text) {
                Ok(rules) => rules.into_iter().for_each(|r| holidays.add(r)),
                Err(e) => pr.push(
                    &at("holidays_ics"),
                    format!("{shown} line {}: {}", e.line, e.message),
                ),
            },
        }
    }
    let z = zone?;
    (pr.len() == before)
        .then(|| Calendar::new(z, week, holidays).following_customer(rc.follow_customer_timezone))
}

/// A plan's pending rules, each the plan's own or else the desk-wide one
/// of `[sla]`; reported at the key that gives it.
fn check_pending(
    plan_path: &[&str],
    rp: &RawPlan,
    raw: &RawSla,
    has_calendar: bool,
    pr: &mut Problems,
) -> Pending {
    let mut one = |key: &str, own: &Option<String>, desk: &Option<String>| {
        let (text, path) = match (own, desk) {
            (Some(t), _) => (t, [plan_path, &[key]].concat()),
            (None, Some(t)) => (t, vec!["sla", key]),
            (None, None) => return None,
        };
        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        match parse_delay(text) {
            Ok(t @ Target::BusinessDays(_)) if !has_calendar => {
                pr.push(
                    &path,
                    "business days count the plan's calendar, but the plan has no `calendar`",
                );
                Some(t)
            }
            Ok(t) => Some(t),
            Err(m) => {
                pr.push(&path, m);
                None
            }
        }
    };
    let reminder_after = one(
        "pending_reminder_after",
        &rp.pending_reminder_after,
        &raw.pending_reminder_after,
    );
    let close_after = one(
        "pending_close_after",
        &rp.pending_close_after,
        &raw.pending_close_after,
    );
    if let (Some(Target::WallClock(r)), Some(Target::WallClock(c))) =
        (&reminder_after, &close_after)
        && r >= c
    {
        let key = if rp.pending_close_after.is_some() {
            [plan_path, &["pending_close_after"]].concat()
        } else {
            vec!["sla", "pending_close_after"]
        };
        pr.push(
            &key,
            "the auto-close comes at or before the reminder; give a longer delay",
        );
    }
    Pending {
        reminder_after,
        close_after,
    }
}

/// A pending delay: "3 business days" or a wall-clock duration ("7d").
fn parse_delay(text: &str) -> Result<Target, String> {
    let t = text.trim().to_ascii_lowercase();
    let words: Vec<&str> = t.split_whitespace().collect();
    if let [n, "business", "day" | "days"] = words[..] {
        return match n.parse::<i64>() {
            Ok(n) if (1..=MAX_BUSINESS_DAYS).contains(&n) => Ok(Target::BusinessDays(n as u32)),
            _ => Err(format!(
                "{text:?}: give 1 to {MAX_BUSINESS_DAYS} business days"
            )),
        };
    }
    parse_duration(text)
        .map(Target::WallClock)
        .map_err(|m| format!("{m}, or \"3 business days\""))
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
            if t.outside_hours_cap.is_some()
                && t.inside_hours.is_none()
                && t.outside_hours.is_none()
            {
                pr.push(
                    &at("outside_hours_cap"),
                    "outside_hours_cap belongs to an { inside_hours, outside_hours } target",
                );
                return None;
            }
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
            let cap_at_next_opening = match t.outside_hours_cap.as_deref().map(str::trim) {
                None | Some("none") => false,
                Some("next_opening") => true,
                Some(other) => {
                    pr.push(
                        &at("outside_hours_cap"),
                        format!(
                            "unknown cap {other:?}; give \"next_opening\" (a ticket received \
                             while closed is never due later than one received at the next \
                             opening) or leave it out"
                        ),
                    );
                    return None;
                }
            };
            Some(Target::ByReception {
                inside: Box::new(inside?),
                outside: Box::new(outside?),
                cap_at_next_opening,
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
