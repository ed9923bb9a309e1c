//! A ticket's life after it is opened: agent responses and commands,
//! customer follow-ups (resume from pending, reopen within the window),
//! priority changes, and the escalation bookkeeping that follows from
//! them (`fr_next_at` / `res_next_at`, read by the sweeper).
//!
//! Every function works inside the caller's transaction, so a message and
//! its effect on the ticket commit together. The SLA arithmetic is the
//! pure core's; this module only stores its results.

use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rusqlite::{Connection, OptionalExtension, params};

use crate::config::Config;
use crate::core::commands::Command;
use crate::core::escalation::{Clock, Schedule};
use crate::core::sla::DueQuery;
use crate::store::{parse_ts, ts};

/// Due and warning instants of both clocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clocks {
    pub first_response_due: Option<DateTime<Utc>>,
    pub first_response_warn: Option<DateTime<Utc>>,
    pub resolution_due: Option<DateTime<Utc>>,
    pub resolution_warn: Option<DateTime<Utc>>,
}

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

pub fn event(
    conn: &Connection,
    ticket: i64,
    actor: &str,
    action: &str,
    detail: Option<&str>,
    now: DateTime<Utc>,
) -> Result<()> {
    conn.execute(
        "INSERT INTO ticket_events (ticket_id, at, actor, action, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![ticket, ts(now), actor, action, detail],
    )
    .context("Recording a ticket event")?;
    Ok(())
}

