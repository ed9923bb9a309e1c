//! The `escalations` table (one row per ticket, clock, level and
//! recipient: what makes a notice go out once) and the sweeper's reads of
//! the tickets it owes notices for.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::ts;
use crate::core::escalation::{Clock, Level};

/// Open tickets with a clock whose next escalation instant is at or
/// before `now`, at most `limit`.
pub fn due(conn: &Connection, now: DateTime<Utc>, limit: usize) -> Result<Vec<i64>> {
    let mut stmt = conn
        .prepare_cached(
            // INDEXED BY: the plan must never fall back to a scan
            // of all tickets (seen with the bundled SQLite at 1M rows).
            "SELECT id FROM tickets INDEXED BY tickets_fr_next
               WHERE fr_next_at IS NOT NULL AND fr_next_at <= ?1
             UNION SELECT id FROM tickets INDEXED BY tickets_res_next
               WHERE res_next_at IS NOT NULL AND res_next_at <= ?1
             LIMIT ?2",
        )
        .context("Preparing the sweep")?;
    let ids = stmt
        .query_map(params![ts(now), limit as i64], |r| r.get(0))
        .context("Finding tickets to escalate")?
        .collect::<rusqlite::Result<_>>()
        .context("Reading tickets to escalate")?;
    Ok(ids)
}

/// clock, next_at, due, warn, level handled
pub type ClockRow = (Clock, Option<String>, Option<String>, Option<String>, u8);

/// What a notice about a ticket says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRow {
    pub reference: String,
    pub subject: String,
    pub requester: String,
    pub customer: Option<String>,
    pub plan: String,
    pub priority: Option<String>,
    pub category: Option<String>,
    pub status: String,
    pub assignee: Option<String>,
    pub received_at: String,
    pub clocks: [ClockRow; 2],
}

pub fn ticket(conn: &Connection, id: i64) -> Result<TicketRow> {
    conn.prepare_cached(
        "SELECT reference, subject, requester, customer, plan, priority, category, status, assignee,
                received_at, fr_next_at, first_response_due, first_response_warn, fr_level,
                res_next_at, resolution_due, resolution_warn, res_level
         FROM tickets WHERE id = ?1",
    )?
    .query_row([id], |r| {
        Ok(TicketRow {
            reference: r.get(0)?,
            subject: r.get(1)?,
            requester: r.get(2)?,
            customer: r.get(3)?,
            plan: r.get(4)?,
            priority: r.get(5)?,
            category: r.get(6)?,
            status: r.get(7)?,
            assignee: r.get(8)?,
            received_at: r.get(9)?,
            clocks: [
                (Clock::FirstResponse, r.get(10)?, r.get(11)?, r.get(12)?, r.get(13)?),
                (Clock::Resolution, r.get(14)?, r.get(15)?, r.get(16)?, r.get(17)?),
            ],
        })
    })
    .context("Reading a ticket to escalate")
}

/// Records a notice owed; None when it was recorded before (nothing to send).
pub fn record(
    conn: &Connection,
    ticket: i64,
    clock: Clock,
    level: Level,
    recipient: &str,
    now: DateTime<Utc>,
) -> Result<Option<i64>> {
    conn.prepare_cached(
        "INSERT INTO escalations (ticket_id, clock, level, recipient, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING RETURNING id",
    )?
    .query_row(
        params![ticket, clock.as_str(), level.as_str(), recipient, ts(now)],
        |r| r.get(0),
    )
    .optional()
    .context("Recording the escalation")
}

/// Links a recorded notice to the outbox row that carries it.
pub fn link(conn: &Connection, escalation: i64, outbox: i64) -> Result<()> {
    conn.prepare_cached("UPDATE escalations SET outbox_id = ?2 WHERE id = ?1")?
        .execute(params![escalation, outbox])
        .context("Linking the escalation to its mail")?;
    Ok(())
}
