//! A ticket's life after it is opened: agent responses and commands,
//! customer follow-ups (resume from pending, reopen within the window),
//! priority changes, and the escalation bookkeeping that follows from
//! them (`fr_next_at` / `res_next_at`, read by the sweeper).
//!
//! The rules are here; the statements are the store's
//! (`store::tickets`). Every function works inside the caller's
//! transaction, so a message and its effect on the ticket commit
//! together. The SLA arithmetic is the pure core's.

use anyhow::{Result, anyhow};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rusqlite::Connection;

use crate::config::Config;
use crate::core::commands::Command;
use crate::core::escalation::{Clock, Schedule};
use crate::core::sla::{DueQuery, Reopen};
use crate::store::tickets::{self, Thread};

pub use crate::core::escalation::Clocks;

/// The SLA of a ticket from its plan, priority and category. An SLA error
/// (a plan removed from the config since) is returned for the caller to note.
pub fn compute_clocks(cfg: &Config, q: &DueQuery) -> Result<Clocks, String> {
    let due = cfg.sla.due(q).map_err(|e| e.to_string())?;
    let warn = |clock, due: Option<DateTime<Utc>>| {
        let (d, share) = (due?, cfg.escalation.warn_share?);
        cfg.sla.warning_at(q, clock, d, share).ok().flatten()
    };
    Ok(Clocks {
        first_response_due: due.first_response,
        first_response_warn: warn(Clock::FirstResponse, due.first_response),
        resolution_due: due.resolution,
        resolution_warn: warn(Clock::Resolution, due.resolution),
    })
}

pub use crate::store::tickets::event;

/// Recomputes when the sweeper must next look at each clock of a ticket:
/// never for an answered first response, a pending, resolved or closed
/// ticket, or a best-effort clock.
pub fn refresh_next(conn: &Connection, cfg: &Config, ticket: i64) -> Result<()> {
    let st = tickets::clock_state(conn, ticket)?;
    let open = st.status == "open";
    let next = |due: Option<DateTime<Utc>>, warn: Option<DateTime<Utc>>, level: u8| {
        Schedule::new(warn, due?, cfg.escalation.second_after).next_after(level)
    };
    let c = &st.clocks;
    let fr_next = if open && st.first_responded_at.is_none() {
        next(c.first_response_due, c.first_response_warn, st.fr_level)
    } else {
        None
    };
    let res_next = if open {
        next(c.resolution_due, c.resolution_warn, st.res_level)
    } else {
        None
    };
    tickets::set_next(conn, ticket, fr_next, res_next)
}

/// Records an agent's response at `at` (the first one stops the
/// first-response clock).
pub fn respond(
    conn: &Connection,
    cfg: &Config,
    ticket: i64,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    if tickets::set_first_response(conn, ticket, at)? {
        event(conn, ticket, actor, "first-response", None, at)?;
    }
    refresh_next(conn, cfg, ticket)
}

/// A command (or, with None, a response) on the ticket named `ticket`
/// ("SUP-000123" or "123"), in its own transaction: what `tickets close`,
/// `respond` and `priority` do. False when there is no such ticket.
pub fn by_hand(
    conn: &mut Connection,
    cfg: &Config,
    ticket: &str,
    actor: &str,
    cmd: Option<&Command>,
    now: DateTime<Utc>,
) -> Result<bool> {
    let tx = crate::store::begin(conn)?;
    let Some(id) = crate::store::report::find_id(&tx, ticket)? else {
        return Ok(false);
    };
    match cmd {
        Some(cmd) => apply(&tx, cfg, id, actor, cmd, now)?,
        None => respond(&tx, cfg, id, actor, now)?,
    }
    tx.commit()?;
    Ok(true)
}

