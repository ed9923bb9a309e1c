//! The `outbox` table: mail waiting to be delivered, and its delivery
//! state machine (pending -> claimed -> sent | pending again | failed);
//! the CLI's reads and `retry` of it; and `outbox_health`, the state of
//! the SMTP session. The delivery itself is the shell's
//! (src/mail/outbox.rs).

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use serde::Serialize;

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
        "INSERT INTO outbox (ticket_id, kind, message_id, sender, recipients, raw, status, attempts, next_attempt_at, created_at, recipient_domain)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', 0, ?7, ?7, ?8)",
    )?
    .execute(params![
        m.ticket,
        m.kind,
        m.message_id,
        m.sender,
        m.recipients.join(","),
        m.raw,
        ts(now),
        recipient_domain(m.recipients),
    ])
    .context("Queueing the outgoing message")?;
    Ok(conn.last_insert_rowid())
}

/// The domain an acknowledgement's per-domain limit counts it under: that
/// of its one recipient (lowercase, after the last '@', as
/// [`crate::core::auth::domain_of`] reads the address it is decided on).
fn recipient_domain(recipients: &[String]) -> Option<String> {
    match recipients {
        [one] => crate::core::auth::domain_of(one),
        _ => None,
    }
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

/// Queues a composed mail held until `not_before` (an escalation notice
/// waiting for its recipient's office hours); the queue lifetime counts
/// from then.
pub fn enqueue_mail_held(
    conn: &Connection,
    ticket: Option<i64>,
    kind: &str,
    out: &crate::compose::Outgoing,
    now: DateTime<Utc>,
    not_before: DateTime<Utc>,
) -> Result<i64> {
    let id = enqueue_mail(conn, ticket, kind, out, now)?;
    if not_before > now {
        conn.prepare_cached(
            "UPDATE outbox SET next_attempt_at = ?1, retried_at = ?1 WHERE id = ?2",
        )?
        .execute(params![ts(not_before), id])
        .context("Holding the outgoing message")?;
    }
    Ok(id)
}

/// Acknowledgements queued to `recipient` (lowercase) since `since`.
pub fn acks_since(conn: &Connection, recipient: &str, since: DateTime<Utc>) -> Result<i64> {
    conn.prepare_cached(
        "SELECT count(*) FROM outbox WHERE kind = 'ack' AND lower(recipients) = ?1 AND created_at >= ?2",
    )?
    .query_row(params![recipient, ts(since)], |r| r.get(0))
    .context("Counting recent acknowledgements")
}

/// Acknowledgements queued to anyone since `since`.
pub fn acks_all_since(conn: &Connection, since: DateTime<Utc>) -> Result<i64> {
    conn.prepare_cached("SELECT count(*) FROM outbox WHERE kind = 'ack' AND created_at >= ?1")?
        .query_row(params![ts(since)], |r| r.get(0))
        .context("Counting recent acknowledgements")
}

/// Acknowledgements queued to addresses of `domain` (lowercase) since
/// `since`, by the (domain, created_at) index: the cost is that of the
/// domain's own recent acknowledgements, not of everyone's.
pub fn acks_domain_since(conn: &Connection, domain: &str, since: DateTime<Utc>) -> Result<i64> {
    conn.prepare_cached(
        "SELECT count(*) FROM outbox INDEXED BY outbox_ack_domain
         WHERE kind = 'ack' AND recipient_domain = ?1 AND created_at >= ?2",
    )?
    .query_row(params![domain, ts(since)], |r| r.get(0))
    .context("Counting recent acknowledgements to a domain")
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
    /// Deliveries the server answered so far (this one not included).
    pub attempts: u32,
    /// Where its queue lifetime starts: queued, or put back by `retry`.
    pub queued_at: DateTime<Utc>,
}

/// Claims up to `limit` due rows: marks them claimed and pushes their
/// next attempt back by `lease(attempts)`, so an interrupted send retries
/// later. Claiming charges no attempt: only the server's answer does.
pub fn claim(
    conn: &mut Connection,
    now: DateTime<Utc>,
    limit: i64,
    lease: impl Fn(u32) -> std::time::Duration,
) -> Result<Vec<Claimed>> {
    let tx = super::begin(conn).context("Starting the claim")?;
    let rows = {
        let mut stmt = tx.prepare_cached(
            "SELECT id, message_id, sender, recipients, raw, attempts, coalesce(retried_at, created_at)
             FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?1 ORDER BY id LIMIT ?2",
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
                attempts: r.get(5)?,
                queued_at: parse_ts(&r.get::<_, String>(6)?).unwrap_or(now),
            })
        })?
        .collect::<rusqlite::Result<Vec<Claimed>>>()
        .context("Reading due mail")?
    };
    {
        let mut up = tx.prepare_cached(
            "UPDATE outbox SET next_attempt_at = ?2, claimed_at = ?3 WHERE id = ?1",
        )?;
        for r in &rows {
            let next = now + chrono::Duration::from_std(lease(r.attempts))?;
            up.execute(params![r.id, ts(next), ts(now)])
                .context("Claiming a row")?;
        }
    }
    tx.commit().context("Committing the claim")?;
    Ok(rows)
}

