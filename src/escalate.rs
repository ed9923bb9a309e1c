//! The escalation sweeper: finds the open tickets whose next escalation
//! instant has passed and queues the notices they owe, exactly once per
//! ticket, clock, level and recipient.
//!
//! Idempotence comes from the `escalations` table (UNIQUE per ticket,
//! clock, level, recipient), written in the same transaction as the
//! outbox row and the ticket's new level; a sweep that finds several
//! levels reached at once (the daemon was down) sends only the highest.
//! Cost: the sweep reads `tickets` only through the partial indexes on
//! `fr_next_at` / `res_next_at`, which hold open, unanswered tickets
//! with something left to send; closed tickets are not in them.

use anyhow::{Context, Result};
use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::config::{Config, Recipient};
use crate::core::escalation::{Clock, Level, Schedule};
use crate::ingest::enqueue;
use crate::lifecycle;
use crate::mail::compose::{self, Reply};
use crate::render::Renderer;
use crate::store::{parse_ts, ts};

/// How many tickets one transaction handles; a large backlog is worked
/// through in several, so the store thread is never held for long.
const BATCH: usize = 200;

#[derive(Debug, Serialize)]
struct NoticeContext {
    desk_name: String,
    reference: String,
    subject: String,
    requester: String,
    customer: Option<String>,
    plan: String,
    priority: Option<String>,
    category: Option<String>,
    status: String,
    assignee: Option<String>,
    /// "warning", "breach" or "second".
    level: &'static str,
    /// "first_response" or "resolution".
    clock: &'static str,
    received_at: String,
    due_at: String,
    /// "1h 30m" past due (breach, second) or left (warning).
    late_by: Option<String>,
    left: Option<String>,
    /// The first lines of the last message on the ticket.
    last_message: String,
}

/// Contexts covering every branch of an escalation template, for
/// `check-config`.
pub fn sample_contexts() -> Vec<serde_json::Value> {
    ["warning", "breach", "second"]
        .into_iter()
        .flat_map(|level| {
            ["first_response", "resolution"]
                .into_iter()
                .map(move |clock| {
                    let late = level != "warning";
                    serde_json::to_value(NoticeContext {
                        desk_name: "Desk".into(),
                        reference: "SUP-000001".into(),
                        subject: "Subject".into(),
                        requester: "customer@example.com".into(),
                        customer: Some("Customer".into()),
                        plan: "plan".into(),
                        priority: Some("P1".into()),
                        category: Some("category".into()),
                        status: "open".into(),
                        assignee: Some("agent@example.com".into()),
                        level,
                        clock,
                        received_at: "2026-01-05 09:00 CET".into(),
                        due_at: "2026-01-05 10:00 CET".into(),
                        late_by: late.then(|| "1h".into()),
                        left: (!late).then(|| "12m".into()),
                        last_message: "Hello".into(),
                    })
                    .unwrap_or_default()
                })
        })
        .collect()
}

/// Runs one sweep at `now`; returns the number of notices queued.
pub fn sweep(
    conn: &mut Connection,
    cfg: &Config,
    renderer: &Renderer,
    now: DateTime<Utc>,
) -> Result<usize> {
    let mut queued = 0;
    loop {
        let tx = crate::store::begin(conn).context("Starting a sweep")?;
        let ids: Vec<i64> = {
            let mut stmt = tx
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
            stmt.query_map(params![ts(now), BATCH as i64], |r| r.get(0))
                .context("Finding tickets to escalate")?
                .collect::<rusqlite::Result<_>>()
                .context("Reading tickets to escalate")?
        };
        for &id in &ids {
            queued += escalate_ticket(&tx, cfg, renderer, id, now)?;
        }
        tx.commit().context("Committing a sweep")?;
        if ids.len() < BATCH {
            return Ok(queued);
        }
    }
}

fn escalate_ticket(
    tx: &rusqlite::Transaction<'_>,
    cfg: &Config,
    renderer: &Renderer,
    id: i64,
    now: DateTime<Utc>,
) -> Result<usize> {
    let row = tx
        .query_row(
            "SELECT reference, subject, requester, customer, plan, priority, category, status, assignee,
                    received_at, fr_next_at, first_response_due, first_response_warn, fr_level,
                    res_next_at, resolution_due, resolution_warn, res_level
             FROM tickets WHERE id = ?1",
            [id],
            |r| {
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
            },
        )
        .context("Reading a ticket to escalate")?;
    let mut queued = 0;
    for (clock, next, due, warn, level) in &row.clocks {
        let Some(next) = next.as_deref().and_then(parse_ts) else {
            continue;
        };
        if next > now {
            continue;
        }
        let Some(due) = due.as_deref().and_then(parse_ts) else {
            continue;
        };
        let schedule = Schedule::new(
            warn.as_deref().and_then(parse_ts),
            due,
            cfg.escalation.second_after,
        );
        let Some(owed) = schedule.owed(*level, now) else {
            continue;
        };
        // The highest level reached that someone receives: a late sweep
        // that finds a level nobody takes (a director only for "second")
        // still tells whoever takes the level below.
        let (sent_level, recipients) = Level::ALL
            .into_iter()
            .rev()
            .filter(|l| *l <= owed && l.rank() > *level)
            .map(|l| {
                (
                    l,
                    cfg.escalation
                        .recipients_for(&row.plan, row.priority.as_deref(), l),
                )
            })
            .find(|(_, r)| !r.is_empty())
            .unwrap_or((owed, Vec::new()));
        if recipients.is_empty() {
            tracing::debug!(ticket = %row.reference, level = owed.as_str(), "no escalation recipient");
        }
        for r in recipients {
            match notify(tx, cfg, renderer, id, &row, *clock, sent_level, due, r, now) {
                Ok(n) => queued += n,
                // A template that fails to render must not block every
                // other ticket's escalation: log it and go on.
                Err(e) => tracing::error!(
                    ticket = %row.reference,
                    recipient = %r.address,
                    "escalation notice not queued: {e:#}"
                ),
            }
        }
        let col = match clock {
            Clock::FirstResponse => "fr_level",
            Clock::Resolution => "res_level",
        };
        tx.execute(
            &format!("UPDATE tickets SET {col} = ?1 WHERE id = ?2"),
            params![owed.rank(), id],
        )
        .context("Recording the escalation level")?;
        lifecycle::event(
            tx,
            id,
            "sweeper",
            &format!("escalation-{}", owed.as_str()),
            Some(clock.as_str()),
            now,
        )?;
    }
    lifecycle::refresh_next(tx, cfg, id)?;
    Ok(queued)
}

