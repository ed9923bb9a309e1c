//! Ingest: one raw message from a source to a committed ticket.
//!
//! Two halves. `prepare` is CPU only (parse, automated/spam check, triage,
//! customer and SLA) and runs in the source's task. `commit_batch` runs on the
//! store thread and does everything that must be atomic in one
//! transaction: the dedupe check, threading, the ticket, the message with
//! its raw bytes, the acknowledgement in the outbox and the mailbox
//! watermark. Marking the message at the source happens after the commit,
//! so a crash in between only means the mark is re-applied later; it never
//! means a second ticket.

use std::path::Path;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::core::commands;
use crate::core::inbound::{self, ParsedMail};
use crate::core::sla::{CustomerMatch, DueQuery};
use crate::core::threading;
use crate::core::triage::{self, Automated, Verdict};
use crate::lifecycle::{self, Clocks, Followup};
use crate::mail::compose::{self, Reply};
use crate::render::{AckContext, Renderer};
use crate::store::ts;

/// A message as a source hands it over.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub mailbox: String,
    /// Unique within the mailbox: "UIDVALIDITY:UID" for IMAP, the file's
    /// unique name for Maildir.
    pub source_key: String,
    pub uidvalidity: Option<u32>,
    pub uid: Option<u32>,
    /// The server's arrival time (IMAP INTERNALDATE, Maildir delivery).
    pub received_at: DateTime<Utc>,
    pub raw: Vec<u8>,
}

pub enum Analysis {
    Unparsable(String),
    Parsed(Box<Parsed>),
}

pub struct Parsed {
    pub mail: ParsedMail,
    pub automated: Option<Automated>,
    pub spam: bool,
    pub oversized: bool,
    pub verdict: Verdict,
    pub customer: CustomerMatch,
    pub clocks: Clocks,
    pub sla_note: Option<String>,
}

pub struct Prepared {
    pub incoming: Incoming,
    pub analysis: Analysis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Already committed earlier (same mailbox and source key).
    AlreadyDone,
    NewTicket,
    Followup,
    Automated,
    Spam,
    Unparsable,
    /// Same Message-ID seen before (another mailbox, or a new UIDVALIDITY).
    Duplicate,
    /// From an agent: a response and/or commands on its ticket.
    Agent,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::AlreadyDone => "already-done",
            Action::NewTicket => "new-ticket",
            Action::Followup => "followup",
            Action::Automated => "automated",
            Action::Spam => "spam",
            Action::Unparsable => "unparsable",
            Action::Duplicate => "duplicate",
            Action::Agent => "agent",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub action: Action,
    pub ticket: Option<String>,
    pub queued_ack: bool,
}

pub fn prepare(cfg: &Config, incoming: Incoming, now: DateTime<Utc>) -> Prepared {
    let oversized = incoming.raw.len() as u64 > cfg.desk.max_message_bytes;
    // An oversized message is read for its headers only: enough to thread,
    // acknowledge and note it, without parsing megabytes of MIME.
    let parsed = if oversized {
        inbound::parse(header_block(&incoming.raw))
    } else {
        inbound::parse(&incoming.raw)
    };
    let mail = match parsed {
        Ok(m) => m,
        Err(e) => {
            return Prepared {
                incoming,
                analysis: Analysis::Unparsable(e.to_string()),
            };
        }
    };
    let automated = triage::detect_automated(&mail);
    let spam = mail
        .header("X-Spam-Flag")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("yes"));
    let verdict = triage::classify(&mail, &cfg.triage);
    let sender = mail.from.as_ref().map(|a| a.email.as_str()).unwrap_or("");
    let customer = cfg.sla.customer_for(sender, now);
    let (clocks, sla_note) = match lifecycle::compute_clocks(
        cfg,
        &DueQuery {
            plan: &customer.plan,
            priority: verdict.priority.as_deref(),
            category: verdict.category.as_deref(),
            timezone: customer.timezone,
            received: incoming.received_at,
        },
    ) {
        Ok(c) => (c, None),
        Err(e) => (Clocks::default(), Some(format!("no SLA computed: {e}"))),
    };
    Prepared {
        incoming,
        analysis: Analysis::Parsed(Box::new(Parsed {
            mail,
            automated,
            spam,
            oversized,
            verdict,
            customer,
            clocks,
            sla_note,
        })),
    }
}