/// Delivered; `attempts` includes this one.
pub fn mark_sent(conn: &Connection, id: i64, attempts: u32, now: DateTime<Utc>) -> Result<()> {
    conn.prepare_cached(
        "UPDATE outbox SET status = 'sent', attempts = ?2, sent_at = ?3, last_error = NULL, claimed_at = NULL
         WHERE id = ?1",
    )?
    .execute(params![id, attempts, ts(now)])
    .context("Recording the delivery")?;
    Ok(())
}

/// Not delivered this time; due again at `next`. `attempts` is the new
/// count: one more when the server answered (4xx), the same when it did
/// not (the session was lost).
pub fn retry_later(
    conn: &Connection,
    id: i64,
    attempts: u32,
    error: &str,
    next: DateTime<Utc>,
) -> Result<()> {
    conn.prepare_cached(
        "UPDATE outbox SET attempts = ?2, last_error = ?3, next_attempt_at = ?4, claimed_at = NULL
         WHERE id = ?1",
    )?
    .execute(params![id, attempts, error, ts(next)])
    .context("Recording the failed attempt")?;
    Ok(())
}

pub fn mark_failed(conn: &Connection, id: i64, attempts: u32, error: &str) -> Result<()> {
    conn.prepare_cached(
        "UPDATE outbox SET status = 'failed', attempts = ?2, last_error = ?3, claimed_at = NULL
         WHERE id = ?1",
    )?
    .execute(params![id, attempts, error])
    .context("Recording the failed delivery")?;
    Ok(())
}

/// Claimed rows that were never tried because there was no session
/// (server unreachable, login refused): due again at once, nothing
/// charged; the session's own backoff decides when the next try is.
pub fn release(conn: &mut Connection, ids: &[i64], error: &str, now: DateTime<Utc>) -> Result<()> {
    let tx = super::begin(conn).context("Starting the release")?;
    {
        let mut up = tx.prepare_cached(
            "UPDATE outbox SET last_error = ?2, next_attempt_at = ?3, claimed_at = NULL
             WHERE id = ?1 AND status = 'pending'",
        )?;
        for id in ids {
            up.execute(params![id, error, ts(now)])
                .context("Releasing a row")?;
        }
    }
    tx.commit().context("Committing the release")
}

/// A row given up on for its age.
#[derive(Debug)]
pub struct Expired {
    pub id: i64,
    pub message_id: String,
    pub recipients: String,
}

/// Pending rows queued (or put back by `retry`) before `cutoff` fail,
/// with `reason` and their last error in `last_error`.
pub fn expire(conn: &Connection, cutoff: DateTime<Utc>, reason: &str) -> Result<Vec<Expired>> {
    conn.prepare_cached(
        "UPDATE outbox SET status = 'failed', claimed_at = NULL,
                last_error = ?2 || coalesce('; last error: ' || last_error, '; never tried')
         WHERE status = 'pending' AND coalesce(retried_at, created_at) < ?1
         RETURNING id, message_id, recipients",
    )?
    .query_map(params![ts(cutoff), reason], |r| {
        Ok(Expired {
            id: r.get(0)?,
            message_id: r.get(1)?,
            recipients: r.get(2)?,
        })
    })?
    .collect::<rusqlite::Result<Vec<_>>>()
    .context("Expiring old mail")
}

/// Rows a previous process claimed and never finished (it was killed
/// mid-send) are due again `now`; nothing is charged for the try.
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

// ---------------------------------------------------------------- the CLI

