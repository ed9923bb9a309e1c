//! IMAP mailbox source (async-imap over tokio-rustls).
//!
//! Owns one mailbox's connection: TLS (implicit or STARTTLS), login, the
//! UIDVALIDITY/UID watermark kept in SQLite, fetching, and marking after
//! commit. New mail is awaited with IDLE when the server offers it, or by
//! polling; before IDLE, a fresh SELECT tells whether mail came during the
//! pass (its announcement may have been in a reply the pass did not
//! read). Connection failures back off exponentially with jitter and are
//! logged once per state change, not once per retry. Every wait on the
//! server is bounded (`timeout`), so a server that stops answering (hung,
//! SIGSTOPped, a dead link without a RST) is treated as down and retried,
//! and only its own mailbox task waits.
//!
//! Fetching is bounded by bytes, not only by count: RFC822.SIZE is asked
//! first (cheap), then UIDs are grouped into batches of at most
//! [`FETCH_BATCH`] messages and [`BATCH_BYTES`] bytes (one bigger message
//! is a batch alone), and a message above [`CHUNK`] is fetched in chunks,
//! so the server's reply never holds more than a chunk besides the message
//! itself. A message above the desk's `max_message_bytes` goes chunk by
//! chunk to a spool file (store/spool.rs), so its size costs disk, not
//! memory. Every IMAP mailbox of the process draws its batches from one
//! [`BUDGET`], so the number of mailboxes does not multiply it. A message
//! above the mailbox's `max_fetch_bytes` is not fetched: the pass stops
//! below it with an error that names it. What this bounds, and the unit's
//! MemoryMax= that rests on it: systemd/supportdesk.service.
//!
//! A FETCH reply is a message only when it carries the body of a UID we
//! asked for; the watermark never passes a UID whose body did not come
//! (see [`fetch_batch`]).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use async_imap::Session;
use async_imap::extensions::idle::IdleResponse;
use async_imap::imap_proto::{AttributeValue, MailboxDatum, Response, Status};
use chrono::Utc;
use futures::TryStreamExt;
use rand::Rng;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::client::TlsStream;

use super::Source;
use crate::config::{ImapSettings, Login, OAuthAccount, Tls};
use crate::ingest::{Analysed, Incoming, Outcome, Raw};
use crate::mail::tls;
use crate::oauth;
use crate::store::spool::{Spool, Spooling};

type ImapSession = Session<TlsStream<TcpStream>>;

/// Messages per batch: one UID FETCH, one transaction (a round of the
/// commit chain). 400 against 100 measured +5 points of bench 1's ratio
/// for +16 MB of peak RSS (BENCHMARKS.md, issue 17 sixth pass); the bytes
/// still bound a batch of big messages.
const FETCH_BATCH: usize = 400;
/// Bytes per batch, by the sizes the server announces.
const BATCH_BYTES: u64 = 32 << 20;
/// A message above this is fetched in chunks of this size.
const CHUNK: u32 = 4 << 20;
/// UIDs marked at the server per STORE in a pass's pipeline (a batch's
/// worth or more).
const MARK_BATCH: usize = 400;
/// UIDs whose sizes are asked in one UID FETCH.
const SIZE_WINDOW: usize = 1000;
/// The budget of [`BUDGET`], in KiB.
const BUDGET_KIB: usize = (BATCH_BYTES / 1024) as usize;
/// Bytes of fetched mail held at once by all IMAP mailboxes together, in
/// KiB, from the fetch of a batch to its commit. A batch alone bigger
/// than the budget (one large message) takes all of it.
static BUDGET: Semaphore = Semaphore::const_new(BUDGET_KIB);

