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
//!
//! A sweep is three stages, like ingest: read the due tickets (store
//! thread), decide the levels and render the notices (blocking pool),
//! apply in one transaction (store thread), skipping a ticket that
//! changed since it was read.

use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::compose::{self, Reply};
use crate::config::{Config, Recipient};
use crate::core::duration::human;
use crate::core::escalation::{Clock, Level, Schedule};
use crate::ingest::{AckFailure, AckJob, compose_ack};
use crate::lifecycle;
use crate::render::Renderer;
use crate::store::escalations::{self, TicketRow};
use crate::store::{Store, messages, outbox, parse_ts, tickets};

/// What the sweeper works with: the store, the config and templates of
/// this generation, when the process started (the fetch alert's
/// baseline), its own wake-up, the outbox's, and the shutdown token.
#[derive(Clone)]
pub struct Sweeper {
    pub store: Store,
    pub config: Arc<Config>,
    pub renderer: Arc<Renderer>,
    pub started: DateTime<Utc>,
    pub wake: Arc<Notify>,
    pub outbox_wake: Arc<Notify>,
    pub shutdown: CancellationToken,
}

impl Sweeper {
    /// One escalation sweep and one health check; wakes the outbox when
    /// they queued mail. Returns the number of notices queued.
    pub async fn sweep(&self) -> Result<usize> {
        let now = crate::clock::now();
        let mut n = 0;
        loop {
            let due = self.store.call(move |conn| read_due(conn, now)).await?;
            let full = due.len() == BATCH;
            let (config, renderer) = (self.config.clone(), self.renderer.clone());
            let plans = tokio::task::spawn_blocking(move || plan(&config, &renderer, due, now))
                .await
                .context("Planning escalations panicked")?;
            let config = self.config.clone();
            let (queued, handled) = self
                .store
                .call(move |conn| apply(conn, &config, plans, now))
                .await?;
            n += queued;
            if !full || handled == 0 {
                break;
            }
        }
        let pending = self.sweep_pending(now).await?;
        let released = self.release_held_acks().await?;
        // A digest that cannot be built waits for the next sweep; the
        // health check below still runs.
        let digests = self.send_digests(now).await.unwrap_or_else(|e| {
            tracing::error!("digests: {e:#}");
            0
        });
        let (config, started) = (self.config.clone(), self.started);
        let alerts = self
            .store
            .call(move |conn| crate::health::check(conn, &config, started, crate::clock::now()))
            .await?;
        if n > 0 {
            tracing::info!(notices = n, "escalations queued");
        }
        if n + pending + released + alerts + digests > 0 {
            self.outbox_wake.notify_one();
        }
        Ok(n)
    }

    /// Pending tickets owed a reminder or their auto-close (see
    /// [`crate::pending`]). Returns how many mails were queued.
    pub async fn sweep_pending(&self, now: DateTime<Utc>) -> Result<usize> {
        let mut n = 0;
        loop {
            let due = self
                .store
                .call(move |conn| crate::pending::read_due(conn, now))
                .await?;
            if due.is_empty() {
                break;
            }
            let (config, renderer) = (self.config.clone(), self.renderer.clone());
            let plans = tokio::task::spawn_blocking(move || {
                crate::pending::plan(&config, &renderer, due, now)
            })
            .await
            .context("Planning pending reminders panicked")?;
            let config = self.config.clone();
            let (queued, handled) = self
                .store
                .call(move |conn| crate::pending::apply(conn, &config, plans, now))
                .await?;
            n += queued;
            if handled == 0 {
                break;
            }
        }
        if n > 0 {
            tracing::info!(mails = n, "pending reminders and auto-closes queued");
        }
        Ok(n)
    }