/// One row as `outbox list` and `outbox show` print it.
#[derive(Debug, Serialize)]
pub struct Entry {
    pub id: i64,
    pub status: String,
    pub kind: String,
    /// The ticket's reference.
    pub ticket: Option<String>,
    pub message_id: String,
    pub sender: String,
    pub recipients: String,
    pub subject: Option<String>,
    pub attempts: i64,
    pub created_at: String,
    pub retried_at: Option<String>,
    pub next_attempt_at: String,
    pub sent_at: Option<String>,
    pub last_error: Option<String>,
    pub size: i64,
}

/// The columns `entry` reads, and where from.
const COLUMNS: &str = "o.id, o.status, o.kind, t.reference, o.message_id, o.sender, o.recipients,
     o.attempts, o.created_at, o.retried_at, o.next_attempt_at, o.sent_at, o.last_error,
     length(o.raw), substr(o.raw, 1, 8192)";
const FROM: &str = "FROM outbox o LEFT JOIN tickets t ON t.id = o.ticket_id";

fn entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    let raw: Vec<u8> = r.get(14)?;
    Ok(Entry {
        id: r.get(0)?,
        status: r.get(1)?,
        kind: r.get(2)?,
        ticket: r.get(3)?,
        message_id: r.get(4)?,
        sender: r.get(5)?,
        recipients: r.get(6)?,
        subject: subject_of(&raw),
        attempts: r.get(7)?,
        created_at: r.get(8)?,
        retried_at: r.get(9)?,
        next_attempt_at: r.get(10)?,
        sent_at: r.get(11)?,
        last_error: r.get(12)?,
        size: r.get(13)?,
    })
}

/// The decoded Subject of a message the desk composed (from its first
/// 8 KiB, where the desk's own headers are).
fn subject_of(raw: &[u8]) -> Option<String> {
    mail_parser::MessageParser::default()
        .parse_headers(raw)
        .and_then(|m| m.subject().map(str::to_string))
}

/// Mail not delivered (pending and failed), or only the failed, oldest first.
pub fn list(conn: &Connection, failed_only: bool) -> Result<Vec<Entry>> {
    let sql = format!("SELECT {COLUMNS} {FROM} WHERE o.status IN ('failed', ?1) ORDER BY o.id");
    let other = if failed_only { "failed" } else { "pending" };
    conn.prepare(&sql)
        .context("Preparing the outbox list")?
        .query_map([other], entry)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .context("Reading the outbox")
}

/// One row with its raw message, any status.
pub fn show(conn: &Connection, id: i64) -> Result<Option<(Entry, Vec<u8>)>> {
    use rusqlite::OptionalExtension;
    conn.prepare(&format!("SELECT {COLUMNS}, o.raw {FROM} WHERE o.id = ?1"))
        .context("Preparing the outbox row")?
        .query_row([id], |r| Ok((entry(r)?, r.get(15)?)))
        .optional()
        .context("Reading the outbox row")
}

/// What `retry` did to one row.
#[derive(Debug, PartialEq, Eq)]
pub enum Retry {
    /// Back in the queue, due now, with its attempts and lifetime reset.
    Queued,
    AlreadySent,
    NotFound,
}

/// Puts a failed (or pending) row back in the queue, due now, as if new:
/// no attempts, its queue lifetime counted from `now`. A sent row stays.
pub fn retry(conn: &Connection, id: i64, now: DateTime<Utc>) -> Result<Retry> {
    use rusqlite::OptionalExtension;
    let status: Option<String> = conn
        .query_row("SELECT status FROM outbox WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()
        .context("Reading the outbox row")?;
    match status.as_deref() {
        None => Ok(Retry::NotFound),
        Some("sent") => Ok(Retry::AlreadySent),
        Some(_) => {
            conn.execute(
                "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?2,
                        retried_at = ?2, claimed_at = NULL
                 WHERE id = ?1 AND status != 'sent'",
                params![id, ts(now)],
            )
            .context("Queueing the row again")?;
            Ok(Retry::Queued)
        }
    }
}

/// `retry` for every failed row; returns how many.
pub fn retry_failed(conn: &Connection, now: DateTime<Utc>) -> Result<usize> {
    conn.execute(
        "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?1,
                retried_at = ?1, claimed_at = NULL
         WHERE status = 'failed'",
        [ts(now)],
    )
    .context("Queueing the failed mail again")
}

// ---------------------------------------------------------------- the session

/// Why there is no SMTP session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Failure {
    /// The server refused our login (or wants one the config does not give).
    Login,
    /// No session at all: connection, TLS or greeting failed or timed out.
    Connect,
}