/// One wait on the server, bounded by the mailbox's `timeout`.
async fn net<T, E>(
    s: &ImapSettings,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T>
where
    E: Into<anyhow::Error>,
{
    match tokio::time::timeout(s.timeout, fut).await {
        Ok(r) => r.map_err(Into::into).context(what.to_string()),
        Err(_) => Err(anyhow!(
            "{what}: no answer from the IMAP server in {}s",
            s.timeout.as_secs()
        )),
    }
}

pub async fn connect(s: &ImapSettings) -> Result<ImapSession> {
    net(s, "Connecting", connect_inner(s)).await
}

/// Logs out politely, but never waits longer than `timeout` for it.
async fn logout(s: &ImapSettings, mut session: ImapSession) {
    let _ = tokio::time::timeout(s.timeout, session.logout()).await;
}

async fn connect_inner(s: &ImapSettings) -> Result<ImapSession> {
    let config = tls::client_config(s.ca_file.as_deref())?;
    let tcp = tls::connect_tcp(&s.host, s.port).await?;
    let stream = match s.tls {
        Tls::Implicit => {
            let stream = tls::handshake(config, &s.host, tcp).await?;
            let mut client = async_imap::Client::new(stream);
            read_greeting(&mut client).await?;
            client
        }
        Tls::StartTls | Tls::None => {
            let mut plain = async_imap::Client::new(tcp);
            read_greeting(&mut plain).await?;
            plain
                .run_command_and_check_ok("STARTTLS", None)
                .await
                .context("STARTTLS refused")?;
            let stream = tls::handshake(config, &s.host, plain.into_inner()).await?;
            async_imap::Client::new(stream)
        }
    };
    match &s.login {
        Login::Password(p) => stream
            .login(&s.username, p.expose())
            .await
            .map_err(|(e, _)| anyhow!("IMAP login as {} failed: {e}", s.username)),
        Login::OAuth2(account) => oauth_login(s, account, stream).await,
    }
}

/// AUTHENTICATE with the account's bearer token, and once more with one
/// fresh from the provider when the server refuses it (revoked before its
/// expiry, say).
async fn oauth_login(
    s: &ImapSettings,
    account: &OAuthAccount,
    client: async_imap::Client<TlsStream<TcpStream>>,
) -> Result<ImapSession> {
    let token = oauth::bearer(account, false).await?;
    let (first, client) = match authenticate(s, account, client, &token.token).await {
        Ok(session) => return Ok(session),
        Err(e) => e,
    };
    tracing::info!(mailbox_user = %s.username, account = %account.name, "IMAP refused the access token ({first}); refreshing it once");
    let token = oauth::bearer(account, true).await?;
    authenticate(s, account, client, &token.token)
        .await
        .map_err(|(e, _)| e)
}

async fn authenticate(
    s: &ImapSettings,
    account: &OAuthAccount,
    client: async_imap::Client<TlsStream<TcpStream>>,
    token: &str,
) -> std::result::Result<ImapSession, (anyhow::Error, async_imap::Client<TlsStream<TcpStream>>)> {
    let said = std::sync::Arc::new(std::sync::Mutex::new(None));
    let auth = SaslBearer {
        first: Some(oauth::sasl_response(
            account.mechanism,
            &s.username,
            &s.host,
            s.port,
            token,
        )),
        abort: oauth::sasl_abort(account.mechanism),
        said: said.clone(),
    };
    let name = oauth::sasl_name(account.mechanism);
    client.authenticate(name, auth).await.map_err(|(e, c)| {
        let detail = said
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .map(|d| format!(" (server said {d})"))
            .unwrap_or_default();
        (
            anyhow!(
                "IMAP {name} login as {} with OAuth account {} failed: {e}{detail}",
                s.username,
                account.name
            ),
            c,
        )
    })
}

/// The client side of XOAUTH2 / OAUTHBEARER: the initial response, then
/// the abort answer to the server's error challenge (kept for the error).
struct SaslBearer {
    first: Option<String>,
    abort: &'static [u8],
    said: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl async_imap::Authenticator for SaslBearer {
    type Response = Vec<u8>;
    fn process(&mut self, challenge: &[u8]) -> Vec<u8> {
        match self.first.take() {
            Some(r) => r.into_bytes(),
            None => {
                *self.said.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(String::from_utf8_lossy(challenge).into_owned());
                self.abort.to_vec()
            }
        }
    }
}

async fn read_greeting<T>(client: &mut async_imap::Client<T>) -> Result<()>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    match client
        .read_response()
        .await
        .context("Reading the IMAP greeting")?
    {
        Some(_) => Ok(()),
        None => bail!("The IMAP server closed the connection before its greeting"),
    }
}

/// `run --once`: connect, one pass, log out.
pub async fn pass_once(src: &Source, s: &ImapSettings) -> Result<Vec<Outcome>> {
    let mut session = connect(s).await?;
    let pass = poll(src, s, &mut session).await?;
    logout(s, session).await;
    Ok(pass.outcomes)
}

/// The daemon loop for one mailbox.
pub async fn run(src: &Source, s: &ImapSettings) -> Result<()> {
    let name = src.name.as_str();
    let mut failures: u32 = 0;
    let mut last_error: Option<String> = None;
    while !src.shutdown.is_cancelled() {
        let result = tokio::select! {
            r = session_loop(src, s, &mut failures, &mut last_error) => r,
            _ = src.shutdown.cancelled() => Ok(()),
        };
        src.first_pass_done();
        let Err(e) = result else { continue };
        if let Some(msg) = super::log_failure(name, "IMAP unavailable", &e, &mut last_error) {
            src.record_health(Some(msg)).await;
        }
        failures = failures.saturating_add(1);
        let delay = backoff(failures);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = oauth::signed_in_again(match &s.login {
                Login::OAuth2(account) => Some(&**account),
                Login::Password(_) => None,
            }) => {}
            _ = src.shutdown.cancelled() => {}
        }
    }
    Ok(())
}

fn backoff(failures: u32) -> Duration {
    let base = 1u64 << failures.min(8); // 2 s .. 256 s
    let capped = base.min(300) as f64;
    let jitter = rand::rng().random_range(0.5..1.0);
    Duration::from_secs_f64(capped * jitter)
}

async fn session_loop(
    src: &Source,
    s: &ImapSettings,
    failures: &mut u32,
    last_error: &mut Option<String>,
) -> Result<()> {
    let mut session = connect(s).await?;
    let idle = s.idle
        && net(s, "CAPABILITY", session.capabilities())
            .await?
            .has_str("IDLE");
    let name = src.name.as_str();
    loop {
        let pass = poll(src, s, &mut session).await?;
        src.first_pass_done();
        if *failures > 0 || last_error.is_some() {
            tracing::info!(
                mailbox = name,
                "IMAP connection restored, ingestion resumed"
            );
            *failures = 0;
            *last_error = None;
        }
        if src.shutdown.is_cancelled() {
            logout(s, session).await;
            return Ok(());
        }
        if idle {
            // A message that came during the pass may have been announced
            // in a reply the pass does not read (EXISTS in a FETCH or
            // STORE reply, after its UID SEARCH): the server does not
            // announce it again, so IDLE would not wake for it. A fresh
            // SELECT is the server's whole view: if UIDNEXT moved since the
            // pass's own, pass again; what comes after it is announced
            // during IDLE.
            let now = select(s, &mut session).await?;
            if (now.uid_validity, now.uid_next) != (Some(pass.uidvalidity), pass.uid_next) {
                tracing::debug!(mailbox = name, "new mail during the pass, passing again");
                continue;
            }
            let mut handle = session.idle();
            net(s, "IDLE", handle.init()).await?;
            // Re-issued after `idle_timeout` (RFC 2177: servers may drop an
            // IDLE after 30 minutes); a silent server is noticed then too.
            // async-imap's own timeout restarts on every response and skips
            // keepalives ("* OK Still here", every 2 minutes in Dovecot), so
            // the whole IDLE is bounded here as well.
            // Shorter when the fetch alert's window is: a quiet mailbox
            // still has a good pass recorded twice per window.
            let idle_for = src.idle_for(s.idle_timeout);
            let (wait, stop) = handle.wait_with_timeout(idle_for);
            let stopped = tokio::select! {
                r = tokio::time::timeout(idle_for, wait) => {
                    match r {
                        Err(_) | Ok(Ok(IdleResponse::Timeout)) => {
                            tracing::debug!(mailbox = name, "IDLE timed out, re-issuing it");
                        }
                        Ok(r) => {
                            let woke = r.context("IDLE wait")?;
                            tracing::debug!(mailbox = name, "IDLE woke: {woke:?}");
                        }
                    }
                    false
                }
                _ = src.shutdown.cancelled() => true,
            };
            drop(stop);
            session = net(s, "IDLE DONE", handle.done()).await?;
            if stopped {
                logout(s, session).await;
                return Ok(());
            }
        } else {
            tokio::select! {
                _ = tokio::time::sleep(s.poll_interval) => {}
                _ = src.shutdown.cancelled() => {
                    logout(s, session).await;
                    return Ok(());
                }
            }
        }
    }
}

