//! Pending tickets that wait on the customer: a reminder in the customer's
//! language after the plan's `pending_reminder_after`, then, after
//! `pending_close_after`, the ticket is resolved and the customer told.
//!
//! Part of the sweep, in its three stages: read the due tickets through
//! the partial index on `pending_next_at` (store thread), render the mails
//! (blocking pool), apply in one transaction (store thread), skipping a
//! ticket that changed since it was read (the customer replied). A
//! reminder or an auto-close is written with the ticket's new stage in the
//! same transaction, so each goes out once; a sweep that comes after both
//! instants (the daemon was down) closes without a late reminder.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rusqlite::Connection;
use serde::Serialize;

use crate::compose::{self, Reply};
use crate::config::Config;
use crate::lifecycle;
use crate::render::Renderer;
use crate::store::tickets::{self, PendingRow};
use crate::store::{outbox, parse_ts};

/// Tickets handled per transaction.
const BATCH: usize = 200;

/// What a sweep does to one pending ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Remind the customer; look again at the auto-close instant.
    Remind { close_at: Option<DateTime<Utc>> },
    /// Resolve the ticket and tell the customer.
    Close,
}

/// Pure: what a ticket pending since `since` (stage `stage`: 1 once
/// reminded) owes at `now`, from its plan's delays. None: nothing (yet).
pub fn step(cfg: &Config, row: &PendingRow, now: DateTime<Utc>) -> Option<Step> {
    let since = row.pending_since.as_deref().and_then(parse_ts)?;
    let tz = row
        .customer_timezone
        .as_deref()
        .and_then(|z| z.parse::<Tz>().ok());
    let due = cfg.sla.pending_due(&row.plan, tz, since).ok()?;
    if due.close.is_some_and(|close| close <= now) {
        return Some(Step::Close);
    }
    match due.reminder {
        Some(r) if r <= now && row.pending_stage == 0 => Some(Step::Remind {
            close_at: due.close,
        }),
        _ => None,
    }
}

#[derive(Debug, Serialize)]
struct PendingContext {
    desk_name: String,
    reference: String,
    subject: String,
    customer_name: Option<String>,
    customer_email: String,
    language: String,
    /// When the desk started waiting, in the customer's terms.
    pending_since: String,
    /// When the ticket will be closed without an answer (reminder only).
    #[serde(skip_serializing_if = "Option::is_none")]
    close_at: Option<String>,
    vars: std::collections::BTreeMap<String, String>,
}

/// Contexts covering the reminder and auto-close templates, for
/// check-config.
pub fn sample_contexts(kind: &str) -> Vec<serde_json::Value> {
    [false, true]
        .into_iter()
        .map(|named| {
            serde_json::to_value(PendingContext {
                desk_name: "Desk".into(),
                reference: "SUP-000001".into(),
                subject: "Subject".into(),
                customer_name: named.then(|| "Customer".into()),
                customer_email: "customer@example.com".into(),
                language: "en".into(),
                pending_since: "Monday 5 January 2026 at 10:00 (Paris time)".into(),
                close_at: (kind == "reminder" && named)
                    .then(|| "Monday 12 January 2026 at 10:00 (Paris time)".into()),
                vars: Default::default(),
            })
            .unwrap_or_default()
        })
        .collect()
}

/// A ticket read as due, and what to do.
pub struct Planned {
    id: i64,
    /// As read: applied only while the ticket is unchanged.
    row: PendingRow,
    /// None: nothing owed after all (the config changed since the ticket
    /// was scheduled): it is scheduled again.
    step: Option<Step>,
    mail: Option<compose::Outgoing>,
}

/// Stage 1: due pending tickets (store thread, reads only).
pub fn read_due(conn: &Connection, now: DateTime<Utc>) -> Result<Vec<(i64, PendingRow)>> {
    tickets::pending_due(conn, now, BATCH)?
        .into_iter()
        .map(|id| Ok((id, tickets::pending_row(conn, id)?)))
        .collect()
}

/// Stage 2 (off the store thread): the step each ticket owes and its mail.
/// A mail that fails to render does not stop the step: the reminder or
/// auto-close happens, without the mail, and the error is logged.
pub fn plan(
    cfg: &Config,
    renderer: &Renderer,
    due: Vec<(i64, PendingRow)>,
    now: DateTime<Utc>,
) -> Vec<Planned> {
    due.into_iter()
        .map(|(id, row)| {
            let (step, mail) = match step(cfg, &row, now) {
                None => (None, None),
                Some(s) => {
                    let mail = compose_mail(cfg, renderer, &row, s)
                        .map_err(|e| {
                            tracing::error!(
                                ticket = %row.reference,
                                "pending {} mail not sent: {e:#}",
                                kind(s)
                            )
                        })
                        .ok();
                    (Some(s), mail)
                }
            };
            Planned {
                id,
                row,
                step,
                mail,
            }
        })
        .collect()
}

