//! The `tickets` and `ticket_events` tables: every statement that writes a
//! ticket (opening, lifecycle changes, escalation levels, the sweeper's
//! next-look instants) and the reads those writes depend on.
//!
//! Each function runs inside the caller's transaction (`&Connection` is a
//! `Transaction` or a savepoint), so a message and its effect on its
//! ticket commit together. Decisions are the callers'; this module only
//! stores them.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{parse_ts, ts};
use crate::core::escalation::{Clock, Clocks};

/// A ticket as ingest opens it.
pub struct NewTicket<'a> {
    pub id: i64,
    pub reference: &'a str,
    pub subject: &'a str,
    pub requester: &'a str,
    pub requester_name: Option<&'a str>,
    pub customer: Option<&'a str>,
    pub plan: &'a str,
    pub language: &'a str,
    pub category: Option<&'a str>,
    pub priority: Option<&'a str>,
    pub impact: Option<&'a str>,
    pub urgency: Option<&'a str>,
    /// JSON array of strings.
    pub triage_reasons: &'a str,
    pub received_at: DateTime<Utc>,
    pub clocks: Clocks,
    pub note: Option<&'a str>,
    pub customer_timezone: Option<&'a str>,
    pub previous: Option<i64>,
    pub created_at: DateTime<Utc>,
}

pub fn insert(conn: &Connection, t: &NewTicket<'_>) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO tickets (id, reference, status, subject, requester, requester_name, customer, plan,
            language, category, priority, impact, urgency, triage_reasons, received_at,
            first_response_due, resolution_due, note, created_at,
            customer_timezone, first_response_warn, resolution_warn, previous_ticket)
         VALUES (?1, ?2, 'open', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
            ?19, ?20, ?21, ?22)",
    )?
    .execute(params![
        t.id,
        t.reference,
        t.subject,
        t.requester,
        t.requester_name,
        t.customer,
        t.plan,
        t.language,
        t.category,
        t.priority,
        t.impact,
        t.urgency,
        t.triage_reasons,
        ts(t.received_at),
        t.clocks.first_response_due.map(ts),
        t.clocks.resolution_due.map(ts),
        t.note,
        ts(t.created_at),
        t.customer_timezone,
        t.clocks.first_response_warn.map(ts),
        t.clocks.resolution_warn.map(ts),
        t.previous,
    ])
    .context("Inserting the ticket")?;
    Ok(())
}

/// The id the next ticket gets. One writer owns the database, so it is
/// stable until that writer inserts.
pub fn next_id(conn: &Connection) -> Result<i64> {
    conn.prepare_cached("SELECT COALESCE(MAX(id), 0) + 1 FROM tickets")?
        .query_row([], |r| r.get(0))
        .context("Choosing the ticket id")
}

/// Appends `note` to the ticket's note ("; " between notes).
pub fn append_note(conn: &Connection, id: i64, note: &str) -> Result<()> {
    conn.prepare_cached(
        "UPDATE tickets SET note = COALESCE(note || '; ', '') || ?1 WHERE id = ?2",
    )?
    .execute(params![note, id])
    .context("Noting on the ticket")?;
    Ok(())
}

/// What threading and the follow-up policy need to know of a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thread {
    pub reference: String,
    pub requester: String,
    pub status: String,
    pub resolved_at: Option<DateTime<Utc>>,
    pub pending_since: Option<DateTime<Utc>>,
}

pub fn thread(conn: &Connection, id: i64) -> Result<Option<Thread>> {
    conn.prepare_cached(
        "SELECT reference, requester, status, resolved_at, pending_since FROM tickets WHERE id = ?1",
    )?
    .query_row([id], |r| {
        Ok(Thread {
            reference: r.get(0)?,
            requester: r.get(1)?,
            status: r.get(2)?,
            resolved_at: r.get::<_, Option<String>>(3)?.as_deref().and_then(parse_ts),
            pending_since: r.get::<_, Option<String>>(4)?.as_deref().and_then(parse_ts),
        })
    })
    .optional()
    .context("Reading the ticket")
}

/// Both clocks of a ticket as the escalation schedule needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockState {
    pub status: String,
    pub first_responded_at: Option<DateTime<Utc>>,
    pub clocks: Clocks,
    pub fr_level: u8,
    pub res_level: u8,
}

