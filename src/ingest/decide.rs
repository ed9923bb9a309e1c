//! The ingest decision, pure: what a batch of analysed messages does,
//! given what the store knew of them when it was read ([`Facts`]).
//!
//! No SQL, no I/O, no clock: every instant is the message's arrival. For each message, in
//! order: already committed, unparsable, duplicate, spam, automated,
//! agent (response and commands), follow-up (join, resume, reopen), or a
//! new ticket with its triage, SLA clocks and the acknowledgement to send
//! or the reason it is held. Triage and SLA run only for new tickets.
//!
//! A batch is decided as one sequence: what an earlier message of the
//! batch does (a ticket it opens, a Message-ID it brings, an
//! acknowledgement it queues) is seen by the later ones through an
//! overlay. A message whose ticket an earlier message of the same round
//! changed in a way the overlay does not follow (a command, a reopen)
//! ends the round: it is decided again on fresh facts once the round is
//! committed.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};

use super::{Action, Analysed, Analysis, Parsed};
use crate::config::Config;
use crate::core::auth;
use crate::core::commands;
use crate::core::escalation::Clocks;
use crate::core::sla::{CustomerMatch, DueQuery};
use crate::core::threading;
use crate::core::triage::Verdict;
use crate::lifecycle::{self, Followup};
use crate::render::AckContext;
use crate::store::tickets::Thread;
use crate::store::ts;

/// What the store is asked about one message.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub mailbox: String,
    pub source_key: String,
    /// Only for a parsed message.
    pub parsed: bool,
    pub message_id: Option<String>,
    pub sender: String,
    /// The ticket id of a `[PREFIX-000123]` tag in the subject.
    pub tag: Option<i64>,
    /// In-Reply-To first, then References from the newest.
    pub refs: Vec<String>,
    /// Lowercased acknowledgement address, when the message may get one.
    pub ack_to: Option<String>,
}

/// What the store knew of one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Committed before (same mailbox and source key).
    pub seen: bool,
    /// The same Message-ID from the same sender: Some(its ticket).
    pub earlier: Option<Option<i64>>,
    /// The ticket of each referenced Message-ID, up to the first found.
    pub refs: Vec<Option<i64>>,
    /// The tagged ticket and the first referenced one, as they are.
    pub tickets: Vec<(i64, Thread)>,
    /// Acknowledgements to `ack_to` in the last hour.
    pub recent_acks: i64,
    /// Acknowledgements to `ack_to`'s domain in the last hour.
    pub recent_acks_domain: i64,
}

/// What the store knew of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchFacts {
    /// When the batch is decided: an acknowledgement never promises an
    /// instant before it.
    pub now: DateTime<Utc>,
    pub next_ticket: i64,
    /// Acknowledgements to anyone in the last hour.
    pub recent_acks_all: i64,
    pub messages: Vec<Facts>,
}

/// What one message does.
#[derive(Debug)]
pub enum Effect {
    /// Only the message row (and attachments when `attachments`).
    Record,
    /// Mail from an agent's address that the trust policy does not
    /// authenticate: kept on its ticket with this event detail (the
    /// verdict), no command run, no response recorded.
    Unauthenticated(String),
    Agent(commands::Parsed),
    Followup(Followup),
    NewTicket(Box<NewTicket>),
}

/// The decision for one message.
#[derive(Debug)]
pub struct Decision {
    pub action: Action,
    /// The `messages.kind` it is stored as; None: nothing stored (already done).
    pub kind: Option<&'static str>,
    pub ticket: Option<i64>,
    /// The reference of `ticket`, for the outcome.
    pub reference: Option<String>,
    /// Stored as the sender (None for a message without From).
    pub sender: Option<String>,
    /// Stored as the message's error (the automated reason, say).
    pub error: Option<String>,
    pub attachments: bool,
    pub effect: Effect,
}

#[derive(Debug)]
pub struct NewTicket {
    pub id: i64,
    pub reference: String,
    pub verdict: Verdict,
    pub customer: CustomerMatch,
    pub clocks: Clocks,
    pub notes: Vec<String>,
    pub previous: Option<i64>,
    /// The acknowledgement to render and send, or why there is none.
    pub ack: Result<AckDraft, String>,
}

#[derive(Debug)]
pub struct AckDraft {
    pub to: lettre::Address,
    pub context: AckContext,
}