fn kind(s: Step) -> &'static str {
    match s {
        Step::Remind { .. } => "reminder",
        Step::Close => "autoclose",
    }
}

/// Stage 3 (store thread): one transaction. Returns (mails queued,
/// tickets handled).
pub fn apply(
    conn: &mut Connection,
    cfg: &Config,
    plans: Vec<Planned>,
    now: DateTime<Utc>,
) -> Result<(usize, usize)> {
    let tx = crate::store::begin(conn).context("Starting the pending sweep")?;
    let (mut queued, mut handled) = (0, 0);
    for p in plans {
        if tickets::pending_row(&tx, p.id)? != p.row || p.row.status != "pending" {
            continue;
        }
        handled += 1;
        match p.step {
            None => {
                // Not owed after all (the config changed): reschedule.
                let since = p.row.pending_since.as_deref().and_then(parse_ts);
                let tz = p
                    .row
                    .customer_timezone
                    .as_deref()
                    .and_then(|z| z.parse().ok());
                let next = since
                    .and_then(|s| cfg.sla.pending_due(&p.row.plan, tz, s).ok())
                    .and_then(|d| {
                        if p.row.pending_stage == 0 {
                            d.reminder.or(d.close)
                        } else {
                            d.close
                        }
                    })
                    .filter(|t| *t > now);
                tickets::set_pending_next(&tx, p.id, next, p.row.pending_stage)?;
                continue;
            }
            Some(Step::Remind { close_at }) => {
                tickets::set_pending_next(&tx, p.id, close_at, 1)?;
                lifecycle::event(&tx, p.id, "sweeper", "pending-reminder", None, now)?;
            }
            Some(Step::Close) => {
                if lifecycle::resolve(&tx, cfg, p.id, now)? {
                    lifecycle::event(
                        &tx,
                        p.id,
                        "sweeper",
                        "resolved",
                        Some("auto-closed: no answer while pending"),
                        now,
                    )?;
                }
                lifecycle::refresh_next(&tx, cfg, p.id)?;
            }
        }
        if let (Some(mail), Some(s)) = (&p.mail, p.step) {
            outbox::enqueue_mail(&tx, Some(p.id), kind(s), mail, now)?;
            queued += 1;
        }
    }
    tx.commit().context("Committing the pending sweep")?;
    Ok((queued, handled))
}

fn compose_mail(
    cfg: &Config,
    renderer: &Renderer,
    row: &PendingRow,
    s: Step,
) -> Result<compose::Outgoing> {
    let tz = cfg.sla.display_zone(
        &row.plan,
        row.customer_timezone
            .as_deref()
            .and_then(|z| z.parse().ok()),
        cfg.desk.timezone,
    );
    // Dates in the language of the template used (English text for a
    // language without its own reminder template).
    let lang = renderer.language_for(kind(s), &row.language);
    let local = |t: DateTime<Utc>| crate::core::when::local(t, tz, lang);
    let since = row
        .pending_since
        .as_deref()
        .and_then(parse_ts)
        .context("the ticket has no pending_since")?;
    let ctx = PendingContext {
        desk_name: cfg.desk.name.clone(),
        reference: row.reference.clone(),
        subject: crate::core::inbound::one_line(&row.subject),
        customer_name: row.requester_name.clone(),
        customer_email: row.requester.clone(),
        language: row.language.clone(),
        pending_since: local(since),
        close_at: match s {
            Step::Remind { close_at } => close_at.map(local),
            Step::Close => None,
        },
        vars: cfg.desk.template_vars.clone(),
    };
    let (_, rendered) = renderer.render(kind(s), &row.language, &ctx)?;
    let to: lettre::Address = row
        .requester
        .parse()
        .with_context(|| format!("{} cannot receive mail", row.requester))?;
    let refs: Vec<String> = row.first_message_id.iter().cloned().collect();
    compose::compose(&Reply {
        from: &cfg.desk.address,
        to: lettre::message::Mailbox::new(None, to),
        subject: &rendered.subject,
        body: &rendered.body,
        html: rendered.html.as_deref(),
        in_reply_to: row.first_message_id.as_deref(),
        references: &refs,
        reference: &row.reference,
        kind: kind(s),
        auto_submitted: Some("auto-generated"),
    })
}
