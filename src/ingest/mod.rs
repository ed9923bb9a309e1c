//! Ingest: raw messages from a source to committed tickets, behind one
//! narrow handle ([`Intake`]) that the mail sources submit batches to.
//!
//! The stages of a batch, and where each runs:
//! 1. analyse (blocking pool, split across the cores): parse, the
//!    automated and spam checks, our own DKIM check where configured, and
//!    the triage of every message that may open a ticket. A source runs
//!    it for its batch N+1 while batch N goes through stages 2 to 4
//!    ([`Intake::analyse`], then [`Intake::commit`]);
//! 2. read (store thread, reads only): the [`decide::Facts`] of each message;
//! 3. decide (blocking pool, pure): [`decide::decide`], then for new
//!    tickets SLA, the acknowledgement rendered and composed, and
//!    attachment files written where the analysis did not;
//! 4. apply (store thread, SQL only): [`apply::apply`], one transaction,
//!    after checking that the facts still hold.
//!
//! Stages 2 to 4 of a batch are driven from one blocking thread, which
//! hands the store thread its reads and its commit.
//!
//! Batches are decided one at a time (a turn lock), so two mailboxes never
//! decide on the same facts; a write by anyone else in between (the CLI
//! closing a ticket) is caught by the check in stage 4 and the batch is
//! decided again. Marking a message at its source happens after the
//! commit, so a crash in between only means the mark is re-applied later;
//! it never means a second ticket.

pub mod apply;
pub mod decide;

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Notify};

use crate::compose::{self, Outgoing, Reply};
use crate::config::Config;
use crate::core::auth::{self, Verdict};
use crate::core::inbound::{self, ParsedMail};
use crate::core::triage::{self, Automated};
use crate::render::{AckContext, Renderer};
use crate::store::Store;
use crate::store::messages::StoredFile;
use crate::store::spool::{RawFile, Spool};
use crate::verify::Verifier;

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
    pub raw: Raw,
}

/// A message's raw bytes: in memory, or on disk for a message above the
/// desk's `max_message_bytes` (see [`crate::store::spool`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Raw {
    Bytes(Vec<u8>),
    File(RawFile),
}

impl Raw {
    pub fn len(&self) -> u64 {
        match self {
            Raw::Bytes(b) => b.len() as u64,
            Raw::File(f) => f.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes a row holds: all of them, or none for a file.
    pub fn inline(&self) -> &[u8] {
        match self {
            Raw::Bytes(b) => b,
            Raw::File(_) => b"",
        }
    }

    /// The file a row names instead, relative to the state directory.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Raw::Bytes(_) => None,
            Raw::File(f) => Some(&f.path),
        }
    }

    /// The start of the message, for a headers-only parse.
    fn head(&self) -> &[u8] {
        match self {
            Raw::Bytes(b) => header_block(b),
            Raw::File(f) => header_block(&f.head),
        }
    }
}

impl From<Vec<u8>> for Raw {
    fn from(b: Vec<u8>) -> Raw {
        Raw::Bytes(b)
    }
}

pub enum Analysis {
    Unparsable(String),
    Parsed(Box<Parsed>),
}

pub struct Parsed {
    pub mail: ParsedMail,
    /// The From address, lowercased; "" when there is none.
    pub sender: String,
    pub automated: Option<Automated>,
    /// The own body the automated check cut (None when a header settled
    /// it), for the triage not to cut it again.
    pub own_body: Option<triage::OwnBody>,
    pub spam: bool,
    pub oversized: bool,
    /// Who vouches for the From domain (core/auth.rs).
    pub auth: Verdict,
    /// The triage of a message that may open a ticket, computed with the
    /// analysis (on all cores, while the previous batch commits) so the
    /// decision does not: see [`pretriage`]. None for automated mail and
    /// spam, which never open one.
    pub triage: Option<triage::Verdict>,
}

pub struct Analysed {
    pub incoming: Incoming,
    pub analysis: Analysis,
    /// Its attachments, already on disk when the analysis wrote them
    /// (see [`prewrite_attachments`]); None leaves them to the round.
    pub files: Option<Vec<StoredFile>>,
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
    /// From an agent's address, not authenticated: a note, nothing more.
    Unauthenticated,
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
            Action::Unauthenticated => "unauthenticated-agent",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub action: Action,
    pub ticket: Option<String>,
    pub queued_ack: bool,
}