/// The store questions for one analysed message.
pub fn query(cfg: &Config, a: &Analysed) -> Query {
    let inc = &a.incoming;
    let mut q = Query {
        mailbox: inc.mailbox.clone(),
        source_key: inc.source_key.clone(),
        ..Query::default()
    };
    let Analysis::Parsed(p) = &a.analysis else {
        return q;
    };
    let mail = &p.mail;
    q.parsed = true;
    q.message_id = mail.message_id.clone();
    q.sender = p.sender.clone();
    q.tag = threading::find_tag(&cfg.desk.reference_prefix, &mail.subject);
    q.refs = mail.referenced_ids().map(str::to_string).collect();
    let may_ack = !p.spam
        && p.automated.is_none()
        && !p.sender.is_empty()
        && !cfg.agents.is_agent(&p.sender)
        && !is_own_address(cfg, &p.sender);
    if may_ack {
        q.ack_to = ack_address(cfg, p).map(|a| a.email.to_lowercase());
    }
    q
}

/// The From, or the Reply-To where the trust policy allows it (by
/// default: an authenticated sender's Reply-To in its own domain), so a
/// forged Reply-To never turns the acknowledgement on a third party.
fn ack_address<'a>(cfg: &Config, p: &'a Parsed) -> Option<&'a crate::core::inbound::Address> {
    let from = p.mail.from.as_ref();
    match (&p.mail.reply_to, from) {
        (Some(r), Some(f))
            if auth::ack_to_reply_to(cfg.trust.reply_to, &p.auth, &f.email, &r.email) =>
        {
            Some(r)
        }
        (Some(r), None) if cfg.trust.reply_to == auth::ReplyTo::Always => Some(r),
        _ => from,
    }
}

/// Batch-local state: what earlier messages of the round did.
struct Overlay {
    now: DateTime<Utc>,
    next_ticket: i64,
    keys: HashSet<(String, String)>,
    /// Message-ID -> (sender, ticket) of the round's stored messages.
    mids: HashMap<String, Vec<(String, Option<i64>)>>,
    new_tickets: HashMap<i64, Thread>,
    /// Ticket states read for the round's messages so far.
    known: HashMap<i64, Thread>,
    acks: HashMap<String, i64>,
    acks_domain: HashMap<String, i64>,
    acks_all: i64,
    /// Tickets whose state a message of the round changed.
    changed: HashSet<i64>,
}

/// Decides the batch from its start; returns fewer decisions than
/// messages when a message must wait for the next round.
pub fn decide(
    cfg: &Config,
    batch: &[Analysed],
    queries: &[Query],
    facts: &BatchFacts,
) -> Vec<Decision> {
    let mut o = Overlay {
        now: facts.now,
        next_ticket: facts.next_ticket,
        keys: HashSet::new(),
        mids: HashMap::new(),
        new_tickets: HashMap::new(),
        known: HashMap::new(),
        acks: HashMap::new(),
        acks_domain: HashMap::new(),
        acks_all: facts.recent_acks_all,
        changed: HashSet::new(),
    };
    let mut out = Vec::with_capacity(batch.len());
    for ((a, q), f) in batch.iter().zip(queries).zip(&facts.messages) {
        for (id, t) in &f.tickets {
            o.known.entry(*id).or_insert_with(|| t.clone());
        }
        match decide_one(cfg, a, q, f, &mut o) {
            Some(d) => {
                if let (Some(sender), Some(mid)) = (&d.sender, &q.message_id) {
                    o.mids
                        .entry(mid.clone())
                        .or_default()
                        .push((sender.clone(), d.ticket));
                }
                o.keys.insert((q.mailbox.clone(), q.source_key.clone()));
                out.push(d);
            }
            None => break,
        }
    }
    out
}

fn record(
    action: Action,
    kind: &'static str,
    ticket: Option<i64>,
    o: &Overlay,
    f: &Facts,
) -> Decision {
    Decision {
        action,
        kind: Some(kind),
        ticket,
        reference: ticket.and_then(|t| state_of(t, o, f).map(|s| s.reference.clone())),
        sender: None,
        error: None,
        attachments: false,
        effect: Effect::Record,
    }
}

fn state_of<'a>(id: i64, o: &'a Overlay, f: &'a Facts) -> Option<&'a Thread> {
    o.new_tickets
        .get(&id)
        .or_else(|| f.tickets.iter().find(|(t, _)| *t == id).map(|(_, s)| s))
        .or_else(|| o.known.get(&id))
}