/// What a pass did, and the mailbox as its SELECT found it.
struct Pass {
    outcomes: Vec<Outcome>,
    uidvalidity: u32,
    uid_next: Option<u32>,
}

async fn select(s: &ImapSettings, session: &mut ImapSession) -> Result<async_imap::types::Mailbox> {
    net(
        s,
        &format!("SELECT {}", s.folder),
        session.select(&s.folder),
    )
    .await
}

/// One pass: everything above the watermark, in UID order, in batches
/// bounded by count and by bytes (see the module comment).
async fn poll(src: &Source, s: &ImapSettings, session: &mut ImapSession) -> Result<Pass> {
    let mb = select(s, session).await?;
    let uidvalidity = mb
        .uid_validity
        .ok_or_else(|| anyhow!("The server gave no UIDVALIDITY for {}", s.folder))?;

    let (last_uid, unmarked) = src.watermark(uidvalidity).await?;

    // Committed before a crash but never marked: mark them now.
    if !unmarked.is_empty() {
        mark(src, s, session, uidvalidity, &unmarked).await?;
    }

    // "UID n:*" always matches the last message, even below n.
    let uids: Vec<u32> = search(s, session, &format!("UID {}:*", last_uid.saturating_add(1)))
        .await
        .context("Looking for new mail (UID SEARCH)")?
        .into_iter()
        .filter(|u| *u > last_uid)
        .collect();
    drain_unsolicited(session);

    // A pipeline of three steps: batch N is committed while batch N+1 is
    // analysed and batch N+2 fetched; batch N is marked at the server once
    // it is committed, with a later fetch, and that mark is recorded in
    // the store during the commit after (the store's own thread would
    // otherwise hold the fetch behind a commit). The watermark is what is
    // committed, so it never passes a batch that was only fetched.
    let spool = src.spool();
    let mut feed = Feed {
        windows: uids.chunks(SIZE_WINDOW),
        batches: VecDeque::new(),
        meta: HashMap::new(),
        too_big: None,
    };
    let mut outcomes = Vec::with_capacity(uids.len());
    let mut analysing: Option<Fetched<Vec<Incoming>>> = None;
    let mut committing: Option<Fetched<Vec<Analysed>>> = None;
    let mut to_mark: Vec<u32> = Vec::new();
    let mut to_record: Vec<u32> = Vec::new();
    let mut finished = false;
    // A fetch that failed (a message over max_fetch_bytes, a lost
    // connection): the batches already fetched are still analysed and
    // committed, with no more commands to the server, then the pass fails.
    let mut failed: Option<anyhow::Error> = None;
    loop {
        let prev = committing.take();
        let raw = analysing.take();
        if prev.is_none() && raw.is_none() && finished {
            break;
        }
        // Marked a few batches at a time: a STORE costs the server about
        // as much for 100 messages as for 500.
        let marks = if failed.is_none() && (to_mark.len() >= MARK_BATCH || finished) {
            std::mem::take(&mut to_mark)
        } else {
            Vec::new()
        };
        let flagged = std::mem::take(&mut to_record);
        let stop = finished || src.shutdown.is_cancelled();
        // The fetch may wait for its share of the budget only when no
        // batch of this pass holds one past this step (the batch being
        // analysed does): otherwise it would wait on itself.
        let may_wait = raw.is_none();
        let commit = async move {
            let Some(f) = prev else {
                return Ok(None);
            };
            // One transaction per fetched batch; marked only once committed.
            let r = src.commit(f.messages).await;
            // Released once committed: the next fetch may need it.
            drop(f.budget);
            r.map(|o| Some((o, f.done, f.trouble)))
        };
        let record = record_marked(src, uidvalidity, &flagged);
        let analyse = async move {
            let Some(f) = raw else {
                return Ok(None);
            };
            let analysed = src.analyse(f.messages).await?;
            Ok::<_, anyhow::Error>(Some(Fetched {
                messages: analysed,
                done: f.done,
                trouble: f.trouble,
                budget: f.budget,
            }))
        };
        let fetch = async {
            if !marks.is_empty() {
                flag(s, session, &marks).await?;
            }
            let next = if stop {
                Next::None
            } else {
                next_batch(src, s, session, uidvalidity, &mut feed, &spool, may_wait).await?
            };
            Ok::<_, anyhow::Error>((marks, next))
        };
        let (committed, recorded, analysed, fetched) = tokio::join!(commit, record, analyse, fetch);
        recorded?;
        if let Some((done, marks, trouble)) = committed? {
            outcomes.extend(done);
            if let Some(e) = trouble {
                // What was committed is marked at the next pass (the
                // connection may be gone).
                return Err(e);
            }
            to_mark.extend(marks);
        }
        committing = analysed?;
        match fetched {
            Ok((flagged, next)) => {
                to_record = flagged;
                match next {
                    Next::Batch(f) => {
                        // A batch cut short is the last of the pass.
                        finished = f.trouble.is_some();
                        analysing = Some(f);
                    }
                    Next::Later => {}
                    Next::None => finished = true,
                }
            }
            Err(e) => {
                failed = Some(e);
                finished = true;
            }
        }
    }
    record_marked(src, uidvalidity, &to_record).await?;
    if let Some(e) = failed {
        // What was committed is marked at the next pass.
        return Err(e);
    }
    if !to_mark.is_empty() {
        mark(src, s, session, uidvalidity, &to_mark).await?;
    }

    // A good pass, for `status`, metrics and the fetch alert (daemon and
    // `run --once` alike).
    src.record_health(None).await;
    Ok(Pass {
        outcomes,
        uidvalidity,
        uid_next: mb.uid_next,
    })
}

