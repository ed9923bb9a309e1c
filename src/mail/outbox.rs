//! Outbox delivery: a state machine over the `outbox` table, shaped like
//! Postfix's queue manager: a failure of the session (server unreachable,
//! login refused, a stalled or dropped connection) never fails a message
//! and never counts against it; only the server's answer about the message
//! does, and the message's age.
//!
//! pending --claimed (next attempt pushed back)--> sending
//! sending --250--> sent
//! sending --4xx--> pending (attempts+1, backoff); failed at max_attempts
//! sending --5xx--> failed (attempts+1)
//! sending --no answer (timeout, connection lost, 421)--> pending, not
//!     charged: tried once more over a new connection, then a backoff by age
//! sending --no session (connect or login failed)--> pending, due again,
//!     not charged; the session retries on its own backoff
//! pending --older than max_queue_lifetime--> failed (expired)
//!
//! Every SMTP command waits at most `timeout` for the server (lettre's
//! async client has no read or write timeout of its own), so a stalled
//! relay costs one session, never the queue. The row is claimed and
//! committed before the message is handed to the server, so a crash
//! mid-send leads to a retry with the same Message-ID (at least once),
//! never to a message forgotten.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, Utc};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::commands::{Data, Mail, Quit, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use rand::Rng;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::config::{self, OutboxKind, SmtpSettings, Tls};
use crate::mail::tls;
use crate::store::Store;
use crate::store::outbox::{self as queue, Claimed as Row, Failure};

const BATCH: i64 = 100;
/// Outcomes a lane records in one transaction, at most...
const FINISH_BATCH: usize = 20;
/// ...and at the latest this long after the first of them was sent, so a
/// stop (whose final flush is bounded) sends few of them twice.
const FINISH_WITHIN: Duration = Duration::from_millis(100);

/// What the outbox task works with: the queue in the store, its own
/// settings, its wake-up and the shutdown token.
#[derive(Clone)]
pub struct Outbox {
    store: Store,
    settings: Arc<config::Outbox>,
    pub wake: Arc<Notify>,
    pub shutdown: CancellationToken,
    /// The last SMTP connection error, so it is logged once per change.
    smtp_error: Arc<std::sync::Mutex<Option<String>>>,
    /// No new session before this after one could not be had. Per
    /// generation: a reload (a fixed password, say) tries again at once.
    session: Arc<std::sync::Mutex<SessionBackoff>>,
}

#[derive(Debug, Default)]
struct SessionBackoff {
    failures: u32,
    retry_at: Option<tokio::time::Instant>,
}

impl Outbox {
    /// `smtp_error` outlives a generation, so a reload does not log a
    /// known outage again.
    pub fn new(
        store: Store,
        settings: config::Outbox,
        wake: Arc<Notify>,
        smtp_error: Arc<std::sync::Mutex<Option<String>>>,
        shutdown: CancellationToken,
    ) -> Outbox {
        Outbox {
            store,
            settings: Arc::new(settings),
            wake,
            shutdown,
            smtp_error,
            session: Arc::default(),
        }
    }

    /// How long until a session may be tried again (zero: now).
    fn session_wait(&self) -> Duration {
        let s = self.session.lock().unwrap_or_else(|e| e.into_inner());
        s.retry_at
            .map(|at| at.saturating_duration_since(tokio::time::Instant::now()))
            .unwrap_or(Duration::ZERO)
    }
}

/// Why no SMTP session could be had. The login is a step of its own, so
/// a refused login is known as such, whatever the server's text says.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Connection, TLS, greeting or EHLO failed or timed out.
    #[error("{0:#}")]
    Unreachable(anyhow::Error),
    /// The server refused the login: the config's problem, not the mail's.
    #[error("{0:#}")]
    Login(anyhow::Error),
}

impl ConnectError {
    fn failure(&self) -> Failure {
        match self {
            ConnectError::Unreachable(_) => Failure::Connect,
            ConnectError::Login(_) => Failure::Login,
        }
    }
}

/// What became of one message.
#[derive(Debug)]
enum Outcome {
    Sent,
    /// The server answered for this message: 4xx, or 5xx (`permanent`).
    Refused {
        permanent: bool,
        error: String,
    },
    /// Nothing the server said about this message (timeout, connection
    /// lost, 421): the session is gone and the message is not charged.
    NoAnswer(String),
    /// The server wants a login the config does not give (530): a
    /// session failure, as a refused login.
    LoginRequired(String),
    /// The row itself cannot be sent (a bad address): failed for good.
    Invalid(String),
}