/// Stage 1: parse and the checks every message needs. An oversized
/// message (and any spooled to disk) is read for its headers only: enough
/// to thread, acknowledge and note it, without parsing megabytes of MIME.
pub fn analyse(cfg: &Config, incoming: &Incoming) -> Analysis {
    let oversized = match &incoming.raw {
        Raw::File(_) => true,
        Raw::Bytes(b) => b.len() as u64 > cfg.desk.max_message_bytes,
    };
    let parsed = match &incoming.raw {
        Raw::Bytes(b) if !oversized => inbound::parse(b),
        raw => inbound::parse(raw.head()),
    };
    let mail = match parsed {
        Ok(m) => m,
        Err(e) => return Analysis::Unparsable(e.to_string()),
    };
    let (automated, own_body) = triage::detect_automated_keeping(&mail);
    let spam = mail
        .header("X-Spam-Flag")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("yes"));
    let sender = mail
        .from
        .as_ref()
        .map(|a| a.email.clone())
        .unwrap_or_default();
    let from_domain = auth::domain_of(&sender);
    let trusted = &cfg.trust.authserv_id;
    let auth =
        auth::from_headers(&mail.headers, trusted, from_domain.as_deref()).unwrap_or_else(|| {
            Verdict::none(
                from_domain.as_deref(),
                if trusted.is_empty() {
                    "no trusted server configured ([trust] authserv_id)"
                } else {
                    "no Authentication-Results header of a trusted server"
                },
            )
        });
    Analysis::Parsed(Box::new(Parsed {
        mail,
        sender,
        automated,
        own_body,
        spam,
        oversized,
        auth,
        triage: None,
    }))
}

/// The triage `decide` would compute for a new ticket of this message,
/// from the same inputs (the mail, whether its claims count, the
/// customer's language), once its sender's verdict is final.
pub fn pretriage(cfg: &Config, a: &mut Analysed) {
    let Analysis::Parsed(p) = &mut a.analysis else {
        return;
    };
    if p.automated.is_some() || p.spam {
        return;
    }
    let received = a.incoming.received_at;
    let verdict =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| triage_of(cfg, p, received)));
    // A panic is left to the decision, which turns it into poison.
    p.triage = verdict.ok();
}

/// The triage of a parsed message that is not automated: whether its
/// claims count comes from its sender's verdict, the language hint from
/// its customer. The one place both `pretriage` and the decision get it.
pub fn triage_of(cfg: &Config, p: &Parsed, received: DateTime<Utc>) -> triage::Verdict {
    let customer = cfg.sla.customer_for(&p.sender, received);
    triage::classify_hinted(
        &p.mail,
        &cfg.triage,
        cfg.trust.claims.met(&p.auth),
        triage::Hints {
            customer_language: customer.language.as_deref(),
            // `analyse` ran the check; it found nothing.
            not_automated: p.automated.is_none(),
            own_body: p.own_body.as_ref(),
        },
    )
}

/// `analyse`, with a panic anywhere in it turned into an unparsable
/// message rather than a dead mailbox task. The message is not copied:
/// `analyse` only borrows it.
pub fn analyse_guarded(cfg: &Config, incoming: Incoming) -> Analysed {
    let analysis =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| analyse(cfg, &incoming)))
            .unwrap_or_else(|_| {
                Analysis::Unparsable("internal error while analysing the message (panic)".into())
            });
    Analysed {
        incoming,
        analysis,
        files: None,
    }
}

/// Writes a message's attachments during its analysis, where both cores
/// share the work, instead of in the round every batch waits its turn
/// for. Only for mail that keeps its attachments whatever the store
/// knows: parsed, not spam, from a sender that is neither empty nor the
/// desk's own (the decisions that keep none). The files are
/// content-addressed, so one the store then finds already committed
/// leaves no file that was not written before. Any failure leaves them
/// to the round, which writes them again and tells a full disk from a
/// message that cannot be stored.
pub fn prewrite_attachments(cfg: &Config, a: &mut Analysed) {
    let Analysis::Parsed(p) = &a.analysis else {
        return;
    };
    if p.mail.attachments.is_empty()
        || p.spam
        || p.sender.is_empty()
        || decide::is_own_address(cfg, &p.sender)
    {
        return;
    }
    a.files = write_attachments(cfg, p).ok();
}