/// `prepare`, with a panic anywhere in the analysis turned into an
/// unparsable message rather than a dead mailbox task.
pub fn prepare_guarded(cfg: &Config, incoming: Incoming, now: DateTime<Utc>) -> Prepared {
    let copy = incoming.clone();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| prepare(cfg, incoming, now))) {
        Ok(p) => p,
        Err(_) => Prepared {
            incoming: copy,
            analysis: Analysis::Unparsable(
                "internal error while analysing the message (panic)".into(),
            ),
        },
    }
}

/// Records a message whose normal commit failed: raw bytes and error, no
/// ticket, watermark advanced. Inside the batch's transaction, so the
/// watermark never passes a message that has no row.
fn record_poison(
    tx: &Connection,
    inc: &Incoming,
    error: &str,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let err = format!("poison: {error}");
    insert_message(tx, inc, None, "poison", None, None, Some(&err), now)?;
    update_watermark(tx, inc, now)?;
    Ok(Outcome {
        action: Action::Unparsable,
        ticket: None,
        queued_ack: false,
    })
}

fn update_watermark(tx: &Connection, inc: &Incoming, now: DateTime<Utc>) -> Result<()> {
    if let (Some(v), Some(uid)) = (inc.uidvalidity, inc.uid) {
        tx.execute(
            "INSERT INTO mailbox_state (mailbox, uidvalidity, last_uid, last_poll_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(mailbox) DO UPDATE SET
               last_uid = CASE WHEN uidvalidity = excluded.uidvalidity THEN max(last_uid, excluded.last_uid) ELSE excluded.last_uid END,
               uidvalidity = excluded.uidvalidity",
            params![inc.mailbox, v, uid, ts(now)],
        )
        .context("Updating the mailbox watermark")?;
    }
    Ok(())
}

fn header_block(raw: &[u8]) -> &[u8] {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| i + 2))
        .unwrap_or(raw.len().min(64 * 1024));
    &raw[..end.min(256 * 1024)]
}

/// Commits a batch in one transaction (one fsync for all), each message
/// in its own savepoint: a message whose storing fails is rolled back
/// alone and set aside as poison (raw bytes and error) in the same
/// transaction. A transient failure (disk full, database locked) rolls the
/// whole batch back: the error is returned and the source fetches again.
pub fn commit_batch(
    conn: &mut Connection,
    cfg: &Config,
    renderer: &Renderer,
    batch: &[Prepared],
    now: DateTime<Utc>,
) -> Result<Vec<Outcome>> {
    let mut tx = crate::store::begin(conn).context("Starting the ingest transaction")?;
    let mut out = Vec::with_capacity(batch.len());
    for p in batch {
        let sp = tx.savepoint().context("Starting a savepoint")?;
        let result = commit_in(&sp, cfg, renderer, p, now);
        match result {
            Ok(o) => {
                sp.commit().context("Releasing the savepoint")?;
                out.push(o);
            }
            // The machine, not the message: roll the whole batch back
            // (dropping the transaction) and let the source fetch it again.
            Err(e) if crate::store::is_transient(&e) => return Err(e),
            Err(e) => {
                // Dropping the savepoint rolls this message back.
                drop(sp);
                let err = format!("{e:#}");
                let inc = &p.incoming;
                tracing::error!(mailbox = %inc.mailbox, key = %inc.source_key, "storing failed, setting the message aside: {err}");
                out.push(record_poison(&tx, inc, &err, now)?);
            }
        }
    }
    tx.commit().context("Committing the ingest transaction")?;
    Ok(out)
}

fn commit_in(
    tx: &Connection,
    cfg: &Config,
    renderer: &Renderer,
    p: &Prepared,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let inc = &p.incoming;

    let seen: Option<i64> = tx
        .query_row(
            "SELECT id FROM messages WHERE mailbox = ?1 AND source_key = ?2",
            params![inc.mailbox, inc.source_key],
            |r| r.get(0),
        )
        .optional()
        .context("Checking for an earlier ingest")?;
    if seen.is_some() {
        return Ok(Outcome {
            action: Action::AlreadyDone,
            ticket: None,
            queued_ack: false,
        });
    }

    let outcome = match &p.analysis {
        Analysis::Unparsable(err) => {
            insert_message(tx, inc, None, "unparsable", None, None, Some(err), now)?;
            Outcome {
                action: Action::Unparsable,
                ticket: None,
                queued_ack: false,
            }
        }
        Analysis::Parsed(a) => commit_parsed(tx, cfg, renderer, inc, a, now)?,
    };

    update_watermark(tx, inc, now)?;
    Ok(outcome)
}

