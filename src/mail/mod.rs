//! Mail I/O: IMAP and Maildir sources and outbox delivery, and the narrow
//! handle a source works through ([`Source`]).

pub mod imap;
pub mod maildir;
pub mod outbox;
pub mod tls;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::ingest::{Analysed, Incoming, Intake, Outcome};
use crate::store::spool::Spool;
use crate::store::{mailbox, messages};

/// Which mailboxes have made their first attempt (ok or not): readiness.
#[derive(Clone, Default)]
pub struct Readiness {
    done: Arc<Mutex<HashSet<String>>>,
    wake: Arc<Notify>,
}

impl Readiness {
    pub fn mark(&self, mailbox: &str) {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        if done.insert(mailbox.to_string()) {
            self.wake.notify_one();
        }
    }

    /// Waits until `n` mailboxes have made their first attempt.
    pub async fn wait_for(&self, n: usize) {
        loop {
            let notified = self.wake.notified();
            if self.done.lock().unwrap_or_else(|e| e.into_inner()).len() >= n {
                return;
            }
            notified.await;
        }
    }
}

/// What one mailbox source works with: its name, the intake to submit
/// batches to, its own bookkeeping in the store (watermark, marks,
/// health), readiness and the shutdown token. Nothing else of the app.
#[derive(Clone)]
pub struct Source {
    pub name: String,
    pub shutdown: CancellationToken,
    intake: Intake,
    ready: Readiness,
}

impl Source {
    pub fn new(
        name: &str,
        intake: Intake,
        ready: Readiness,
        shutdown: CancellationToken,
    ) -> Source {
        Source {
            name: name.to_string(),
            shutdown,
            intake,
            ready,
        }
    }

    /// The first half of ingesting a batch ([`Intake::submit`]): parse
    /// and check it, nothing stored. A source runs it for its next batch while the
    /// previous one commits.
    pub async fn analyse(&self, batch: Vec<Incoming>) -> Result<Vec<Analysed>> {
        self.intake.analyse(batch).await
    }

    /// The second half: decide and commit an analysed batch.
    pub async fn commit(&self, batch: Vec<Analysed>) -> Result<Vec<Outcome>> {
        self.intake.commit(batch).await
    }

    /// Where a message above `max_message_bytes` is written as it comes.
    pub fn spool(&self) -> Spool {
        self.intake.spool()
    }

    /// How long a quiet IDLE may last: it ends (and a pass records the
    /// mailbox's health) at least twice per fetch-alert window, so a
    /// mailbox nobody writes to is never reported as unfetchable.
    pub fn idle_for(&self, idle_timeout: std::time::Duration) -> std::time::Duration {
        let half = (self.intake.fetch_alert_after() / 2)
            .to_std()
            .unwrap_or(idle_timeout);
        idle_timeout
            .min(half)
            .max(std::time::Duration::from_secs(1))
    }

    /// Called after the source's first connection attempt and pass.
    pub fn first_pass_done(&self) {
        self.ready.mark(&self.name);
    }

    /// Records how a pass went (for `status` and the fetch alert).
    pub async fn record_health(&self, error: Option<String>) {
        let name = self.name.clone();
        let r = self
            .intake
            .store()
            .call(move |conn| {
                crate::store::health::record(conn, &name, error.as_deref(), crate::clock::now())
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(mailbox = %self.name, "recording mailbox health: {e:#}");
        }
    }

    /// The IMAP watermark under `uidvalidity`, and the UIDs committed but
    /// not yet marked at the server.
    pub async fn watermark(&self, uidvalidity: u32) -> Result<(u32, Vec<u32>)> {
        let name = self.name.clone();
        self.intake
            .store()
            .call(move |conn| {
                let last = mailbox::watermark(conn, &name, uidvalidity)?;
                Ok((last, messages::unmarked_uids(conn, &name, uidvalidity)?))
            })
            .await
    }

    /// The source keys committed from this mailbox.
    pub async fn known_keys(&self) -> Result<HashSet<String>> {
        let name = self.name.clone();
        self.intake
            .store()
            .call(move |conn| messages::known_keys(conn, &name))
            .await
    }

    /// Records that the server has these messages marked.
    pub async fn set_marked(&self, keys: Vec<String>) -> Result<()> {
        let name = self.name.clone();
        self.intake
            .store()
            .call(move |conn| {
                let tx = crate::store::begin(conn)?;
                messages::set_marked(&tx, &name, &keys)?;
                tx.commit()?;
                Ok(())
            })
            .await
    }
}

/// Logs a mailbox source's failure once per state change, not once per
/// retry: storage trouble (disk full, database locked) as a pause, anything
/// else as `what`. Returns the message when it is a new state.
pub(crate) fn log_failure(
    mailbox: &str,
    what: &str,
    e: &anyhow::Error,
    last: &mut Option<String>,
) -> Option<String> {
    let msg = format!("{e:#}");
    if last.as_deref() == Some(msg.as_str()) {
        return None;
    }
    if crate::store::is_transient(e) {
        tracing::warn!(mailbox, "ingestion paused, storage unavailable: {msg}");
    } else {
        tracing::warn!(mailbox, "{what}: {msg}");
    }
    *last = Some(msg.clone());
    Some(msg)
}