/// The backoff after an answered 4xx: about 30 seconds, doubling per
/// attempt up to an hour.
fn backoff(attempts: u32) -> Duration {
    let secs = (30u64 << attempts.saturating_sub(1).min(7)).min(3600) as f64;
    jitter(secs)
}

/// The backoff of a message the server never answered for: its age in
/// the queue (as Postfix does), from 30 seconds to an hour, so one that
/// stalls the server every time is tried less and less often.
fn backoff_by_age(queued_at: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    let age = (now - queued_at).num_seconds().clamp(30, 3600) as f64;
    jitter(age)
}

/// The wait before the next session after `failures` in a row: 5
/// seconds (a relay restarting, a 454 while its auth backend restarts),
/// doubling up to 10 minutes (an outage).
fn session_backoff(failures: u32) -> Duration {
    let secs = (5u64 << failures.saturating_sub(1).min(7)).min(600) as f64;
    jitter(secs)
}

fn jitter(secs: f64) -> Duration {
    Duration::from_secs_f64(secs * rand::rng().random_range(0.8..1.2))
}

/// Claims up to BATCH due rows per SMTP session; each is due again after the backoff its
/// next failure would get, should this process stop mid-send.
async fn claim(ob: &Outbox) -> Result<Vec<Row>> {
    // A full share for every session, so none waits idle for the others.
    let limit = BATCH * ob.settings.connections as i64;
    ob.store
        .call(move |conn| queue::claim(conn, crate::clock::now(), limit, |a| backoff(a + 1)))
        .await
}

/// Records the outcome of one message; true when it was sent.
async fn finish(ob: &Outbox, r: &Row, outcome: &Outcome) -> Result<bool> {
    let done = [(Done::of(r), outcome_record(outcome))];
    Ok(finish_all(ob, done.into()).await? == 1)
}

/// What is kept of a row until its outcome is recorded.
struct Done {
    id: i64,
    attempts: u32,
    queued_at: DateTime<Utc>,
}

impl Done {
    fn of(r: &Row) -> Done {
        Done {
            id: r.id,
            attempts: r.attempts,
            queued_at: r.queued_at,
        }
    }
}

/// An outcome as stored: None when sent, else (the server answered,
/// permanent, error).
type Record = Option<(bool, bool, String)>;

fn outcome_record(outcome: &Outcome) -> Record {
    match outcome {
        Outcome::Sent => None,
        Outcome::Refused { permanent, error } => Some((true, *permanent, error.clone())),
        Outcome::NoAnswer(e) | Outcome::LoginRequired(e) => Some((false, false, e.clone())),
        Outcome::Invalid(e) => Some((false, true, e.clone())),
    }
}

/// Records the outcomes of several messages in one transaction; returns
/// how many were sent. A crash before it only means those messages are
/// sent again (at least once): their rows are still claimed.
async fn finish_all(ob: &Outbox, done: Vec<(Done, Record)>) -> Result<usize> {
    if done.is_empty() {
        return Ok(0);
    }
    let max = ob.settings.max_attempts;
    ob.store
        .call(move |conn| {
            let now = crate::clock::now();
            let tx = crate::store::begin(conn)?;
            let mut sent = 0;
            for (d, outcome) in done {
                let Some((answered, permanent, e)) = outcome else {
                    queue::mark_sent(&tx, d.id, d.attempts + 1, now)?;
                    sent += 1;
                    continue;
                };
                let attempts = d.attempts + u32::from(answered);
                if permanent || attempts >= max {
                    tracing::error!(outbox_id = d.id, attempts, "delivery failed for good: {e}");
                    queue::mark_failed(&tx, d.id, attempts, &e)?;
                } else {
                    let wait = if answered {
                        backoff(attempts)
                    } else {
                        backoff_by_age(d.queued_at, now)
                    };
                    let next = now + chrono::Duration::from_std(wait)?;
                    queue::retry_later(&tx, d.id, attempts, &e, next)?;
                }
            }
            tx.commit()?;
            Ok(sent)
        })
        .await
}

/// At process start: rows a previous process claimed and never finished
/// (it was killed mid-send) are due again now instead of after their
/// backoff. Nothing is charged for the interrupted try; a message that
/// crashed the sender every time would end at max_queue_lifetime.
pub fn recover_interrupted(conn: &rusqlite::Connection) -> Result<usize> {
    let n = queue::recover_interrupted(conn, crate::clock::now())?;
    if n > 0 {
        tracing::info!(
            rows = n,
            "outbox: resuming deliveries interrupted by a crash"
        );
    }
    Ok(n)
}