fn commit_parsed(
    tx: &Connection,
    cfg: &Config,
    renderer: &Renderer,
    inc: &Incoming,
    a: &Parsed,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let mail = &a.mail;
    let sender = mail
        .from
        .as_ref()
        .map(|a| a.email.clone())
        .unwrap_or_default();

    // The same message reached us before (cross-posted to two desk
    // addresses, or the mailbox's UIDVALIDITY changed): keep it, no new ticket.
    if let Some(mid) = &mail.message_id {
        let earlier: Option<Option<i64>> = tx
            .query_row(
                "SELECT ticket_id FROM messages WHERE direction = 'in' AND message_id = ?1 AND sender IS ?2 LIMIT 1",
                params![mid, sender],
                |r| r.get(0),
            )
            .optional()
            .context("Looking up the Message-ID")?;
        if let Some(ticket_id) = earlier {
            let msg_id = insert_message(
                tx,
                inc,
                ticket_id,
                "duplicate",
                Some(mail),
                Some(&sender),
                None,
                now,
            )?;
            store_attachments(tx, cfg, msg_id, mail)?;
            return Ok(Outcome {
                action: Action::Duplicate,
                ticket: ticket_ref(tx, ticket_id)?,
                queued_ack: false,
            });
        }
    }

    if a.spam {
        insert_message(tx, inc, None, "spam", Some(mail), Some(&sender), None, now)?;
        return Ok(Outcome {
            action: Action::Spam,
            ticket: None,
            queued_ack: false,
        });
    }

    let is_agent = cfg.agents.is_agent(&sender);
    let thread = find_thread(tx, cfg, mail, &sender, is_agent)?;

    if let Some(auto) = &a.automated {
        let msg_id = insert_message(
            tx,
            inc,
            thread,
            "automated",
            Some(mail),
            Some(&sender),
            Some(&auto.reason),
            now,
        )?;
        store_attachments(tx, cfg, msg_id, mail)?;
        return Ok(Outcome {
            action: Action::Automated,
            ticket: ticket_ref(tx, thread)?,
            queued_ack: false,
        });
    }

    if is_agent {
        // An agent's answer (sent with the desk in Cc, or through it):
        // a response and commands on its ticket, never acknowledged. One
        // that matches no ticket is kept for an admin.
        let msg_id = insert_message(
            tx,
            inc,
            thread,
            "agent",
            Some(mail),
            Some(&sender),
            None,
            now,
        )?;
        store_attachments(tx, cfg, msg_id, mail)?;
        if let Some(ticket_id) = thread {
            let parsed = commands::parse(&mail.text);
            for e in &parsed.errors {
                lifecycle::event(tx, ticket_id, &sender, "command-error", Some(e), now)?;
            }
            if parsed.has_text {
                lifecycle::respond(tx, cfg, ticket_id, &sender, inc.received_at)?;
            }
            for c in &parsed.commands {
                lifecycle::apply(tx, cfg, ticket_id, &sender, c, now)?;
            }
        }
        return Ok(Outcome {
            action: Action::Agent,
            ticket: ticket_ref(tx, thread)?,
            queued_ack: false,
        });
    }

    let mut previous = None;
    if let Some(ticket_id) = thread {
        match lifecycle::customer_followup(tx, cfg, ticket_id, &sender, now)? {
            Followup::Joined => {
                let msg_id = insert_message(
                    tx,
                    inc,
                    Some(ticket_id),
                    "followup",
                    Some(mail),
                    Some(&sender),
                    None,
                    now,
                )?;
                store_attachments(tx, cfg, msg_id, mail)?;
                return Ok(Outcome {
                    action: Action::Followup,
                    ticket: ticket_ref(tx, Some(ticket_id))?,
                    queued_ack: false,
                });
            }
            Followup::NewTicket { previous: p } => previous = Some(p),
        }
    }

    if is_own_address(cfg, &sender) {
        // Our own mail coming back (a forward rule, a bounce of a bounce):
        // answering it would start a loop. Kept for an admin.
        insert_message(
            tx,
            inc,
            thread,
            "automated",
            Some(mail),
            Some(&sender),
            Some("from the desk's own address"),
            now,
        )?;
        return Ok(Outcome {
            action: Action::Automated,
            ticket: ticket_ref(tx, thread)?,
            queued_ack: false,
        });
    }

    if sender.is_empty() {
        // Nobody to acknowledge and nobody to answer: keep it for an admin.
        insert_message(
            tx,
            inc,
            None,
            "automated",
            Some(mail),
            None,
            Some("no From address"),
            now,
        )?;
        return Ok(Outcome {
            action: Action::Automated,
            ticket: None,
            queued_ack: false,
        });
    }

    // A new ticket. One writer owns the database, so the next id is stable
    // inside this transaction.
    let next_id: i64 = tx
        .query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM tickets", [], |r| {
            r.get(0)
        })
        .context("Choosing the ticket id")?;
    let reference = threading::reference(&cfg.desk.reference_prefix, next_id);
    let v = &a.verdict;
    let mut notes = Vec::new();
    if a.oversized {
        notes.push(format!(
            "message of {} bytes is over the {}-byte limit: kept raw, not parsed",
            inc.raw.len(),
            cfg.desk.max_message_bytes
        ));
    }
    if let Some(n) = &a.sla_note {
        notes.push(n.clone());
    }
    if let Some(p) = previous {
        notes.push(format!(
            "follows up {} (resolved before the reopen window)",
            ticket_ref(tx, Some(p))?.unwrap_or_default()
        ));
    }
    tx.execute(
        "INSERT INTO tickets (id, reference, status, subject, requester, requester_name, customer, plan,
            language, category, priority, impact, urgency, triage_reasons, received_at,
            first_response_due, resolution_due, note, created_at,
            customer_timezone, first_response_warn, resolution_warn, previous_ticket)
         VALUES (?1, ?2, 'open', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
            ?19, ?20, ?21, ?22)",
        params![
            next_id,
            reference,
            mail.subject,
            sender,
            mail.from.as_ref().and_then(|a| a.name.clone()),
            a.customer.customer,
            a.customer.plan,
            v.language,
            v.category,
            v.priority,
            v.impact,
            v.urgency,
            serde_json::to_string(&v.reasons).context("Serialising reasons")?,
            ts(inc.received_at),
            a.clocks.first_response_due.map(ts),
            a.clocks.resolution_due.map(ts),
            (!notes.is_empty()).then(|| notes.join("; ")),
            ts(now),
            a.customer.timezone.map(|z| z.name().to_string()),
            a.clocks.first_response_warn.map(ts),
            a.clocks.resolution_warn.map(ts),
            previous,
        ],
    )
    .context("Inserting the ticket")?;
    lifecycle::refresh_next(tx, cfg, next_id)?;
    let msg_id = insert_message(
        tx,
        inc,
        Some(next_id),
        "customer",
        Some(mail),
        Some(&sender),
        None,
        now,
    )?;
    store_attachments(tx, cfg, msg_id, mail)?;

    // The acknowledgement, queued in the same transaction as the ticket.
    // Loop guards beyond the RFC 3834 checks first: no-reply senders, and
    // a cap on acknowledgements per address and hour, which holds even
    // against an autoresponder that sends none of the usual headers.
    let reply_to = mail.reply_to.as_ref().or(mail.from.as_ref());
    let ack_to = reply_to.map(|a| a.email.to_lowercase()).unwrap_or_default();
    if is_no_reply(&ack_to) {
        return ticket_without_ack(tx, next_id, reference, "no-reply sender: not acknowledged");
    }
    let since = ts(now - chrono::TimeDelta::hours(1));
    let recent: i64 = tx
        .query_row(
            "SELECT count(*) FROM outbox WHERE kind = 'ack' AND lower(recipients) = ?1 AND created_at >= ?2",
            params![ack_to, since],
            |r| r.get(0),
        )
        .context("Counting recent acknowledgements")?;
    if recent >= i64::from(cfg.desk.ack_limit_per_hour) {
        let why = format!(
            "{recent} acknowledgements to {ack_to} in the last hour (limit {}): not acknowledged",
            cfg.desk.ack_limit_per_hour
        );
        return ticket_without_ack(tx, next_id, reference, &why);
    }
    let Some(to) = reply_to.and_then(|a| a.email.parse::<lettre::Address>().ok()) else {
        return ticket_without_ack(
            tx,
            next_id,
            reference,
            "sender address cannot receive mail: no acknowledgement",
        );
    };
    let tz = cfg.sla.display_zone(&a.customer.plan, a.customer.timezone);
    let local = |t: Option<DateTime<Utc>>| {
        t.map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string())
    };
    let ctx = AckContext {
        desk_name: cfg.desk.name.clone(),
        reference: reference.clone(),
        subject: mail.subject.clone(),
        customer_name: mail.from.as_ref().and_then(|a| a.name.clone()),
        customer_email: sender.clone(),
        language: v.language.clone(),
        plan: a.customer.plan.clone(),
        category: v.category.clone(),
        priority: v.priority.clone(),
        first_response_due: local(a.clocks.first_response_due),
        resolution_due: local(a.clocks.resolution_due),
        received_at: ts(inc.received_at),
        vars: cfg.desk.template_vars.clone(),
    };
    let (_, rendered) = renderer.render("ack", &v.language, &ctx)?;
    let composed = compose::compose(&Reply {
        from: &cfg.desk.address,
        to: lettre::message::Mailbox::new(None, to),
        subject: &rendered.subject,
        body: &rendered.body,
        html: rendered.html.as_deref(),
        in_reply_to: mail.message_id.as_deref(),
        references: &mail.references,
        reference: &reference,
        kind: "ack",
        auto_submitted: Some("auto-replied"),
    });
    let out = match composed {
        Ok(out) => out,
        // An address lettre accepts but cannot build an envelope for
        // (seen in the wild): the ticket stands, the ack cannot.
        Err(e) => {
            let why = format!("acknowledgement cannot be sent to this address: {e:#}");
            return ticket_without_ack(tx, next_id, reference, &why);
        }
    };
    enqueue(tx, Some(next_id), "ack", &out, now)?;
    Ok(Outcome {
        action: Action::NewTicket,
        ticket: Some(reference),
        queued_ack: true,
    })
}

