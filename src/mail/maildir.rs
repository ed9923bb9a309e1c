//! Maildir mailbox source: what a local MTA delivers into.
//!
//! A message's identity is its unique file name (the part before `:2,`),
//! so renames by a mail client never make it look new. Received time is the
//! file's modification time, i.e. the delivery. After commit the file moves
//! from new/ to cur/ with the Seen flag, unless `mark = false` (the demo
//! leaves its shipped Maildir untouched and relies on the database alone).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use super::Source;
use crate::ingest::{Action, Analysed, Incoming, Outcome, Raw};
use crate::store::spool::Spool;

const POLL: Duration = Duration::from_secs(2);
/// Messages per transaction.
const BATCH: usize = 100;
/// Bytes held in memory per transaction (a file above it is a batch alone).
const BATCH_BYTES: u64 = 32 << 20;

fn is_not_found(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
    })
}

pub async fn run(src: &Source, path: &Path, mark: bool) -> Result<()> {
    let name = src.name.as_str();
    let mut last_error: Option<String> = None;
    while !src.shutdown.is_cancelled() {
        let result = pass(src, path, mark).await;
        match result {
            Ok(_) => {
                src.record_health(None).await;
                if last_error.take().is_some() {
                    tracing::info!(mailbox = name, "Maildir readable again");
                }
            }
            Err(e) => {
                // Recorded (and logged) once per state change: with the
                // database locked or full, the health write would fail and
                // warn on every pass too.
                if let Some(msg) =
                    super::log_failure(name, "Maildir pass failed", &e, &mut last_error)
                {
                    src.record_health(Some(msg)).await;
                }
            }
        }
        src.first_pass_done();
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = src.shutdown.cancelled() => {}
        }
    }
    Ok(())
}

struct Candidate {
    path: PathBuf,
    key: String,
    delivered: DateTime<Utc>,
    size: u64,
}

/// One pass over new/ and the unseen part of cur/, oldest delivery first.
pub async fn pass(src: &Source, path: &Path, mark: bool) -> Result<Vec<Outcome>> {
    let known: HashSet<String> = src.known_keys().await?;

    let dir = path.to_path_buf();
    let mut candidates = tokio::task::spawn_blocking(move || list(&dir))
        .await
        .context("Listing the Maildir")??;
    candidates.sort_by(|a, b| a.delivered.cmp(&b.delivered).then(a.key.cmp(&b.key)));

    let mut outcomes = Vec::new();
    let mut skipped = 0usize;
    let mut fresh = Vec::new();
    let mut unmarked = Vec::new();
    for c in candidates {
        if known.contains(&c.key) {
            skipped += 1;
            unmarked.push(c.path);
        } else {
            fresh.push(c);
        }
    }
    // Committed before a stop that came before their mark.
    mark_all(mark, unmarked).await?;
    // Batches of at most BATCH files and BATCH_BYTES bytes held in memory,
    // one transaction each; files are marked only once their batch is
    // committed. A file above the desk's max_message_bytes is copied to
    // the spool instead of read: it costs disk, not memory. Batch N+1 is
    // read and analysed, and batch N-1 marked, while batch N commits.
    let spool = src.spool();
    let mut fresh = fresh.into_iter();
    let mut committing: Option<(Vec<Analysed>, Vec<PathBuf>)> = None;
    let mut committed: Vec<PathBuf> = Vec::new();
    loop {
        let prev = committing.take();
        let out = &mut outcomes;
        let commit = async move {
            let Some((batch, paths)) = prev else {
                return Ok(Vec::new());
            };
            out.extend(src.commit(batch).await?);
            Ok::<_, anyhow::Error>(paths)
        };
        let marks = mark_all(mark, std::mem::take(&mut committed));
        let read = async {
            let (batch, paths) = read_batch(src, &mut fresh, &spool).await?;
            if batch.is_empty() {
                return Ok(None);
            }
            Ok::<_, anyhow::Error>(Some((src.analyse(batch).await?, paths)))
        };
        let (done, marked, next) = tokio::join!(commit, marks, read);
        marked?;
        committed = done?;
        match next {
            Ok(Some(n)) => committing = Some(n),
            Ok(None) => break,
            Err(e) => {
                // What committed is marked all the same (else the next
                // pass marks it, as for a stop between commit and mark).
                let _ = mark_all(mark, committed).await;
                return Err(e);
            }
        }
    }
    mark_all(mark, committed).await?;
    outcomes.extend((0..skipped).map(|_| Outcome {
        action: Action::AlreadyDone,
        ticket: None,
        queued_ack: false,
    }));
    Ok(outcomes)
}

/// Marks committed files seen, off the worker thread (which also drives
/// the next read).
async fn mark_all(mark: bool, paths: Vec<PathBuf>) -> Result<()> {
    if !mark || paths.is_empty() {
        return Ok(());
    }
    tokio::task::spawn_blocking(move || paths.iter().try_for_each(|p| mark_seen(p)))
        .await
        .context("Marking Maildir files seen")?
}