/// Fails the pending mail older than max_queue_lifetime.
async fn expire(ob: &Outbox) -> Result<()> {
    let lifetime = ob.settings.max_queue_lifetime;
    let expired = ob
        .store
        .call(move |conn| {
            let cutoff = crate::clock::now() - chrono::Duration::from_std(lifetime)?;
            let reason = format!(
                "expired: not delivered within max_queue_lifetime ({})",
                short_duration(lifetime)
            );
            queue::expire(conn, cutoff, &reason)
        })
        .await?;
    for e in expired {
        tracing::error!(outbox_id = e.id, message_id = %e.message_id, to = %e.recipients, "delivery failed for good: expired in the queue");
    }
    Ok(())
}

/// "5d", "36h", "90m", "45s": the largest whole unit.
fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// SMTP sessions kept from one claim round to the next, a slot per lane
/// (with whether the session pipelines), closed once the queue is empty.
type Sessions = Vec<Option<(AsyncSmtpConnection, bool)>>;

/// Delivers everything due now; returns (sent, not sent).
pub async fn drain(ob: &Outbox) -> Result<(usize, usize)> {
    let mut sessions = Sessions::new();
    let result = drain_rounds(ob, &mut sessions).await;
    if let OutboxKind::Smtp(s) = &ob.settings.kind {
        futures::future::join_all(
            sessions
                .iter_mut()
                .flatten()
                .map(|(c, _)| quit(c, s.timeout)),
        )
        .await;
    }
    result
}

async fn drain_rounds(ob: &Outbox, sessions: &mut Sessions) -> Result<(usize, usize)> {
    expire(ob).await?;
    let (mut sent, mut failed) = (0, 0);
    loop {
        // No session lately: the due mail waits for the session's backoff
        // instead of one failed connection per wake-up.
        if !ob.session_wait().is_zero() {
            return Ok((sent, failed));
        }
        let rows = claim(ob).await?;
        if rows.is_empty() {
            return Ok((sent, failed));
        }
        let (s, f, no_session) = deliver(ob, rows, sessions).await?;
        sent += s;
        failed += f;
        if no_session || ob.shutdown.is_cancelled() {
            return Ok((sent, failed));
        }
    }
}

/// The daemon loop: drain, then sleep until woken or the next retry is due.
pub async fn run(ob: &Outbox) -> Result<()> {
    loop {
        if ob.shutdown.is_cancelled() {
            // Bounded final flush of what is due, whenever the stop came
            // (mail queued by the last ingest included): one more session
            // is tried even while the backoff after a failed one runs,
            // since this process will not be there when it ends.
            ob.session
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retry_at = None;
            let _ = tokio::time::timeout(Duration::from_secs(10), drain(ob)).await;
            return Ok(());
        }
        if let Err(e) = drain(ob).await {
            tracing::error!("outbox: {e:#}");
        }
        let next = next_due_in(ob)
            .await
            .unwrap_or(Duration::from_secs(60))
            .max(ob.session_wait());
        let account = match &ob.settings.kind {
            OutboxKind::Smtp(s) => match &s.login {
                Some(config::Login::OAuth2(a)) => Some(&**a),
                _ => None,
            },
            OutboxKind::Directory(_) => None,
        };
        tokio::select! {
            _ = ob.wake.notified() => {}
            _ = tokio::time::sleep(next) => {}
            _ = crate::oauth::signed_in_again(account) => {
                // A new sign-in ends the backoff of a refused login.
                ob.session.lock().unwrap_or_else(|e| e.into_inner()).retry_at = None;
            }
            _ = ob.shutdown.cancelled() => {}
        }
    }
}

async fn next_due_in(ob: &Outbox) -> Result<Duration> {
    let Some(at) = ob.store.call(|conn| queue::next_due(conn)).await? else {
        return Ok(Duration::from_secs(300));
    };
    Ok((at - crate::clock::now())
        .to_std()
        .unwrap_or(Duration::ZERO)
        .max(Duration::from_millis(200)))
}

