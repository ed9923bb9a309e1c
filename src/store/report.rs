//! Read-only reports for the CLI and metrics: ticket lists and details,
//! desk health (`status`) and SLA compliance (`stats`).

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use crate::core::stats::{ClockEvent, Running, TicketFacts};

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

/// Tickets, optionally of one status, or only those breaching at
/// `breaching_at` (RFC 3339): open or pending with a due instant passed
/// and its clock still running.
pub fn list(
    conn: &Connection,
    status: Option<&str>,
    breaching_at: Option<&str>,
) -> Result<Vec<TicketRow>> {
    let mut stmt = conn
        .prepare(
            "SELECT reference, status, subject, requester, plan, language, category, priority,
                    received_at, first_response_due, resolution_due
             FROM tickets WHERE (?1 IS NULL OR status = ?1)
               AND (?2 IS NULL OR (status = 'open'
                    AND ((first_responded_at IS NULL AND first_response_due < ?2)
                      OR resolution_due < ?2)))
             ORDER BY id",
        )
        .context("Preparing the ticket list")?;
    let rows = stmt
        .query_map(rusqlite::params![status, breaching_at], |r| {
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
    /// Acknowledgements held because their template failed to render.
    pub acks_held: i64,
    /// Mail from agent addresses that was not authenticated (ever).
    pub unauthenticated_agent_mail: i64,
    /// The SMTP session's failure going on, if any: "login" (the server
    /// refuses our login) or "connect" (no session at all).
    pub smtp_failure: Option<super::outbox::Failure>,
    pub smtp_failing_since: Option<String>,
    pub smtp_last_error: Option<String>,
}

/// Health figures for `supportdesk status`; `now` is RFC 3339 UTC.
pub fn status(conn: &Connection, now: &str) -> Result<Status> {
    let mut stmt = conn
        .prepare("SELECT mailbox, last_ok_at, last_error FROM mailbox_health ORDER BY mailbox")
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
    let (smtp_failure, smtp_failing_since, smtp_last_error): (Option<String>, _, _) = conn
        .query_row(
            "SELECT failure, failing_since, last_error FROM outbox_health
             WHERE id = 1 AND failure IS NOT NULL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .context("Reading the SMTP session's health")?
        .unwrap_or_default();
    let one = |sql: &str| -> Result<i64> {
        conn.query_row(sql, [], |r| r.get(0))
            .with_context(|| format!("Running {sql}"))
    };
    Ok(Status {
        mailboxes,
        outbox_pending: one("SELECT count(*) FROM outbox WHERE status = 'pending'")?,
        outbox_oldest_pending: conn
            .query_row(
                // A notice held for its recipient's hours counts from
                // its release, not as mail stuck since it was queued.
                "SELECT min(coalesce(retried_at, created_at)) FROM outbox WHERE status = 'pending'",
                [],
                |r| r.get(0),
            )
            .context("Reading the oldest pending mail")?,
        outbox_failed: one("SELECT count(*) FROM outbox WHERE status = 'failed'")?,
        open_tickets: one("SELECT count(*) FROM tickets WHERE status IN ('open', 'pending')")?,
        breaching: conn
            .query_row(
                "SELECT count(*) FROM tickets WHERE status = 'open'
                   AND ((first_responded_at IS NULL AND first_response_due < ?1)
                     OR (resolution_due < ?1))",
                [now],
                |r| r.get(0),
            )
            .context("Counting breaching tickets")?,
        unticketed_messages: one("SELECT count(*) FROM messages WHERE ticket_id IS NULL")?,
        acks_held: super::tickets::held_ack_count(conn)?,
        unauthenticated_agent_mail: super::messages::unauthenticated_agent_since(conn, None)?.count,
        smtp_failure: smtp_failure
            .as_deref()
            .and_then(super::outbox::Failure::parse),
        smtp_failing_since,
        smtp_last_error,
    })
}

/// A ticket id from "SUP-000123", "000123" or "123".
pub fn find_id(conn: &Connection, text: &str) -> Result<Option<i64>> {
    let by_ref: Option<i64> = conn
        .query_row(
            "SELECT id FROM tickets WHERE reference = ?1 COLLATE NOCASE",
            [text],
            |r| r.get(0),
        )
        .optional()
        .context("Looking up the ticket")?;
    if by_ref.is_some() {
        return Ok(by_ref);
    }
    let digits = text.rsplit('-').next().unwrap_or(text);
    let Ok(id) = digits.parse::<i64>() else {
        return Ok(None);
    };
    conn.query_row("SELECT id FROM tickets WHERE id = ?1", [id], |r| r.get(0))
        .optional()
        .context("Looking up the ticket")
}

#[derive(Debug, Serialize)]
pub struct MessageLine {
    pub direction: String,
    pub kind: String,
    pub sender: Option<String>,
    pub subject: Option<String>,
    pub received_at: String,
    pub error: Option<String>,
    /// The file holding the raw message, relative to the state directory,
    /// when it is too big to be kept in the row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_path: Option<String>,
    /// The sender's authentication verdict, in one line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct EventLine {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub detail: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct TicketDetail {
    pub reference: String,
    pub status: String,
    pub subject: String,
    pub requester: String,
    pub customer: Option<String>,
    pub plan: String,
    pub language: String,
    pub category: Option<String>,
    pub priority: Option<String>,
    pub impact: Option<String>,
    pub urgency: Option<String>,
    pub triage_reasons: serde_json::Value,
    pub assignee: Option<String>,
    pub received_at: String,
    pub first_response_due: Option<String>,
    pub first_responded_at: Option<String>,
    pub resolution_due: Option<String>,
    pub resolved_at: Option<String>,
    pub previous_ticket: Option<String>,
    pub note: Option<String>,
    pub customer_timezone: Option<String>,
    /// Where the clocks count from when a reopen restarted them.
    pub sla_started_at: Option<String>,
    /// Seconds the resolution clock stood still (pending, resumed reopen).
    pub paused_secs: i64,
    pub messages: Vec<MessageLine>,
    pub outgoing: Vec<MessageLine>,
    pub events: Vec<EventLine>,
}

pub fn show(conn: &Connection, id: i64) -> Result<TicketDetail> {
    let mut d = conn
        .query_row(
            "SELECT t.reference, t.status, t.subject, t.requester, t.customer, t.plan, t.language,
                    t.category, t.priority, t.impact, t.urgency, t.triage_reasons, t.assignee,
                    t.received_at, t.first_response_due, t.first_responded_at, t.resolution_due,
                    t.resolved_at, p.reference, t.note, t.customer_timezone, t.sla_started_at,
                    t.paused_secs
             FROM tickets t LEFT JOIN tickets p ON p.id = t.previous_ticket WHERE t.id = ?1",
            [id],
            |r| {
                Ok(TicketDetail {
                    reference: r.get(0)?,
                    status: r.get(1)?,
                    subject: r.get(2)?,
                    requester: r.get(3)?,
                    customer: r.get(4)?,
                    plan: r.get(5)?,
                    language: r.get(6)?,
                    category: r.get(7)?,
                    priority: r.get(8)?,
                    impact: r.get(9)?,
                    urgency: r.get(10)?,
                    triage_reasons: serde_json::from_str(&r.get::<_, String>(11)?)
                        .unwrap_or(serde_json::Value::Null),
                    assignee: r.get(12)?,
                    received_at: r.get(13)?,
                    first_response_due: r.get(14)?,
                    first_responded_at: r.get(15)?,
                    resolution_due: r.get(16)?,
                    resolved_at: r.get(17)?,
                    previous_ticket: r.get(18)?,
                    note: r.get(19)?,
                    customer_timezone: r.get(20)?,
                    sla_started_at: r.get(21)?,
                    paused_secs: r.get(22)?,
                    messages: Vec::new(),
                    outgoing: Vec::new(),
                    events: Vec::new(),
                })
            },
        )
        .context("Reading the ticket")?;
    d.messages = message_lines(
        conn,
        "SELECT direction, kind, sender, subject, received_at, error, raw_path, auth FROM messages WHERE ticket_id = ?1 ORDER BY id",
        id,
    )?;
    d.outgoing = message_lines(
        conn,
        "SELECT 'out', kind || ' (' || status || ')', recipients, message_id, created_at, last_error, NULL, NULL
         FROM outbox WHERE ticket_id = ?1 ORDER BY id",
        id,
    )?;
    let mut stmt = conn.prepare(
        "SELECT at, actor, action, detail FROM ticket_events WHERE ticket_id = ?1 ORDER BY id",
    )?;
    d.events = stmt
        .query_map([id], |r| {
            Ok(EventLine {
                at: r.get(0)?,
                actor: r.get(1)?,
                action: r.get(2)?,
                detail: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(d)
}

/// Rows of `sql` (six columns in `MessageLine` order) for ticket `id`.
fn message_lines(conn: &Connection, sql: &str, id: i64) -> Result<Vec<MessageLine>> {
    let mut stmt = conn
        .prepare(sql)
        .context("Preparing the ticket's messages")?;
    let rows = stmt
        .query_map([id], |r| {
            Ok(MessageLine {
                direction: r.get(0)?,
                kind: r.get(1)?,
                sender: r.get(2)?,
                subject: r.get(3)?,
                received_at: r.get(4)?,
                error: r.get(5)?,
                raw_path: r.get(6)?,
                auth: r
                    .get::<_, Option<String>>(7)?
                    .and_then(|j| serde_json::from_str::<crate::core::auth::Verdict>(&j).ok())
                    .map(|v| v.summary()),
            })
        })?
        .collect::<rusqlite::Result<_>>()
        .context("Reading the ticket's messages")?;
    Ok(rows)
}

/// The ticket columns [`facts`] reads, from `t`.
const FACTS: &str = "t.reference, t.subject, t.plan, t.priority, t.received_at,
     coalesce(t.sla_started_at, t.received_at), t.customer_timezone, t.first_response_due,
     t.first_responded_at, t.resolution_due, t.resolved_at";

/// A ticket's facts from the [`FACTS`] columns starting at `at`; None
/// when its arrival cannot be read (it counts nowhere).
fn facts(r: &rusqlite::Row, at: usize) -> rusqlite::Result<Option<TicketFacts>> {
    let ts = |i: usize| -> rusqlite::Result<Option<DateTime<Utc>>> {
        Ok(r.get::<_, Option<String>>(at + i)?
            .as_deref()
            .and_then(super::parse_ts))
    };
    let Some(received) = ts(4)? else {
        return Ok(None);
    };
    Ok(Some(TicketFacts {
        reference: r.get(at)?,
        subject: r.get(at + 1)?,
        plan: r.get(at + 2)?,
        priority: r.get(at + 3)?,
        received,
        start: ts(5)?.unwrap_or(received),
        timezone: r
            .get::<_, Option<String>>(at + 6)?
            .and_then(|z| z.parse().ok()),
        first_response_due: ts(7)?,
        first_responded: ts(8)?,
        resolution_due: ts(9)?,
        resolved: ts(10)?,
        events: Vec::new(),
    }))
}

/// The open tickets with a clock running: a first response due and not
/// made, or a resolution due (a pending ticket's stands still).
pub fn running(conn: &Connection) -> Result<Vec<Running>> {
    let mut stmt = conn
        .prepare(
            "SELECT reference, subject, plan, priority, received_at, customer_timezone, assignee,
                    CASE WHEN first_responded_at IS NULL THEN first_response_due END,
                    resolution_due
             FROM tickets
             WHERE status = 'open'
               AND ((first_responded_at IS NULL AND first_response_due IS NOT NULL)
                    OR resolution_due IS NOT NULL)
             ORDER BY id",
        )
        .context("Preparing the running tickets")?;
    let at = |s: Option<String>| s.as_deref().and_then(super::parse_ts);
    let rows = stmt
        .query_map([], |r| {
            Ok(at(r.get(4)?).map(|received| Running {
                reference: r.get(0).unwrap_or_default(),
                subject: r.get(1).unwrap_or_default(),
                plan: r.get(2).unwrap_or_default(),
                priority: r.get(3).unwrap_or_default(),
                received,
                timezone: r
                    .get::<_, Option<String>>(5)
                    .ok()
                    .flatten()
                    .and_then(|z| z.parse().ok()),
                assignee: r.get(6).unwrap_or_default(),
                first_response_due: r.get::<_, Option<String>>(7).ok().and_then(at),
                resolution_due: r.get::<_, Option<String>>(8).ok().and_then(at),
            }))
        })
        .context("Reading the running tickets")?
        .filter_map(|r| r.transpose())
        .collect::<rusqlite::Result<_>>()
        .context("Reading the running tickets")?;
    Ok(rows)
}

/// The ticket events that move the resolution clock.
const CLOCK_ACTIONS: &str = "('pending', 'resumed', 'resolved', 'reopened')";

fn clock_event(action: &str, detail: &str) -> Option<ClockEvent> {
    Some(match action {
        "pending" => ClockEvent::Pending,
        "resumed" => ClockEvent::Resumed,
        "resolved" => ClockEvent::Resolved,
        // lifecycle::reopen's words; a restart moves the start instead.
        "reopened" if detail.starts_with("resolution clock resumed") => ClockEvent::ReopenedResumed,
        _ => return None,
    })
}

/// What `stats` needs of the tickets received in [since, until): their
/// plan, priority, clocks and clock events, for [`crate::core::stats`].
pub fn stats_facts(
    conn: &Connection,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<Vec<TicketFacts>> {
    let (since, until) = (since.map(super::ts), until.map(super::ts));
    let range = "(?1 IS NULL OR t.received_at >= ?1) AND (?2 IS NULL OR t.received_at < ?2)";
    let mut stmt = conn
        .prepare(&format!(
            "SELECT t.id, {FACTS} FROM tickets t WHERE {range} ORDER BY t.id"
        ))
        .context("Preparing the stats")?;
    let mut tickets: Vec<(i64, TicketFacts)> = stmt
        .query_map(rusqlite::params![since, until], |r| {
            Ok(facts(r, 1)?.map(|f| (r.get::<_, i64>(0).unwrap_or_default(), f)))
        })
        .context("Reading the stats")?
        .filter_map(|row| row.transpose())
        .collect::<rusqlite::Result<_>>()
        .context("Reading the stats")?;
    let mut events = conn
        .prepare(&format!(
            "SELECT e.ticket_id, e.at, e.action, coalesce(e.detail, '')
             FROM ticket_events e JOIN tickets t ON t.id = e.ticket_id
             WHERE e.action IN {CLOCK_ACTIONS} AND {range}
             ORDER BY e.ticket_id, e.id"
        ))
        .context("Preparing the clock events")?;
    let rows = events
        .query_map(rusqlite::params![since, until], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .context("Reading the clock events")?;
    let index: std::collections::HashMap<i64, usize> = tickets
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (*id, i))
        .collect();
    for row in rows {
        let (id, at, action, detail) = row.context("Reading the clock events")?;
        if let (Some(&i), Some(at), Some(kind)) = (
            index.get(&id),
            super::parse_ts(&at),
            clock_event(&action, &detail),
        ) {
            tickets[i].1.events.push((at, kind));
        }
    }
    Ok(tickets.into_iter().map(|(_, t)| t).collect())
}

/// A clock that stopped: a first response or a resolution, by its event.
#[derive(Debug)]
pub struct ClockStop {
    pub event_id: i64,
    pub clock: crate::core::escalation::Clock,
    pub at: DateTime<Utc>,
    /// The ticket as it is now, with its clock events up to this one.
    pub ticket: TicketFacts,
}

/// The first responses and resolutions recorded after event `after`, in
/// order, at most `limit` of them (for the metrics' histograms), and the
/// last event id read (`after` when none).
pub fn clock_stops(conn: &Connection, after: i64, limit: i64) -> Result<(Vec<ClockStop>, i64)> {
    use crate::core::escalation::Clock;
    let mut stmt = conn
        .prepare(&format!(
            "SELECT e.id, e.action, e.at, e.ticket_id, {FACTS}
             FROM ticket_events e JOIN tickets t ON t.id = e.ticket_id
             WHERE e.id > ?1 AND e.action IN ('first-response', 'resolved')
             ORDER BY e.id LIMIT ?2"
        ))
        .context("Preparing the clock stops")?;
    let rows: Vec<(i64, String, String, i64, Option<TicketFacts>)> = stmt
        .query_map(rusqlite::params![after, limit], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, facts(r, 4)?))
        })
        .context("Reading the clock stops")?
        .collect::<rusqlite::Result<_>>()
        .context("Reading the clock stops")?;
    let mut events = conn
        .prepare(&format!(
            "SELECT at, action, coalesce(detail, '') FROM ticket_events
             WHERE ticket_id = ?1 AND id <= ?2 AND action IN {CLOCK_ACTIONS} ORDER BY id"
        ))
        .context("Preparing the clock events")?;
    let last = rows.last().map_or(after, |r| r.0);
    let mut out = Vec::with_capacity(rows.len());
    for (event_id, action, at, ticket_id, ticket) in rows {
        // An unreadable ticket or instant: nothing to observe.
        let (Some(mut ticket), Some(at)) = (ticket, super::parse_ts(&at)) else {
            continue;
        };
        let clock = if action == "resolved" {
            Clock::Resolution
        } else {
            Clock::FirstResponse
        };
        {
            let evs = events
                .query_map(rusqlite::params![ticket_id, event_id], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })
                .context("Reading the clock events")?;
            for e in evs {
                let (at, action, detail) = e.context("Reading the clock events")?;
                if let (Some(at), Some(kind)) =
                    (super::parse_ts(&at), clock_event(&action, &detail))
                {
                    ticket.events.push((at, kind));
                }
            }
        }
        out.push(ClockStop {
            event_id,
            clock,
            at,
            ticket,
        });
    }
    Ok((out, last))
}

/// Incoming messages kept without a ticket (for an admin): kind and error,
/// oldest first.
pub fn unticketed(conn: &Connection) -> Result<Vec<(String, Option<String>)>> {
    let mut stmt = conn
        .prepare("SELECT kind, error FROM messages WHERE ticket_id IS NULL ORDER BY id")
        .context("Preparing the unticketed messages")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .context("Reading the unticketed messages")?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::stats::{StatsRow, compute};

    /// Plans `premium` and `standard`, counting wall-clock time.
    fn model() -> crate::core::sla::SlaModel {
        #[derive(serde::Deserialize)]
        struct Part {
            priorities: Vec<String>,
            categories: Vec<String>,
            sla: crate::core::sla::RawSla,
        }
        let p: Part = toml::from_str(
            r#"
priorities = ["P1", "P3"]
categories = ["incident"]
[sla]
default_plan = "standard"
[sla.plans.premium]
targets = [{ priority = "P1", first_response = { wall_clock = "1h" } }]
[sla.plans.standard]
targets = [{ priority = "P3", first_response = { wall_clock = "4h" } }]
"#,
        )
        .unwrap();
        crate::core::sla::SlaModel::from_raw(&p.sla, &p.priorities, &p.categories).unwrap()
    }

    /// The stats of the tickets received since `since` as `stats` prints them.
    fn stats(conn: &Connection, since: Option<&str>, now: &str) -> Result<Vec<StatsRow>> {
        let at = |s: &str| crate::store::parse_ts(s).unwrap();
        let facts = stats_facts(conn, since.map(at), None)?;
        Ok(compute(&model(), &facts, None, chrono_tz::Tz::UTC, at(now)))
    }

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        conn
    }

    /// A ticket received at 09:00 on 16 November, answered and resolved
    /// `fr`/`res` minutes later (None: not yet), due after `fr_due` and
    /// `res_due` minutes (None: best effort).
    fn ticket(
        conn: &Connection,
        plan: &str,
        prio: &str,
        fr: Option<i64>,
        fr_due: Option<i64>,
        res: Option<i64>,
        res_due: Option<i64>,
    ) {
        let at = |m: Option<i64>| {
            m.map(|m| {
                // As the store writes instants.
                crate::store::ts(
                    crate::store::parse_ts("2026-11-16T09:00:00Z").unwrap()
                        + chrono::TimeDelta::minutes(m),
                )
            })
        };
        let n: i64 = conn
            .query_row("SELECT count(*) FROM tickets", [], |r| r.get(0))
            .unwrap();
        conn.execute(
            "INSERT INTO tickets (reference, requester, plan, language, priority, received_at,
                first_response_due, first_responded_at, resolution_due, resolved_at, created_at)
             VALUES (?1, 'c@example.com', ?2, 'en', ?3, ?4, ?5, ?6, ?7, ?8, ?4)",
            rusqlite::params![
                format!("SUP-{n:06}"),
                plan,
                prio,
                at(Some(0)),
                at(fr_due),
                at(fr),
                at(res_due),
                at(res)
            ],
        )
        .unwrap();
    }

    #[test]
    fn median_and_p90_are_the_spreadsheet_s_figures() {
        let conn = db();
        // premium P1: answered after 10, 20, 30, 40 and 100 minutes, due
        // after 60: four met, one breached. Sorted, the median is the
        // third (30); p90 sits at 0.9 x 4 = 3.6, between 40 and 100:
        // 40 + 0.6 x 60 = 76. Resolved after 120, 240, 360, 480 and 600,
        // due after 480: four met, one breached; median 360, p90 552.
        for (fr, res) in [(10, 120), (20, 240), (30, 360), (40, 480), (100, 600)] {
            ticket(
                &conn,
                "premium",
                "P1",
                Some(fr),
                Some(60),
                Some(res),
                Some(480),
            );
        }
        // standard P3: an even count, 10, 20, 30 and 40 minutes: the
        // median is 25 (between 20 and 30); p90 at 2.7, 30 + 0.7 x 10 = 37.
        // One more not answered, due long ago: breached, no time counted;
        // one not answered, due after `now`: open. Resolution best effort:
        // times counted, nothing met or breached.
        for fr in [10, 20, 30, 40] {
            ticket(
                &conn,
                "standard",
                "P3",
                Some(fr),
                Some(240),
                Some(fr * 10),
                None,
            );
        }
        ticket(&conn, "standard", "P3", None, Some(240), None, None);
        ticket(&conn, "standard", "P3", None, Some(100_000), None, None);
        let now = "2026-11-20T09:00:00+00:00";
        let rows = stats(&conn, None, now).unwrap();
        let row = |plan: &str| rows.iter().find(|r| r.plan == plan).unwrap();
        let p = row("premium");
        assert_eq!(p.priority.as_deref(), Some("P1"));
        assert_eq!(p.tickets, 5);
        let c = &p.first_response;
        assert_eq!((c.met, c.breached, c.open), (4, 1, 0));
        assert_eq!((c.median_minutes, c.p90_minutes), (Some(30), Some(76)));
        let c = &p.resolution;
        assert_eq!((c.met, c.breached, c.open), (4, 1, 0));
        assert_eq!((c.median_minutes, c.p90_minutes), (Some(360), Some(552)));
        let s = row("standard");
        assert_eq!(s.tickets, 6);
        let c = &s.first_response;
        assert_eq!((c.met, c.breached, c.open), (4, 1, 1));
        assert_eq!((c.median_minutes, c.p90_minutes), (Some(25), Some(37)));
        let c = &s.resolution;
        assert_eq!((c.met, c.breached, c.open), (0, 0, 0));
        // 100, 200, 300, 400: median 250, p90 at 2.7: 300 + 0.7 x 100.
        assert_eq!((c.median_minutes, c.p90_minutes), (Some(250), Some(370)));
        // --since after every arrival: nothing.
        assert!(
            stats(&conn, Some("2026-11-17T00:00:00+00:00"), now)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn clock_events_become_pauses_and_until_bounds_the_arrivals() {
        let conn = db();
        // Received 09:00, pending at 10:00 (the agent asked a question),
        // the customer's answer at 14:00, resolved at 15:00: 2 hours.
        ticket(&conn, "premium", "P1", Some(60), Some(60), Some(360), None);
        for (at, action, detail) in [
            ("2026-11-16T10:00:00Z", "pending", None),
            ("2026-11-16T14:00:00Z", "resumed", Some("paused 14400s")),
            ("2026-11-16T15:00:00Z", "resolved", None),
            // Not a clock event: no effect.
            (
                "2026-11-16T11:00:00Z",
                "assigned",
                Some("agent@example.com"),
            ),
        ] {
            conn.execute(
                "INSERT INTO ticket_events (ticket_id, at, actor, action, detail)
                 VALUES (1, ?1, 'agent@example.com', ?2, ?3)",
                rusqlite::params![at, action, detail],
            )
            .unwrap();
        }
        let at = |s: &str| crate::store::parse_ts(s).unwrap();
        let facts = stats_facts(&conn, None, None).unwrap();
        assert_eq!(facts.len(), 1);
        assert_eq!(
            facts[0].events,
            [
                (at("2026-11-16T10:00:00Z"), ClockEvent::Pending),
                (at("2026-11-16T14:00:00Z"), ClockEvent::Resumed),
                (at("2026-11-16T15:00:00Z"), ClockEvent::Resolved),
            ]
        );
        let rows = stats(&conn, None, "2026-11-20T00:00:00Z").unwrap();
        assert_eq!(rows[0].resolution.median_minutes, Some(120));
        assert_eq!(rows[0].resolution.business_median_minutes, Some(120));
        // until: arrivals before it only.
        let until = |u: &str| stats_facts(&conn, None, Some(at(u))).unwrap().len();
        assert_eq!(until("2026-11-16T09:00:00Z"), 0);
        assert_eq!(until("2026-11-16T09:00:01Z"), 1);
    }
}