pub fn clock_state(conn: &Connection, id: i64) -> Result<ClockState> {
    conn.prepare_cached(
        "SELECT status, first_responded_at, first_response_due, first_response_warn,
                resolution_due, resolution_warn, fr_level, res_level
         FROM tickets WHERE id = ?1",
    )?
    .query_row([id], |r| {
        let t = |i: usize| -> rusqlite::Result<Option<DateTime<Utc>>> {
            Ok(r.get::<_, Option<String>>(i)?.as_deref().and_then(parse_ts))
        };
        Ok(ClockState {
            status: r.get(0)?,
            first_responded_at: t(1)?,
            clocks: Clocks {
                first_response_due: t(2)?,
                first_response_warn: t(3)?,
                resolution_due: t(4)?,
                resolution_warn: t(5)?,
            },
            fr_level: r.get(6)?,
            res_level: r.get(7)?,
        })
    })
    .context("Reading the ticket's clocks")
}

/// When the sweeper must next look at each clock (None: never).
pub fn set_next(
    conn: &Connection,
    id: i64,
    fr_next: Option<DateTime<Utc>>,
    res_next: Option<DateTime<Utc>>,
) -> Result<()> {
    conn.prepare_cached("UPDATE tickets SET fr_next_at = ?1, res_next_at = ?2 WHERE id = ?3")?
        .execute(params![fr_next.map(ts), res_next.map(ts), id])
        .context("Updating the escalation schedule")?;
    Ok(())
}

/// Stops the first-response clock at `at`; false when it already stood.
pub fn set_first_response(conn: &Connection, id: i64, at: DateTime<Utc>) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE tickets SET first_responded_at = ?1 WHERE id = ?2 AND first_responded_at IS NULL",
        )?
        .execute(params![ts(at), id])
        .context("Recording the first response")?;
    Ok(n > 0)
}

/// Resolves an open or pending ticket; false when it was neither (already
/// resolved or closed: nothing changes, and nothing is to be recorded).
pub fn resolve(conn: &Connection, id: i64, at: DateTime<Utc>) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE tickets SET status = 'resolved', resolved_at = ?1, pending_since = NULL,
                pending_next_at = NULL, pending_stage = 0
         WHERE id = ?2 AND status IN ('open', 'pending')",
        )?
        .execute(params![ts(at), id])
        .context("Closing the ticket")?;
    Ok(n == 1)
}

/// Sets an open ticket pending; false when it was not open.
pub fn set_pending(conn: &Connection, id: i64, at: DateTime<Utc>) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE tickets SET status = 'pending', pending_since = ?1 WHERE id = ?2 AND status = 'open'",
        )?
        .execute(params![ts(at), id])
        .context("Setting the ticket pending")?;
    Ok(n > 0)
}

pub fn assign(conn: &Connection, id: i64, who: &str) -> Result<()> {
    conn.prepare_cached("UPDATE tickets SET assignee = ?1 WHERE id = ?2")?
        .execute(params![who, id])
        .context("Assigning the ticket")?;
    Ok(())
}

/// Reopens a resolved or closed ticket; false when it was not.
pub fn reopen(conn: &Connection, id: i64) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE tickets SET status = 'open', resolved_at = NULL, pending_since = NULL
             WHERE id = ?1 AND status IN ('resolved', 'closed')",
        )?
        .execute([id])
        .context("Reopening the ticket")?;
    Ok(n > 0)
}

/// A reopen with `reopen = "restart"`: both clocks count again from
/// `at`, a first response is due again, escalation starts over.
pub fn restart_clocks(conn: &Connection, id: i64, at: DateTime<Utc>, c: &Clocks) -> Result<()> {
    conn.prepare_cached(
        "UPDATE tickets SET sla_started_at = ?1, paused_secs = 0, first_responded_at = NULL,
                first_response_due = ?2, first_response_warn = ?3,
                resolution_due = ?4, resolution_warn = ?5, fr_level = 0, res_level = 0
         WHERE id = ?6",
    )?
    .execute(params![
        ts(at),
        c.first_response_due.map(ts),
        c.first_response_warn.map(ts),
        c.resolution_due.map(ts),
        c.resolution_warn.map(ts),
        id
    ])
    .context("Restarting the ticket's clocks")?;
    // Escalation starts over: the notices of the clocks' earlier run are
    // no longer "sent" for the new one (their mails stay in the outbox,
    // their events on the ticket).
    conn.prepare_cached("DELETE FROM escalations WHERE ticket_id = ?1")?
        .execute([id])
        .context("Starting escalation over")?;
    Ok(())
}