/// Sends claimed rows; returns (sent, not sent, no session to be had).
async fn deliver(
    ob: &Outbox,
    rows: Vec<Row>,
    sessions: &mut Sessions,
) -> Result<(usize, usize, bool)> {
    let total = rows.len();
    let mut sent = 0;
    match &ob.settings.kind {
        OutboxKind::Directory(dir) => {
            for r in rows {
                // A full disk is the machine's problem, not the message's.
                let outcome = match write_eml(dir, &r) {
                    Ok(()) => Outcome::Sent,
                    Err(e) => Outcome::NoAnswer(format!("{e:#}")),
                };
                if finish(ob, &r, &outcome).await? {
                    sent += 1;
                }
            }
        }
        OutboxKind::Smtp(s) => {
            // Several sessions at once, each with its own share of the
            // rows: mail to the same recipients stays in one lane, in order.
            let n = ob.settings.connections.clamp(1, rows.len().max(1));
            let mut lanes: Vec<VecDeque<Row>> = (0..n).map(|_| VecDeque::new()).collect();
            for r in rows {
                let lane = lane_of(&r.recipients, n);
                lanes[lane].push_back(r);
            }
            if sessions.len() < n {
                sessions.resize_with(n, || None);
            }
            let results = futures::future::join_all(
                lanes
                    .into_iter()
                    .zip(sessions.iter_mut())
                    .map(|(q, slot)| lane(ob, s, q, slot)),
            )
            .await;
            let mut no_session = false;
            for r in results {
                let (s, gone) = r?;
                sent += s;
                no_session |= gone;
            }
            return Ok((sent, total - sent, no_session));
        }
    }
    Ok((sent, total - sent, false))
}

/// Which of `n` lanes a message goes in: by its recipient list, so mail
/// to the same recipients (every acknowledgement and notice has one) is
/// sent in the order it was queued.
fn lane_of(recipients: &[String], n: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    recipients.hash(&mut h);
    (h.finish() % n as u64) as usize
}

/// One SMTP session's share of the claimed rows, sent one after another
/// (MAIL, RCPT and DATA in one round trip where the server offers
/// PIPELINING) over the lane's session, opened when it has none (and
/// left open for the next round); returns (sent, no session to be had).
async fn lane(
    ob: &Outbox,
    s: &SmtpSettings,
    mut queue: VecDeque<Row>,
    conn: &mut Option<(AsyncSmtpConnection, bool)>,
) -> Result<(usize, bool)> {
    let mut sent = 0;
    // Messages in flight when a session was lost: tried once more
    // over a new connection, then left to their backoff.
    let mut retried = HashSet::new();
    // Outcomes not yet recorded (see [`finish_all`]), and since when.
    let mut done = Vec::new();
    let mut oldest = tokio::time::Instant::now();
    while let Some(r) = queue.pop_front() {
        crate::faults::fault_point("after_claim");
        let (c, pipelining) = match conn.as_mut() {
            Some((c, p)) => (c, *p),
            None => match connect_lane(ob, s).await {
                Ok((c, p)) => {
                    let (c, p) = conn.insert((c, p));
                    (c, *p)
                }
                Err(LaneError::Store(e)) => {
                    // Already sent: recorded if the store lets us.
                    let _ = finish_all(ob, std::mem::take(&mut done)).await;
                    return Err(e);
                }
                Err(LaneError::Connect(e)) => {
                    sent += finish_all(ob, std::mem::take(&mut done)).await?;
                    queue.push_front(r);
                    session_failed(ob, e.failure(), format!("{e:#}"), &queue).await?;
                    return Ok((sent, true));
                }
            },
        };
        let (outcome, usable) = send_one(c, &r, s.timeout, pipelining).await;
        match &outcome {
            Outcome::Sent => crate::faults::fault_point("after_send"),
            Outcome::LoginRequired(e) => {
                *conn = None;
                sent += finish_all(ob, std::mem::take(&mut done)).await?;
                queue.push_front(r);
                session_failed(ob, Failure::Login, e.clone(), &queue).await?;
                return Ok((sent, true));
            }
            Outcome::NoAnswer(e) => {
                tracing::warn!(outbox_id = r.id, message_id = %r.message_id, "SMTP session lost, the message will be retried: {e}");
            }
            Outcome::Refused { error: e, .. } | Outcome::Invalid(e) => {
                tracing::warn!(outbox_id = r.id, message_id = %r.message_id, "send failed: {e}");
            }
        }
        if matches!(outcome, Outcome::Sent) {
            tracing::info!(outbox_id = r.id, message_id = %r.message_id, to = %r.recipients.join(","), "sent");
        }
        if done.is_empty() {
            oldest = tokio::time::Instant::now();
        }
        done.push((Done::of(&r), outcome_record(&outcome)));
        if done.len() >= FINISH_BATCH || queue.is_empty() || oldest.elapsed() >= FINISH_WITHIN {
            sent += finish_all(ob, std::mem::take(&mut done)).await?;
        }
        if !usable {
            // Dropped, not QUIT: a stalled server would hold that too.
            *conn = None;
        }
        if matches!(outcome, Outcome::NoAnswer(_)) && retried.insert(r.id) {
            queue.push_back(r);
        }
    }
    sent += finish_all(ob, done).await?;
    Ok((sent, false))
}

