//! The store halves of ingest, run on the store thread: reading the facts
//! a batch is decided on, and applying a decided round in one
//! transaction. Only store calls here; no decision is taken, no template
//! rendered, no file written.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::decide::{self, BatchFacts, Decision, Effect, Facts, Query};
use super::{Action, Analysed, Analysis, Outcome, Ready, Round};
use crate::config::Config;
use crate::core::auth;
use crate::lifecycle;
use crate::store::{self, mailbox, messages, outbox, tickets};

/// Stage 2: what the store knows of each message, and the version it
/// knew it at. One read transaction: the version and every fact come
/// from the same snapshot, and SQLite takes its file locks once for the
/// batch, not once per statement.
pub fn read_facts(
    conn: &mut Connection,
    queries: &[Query],
    now: DateTime<Utc>,
) -> Result<((i64, u64), BatchFacts)> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)
        .context("Starting the read of a batch's facts")?;
    let version = store::version(&tx)?;
    let facts = facts_of(&tx, queries, now)?;
    tx.finish().context("Ending the read of a batch's facts")?;
    Ok((version, facts))
}

fn facts_of(conn: &Connection, queries: &[Query], now: DateTime<Utc>) -> Result<BatchFacts> {
    let mut out = Vec::with_capacity(queries.len());
    for q in queries {
        let mut f = Facts {
            seen: messages::seen(conn, &q.mailbox, &q.source_key)?,
            ..Facts::default()
        };
        if f.seen || !q.parsed {
            out.push(f);
            continue;
        }
        if let Some(mid) = &q.message_id {
            f.earlier = messages::earlier(conn, mid, &q.sender)?;
        }
        for mid in &q.refs {
            let hit = match messages::ticket_of(conn, mid)? {
                Some(t) => Some(t),
                None => outbox::ticket_of(conn, mid)?,
            };
            f.refs.push(hit);
            if hit.is_some() {
                break;
            }
        }
        let wanted = [q.tag, f.refs.last().copied().flatten(), f.earlier.flatten()];
        for id in wanted.into_iter().flatten() {
            if f.tickets.iter().any(|(t, _)| *t == id) {
                continue;
            }
            if let Some(state) = tickets::thread(conn, id)? {
                f.tickets.push((id, state));
            }
        }
        if let Some(to) = &q.ack_to {
            f.recent_acks = outbox::acks_since(conn, to, now - decide::ACK_WINDOW)?;
            if let Some(d) = auth::domain_of(to) {
                f.recent_acks_domain =
                    outbox::acks_domain_since(conn, &d, now - decide::ACK_WINDOW)?;
            }
        }
        out.push(f);
    }
    Ok(BatchFacts {
        now,
        next_ticket: tickets::next_id(conn)?,
        recent_acks_all: outbox::acks_all_since(conn, now - decide::ACK_WINDOW)?,
        messages: out,
    })
}

/// Stage 4: commits a round in one transaction (one fsync for all). None
/// when the facts it was decided on no longer hold (someone wrote in
/// between): nothing is committed and the caller decides again. A message
/// whose storing fails is rolled back alone and set aside as poison; the
/// round ends after it. A transient failure (disk full, database locked)
/// rolls the whole round back.
///
/// The round is first applied without savepoints: a savepoint per message
/// makes SQLite copy every page a message touches into its statement
/// journal (a quarter of the store thread's time). Only when a message
/// fails is that attempt rolled back and the round applied again with a
/// savepoint per message, so that the failing one is rolled back alone.
pub fn apply(
    conn: &mut Connection,
    cfg: &Config,
    batch: &[Analysed],
    queries: &[Query],
    round: Round,
    now: DateTime<Utc>,
) -> Result<Option<Vec<Outcome>>> {
    let applied = match apply_round(conn, cfg, batch, queries, &round, now, false)? {
        Applied::Failed => apply_round(conn, cfg, batch, queries, &round, now, true)?,
        applied => applied,
    };
    match applied {
        Applied::Stale => Ok(None),
        Applied::Done(out) => Ok(Some(out)),
        Applied::Failed => unreachable!("a round with savepoints sets a failure aside"),
    }
}

enum Applied {
    Done(Vec<Outcome>),
    /// The facts changed since the round was decided.
    Stale,
    /// A message failed on the path without savepoints; nothing committed.
    Failed,
}

