//! The optional Prometheus endpoint (`[metrics] listen`): on each scrape of
//! `/metrics`, the same figures as `supportdesk status`, read from the
//! store and encoded by prometheus-client in the OpenMetrics text format.
//! Off by default.
//!
//! Served by a small HTTP/1.x responder on the daemon's tokio runtime, one
//! request per connection: it answers `GET /metrics` and nothing else, so
//! it needs no HTTP library, and it bounds what a client can take. At most
//! [`MAX_CONNECTIONS`] are served at once (more wait in the kernel's
//! backlog, costing the daemon nothing), each must send its request head
//! within [`REQUEST_TIMEOUT`] and [`MAX_HEAD`] bytes, and a failed accept
//! (out of file descriptors) is retried, never the end of the listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::store::Store;
use crate::store::report::Status;

type Labels = Vec<(String, String)>;

/// Connections served at once. A scraper needs one; a few more cover a
/// second Prometheus and someone with curl.
pub const MAX_CONNECTIONS: usize = 16;
/// Time for a client to send its whole request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for a client to take the response.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head accepted.
pub const MAX_HEAD: usize = 8 * 1024;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `addr` and serves until the process ends. Call it from within the
/// tokio runtime.
pub fn spawn(addr: SocketAddr, store: Store) -> Result<()> {
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .and_then(TcpListener::from_std)
        .with_context(|| format!("Metrics listener on {addr}"))?;
    tracing::info!(%addr, "metrics listener");
    tokio::spawn(serve(listener, store));
    Ok(())
}

async fn serve(listener: TcpListener, store: Store) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut failing = false;
    loop {
        // A free slot before the next accept: past the cap, connections
        // wait in the kernel's backlog, not in this process.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let sock = match listener.accept().await {
            Ok((sock, _)) => {
                failing = false;
                sock
            }
            Err(e) => {
                // EMFILE and the like pass: wait, then accept again.
                if !failing {
                    tracing::warn!("metrics listener: accepting a connection: {e}");
                }
                failing = true;
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let store = store.clone();
        tokio::spawn(async move {
            answer(sock, &store).await;
            drop(slot);
        });
    }
}

/// Why a request head was not read.
enum Head {
    Read(Vec<u8>),
    /// The client closed, or sent nothing in time: closed without a word.
    Gone,
    TooLarge,
}

/// Reads up to the blank line that ends the request head.
async fn read_head(sock: &mut TcpStream) -> Head {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return Head::Gone,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_HEAD {
            return Head::TooLarge;
        }
        let ends = |end: &[u8]| buf.windows(end.len()).any(|w| w == end);
        if ends(b"\r\n\r\n") || ends(b"\n\n") {
            return Head::Read(buf);
        }
    }
}

async fn answer(mut sock: TcpStream, store: &Store) {
    let head = match tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut sock)).await {
        Ok(Head::Read(head)) => head,
        Ok(Head::Gone) | Err(_) => return,
        Ok(Head::TooLarge) => {
            let _ = respond(&mut sock, "431 Request Header Fields Too Large", "", None).await;
            return;
        }
    };
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end().split(' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    if !version.is_some_and(|v| v.starts_with("HTTP/1.")) || parts.next().is_some() {
        let _ = respond(&mut sock, "400 Bad Request", "", None).await;
        return;
    }
    if method != Some("GET") {
        let _ = respond(&mut sock, "405 Method Not Allowed", "", None).await;
        return;
    }
    let path = target
        .unwrap_or_default()
        .split('?')
        .next()
        .unwrap_or_default();
    let (status, body, content_type) = if path == "/metrics" {
        match scrape(store).await {
            Ok(text) => ("200 OK", text, Some(OPENMETRICS)),
            Err(e) => ("500 Internal Server Error", format!("{e:#}\n"), None),
        }
    } else {
        ("404 Not Found", "see /metrics\n".to_string(), None)
    };
    let _ = respond(&mut sock, status, &body, content_type).await;
}

async fn respond(
    sock: &mut TcpStream,
    status: &str,
    body: &str,
    content_type: Option<&str>,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
        content_type.unwrap_or("text/plain; charset=utf-8"),
        body.len(),
        if status.starts_with("405") {
            "Allow: GET\r\n"
        } else {
            ""
        },
    );
    let write = async {
        sock.write_all(head.as_bytes()).await?;
        sock.write_all(body.as_bytes()).await?;
        sock.shutdown().await
    };
    tokio::time::timeout(WRITE_TIMEOUT, write)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

async fn scrape(store: &Store) -> Result<String> {
    let now = Utc::now();
    let stamp = crate::store::ts(now);
    let st = store
        .call(move |conn| crate::store::report::status(conn, &stamp))
        .await?;
    render(&st, now)
}

/// The text a scrape returns, from the status figures.
pub fn render(st: &Status, now: DateTime<Utc>) -> Result<String> {
    let mut reg = Registry::with_prefix("supportdesk");
    let gauge = |reg: &mut Registry, name: &str, help: &str, v: i64| {
        let g: Gauge = Gauge::default();
        g.set(v);
        reg.register(name, help, g);
    };
    gauge(
        &mut reg,
        "outbox_pending",
        "Mails waiting in the outbox",
        st.outbox_pending,
    );
    gauge(
        &mut reg,
        "outbox_failed",
        "Mails the outbox gave up on",
        st.outbox_failed,
    );
    gauge(
        &mut reg,
        "tickets_open",
        "Open and pending tickets",
        st.open_tickets,
    );
    gauge(
        &mut reg,
        "tickets_breaching",
        "Open tickets past a due instant",
        st.breaching,
    );
    gauge(
        &mut reg,
        "messages_unticketed",
        "Messages kept without a ticket (automated, spam, unparsable)",
        st.unticketed_messages,
    );
    let age = st
        .outbox_oldest_pending
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or(0, |t| (now - t.with_timezone(&Utc)).num_seconds().max(0));
    gauge(
        &mut reg,
        "outbox_oldest_pending_age_seconds",
        "Age of the oldest waiting mail",
        age,
    );
    let up = Family::<Labels, Gauge>::default();
    let last_ok = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    for m in &st.mailboxes {
        let labels = vec![("mailbox".to_string(), m.mailbox.clone())];
        up.get_or_create(&labels)
            .set(i64::from(m.last_error.is_none()));
        if let Some(t) = m
            .last_poll_at
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        {
            last_ok.get_or_create(&labels).set(t.timestamp() as f64);
        }
    }
    reg.register(
        "mailbox_up",
        "1 when the last pass over the mailbox succeeded",
        up,
    );
    reg.register(
        "mailbox_last_ok_timestamp_seconds",
        "When the mailbox was last fetched successfully",
        last_ok,
    );
    let mut out = String::new();
    encode(&mut out, &reg)?;
    Ok(out)
}
