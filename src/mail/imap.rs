//! IMAP mailbox source (async-imap over tokio-rustls).
//!
//! Owns one mailbox's connection: TLS (implicit or STARTTLS), login, the
//! UIDVALIDITY/UID watermark kept in SQLite, fetching, and marking after
//! commit. New mail is awaited with IDLE when the server offers it, or by
//! polling. Connection failures back off exponentially with jitter and are
//! logged once per state change, not once per retry. Every wait on the
//! server is bounded (`timeout`), so a server that stops answering (hung,
//! SIGSTOPped, a dead link without a RST) is treated as down and retried,
//! and only its own mailbox task waits.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use async_imap::Session;
use async_imap::extensions::idle::IdleResponse;
use chrono::Utc;
use futures::TryStreamExt;
use rand::Rng;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::Source;
use crate::config::{ImapSettings, Tls};
use crate::ingest::{Incoming, Outcome};
use crate::mail::tls;

type ImapSession = Session<TlsStream<TcpStream>>;

const FETCH_BATCH: usize = 100;

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
    stream
        .login(&s.username, s.password.expose())
        .await
        .map_err(|(e, _)| anyhow!("IMAP login as {} failed: {e}", s.username))
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
    let outcomes = poll(src, s, &mut session).await?;
    logout(s, session).await;
    Ok(outcomes)
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
        poll(src, s, &mut session).await?;
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
            let mut handle = session.idle();
            net(s, "IDLE", handle.init()).await?;
            // Re-issued after `idle_timeout` (RFC 2177: servers may drop an
            // IDLE after 30 minutes); a silent server is noticed then too.
            // async-imap's own timeout restarts on every response and skips
            // keepalives ("* OK Still here", every 2 minutes in Dovecot), so
            // the whole IDLE is bounded here as well.
            let (wait, stop) = handle.wait_with_timeout(s.idle_timeout);
            let stopped = tokio::select! {
                r = tokio::time::timeout(s.idle_timeout, wait) => {
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

/// One pass: everything above the watermark, in UID order.
async fn poll(src: &Source, s: &ImapSettings, session: &mut ImapSession) -> Result<Vec<Outcome>> {
    let mb = net(
        s,
        &format!("SELECT {}", s.folder),
        session.select(&s.folder),
    )
    .await?;
    let uidvalidity = mb
        .uid_validity
        .ok_or_else(|| anyhow!("The server gave no UIDVALIDITY for {}", s.folder))?;

    let name = src.name.as_str();
    let (last_uid, unmarked) = src.watermark(uidvalidity).await?;

    // Committed before a crash but never marked: mark them now.
    if !unmarked.is_empty() {
        mark(src, s, session, uidvalidity, &unmarked).await?;
    }

    let mut uids: Vec<u32> = net(
        s,
        "UID SEARCH",
        session.uid_search(format!("UID {}:*", last_uid.saturating_add(1))),
    )
    .await?
    .into_iter()
    .filter(|u| *u > last_uid)
    .collect();
    uids.sort_unstable();
    drain_unsolicited(session);

    let mut outcomes = Vec::with_capacity(uids.len());
    for batch in uids.chunks(FETCH_BATCH) {
        let set = uid_set(batch);
        let mut fetched: Vec<(u32, Option<chrono::DateTime<Utc>>, Vec<u8>)> = Vec::new();
        {
            let stream = net(
                s,
                "UID FETCH",
                session.uid_fetch(&set, "(UID INTERNALDATE BODY.PEEK[])"),
            )
            .await?;
            let mut stream = std::pin::pin!(stream);
            // The timeout bounds the wait for each message, not the batch:
            // a big batch on a slow link is progress, a silent server is not.
            while let Some(f) = net(s, "Reading the UID FETCH response", stream.try_next()).await? {
                if let Some(uid) = f.uid {
                    fetched.push((
                        uid,
                        f.internal_date().map(|d| d.with_timezone(&Utc)),
                        f.body().map(<[u8]>::to_vec).unwrap_or_default(),
                    ));
                }
            }
        }
        drain_unsolicited(session);
        let done: Vec<u32> = fetched.iter().map(|(uid, _, _)| *uid).collect();
        let batch = fetched
            .into_iter()
            .map(|(uid, internal_date, raw)| Incoming {
                mailbox: name.to_string(),
                source_key: format!("{uidvalidity}:{uid}"),
                uidvalidity: Some(uidvalidity),
                uid: Some(uid),
                received_at: internal_date.unwrap_or_else(Utc::now),
                raw,
            })
            .collect();
        // One transaction per fetched batch; marked only once committed.
        outcomes.extend(src.submit(batch).await?);
        if !done.is_empty() {
            mark(src, s, session, uidvalidity, &done).await?;
        }
        if src.shutdown.is_cancelled() {
            break;
        }
    }

    // A good pass, for `status`, metrics and the fetch alert (daemon and
    // `run --once` alike).
    src.record_health(None).await;
    Ok(outcomes)
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
        src.set_marked(
            chunk
                .iter()
                .map(|uid| format!("{uidvalidity}:{uid}"))
                .collect(),
        )
        .await?;
    }
    Ok(())
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
    #[test]
    fn uid_sets() {
        assert_eq!(super::uid_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(super::uid_set(&[5]), "5");
        assert_eq!(super::uid_set(&[]), "");
    }
}