fn apply_round(
    conn: &mut Connection,
    cfg: &Config,
    batch: &[Analysed],
    queries: &[Query],
    round: &Round,
    now: DateTime<Utc>,
    savepoints: bool,
) -> Result<Applied> {
    let mut tx = store::begin(conn).context("Starting the ingest transaction")?;
    let n = round.ready.len();
    if store::version(&tx)? != round.version {
        let fresh = facts_of(&tx, &queries[..n], now)?;
        if fresh.next_ticket != round.facts.next_ticket
            || fresh.messages[..] != round.facts.messages[..n]
        {
            tracing::debug!("facts changed under a batch; deciding it again");
            return Ok(Applied::Stale);
        }
    }
    let mut out = Vec::with_capacity(n);
    for (r, a) in round.ready.iter().zip(batch) {
        let inc = &a.incoming;
        let error = match r.poison.clone() {
            Some(e) => e,
            None if !savepoints => match apply_one(&tx, cfg, a, r, now) {
                Ok(o) => {
                    out.push(o);
                    continue;
                }
                Err(e) if store::is_transient(&e) => return Err(e),
                // Dropping the transaction rolls the attempt back.
                Err(e) => {
                    tracing::debug!(
                        "a message failed; applying its round again with savepoints: {e:#}"
                    );
                    return Ok(Applied::Failed);
                }
            },
            None => {
                let sp = tx.savepoint().context("Starting a savepoint")?;
                match apply_one(&sp, cfg, a, r, now) {
                    Ok(o) => {
                        sp.commit().context("Releasing the savepoint")?;
                        out.push(o);
                        continue;
                    }
                    // The machine, not the message: roll the whole round
                    // back and let the source fetch it again.
                    Err(e) if store::is_transient(&e) => return Err(e),
                    // Dropping the savepoint rolls this message back.
                    Err(e) => format!("{e:#}"),
                }
            }
        };
        tracing::error!(mailbox = %inc.mailbox, key = %inc.source_key, "storing failed, setting the message aside: {error}");
        out.push(record_poison(&tx, a, &error, now)?);
        break;
    }
    tx.commit().context("Committing the ingest transaction")?;
    Ok(Applied::Done(out))
}

