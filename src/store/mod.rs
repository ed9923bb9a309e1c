//! The SQLite store: one owner thread, migrations, and every SQL
//! statement of the program, one module per table family behind typed
//! functions (nothing outside src/store/ writes SQL).
//!
//! SQLite allows one writer at a time, and rusqlite's `Connection` is not
//! `Sync`, so a single thread owns the connection and runs closures sent to
//! it (the chatmail-core pattern). Async callers `call` and await a oneshot;
//! no query is ever held across an `.await`, and blocking disk I/O never
//! runs on the tokio workers.
//!
//! The daemon opens the database with [`Store::open`] (creating and
//! migrating it, WAL mode). The offline commands never do: they read
//! through [`read_only`] and write through [`open_existing_rw`], which
//! leave the journal mode and the schema as the daemon set them.

pub mod digests;
pub mod escalations;
pub mod health;
pub mod mailbox;
pub mod messages;
pub mod outbox;
pub mod report;
pub mod schema;
pub mod spool;
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
    owner: std::sync::Arc<Owner>,
}

/// The owner thread, shared by every clone of a [`Store`]: dropping the
/// last clone closes the channel and waits for the thread to close the
/// connection (SQLite checkpoints and removes the -wal and -shm), so a
/// process that exits after it never stops midway through that close,
/// where a -wal with no -shm next to it is left for the next reader.
struct Owner {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    checkpointer: Option<std::thread::JoinHandle<()>>,
}

impl Owner {
    fn tx(&self) -> &mpsc::Sender<Job> {
        self.tx
            .as_ref()
            .expect("the sender lives as long as the owner")
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take()
            // A job holding the last clone ends on the store thread itself.
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
            // The store thread's end drops the checkpointer's wake.
            if let Some(checkpointer) = self.checkpointer.take() {
                let _ = checkpointer.join();
            }
        }
    }
}

impl Store {
    /// Opens (creating if needed) the database, migrates it and starts the owner thread.
    pub fn open(path: &Path) -> Result<Store> {
        let mut conn = open_connection(path)?;
        schema::migrate(&mut conn)
            .with_context(|| format!("Migrating the database {}", path.display()))?;
        // Checkpoints (copying the WAL into the database file, with its
        // fsync) run on a thread of their own, off the store thread that
        // every commit waits on: after each job that wrote, the store
        // thread wakes the checkpointer, which copies what it can without
        // blocking anyone (PASSIVE). SQLite's own automatic checkpoint
        // stays on this connection only as a backstop, at a larger log
        // ([`BACKSTOP_FRAMES`]); other writers keep theirs.
        conn.pragma_update(None, "wal_autocheckpoint", BACKSTOP_FRAMES)
            .context("Setting the store thread's own checkpoints")?;
        // A log that grew during a burst is cut back when it starts over.
        conn.pragma_update(None, "journal_size_limit", BACKSTOP_FRAMES * 4096)
            .context("Limiting the WAL's size")?;
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        let checkpointer = checkpointer(path, woken)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("store".into())
            .spawn(move || {
                let mut changes = conn.total_changes();
                while let Ok(job) = rx.recv() {
                    job(&mut conn);
                    let total = conn.total_changes();
                    if total != changes {
                        changes = total;
                        // Full: a wake is pending already.
                        let _ = wake.try_send(());
                    }
                }
            })
            .context("Starting the store thread")?;
        Ok(Store {
            owner: std::sync::Arc::new(Owner {
                tx: Some(tx),
                thread: Some(thread),
                checkpointer: Some(checkpointer),
            }),
        })
    }

    /// Runs `f` on the owner thread and awaits its result.
    pub async fn call<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R> + Send + 'static,
    {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.owner
            .tx()
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
        self.owner
            .tx()
            .send(Box::new(move |conn| {
                let _ = done.send(f(conn));
            }))
            .map_err(|_| anyhow!("The store thread has stopped"))?;
        wait.recv()
            .map_err(|_| anyhow!("The store thread dropped a request"))?
    }
}