/// Applies one command; an invalid one (unknown priority) is recorded as
/// an event and otherwise ignored.
pub fn apply(
    conn: &Connection,
    cfg: &Config,
    ticket: i64,
    actor: &str,
    cmd: &Command,
    now: DateTime<Utc>,
) -> Result<()> {
    match cmd {
        Command::Close => {
            // A ticket resolved already stays as it was: no second
            // "resolved" event for the reports and metrics to count.
            if resolve(conn, cfg, ticket, now)? {
                event(conn, ticket, actor, "resolved", None, now)?;
            }
        }
        Command::Reopen => {
            reopen(conn, cfg, ticket, actor, now)?;
        }
        Command::Pending => {
            let changed = tickets::set_pending(conn, ticket, now)?;
            event(conn, ticket, actor, "pending", None, now)?;
            if changed {
                schedule_pending(conn, cfg, ticket)?;
            }
        }
        Command::Assign(who) => {
            tickets::assign(conn, ticket, who)?;
            event(conn, ticket, actor, "assigned", Some(who), now)?;
        }
        Command::Priority(p) => {
            if let Err(e) = set_priority(conn, cfg, ticket, p) {
                event(
                    conn,
                    ticket,
                    actor,
                    "command-error",
                    Some(&format!("{e:#}")),
                    now,
                )?;
            } else {
                event(conn, ticket, actor, "priority", Some(p), now)?;
            }
        }
    }
    refresh_next(conn, cfg, ticket)
}

/// Resolves a ticket at `at`; a pending one first ends its pause, so the
/// time it waited on the customer does not count if it is ever resumed.
pub fn resolve(conn: &Connection, cfg: &Config, ticket: i64, at: DateTime<Utc>) -> Result<bool> {
    if let Some(t) = tickets::thread(conn, ticket)?
        && t.status == "pending"
    {
        let since = t.pending_since.unwrap_or(at);
        resume(conn, cfg, ticket, (since, at), false)?;
    }
    tickets::resolve(conn, ticket, at)
}

/// The SLA question about a ticket at `priority`, its clocks counted
/// from `received`.
fn query<'a>(
    t: &'a tickets::SlaInputs,
    priority: Option<&'a str>,
    received: DateTime<Utc>,
) -> DueQuery<'a> {
    DueQuery {
        plan: &t.plan,
        priority,
        category: t.category.as_deref(),
        timezone: t
            .customer_timezone
            .as_deref()
            .and_then(|z| z.parse::<Tz>().ok()),
        received,
    }
}

/// Open again after the clocks stood still from `from` to `to` (pending,
/// or resolved before a resumed reopen): the resolution instants, and
/// with `first_response` a first response not yet given, move as the SLA
/// engine counts their targets (open time left counted again for
/// office-hours targets, the pause added for elapsed-time ones).
fn resume(
    conn: &Connection,
    cfg: &Config,
    ticket: i64,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    first_response: bool,
) -> Result<()> {
    let st = tickets::clock_state(conn, ticket)?;
    let t = tickets::sla_inputs(conn, ticket)?;
    let priority = tickets::priority(conn, ticket)?;
    let received = t.received_at.unwrap_or(from);
    let q = query(&t, priority.as_deref(), received);
    let moved =
        |clock, at: Option<DateTime<Utc>>| at.map(|a| cfg.sla.resumed_at(&q, clock, a, from, to));
    let c = st.clocks;
    let unanswered = first_response && st.first_responded_at.is_none();
    let clocks = Clocks {
        first_response_due: if unanswered {
            moved(Clock::FirstResponse, c.first_response_due)
        } else {
            c.first_response_due
        },
        first_response_warn: if unanswered {
            moved(Clock::FirstResponse, c.first_response_warn)
        } else {
            c.first_response_warn
        },
        resolution_due: moved(Clock::Resolution, c.resolution_due),
        resolution_warn: moved(Clock::Resolution, c.resolution_warn),
    };
    let paused = (to - from).num_seconds().max(0);
    tickets::set_resumed(conn, ticket, paused, &clocks)
}

/// A pending ticket: when the sweeper reminds the customer, then closes
/// it (the plan's `pending_reminder_after` and `pending_close_after`,
/// counted from when it went pending); nothing when neither is set.
fn schedule_pending(conn: &Connection, cfg: &Config, ticket: i64) -> Result<()> {
    let Some(since) = tickets::thread(conn, ticket)?
        .filter(|t| t.status == "pending")
        .and_then(|t| t.pending_since)
    else {
        return Ok(());
    };
    let t = tickets::sla_inputs(conn, ticket)?;
    let timezone = t.customer_timezone.and_then(|z| z.parse::<Tz>().ok());
    let next = match cfg.sla.pending_due(&t.plan, timezone, since) {
        Ok(p) => p.reminder.or(p.close),
        Err(e) => {
            tracing::warn!(ticket_id = ticket, "no pending reminder: {e}");
            None
        }
    };
    tickets::set_pending_next(conn, ticket, next, 0)
}