/// The batches of a pass still to fetch: the windows of UIDs whose sizes
/// are not asked yet, and the planned batches of the current window.
struct Feed<'a> {
    windows: std::slice::Chunks<'a, u32>,
    batches: VecDeque<Vec<u32>>,
    meta: HashMap<u32, Meta>,
    /// The current window's message over `max_fetch_bytes`, if any: the
    /// pass stops there once the batches before it are done.
    too_big: Option<(u32, u64)>,
}

/// A batch fetched (`Vec<Incoming>`), or fetched and analysed
/// (`Vec<Analysed>`), waiting for its next step.
struct Fetched<M> {
    messages: M,
    /// The UIDs it holds, to mark once committed.
    done: Vec<u32>,
    /// Why the batch was cut short (its prefix is still good).
    trouble: Option<anyhow::Error>,
    /// Its share of [`BUDGET`], held until the commit.
    budget: tokio::sync::SemaphorePermit<'static>,
}

/// What [`next_batch`] gives.
enum Next {
    Batch(Fetched<Vec<Incoming>>),
    /// Its share of the budget was not free and it could not wait: the
    /// batch is fetched at the next step.
    Later,
    /// The pass has nothing left to fetch.
    None,
}

/// Fetches the next batch of the pass. Without `may_wait`, a batch whose
/// share of the budget is not free at once is left for later.
async fn next_batch(
    src: &Source,
    s: &ImapSettings,
    session: &mut ImapSession,
    uidvalidity: u32,
    feed: &mut Feed<'_>,
    spool: &Spool,
    may_wait: bool,
) -> Result<Next> {
    while feed.batches.is_empty() {
        if let Some((uid, size)) = feed.too_big.take() {
            bail!(
                "UID {uid} of {} is {size} bytes, over this mailbox's max_fetch_bytes ({}): \
                 it is not fetched, and the mailbox waits below it until the limit is raised \
                 or the message is moved out of the folder",
                s.folder,
                s.max_fetch_bytes
            );
        }
        let Some(window) = feed.windows.next() else {
            return Ok(Next::None);
        };
        feed.meta = sizes(s, session, window).await?;
        let plan = plan(window, &feed.meta, s.max_fetch_bytes);
        feed.batches = plan.batches.into();
        feed.too_big = plan.too_big;
    }
    let Some(batch) = feed.batches.pop_front() else {
        return Ok(Next::None);
    };
    // Held until the batch is committed: what this batch keeps in memory,
    // counted against the budget every IMAP mailbox of the process shares.
    let permits = budget_permits(&batch, &feed.meta, spool.above);
    let budget = if may_wait {
        BUDGET
            .acquire_many(permits)
            .await
            .context("The fetch budget is closed")?
    } else {
        match BUDGET.try_acquire_many(permits) {
            Ok(b) => b,
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                feed.batches.push_front(batch);
                return Ok(Next::Later);
            }
            Err(tokio::sync::TryAcquireError::Closed) => bail!("The fetch budget is closed"),
        }
    };
    let (ready, trouble) = fetch_batch(s, session, &batch, &feed.meta, spool).await;
    let done: Vec<u32> = ready.iter().map(|(uid, _)| *uid).collect();
    let incoming = ready
        .into_iter()
        .map(|(uid, raw)| Incoming {
            mailbox: src.name.clone(),
            source_key: format!("{uidvalidity}:{uid}"),
            uidvalidity: Some(uidvalidity),
            uid: Some(uid),
            received_at: feed
                .meta
                .get(&uid)
                .and_then(|m| m.date)
                .unwrap_or_else(crate::clock::now),
            raw,
        })
        .collect();
    Ok(Next::Batch(Fetched {
        messages: incoming,
        done,
        trouble,
        budget,
    }))
}

/// What the server said of a message before its body is fetched.
#[derive(Debug, Clone, Copy, Default)]
struct Meta {
    size: Option<u32>,
    date: Option<chrono::DateTime<Utc>>,
}

/// RFC822.SIZE and INTERNALDATE of `uids` (cheap: no body). Replies for
/// other UIDs or without a UID (another client's flag change) are ignored;
/// a UID missing from the answer has no entry (expunged meanwhile, or a
/// server that did not say: such a message is fetched alone, by chunks).
async fn sizes(
    s: &ImapSettings,
    session: &mut ImapSession,
    uids: &[u32],
) -> Result<HashMap<u32, Meta>> {
    let mut meta: HashMap<u32, Meta> = HashMap::with_capacity(uids.len());
    let set = uid_set(uids);
    uid_fetch(s, session, &set, "(UID RFC822.SIZE INTERNALDATE)", |r| {
        let Some(uid) = r.uid.filter(|u| uids.binary_search(u).is_ok()) else {
            return;
        };
        let m = meta.entry(uid).or_default();
        m.size = m.size.or(r.size);
        m.date = m.date.or(r.date);
    })
    .await
    .with_context(|| {
        // Replies come in UID order: say where the server stopped.
        match meta.keys().max() {
            Some(last) => format!("Asking the sizes (UID FETCH RFC822.SIZE), after UID {last}"),
            None => "Asking the sizes (UID FETCH RFC822.SIZE)".to_string(),
        }
    })?;
    Ok(meta)
}

/// The batches of a window of UIDs, and the first UID too big to fetch.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    batches: Vec<Vec<u32>>,
    /// A message over `max_fetch_bytes`: the window's batches stop before it.
    too_big: Option<(u32, u64)>,
}

