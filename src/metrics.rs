//! The optional Prometheus endpoint (`[metrics] listen`): on each scrape of
//! `/metrics`, the same figures as `supportdesk status`, read from the
//! store and encoded by prometheus-client in the OpenMetrics text format.
//! Served by tiny_http on a thread of its own; off by default.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;

use anyhow::{Result, anyhow};
use chrono::{DateTime, Utc};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::store::Store;
use crate::store::report::Status;

type Labels = Vec<(String, String)>;

/// Binds `addr` and serves until the process ends.
pub fn spawn(addr: SocketAddr, store: Store) -> Result<()> {
    let server =
        tiny_http::Server::http(addr).map_err(|e| anyhow!("Metrics listener on {addr}: {e}"))?;
    tracing::info!(%addr, "metrics listener");
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for req in server.incoming_requests() {
                let resp = if req.url() == "/metrics" {
                    match scrape(&store) {
                        Ok(text) => tiny_http::Response::from_string(text).with_header(
                            tiny_http::Header::from_bytes(
                                &b"Content-Type"[..],
                                &b"application/openmetrics-text; version=1.0.0; charset=utf-8"[..],
                            )
                            .expect("a static header"),
                        ),
                        Err(e) => tiny_http::Response::from_string(format!("{e:#}\n"))
                            .with_status_code(500),
                    }
                } else {
                    tiny_http::Response::from_string("see /metrics\n").with_status_code(404)
                };
                let _ = req.respond(resp);
            }
        })?;
    Ok(())
}

fn scrape(store: &Store) -> Result<String> {
    let now = Utc::now();
    let stamp = crate::store::ts(now);
    let st = store.call_blocking(move |conn| crate::store::report::status(conn, &stamp))?;
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
