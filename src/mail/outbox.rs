//! Outbox delivery: a state machine over the `outbox` table.
//!
//! pending --(claimed: attempts+1, next attempt pushed back)--> sending
//! sending --250--> sent
//! sending --4xx / connection error--> pending (backoff) or failed after max_attempts
//! sending --5xx--> failed
//!
//! The attempt is counted and committed before the message is handed to the
//! server, so a crash mid-send leads to a retry with the same Message-ID
//! (at least once), never to a message forgotten.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use chrono::Utc;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use rand::Rng;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::config::{self, OutboxKind, SmtpSettings, Tls};
use crate::mail::tls;
use crate::store::Store;
use crate::store::outbox::{self as queue, Claimed as Row};

const BATCH: i64 = 100;

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
        }
    }
}

enum SendError {
    Transient(String),
    Permanent(String),
}

fn backoff(attempts: u32) -> Duration {
    let secs = (30u64 << attempts.saturating_sub(1).min(7)).min(3600) as f64;
    Duration::from_secs_f64(secs * rand::rng().random_range(0.8..1.2))
}

/// Claims up to BATCH due rows: counts the attempt and pushes the next
/// attempt back by the backoff, so a crash mid-send retries later.
async fn claim(ob: &Outbox) -> Result<Vec<Row>> {
    ob.store
        .call(|conn| queue::claim(conn, Utc::now(), BATCH, backoff))
        .await
}

async fn finish(
    ob: &Outbox,
    id: i64,
    attempts: u32,
    result: Result<(), SendError>,
) -> Result<bool> {
    let max = ob.settings.max_attempts;
    ob.store
        .call(move |conn| match result {
            Ok(()) => {
                queue::mark_sent(conn, id, Utc::now())?;
                Ok(true)
            }
            Err(SendError::Transient(e)) if attempts < max => {
                queue::retry_later(conn, id, &e)?;
                Ok(false)
            }
            Err(SendError::Transient(e)) | Err(SendError::Permanent(e)) => {
                tracing::error!(outbox_id = id, attempts, "delivery failed for good: {e}");
                queue::mark_failed(conn, id, &e)?;
                Ok(false)
            }
        })
        .await
}

/// At process start: rows a previous process claimed and never finished
/// (it was killed mid-send) are due again now instead of after their
/// backoff. The attempt they used still counts, so a message that crashes
/// the sender every time ends as failed rather than in a crash loop.
pub fn recover_interrupted(conn: &rusqlite::Connection) -> Result<usize> {
    let n = queue::recover_interrupted(conn, Utc::now())?;
    if n > 0 {
        tracing::info!(
            rows = n,
            "outbox: resuming deliveries interrupted by a crash"
        );
    }
    Ok(n)
}

/// Delivers everything due now; returns (sent, not sent).
pub async fn drain(ob: &Outbox) -> Result<(usize, usize)> {
    let (mut sent, mut failed) = (0, 0);
    loop {
        let rows = claim(ob).await?;
        if rows.is_empty() {
            return Ok((sent, failed));
        }
        let (s, f, unreachable) = deliver(ob, rows).await?;
        sent += s;
        failed += f;
        // The server is down: the rest waits for its backoff instead of
        // one failed connection per batch.
        if unreachable || ob.shutdown.is_cancelled() {
            return Ok((sent, failed));
        }
    }
}

/// The daemon loop: drain, then sleep until woken or the next retry is due.
pub async fn run(ob: &Outbox) -> Result<()> {
    loop {
        if ob.shutdown.is_cancelled() {
            // Bounded final flush of what is due, whenever the stop came
            // (mail queued by the last ingest included).
            let _ = tokio::time::timeout(Duration::from_secs(10), drain(ob)).await;
            return Ok(());
        }
        if let Err(e) = drain(ob).await {
            tracing::error!("outbox: {e:#}");
        }
        let next = next_due_in(ob).await.unwrap_or(Duration::from_secs(60));
        tokio::select! {
            _ = ob.wake.notified() => {}
            _ = tokio::time::sleep(next) => {}
            _ = ob.shutdown.cancelled() => {}
        }
    }
}

async fn next_due_in(ob: &Outbox) -> Result<Duration> {
    let Some(at) = ob.store.call(|conn| queue::next_due(conn)).await? else {
        return Ok(Duration::from_secs(300));
    };
    Ok((at - Utc::now())
        .to_std()
        .unwrap_or(Duration::ZERO)
        .max(Duration::from_millis(200)))
}