/// Recomputes when the sweeper must next look at each clock of a ticket:
/// never for an answered first response, a pending, resolved or closed
/// ticket, or a best-effort clock.
pub fn refresh_next(conn: &Connection, cfg: &Config, ticket: i64) -> Result<()> {
    type Row = (
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        u8,
        u8,
    );
    let (status, responded, fr_due, fr_warn, res_due, res_warn, fr_level, res_level): Row = conn
        .query_row(
            "SELECT status, first_responded_at, first_response_due, first_response_warn,
                    resolution_due, resolution_warn, fr_level, res_level
             FROM tickets WHERE id = ?1",
            [ticket],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            },
        )
        .context("Reading the ticket's clocks")?;
    let open = status == "open";
    let next = |due: Option<String>, warn: Option<String>, level: u8| {
        let due = parse_ts(due.as_deref()?)?;
        let warn = warn.as_deref().and_then(parse_ts);
        Schedule::new(warn, due, cfg.escalation.second_after)
            .next_after(level)
            .map(ts)
    };
    let fr_next = if open && responded.is_none() {
        next(fr_due, fr_warn, fr_level)
    } else {
        None
    };
    let res_next = if open {
        next(res_due, res_warn, res_level)
    } else {
        None
    };
    conn.execute(
        "UPDATE tickets SET fr_next_at = ?1, res_next_at = ?2 WHERE id = ?3",
        params![fr_next, res_next, ticket],
    )
    .context("Updating the escalation schedule")?;
    Ok(())
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
    let n = conn
        .execute(
            "UPDATE tickets SET first_responded_at = ?1 WHERE id = ?2 AND first_responded_at IS NULL",
            params![ts(at), ticket],
        )
        .context("Recording the first response")?;
    if n > 0 {
        event(conn, ticket, actor, "first-response", None, at)?;
    }
    refresh_next(conn, cfg, ticket)
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
            conn.execute(
                "UPDATE tickets SET status = 'resolved', resolved_at = ?1, pending_since = NULL
                 WHERE id = ?2 AND status IN ('open', 'pending')",
                params![ts(now), ticket],
            )
            .context("Closing the ticket")?;
            event(conn, ticket, actor, "resolved", None, now)?;
        }
        Command::Reopen => {
            reopen(conn, ticket, actor, now)?;
        }
        Command::Pending => {
            conn.execute(
                "UPDATE tickets SET status = 'pending', pending_since = ?1 WHERE id = ?2 AND status = 'open'",
                params![ts(now), ticket],
            )
            .context("Setting the ticket pending")?;
            event(conn, ticket, actor, "pending", None, now)?;
        }
        Command::Assign(who) => {
            conn.execute(
                "UPDATE tickets SET assignee = ?1 WHERE id = ?2",
                params![who, ticket],
            )
            .context("Assigning the ticket")?;
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

fn reopen(conn: &Connection, ticket: i64, actor: &str, now: DateTime<Utc>) -> Result<()> {
    let n = conn
        .execute(
            "UPDATE tickets SET status = 'open', resolved_at = NULL, pending_since = NULL
             WHERE id = ?1 AND status IN ('resolved', 'closed')",
            [ticket],
        )
        .context("Reopening the ticket")?;
    if n > 0 {
        event(conn, ticket, actor, "reopened", None, now)?;
    }
    Ok(())
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
    let (plan, category, tz, received): (String, Option<String>, Option<String>, String) = conn
        .query_row(
            "SELECT plan, category, customer_timezone, received_at FROM tickets WHERE id = ?1",
            [ticket],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .context("Reading the ticket")?;
    let received = parse_ts(&received).ok_or_else(|| anyhow!("bad received_at {received:?}"))?;
    let timezone = tz.and_then(|z| z.parse::<Tz>().ok());
    let c = compute_clocks(
        cfg,
        &DueQuery {
            plan: &plan,
            priority: Some(priority),
            category: category.as_deref(),
            timezone,
            received,
        },
    )
    .map_err(|e| anyhow!(e))?;
    conn.execute(
        "UPDATE tickets SET priority = ?1, first_response_due = ?2, first_response_warn = ?3,
                resolution_due = ?4, resolution_warn = ?5, fr_level = 0, res_level = 0
         WHERE id = ?6",
        params![
            priority,
            c.first_response_due.map(ts),
            c.first_response_warn.map(ts),
            c.resolution_due.map(ts),
            c.resolution_warn.map(ts),
            ticket
        ],
    )
    .context("Updating the priority")?;
    refresh_next(conn, cfg, ticket)
}

/// What a customer's follow-up does to its ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followup {
    /// Added to the ticket (resumed from pending or reopened as needed).
    Joined,
    /// The ticket was resolved longer ago than the reopen window: the
    /// message opens a new ticket that links this one.
    NewTicket { previous: i64 },
}

pub fn customer_followup(
    conn: &Connection,
    cfg: &Config,
    ticket: i64,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Followup> {
    let (status, resolved_at, pending_since): (String, Option<String>, Option<String>) = conn
        .query_row(
            "SELECT status, resolved_at, pending_since FROM tickets WHERE id = ?1",
            [ticket],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .context("Reading the ticket")?
        .ok_or_else(|| anyhow!("ticket {ticket} vanished"))?;
    match status.as_str() {
        "pending" => {
            // The resolution clock stood still while the desk waited on the
            // customer: push its instants by the time spent pending.
            let since = pending_since.as_deref().and_then(parse_ts).unwrap_or(now);
            let paused = (now - since).num_seconds().max(0);
            let shift = |col: &str| {
                format!(
                    "{col} = CASE WHEN {col} IS NULL THEN NULL ELSE strftime('%Y-%m-%dT%H:%M:%SZ', {col}, '+{paused} seconds') END"
                )
            };
            conn.execute(
                &format!(
                    "UPDATE tickets SET status = 'open', pending_since = NULL, {}, {} WHERE id = ?1",
                    shift("resolution_due"),
                    shift("resolution_warn")
                ),
                [ticket],
            )
            .context("Resuming the ticket")?;
            event(
                conn,
                ticket,
                actor,
                "resumed",
                Some(&format!("paused {paused}s")),
                now,
            )?;
        }
        "resolved" | "closed" => {
            let resolved = resolved_at.as_deref().and_then(parse_ts).unwrap_or(now);
            if now - resolved > cfg.desk.reopen_window {
                return Ok(Followup::NewTicket { previous: ticket });
            }
            reopen(conn, ticket, actor, now)?;
        }
        _ => {}
    }
    refresh_next(conn, cfg, ticket)?;
    Ok(Followup::Joined)
}
