//! Mail I/O: IMAP and Maildir sources, composing, and outbox delivery.

pub mod compose;
pub mod imap;
pub mod maildir;
pub mod outbox;
pub mod tls;

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