    /// Acknowledgements held because their template failed: rendered
    /// again (off the store thread) and queued once the template works,
    /// each exactly once. Returns how many were queued.
    pub async fn release_held_acks(&self) -> Result<usize> {
        let held = self
            .store
            .call(|conn| tickets::held_acks(conn, HELD_BATCH))
            .await?;
        if held.is_empty() {
            return Ok(0);
        }
        let (config, renderer) = (self.config.clone(), self.renderer.clone());
        let ready = tokio::task::spawn_blocking(move || compose_held(&config, &renderer, held))
            .await
            .context("Rendering held acknowledgements panicked")?;
        if ready.is_empty() {
            return Ok(0);
        }
        let now = crate::clock::now();
        let n = self
            .store
            .call(move |conn| {
                let tx = crate::store::begin(conn)?;
                let mut n = 0;
                for (id, held, out) in &ready {
                    if !tickets::release_ack(&tx, *id, held)? {
                        continue;
                    }
                    outbox::enqueue_mail(&tx, Some(*id), "ack", out, now)?;
                    lifecycle::event(&tx, *id, "sweeper", "ack-released", None, now)?;
                    n += 1;
                }
                tx.commit()?;
                Ok(n)
            })
            .await?;
        if n > 0 {
            tracing::info!(acks = n, "held acknowledgements queued");
        }
        Ok(n)
    }

    /// The manager digests due and not sent yet (see [`crate::digest`]).
    /// Returns how many mails were queued.
    pub async fn send_digests(&self, now: DateTime<Utc>) -> Result<usize> {
        if self.config.digests.is_empty() {
            return Ok(0);
        }
        let config = self.config.clone();
        let jobs = self
            .store
            .call(move |conn| crate::digest::read_due(conn, &config, now))
            .await?;
        if jobs.is_empty() {
            return Ok(0);
        }
        let (config, renderer) = (self.config.clone(), self.renderer.clone());
        let ready = tokio::task::spawn_blocking(move || {
            crate::digest::compose(&config, &renderer, jobs, now)
        })
        .await
        .context("Rendering the digests panicked")?;
        let n = self
            .store
            .call(move |conn| crate::digest::apply(conn, &ready, now))
            .await?;
        if n > 0 {
            tracing::info!(mails = n, "digests queued");
        }
        Ok(n)
    }

    /// The daemon loop: a sweep every `escalation.tick`, or sooner when
    /// an ingest changed something.
    pub async fn run(&self) -> Result<()> {
        loop {
            if let Err(e) = self.sweep().await {
                tracing::error!("escalation sweep: {e:#}");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.escalation.tick) => {}
                _ = self.wake.notified() => {}
                _ = self.shutdown.cancelled() => return Ok(()),
            }
        }
    }
}

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
    /// "1h 30m" past due (breach, second) or left (warning); a notice has
    /// exactly one of them, and the other is undefined in the template
    /// (check-config's sample rendering fails a template that prints it).
    #[serde(skip_serializing_if = "Option::is_none")]
    late_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    left: Option<String>,
    /// When the level was reached: what `left` and `late_by` count from.
    noticed_at: String,
    /// Held for the recipient's office hours: sent at `held_until`, it
    /// still describes the ticket at `noticed_at`.
    #[serde(skip_serializing_if = "Option::is_none")]
    held_until: Option<String>,
    /// The first lines of the last message on the ticket.
    last_message: String,
}

/// Contexts covering every branch of an escalation template, for
/// `check-config`.
pub fn sample_contexts() -> Vec<serde_json::Value> {
    ["warning", "breach", "second"]
        .into_iter()
        .flat_map(|level| {
            [("first_response", false), ("resolution", true)]
                .into_iter()
                .map(move |(clock, held)| {
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
                        noticed_at: "2026-01-05 09:48 CET".into(),
                        held_until: held.then(|| "2026-01-06 08:00 CET".into()),
                        last_message: "Hello".into(),
                    })
                    .unwrap_or_default()
                })
        })
        .collect()
}

/// Held acknowledgements looked at per sweep.
const HELD_BATCH: usize = 100;

/// The held acknowledgements whose template renders now, composed.
fn compose_held(
    cfg: &Config,
    renderer: &Renderer,
    held: Vec<(i64, String)>,
) -> Vec<(i64, String, compose::Outgoing)> {
    let mut out = Vec::new();
    let mut failing = 0;
    for (id, json) in held {
        let job: AckJob = match serde_json::from_str(&json) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(ticket_id = id, "a held acknowledgement is unreadable: {e}");
                continue;
            }
        };
        match compose_ack(cfg, renderer, &job) {
            Ok(o) => out.push((id, json, o)),
            Err(AckFailure::Template(_)) => failing += 1,
            Err(AckFailure::Address(e)) => {
                tracing::error!(ticket_id = id, "a held acknowledgement cannot be sent: {e}")
            }
        }
    }
    if failing > 0 {
        tracing::warn!(
            acks = failing,
            "acknowledgements still held: their template fails"
        );
    }
    out
}

