//! The SQLite store: one owner thread, migrations, and every SQL
//! statement of the program, one module per table family behind typed
//! functions (nothing outside src/store/ writes SQL).
//!
//! SQLite allows one writer at a time, and rusqlite's `Connection` is not
//! `Sync`, so a single thread owns the connection and runs closures sent to
//! it (the chatmail-core pattern). Async callers `call` and await a oneshot;
//! no query is ever held across an `.await`, and blocking disk I/O never
//! runs on the tokio workers.

pub mod escalations;
pub mod health;
pub mod mailbox;
pub mod messages;
pub mod outbox;
pub mod report;
pub mod schema;
pub mod tickets;

use std::path::Path;
use std::sync::mpsc;

use anyhow::{Context, Result, anyhow};
use rusqlite::Connection;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// How every instant is stored: RFC 3339, UTC, whole seconds ("...Z"), so
/// text order is time order in SQL comparisons.
pub fn ts(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A stored instant back (any RFC 3339 offset accepted).
pub fn parse_ts(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// Starts a write transaction that takes the write lock at once
/// (`BEGIN IMMEDIATE`). A deferred one would start as a reader and fail
/// at its first write, without waiting, if a CLI command wrote between.
pub fn begin(conn: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
}

/// Restricts a path to its owner (`mode` 0700 for directories, 0600 for files).
pub fn private(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("Restricting {} to its owner", path.display()))
}

/// Changes whenever anything was written to the database since the last
/// call returned the same value: SQLite's data_version (commits by other
/// connections, the CLI) and this connection's own change count. A reader
/// that saw `version` before can trust what it read while it is unchanged.
pub fn version(conn: &Connection) -> Result<(i64, u64)> {
    let data: i64 = conn
        .query_row("PRAGMA data_version", [], |r| r.get(0))
        .context("Reading the data version")?;
    Ok((data, conn.total_changes()))
}

/// Whether an error comes from the machine rather than the message: disk
/// or quota full, I/O error, database busy or locked past the busy
/// timeout, out of memory. Such a failure pauses ingestion and is retried;
/// it never sets a message aside as poison.
pub fn is_transient(err: &anyhow::Error) -> bool {
    use rusqlite::ErrorCode as C;
    err.chain().any(|cause| {
        if let Some(rusqlite::Error::SqliteFailure(e, _)) = cause.downcast_ref::<rusqlite::Error>()
        {
            return matches!(
                e.code,
                C::DatabaseBusy
                    | C::DatabaseLocked
                    | C::DiskFull
                    | C::SystemIoFailure
                    | C::OutOfMemory
                    | C::CannotOpen
                    | C::ReadOnly
            );
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            // ENOSPC, EDQUOT, EIO, EROFS, ENOMEM
            return matches!(
                io.kind(),
                K::StorageFull | K::QuotaExceeded | K::ReadOnlyFilesystem | K::OutOfMemory
            ) || matches!(io.raw_os_error(), Some(5 | 28 | 30 | 122));
        }
        false
    })
}

#[derive(Clone)]
pub struct Store {
    tx: mpsc::Sender<Job>,
}

impl Store {
    /// Opens (creating if needed) the database, migrates it and starts the owner thread.
    pub fn open(path: &Path) -> Result<Store> {
        let mut conn = open_connection(path)?;
        schema::migrate(&mut conn)
            .with_context(|| format!("Migrating the database {}", path.display()))?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("store".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job(&mut conn);
                }
            })
            .context("Starting the store thread")?;
        Ok(Store { tx })
    }

    /// Runs `f` on the owner thread and awaits its result.
    pub async fn call<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R> + Send + 'static,
    {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.tx
            .send(Box::new(move |conn| {
                let _ = done.send(f(conn));
            }))
            .map_err(|_| anyhow!("The store thread has stopped"))?;
        wait.await
            .map_err(|_| anyhow!("The store thread dropped a request"))?
    }

    /// The same, for synchronous callers (CLI commands).
    pub fn call_blocking<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R> + Send + 'static,
    {
        let (done, wait) = mpsc::channel();
        self.tx
            .send(Box::new(move |conn| {
                let _ = done.send(f(conn));
            }))
            .map_err(|_| anyhow!("The store thread has stopped"))?;
        wait.recv()
            .map_err(|_| anyhow!("The store thread dropped a request"))?
    }
}

pub fn open_connection(path: &Path) -> Result<Connection> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("Creating the state directory {}", dir.display()))?;
    }
    let conn = Connection::open(path)
        .with_context(|| format!("Opening the database {}", path.display()))?;
    // WAL: readers (CLI) never block the daemon. synchronous=FULL: a
    // committed ticket survives a power cut, which is the promise of ingest.
    conn.pragma_update(None, "journal_mode", "WAL")
        .context("Setting WAL mode")?;
    conn.pragma_update(None, "synchronous", "FULL")
        .context("Setting synchronous=FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .context("Enabling foreign keys")?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .context("Setting the busy timeout")?;
    Ok(conn)
}