/// Sends claimed rows; returns (sent, not sent, server unreachable).
async fn deliver(ob: &Outbox, rows: Vec<Row>) -> Result<(usize, usize, bool)> {
    let (mut sent, mut failed) = (0, 0);
    match &ob.settings.kind {
        OutboxKind::Directory(dir) => {
            for r in rows {
                let res = write_eml(dir, &r).map_err(|e| SendError::Transient(format!("{e:#}")));
                if finish(ob, r.id, r.attempts, res).await? {
                    sent += 1;
                } else {
                    failed += 1;
                }
            }
        }
        OutboxKind::Smtp(s) => {
            let mut conn = match smtp_connect(s).await {
                Ok(c) => c,
                Err(e) => {
                    let msg = format!("{e:#}");
                    // Once per state change, not once per retry.
                    let changed = {
                        let mut last = ob.smtp_error.lock().unwrap_or_else(|e| e.into_inner());
                        let changed = last.as_deref() != Some(msg.as_str());
                        *last = Some(msg.clone());
                        changed
                    };
                    if changed {
                        tracing::warn!("SMTP unavailable: {msg}");
                    }
                    for r in rows {
                        let res = Err(classify_connect(&msg));
                        finish(ob, r.id, r.attempts, res).await?;
                        failed += 1;
                    }
                    return Ok((sent, failed, true));
                }
            };
            if ob
                .smtp_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .is_some()
            {
                tracing::info!("SMTP reachable again");
            }
            for r in rows {
                let res = send_one(&mut conn, &r).await;
                if let Err(SendError::Transient(e) | SendError::Permanent(e)) = &res {
                    tracing::warn!(outbox_id = r.id, message_id = %r.message_id, "send failed: {e}");
                }
                let broken = conn.has_broken();
                if finish(ob, r.id, r.attempts, res).await? {
                    tracing::info!(outbox_id = r.id, message_id = %r.message_id, to = %r.recipients.join(","), "sent");
                    sent += 1;
                } else {
                    failed += 1;
                }
                if broken {
                    match smtp_connect(s).await {
                        Ok(c) => conn = c,
                        Err(_) => break, // the rest stay pending, already claimed with backoff
                    }
                }
            }
            let _ = conn.quit().await;
        }
    }
    Ok((sent, failed, false))
}

fn classify_connect(msg: &str) -> SendError {
    // Authentication refused (535) is permanent until an admin fixes the
    // config; everything else at connect time is worth retrying.
    if msg.contains("535") {
        SendError::Permanent(msg.to_string())
    } else {
        SendError::Transient(msg.to_string())
    }
}

async fn send_one(conn: &mut AsyncSmtpConnection, r: &Row) -> Result<(), SendError> {
    let from = r
        .sender
        .parse()
        .map_err(|e| SendError::Permanent(format!("bad sender {}: {e}", r.sender)))?;
    let to = r
        .recipients
        .iter()
        .map(|a| a.parse())
        .collect::<Result<Vec<lettre::Address>, _>>()
        .map_err(|e| SendError::Permanent(format!("bad recipient: {e}")))?;
    let envelope = Envelope::new(Some(from), to)
        .map_err(|e| SendError::Permanent(format!("bad envelope: {e}")))?;
    match conn.send(&envelope, &r.raw).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
        Err(e) => Err(SendError::Transient(e.to_string())),
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
/// we connect the socket ourselves with TCP_NODELAY and hand it over.
pub async fn smtp_connect(s: &SmtpSettings) -> Result<AsyncSmtpConnection> {
    let hello = ClientId::default();
    let fut = async {
        let tcp = tls::connect_tcp(&s.host, s.port).await?;
        let mut conn = match s.tls {
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
        if let (Some(user), Some(pass)) = (&s.username, &s.password) {
            conn.auth(
                &[Mechanism::Plain, Mechanism::Login],
                &Credentials::new(user.clone(), pass.expose().to_string()),
            )
            .await
            .map_err(|e| anyhow!("SMTP AUTH as {user} failed: {e}"))?;
        }
        Ok::<_, anyhow::Error>(conn)
    };
    tokio::time::timeout(s.timeout, fut)
        .await
        .map_err(|_| anyhow!("SMTP connection to {}:{} timed out", s.host, s.port))?
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