/// None: the message waits for the next round.
fn decide_one(
    cfg: &Config,
    a: &Analysed,
    q: &Query,
    f: &Facts,
    o: &mut Overlay,
) -> Option<Decision> {
    if f.seen || o.keys.contains(&(q.mailbox.clone(), q.source_key.clone())) {
        return Some(Decision {
            kind: None,
            ..record(Action::AlreadyDone, "", None, o, f)
        });
    }
    let p = match &a.analysis {
        Analysis::Unparsable(err) => {
            return Some(Decision {
                error: Some(err.clone()),
                ..record(Action::Unparsable, "unparsable", None, o, f)
            });
        }
        Analysis::Parsed(p) => p,
    };
    let sender = p.sender.clone();
    let stored = |d: Decision| Decision {
        sender: Some(sender.clone()),
        ..d
    };

    // The same message reached us before (cross-posted to two desk
    // addresses, or the mailbox's UIDVALIDITY changed): keep it, no new ticket.
    if let Some(mid) = &q.message_id {
        let in_round = o
            .mids
            .get(mid)
            .and_then(|v| v.iter().find(|(s, _)| *s == sender).map(|(_, t)| *t));
        if let Some(ticket) = in_round.or(f.earlier) {
            return Some(stored(Decision {
                attachments: true,
                ..record(Action::Duplicate, "duplicate", ticket, o, f)
            }));
        }
    }

    if p.spam {
        return Some(stored(record(Action::Spam, "spam", None, o, f)));
    }

    let is_agent = cfg.agents.is_agent(&sender);
    let thread = find_thread(cfg, q, f, o, &sender, is_agent);
    if let Some(t) = thread
        && o.changed.contains(&t)
    {
        return None;
    }

    if let Some(auto) = &p.automated {
        return Some(stored(Decision {
            error: Some(auto.reason.clone()),
            attachments: true,
            ..record(Action::Automated, "automated", thread, o, f)
        }));
    }

    if is_agent && !cfg.trust.agents.met(&p.auth) {
        // An agent's address on mail nobody vouches for: anyone can type
        // it. Kept on the ticket it threads to, with the verdict, and it
        // does nothing there.
        return Some(stored(Decision {
            effect: Effect::Unauthenticated(format!(
                "unauthenticated agent mail from {sender}: no command run, no response counted ({})",
                p.auth.summary()
            )),
            ..record(
                Action::Unauthenticated,
                "unauthenticated-agent",
                thread,
                o,
                f,
            )
        }));
    }

    if is_agent {
        // An agent's answer (sent with the desk in Cc, or through it):
        // a response and commands on its ticket, never acknowledged. One
        // that matches no ticket is kept for an admin.
        let mut d = stored(Decision {
            attachments: true,
            ..record(Action::Agent, "agent", thread, o, f)
        });
        if let Some(t) = thread {
            let parsed = commands::parse(&p.mail.text);
            if !parsed.commands.is_empty() {
                o.changed.insert(t);
            }
            d.effect = Effect::Agent(parsed);
        }
        return Some(d);
    }

    let mut previous = None;
    if let Some(t) = thread {
        let state = state_of(t, o, f)?;
        // The mail's arrival, not when it is processed: after an outage
        // the pause and the reopen window are what the customer lived.
        match lifecycle::followup(state, cfg.desk.reopen_window, a.incoming.received_at) {
            Followup::NewTicket => previous = Some(t),
            effect => {
                if effect != Followup::Join {
                    o.changed.insert(t);
                }
                return Some(stored(Decision {
                    attachments: true,
                    effect: Effect::Followup(effect),
                    ..record(Action::Followup, "followup", thread, o, f)
                }));
            }
        }
    }

    if is_own_address(cfg, &sender) {
        // Our own mail coming back (a forward rule, a bounce of a bounce):
        // answering it would start a loop. Kept for an admin.
        return Some(stored(Decision {
            error: Some("from the desk's own address".into()),
            ..record(Action::Automated, "automated", thread, o, f)
        }));
    }

    if sender.is_empty() {
        // Nobody to acknowledge and nobody to answer: keep it for an admin.
        return Some(Decision {
            error: Some("no From address".into()),
            ..record(Action::Automated, "automated", None, o, f)
        });
    }

    let id = o.next_ticket;
    o.next_ticket += 1;
    let t = new_ticket(cfg, a, p, f, o, id, previous, q.ack_to.as_deref());
    o.new_tickets.insert(
        id,
        Thread {
            reference: t.reference.clone(),
            requester: sender.clone(),
            status: "open".into(),
            resolved_at: None,
            pending_since: None,
        },
    );
    if t.ack.is_ok()
        && let Some(to) = &q.ack_to
    {
        *o.acks.entry(to.clone()).or_default() += 1;
        if let Some(d) = auth::domain_of(to) {
            *o.acks_domain.entry(d).or_default() += 1;
        }
        o.acks_all += 1;
    }
    Some(Decision {
        action: Action::NewTicket,
        kind: Some("customer"),
        ticket: Some(id),
        reference: Some(t.reference.clone()),
        sender: Some(sender),
        error: None,
        attachments: true,
        effect: Effect::NewTicket(Box::new(t)),
    })
}