/// WAL frames (of a 4 KiB page each, 32 MiB) past which the store
/// thread checkpoints itself after a commit. The checkpointer's PASSIVE
/// checkpoints never stop the writer, so under commits back to back they
/// may never catch up with the last one, and SQLite starts the log over
/// only once it is all copied; the writer's own checkpoint copies what
/// is left, and its next transaction starts the log over.
const BACKSTOP_FRAMES: i64 = 8192;

/// The checkpointer: its own connection, one PASSIVE checkpoint per
/// wake. A failed checkpoint is logged and the next wake tries again
/// (the WAL only grows meanwhile, up to the store thread's backstop);
/// the thread ends with the store thread.
fn checkpointer(path: &Path, woken: mpsc::Receiver<()>) -> Result<std::thread::JoinHandle<()>> {
    let conn = Connection::open(path)
        .with_context(|| format!("Opening the database {} to checkpoint", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .context("Setting the busy timeout")?;
    std::thread::Builder::new()
        .name("checkpoint".into())
        .spawn(move || {
            while woken.recv().is_ok() {
                let done =
                    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0));
                if let Err(e) = done {
                    tracing::warn!("Checkpointing the database failed: {e}");
                }
            }
        })
        .context("Starting the checkpoint thread")
}

/// The daemon's connection: creates the database when missing and sets
/// its journal mode.
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
    writer_settings(&conn)?;
    Ok(conn)
}

/// What every writing connection needs: durable commits, foreign keys,
/// and a wait (rather than an error) while another process writes.
fn writer_settings(conn: &Connection) -> Result<()> {
    conn.pragma_update(None, "synchronous", "FULL")
        .context("Setting synchronous=FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .context("Enabling foreign keys")?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .context("Setting the busy timeout")?;
    Ok(())
}

/// How [`read_only`] opens the database, from the files next to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadMode {
    /// WAL mode with its -wal and -shm (a daemon has the database open, or
    /// one was killed): the -shm is only read (`readonly_shm`), never
    /// created or written; SQLite reads the WAL itself where it cannot
    /// publish a read mark.
    WalShared,
    /// WAL mode without a -wal (or with an empty one and no -shm):
    /// nothing has it open and everything committed is in the main file.
    /// Read as `immutable`, since a read-only connection would otherwise
    /// create the -wal and -shm; the files are compared before and after,
    /// to read again if a writer started in between.
    WalQuiet,
    /// A rollback journal (someone changed the mode): a plain read-only
    /// connection, which creates nothing and locks as usual.
    Rollback,
}

/// What [`read_only`] compares before and after a quiet read.
#[derive(Debug, PartialEq, Eq)]
struct FileState {
    mode: ReadMode,
    db: (u64, u64, i64, i64),
    shm: bool,
    wal: Option<u64>,
}

fn file_state(path: &Path) -> Result<FileState> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let side = |suffix: &str| {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        std::fs::metadata(std::path::PathBuf::from(p)).ok()
    };
    let mut f = std::fs::File::open(path)
        .with_context(|| format!("Opening the database {}", path.display()))?;
    let meta = f
        .metadata()
        .with_context(|| format!("Reading {}", path.display()))?;
    // Bytes 18 and 19 of the header are 2 in WAL mode, 1 with a rollback
    // journal (https://www.sqlite.org/fileformat2.html#database_header).
    let mut header = [0u8; 20];
    let wal = f.read_exact(&mut header).is_ok() && header[18] == 2 && header[19] == 2;
    let shm = side("-shm").is_some();
    // A live WAL database always has its -wal: SQLite deletes it only at
    // the last close, after a full checkpoint.
    let wal_len = side("-wal").map(|m| m.len());
    let mode = match (wal, wal_len, shm) {
        (false, ..) => ReadMode::Rollback,
        (true, None, _) | (true, Some(0), false) => ReadMode::WalQuiet,
        (true, Some(_), true) => ReadMode::WalShared,
        (true, Some(_), false) => anyhow::bail!(
            "The database {} has a write-ahead log but no -shm index next to it: \
             start the daemon once so it recovers the log, then run this again",
            path.display()
        ),
    };
    Ok(FileState {
        mode,
        db: (meta.ino(), meta.len(), meta.mtime(), meta.mtime_nsec()),
        shm,
        wal: wal_len,
    })
}