/// Why a lane has no session.
enum LaneError {
    /// No session to be had: the rows go back to the queue.
    Connect(ConnectError),
    /// The store failed while recording the session's health.
    Store(anyhow::Error),
}

/// A new session for a lane, and whether it pipelines.
async fn connect_lane(
    ob: &Outbox,
    s: &SmtpSettings,
) -> Result<(AsyncSmtpConnection, bool), LaneError> {
    let mut c = smtp_connect(s).await.map_err(LaneError::Connect)?;
    let pipelining = offers_pipelining(&mut c, s.timeout)
        .await
        .map_err(|e| LaneError::Connect(ConnectError::Unreachable(e)))?;
    session_ok(ob).await.map_err(LaneError::Store)?;
    Ok((c, pipelining))
}

/// Whether the server offers PIPELINING (RFC 2920). lettre keeps only
/// the extensions it uses from the EHLO answer, so EHLO is asked again
/// (allowed at any time; it only resets a transaction, and there is none).
/// A refusal means no pipelining; no answer at all (a timeout, a lost
/// connection) is an error: a late answer would be read as the next
/// command's, so the session must be dropped.
async fn offers_pipelining(conn: &mut AsyncSmtpConnection, timeout: Duration) -> Result<bool> {
    let ehlo = lettre::transport::smtp::commands::Ehlo::new(ClientId::default());
    match tokio::time::timeout(timeout, conn.command(ehlo)).await {
        Ok(Ok(r)) => Ok(r.message().any(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|k| k.eq_ignore_ascii_case("PIPELINING"))
        })),
        Ok(Err(e)) if e.status().is_some() => Ok(false),
        Ok(Err(e)) => Err(anyhow!("EHLO after login: {e}")),
        Err(_) => Err(anyhow!(
            "no answer to EHLO after login within {}",
            short_duration(timeout)
        )),
    }
}

/// Commands written together in one packet (PIPELINING): each keeps its
/// own CRLF.
struct Group(String);

impl std::fmt::Display for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// QUIT, bounded by `timeout` like every command; its answer does not matter.
pub async fn quit(conn: &mut AsyncSmtpConnection, timeout: Duration) {
    let _ = tokio::time::timeout(timeout, conn.command(Quit)).await;
}

/// A session worked: clears the recorded failure and the backoff.
async fn session_ok(ob: &Outbox) -> Result<()> {
    *ob.session.lock().unwrap_or_else(|e| e.into_inner()) = SessionBackoff::default();
    if ob
        .smtp_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .is_some()
    {
        tracing::info!("SMTP reachable again");
    }
    ob.store
        .call(|conn| queue::record_session(conn, None, crate::clock::now()))
        .await
}

/// No session: `rows` go back to the queue uncharged, the failure is
/// recorded for `status` and the admin alert, and the next session waits
/// for the backoff.
async fn session_failed(
    ob: &Outbox,
    failure: Failure,
    error: String,
    rows: &VecDeque<Row>,
) -> Result<()> {
    let wait = {
        let mut s = ob.session.lock().unwrap_or_else(|e| e.into_inner());
        let now = tokio::time::Instant::now();
        match s.retry_at.filter(|at| *at > now) {
            // Another lane of the same delivery failed first: one outage,
            // one step of the backoff.
            Some(at) => at - now,
            None => {
                s.failures += 1;
                let wait = session_backoff(s.failures);
                s.retry_at = Some(now + wait);
                wait
            }
        }
    };
    // Once per state change, not once per retry.
    let changed = {
        let mut last = ob.smtp_error.lock().unwrap_or_else(|e| e.into_inner());
        let changed = last.as_deref() != Some(error.as_str());
        *last = Some(error.clone());
        changed
    };
    let what = match failure {
        Failure::Login => "SMTP login failing",
        Failure::Connect => "SMTP unavailable",
    };
    if changed {
        tracing::warn!(
            queued = rows.len(),
            retry_in_secs = wait.as_secs(),
            "{what}: {error}; the mail stays queued"
        );
    }
    let note = format!("not sent yet: {what}: {error}");
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    ob.store
        .call(move |conn| {
            let now = crate::clock::now();
            queue::record_session(conn, Some((failure, &error)), now)?;
            queue::release(conn, &ids, &note, now)
        })
        .await
}

