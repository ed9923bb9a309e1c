//! The `mailbox_health` table: each mailbox's last good pass, last error,
//! and whether the admin has been alerted about it; and `desk_alerts`,
//! the same for conditions of the desk itself (held acknowledgements).

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{parse_ts, ts};

/// Records the outcome of one pass over `mailbox`.
pub fn record(
    conn: &Connection,
    mailbox: &str,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<()> {
    match error {
        None => conn.execute(
            "INSERT INTO mailbox_health (mailbox, last_ok_at) VALUES (?1, ?2)
             ON CONFLICT(mailbox) DO UPDATE SET last_ok_at = excluded.last_ok_at, last_error = NULL",
            params![mailbox, ts(now)],
        ),
        Some(e) => conn.execute(
            "INSERT INTO mailbox_health (mailbox, last_error, last_error_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(mailbox) DO UPDATE SET last_error = excluded.last_error, last_error_at = excluded.last_error_at",
            params![mailbox, e, ts(now)],
        ),
    }
    .context("Recording mailbox health")?;
    Ok(())
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    pub last_ok: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub alerted: Option<DateTime<Utc>>,
}

pub fn read(conn: &Connection, mailbox: &str) -> Result<Health> {
    let row = conn
        .prepare_cached(
            "SELECT last_ok_at, last_error, alerted_at FROM mailbox_health WHERE mailbox = ?1",
        )?
        .query_row([mailbox], |r| {
            Ok(Health {
                last_ok: r.get::<_, Option<String>>(0)?.as_deref().and_then(parse_ts),
                last_error: r.get(1)?,
                alerted: r.get::<_, Option<String>>(2)?.as_deref().and_then(parse_ts),
            })
        })
        .optional()
        .context("Reading mailbox health")?;
    Ok(row.unwrap_or_default())
}

/// The admin was alerted at `at` (Some) or told of the recovery (None).
pub fn set_alerted(conn: &Connection, mailbox: &str, at: Option<DateTime<Utc>>) -> Result<()> {
    match at {
        Some(at) => conn.execute(
            "INSERT INTO mailbox_health (mailbox, alerted_at) VALUES (?1, ?2)
             ON CONFLICT(mailbox) DO UPDATE SET alerted_at = excluded.alerted_at",
            params![mailbox, ts(at)],
        ),
        None => conn.execute(
            "UPDATE mailbox_health SET alerted_at = NULL WHERE mailbox = ?1",
            [mailbox],
        ),
    }
    .context("Recording the alert")?;
    Ok(())
}

/// When the admin was alerted about the desk condition `name`, if the
/// alert stands.
pub fn desk_alert(conn: &Connection, name: &str) -> Result<Option<DateTime<Utc>>> {
    Ok(conn
        .prepare_cached("SELECT alerted_at FROM desk_alerts WHERE name = ?1")?
        .query_row([name], |r| r.get::<_, String>(0))
        .optional()
        .context("Reading the desk alert")?
        .as_deref()
        .and_then(parse_ts))
}

/// Records the alert (Some) or clears it on recovery (None).
pub fn set_desk_alert(
    conn: &Connection,
    name: &str,
    at: Option<DateTime<Utc>>,
    detail: Option<&str>,
) -> Result<()> {
    match at {
        Some(at) => conn.execute(
            "INSERT INTO desk_alerts (name, alerted_at, detail) VALUES (?1, ?2, ?3)
             ON CONFLICT(name) DO UPDATE SET alerted_at = excluded.alerted_at, detail = excluded.detail",
            params![name, ts(at), detail],
        ),
        None => conn.execute("DELETE FROM desk_alerts WHERE name = ?1", [name]),
    }
    .context("Recording the desk alert")?;
    Ok(())
}
