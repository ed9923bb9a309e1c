//! Mailbox health: the last good pass and the last error of every
//! mailbox, and the admin alert when one has not been fetched for
//! `desk.fetch_alert_after` (one mail when it starts, one on recovery).

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use rusqlite::{Connection, OptionalExtension, params};

use crate::config::Config;
use crate::ingest::enqueue;
use crate::mail::compose::{self, Reply};
use crate::store::{parse_ts, ts};

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

/// Queues the alerts owed at `now`: a mailbox without a good pass since
/// `fetch_alert_after` (counted from `started` when it never had one in
/// this run) gets one alert; a later good pass gets one recovery notice.
/// Returns the number of mails queued.
pub fn check(
    conn: &mut Connection,
    cfg: &Config,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<usize> {
    let Some(admin) = cfg.desk.admin_address.clone() else {
        return Ok(0);
    };
    let tx = crate::store::begin(conn).context("Starting the health check")?;
    let mut queued = 0;
    for mb in &cfg.mailboxes {
        let row: Option<(Option<String>, Option<String>, Option<String>)> = tx
            .query_row(
                "SELECT last_ok_at, last_error, alerted_at FROM mailbox_health WHERE mailbox = ?1",
                [&mb.name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .context("Reading mailbox health")?;
        let (last_ok, last_error, alerted) = row.unwrap_or((None, None, None));
        let last_ok = last_ok.as_deref().and_then(parse_ts);
        let alerted = alerted.as_deref().and_then(parse_ts);
        match alerted {
            None => {
                let since = last_ok.map_or(started, |t| t.max(started));
                if now - since < cfg.desk.fetch_alert_after {
                    continue;
                }
                let body = format!(
                    "Mailbox \"{}\" has not been fetched since {} ({}).\n\nLast error: {}\n\nNew mail there is not turned into tickets until this is fixed;\nnothing is lost: it is fetched when the mailbox is reachable again.\n\n-- \n{}\n",
                    mb.name,
                    ts(since),
                    if last_ok.is_some() {
                        "last good pass"
                    } else {
                        "daemon start, no good pass since"
                    },
                    last_error.as_deref().unwrap_or("none recorded"),
                    cfg.desk.name
                );
                queue(
                    &tx,
                    cfg,
                    &admin,
                    &format!("[{}] mailbox {} cannot be fetched", cfg.desk.name, mb.name),
                    &body,
                    now,
                )?;
                tx.execute(
                    "INSERT INTO mailbox_health (mailbox, alerted_at) VALUES (?1, ?2)
                     ON CONFLICT(mailbox) DO UPDATE SET alerted_at = excluded.alerted_at",
                    params![mb.name, ts(now)],
                )
                .context("Recording the alert")?;
                tracing::warn!(mailbox = %mb.name, "fetch alert sent to the admin");
                queued += 1;
            }
            Some(at) if last_ok.is_some_and(|ok| ok > at) => {
                let body = format!(
                    "Mailbox \"{}\" is fetched again (good pass at {}).\n\n-- \n{}\n",
                    mb.name,
                    ts(last_ok.unwrap_or(now)),
                    cfg.desk.name
                );
                queue(
                    &tx,
                    cfg,
                    &admin,
                    &format!("[{}] mailbox {} recovered", cfg.desk.name, mb.name),
                    &body,
                    now,
                )?;
                tx.execute(
                    "UPDATE mailbox_health SET alerted_at = NULL WHERE mailbox = ?1",
                    [&mb.name],
                )
                .context("Clearing the alert")?;
                tracing::info!(mailbox = %mb.name, "recovery notice sent to the admin");
                queued += 1;
            }
            Some(_) => {}
        }
    }
    tx.commit().context("Committing the health check")?;
    Ok(queued)
}

fn queue(
    tx: &rusqlite::Transaction<'_>,
    cfg: &Config,
    to: &Mailbox,
    subject: &str,
    body: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let out = compose::compose(&Reply {
        from: &cfg.desk.address,
        to: to.clone(),
        subject,
        body,
        html: None,
        in_reply_to: None,
        references: &[],
        reference: "desk",
        kind: "alert",
        auto_submitted: Some("auto-generated"),
    })?;
    enqueue(tx, None, "alert", &out, now)
}
