//! The `[sla]` table as deserialized, before any check.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

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
    /// Desk-wide defaults of the plans' pending rules.
    pub pending_reminder_after: Option<String>,
    pub pending_close_after: Option<String>,
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
    /// An iCalendar file of all-day events, relative to the config file.
    pub holidays_ics: Option<String>,
    /// That file as the shell read it (the core reads no files): its
    /// shown path and its text, or why it could not be read.
    #[serde(skip)]
    pub holidays_ics_text: Option<(String, Result<String, String>)>,
}

/// `[sla.plans.NAME]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlan {
    /// Needed by business-time, business-day and inside/outside-hours targets.
    pub calendar: Option<String>,
    #[serde(default)]
    pub targets: Vec<RawRule>,
    /// "restart" (default) or "resume": the clocks of a reopened ticket.
    pub reopen: Option<String>,
    /// A pending ticket's reminder to the customer, and its auto-close:
    /// "3 business days" (the plan's calendar) or a duration ("7d").
    pub pending_reminder_after: Option<String>,
    pub pending_close_after: Option<String>,
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
/// `{ inside_hours = T, outside_hours = T }`: exactly one kind. The last
/// may add `outside_hours_cap = "next_opening"`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTargetTable {
    pub business_time: Option<String>,
    pub wall_clock: Option<String>,
    pub business_days: Option<i64>,
    pub inside_hours: Option<RawTarget>,
    pub outside_hours: Option<RawTarget>,
    /// `"next_opening"`: a ticket received while closed is never due later
    /// than one received at the next opening. Off unless given.
    pub outside_hours_cap: Option<String>,
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
    /// The customer's language (one of `[triage] languages`): for a mail
    /// too short to tell its own, after its Content-Language and the
    /// thread it quotes (docs/config.md, triage step 1).
    pub language: Option<String>,
}