/// Reads the next batch of `fresh`: at most [`BATCH`] files and
/// [`BATCH_BYTES`] bytes by their listed size (a file above it is a batch
/// alone), with the paths to mark once it is committed. Empty at the end,
/// or at shutdown. The files are read in one blocking task: a hop to the
/// blocking pool per file cost more than the read.
async fn read_batch(
    src: &Source,
    fresh: &mut std::vec::IntoIter<Candidate>,
    spool: &Spool,
) -> Result<(Vec<Incoming>, Vec<PathBuf>)> {
    loop {
        let mut picked = Vec::new();
        let mut bytes = 0u64;
        while picked.len() < BATCH && bytes < BATCH_BYTES {
            if src.shutdown.is_cancelled() {
                break;
            }
            let Some(c) = fresh.next() else {
                break;
            };
            if c.size <= spool.above {
                bytes += c.size;
            }
            picked.push(c);
        }
        if picked.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let (spool, mailbox) = (spool.clone(), src.name.clone());
        let read = tokio::task::spawn_blocking(move || read_files(picked, &spool, &mailbox))
            .await
            .context("Reading Maildir files")??;
        // All of them moved away meanwhile: not the end of the pass.
        if !read.0.is_empty() {
            return Ok(read);
        }
    }
}

/// The files of one batch, read (or, above the spool's threshold, copied
/// to the spool); a file moved away by someone else between listing and
/// reading is left out.
fn read_files(
    picked: Vec<Candidate>,
    spool: &Spool,
    mailbox: &str,
) -> Result<(Vec<Incoming>, Vec<PathBuf>)> {
    let mut batch = Vec::with_capacity(picked.len());
    let mut paths = Vec::with_capacity(picked.len());
    for c in picked {
        let raw = if c.size > spool.above {
            match spool.copy(&c.path) {
                Ok(f) => Raw::File(f),
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(e).context("Spooling a Maildir file"),
            }
        } else {
            match std::fs::read(&c.path) {
                Ok(raw) => Raw::Bytes(raw),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("Reading {}", c.path.display())),
            }
        };
        batch.push(Incoming {
            mailbox: mailbox.to_string(),
            source_key: c.key,
            uidvalidity: None,
            uid: None,
            received_at: c.delivered,
            raw,
        });
        paths.push(c.path);
    }
    Ok((batch, paths))
}

fn list(dir: &Path) -> Result<Vec<Candidate>> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        let d = dir.join(sub);
        for entry in std::fs::read_dir(&d).with_context(|| format!("Reading {}", d.display()))? {
            let entry = entry.with_context(|| format!("Reading {}", d.display()))?;
            let file_name = entry.file_name();
            let Some(fname) = file_name.to_str() else {
                continue;
            };
            if fname.starts_with('.') {
                continue;
            }
            let (key, flags) = match fname.split_once(":2,") {
                Some((k, f)) => (k, f),
                None => (fname, ""),
            };
            if sub == "cur" && flags.contains('S') {
                continue;
            }
            let meta = entry
                .metadata()
                .with_context(|| format!("Stat {}", entry.path().display()))?;
            if !meta.is_file() {
                continue;
            }
            let delivered = meta
                .modified()
                .map(DateTime::<Utc>::from)
                .unwrap_or_else(|_| crate::clock::now());
            out.push(Candidate {
                path: entry.path(),
                key: key.to_string(),
                delivered,
                size: meta.len(),
            });
        }
    }
    Ok(out)
}

/// new/X -> cur/X:2,S ; cur/X:2,FLAGS -> cur/X:2,FLAGSS
fn mark_seen(path: &Path) -> Result<()> {
    let (Some(dir), Some(fname)) = (
        path.parent().and_then(Path::parent),
        path.file_name().and_then(|f| f.to_str()),
    ) else {
        return Ok(());
    };
    let target = match fname.split_once(":2,") {
        Some((k, flags)) => {
            let mut f: Vec<char> = flags.chars().chain(['S']).collect();
            f.sort_unstable();
            f.dedup();
            format!("{k}:2,{}", f.into_iter().collect::<String>())
        }
        None => format!("{fname}:2,S"),
    };
    let to = dir.join("cur").join(target);
    match std::fs::rename(path, &to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("Moving {} to {}", path.display(), to.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::mark_seen;

    /// Seen is a rename: new/ to cur/ with ":2,S", flags kept in order,
    /// and a file another client renamed meanwhile is no error.
    #[test]
    fn mark_seen_renames_as_the_maildir_spec_says() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let new = dir.path().join("new/1700000000.a.host");
        std::fs::write(&new, "x").unwrap();
        mark_seen(&new).unwrap();
        assert!(!new.exists());
        assert!(dir.path().join("cur/1700000000.a.host:2,S").is_file());

        let flagged = dir.path().join("cur/1700000001.b.host:2,RF");
        std::fs::write(&flagged, "y").unwrap();
        mark_seen(&flagged).unwrap();
        assert!(dir.path().join("cur/1700000001.b.host:2,FRS").is_file());

        // Seen already: the same name.
        let seen = dir.path().join("cur/1700000002.c.host:2,S");
        std::fs::write(&seen, "z").unwrap();
        mark_seen(&seen).unwrap();
        assert!(seen.is_file());

        // Gone (another client moved it): nothing to do.
        mark_seen(&dir.path().join("new/1700000003.d.host")).unwrap();
    }
}
