//! The optional Prometheus endpoint (`[metrics] listen`): on each scrape of
//! `/metrics`, the same figures as `supportdesk status`, read from the
//! store, and the SLA clocks that stopped (histograms of first-response
//! and resolution times in business seconds, met and breached counters,
//! per plan and priority), read from the ticket events recorded since the
//! last scrape, and each OAuth account's token (expiry, refused, failed
//! refreshes) from its file; encoded by prometheus-client in the
//! OpenMetrics text format. Off by default.
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
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::convert::Infallible;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::Config;
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

/// The SLA model business time is counted on: the running generation's,
/// replaced at each reload (the endpoint outlives generations).
#[derive(Clone)]
pub struct CurrentSla(Arc<std::sync::RwLock<Arc<Config>>>);

impl CurrentSla {
    pub fn new(config: Arc<Config>) -> CurrentSla {
        CurrentSla(Arc::new(std::sync::RwLock::new(config)))
    }

    pub fn set(&self, config: Arc<Config>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = config;
    }

    fn get(&self) -> Arc<Config> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Upper bounds of the time histograms, in business seconds: 5 and 15
/// minutes, 30 minutes, 1, 2, 4 and 8 hours, 1, 2, 3, 5 and 10 days.
const BUCKETS: [f64; 12] = [
    300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0, 172800.0, 259200.0, 432000.0,
    864000.0,
];

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// The stopped clocks observed so far by this process (from every event
/// in the database at the first scrape), and where the events were read up to.
struct ClockMetrics {
    after: i64,
    seconds: Family<Labels, Histogram, fn() -> Histogram>,
    met: Family<Labels, Counter>,
    breached: Family<Labels, Counter>,
}

/// What a scrape reads.
struct Sources {
    store: Store,
    db: std::path::PathBuf,
    sla: CurrentSla,
    clocks: std::sync::Mutex<ClockMetrics>,
}

/// Binds `addr` and serves until the process ends. Call it from within the
/// tokio runtime.
pub fn spawn(
    addr: SocketAddr,
    store: Store,
    db: std::path::PathBuf,
    sla: CurrentSla,
) -> Result<()> {
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .and_then(TcpListener::from_std)
        .with_context(|| format!("Metrics listener on {addr}"))?;
    tracing::info!(%addr, "metrics listener");
    let sources = Arc::new(Sources {
        store,
        db,
        sla,
        clocks: std::sync::Mutex::new(ClockMetrics {
            after: 0,
            seconds: Family::new_with_constructor(histogram),
            met: Family::default(),
            breached: Family::default(),
        }),
    });
    tokio::spawn(serve(listener, sources));
    Ok(())
}

async fn serve(listener: TcpListener, sources: Arc<Sources>) {
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
        let sources = sources.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let sources = sources.clone();
                async move { Ok::<_, Infallible>(answer(&req, &sources).await) }
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

async fn answer(req: &Request<Incoming>, sources: &Arc<Sources>) -> Response<Full<Bytes>> {
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
    match scrape(sources).await {
        Ok(text) => reply(StatusCode::OK, text, OPENMETRICS),
        Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}\n"), TEXT),
    }
}

async fn scrape(sources: &Arc<Sources>) -> Result<String> {
    let now = crate::clock::now();
    let stamp = crate::store::ts(now);
    let st = sources
        .store
        .call(move |conn| crate::store::report::status(conn, &stamp))
        .await?;
    // The new clock stops, off the store thread: the first scrape reads
    // the whole history. The work is kept even if the scraper gives up.
    let s = sources.clone();
    match tokio::task::spawn_blocking(move || observe_stops(&s)).await {
        Ok(Ok(())) => {}
        // The status figures still answer; the clocks catch up next time.
        Ok(Err(e)) => tracing::warn!("metrics: reading the SLA clocks: {e:#}"),
        Err(e) => tracing::warn!("metrics: reading the SLA clocks: {e}"),
    }
    let mut reg = render(&st, now)?;
    let clocks = sources.clocks.lock().unwrap_or_else(|e| e.into_inner());
    reg.register(
        "sla_time_business_seconds",
        "Business time a clock took when it stopped (first response, resolution), on the plan's calendar",
        clocks.seconds.clone(),
    );
    reg.register(
        "sla_met",
        "Clocks that stopped by their due instant",
        clocks.met.clone(),
    );
    reg.register(
        "sla_breached",
        "Clocks that stopped after their due instant",
        clocks.breached.clone(),
    );
    drop(clocks);
    oauth_metrics(&mut reg, &sources.sla.get());
    let mut out = String::new();
    encode(&mut out, &reg)?;
    Ok(out)
}

/// Observes the first responses and resolutions recorded since the last
/// scrape, each once, as `stats` counts them.
fn observe_stops(s: &Sources) -> Result<()> {
    const BATCH: i64 = 10_000;
    let mut clocks = s.clocks.lock().unwrap_or_else(|e| e.into_inner());
    let config = s.sla.get();
    loop {
        let after = clocks.after;
        let (stops, last) = crate::store::read_only(&s.db, |conn| {
            crate::store::report::clock_stops(conn, after, BATCH)
        })?;
        for stop in &stops {
            let Some(done) =
                crate::core::stats::stopped(&config.sla, &stop.ticket, stop.clock, stop.at)
            else {
                continue;
            };
            let labels: Labels = vec![
                ("clock".into(), stop.clock.as_str().into()),
                ("plan".into(), stop.ticket.plan.clone()),
                (
                    "priority".into(),
                    stop.ticket.priority.clone().unwrap_or_default(),
                ),
            ];
            if let Some(b) = done.business {
                clocks
                    .seconds
                    .get_or_create(&labels)
                    .observe(b.num_seconds() as f64);
            }
            match done.met {
                Some(true) => clocks.met.get_or_create(&labels).inc(),
                Some(false) => clocks.breached.get_or_create(&labels).inc(),
                None => 0,
            };
        }
        if last == after {
            return Ok(());
        }
        clocks.after = last;
    }
}

/// Each OAuth account's token, from its file (so `auth login` and the
/// failures of any process count): when the access token expires, whether
/// the provider refused the last refresh, and the failed refreshes.
fn oauth_metrics(reg: &mut Registry, config: &Config) {
    let expiry = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let valid = Family::<Labels, Gauge>::default();
    let failures = Family::<Labels, Counter>::default();
    for a in config.oauth.values() {
        let labels = vec![("account".to_string(), a.name.clone())];
        let t = crate::oauth::read(a).ok().flatten();
        let usable = t
            .as_ref()
            .is_some_and(|t| !t.last_error.as_ref().is_some_and(|e| e.refused));
        valid.get_or_create(&labels).set(i64::from(usable));
        if let Some(t) = &t {
            if let Some(at) = t.access_expires_at {
                expiry.get_or_create(&labels).set(at.timestamp() as f64);
            }
            failures.get_or_create(&labels).inc_by(t.refresh_failures);
        }
    }
    reg.register(
        "oauth_access_token_expiry_timestamp_seconds",
        "When the account's current access token expires (it is refreshed before)",
        expiry,
    );
    reg.register(
        "oauth_token_valid",
        "1 when the account is signed in and the provider did not refuse its last refresh",
        valid,
    );
    reg.register(
        "oauth_refresh_failures",
        "Refreshes of the account's token that failed, since its sign-in",
        failures,
    );
}

/// The status figures of a scrape.
fn render(st: &Status, now: DateTime<Utc>) -> Result<Registry> {
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
    Ok(reg)
}
