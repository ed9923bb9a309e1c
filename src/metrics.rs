//! The optional Prometheus endpoint (`[metrics] listen`): on each scrape of
//! `/metrics`, the same figures as `supportdesk status`, read from the
//! store and encoded by prometheus-client in the OpenMetrics text format.
//! Off by default.
//!
//! Served by hyper (HTTP/1.1, one request per connection) on the daemon's
//! tokio runtime, answering `GET /metrics` only, and bounded in what a
//! client can take: at most [`MAX_CONNECTIONS`] are served at once (more
//! wait in the kernel's backlog, costing the daemon nothing), each must
//! send its request head within [`REQUEST_TIMEOUT`] and [`MAX_HEAD`] bytes
//! (hyper answers 431 past that), and a failed accept (out of file
//! descriptors) is retried, never the end of the listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::convert::Infallible;
use tokio::net::TcpListener;
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
/// The largest request head accepted (hyper's smallest buffer limit).
pub const MAX_HEAD: usize = 8 * 1024;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

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
            let svc = service_fn(move |req: Request<Incoming>| {
                let store = store.clone();
                async move { Ok::<_, Infallible>(answer(&req, &store).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(REQUEST_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .keep_alive(false)
                .serve_connection(TokioIo::new(sock), svc);
            // The head within REQUEST_TIMEOUT (hyper's timer), the
            // response taken within WRITE_TIMEOUT after it.
            let _ = tokio::time::timeout(REQUEST_TIMEOUT + WRITE_TIMEOUT, conn).await;
            drop(slot);
        });
    }
}

async fn answer(req: &Request<Incoming>, store: &Store) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: String, content_type: &str| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("text/plain")),
        );
        r
    };
    if req.method() != Method::GET {
        let mut r = reply(StatusCode::METHOD_NOT_ALLOWED, String::new(), TEXT);
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
        return r;
    }
    if req.uri().path() != "/metrics" {
        return reply(StatusCode::NOT_FOUND, "see /metrics\n".into(), TEXT);
    }
    match scrape(store).await {
        Ok(text) => reply(StatusCode::OK, text, OPENMETRICS),
        Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}\n"), TEXT),
    }
}

async fn scrape(store: &Store) -> Result<String> {
    let now = crate::clock::now();
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