impl Failure {
    fn as_str(self) -> &'static str {
        match self {
            Failure::Login => "login",
            Failure::Connect => "connect",
        }
    }

    pub fn parse(s: &str) -> Option<Failure> {
        match s {
            "login" => Some(Failure::Login),
            "connect" => Some(Failure::Connect),
            _ => None,
        }
    }
}

/// The failure going on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failing {
    pub failure: Failure,
    pub since: DateTime<Utc>,
    pub last_error: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionHealth {
    /// None: the last session worked (or none was tried yet).
    pub failing: Option<Failing>,
    /// When the admin was alerted about it.
    pub alerted: Option<DateTime<Utc>>,
}

/// Records a session that worked (None) or could not be had. A failure
/// of the same kind as the one going on keeps its start.
pub fn record_session(
    conn: &Connection,
    failure: Option<(Failure, &str)>,
    now: DateTime<Utc>,
) -> Result<()> {
    match failure {
        None => conn.execute(
            "UPDATE outbox_health SET failure = NULL, failing_since = NULL, last_error = NULL
             WHERE id = 1 AND failure IS NOT NULL",
            [],
        ),
        Some((f, error)) => conn.execute(
            "INSERT INTO outbox_health (id, failure, failing_since, last_error, last_error_at)
             VALUES (1, ?1, ?2, ?3, ?2)
             ON CONFLICT(id) DO UPDATE SET
                 failing_since = CASE WHEN outbox_health.failure IS excluded.failure
                                      THEN outbox_health.failing_since ELSE excluded.failing_since END,
                 failure = excluded.failure,
                 last_error = excluded.last_error,
                 last_error_at = excluded.last_error_at",
            params![f.as_str(), ts(now), error],
        ),
    }
    .context("Recording the SMTP session's health")?;
    Ok(())
}

pub fn session_health(conn: &Connection) -> Result<SessionHealth> {
    use rusqlite::OptionalExtension;
    let row = conn
        .prepare_cached(
            "SELECT failure, failing_since, last_error, alerted_at FROM outbox_health WHERE id = 1",
        )?
        .query_row([], |r| {
            let failure: Option<String> = r.get(0)?;
            let since: Option<String> = r.get(1)?;
            let failing = match (failure.as_deref().and_then(Failure::parse), since) {
                (Some(failure), Some(since)) => parse_ts(&since).map(|since| Failing {
                    failure,
                    since,
                    last_error: String::new(),
                }),
                _ => None,
            };
            let last_error: Option<String> = r.get(2)?;
            Ok(SessionHealth {
                failing: failing.map(|f| Failing {
                    last_error: last_error.unwrap_or_default(),
                    ..f
                }),
                alerted: r.get::<_, Option<String>>(3)?.as_deref().and_then(parse_ts),
            })
        })
        .optional()
        .context("Reading the SMTP session's health")?;
    Ok(row.unwrap_or_default())
}