/// Groups `uids` (in order) into batches of at most [`FETCH_BATCH`]
/// messages and [`BATCH_BYTES`] bytes. A message larger than the budget,
/// or of unknown size, is a batch alone.
fn plan(uids: &[u32], meta: &HashMap<u32, Meta>, max_fetch_bytes: u64) -> Plan {
    let mut batches: Vec<Vec<u32>> = Vec::new();
    let mut current: Vec<u32> = Vec::new();
    let mut bytes = 0u64;
    for &uid in uids {
        let size = meta.get(&uid).and_then(|m| m.size).map(u64::from);
        if let Some(size) = size
            && size > max_fetch_bytes
        {
            if !current.is_empty() {
                batches.push(current);
            }
            return Plan {
                batches,
                too_big: Some((uid, size)),
            };
        }
        let size = size.unwrap_or(BATCH_BYTES);
        if !current.is_empty() && (current.len() >= FETCH_BATCH || bytes + size > BATCH_BYTES) {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(uid);
        bytes += size;
    }
    if !current.is_empty() {
        batches.push(current);
    }
    Plan {
        batches,
        too_big: None,
    }
}

/// The batch's share of [`BUDGET`], in KiB: its announced size, a message
/// of unknown size counting as the whole budget, one that goes to the
/// spool (above `spool_above`) as the one chunk it holds at a time.
fn budget_permits(batch: &[u32], meta: &HashMap<u32, Meta>, spool_above: u64) -> u32 {
    let bytes: u64 = batch
        .iter()
        .map(|u| match meta.get(u).and_then(|m| m.size).map(u64::from) {
            None => BATCH_BYTES,
            Some(size) if size > spool_above => u64::from(CHUNK),
            Some(size) => size,
        })
        .sum();
    bytes.div_ceil(1024).clamp(1, BUDGET_KIB as u64) as u32
}

/// Fetches a batch's bodies: small messages in one UID FETCH, large ones
/// (or of unknown size) by chunks. A UID that came without its body is
/// asked for again; if it still does not come, UID SEARCH tells whether it
/// was expunged meanwhile (nothing to ingest then) or still exists.
///
/// Returns what can be submitted, in UID order: everything up to the first
/// UID that exists but whose body was not received, never past it, since
/// committing a later UID moves the watermark over it. The error, if any,
/// says why the batch was cut; the prefix is still good to submit.
async fn fetch_batch(
    s: &ImapSettings,
    session: &mut ImapSession,
    batch: &[u32],
    meta: &HashMap<u32, Meta>,
    spool: &Spool,
) -> (Vec<(u32, Raw)>, Option<anyhow::Error>) {
    let mut got: BTreeMap<u32, Raw> = BTreeMap::new();
    let mut gone: HashSet<u32> = HashSet::new();
    let mut trouble: Option<anyhow::Error> = None;
    for attempt in 0..2 {
        let missing: Vec<u32> = batch
            .iter()
            .copied()
            .filter(|u| !got.contains_key(u))
            .collect();
        if missing.is_empty() {
            break;
        }
        if attempt > 0 {
            tracing::debug!(?missing, "no body received for these UIDs; asking again");
        }
        if let Err(e) = fetch_bodies(s, session, &missing, meta, spool, &mut got).await {
            trouble = Some(e);
            break;
        }
    }
    let missing: Vec<u32> = batch
        .iter()
        .copied()
        .filter(|u| !got.contains_key(u))
        .collect();
    if trouble.is_none() && !missing.is_empty() {
        match still_there(s, session, &missing).await {
            Ok(present) => {
                for uid in missing {
                    if !present.contains(&uid) {
                        tracing::info!(uid, "expunged by another client before it was read");
                        gone.insert(uid);
                    }
                }
            }
            Err(e) => trouble = Some(e),
        }
    }
    let (ready, blocked) = cut(batch, &mut got, &gone);
    let trouble = match (trouble, blocked) {
        (Some(e), Some(uid)) => Some(e.context(format!(
            "UID {uid} of {} did not come; ingestion waits below it",
            s.folder
        ))),
        (Some(e), None) => Some(e),
        (None, Some(uid)) => Some(anyhow!(
            "UID {uid} of {}: the server sent no body for it, twice, and it still exists; \
             ingestion of this mailbox waits below it (the server's log should say why)",
            s.folder
        )),
        (None, None) => None,
    };
    (ready, trouble)
}

/// One attempt at the bodies of `uids`, added to `got` as they come (so
/// what came before an error is kept). A message announced above the
/// spool's limit (or above [`CHUNK`], or of no announced size) is fetched
/// by chunks; see [`fetch_chunked`].
async fn fetch_bodies(
    s: &ImapSettings,
    session: &mut ImapSession,
    uids: &[u32],
    meta: &HashMap<u32, Meta>,
    spool: &Spool,
    got: &mut BTreeMap<u32, Raw>,
) -> Result<()> {
    let (whole, chunked): (Vec<u32>, Vec<u32>) = uids.iter().partition(|u| {
        meta.get(u)
            .and_then(|m| m.size)
            .is_some_and(|size| size <= CHUNK && u64::from(size) <= spool.above)
    });
    if !whole.is_empty() {
        // The timeout bounds the wait for each reply, not the batch: a big
        // batch on a slow link is progress, a silent server is not.
        uid_fetch(s, session, &uid_set(&whole), "(UID BODY.PEEK[])", |r| {
            accept(&whole, got, r.uid, r.body.map(|(_, body)| body));
        })
        .await
        .context("Fetching messages (UID FETCH BODY.PEEK[])")?;
    }
    for uid in chunked {
        let size = meta.get(&uid).and_then(|m| m.size);
        if let Some(raw) = fetch_chunked(s, session, uid, size, spool).await? {
            got.insert(uid, raw);
        }
    }
    Ok(())
}

/// Keeps a FETCH reply's body when it is one we asked for and have not
/// had yet. A reply without a body is not a message: another client's
/// flag change (it can arrive in the middle of our own FETCH, with its UID
/// on servers that send one), or `BODY[] NIL` for a message expunged
/// under the server's feet, or the last reply before the server gave up
/// on a message it could not read. Neither is a reply for a UID we did not
/// ask for.
fn accept(wanted: &[u32], got: &mut BTreeMap<u32, Raw>, uid: Option<u32>, body: Option<&[u8]>) {
    let (Some(uid), Some(body)) = (uid, body) else {
        return;
    };
    if wanted.binary_search(&uid).is_ok() {
        got.entry(uid).or_insert_with(|| Raw::Bytes(body.to_vec()));
    }
}

/// Where a chunked message goes: memory while it is small, the spool once
/// it is over the spool's limit (announced so, or grown so: a server's
/// announced size is not trusted).
enum Sink {
    Memory(Vec<u8>),
    Disk(Spooling),
}

impl Sink {
    fn len(&self) -> u64 {
        match self {
            Sink::Memory(v) => v.len() as u64,
            Sink::Disk(w) => w.len(),
        }
    }

    fn push(&mut self, bytes: &[u8], spool: &Spool) -> Result<()> {
        if let Sink::Memory(v) = self
            && (v.len() + bytes.len()) as u64 > spool.above
        {
            let mut w = spool.start()?;
            w.write(v)?;
            *self = Sink::Disk(w);
        }
        match self {
            Sink::Memory(v) => v.extend_from_slice(bytes),
            Sink::Disk(w) => w.write(bytes)?,
        }
        Ok(())
    }

    fn abandon(self) {
        if let Sink::Disk(w) = self {
            w.abandon();
        }
    }

    async fn finish(self) -> Result<Raw> {
        match self {
            Sink::Memory(v) => Ok(Raw::Bytes(v)),
            Sink::Disk(w) => Ok(Raw::File(
                tokio::task::spawn_blocking(move || w.finish())
                    .await
                    .context("Finishing a spooled message")??,
            )),
        }
    }
}

/// A message fetched in chunks (BODY.PEEK[]<offset.length>): the server's
/// reply never holds more than one chunk. A message within the spool's
/// limit is assembled in one allocation of its announced size; a bigger
/// one is written to the spool chunk by chunk, so its size costs disk,
/// not memory. None when a chunk came without a body: the message is then
/// not received at all (a truncated message is never submitted).
async fn fetch_chunked(
    s: &ImapSettings,
    session: &mut ImapSession,
    uid: u32,
    size: Option<u32>,
    spool: &Spool,
) -> Result<Option<Raw>> {
    let limit = s.max_fetch_bytes;
    let announced = size.map_or(u64::from(CHUNK), u64::from).min(limit);
    let mut sink = if announced > spool.above {
        Sink::Disk(spool.start()?)
    } else {
        Sink::Memory(Vec::with_capacity(usize::try_from(announced).unwrap_or(0)))
    };
    let result = fetch_chunks(s, session, uid, size, spool, &mut sink).await;
    match result {
        Ok(true) => Ok(Some(sink.finish().await?)),
        Ok(false) => {
            sink.abandon();
            Ok(None)
        }
        Err(e) => {
            sink.abandon();
            Err(e)
        }
    }
}

/// The chunks of one message into `sink`; false when one came without a
/// body.
async fn fetch_chunks(
    s: &ImapSettings,
    session: &mut ImapSession,
    uid: u32,
    size: Option<u32>,
    spool: &Spool,
    sink: &mut Sink,
) -> Result<bool> {
    let limit = s.max_fetch_bytes;
    loop {
        let offset = sink.len();
        let mut chunk_len = None;
        let mut written: Result<()> = Ok(());
        uid_fetch(
            s,
            session,
            &uid.to_string(),
            &format!("(UID BODY.PEEK[]<{offset}.{CHUNK}>)"),
            |r| {
                // The reply must be for this UID and this offset: a
                // partial reply says its origin (RFC 3501, 7.4.2).
                if chunk_len.is_none()
                    && r.uid == Some(uid)
                    && let Some((origin, body)) = r.body
                    && u64::from(origin.unwrap_or(0)) == offset
                {
                    written = sink.push(body, spool);
                    chunk_len = Some(body.len());
                }
            },
        )
        .await
        .with_context(|| {
            format!("Fetching UID {uid} at byte {offset} (UID FETCH BODY.PEEK[]<>)")
        })?;
        written.with_context(|| format!("Spooling UID {uid} of {} to disk", s.folder))?;
        let Some(n) = chunk_len else {
            return Ok(false);
        };
        if sink.len() > limit {
            bail!(
                "UID {uid} of {} is over this mailbox's max_fetch_bytes ({limit}) \
                 (the server announced {}); the mailbox waits below it",
                s.folder,
                size.map_or("no size".to_string(), |n| format!("{n} bytes"))
            );
        }
        if n < CHUNK as usize {
            return Ok(true);
        }
    }
}

/// Which of `uids` the folder still holds.
async fn still_there(
    s: &ImapSettings,
    session: &mut ImapSession,
    uids: &[u32],
) -> Result<HashSet<u32>> {
    let found = search(s, session, &format!("UID {}", uid_set(uids)))
        .await
        .context("Looking for the messages whose body did not come (UID SEARCH)")?;
    Ok(found.into_iter().collect())
}

/// What one FETCH reply says, of what this source asks for.
#[derive(Debug, Default)]
struct Reply<'a> {
    uid: Option<u32>,
    size: Option<u32>,
    date: Option<chrono::DateTime<Utc>>,
    /// BODY[] (or a part of it: its origin), when the reply carries one;
    /// `BODY[] NIL` is none.
    body: Option<(Option<u32>, &'a [u8])>,
}

fn reply<'a>(attrs: &'a [AttributeValue<'a>]) -> Reply<'a> {
    let mut r = Reply::default();
    for a in attrs {
        match a {
            AttributeValue::Uid(u) => r.uid = Some(*u),
            AttributeValue::Rfc822Size(n) => r.size = Some(*n),
            AttributeValue::InternalDate(d) => {
                r.date = chrono::DateTime::parse_from_str(d, "%d-%b-%Y %H:%M:%S %z")
                    .ok()
                    .map(|d| d.with_timezone(&Utc));
            }
            AttributeValue::BodySection {
                section: None,
                index,
                data: Some(data),
            } => r.body = Some((*index, data.as_ref())),
            _ => {}
        }
    }
    r
}

/// UID FETCH, each FETCH reply handed to `each` as it comes.
async fn uid_fetch(
    s: &ImapSettings,
    session: &mut ImapSession,
    set: &str,
    items: &str,
    mut each: impl FnMut(Reply<'_>),
) -> Result<()> {
    command(s, session, &format!("UID FETCH {set} {items}"), |resp| {
        if let Response::Fetch(_, attrs) = resp {
            each(reply(attrs));
        }
    })
    .await
}

/// UID SEARCH, sorted.
async fn search(s: &ImapSettings, session: &mut ImapSession, query: &str) -> Result<Vec<u32>> {
    let mut found = Vec::new();
    command(s, session, &format!("UID SEARCH {query}"), |resp| {
        if let Response::MailboxData(MailboxDatum::Search(ids)) = resp {
            found.extend_from_slice(ids);
        }
    })
    .await?;
    found.sort_unstable();
    found.dedup();
    Ok(found)
}

/// Runs `cmd`, hands every untagged reply to `each`, and succeeds only on
/// the command's own tagged OK. async-imap's fetch and search streams end
/// quietly at a tagged NO or BAD and at a closed connection (Dovecot sends
/// `* BYE` after a message it cannot read): "no reply for this UID" and
/// "the server failed" would look the same, and what is committed depends
/// on telling them apart. Other untagged replies (EXISTS, EXPUNGE, another
/// client's flag changes) are not used by a pass, which starts from UID
/// SEARCH each time. Each wait is bounded by `timeout`.
async fn command(
    s: &ImapSettings,
    session: &mut ImapSession,
    cmd: &str,
    mut each: impl FnMut(&Response<'_>),
) -> Result<()> {
    let verb = cmd.split(' ').take(2).collect::<Vec<_>>().join(" ");
    let tag = net(s, &verb, session.run_command(cmd)).await?;
    let mut bye = None;
    loop {
        let Some(resp) = net(
            s,
            &format!("Reading the {verb} response"),
            session.read_response(),
        )
        .await?
        else {
            bail!(
                "{verb}: the server closed the connection{}",
                bye.map(|b| format!(" ({b})")).unwrap_or_default()
            );
        };
        match resp.parsed() {
            Response::Done {
                tag: done,
                status,
                outcome,
            } if *done == tag => {
                return match status {
                    Status::Ok => Ok(()),
                    _ => Err(anyhow!(
                        "{verb}: the server answered {status:?} {}",
                        outcome.information.as_deref().unwrap_or_default()
                    )),
                };
            }
            Response::Data {
                status: Status::Bye,
                outcome,
            } => {
                bye = Some(format!(
                    "BYE {}",
                    outcome.information.as_deref().unwrap_or_default()
                ))
            }
            other => each(other),
        }
    }
}

/// The messages of `batch` to submit, in order, taken from `got`: up to
/// the first UID neither received nor expunged (`gone`), which is
/// returned; the watermark must not pass it.
fn cut<T>(
    batch: &[u32],
    got: &mut BTreeMap<u32, T>,
    gone: &HashSet<u32>,
) -> (Vec<(u32, T)>, Option<u32>) {
    let mut ready = Vec::with_capacity(batch.len());
    for &uid in batch {
        match got.remove(&uid) {
            Some(raw) => ready.push((uid, raw)),
            None if gone.contains(&uid) => {}
            None => return (ready, Some(uid)),
        }
    }
    (ready, None)
}

/// Tells the server the messages are handled, then records that it did.
async fn mark(
    src: &Source,
    s: &ImapSettings,
    session: &mut ImapSession,
    uidvalidity: u32,
    uids: &[u32],
) -> Result<()> {
    for chunk in uids.chunks(500) {
        flag(s, session, chunk).await?;
        record_marked(src, uidvalidity, chunk).await?;
    }
    Ok(())
}

/// The server's half of [`mark`]: Seen set (or the messages moved).
async fn flag(s: &ImapSettings, session: &mut ImapSession, uids: &[u32]) -> Result<()> {
    for chunk in uids.chunks(500) {
        let set = uid_set(chunk);
        match &s.move_to {
            Some(folder) => {
                net(
                    s,
                    &format!("UID MOVE to {folder}"),
                    session.uid_mv(&set, folder),
                )
                .await?
            }
            None => {
                let stream = net(
                    s,
                    "UID STORE \\Seen",
                    session.uid_store(&set, "+FLAGS.SILENT (\\Seen)"),
                )
                .await?;
                net(
                    s,
                    "Reading the UID STORE response",
                    stream.try_for_each(|_| async { Ok(()) }),
                )
                .await?;
            }
        }
        drain_unsolicited(session);
    }
    Ok(())
}

/// The store's half of [`mark`]: the messages need no marking at the next
/// pass. Left undone (a stop between the two halves), they are marked
/// again, which changes nothing at the server.
async fn record_marked(src: &Source, uidvalidity: u32, uids: &[u32]) -> Result<()> {
    if uids.is_empty() {
        return Ok(());
    }
    src.set_marked(
        uids.iter()
            .map(|uid| format!("{uidvalidity}:{uid}"))
            .collect(),
    )
    .await
}

/// Untagged responses we do not use go to a bounded channel; keep it empty
/// so nothing blocks or gets lost that we might later care about.
fn drain_unsolicited(session: &mut ImapSession) {
    while session.unsolicited_responses.try_recv().is_ok() {}
}

/// "1,2,3,7" compressed into ranges: "1:3,7".
fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap, HashSet};

    use super::{BATCH_BYTES, BUDGET_KIB, CHUNK, FETCH_BATCH, Meta, Plan, Raw};

    const MB: u32 = 1 << 20;

    fn sized(sizes: &[(u32, Option<u32>)]) -> HashMap<u32, Meta> {
        sizes
            .iter()
            .map(|&(uid, size)| (uid, Meta { size, date: None }))
            .collect()
    }

    #[test]
    fn batches_are_bounded_by_count_and_bytes() {
        // Two batches and a half of small messages: by count.
        let uids: Vec<u32> = (1..=2 * FETCH_BATCH as u32 + 50).collect();
        let meta = sized(&uids.iter().map(|&u| (u, Some(2000))).collect::<Vec<_>>());
        let p = super::plan(&uids, &meta, 128 << 20);
        assert_eq!(
            p.batches.iter().map(Vec::len).collect::<Vec<_>>(),
            [FETCH_BATCH, FETCH_BATCH, 50]
        );
        assert_eq!(p.too_big, None);

        // 10 MB each: three fit in 32 MiB, the fourth starts a new batch.
        let uids: Vec<u32> = (1..=7).collect();
        let meta = sized(&uids.iter().map(|&u| (u, Some(10 * MB))).collect::<Vec<_>>());
        let p = super::plan(&uids, &meta, 128 << 20);
        assert_eq!(p.batches, vec![vec![1, 2, 3], vec![4, 5, 6], vec![7]]);
        for b in &p.batches {
            let bytes: u64 = b.iter().map(|u| u64::from(meta[u].size.unwrap())).sum();
            assert!(bytes <= BATCH_BYTES);
        }
    }

    #[test]
    fn a_big_or_unknown_message_is_a_batch_alone_and_one_over_the_limit_stops_the_plan() {
        let meta = sized(&[
            (1, Some(1000)),
            (2, Some(40 * MB)),
            (3, Some(1000)),
            // 4: no size announced (expunged meanwhile, or a quiet server)
            (5, Some(1000)),
            (6, Some(200 * MB)),
            (7, Some(1000)),
        ]);
        let p = super::plan(&[1, 2, 3, 4, 5, 6, 7], &meta, 128 << 20);
        assert_eq!(
            p,
            Plan {
                batches: vec![vec![1], vec![2], vec![3], vec![4], vec![5]],
                too_big: Some((6, 200 << 20)),
            }
        );
        // Nothing before it: nothing to fetch, and the reason.
        let p = super::plan(&[6, 7], &meta, 128 << 20);
        assert_eq!(p.batches, Vec::<Vec<u32>>::new());
        assert_eq!(p.too_big, Some((6, 200 << 20)));
        // The budget a batch takes: its bytes, an unknown size as all of it.
        let above = 64 << 20;
        assert_eq!(super::budget_permits(&[1, 3], &meta, above), 2);
        assert_eq!(super::budget_permits(&[4], &meta, above), BUDGET_KIB as u32);
        assert_eq!(super::budget_permits(&[2], &meta, above), BUDGET_KIB as u32);
        // A message that goes to the spool holds one chunk at a time.
        assert_eq!(super::budget_permits(&[2], &meta, 1 << 20), CHUNK / 1024);
        assert!(u64::from(CHUNK) < BATCH_BYTES);
    }

    #[test]
    fn a_fetch_reply_without_a_body_is_not_a_message() {
        let wanted = [3, 4, 5];
        let mut got = BTreeMap::new();
        // Another client's flag change, with its UID, before the body...
        super::accept(&wanted, &mut got, Some(4), None);
        // ...and without one.
        super::accept(&wanted, &mut got, None, None);
        super::accept(&wanted, &mut got, Some(3), Some(b"mail 3"));
        super::accept(&wanted, &mut got, Some(4), Some(b"mail 4"));
        // ...after the body: the body stays.
        super::accept(&wanted, &mut got, Some(3), None);
        // A second body for the same UID does not replace the first.
        super::accept(&wanted, &mut got, Some(3), Some(b"again"));
        // A UID we did not ask for, and a body without a UID.
        super::accept(&wanted, &mut got, Some(9), Some(b"mail 9"));
        super::accept(&wanted, &mut got, None, Some(b"who?"));
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            vec![
                (3, Raw::Bytes(b"mail 3".to_vec())),
                (4, Raw::Bytes(b"mail 4".to_vec()))
            ]
        );
    }

    #[test]
    fn the_batch_is_cut_at_the_first_uid_whose_body_did_not_come() {
        let body = |u: u32| format!("mail {u}").into_bytes();
        let mut got: BTreeMap<u32, Vec<u8>> =
            [1, 2, 4, 6].into_iter().map(|u| (u, body(u))).collect();
        // 3 was expunged meanwhile: skipped. 5 still exists: cut there.
        let gone: HashSet<u32> = [3].into();
        let (ready, blocked) = super::cut(&[1, 2, 3, 4, 5, 6], &mut got, &gone);
        assert_eq!(ready.iter().map(|(u, _)| *u).collect::<Vec<_>>(), [1, 2, 4]);
        assert_eq!(ready[2].1, body(4));
        assert_eq!(blocked, Some(5));
        // Everything received (or expunged): the whole batch.
        let mut got: BTreeMap<u32, Vec<u8>> = [1, 2].into_iter().map(|u| (u, body(u))).collect();
        let (ready, blocked) = super::cut(&[1, 2, 3], &mut got, &gone);
        assert_eq!(ready.len(), 2);
        assert_eq!(blocked, None);
    }

    /// Replies as Dovecot sends them (seen with a second client expunging,
    /// and with an unreadable message file).
    #[test]
    fn fetch_replies_are_read_for_uid_size_date_and_body() {
        use async_imap::imap_proto::Response;
        let parse = |line: &'static [u8]| match Response::parse(line).unwrap().1 {
            Response::Fetch(_, attrs) => attrs,
            other => panic!("{other:?}"),
        };
        let attrs = parse(b"* 5 FETCH (UID 5 BODY[] NIL)\r\n");
        let r = super::reply(&attrs);
        assert_eq!((r.uid, r.body), (Some(5), None));
        let attrs = parse(b"* 2 FETCH (UID 2)\r\n");
        assert!(super::reply(&attrs).body.is_none());
        let attrs = parse(b"* 15 FETCH (FLAGS (\\Flagged))\r\n");
        let r = super::reply(&attrs);
        assert_eq!((r.uid, r.body), (None, None));
        let attrs = parse(b"* 4 FETCH (UID 4 BODY[]<10> {3}\r\nabc)\r\n");
        let r = super::reply(&attrs);
        assert_eq!(r.body, Some((Some(10), &b"abc"[..])));
        let attrs = parse(
            b"* 1 FETCH (UID 1 RFC822.SIZE 65 INTERNALDATE \"02-Dec-2026 06:27:56 +0100\")\r\n",
        );
        let r = super::reply(&attrs);
        assert_eq!((r.uid, r.size), (Some(1), Some(65)));
        assert_eq!(r.date.unwrap().to_rfc3339(), "2026-12-02T05:27:56+00:00");
    }

    #[test]
    fn uid_sets() {
        assert_eq!(super::uid_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(super::uid_set(&[5]), "5");
        assert_eq!(super::uid_set(&[]), "");
    }
}