/// One SMTP command (or the message and its final dot), bounded by the
/// timeout, its failure sorted by what the server said.
async fn step(
    what: &str,
    timeout: Duration,
    fut: impl Future<Output = Result<Response, lettre::transport::smtp::Error>>,
) -> Result<(), Outcome> {
    match tokio::time::timeout(timeout, fut).await {
        Err(_) => Err(Outcome::NoAnswer(format!(
            "no answer to {what} within {}",
            short_duration(timeout)
        ))),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(match e.status().map(u16::from) {
            // The server is closing the session: nothing about the message.
            Some(421) => Outcome::NoAnswer(format!("{what}: {e}")),
            Some(530) => Outcome::LoginRequired(format!("{what}: {e}")),
            Some(_) => Outcome::Refused {
                permanent: e.is_permanent(),
                error: format!("{what}: {e}"),
            },
            None => Outcome::NoAnswer(format!("{what}: {e}")),
        }),
    }
}

/// Sends one message on `conn`: lettre's `send`, one command at a time so
/// each is bounded by `timeout`, and a refusal resets the transaction
/// (RSET) instead of ending the session. Returns the outcome and whether
/// the session can carry the next message.
async fn send_one(
    conn: &mut AsyncSmtpConnection,
    r: &Row,
    timeout: Duration,
    pipelining: bool,
) -> (Outcome, bool) {
    let from: lettre::Address = match r.sender.parse() {
        Ok(a) => a,
        Err(e) => {
            return (
                Outcome::Invalid(format!("bad sender {}: {e}", r.sender)),
                true,
            );
        }
    };
    let to = match r
        .recipients
        .iter()
        .map(|a| a.parse())
        .collect::<Result<Vec<lettre::Address>, _>>()
    {
        Ok(to) => to,
        Err(e) => return (Outcome::Invalid(format!("bad recipient: {e}")), true),
    };
    let envelope = match Envelope::new(Some(from.clone()), to.clone()) {
        Ok(e) => e,
        Err(e) => return (Outcome::Invalid(format!("bad envelope: {e}")), true),
    };
    let info = conn.server_info();
    let mut options = Vec::new();
    if envelope
        .from()
        .into_iter()
        .chain(envelope.to())
        .any(|a| !AsRef::<str>::as_ref(a).is_ascii())
    {
        if !info.supports_feature(Extension::SmtpUtfEight) {
            let error = "the server does not take non-ASCII addresses (no SMTPUTF8)".to_string();
            return (
                Outcome::Refused {
                    permanent: true,
                    error,
                },
                true,
            );
        }
        options.push(MailParameter::SmtpUtfEight);
    }
    if !r.raw.is_ascii() {
        if !info.supports_feature(Extension::EightBitMime) {
            let error = "the server does not take 8-bit messages (no 8BITMIME)".to_string();
            return (
                Outcome::Refused {
                    permanent: true,
                    error,
                },
                true,
            );
        }
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let mail = Mail::new(Some(from), options);
    let transaction = async {
        if pipelining && to.len() == 1 {
            // RFC 2920: MAIL, RCPT and DATA in one write, then their three
            // answers in order, all read whatever each says, so the
            // session stays in step. With one recipient, a refused MAIL or
            // RCPT means DATA is refused too: no message follows.
            let mut group = Some(Group(format!(
                "{mail}{}{Data}",
                Rcpt::new(to[0].clone(), vec![])
            )));
            let mut refused = None;
            let mut in_data = false;
            for what in ["MAIL FROM", "RCPT TO", "DATA"] {
                let answer = match group.take() {
                    Some(g) => step(what, timeout, conn.command(g)).await,
                    None => step(what, timeout, conn.read_response()).await,
                };
                match answer {
                    Ok(()) => in_data = what == "DATA",
                    Err(r @ Outcome::Refused { .. }) => {
                        refused.get_or_insert(r);
                    }
                    // The session is lost or out of step: drop it.
                    Err(other) => return Err((other, false)),
                }
            }
            // A server that refused MAIL or RCPT yet answered DATA with
            // 354 waits for a body we will not send: the refusal stands,
            // the session is dropped rather than reset (RSET would be
            // read as the body).
            return refused.map_or(Ok(()), |r| Err((r, !in_data)));
        }
        let resettable = |o: Outcome| (o, true);
        step("MAIL FROM", timeout, conn.command(mail))
            .await
            .map_err(resettable)?;
        for a in to {
            step("RCPT TO", timeout, conn.command(Rcpt::new(a, vec![])))
                .await
                .map_err(resettable)?;
        }
        step("DATA", timeout, conn.command(Data))
            .await
            .map_err(resettable)?;
        Ok::<(), (Outcome, bool)>(())
    };
    match transaction.await {
        Ok(()) => {}
        Err((refused @ Outcome::Refused { .. }, true)) => {
            // The transaction is refused, the session is not.
            let reset = step("RSET", timeout, conn.command(Rset)).await.is_ok();
            return (refused, reset);
        }
        Err((other, _)) => return (other, false),
    }
    match step("the end of DATA", timeout, conn.message(&r.raw)).await {
        Ok(()) => (Outcome::Sent, true),
        Err(refused @ Outcome::Refused { .. }) => (refused, true),
        Err(other) => (other, false),
    }
}

fn write_eml(dir: &Path, r: &Row) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("Creating {}", dir.display()))?;
    let safe: String = r
        .message_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{safe}.eml"));
    let tmp = dir.join(format!(".{safe}.tmp"));
    std::fs::write(&tmp, &r.raw).with_context(|| format!("Writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("Renaming to {}", path.display()))?;
    Ok(())
}

/// lettre's own connect leaves Nagle on (about 22 messages/s on loopback);
/// we connect the socket ourselves with TCP_NODELAY and hand it over. The
/// whole of it (TCP, TLS, greeting, EHLO, STARTTLS, AUTH) is bounded by
/// the timeout.
pub async fn smtp_connect(s: &SmtpSettings) -> Result<AsyncSmtpConnection, ConnectError> {
    let hello = ClientId::default();
    let session = async {
        let tcp = tls::connect_tcp(&s.host, s.port).await?;
        let conn = match s.tls {
            Tls::Implicit => {
                let config = tls::client_config(s.ca_file.as_deref())?;
                let stream = tls::handshake(config, &s.host, tcp).await?;
                AsyncSmtpConnection::connect_with_transport(Box::new(TlsTokio(stream)), &hello)
                    .await
                    .context("SMTP greeting")?
            }
            Tls::StartTls => {
                let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello)
                    .await
                    .context("SMTP greeting")?;
                let mut params = TlsParameters::builder(s.host.clone());
                if let Some(ca) = &s.ca_file {
                    let pem =
                        std::fs::read(ca).with_context(|| format!("Reading {}", ca.display()))?;
                    params = params.add_root_certificate(
                        Certificate::from_pem(&pem)
                            .with_context(|| format!("Parsing {}", ca.display()))?,
                    );
                }
                let params = params.build_rustls().context("TLS parameters")?;
                conn.starttls(params, &hello).await.context("STARTTLS")?;
                conn
            }
            Tls::None => AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello)
                .await
                .context("SMTP greeting")?,
        };
        Ok::<_, anyhow::Error>(conn)
    };
    let login = async {
        let mut conn = session.await.map_err(ConnectError::Unreachable)?;
        if let (Some(user), Some(config::Login::OAuth2(account))) = (&s.username, &s.login) {
            oauth_login(&mut conn, s, user, account).await?;
        }
        if let (Some(user), Some(config::Login::Password(pass))) = (&s.username, &s.login) {
            conn.auth(
                &[Mechanism::Plain, Mechanism::Login],
                &Credentials::new(user.clone(), pass.expose().to_string()),
            )
            .await
            .map_err(|e| {
                let err = anyhow!("SMTP AUTH as {user} failed: {e}");
                // An answer (535, 454...) or no common mechanism is about
                // the login; a connection lost meanwhile is not.
                if e.status().is_some() || e.is_client() {
                    ConnectError::Login(err)
                } else {
                    ConnectError::Unreachable(err)
                }
            })?;
        }
        Ok(conn)
    };
    tokio::time::timeout(s.timeout, login).await.map_err(|_| {
        ConnectError::Unreachable(anyhow!(
            "SMTP connection to {}:{} timed out",
            s.host,
            s.port
        ))
    })?
}

