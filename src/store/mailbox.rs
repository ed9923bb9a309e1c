//! The `mailbox_state` table: per IMAP mailbox, its UIDVALIDITY and the
//! highest UID committed (the watermark a pass starts above).

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::ts;

/// The last UID committed under `uidvalidity`: 0 for a new mailbox, and
/// 0 again when the server's UIDVALIDITY changed (every UID is new then;
/// Message-ID dedupe in ingest keeps mail already ticketed from being
/// ticketed twice).
pub fn watermark(conn: &Connection, mailbox: &str, uidvalidity: u32) -> Result<u32> {
    let state: Option<(u32, u32)> = conn
        .prepare_cached("SELECT uidvalidity, last_uid FROM mailbox_state WHERE mailbox = ?1")?
        .query_row([mailbox], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .context("Reading the mailbox watermark")?;
    match state {
        Some((v, last)) if v == uidvalidity => Ok(last),
        Some(_) => {
            tracing::warn!(mailbox, uidvalidity, "UIDVALIDITY changed; rescanning");
            conn.execute(
                "UPDATE mailbox_state SET uidvalidity = ?2, last_uid = 0 WHERE mailbox = ?1",
                params![mailbox, uidvalidity],
            )
            .context("Resetting the mailbox watermark")?;
            Ok(0)
        }
        None => {
            conn.execute(
                "INSERT INTO mailbox_state (mailbox, uidvalidity, last_uid) VALUES (?1, ?2, 0)",
                params![mailbox, uidvalidity],
            )
            .context("Creating the mailbox watermark")?;
            Ok(0)
        }
    }
}

/// Moves the watermark up to `uid` (never down under the same UIDVALIDITY).
pub fn advance(
    conn: &Connection,
    mailbox: &str,
    uidvalidity: u32,
    uid: u32,
    now: DateTime<Utc>,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO mailbox_state (mailbox, uidvalidity, last_uid, last_poll_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(mailbox) DO UPDATE SET
           last_uid = CASE WHEN uidvalidity = excluded.uidvalidity THEN max(last_uid, excluded.last_uid) ELSE excluded.last_uid END,
           uidvalidity = excluded.uidvalidity",
    )?
    .execute(params![mailbox, uidvalidity, uid, ts(now)])
    .context("Updating the mailbox watermark")?;
    Ok(())
}