/// A new ticket that gets no acknowledgement: the reason goes into its
/// note (and the log), so an agent sees why the customer heard nothing.
fn ticket_without_ack(
    tx: &Connection,
    ticket: i64,
    reference: String,
    why: &str,
) -> Result<Outcome> {
    tracing::info!(ticket = %reference, "{why}");
    tx.execute(
        "UPDATE tickets SET note = COALESCE(note || '; ', '') || ?1 WHERE id = ?2",
        params![why, ticket],
    )
    .context("Noting the missing acknowledgement")?;
    Ok(Outcome {
        action: Action::NewTicket,
        ticket: Some(reference),
        queued_ack: false,
    })
}

/// The desk's From address, or the login of one of its IMAP mailboxes.
fn is_own_address(cfg: &Config, sender: &str) -> bool {
    let sender = sender.to_lowercase();
    sender == cfg.desk.address.email.to_string().to_lowercase()
        || cfg.mailboxes.iter().any(|m| match &m.kind {
            crate::config::MailboxKind::Imap(s) => s.username.to_lowercase() == sender,
            crate::config::MailboxKind::Maildir { .. } => false,
        })
}

/// noreply@, no-reply@, donotreply@, do-not-reply@ and the like.
fn is_no_reply(address: &str) -> bool {
    let local = address.split('@').next().unwrap_or("");
    let squashed: String = local
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    squashed.starts_with("noreply") || squashed.starts_with("donotreply")
}