/// Keeps every attachment of a message (see
/// [`crate::store::messages::write_attachment`]); the first failure ends it.
fn write_attachments(cfg: &Config, p: &Parsed) -> Result<Vec<StoredFile>> {
    p.mail
        .attachments
        .iter()
        .map(|att| {
            crate::store::messages::write_attachment(
                &cfg.desk.state_dir,
                att.filename.as_deref(),
                &att.content_type,
                &att.content,
            )
        })
        .collect()
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

/// A decision made ready for the store: the acknowledgement composed,
/// the attachments on disk.
pub struct Ready {
    pub decision: decide::Decision,
    pub ack: Option<Outgoing>,
    /// Why a new ticket gets no acknowledgement.
    pub held: Option<String>,
    /// An [`AckJob`] (JSON) to keep on the ticket until its template renders.
    pub hold: Option<String>,
    pub files: Vec<StoredFile>,
    /// Set when preparing failed for reasons of the message: it is kept
    /// raw as poison, and the round ends with it.
    pub poison: Option<String>,
}

/// A round: the facts it was decided on, and what it does.
pub struct Round {
    pub version: (i64, u64),
    pub facts: decide::BatchFacts,
    pub ready: Vec<Ready>,
}

/// What ingesting needs and nothing more: the store, the config and
/// templates of this generation, and who to wake after a commit.
#[derive(Clone)]
pub struct Intake {
    store: Store,
    config: Arc<Config>,
    renderer: Arc<Renderer>,
    turn: Arc<Mutex<()>>,
    outbox_wake: Arc<Notify>,
    sweep_wake: Arc<Notify>,
    /// Our own DKIM check, when the config asks for it.
    verifier: Option<Arc<Verifier>>,
}

impl Intake {
    pub fn new(
        store: Store,
        config: Arc<Config>,
        renderer: Arc<Renderer>,
        outbox_wake: Arc<Notify>,
        sweep_wake: Arc<Notify>,
    ) -> Intake {
        let verifier = match Verifier::new(&config.trust) {
            Ok(v) => v.map(Arc::new),
            Err(e) => {
                tracing::error!("own DKIM checks are off: {e:#}");
                None
            }
        };
        Intake {
            store,
            config,
            renderer,
            turn: Arc::default(),
            outbox_wake,
            sweep_wake,
            verifier,
        }
    }

    /// The store, for a source's own bookkeeping (watermarks, marks, health).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Where a source writes a message too big to hold in memory.
    /// How long a mailbox may go without a good pass before the admin's
    /// fetch alert (`[desk] fetch_alert_after`).
    pub fn fetch_alert_after(&self) -> chrono::TimeDelta {
        self.config.desk.fetch_alert_after
    }

    pub fn spool(&self) -> Spool {
        Spool {
            state_dir: self.config.desk.state_dir.clone(),
            above: self.config.desk.max_message_bytes,
        }
    }

    /// Ingests a batch: one outcome per message, in order. A message whose
    /// storing fails is set aside as poison (raw bytes and error kept) and
    /// the rest go on. If even that fails (disk full, database locked),
    /// what was not committed is returned as an error and the source
    /// fetches it again later.
    pub async fn submit(&self, batch: Vec<Incoming>) -> Result<Vec<Outcome>> {
        let analysed = self.analyse(batch).await?;
        self.commit(analysed).await
    }

    /// Stage 1 of a batch, on the blocking pool, split across the cores
    /// (a source runs it for batch N+1 while batch N commits), then our
    /// own DKIM checks. Nothing is read from or written to the store.
    pub async fn analyse(&self, batch: Vec<Incoming>) -> Result<Vec<Analysed>> {
        let parts = if batch.len() >= 8 { analysers() } else { 1 };
        let per = batch.len().div_ceil(parts).max(1);
        let mut rest = batch;
        let mut chunks = Vec::new();
        while rest.len() > per {
            let tail = rest.split_off(per);
            chunks.push(std::mem::replace(&mut rest, tail));
        }
        chunks.push(rest);
        // Without our own DKIM check, a sender's verdict is final once
        // parsed, and triage runs in the same pass.
        let triage_now = self.verifier.is_none();
        let jobs = chunks.into_iter().map(|chunk| {
            let cfg = self.config.clone();
            tokio::task::spawn_blocking(move || {
                let mut out: Vec<Analysed> = chunk
                    .into_iter()
                    .map(|i| analyse_guarded(&cfg, i))
                    .collect();
                out.iter_mut().for_each(|a| prewrite_attachments(&cfg, a));
                if triage_now {
                    out.iter_mut().for_each(|a| pretriage(&cfg, a));
                }
                out
            })
        });
        let mut analysed = Vec::new();
        for part in futures::future::join_all(jobs).await {
            analysed.extend(part.context("Analysing a batch of messages")?);
        }
        if let Some(v) = &self.verifier {
            verify_batch(v, &mut analysed).await;
            let cfg = self.config.clone();
            analysed = tokio::task::spawn_blocking(move || {
                analysed.iter_mut().for_each(|a| pretriage(&cfg, a));
                analysed
            })
            .await
            .context("Triaging a batch of messages")?;
        }
        Ok(analysed)
    }

    /// Stages 2 to 4 of an analysed batch: one outcome per message, in
    /// order (see [`Intake::submit`]). The rounds run on one thread of the
    /// blocking pool, which hands the store thread its reads and its
    /// commit and decides in between: a round waits only on the store
    /// thread, never on a runtime worker that a fetch keeps busy (in
    /// bench 1 the returns to the runtime cost twice the store's reads).
    /// The turn is held until that thread is done, even when the caller
    /// stops waiting.
    pub async fn commit(&self, analysed: Vec<Analysed>) -> Result<Vec<Outcome>> {
        if analysed.is_empty() {
            return Ok(Vec::new());
        }
        let turn = self.turn.clone().lock_owned().await;
        let (store, cfg, renderer) = (
            self.store.clone(),
            self.config.clone(),
            self.renderer.clone(),
        );
        let outcomes = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            commit_rounds(&store, &cfg, &renderer, analysed)
        })
        .await
        .context("The ingest decision panicked")??;
        if outcomes.iter().any(|o| o.queued_ack) {
            self.outbox_wake.notify_one();
        }
        if outcomes.iter().any(|o| o.action != Action::AlreadyDone) {
            self.sweep_wake.notify_one();
        }
        crate::faults::fault_point("after_commit");
        Ok(outcomes)
    }
}