fn apply_one(
    tx: &Connection,
    cfg: &Config,
    a: &Analysed,
    r: &Ready,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let d = &r.decision;
    let Some(kind) = d.kind else {
        return Ok(outcome(d, false));
    };
    let inc = &a.incoming;
    let mail = match &a.analysis {
        Analysis::Parsed(p) => Some(&p.mail),
        Analysis::Unparsable(_) => None,
    };
    let verdict = match &a.analysis {
        Analysis::Parsed(p) => serde_json::to_string(&p.auth).ok(),
        Analysis::Unparsable(_) => None,
    };
    if let Effect::NewTicket(t) = &d.effect {
        let mut notes = t.notes.clone();
        if let Some(why) = &r.held {
            tracing::info!(ticket = %t.reference, "{why}");
            notes.push(why.clone());
        }
        let note = (!notes.is_empty()).then(|| notes.join("; "));
        let v = &t.verdict;
        let reasons = serde_json::to_string(&v.reasons).context("Serialising reasons")?;
        let mail = mail.context("A new ticket without a parsed message")?;
        tickets::insert(
            tx,
            &tickets::NewTicket {
                id: t.id,
                reference: &t.reference,
                subject: &mail.subject,
                requester: d.sender.as_deref().unwrap_or_default(),
                requester_name: mail.from.as_ref().and_then(|a| a.name.as_deref()),
                customer: t.customer.customer.as_deref(),
                plan: &t.customer.plan,
                language: &v.language,
                category: v.category.as_deref(),
                priority: v.priority.as_deref(),
                impact: v.impact.as_deref(),
                urgency: v.urgency.as_deref(),
                triage_reasons: &reasons,
                received_at: inc.received_at,
                clocks: t.clocks,
                note: note.as_deref(),
                customer_timezone: t.customer.timezone.map(|z| z.name()),
                previous: t.previous,
                created_at: now,
            },
        )?;
        lifecycle::refresh_next(tx, cfg, t.id)?;
        if let Some(job) = &r.hold {
            tickets::hold_ack(tx, t.id, job)?;
        }
    }
    let msg = messages::insert(
        tx,
        &messages::NewMessage {
            ticket: d.ticket,
            kind,
            mailbox: &inc.mailbox,
            source_key: &inc.source_key,
            uidvalidity: inc.uidvalidity,
            uid: inc.uid,
            message_id: mail.and_then(|m| m.message_id.as_deref()),
            sender: d.sender.as_deref(),
            subject: mail.map(|m| m.subject.as_str()),
            received_at: inc.received_at,
            body_text: mail.map(|m| m.text.as_str()),
            raw: inc.raw.inline(),
            raw_path: inc.raw.path(),
            auth: verdict.as_deref(),
            error: d.error.as_deref(),
            created_at: now,
        },
    )?;
    for f in &r.files {
        messages::insert_attachment(tx, msg, f)?;
    }
    let actor = d.sender.as_deref().unwrap_or_default();
    // What a mail does to its ticket happens when the mail arrived (the
    // server's arrival time), not when it is processed: a `#close` sent
    // during an outage resolves the ticket at its sending.
    let at = inc.received_at;
    match (&d.effect, d.ticket) {
        (Effect::Agent(parsed), Some(ticket)) => {
            for e in &parsed.errors {
                lifecycle::event(tx, ticket, actor, "command-error", Some(e), at)?;
            }
            // A #reopen comes first: its text is then the first response
            // of the restarted clock, not one before it.
            let reopen = |c: &&crate::core::commands::Command| {
                matches!(c, crate::core::commands::Command::Reopen)
            };
            for c in parsed.commands.iter().filter(reopen) {
                lifecycle::apply(tx, cfg, ticket, actor, c, at)?;
            }
            if parsed.has_text {
                lifecycle::respond(tx, cfg, ticket, actor, at)?;
            }
            for c in parsed.commands.iter().filter(|c| !reopen(c)) {
                lifecycle::apply(tx, cfg, ticket, actor, c, at)?;
            }
        }
        (Effect::Followup(effect), Some(ticket)) => {
            lifecycle::apply_followup(tx, cfg, ticket, actor, *effect, at)?;
        }
        (Effect::Unauthenticated(detail), Some(ticket)) => {
            lifecycle::event(
                tx,
                ticket,
                actor,
                "unauthenticated agent mail",
                Some(detail),
                at,
            )?;
        }
        _ => {}
    }
    if let Some(out) = &r.ack {
        outbox::enqueue_mail(tx, d.ticket, "ack", out, now)?;
    }
    advance_watermark(tx, a, now)?;
    Ok(outcome(d, r.ack.is_some()))
}

fn outcome(d: &Decision, queued_ack: bool) -> Outcome {
    Outcome {
        action: d.action,
        ticket: d.reference.clone(),
        queued_ack,
    }
}

fn advance_watermark(tx: &Connection, a: &Analysed, now: DateTime<Utc>) -> Result<()> {
    let inc = &a.incoming;
    if let (Some(v), Some(uid)) = (inc.uidvalidity, inc.uid) {
        mailbox::advance(tx, &inc.mailbox, v, uid, now)?;
    }
    Ok(())
}

/// Records a message whose normal commit failed: raw bytes and error, no
/// ticket, watermark advanced. Inside the round's transaction, so the
/// watermark never passes a message that has no row.
fn record_poison(
    tx: &Connection,
    a: &Analysed,
    error: &str,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let inc = &a.incoming;
    let err = format!("poison: {error}");
    messages::insert(
        tx,
        &messages::NewMessage {
            ticket: None,
            kind: "poison",
            mailbox: &inc.mailbox,
            source_key: &inc.source_key,
            uidvalidity: inc.uidvalidity,
            uid: inc.uid,
            message_id: None,
            sender: None,
            subject: None,
            received_at: inc.received_at,
            body_text: None,
            raw: inc.raw.inline(),
            raw_path: inc.raw.path(),
            auth: None,
            error: Some(&err),
            created_at: now,
        },
    )?;
    advance_watermark(tx, a, now)?;
    Ok(Outcome {
        action: Action::Unparsable,
        ticket: None,
        queued_ack: false,
    })
}