/// Subject tag first (accepted only from the requester, someone of the
/// same domain or an agent, so a stranger cannot attach mail to another
/// customer's ticket), then In-Reply-To/References against every stored
/// Message-ID.
fn find_thread(
    tx: &Connection,
    cfg: &Config,
    mail: &ParsedMail,
    sender: &str,
    is_agent: bool,
) -> Result<Option<i64>> {
    if let Some(id) = threading::find_tag(&cfg.desk.reference_prefix, &mail.subject) {
        let requester: Option<String> = tx
            .query_row("SELECT requester FROM tickets WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .context("Looking up the tagged ticket")?;
        if let Some(req) = requester {
            let dom = |s: &str| s.rsplit_once('@').map(|(_, d)| d.to_string());
            if is_agent || req == sender || (dom(&req).is_some() && dom(&req) == dom(sender)) {
                return Ok(Some(id));
            }
        }
    }
    for mid in mail.referenced_ids() {
        let hit: Option<Option<i64>> = tx
            .query_row(
                "SELECT ticket_id FROM messages WHERE message_id = ?1 AND ticket_id IS NOT NULL
                 UNION ALL SELECT ticket_id FROM outbox WHERE message_id = ?1 AND ticket_id IS NOT NULL LIMIT 1",
                [mid],
                |r| r.get(0),
            )
            .optional()
            .context("Looking up references")?;
        if let Some(Some(t)) = hit {
            return Ok(Some(t));
        }
    }
    Ok(None)
}

fn ticket_ref(tx: &Connection, id: Option<i64>) -> Result<Option<String>> {
    let Some(id) = id else { return Ok(None) };
    tx.query_row("SELECT reference FROM tickets WHERE id = ?1", [id], |r| {
        r.get(0)
    })
    .optional()
    .context("Reading the ticket reference")
}

#[allow(clippy::too_many_arguments)]
fn insert_message(
    tx: &Connection,
    inc: &Incoming,
    ticket: Option<i64>,
    kind: &str,
    mail: Option<&ParsedMail>,
    sender: Option<&str>,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<i64> {
    tx.execute(
        "INSERT INTO messages (ticket_id, direction, kind, mailbox, source_key, uidvalidity, uid, marked,
            message_id, sender, subject, received_at, body_text, raw, error, created_at)
         VALUES (?1, 'in', ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            ticket,
            kind,
            inc.mailbox,
            inc.source_key,
            inc.uidvalidity,
            inc.uid,
            mail.and_then(|m| m.message_id.clone()),
            sender,
            mail.map(|m| m.subject.clone()),
            ts(inc.received_at),
            mail.map(|m| m.text.clone()),
            inc.raw,
            error,
            ts(now),
        ],
    )
    .context("Inserting the message")?;
    Ok(tx.last_insert_rowid())
}

/// Attachments go to disk under the state directory, content-addressed
/// (so a repeated ingest rewrites the same file), metadata in SQLite.
fn store_attachments(tx: &Connection, cfg: &Config, msg_id: i64, mail: &ParsedMail) -> Result<()> {
    for att in &mail.attachments {
        let hash = format!("{:x}", Sha256::digest(&att.content));
        let rel = Path::new("attachments").join(&hash[..2]).join(&hash);
        let path = cfg.desk.state_dir.join(&rel);
        if !path.exists() {
            let dir = path.parent().context("Attachment path has no parent")?;
            std::fs::create_dir_all(dir).with_context(|| format!("Creating {}", dir.display()))?;
            crate::app::private(dir, 0o700)?;
            if let Some(top) = dir.parent() {
                crate::app::private(top, 0o700)?;
            }
            let tmp = path.with_extension("tmp");
            if let Err(e) = std::fs::write(&tmp, &att.content) {
                let _ = std::fs::remove_file(&tmp);
                return Err(e).with_context(|| format!("Writing {}", tmp.display()));
            }
            crate::app::private(&tmp, 0o600)?;
            std::fs::rename(&tmp, &path).with_context(|| format!("Renaming {}", tmp.display()))?;
        }
        tx.execute(
            "INSERT INTO attachments (message_id, filename, content_type, size, sha256, path) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![msg_id, att.filename, att.content_type, att.content.len() as i64, hash, rel.to_string_lossy()],
        )
        .context("Inserting attachment metadata")?;
    }
    Ok(())
}

pub fn enqueue(
    tx: &Connection,
    ticket: Option<i64>,
    kind: &str,
    out: &compose::Outgoing,
    now: DateTime<Utc>,
) -> Result<()> {
    tx.execute(
        "INSERT INTO outbox (ticket_id, kind, message_id, sender, recipients, raw, status, attempts, next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', 0, ?7, ?7)",
        params![ticket, kind, out.message_id, out.sender, out.recipients.join(","), out.raw, ts(now)],
    )
    .context("Queueing the outgoing message")?;
    Ok(())
}
