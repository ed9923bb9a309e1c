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
//! reopen = "resume"                  # default "restart"
//! pending_reminder_after = "3 business days"
//! pending_close_after = "7d"         # also desk-wide in [sla]
//!
//! [sla.customers.acme]
//! domains = ["acme.example"]         # and its subdomains
//! addresses = ["boss@partner.example"]
//! plan = "premium"
//! until = 2026-06-30                 # premium through 30 June, then `after`
//! after = "standard"
//! timezone = "America/New_York"
//! ```

mod check;
mod explain;
mod model;
mod parse;
mod query;
mod raw;
#[cfg(test)]
mod tests;

use chrono::TimeDelta;

pub use explain::{Explained, describe};
pub use model::{
    CustomerMatch, Due, DueQuery, Pending, PendingDue, Reopen, SlaError, SlaModel, Target, Targets,
};
pub use parse::parse_duration;
pub use raw::{RawCalendar, RawCustomer, RawPlan, RawRule, RawSla, RawTarget, RawTargetTable};

/// Longest duration a target may give; longer is surely a typo.
pub const MAX_TARGET: TimeDelta = TimeDelta::days(366);
/// Most business days a target may give.
pub const MAX_BUSINESS_DAYS: i64 = 366;
