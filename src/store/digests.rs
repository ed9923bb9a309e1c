//! The manager digests sent (`digests`): what makes each go out once per
//! period and recipient, across restarts.

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, params};

/// Whether digest `name` for the period starting `first_day` was queued
/// for every one of `recipients` already.
pub fn all_sent(
    conn: &Connection,
    name: &str,
    first_day: NaiveDate,
    recipients: &[String],
) -> Result<bool> {
    let mut stmt = conn.prepare_cached(
        "SELECT count(*) FROM digests WHERE name = ?1 AND first_day = ?2 AND recipient = ?3",
    )?;
    for r in recipients {
        let n: i64 = stmt
            .query_row(params![name, first_day.to_string(), r], |row| row.get(0))
            .context("Reading the digests sent")?;
        if n == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Records the sending to `recipient`; false when it was recorded
/// already (nothing is to be queued then).
pub fn record(
    conn: &Connection,
    name: &str,
    first_day: NaiveDate,
    recipient: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO digests (name, first_day, recipient, queued_at)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            name,
            first_day.to_string(),
            recipient,
            super::ts(now)
        ])
        .context("Recording a digest")?;
    Ok(n == 1)
}

/// Links the recorded sending to its outbox row.
pub fn set_outbox(
    conn: &Connection,
    name: &str,
    first_day: NaiveDate,
    recipient: &str,
    outbox_id: i64,
) -> Result<()> {
    conn.prepare_cached(
        "UPDATE digests SET outbox_id = ?4 WHERE name = ?1 AND first_day = ?2 AND recipient = ?3",
    )?
    .execute(params![name, first_day.to_string(), recipient, outbox_id])
    .context("Recording a digest")?;
    Ok(())
}