/// AUTH with the account's bearer token, and once more with one fresh
/// from the provider when the server refuses it. A token the provider
/// refuses is a login failure (the admin signs in again), as a refused one.
async fn oauth_login(
    conn: &mut AsyncSmtpConnection,
    s: &SmtpSettings,
    user: &str,
    account: &config::OAuthAccount,
) -> Result<(), ConnectError> {
    let token_error = |e: crate::oauth::TokenError| {
        if e.is_login() {
            ConnectError::Login(e.into())
        } else {
            ConnectError::Unreachable(e.into())
        }
    };
    let token = crate::oauth::bearer(account, false)
        .await
        .map_err(token_error)?;
    let first = match smtp_bearer(conn, s, user, account, &token.token).await {
        Err(ConnectError::Login(e)) => e,
        other => return other,
    };
    tracing::info!(account = %account.name, "SMTP refused the access token ({first:#}); refreshing it once");
    let token = crate::oauth::bearer(account, true)
        .await
        .map_err(token_error)?;
    smtp_bearer(conn, s, user, account, &token.token).await
}

/// One AUTH XOAUTH2 / OAUTHBEARER exchange (RFC 7628 over RFC 4954): the
/// initial response, and on the server's error challenge (334) the abort
/// answer, after which the server gives its 535. lettre has no
/// OAUTHBEARER and no answer to XOAUTH2's challenge, so the two lines
/// are sent through its connection as commands.
async fn smtp_bearer(
    conn: &mut AsyncSmtpConnection,
    s: &SmtpSettings,
    user: &str,
    account: &config::OAuthAccount,
    token: &str,
) -> Result<(), ConnectError> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let name = crate::oauth::sasl_name(account.mechanism);
    let initial = crate::oauth::sasl_response(account.mechanism, user, &s.host, s.port, token);
    let failed = |detail: String| {
        ConnectError::Login(anyhow!(
            "SMTP AUTH {name} as {user} with OAuth account {} failed: {detail}",
            account.name
        ))
    };
    let lost = |e: lettre::transport::smtp::Error| {
        if e.status().is_some() {
            failed(e.to_string())
        } else {
            ConnectError::Unreachable(anyhow!("SMTP AUTH {name}: {e}"))
        }
    };
    let r = conn
        .command(Line(format!("AUTH {name} {}", b64.encode(initial))))
        .await
        .map_err(lost)?;
    if !r.has_code(334) {
        return Ok(());
    }
    let said = r
        .first_word()
        .and_then(|w| b64.decode(w).ok())
        .map(|d| String::from_utf8_lossy(&d).into_owned())
        .unwrap_or_default();
    let abort = b64.encode(crate::oauth::sasl_abort(account.mechanism));
    match conn.command(Line(abort)).await {
        Ok(r) => Err(failed(format!(
            "unexpected answer {:?} (server said {said})",
            r.code()
        ))),
        Err(e) if e.status().is_some() => Err(failed(format!("{e} (server said {said})"))),
        Err(e) => Err(lost(e)),
    }
}

