//! The `messages` and `attachments` tables, and the files under the
//! state directory of attachments too large for a row: every incoming
//! message kept with its raw bytes, what dedupe and threading look up,
//! and the sources' \Seen bookkeeping.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::ts;

/// One incoming message as stored.
pub struct NewMessage<'a> {
    pub ticket: Option<i64>,
    /// customer, followup, agent, automated, duplicate, spam, unparsable, poison
    pub kind: &'a str,
    pub mailbox: &'a str,
    pub source_key: &'a str,
    pub uidvalidity: Option<u32>,
    pub uid: Option<u32>,
    pub message_id: Option<&'a str>,
    pub sender: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub received_at: DateTime<Utc>,
    pub body_text: Option<&'a str>,
    /// The bytes, or empty when `raw_path` names the file that holds them.
    pub raw: &'a [u8],
    pub raw_path: Option<&'a Path>,
    /// The sender's authentication verdict (JSON).
    pub auth: Option<&'a str>,
    pub error: Option<&'a str>,
    pub created_at: DateTime<Utc>,
}

/// Inserts the message; returns its row id.
pub fn insert(conn: &Connection, m: &NewMessage<'_>) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO messages (ticket_id, direction, kind, mailbox, source_key, uidvalidity, uid, marked,
            message_id, sender, subject, received_at, body_text, raw, error, created_at, raw_path, auth)
         VALUES (?1, 'in', ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?
    .execute(params![
        m.ticket,
        m.kind,
        m.mailbox,
        m.source_key,
        m.uidvalidity,
        m.uid,
        m.message_id,
        m.sender,
        m.subject,
        ts(m.received_at),
        m.body_text,
        m.raw,
        m.error,
        ts(m.created_at),
        m.raw_path.map(|p| p.to_string_lossy()),
        m.auth,
    ])
    .context("Inserting the message")?;
    Ok(conn.last_insert_rowid())
}

/// Whether this mailbox's message `source_key` was committed before.
pub fn seen(conn: &Connection, mailbox: &str, source_key: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM messages WHERE mailbox = ?1 AND source_key = ?2")?
        .query_row(params![mailbox, source_key], |_| Ok(()))
        .optional()
        .context("Checking for an earlier ingest")?
        .is_some())
}

/// The same Message-ID from the same sender seen before: Some(its ticket).
pub fn earlier(conn: &Connection, message_id: &str, sender: &str) -> Result<Option<Option<i64>>> {
    conn.prepare_cached(
        "SELECT ticket_id FROM messages WHERE direction = 'in' AND message_id = ?1 AND sender IS ?2 LIMIT 1",
    )?
    .query_row(params![message_id, sender], |r| r.get(0))
    .optional()
    .context("Looking up the Message-ID")
}

/// The ticket of an incoming message with this Message-ID.
pub fn ticket_of(conn: &Connection, message_id: &str) -> Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT ticket_id FROM messages WHERE message_id = ?1 AND ticket_id IS NOT NULL LIMIT 1",
    )?
    .query_row([message_id], |r| r.get(0))
    .optional()
    .context("Looking up references")
}