/// Reopens a resolved ticket at `now` (the reopening message's arrival),
/// its clocks restarted or resumed as its plan says; recorded as an event
/// that names which.
fn reopen(
    conn: &Connection,
    cfg: &Config,
    ticket: i64,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let resolved_at = tickets::thread(conn, ticket)?.and_then(|t| t.resolved_at);
    if !tickets::reopen(conn, ticket)? {
        return Ok(());
    }
    let t = tickets::sla_inputs(conn, ticket)?;
    let detail = match cfg.sla.reopen_rule(&t.plan) {
        Reopen::Restart => {
            let priority = tickets::priority(conn, ticket)?;
            match compute_clocks(cfg, &query(&t, priority.as_deref(), now)) {
                Ok(c) => {
                    tickets::restart_clocks(conn, ticket, now, &c)?;
                    "clocks restarted".to_owned()
                }
                // A plan removed from the config since: the old instants
                // stay, as for a priority change.
                Err(e) => format!("clocks kept: {e}"),
            }
        }
        Reopen::Resume => {
            let from = resolved_at.unwrap_or(now);
            let paused = (now - from).num_seconds().max(0);
            // Closed before anyone answered: that clock resumes too.
            resume(conn, cfg, ticket, (from, now), true)?;
            format!("resolution clock resumed, resolved for {paused}s")
        }
    };
    event(conn, ticket, actor, "reopened", Some(&detail), now)
}

/// A new priority: the due instants are computed again from the reception
/// time, and escalation starts over for the new targets.
pub fn set_priority(conn: &Connection, cfg: &Config, ticket: i64, priority: &str) -> Result<()> {
    if !cfg.priorities.iter().any(|p| p == priority) {
        return Err(anyhow!(
            "unknown priority {priority:?}; known: {}",
            cfg.priorities.join(", ")
        ));
    }
    let t = tickets::sla_inputs(conn, ticket)?;
    let received = t
        .received_at
        .ok_or_else(|| anyhow!("ticket {ticket} has a bad received_at"))?;
    let c = compute_clocks(cfg, &query(&t, Some(priority), received)).map_err(|e| anyhow!(e))?;
    // The time the resolution clock stood still still does not count.
    let paused = chrono::TimeDelta::seconds(t.paused_secs);
    let shift = |t: Option<DateTime<Utc>>| t.map(|t| t + paused);
    let c = Clocks {
        resolution_due: shift(c.resolution_due),
        resolution_warn: shift(c.resolution_warn),
        ..c
    };
    tickets::set_priority(conn, ticket, priority, &c)?;
    refresh_next(conn, cfg, ticket)
}

/// What a customer's follow-up does to its ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followup {
    /// Added to an open ticket as it is.
    Join,
    /// Added to a pending ticket, which is open again; its resolution
    /// clock stood still for `paused_secs`.
    Resume { paused_secs: i64 },
    /// Added to a ticket resolved within the reopen window, reopened.
    Reopen,
    /// The ticket was resolved longer ago than the reopen window: the
    /// message opens a new ticket that links this one.
    NewTicket,
}

/// Pure: what a follow-up arriving `now` does to a ticket in `state`.
pub fn followup(state: &Thread, reopen_window: chrono::TimeDelta, now: DateTime<Utc>) -> Followup {
    match state.status.as_str() {
        "pending" => {
            let since = state.pending_since.unwrap_or(now);
            Followup::Resume {
                paused_secs: (now - since).num_seconds().max(0),
            }
        }
        "resolved" | "closed" => {
            let resolved = state.resolved_at.unwrap_or(now);
            if now - resolved > reopen_window {
                Followup::NewTicket
            } else {
                Followup::Reopen
            }
        }
        _ => Followup::Join,
    }
}

/// Applies a follow-up decided by [`followup`] (not `NewTicket`).
pub fn apply_followup(
    conn: &Connection,
    cfg: &Config,
    ticket: i64,
    actor: &str,
    effect: Followup,
    now: DateTime<Utc>,
) -> Result<()> {
    match effect {
        Followup::Join | Followup::NewTicket => {}
        Followup::Resume { paused_secs } => {
            let from = now - chrono::TimeDelta::seconds(paused_secs);
            resume(conn, cfg, ticket, (from, now), false)?;
            event(
                conn,
                ticket,
                actor,
                "resumed",
                Some(&format!("paused {paused_secs}s")),
                now,
            )?;
        }
        Followup::Reopen => reopen(conn, cfg, ticket, actor, now)?,
    }
    refresh_next(conn, cfg, ticket)
}