/// A command line of our own, CRLF-terminated.
struct Line(String);

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\r\n", self.0)
    }
}

/// Implicit TLS done by our rustls, wrapped for lettre's stream trait.
#[derive(Debug)]
struct TlsTokio(TlsStream<TcpStream>);

impl AsyncRead for TlsTokio {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsTokio {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsTokio {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every draw of a jittered wait, in seconds, lies in [0.8, 1.2] of
    /// `base`.
    fn within(d: Duration, base: f64) -> bool {
        let s = d.as_secs_f64();
        s >= base * 0.8 - 1e-9 && s <= base * 1.2 + 1e-9
    }

    #[test]
    fn a_refused_message_waits_twice_as_long_each_time_up_to_an_hour() {
        for (attempts, base) in [
            (0, 30.0),
            (1, 30.0),
            (2, 60.0),
            (3, 120.0),
            (4, 240.0),
            (5, 480.0),
            (6, 960.0),
            (7, 1920.0),
            (8, 3600.0),
            (20, 3600.0),
            (u32::MAX, 3600.0),
        ] {
            for _ in 0..50 {
                let d = backoff(attempts);
                assert!(within(d, base), "attempt {attempts}: {d:?}, base {base}");
            }
        }
    }

    #[test]
    fn a_failing_session_waits_from_5_seconds_doubling_to_10_minutes() {
        for (failures, base) in [
            (1, 5.0),
            (2, 10.0),
            (3, 20.0),
            (4, 40.0),
            (5, 80.0),
            (6, 160.0),
            (7, 320.0),
            (8, 600.0),
            (1000, 600.0),
        ] {
            for _ in 0..50 {
                let d = session_backoff(failures);
                assert!(within(d, base), "failure {failures}: {d:?}, base {base}");
            }
        }
    }

    #[test]
    fn an_unanswered_message_waits_its_age_from_30_seconds_to_an_hour() {
        let queued: DateTime<Utc> = "2026-11-16T09:00:00Z".parse().unwrap();
        for (age, base) in [
            (0, 30.0),
            (10, 30.0),
            (90, 90.0),
            (1800, 1800.0),
            (86_400, 3600.0),
        ] {
            let now = queued + chrono::TimeDelta::seconds(age);
            for _ in 0..50 {
                let d = backoff_by_age(queued, now);
                assert!(within(d, base), "age {age}: {d:?}, base {base}");
            }
        }
        // A clock set back never makes a negative or zero wait.
        let d = backoff_by_age(queued, queued - chrono::TimeDelta::hours(1));
        assert!(within(d, 30.0), "{d:?}");
    }
}