/// The admin was alerted at `at` (Some) or told of the recovery (None).
pub fn set_session_alerted(conn: &Connection, at: Option<DateTime<Utc>>) -> Result<()> {
    conn.execute(
        "INSERT INTO outbox_health (id, alerted_at) VALUES (1, ?1)
         ON CONFLICT(id) DO UPDATE SET alerted_at = excluded.alerted_at",
        [at.map(ts)],
    )
    .context("Recording the SMTP alert")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        conn
    }

    fn queue(conn: &Connection, n: usize, now: DateTime<Utc>) -> Vec<i64> {
        (0..n)
            .map(|i| {
                enqueue(
                    conn,
                    &NewOutgoing {
                        ticket: None,
                        kind: "ack",
                        message_id: &format!("<m{i}@desk.test>"),
                        sender: "support@desk.test",
                        recipients: &[format!("c{i}@example.com")],
                        raw: b"Subject: Hello\r\n\r\nBody\r\n",
                    },
                    now,
                )
                .unwrap()
            })
            .collect()
    }

    fn state(conn: &Connection, id: i64) -> (String, i64, Option<String>) {
        conn.query_row(
            "SELECT status, attempts, last_error FROM outbox WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 16, 9, 0, 0).unwrap()
    }

    /// Issue 16: a claim charged an attempt to every row of its batch, so
    /// kills and refused connections failed mail that was never tried.
    #[test]
    fn claiming_and_releasing_charge_nothing() {
        let mut conn = db();
        let ids = queue(&conn, 3, t0());
        let lease = |_| std::time::Duration::from_secs(30);
        for round in 0..20 {
            let now = t0() + chrono::Duration::minutes(round);
            let rows = claim(&mut conn, now, 100, lease).unwrap();
            assert_eq!(rows.len(), 3);
            assert!(rows.iter().all(|r| r.attempts == 0 && r.queued_at == t0()));
            // Not due again before the lease, even if this process dies.
            assert!(claim(&mut conn, now, 100, lease).unwrap().is_empty());
            release(&mut conn, &ids, "not sent yet: SMTP unavailable", now).unwrap();
        }
        for id in &ids {
            assert_eq!(
                state(&conn, *id),
                (
                    "pending".into(),
                    0,
                    Some("not sent yet: SMTP unavailable".into())
                )
            );
        }
        mark_sent(&conn, ids[0], 1, t0()).unwrap();
        retry_later(&conn, ids[1], 1, "450 busy", t0()).unwrap();
        mark_failed(&conn, ids[2], 1, "550 no such user").unwrap();
        assert_eq!(state(&conn, ids[0]), ("sent".into(), 1, None));
        assert_eq!(state(&conn, ids[1]).1, 1);
        assert_eq!(state(&conn, ids[2]).0, "failed");
    }

    #[test]
    fn old_mail_expires_and_retry_gives_it_a_new_lifetime() {
        let mut conn = db();
        let ids = queue(&conn, 2, t0());
        retry_later(&conn, ids[0], 3, "450 busy", t0()).unwrap();
        let later = t0() + chrono::Duration::days(5);
        // Queued at t0: not expired at the cutoff itself.
        assert!(expire(&conn, t0(), "expired").unwrap().is_empty());
        let gone = expire(&conn, later, "expired: not delivered within 5d").unwrap();
        assert_eq!(gone.len(), 2);
        assert_eq!(
            state(&conn, ids[0]),
            (
                "failed".into(),
                3,
                Some("expired: not delivered within 5d; last error: 450 busy".into())
            )
        );
        assert_eq!(
            state(&conn, ids[1]).2.as_deref(),
            Some("expired: not delivered within 5d; never tried")
        );

        assert_eq!(retry(&conn, ids[0], later).unwrap(), Retry::Queued);
        assert_eq!(state(&conn, ids[0]).0, "pending");
        assert_eq!(state(&conn, ids[0]).1, 0);
        // Its lifetime now counts from the retry.
        assert!(expire(&conn, later, "expired").unwrap().is_empty());
        let rows = claim(&mut conn, later, 100, |_| std::time::Duration::ZERO).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].queued_at, later);
        mark_sent(&conn, ids[0], 1, later).unwrap();
        assert_eq!(retry(&conn, ids[0], later).unwrap(), Retry::AlreadySent);
        assert_eq!(retry(&conn, 999, later).unwrap(), Retry::NotFound);
        assert_eq!(retry_failed(&conn, later).unwrap(), 1);
        assert_eq!(list(&conn, true).unwrap().len(), 0);
        let pending = list(&conn, false).unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].subject.as_deref(), Some("Hello"));
    }

    #[test]
    fn a_session_failure_keeps_its_start_until_it_clears() {
        let conn = db();
        assert_eq!(session_health(&conn).unwrap(), SessionHealth::default());
        record_session(&conn, None, t0()).unwrap();
        assert_eq!(session_health(&conn).unwrap(), SessionHealth::default());
        let t1 = t0() + chrono::Duration::minutes(5);
        record_session(&conn, Some((Failure::Login, "535 first")), t0()).unwrap();
        record_session(&conn, Some((Failure::Login, "535 again")), t1).unwrap();
        let h = session_health(&conn).unwrap();
        assert_eq!(
            h.failing,
            Some(Failing {
                failure: Failure::Login,
                since: t0(),
                last_error: "535 again".into()
            })
        );
        // Another kind of failure starts its own clock.
        record_session(&conn, Some((Failure::Connect, "refused")), t1).unwrap();
        assert_eq!(session_health(&conn).unwrap().failing.unwrap().since, t1);
        set_session_alerted(&conn, Some(t1)).unwrap();
        record_session(&conn, None, t1).unwrap();
        let h = session_health(&conn).unwrap();
        assert_eq!((h.failing, h.alerted), (None, Some(t1)));
        set_session_alerted(&conn, None).unwrap();
        assert_eq!(session_health(&conn).unwrap(), SessionHealth::default());
    }
}
