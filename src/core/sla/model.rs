//! The checked SLA model: targets, plans, customers, and the query and
//! error types of its API.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;

use crate::core::calendar::{Calendar, CalendarError};

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
    /// With `cap_at_next_opening`, a ticket received while closed is never
    /// due later than one received at the next opening (a mail sent at
    /// 07:59 is then not due after one sent at 08:00); without it, the
    /// outside target counts as written, as most contracts say it.
    ByReception {
        inside: Box<Target>,
        outside: Box<Target>,
        cap_at_next_opening: bool,
    },
}

impl Target {
    pub(super) fn needs_calendar(&self) -> bool {
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
pub(super) struct Plan {
    pub(super) calendar: Option<Calendar>,
    pub(super) calendar_name: Option<String>,
    /// Indexed by `category_slot * priority_slots + priority_slot`.
    pub(super) cells: Vec<Targets>,
    pub(super) reopen: Reopen,
    pub(super) pending: Pending,
}

/// What a reopen does to a ticket's clocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Reopen {
    /// Both clocks start again from the reopening message's arrival: a
    /// first response is due again, and a new resolution time.
    #[default]
    Restart,
    /// The resolution clock goes on where it stopped (the time the ticket
    /// spent resolved does not count); the first response stays answered.
    Resume,
}

/// A pending ticket's reminder and auto-close delays, counted from the
/// moment it went pending; `Target::WallClock` or `Target::BusinessDays`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    pub reminder_after: Option<Target>,
    pub close_after: Option<Target>,
}

/// When a pending ticket is reminded and closed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PendingDue {
    /// None when no reminder is configured, or it would come at or after
    /// the auto-close.
    pub reminder: Option<DateTime<Utc>>,
    pub close: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub(super) struct Customer {
    pub(super) name: String,
    pub(super) plan: String,
    pub(super) until: Option<DateTime<Utc>>,
    pub(super) after: String,
    pub(super) timezone: Option<Tz>,
    pub(super) language: Option<String>,
}

/// The checked `[sla]` table.
#[derive(Debug, Clone)]
pub struct SlaModel {
    /// `[sla.calendars]` by name (for escalation recipients' hours too).
    pub(super) calendars: BTreeMap<String, Calendar>,
    pub(super) priorities: Vec<String>,
    pub(super) categories: Vec<String>,
    pub(super) default_plan: String,
    pub(super) plans: BTreeMap<String, Plan>,
    pub(super) customers: Vec<Customer>,
    pub(super) by_address: HashMap<String, usize>,
    pub(super) by_domain: HashMap<String, usize>,
}

/// Which customer and plan a sender gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerMatch {
    pub customer: Option<String>,
    pub plan: String,
    pub timezone: Option<Tz>,
    /// The customer's configured language, if any.
    pub language: Option<String>,
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