/// `path` as an SQLite URI with its query parameters.
fn uri(path: &Path, params: &str) -> Result<String> {
    let text = path
        .to_str()
        .with_context(|| format!("The database path {} is not UTF-8", path.display()))?;
    let mut out = String::from("file:");
    for c in text.chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3f"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out.push('?');
    out.push_str(params);
    Ok(out)
}

/// Runs `read` on a read-only connection to the existing database at
/// `path`, for the offline commands (`status`, `tickets list|show`,
/// `stats`), next to a running daemon or not, as its user or as root. It
/// creates no file (no -wal, no -shm, no journal), takes no write lock,
/// runs no migration and never changes the journal mode.
pub fn read_only<R>(path: &Path, read: impl Fn(&Connection) -> Result<R>) -> Result<R> {
    use rusqlite::OpenFlags as F;
    const ATTEMPTS: usize = 5;
    for _ in 0..ATTEMPTS {
        let before = file_state(path)?;
        let params = match before.mode {
            ReadMode::WalShared => "mode=ro&readonly_shm=1",
            ReadMode::WalQuiet => "mode=ro&immutable=1",
            ReadMode::Rollback => "mode=ro",
        };
        let result = (|| {
            let conn = Connection::open_with_flags(
                uri(path, params)?,
                F::SQLITE_OPEN_READ_ONLY | F::SQLITE_OPEN_URI | F::SQLITE_OPEN_NO_MUTEX,
            )
            .with_context(|| format!("Opening the database {} read-only", path.display()))?;
            conn.busy_timeout(std::time::Duration::from_secs(30))
                .context("Setting the busy timeout")?;
            schema::check_version(&conn, path)?;
            read(&conn)
        })();
        // An immutable read trusts the file not to change: if a process
        // opened the database meanwhile, read again the shared way.
        if before.mode != ReadMode::WalQuiet || file_state(path)? == before {
            return result;
        }
    }
    anyhow::bail!(
        "The database {} kept changing during {ATTEMPTS} reads; try again",
        path.display()
    )
}

/// A read-write connection to the existing database at `path`, for the
/// offline commands that write (`tickets close|respond|priority`): the
/// database must exist and be at this binary's schema version; its journal
/// mode is left as it is (WAL, set by the daemon), so they go through
/// SQLite's own locking next to a running daemon. As root, SQLite gives a
/// -wal or -shm it creates the database file's owner.
pub fn open_existing_rw(path: &Path) -> Result<Connection> {
    use rusqlite::OpenFlags as F;
    let conn =
        Connection::open_with_flags(path, F::SQLITE_OPEN_READ_WRITE | F::SQLITE_OPEN_NO_MUTEX)
            .with_context(|| format!("Opening the database {}", path.display()))?;
    writer_settings(&conn)?;
    schema::check_version(&conn, path)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Commits back to back, with no pause for the checkpointer to catch
    /// up: the log still starts over, so the WAL stays near
    /// [`BACKSTOP_FRAMES`] instead of holding everything written.
    #[test]
    fn the_wal_starts_over_under_commits_back_to_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = Store::open(&path).unwrap();
        store
            .call_blocking(|c| Ok(c.execute_batch("CREATE TABLE blobs (b BLOB NOT NULL)")?))
            .unwrap();
        let wal = dir.path().join("s.db-wal");
        let limit = BACKSTOP_FRAMES as u64 * 4096;
        let mut largest = 0;
        // 400 commits of 256 KiB: 100 MiB through the log.
        for _ in 0..400 {
            store
                .call_blocking(|c| {
                    c.execute("INSERT INTO blobs (b) VALUES (zeroblob(262144))", [])?;
                    Ok(())
                })
                .unwrap();
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        }
        assert!(largest < 2 * limit, "the WAL grew to {largest} bytes");
    }
}