/// A due ticket as read from the store.
pub struct Due {
    id: i64,
    row: TicketRow,
    /// The first lines of the last message on the ticket.
    last_message: String,
}

/// What a sweep does to one ticket: per clock, the level now handled and
/// the notices composed for it.
pub struct Planned {
    id: i64,
    /// As it was read: the plan holds only while the ticket is unchanged.
    row: TicketRow,
    clocks: Vec<(Clock, Level, Vec<Notice>)>,
    /// A notice failed to render: its clock is not in `clocks`.
    render_failed: bool,
}

struct Notice {
    level: Level,
    recipient: String,
    out: compose::Outgoing,
    /// Now, or the opening of the recipient's hours it waits for.
    deliver_at: DateTime<Utc>,
}

/// Stage 1 (store thread, reads only): up to BATCH tickets due at `now`.
pub fn read_due(conn: &Connection, now: DateTime<Utc>) -> Result<Vec<Due>> {
    let mut out = Vec::new();
    for id in escalations::due(conn, now, BATCH)? {
        let row = escalations::ticket(conn, id)?;
        let last_message = messages::last_body(conn, id)?
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(8)
            .collect::<Vec<_>>()
            .join("\n");
        out.push(Due {
            id,
            row,
            last_message,
        });
    }
    Ok(out)
}

/// Stage 2 (off the store thread): which level each due clock reached,
/// who is told, and their notices rendered and composed.
pub fn plan(cfg: &Config, renderer: &Renderer, due: Vec<Due>, now: DateTime<Utc>) -> Vec<Planned> {
    due.into_iter()
        .map(|d| {
            let mut clocks = Vec::new();
            let mut render_failed = false;
            for (clock, next, due_at, warn, level) in &d.row.clocks {
                let Some(next) = next.as_deref().and_then(parse_ts) else {
                    continue;
                };
                if next > now {
                    continue;
                }
                let Some(due_at) = due_at.as_deref().and_then(parse_ts) else {
                    continue;
                };
                let schedule = Schedule::new(
                    warn.as_deref().and_then(parse_ts),
                    due_at,
                    cfg.escalation.second_after,
                );
                let Some(owed) = schedule.owed(*level, now) else {
                    continue;
                };
                // The highest level reached that someone receives: a late
                // sweep that finds a level nobody takes (a director only
                // for "second") still tells whoever takes the level below,
                // as long as that notice is still true: a warning is
                // never sent once the clock is due.
                let (sent_level, recipients) = Level::ALL
                    .into_iter()
                    .rev()
                    .filter(|l| *l <= owed && l.rank() > *level)
                    .filter(|l| *l != Level::Warning || now < due_at)
                    .map(|l| {
                        let rs = cfg
                            .escalation
                            .recipients_for(&d.row.plan, d.row.priority.as_deref(), l);
                        // Nor a warning held for office hours that would
                        // reach its recipient after the due instant.
                        let rs: Vec<&Recipient> = rs
                            .into_iter()
                            .filter(|r| l != Level::Warning || r.deliver_at(l, now) < due_at)
                            .collect();
                        (l, rs)
                    })
                    .find(|(_, r)| !r.is_empty())
                    .unwrap_or((owed, Vec::new()));
                if recipients.is_empty() {
                    tracing::debug!(ticket = %d.row.reference, level = owed.as_str(), "no escalation recipient");
                }
                let mut notices = Vec::new();
                let mut failed = false;
                for r in recipients {
                    let deliver_at = r.deliver_at(sent_level, now);
                    let held = (deliver_at > now).then_some(deliver_at);
                    match compose_notice(
                        cfg, renderer, &d, *clock, sent_level, due_at, r, now, held,
                    ) {
                        Ok(out) => notices.push(Notice {
                            level: sent_level,
                            recipient: r.address.email.to_string(),
                            out,
                            deliver_at,
                        }),
                        // A template that fails to render must not block
                        // every other ticket's escalation: log it and go on.
                        Err(e) => {
                            failed = true;
                            tracing::error!(
                                ticket = %d.row.reference,
                                recipient = %r.address,
                                "escalation notice not rendered, tried again at the next sweep: {e:#}"
                            )
                        }
                    }
                }
                // The level advances only once every notice of it is
                // composed: a template fixed later still sends it.
                if failed {
                    render_failed = true;
                } else {
                    clocks.push((*clock, owed, notices));
                }
            }
            Planned {
                id: d.id,
                row: d.row,
                clocks,
                render_failed,
            }
        })
        .collect()
}

