//! Ticket queries for the CLI and tests.

use anyhow::{Context, Result};
use rusqlite::Connection;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct TicketRow {
    pub reference: String,
    pub status: String,
    pub subject: String,
    pub requester: String,
    pub plan: String,
    pub language: String,
    pub category: Option<String>,
    pub priority: Option<String>,
    pub received_at: String,
    pub first_response_due: Option<String>,
    pub resolution_due: Option<String>,
}

pub fn list(conn: &Connection, status: Option<&str>) -> Result<Vec<TicketRow>> {
    let mut stmt = conn
        .prepare(
            "SELECT reference, status, subject, requester, plan, language, category, priority,
                    received_at, first_response_due, resolution_due
             FROM tickets WHERE ?1 IS NULL OR status = ?1 ORDER BY id",
        )
        .context("Preparing the ticket list")?;
    let rows = stmt
        .query_map([status], |r| {
            Ok(TicketRow {
                reference: r.get(0)?,
                status: r.get(1)?,
                subject: r.get(2)?,
                requester: r.get(3)?,
                plan: r.get(4)?,
                language: r.get(5)?,
                category: r.get(6)?,
                priority: r.get(7)?,
                received_at: r.get(8)?,
                first_response_due: r.get(9)?,
                resolution_due: r.get(10)?,
            })
        })
        .context("Listing tickets")?
        .collect::<rusqlite::Result<Vec<_>>>()
        .context("Reading tickets")?;
    Ok(rows)
}

#[derive(Debug, Serialize)]
pub struct MailboxStatus {
    pub mailbox: String,
    pub last_poll_at: Option<String>,
    pub last_error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub mailboxes: Vec<MailboxStatus>,
    pub outbox_pending: i64,
    pub outbox_oldest_pending: Option<String>,
    pub outbox_failed: i64,
    pub open_tickets: i64,
    pub breaching: i64,
    pub unticketed_messages: i64,
}

/// Health figures for `supportdesk status`; `now` is RFC 3339 UTC.
pub fn status(conn: &Connection, now: &str) -> Result<Status> {
    let mut stmt = conn
        .prepare("SELECT mailbox, last_poll_at, last_error FROM mailbox_state ORDER BY mailbox")
        .context("Preparing mailbox status")?;
    let mailboxes = stmt
        .query_map([], |r| {
            Ok(MailboxStatus {
                mailbox: r.get(0)?,
                last_poll_at: r.get(1)?,
                last_error: r.get(2)?,
            })
        })
        .context("Reading mailbox status")?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let one = |sql: &str| -> Result<i64> {
        conn.query_row(sql, [], |r| r.get(0))
            .with_context(|| format!("Running {sql}"))
    };
    Ok(Status {
        mailboxes,
        outbox_pending: one("SELECT count(*) FROM outbox WHERE status = 'pending'")?,
        outbox_oldest_pending: conn
            .query_row(
                "SELECT min(created_at) FROM outbox WHERE status = 'pending'",
                [],
                |r| r.get(0),
            )
            .context("Reading the oldest pending mail")?,
        outbox_failed: one("SELECT count(*) FROM outbox WHERE status = 'failed'")?,
        open_tickets: one("SELECT count(*) FROM tickets WHERE status IN ('open', 'pending')")?,
        breaching: conn
            .query_row(
                "SELECT count(*) FROM tickets WHERE status IN ('open', 'pending')
                   AND ((first_responded_at IS NULL AND first_response_due < ?1)
                     OR (resolution_due < ?1))",
                [now],
                |r| r.get(0),
            )
            .context("Counting breaching tickets")?,
        unticketed_messages: one("SELECT count(*) FROM messages WHERE ticket_id IS NULL")?,
    })
}