/// The rounds of [`Intake::commit`], on a blocking thread: read the facts,
/// decide and prepare, apply; again from the first message not yet
/// decided (one that waits for the next round) or when the facts changed.
fn commit_rounds(
    store: &Store,
    cfg: &Arc<Config>,
    renderer: &Renderer,
    analysed: Vec<Analysed>,
) -> Result<Vec<Outcome>> {
    let analysed = Arc::new(analysed);
    let queries: Arc<Vec<decide::Query>> =
        Arc::new(analysed.iter().map(|a| decide::query(cfg, a)).collect());
    let now = crate::clock::now();
    let mut outcomes = Vec::with_capacity(analysed.len());
    let mut stale = 0;
    while outcomes.len() < analysed.len() {
        let start = outcomes.len();
        let q = queries.clone();
        let (version, facts) = store
            .call_blocking(move |conn| apply::read_facts(conn, &q[start..], now))
            .context("Reading what the store knows of a batch")?;
        let round = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            prepare_round(
                cfg,
                renderer,
                &analysed[start..],
                &queries[start..],
                version,
                facts,
            )
        }))
        .map_err(|_| anyhow::anyhow!("The ingest decision panicked"))??;
        let (a, q, c) = (analysed.clone(), queries.clone(), cfg.clone());
        let applied = store
            .call_blocking(move |conn| apply::apply(conn, &c, &a[start..], &q[start..], round, now))
            .context("Committing a batch of messages")?;
        let Some(done) = applied else {
            stale += 1;
            if stale > 20 {
                bail!("The store kept changing under a batch; it is fetched again later");
            }
            continue;
        };
        for (i, o) in done.iter().enumerate() {
            let inc = &analysed[start + i].incoming;
            if o.action != Action::AlreadyDone {
                tracing::info!(
                    mailbox = %inc.mailbox,
                    key = %inc.source_key,
                    ticket = o.ticket.as_deref().unwrap_or("-"),
                    action = o.action.as_str(),
                    ack = o.queued_ack,
                    "ingested"
                );
            }
        }
        outcomes.extend(done);
    }
    Ok(outcomes)
}

/// How many pieces a batch is analysed in: one per core, at most four.
fn analysers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4)
}

/// Our own DKIM check of every parsed message that no trusted server gave
/// a verdict on, all of the batch at once. A message kept in a spool file
/// is not checked (its bytes are not in memory).
async fn verify_batch(v: &Verifier, batch: &mut [Analysed]) {
    let checks = batch.iter_mut().filter_map(|a| {
        let Analysis::Parsed(p) = &mut a.analysis else {
            return None;
        };
        if p.auth.source != "none" {
            return None;
        }
        let from = p.auth.from_domain.clone();
        match &a.incoming.raw {
            Raw::Bytes(raw) => Some(async move {
                p.auth = v.verify(raw, from.as_deref()).await;
            }),
            Raw::File(_) => None,
        }
    });
    futures::future::join_all(checks).await;
}