/// The source keys of every message committed from `mailbox`.
pub fn known_keys(conn: &Connection, mailbox: &str) -> Result<HashSet<String>> {
    let mut stmt = conn.prepare_cached("SELECT source_key FROM messages WHERE mailbox = ?1")?;
    let keys = stmt
        .query_map([mailbox], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<HashSet<String>>>()
        .context("Reading the mailbox's messages")?;
    Ok(keys)
}

/// UIDs committed but not yet marked at the server (a crash in between).
pub fn unmarked_uids(conn: &Connection, mailbox: &str, uidvalidity: u32) -> Result<Vec<u32>> {
    let mut stmt = conn.prepare_cached(
        "SELECT uid FROM messages WHERE mailbox = ?1 AND marked = 0 AND uidvalidity = ?2 AND uid IS NOT NULL",
    )?;
    let uids = stmt
        .query_map(params![mailbox, uidvalidity], |r| r.get::<_, u32>(0))?
        .collect::<rusqlite::Result<Vec<u32>>>()
        .context("Reading unmarked messages")?;
    Ok(uids)
}

/// Records that the server has these messages marked.
pub fn set_marked(conn: &Connection, mailbox: &str, source_keys: &[String]) -> Result<()> {
    // By (mailbox, source_key): the UNIQUE index finds the row; a lookup
    // by uid would scan the table per message.
    let mut stmt = conn
        .prepare_cached("UPDATE messages SET marked = 1 WHERE mailbox = ?1 AND source_key = ?2")?;
    for key in source_keys {
        stmt.execute(params![mailbox, key])
            .context("Recording the mark")?;
    }
    Ok(())
}

/// Mail from agent addresses that was not authenticated.
pub struct Unauthenticated {
    pub count: i64,
    /// The last one's sender and verdict (JSON).
    pub last: Option<(String, Option<String>)>,
}

/// Mail from an agent's address that was not authenticated, since `since`
/// (ever, for None).
pub fn unauthenticated_agent_since(
    conn: &Connection,
    since: Option<DateTime<Utc>>,
) -> Result<Unauthenticated> {
    let since = since.map(ts).unwrap_or_default();
    let n: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM messages INDEXED BY messages_unauthenticated
             WHERE kind = 'unauthenticated-agent' AND created_at > ?1",
        )?
        .query_row([&since], |r| r.get(0))
        .context("Counting unauthenticated agent mail")?;
    let last = conn
        .prepare_cached(
            "SELECT coalesce(sender, ''), auth FROM messages INDEXED BY messages_unauthenticated
             WHERE kind = 'unauthenticated-agent' AND created_at > ?1 ORDER BY created_at DESC LIMIT 1",
        )?
        .query_row([&since], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .context("Reading the last unauthenticated agent mail")?;
    Ok(Unauthenticated { count: n, last })
}

/// The text of the last incoming message on a ticket.
pub fn last_body(conn: &Connection, ticket: i64) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached(
            "SELECT body_text FROM messages WHERE ticket_id = ?1 AND direction = 'in' AND body_text IS NOT NULL
             ORDER BY id DESC LIMIT 1",
        )?
        .query_row([ticket], |r| r.get(0))
        .optional()
        .context("Reading the last message")?
        .flatten())
}

/// Attachments up to this size are kept in the database, beside their
/// message; larger ones in a file of their own. SQLite reads and writes
/// blobs of this size faster than the file system creates files (a file
/// per attachment was half of a Maildir ingest's time, most of it in
/// ext4 allocating inodes), and the database's backup then holds them.
pub const INLINE_ATTACHMENT_MAX: usize = 64 * 1024;

/// An attachment ready for its metadata row.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub filename: Option<String>,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub kept: Kept,
}

/// Where an attachment's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept {
    /// In a file, relative to the state directory.
    File(PathBuf),
    /// In the row itself (`content`).
    Inline(Vec<u8>),
}

/// Keeps one attachment: in its row when small, otherwise written under
/// `state_dir/attachments`, content-addressed (a repeated ingest rewrites
/// nothing), owner-only. Plain file I/O: call it off the store thread,
/// before the commit that records it; a crash in between leaves a file no
/// row names, never a row without its file.
pub fn write_attachment(
    state_dir: &Path,
    filename: Option<&str>,
    content_type: &str,
    content: &[u8],
) -> Result<StoredFile> {
    let hash = format!("{:x}", Sha256::digest(content));
    let kept = if content.len() <= INLINE_ATTACHMENT_MAX {
        Kept::Inline(content.to_vec())
    } else {
        Kept::File(write_file(state_dir, &hash, content)?)
    };
    Ok(StoredFile {
        filename: filename.map(str::to_string),
        content_type: content_type.to_string(),
        size: content.len() as i64,
        sha256: hash,
        kept,
    })
}

fn write_file(state_dir: &Path, hash: &str, content: &[u8]) -> Result<PathBuf> {
    let rel = Path::new("attachments").join(&hash[..2]).join(hash);
    let path = state_dir.join(&rel);
    if !path.exists() {
        let dir = path.parent().context("Attachment path has no parent")?;
        std::fs::create_dir_all(dir).with_context(|| format!("Creating {}", dir.display()))?;
        super::private(dir, 0o700)?;
        if let Some(top) = dir.parent() {
            super::private(top, 0o700)?;
        }
        let tmp = path.with_extension("tmp");
        if let Err(e) = std::fs::write(&tmp, content) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("Writing {}", tmp.display()));
        }
        super::private(&tmp, 0o600)?;
        std::fs::rename(&tmp, &path).with_context(|| format!("Renaming {}", tmp.display()))?;
    }
    Ok(rel)
}

pub fn insert_attachment(conn: &Connection, message: i64, f: &StoredFile) -> Result<()> {
    let (path, content) = match &f.kept {
        Kept::File(p) => (Some(p.to_string_lossy()), None),
        Kept::Inline(b) => (None, Some(b.as_slice())),
    };
    conn.prepare_cached(
        "INSERT INTO attachments (message_id, filename, content_type, size, sha256, path, content)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        message,
        f.filename,
        f.content_type,
        f.size,
        f.sha256,
        path,
        content,
    ])
    .context("Inserting attachment metadata")?;
    Ok(())
}
