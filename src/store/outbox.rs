//! The `outbox` table: mail waiting to be delivered, and its delivery
//! state machine (pending -> claimed -> sent | pending again | failed).
//! The delivery itself is the shell's (src/mail/outbox.rs).

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::{parse_ts, ts};

/// A composed message to queue.
pub struct NewOutgoing<'a> {
    pub ticket: Option<i64>,
    /// ack, escalation, alert
    pub kind: &'a str,
    pub message_id: &'a str,
    pub sender: &'a str,
    pub recipients: &'a [String],
    pub raw: &'a [u8],
}

/// Queues a message, due now; returns its row id.
pub fn enqueue(conn: &Connection, m: &NewOutgoing<'_>, now: DateTime<Utc>) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO outbox (ticket_id, kind, message_id, sender, recipients, raw, status, attempts, next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', 0, ?7, ?7)",
    )?
    .execute(params![
        m.ticket,
        m.kind,
        m.message_id,
        m.sender,
        m.recipients.join(","),
        m.raw,
        ts(now)
    ])
    .context("Queueing the outgoing message")?;
    Ok(conn.last_insert_rowid())
}

/// Queues a composed mail, due now; returns its row id.
pub fn enqueue_mail(
    conn: &Connection,
    ticket: Option<i64>,
    kind: &str,
    out: &crate::compose::Outgoing,
    now: DateTime<Utc>,
) -> Result<i64> {
    enqueue(
        conn,
        &NewOutgoing {
            ticket,
            kind,
            message_id: &out.message_id,
            sender: &out.sender,
            recipients: &out.recipients,
            raw: &out.raw,
        },
        now,
    )
}

/// Acknowledgements queued to `recipient` (lowercase) since `since`.
pub fn acks_since(conn: &Connection, recipient: &str, since: DateTime<Utc>) -> Result<i64> {
    conn.prepare_cached(
        "SELECT count(*) FROM outbox WHERE kind = 'ack' AND lower(recipients) = ?1 AND created_at >= ?2",
    )?
    .query_row(params![recipient, ts(since)], |r| r.get(0))
    .context("Counting recent acknowledgements")
}

/// The ticket of an outgoing message with this Message-ID.
pub fn ticket_of(conn: &Connection, message_id: &str) -> Result<Option<i64>> {
    use rusqlite::OptionalExtension;
    conn.prepare_cached(
        "SELECT ticket_id FROM outbox WHERE message_id = ?1 AND ticket_id IS NOT NULL LIMIT 1",
    )?
    .query_row([message_id], |r| r.get(0))
    .optional()
    .context("Looking up references")
}

/// A row claimed for delivery.
#[derive(Debug)]
pub struct Claimed {
    pub id: i64,
    pub message_id: String,
    pub sender: String,
    pub recipients: Vec<String>,
    pub raw: Vec<u8>,
    /// Including this one.
    pub attempts: u32,
}

/// Claims up to `limit` due rows: counts the attempt and pushes the next
/// attempt back by `backoff(attempts)`, so a crash mid-send retries later.
pub fn claim(
    conn: &mut Connection,
    now: DateTime<Utc>,
    limit: i64,
    backoff: impl Fn(u32) -> std::time::Duration,
) -> Result<Vec<Claimed>> {
    let tx = super::begin(conn).context("Starting the claim")?;
    let rows = {
        let mut stmt = tx.prepare_cached(
            "SELECT id, message_id, sender, recipients, raw, attempts FROM outbox
             WHERE status = 'pending' AND next_attempt_at <= ?1 ORDER BY id LIMIT ?2",
        )?;
        stmt.query_map(params![ts(now), limit], |r| {
            Ok(Claimed {
                id: r.get(0)?,
                message_id: r.get(1)?,
                sender: r.get(2)?,
                recipients: r
                    .get::<_, String>(3)?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                raw: r.get(4)?,
                attempts: r.get::<_, u32>(5)? + 1,
            })
        })?
        .collect::<rusqlite::Result<Vec<Claimed>>>()
        .context("Reading due mail")?
    };
    {
        let mut up = tx.prepare_cached(
            "UPDATE outbox SET attempts = ?2, next_attempt_at = ?3, claimed_at = ?4 WHERE id = ?1",
        )?;
        for r in &rows {
            let next = now + chrono::Duration::from_std(backoff(r.attempts))?;
            up.execute(params![r.id, r.attempts, ts(next), ts(now)])
                .context("Claiming a row")?;
        }
    }
    tx.commit().context("Committing the claim")?;
    Ok(rows)
}

pub fn mark_sent(conn: &Connection, id: i64, now: DateTime<Utc>) -> Result<()> {
    conn.prepare_cached(
        "UPDATE outbox SET status = 'sent', sent_at = ?2, last_error = NULL, claimed_at = NULL WHERE id = ?1",
    )?
    .execute(params![id, ts(now)])
    .context("Recording the delivery")?;
    Ok(())
}

/// Not delivered this time; due again at the backoff set by `claim`.
pub fn retry_later(conn: &Connection, id: i64, error: &str) -> Result<()> {
    conn.prepare_cached("UPDATE outbox SET last_error = ?2, claimed_at = NULL WHERE id = ?1")?
        .execute(params![id, error])
        .context("Recording the failed attempt")?;
    Ok(())
}

pub fn mark_failed(conn: &Connection, id: i64, error: &str) -> Result<()> {
    conn.prepare_cached(
        "UPDATE outbox SET status = 'failed', last_error = ?2, claimed_at = NULL WHERE id = ?1",
    )?
    .execute(params![id, error])
    .context("Recording the failed delivery")?;
    Ok(())
}

/// Rows a previous process claimed and never finished (it was killed
/// mid-send) are due again `now`; the attempt they used still counts.
pub fn recover_interrupted(conn: &Connection, now: DateTime<Utc>) -> Result<usize> {
    conn.execute(
        "UPDATE outbox SET next_attempt_at = ?1, claimed_at = NULL
         WHERE status = 'pending' AND claimed_at IS NOT NULL",
        [ts(now)],
    )
    .context("Resuming interrupted deliveries")
}

/// When the next pending row is due.
pub fn next_due(conn: &Connection) -> Result<Option<DateTime<Utc>>> {
    let next: Option<String> = conn
        .prepare_cached("SELECT min(next_attempt_at) FROM outbox WHERE status = 'pending'")?
        .query_row([], |r| r.get(0))
        .context("Reading the next due mail")?;
    Ok(next.as_deref().and_then(parse_ts))
}