#[allow(clippy::too_many_arguments)]
fn new_ticket(
    cfg: &Config,
    a: &Analysed,
    p: &Parsed,
    f: &Facts,
    o: &Overlay,
    id: i64,
    previous: Option<i64>,
    ack_to: Option<&str>,
) -> NewTicket {
    let inc = &a.incoming;
    // A plan (by the sender's domain) and a priority asked for in the
    // subject are claims: they count only for a sender the policy trusts.
    let claims_ok = cfg.trust.claims.met(&p.auth);
    let mut customer = cfg.sla.customer_for(&p.sender, inc.received_at);
    // The customer's language only picks the language of a mail too short
    // to tell its own: a forger gains nothing by it, so it needs no claim.
    // Computed with the analysis, from the same inputs (see
    // `super::pretriage`); here only for a message analysed without it.
    let mut verdict = p
        .triage
        .clone()
        .unwrap_or_else(|| super::triage_of(cfg, p, inc.received_at));
    if !claims_ok && customer.customer.is_some() {
        let claimed = std::mem::replace(&mut customer, cfg.sla.customer_for("", inc.received_at));
        verdict.reasons.push(format!(
            "plan {} of customer {} not applied, the sender is not authenticated ({}): plan {}",
            claimed.plan,
            claimed.customer.unwrap_or_default(),
            p.auth.summary(),
            customer.plan
        ));
    }
    let (clocks, sla_note) = match lifecycle::compute_clocks(
        cfg,
        &DueQuery {
            plan: &customer.plan,
            priority: verdict.priority.as_deref(),
            category: verdict.category.as_deref(),
            timezone: customer.timezone,
            received: inc.received_at,
        },
    ) {
        Ok(c) => (c, None),
        Err(e) => (Clocks::default(), Some(format!("no SLA computed: {e}"))),
    };
    let reference = threading::reference(&cfg.desk.reference_prefix, id);
    let mut notes = Vec::new();
    if p.oversized {
        notes.push(format!(
            "message of {} bytes is over the {}-byte limit: kept raw, not parsed",
            inc.raw.len(),
            cfg.desk.max_message_bytes
        ));
    }
    notes.extend(sla_note);
    if let Some(prev) = previous {
        let r = state_of(prev, o, f).map(|s| s.reference.clone());
        notes.push(format!(
            "follows up {} (resolved before the reopen window)",
            r.unwrap_or_default()
        ));
    }
    let ack = ack_draft(
        cfg,
        p,
        f,
        o,
        ack_to,
        &reference,
        &verdict,
        &customer,
        &clocks,
        inc.received_at,
    );
    NewTicket {
        id,
        reference,
        verdict,
        customer,
        clocks,
        notes,
        previous,
        ack,
    }
}

