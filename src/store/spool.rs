//! Raw messages kept on disk instead of in memory: a message above the
//! desk's `max_message_bytes` is written to `state_dir/raw/` as it comes
//! from its source (IMAP chunks, a Maildir file copied), so its size never
//! costs memory, and `messages.raw_path` names the file instead of the row
//! holding the bytes. Plain file I/O, no SQL: a source writes the file
//! before the commit that records it, so a crash in between leaves a file
//! no row names (fetched again, it lands on the same name), never a row
//! without its file.
//!
//! Files are named by their content (SHA-256) under `raw/<2 hex>/`, owner
//! only; a file being written lives in `raw/tmp/` until it is complete and
//! synced, and [`clean_tmp`] removes what a crash left there.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// The start of a spooled message kept in memory: enough for the header
/// block, which is all an oversized message is parsed for.
pub const HEAD: usize = 256 * 1024;

/// A message's raw bytes in a file of the state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFile {
    /// Relative to the state directory.
    pub path: PathBuf,
    pub len: u64,
    /// Its first [`HEAD`] bytes (all of it when shorter).
    pub head: Vec<u8>,
}

/// Where and above what size a source spools messages to disk.
#[derive(Debug, Clone)]
pub struct Spool {
    pub state_dir: PathBuf,
    /// Messages of more bytes than this go to disk (`max_message_bytes`).
    pub above: u64,
}

/// A message being written to disk.
pub struct Spooling {
    file: File,
    tmp: PathBuf,
    state_dir: PathBuf,
    hasher: Sha256,
    len: u64,
    head: Vec<u8>,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl Spool {
    /// Starts a file in `raw/tmp/`.
    pub fn start(&self) -> Result<Spooling> {
        let dir = self.state_dir.join("raw").join("tmp");
        std::fs::create_dir_all(&dir).with_context(|| format!("Creating {}", dir.display()))?;
        super::private(&dir, 0o700)?;
        super::private(&self.state_dir.join("raw"), 0o700)?;
        let tmp = dir.join(format!(
            "{}-{}.part",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let file = File::create(&tmp).with_context(|| format!("Creating {}", tmp.display()))?;
        super::private(&tmp, 0o600)?;
        Ok(Spooling {
            file,
            tmp,
            state_dir: self.state_dir.clone(),
            hasher: Sha256::new(),
            len: 0,
            head: Vec::new(),
        })
    }

    /// Copies a file (a Maildir message) into the spool, 1 MiB at a time.
    pub fn copy(&self, from: &Path) -> Result<RawFile> {
        let mut src = File::open(from).with_context(|| format!("Opening {}", from.display()))?;
        let mut w = self.start()?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    w.abandon();
                    return Err(e).with_context(|| format!("Reading {}", from.display()));
                }
            };
            w.write(&buf[..n])?;
        }
        w.finish()
    }
}

impl Spooling {
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if let Err(e) = self.file.write_all(bytes) {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(e).with_context(|| format!("Writing {}", self.tmp.display()));
        }
        self.hasher.update(bytes);
        if self.head.len() < HEAD {
            let take = (HEAD - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
        }
        self.len += bytes.len() as u64;
        crate::faults::fault_point("mid_spool");
        Ok(())
    }

    /// Syncs the file and moves it to its name by content. Blocking (the
    /// sync): call it off the async workers.
    pub fn finish(self) -> Result<RawFile> {
        let tmp = self.tmp.clone();
        let done = (|| {
            self.file
                .sync_all()
                .with_context(|| format!("Syncing {}", tmp.display()))?;
            let hash = format!("{:x}", self.hasher.finalize());
            let rel = Path::new("raw")
                .join(&hash[..2])
                .join(format!("{hash}.eml"));
            let path = self.state_dir.join(&rel);
            let dir = path.parent().context("Raw path has no parent")?;
            std::fs::create_dir_all(dir).with_context(|| format!("Creating {}", dir.display()))?;
            super::private(dir, 0o700)?;
            std::fs::rename(&tmp, &path)
                .with_context(|| format!("Renaming {} to {}", tmp.display(), path.display()))?;
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(RawFile {
                path: rel,
                len: self.len,
                head: self.head,
            })
        })();
        if done.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        done
    }

    /// Gives the file up (the message did not come whole).
    pub fn abandon(self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Removes what a crash left half-written in `raw/tmp/`. Call it with the
/// state directory's lock held, before any source starts.
pub fn clean_tmp(state_dir: &Path) -> Result<()> {
    let dir = state_dir.join("raw").join("tmp");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("Reading {}", dir.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("Reading {}", dir.display()))?;
        let path = entry.path();
        std::fs::remove_file(&path).with_context(|| format!("Removing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spooled_message_is_named_by_content_with_its_head() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool {
            state_dir: dir.path().to_path_buf(),
            above: 0,
        };
        let body: Vec<u8> = (0..(HEAD + 5000)).map(|i| (i % 251) as u8).collect();
        let mut w = spool.start().unwrap();
        for piece in body.chunks(7000) {
            w.write(piece).unwrap();
        }
        assert_eq!(w.len(), body.len() as u64);
        let f = w.finish().unwrap();
        assert_eq!(f.len, body.len() as u64);
        assert_eq!(f.head, body[..HEAD]);
        let hash = format!("{:x}", Sha256::digest(&body));
        assert_eq!(
            f.path,
            Path::new("raw")
                .join(&hash[..2])
                .join(format!("{hash}.eml"))
        );
        assert_eq!(std::fs::read(dir.path().join(&f.path)).unwrap(), body);
        // Nothing left in tmp; the same bytes again land on the same name.
        assert_eq!(
            std::fs::read_dir(dir.path().join("raw/tmp"))
                .unwrap()
                .count(),
            0
        );
        let src = dir.path().join("src.eml");
        std::fs::write(&src, &body).unwrap();
        assert_eq!(spool.copy(&src).unwrap(), f);
        // A half-written file is what clean_tmp removes.
        let mut w = spool.start().unwrap();
        w.write(b"From: a@b\r\n").unwrap();
        std::mem::forget(w);
        assert_eq!(
            std::fs::read_dir(dir.path().join("raw/tmp"))
                .unwrap()
                .count(),
            1
        );
        clean_tmp(dir.path()).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path().join("raw/tmp"))
                .unwrap()
                .count(),
            0
        );
    }
}