/// Stage 3: decide, then render and compose each acknowledgement and
/// write each attachment file. A transient failure (disk full) fails the
/// round; any other failure of a message makes it poison and ends the
/// round there, since later messages may have been decided on its effects.
fn prepare_round(
    cfg: &Config,
    renderer: &Renderer,
    batch: &[Analysed],
    queries: &[decide::Query],
    version: (i64, u64),
    facts: decide::BatchFacts,
) -> Result<Round> {
    let decisions = decide::decide(cfg, batch, queries, &facts);
    let mut ready = Vec::with_capacity(decisions.len());
    for (decision, a) in decisions.into_iter().zip(batch) {
        let mut r = Ready {
            ack: None,
            held: None,
            hold: None,
            files: Vec::new(),
            poison: None,
            decision,
        };
        if let decide::Effect::NewTicket(t) = &r.decision.effect {
            (r.ack, r.held, r.hold) = new_ticket_ack(cfg, renderer, a, t);
        }
        if r.decision.attachments
            && let Analysis::Parsed(p) = &a.analysis
        {
            let written = match &a.files {
                Some(files) => Ok(files.clone()),
                None => write_attachments(cfg, p),
            };
            match written {
                Ok(files) => r.files = files,
                Err(e) if crate::store::is_transient(&e) => return Err(e),
                Err(e) => r.poison = Some(format!("{e:#}")),
            }
        }
        let poisoned = r.poison.is_some();
        ready.push(r);
        if poisoned {
            break;
        }
    }
    Ok(Round {
        version,
        facts,
        ready,
    })
}

/// Everything rendering an acknowledgement needs, kept on the ticket
/// (as JSON) while its template fails, so it can be sent once fixed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AckJob {
    pub to: String,
    pub context: AckContext,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    /// Why it is held (the last rendering error).
    #[serde(default)]
    pub error: Option<String>,
}

/// Why an acknowledgement was not composed.
#[derive(Debug)]
pub enum AckFailure {
    /// The template failed on this ticket's data: held, tried again.
    Template(String),
    /// The address cannot receive mail: never sent.
    Address(String),
}

/// Renders and composes an acknowledgement. A template that fails on a
/// message's data costs the acknowledgement its send time, never the
/// ticket: the caller holds it.
pub fn compose_ack(
    cfg: &Config,
    renderer: &Renderer,
    job: &AckJob,
) -> Result<Outgoing, AckFailure> {
    let to: lettre::Address = job.to.parse().map_err(|e| {
        AckFailure::Address(format!("acknowledgement cannot be sent to {}: {e}", job.to))
    })?;
    let c = &job.context;
    let (_, rendered) = renderer
        .render("ack", &c.language, c)
        .map_err(|e| AckFailure::Template(format!("{e:#}")))?;
    compose::compose(&Reply {
        from: &cfg.desk.address,
        to: lettre::message::Mailbox::new(None, to),
        subject: &rendered.subject,
        body: &rendered.body,
        html: rendered.html.as_deref(),
        in_reply_to: job.in_reply_to.as_deref(),
        references: &job.references,
        reference: &c.reference,
        kind: "ack",
        auto_submitted: Some("auto-replied"),
    })
    // An address lettre accepts but cannot build an envelope for (seen
    // in the wild): the ticket stands, the ack cannot.
    .map_err(|e| {
        AckFailure::Address(format!(
            "acknowledgement cannot be sent to this address: {e:#}"
        ))
    })
}

/// The acknowledgement of a new ticket (composed), or why there is none,
/// and when its template failed, the job to hold.
fn new_ticket_ack(
    cfg: &Config,
    renderer: &Renderer,
    a: &Analysed,
    t: &decide::NewTicket,
) -> (Option<Outgoing>, Option<String>, Option<String>) {
    let draft = match &t.ack {
        Ok(d) => d,
        Err(why) => return (None, Some(why.clone()), None),
    };
    let Analysis::Parsed(p) = &a.analysis else {
        return (
            None,
            Some("no acknowledgement for an unparsed message".into()),
            None,
        );
    };
    let mut job = AckJob {
        to: draft.to.to_string(),
        context: draft.context.clone(),
        in_reply_to: p.mail.message_id.clone(),
        references: p.mail.references.clone(),
        error: None,
    };
    match compose_ack(cfg, renderer, &job) {
        Ok(out) => (Some(out), None, None),
        Err(AckFailure::Address(why)) => (None, Some(why), None),
        Err(AckFailure::Template(e)) => {
            tracing::error!(ticket = %t.reference, "acknowledgement held, its template fails: {e}");
            let why = format!(
                "acknowledgement held: its template fails ({e}); sent once the template is fixed"
            );
            job.error = Some(e);
            (None, Some(why), serde_json::to_string(&job).ok())
        }
    }
}

#[cfg(test)]
mod tests;