/// Back from pending (or, with `reopen = "resume"`, from resolved): open
/// again with the clocks the SLA engine moved (`lifecycle::resume`), the
/// `paused_secs` the clock stood still added to the ticket's total.
pub fn set_resumed(conn: &Connection, id: i64, paused_secs: i64, c: &Clocks) -> Result<()> {
    conn.prepare_cached(
        "UPDATE tickets SET status = 'open', pending_since = NULL, pending_next_at = NULL,
                pending_stage = 0, paused_secs = paused_secs + ?1,
                first_response_due = ?2, first_response_warn = ?3,
                resolution_due = ?4, resolution_warn = ?5
         WHERE id = ?6",
    )?
    .execute(params![
        paused_secs,
        c.first_response_due.map(ts),
        c.first_response_warn.map(ts),
        c.resolution_due.map(ts),
        c.resolution_warn.map(ts),
        id
    ])
    .context("Resuming the ticket")?;
    Ok(())
}

/// A ticket's priority (None when it has none).
pub fn priority(conn: &Connection, id: i64) -> Result<Option<String>> {
    conn.prepare_cached("SELECT priority FROM tickets WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .context("Reading the ticket's priority")
}

/// What the SLA engine needs to compute a ticket's clocks again.
pub struct SlaInputs {
    pub plan: String,
    pub category: Option<String>,
    pub customer_timezone: Option<String>,
    /// Where the clocks count from: the reception, or the last restart.
    pub received_at: Option<DateTime<Utc>>,
    /// Seconds the resolution clock stood still since then.
    pub paused_secs: i64,
}

pub fn sla_inputs(conn: &Connection, id: i64) -> Result<SlaInputs> {
    conn.prepare_cached(
        "SELECT plan, category, customer_timezone, coalesce(sla_started_at, received_at), paused_secs
         FROM tickets WHERE id = ?1",
    )?
    .query_row([id], |r| {
        Ok(SlaInputs {
            plan: r.get(0)?,
            category: r.get(1)?,
            customer_timezone: r.get(2)?,
            received_at: parse_ts(&r.get::<_, String>(3)?),
            paused_secs: r.get(4)?,
        })
    })
    .context("Reading the ticket")
}

/// A new priority with its clocks; escalation starts over.
pub fn set_priority(conn: &Connection, id: i64, priority: &str, c: &Clocks) -> Result<()> {
    conn.prepare_cached(
        "UPDATE tickets SET priority = ?1, first_response_due = ?2, first_response_warn = ?3,
                resolution_due = ?4, resolution_warn = ?5, fr_level = 0, res_level = 0
         WHERE id = ?6",
    )?
    .execute(params![
        priority,
        c.first_response_due.map(ts),
        c.first_response_warn.map(ts),
        c.resolution_due.map(ts),
        c.resolution_warn.map(ts),
        id
    ])
    .context("Updating the priority")?;
    Ok(())
}

/// The highest escalation level handled for one clock.
pub fn set_level(conn: &Connection, id: i64, clock: Clock, rank: u8) -> Result<()> {
    let sql = match clock {
        Clock::FirstResponse => "UPDATE tickets SET fr_level = ?1 WHERE id = ?2",
        Clock::Resolution => "UPDATE tickets SET res_level = ?1 WHERE id = ?2",
    };
    conn.prepare_cached(sql)?
        .execute(params![rank, id])
        .context("Recording the escalation level")?;
    Ok(())
}

pub fn event(
    conn: &Connection,
    id: i64,
    actor: &str,
    action: &str,
    detail: Option<&str>,
    at: DateTime<Utc>,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO ticket_events (ticket_id, at, actor, action, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![id, ts(at), actor, action, detail])
    .context("Recording a ticket event")?;
    Ok(())
}

/// Holds a ticket's acknowledgement: `held` (JSON) is what rendering it
/// again needs.
pub fn hold_ack(conn: &Connection, id: i64, held: &str) -> Result<()> {
    conn.prepare_cached("UPDATE tickets SET held_ack = ?2 WHERE id = ?1")?
        .execute(params![id, held])
        .context("Holding the acknowledgement")?;
    Ok(())
}

/// Up to `limit` held acknowledgements, oldest ticket first.
pub fn held_acks(conn: &Connection, limit: usize) -> Result<Vec<(i64, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, held_ack FROM tickets INDEXED BY tickets_held_ack
         WHERE held_ack IS NOT NULL ORDER BY id LIMIT ?1",
    )?;
    let rows = stmt
        .query_map([limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .context("Reading held acknowledgements")?;
    Ok(rows)
}

/// Releases a held acknowledgement; false when it is no longer the one
/// read (released meanwhile).
pub fn release_ack(conn: &Connection, id: i64, held: &str) -> Result<bool> {
    let n = conn
        .prepare_cached("UPDATE tickets SET held_ack = NULL WHERE id = ?1 AND held_ack = ?2")?
        .execute(params![id, held])
        .context("Releasing the acknowledgement")?;
    Ok(n > 0)
}

/// How many acknowledgements are held.
pub fn held_ack_count(conn: &Connection) -> Result<i64> {
    conn.prepare_cached(
        "SELECT count(*) FROM tickets INDEXED BY tickets_held_ack WHERE held_ack IS NOT NULL",
    )?
    .query_row([], |r| r.get(0))
    .context("Counting held acknowledgements")
}

// ---------------------------------------------------------------- pending reminders

/// Sets when the sweeper next looks at a pending ticket (None: never),
/// and what was done so far (0 nothing, 1 reminded).
pub fn set_pending_next(
    conn: &Connection,
    id: i64,
    next: Option<DateTime<Utc>>,
    stage: u8,
) -> Result<()> {
    conn.prepare_cached(
        "UPDATE tickets SET pending_next_at = ?1, pending_stage = ?2 WHERE id = ?3",
    )?
    .execute(params![next.map(ts), stage, id])
    .context("Scheduling the pending reminder")?;
    Ok(())
}

/// Pending tickets whose reminder or auto-close instant is at or before
/// `now`, at most `limit`.
pub fn pending_due(conn: &Connection, now: DateTime<Utc>, limit: usize) -> Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM tickets INDEXED BY tickets_pending_next
         WHERE pending_next_at IS NOT NULL AND pending_next_at <= ?1 AND status = 'pending' LIMIT ?2",
    )?;
    let ids = stmt
        .query_map(params![ts(now), limit as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()
        .context("Finding pending tickets to remind")?;
    Ok(ids)
}

/// What a reminder or an auto-close of a pending ticket needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRow {
    pub reference: String,
    pub subject: String,
    pub requester: String,
    pub requester_name: Option<String>,
    pub language: String,
    pub plan: String,
    pub customer_timezone: Option<String>,
    pub status: String,
    pub pending_since: Option<String>,
    pub pending_next_at: Option<String>,
    pub pending_stage: u8,
    /// The Message-ID of the ticket's first incoming message, to thread.
    pub first_message_id: Option<String>,
}

pub fn pending_row(conn: &Connection, id: i64) -> Result<PendingRow> {
    conn.prepare_cached(
        "SELECT reference, subject, requester, requester_name, language, plan, customer_timezone,
                status, pending_since, pending_next_at, pending_stage,
                (SELECT message_id FROM messages WHERE ticket_id = tickets.id AND direction = 'in'
                  ORDER BY id LIMIT 1)
         FROM tickets WHERE id = ?1",
    )?
    .query_row([id], |r| {
        Ok(PendingRow {
            reference: r.get(0)?,
            subject: r.get(1)?,
            requester: r.get(2)?,
            requester_name: r.get(3)?,
            language: r.get(4)?,
            plan: r.get(5)?,
            customer_timezone: r.get(6)?,
            status: r.get(7)?,
            pending_since: r.get(8)?,
            pending_next_at: r.get(9)?,
            pending_stage: r.get(10)?,
            first_message_id: r.get(11)?,
        })
    })
    .context("Reading a pending ticket")
}
