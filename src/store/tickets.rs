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