/// clock, next_at, due, warn, level handled
type ClockRow = (Clock, Option<String>, Option<String>, Option<String>, u8);

struct TicketRow {
    reference: String,
    subject: String,
    requester: String,
    customer: Option<String>,
    plan: String,
    priority: Option<String>,
    category: Option<String>,
    status: String,
    assignee: Option<String>,
    received_at: String,
    clocks: [ClockRow; 2],
}

#[allow(clippy::too_many_arguments)]
fn notify(
    tx: &rusqlite::Transaction<'_>,
    cfg: &Config,
    renderer: &Renderer,
    id: i64,
    row: &TicketRow,
    clock: Clock,
    level: Level,
    due: DateTime<Utc>,
    r: &Recipient,
    now: DateTime<Utc>,
) -> Result<usize> {
    let recipient = r.address.email.to_string();
    let inserted = tx
        .execute(
            "INSERT INTO escalations (ticket_id, clock, level, recipient, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
            params![id, clock.as_str(), level.as_str(), recipient, ts(now)],
        )
        .context("Recording the escalation")?;
    if inserted == 0 {
        return Ok(0);
    }
    let esc_id = tx.last_insert_rowid();
    let local = |t: DateTime<Utc>| {
        t.with_timezone(&r.timezone)
            .format("%Y-%m-%d %H:%M %Z")
            .to_string()
    };
    let received = parse_ts(&row.received_at).unwrap_or(now);
    let last_message: Option<String> = tx
        .query_row(
            "SELECT body_text FROM messages WHERE ticket_id = ?1 AND direction = 'in' AND body_text IS NOT NULL
             ORDER BY id DESC LIMIT 1",
            [id],
            |r| r.get(0),
        )
        .optional()
        .context("Reading the last message")?
        .flatten();
    let last_message = last_message
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(8)
        .collect::<Vec<_>>()
        .join("\n");
    let ctx = NoticeContext {
        desk_name: cfg.desk.name.clone(),
        reference: row.reference.clone(),
        // One line even for a ticket stored before subjects were cleaned.
        subject: crate::core::inbound::one_line(&row.subject),
        requester: row.requester.clone(),
        customer: row.customer.clone(),
        plan: row.plan.clone(),
        priority: row.priority.clone(),
        category: row.category.clone(),
        status: row.status.clone(),
        assignee: row.assignee.clone(),
        level: level.as_str(),
        clock: clock.as_str(),
        received_at: local(received),
        due_at: local(due),
        late_by: (now >= due).then(|| human(now - due)),
        left: (now < due).then(|| human(due - now)),
        last_message,
    };
    let (_, rendered) = renderer.render("escalation", &r.language, &ctx)?;
    let out = compose::compose(&Reply {
        from: &cfg.desk.address,
        to: r.address.clone(),
        subject: &rendered.subject,
        body: &rendered.body,
        html: rendered.html.as_deref(),
        in_reply_to: None,
        references: &[],
        reference: &row.reference,
        kind: &format!("escalation-{}", level.as_str()),
        auto_submitted: Some("auto-generated"),
    })?;
    enqueue(tx, Some(id), "escalation", &out, now)?;
    tx.execute(
        "UPDATE escalations SET outbox_id = last_insert_rowid() WHERE id = ?1",
        [esc_id],
    )
    .context("Linking the escalation to its mail")?;
    Ok(1)
}

/// "2d 3h", "1h 30m", "12m".
fn human(d: TimeDelta) -> String {
    let m = d.num_minutes().max(0);
    let (days, hours, mins) = (m / 1440, (m % 1440) / 60, m % 60);
    match (days, hours, mins) {
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_durations() {
        use chrono::TimeDelta;
        assert_eq!(super::human(TimeDelta::minutes(12)), "12m");
        assert_eq!(super::human(TimeDelta::minutes(90)), "1h 30m");
        assert_eq!(super::human(TimeDelta::hours(3)), "3h");
        assert_eq!(super::human(TimeDelta::hours(51)), "2d 3h");
        assert_eq!(super::human(TimeDelta::days(2)), "2d");
    }
}