/// The acknowledgement, or why there is none. Loop guards beyond the
/// RFC 3834 checks: no-reply senders, and a cap on acknowledgements per
/// address and hour, which holds even against an autoresponder that
/// sends none of the usual headers.
#[allow(clippy::too_many_arguments)]
fn ack_draft(
    cfg: &Config,
    p: &Parsed,
    f: &Facts,
    o: &Overlay,
    ack_to: Option<&str>,
    reference: &str,
    v: &Verdict,
    customer: &CustomerMatch,
    clocks: &Clocks,
    received_at: DateTime<Utc>,
) -> Result<AckDraft, String> {
    let ack_to = ack_to.unwrap_or_default();
    if is_no_reply(ack_to) {
        return Err("no-reply sender: not acknowledged".into());
    }
    let recent = f.recent_acks + o.acks.get(ack_to).copied().unwrap_or(0);
    if recent >= i64::from(cfg.desk.ack_limit_per_hour) {
        return Err(format!(
            "{recent} acknowledgements to {ack_to} in the last hour (limit {}): not acknowledged",
            cfg.desk.ack_limit_per_hour
        ));
    }
    if let Some(d) = auth::domain_of(ack_to) {
        let recent = f.recent_acks_domain + o.acks_domain.get(&d).copied().unwrap_or(0);
        if recent >= i64::from(cfg.trust.ack_limit_domain_per_hour) {
            return Err(format!(
                "{recent} acknowledgements to {d} in the last hour (limit {}, [trust] ack_limit_domain_per_hour): not acknowledged",
                cfg.trust.ack_limit_domain_per_hour
            ));
        }
    }
    if o.acks_all >= i64::from(cfg.trust.ack_limit_all_per_hour) {
        return Err(format!(
            "{} acknowledgements in the last hour (limit {}, [trust] ack_limit_all_per_hour): not acknowledged",
            o.acks_all, cfg.trust.ack_limit_all_per_hour
        ));
    }
    let Some(to) = ack_address(cfg, p).and_then(|a| a.email.parse::<lettre::Address>().ok()) else {
        return Err("sender address cannot receive mail: no acknowledgement".into());
    };
    let tz = cfg
        .sla
        .display_zone(&customer.plan, customer.timezone, cfg.desk.timezone);
    // In the customer's zone and language; never a time already past (a
    // mail that waited while the desk was down): the template then says
    // the request is handled with priority.
    let local = |t: Option<DateTime<Utc>>| {
        t.filter(|t| *t > o.now)
            .map(|t| crate::core::when::local(t, tz, &v.language))
    };
    let mail = &p.mail;
    Ok(AckDraft {
        to,
        context: AckContext {
            desk_name: cfg.desk.name.clone(),
            reference: reference.to_string(),
            subject: mail.subject.clone(),
            customer_name: mail.from.as_ref().and_then(|a| a.name.clone()),
            customer_email: p.sender.clone(),
            language: v.language.clone(),
            plan: customer.plan.clone(),
            category: v.category.clone(),
            priority: v.priority.clone(),
            first_response_due: local(clocks.first_response_due),
            first_response_overdue: clocks.first_response_due.is_some_and(|t| t <= o.now),
            resolution_due: local(clocks.resolution_due),
            received_at: ts(received_at),
            vars: cfg.desk.template_vars.clone(),
        },
    })
}

/// Subject tag first (accepted only from the requester, someone of the
/// same domain or an agent, so a stranger cannot attach mail to another
/// customer's ticket; a public mail provider's domain is nobody's
/// organisation), then In-Reply-To/References against every stored
/// Message-ID.
fn find_thread(
    cfg: &Config,
    q: &Query,
    f: &Facts,
    o: &Overlay,
    sender: &str,
    is_agent: bool,
) -> Option<i64> {
    if let Some(id) = q.tag
        && let Some(t) = state_of(id, o, f)
    {
        let req = &t.requester;
        let same_org = match (auth::domain_of(req), auth::domain_of(sender)) {
            (Some(a), Some(b)) => a == b && !cfg.trust.is_public_provider(&a),
            _ => false,
        };
        if is_agent || req == sender || same_org {
            return Some(id);
        }
    }
    for (i, mid) in q.refs.iter().enumerate() {
        let in_round = o.mids.get(mid).and_then(|v| v.iter().find_map(|(_, t)| *t));
        if let Some(t) = in_round.or(f.refs.get(i).copied().flatten()) {
            return Some(t);
        }
    }
    None
}

/// The desk's From address, or the login of one of its IMAP mailboxes.
pub fn is_own_address(cfg: &Config, sender: &str) -> bool {
    let sender = sender.to_lowercase();
    sender == cfg.desk.address.email.to_string().to_lowercase()
        || cfg.mailboxes.iter().any(|m| match &m.kind {
            crate::config::MailboxKind::Imap(s) => s.username.to_lowercase() == sender,
            crate::config::MailboxKind::Maildir { .. } => false,
        })
}

/// noreply@, no-reply@, donotreply@, do-not-reply@ and the like.
pub fn is_no_reply(address: &str) -> bool {
    let local = address.split('@').next().unwrap_or("");
    let squashed: String = local
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    squashed.starts_with("noreply") || squashed.starts_with("donotreply")
}

/// How long ago acknowledgements count against the hourly cap.
pub const ACK_WINDOW: TimeDelta = TimeDelta::hours(1);