/// Stage 3 (store thread, SQL only): one transaction; a ticket changed
/// since it was read (an agent answered in between) is left for the
/// next sweep. Returns (notices queued, tickets handled).
pub fn apply(
    conn: &mut Connection,
    cfg: &Config,
    plans: Vec<Planned>,
    now: DateTime<Utc>,
) -> Result<(usize, usize)> {
    let tx = crate::store::begin(conn).context("Starting a sweep")?;
    let (mut queued, mut handled) = (0, 0);
    for p in plans {
        // Every owed notice failed to render, or the ticket changed since
        // it was read: left for the next sweep.
        if (p.clocks.is_empty() && p.render_failed) || escalations::ticket(&tx, p.id)? != p.row {
            continue;
        }
        handled += 1;
        for (clock, owed, notices) in p.clocks {
            for n in notices {
                // Recorded once per ticket, clock, level and recipient:
                // a notice recorded before is not sent again.
                let Some(esc) = escalations::record(&tx, p.id, clock, n.level, &n.recipient, now)?
                else {
                    continue;
                };
                let outbox_id = outbox::enqueue_mail_held(
                    &tx,
                    Some(p.id),
                    "escalation",
                    &n.out,
                    now,
                    n.deliver_at,
                )?;
                if n.deliver_at > now {
                    tracing::info!(
                        ticket_id = p.id,
                        recipient = %n.recipient,
                        level = n.level.as_str(),
                        until = %n.deliver_at,
                        "escalation notice held for the recipient's hours"
                    );
                }
                escalations::link(&tx, esc, outbox_id)?;
                queued += 1;
            }
            tickets::set_level(&tx, p.id, clock, owed.rank())?;
            lifecycle::event(
                &tx,
                p.id,
                "sweeper",
                &format!("escalation-{}", owed.as_str()),
                Some(clock.as_str()),
                now,
            )?;
        }
        lifecycle::refresh_next(&tx, cfg, p.id)?;
    }
    tx.commit().context("Committing a sweep")?;
    Ok((queued, handled))
}

/// One whole sweep at `now` on the calling thread (the three stages in
/// turn); returns the number of notices queued.
pub fn sweep(
    conn: &mut Connection,
    cfg: &Config,
    renderer: &Renderer,
    now: DateTime<Utc>,
) -> Result<usize> {
    let mut queued = 0;
    loop {
        let due = read_due(conn, now)?;
        let full = due.len() == BATCH;
        let (n, handled) = apply(conn, cfg, plan(cfg, renderer, due, now), now)?;
        queued += n;
        if !full || handled == 0 {
            return Ok(queued);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn compose_notice(
    cfg: &Config,
    renderer: &Renderer,
    d: &Due,
    clock: Clock,
    level: Level,
    due: DateTime<Utc>,
    r: &Recipient,
    now: DateTime<Utc>,
    held_until: Option<DateTime<Utc>>,
) -> Result<compose::Outgoing> {
    let row = &d.row;
    let local = |t: DateTime<Utc>| {
        t.with_timezone(&r.timezone)
            .format("%Y-%m-%d %H:%M %Z")
            .to_string()
    };
    let received = parse_ts(&row.received_at).unwrap_or(now);
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
        noticed_at: local(now),
        held_until: held_until.map(local),
        last_message: d.last_message.clone(),
    };
    let (_, rendered) = renderer.render("escalation", &r.language, &ctx)?;
    compose::compose(&Reply {
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
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_durations() {
        use crate::core::duration::human;
        use chrono::TimeDelta;
        assert_eq!(human(TimeDelta::minutes(12)), "12m");
        assert_eq!(human(TimeDelta::minutes(90)), "1h 30m");
        assert_eq!(human(TimeDelta::hours(3)), "3h");
        assert_eq!(human(TimeDelta::hours(51)), "2d 3h");
        assert_eq!(human(TimeDelta::days(2)), "2d");
    }
}
