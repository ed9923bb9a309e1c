//! Shared by the integration tests and the benchmarks: a private mail
//! stack per test (tests/mailstack/mailstack.sh), configs, the binary,
//! and small helpers. Each test binary uses a part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use rusqlite::Connection;

pub const BIN: &str = env!("CARGO_BIN_EXE_supportdesk");
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

// ------------------------------------------------------------ the stack

pub struct Stack {
    pub dir: tempfile::TempDir,
    pub imap: u16,
    pub imaps: u16,
    pub submission: u16,
    pub smtps: u16,
    /// Plain SMTP, no AUTH, relay from loopback.
    pub smtp: u16,
    pub ca: PathBuf,
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(format!("{ROOT}/tests/mailstack/mailstack.sh"))
            .arg("stop")
            .arg(self.dir.path().join("stack"))
            .output();
    }
}

pub static NEXT_BLOCK: AtomicU16 = AtomicU16::new(0);

/// Five consecutive free ports, different for every test of this process
/// and, by the pid, very likely of any other process.
pub fn free_base() -> u16 {
    loop {
        let n = NEXT_BLOCK.fetch_add(1, Ordering::SeqCst);
        let base = 20_000 + ((std::process::id() as u16 % 400) * 80 + n * 10) % 40_000;
        if (base..base + 5).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
}

pub fn start_stack() -> Stack {
    let dir = tempfile::tempdir().unwrap();
    let stack_dir = dir.path().join("stack");
    for _attempt in 0..3 {
        let base = free_base();
        let out = Command::new("bash")
            .arg(format!("{ROOT}/tests/mailstack/mailstack.sh"))
            .arg("start")
            .arg(&stack_dir)
            .arg(base.to_string())
            .output()
            .unwrap();
        if !out.status.success() {
            eprintln!(
                "mailstack start on {base} failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let _ = Command::new("bash")
                .arg(format!("{ROOT}/tests/mailstack/mailstack.sh"))
                .arg("stop")
                .arg(&stack_dir)
                .output();
            let _ = std::fs::remove_dir_all(&stack_dir);
            continue;
        }
        let vars = String::from_utf8_lossy(&out.stdout).to_string();
        let get = |k: &str| -> String {
            vars.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap_or_else(|| panic!("mailstack did not print {k}: {vars}"))
                .trim()
                .to_string()
        };
        return Stack {
            imap: get("IMAP_PORT").parse().unwrap(),
            imaps: get("IMAPS_PORT").parse().unwrap(),
            submission: get("SUBMISSION_PORT").parse().unwrap(),
            smtps: get("SMTPS_PORT").parse().unwrap(),
            smtp: get("SMTP_PORT").parse().unwrap(),
            ca: PathBuf::from(get("CA_FILE")),
            dir,
        };
    }
    panic!("could not start the mail stack");
}

// ------------------------------------------------------------ IMAP client for the test side

pub type Session = async_imap::Session<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

pub async fn imap_login(stack: &Stack, user: &str, pass: &str) -> Session {
    let settings = supportdesk::config::ImapSettings {
        host: "localhost".into(),
        port: stack.imaps,
        tls: supportdesk::config::Tls::Implicit,
        username: user.into(),
        login: supportdesk::config::Login::Password(secret(pass)),
        ca_file: Some(stack.ca.clone()),
        folder: "INBOX".into(),
        poll_interval: Duration::from_secs(1),
        idle: false,
        timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(60),
        move_to: None,
        max_fetch_bytes: supportdesk::config::DEFAULT_MAX_FETCH_BYTES,
    };
    supportdesk::mail::imap::connect(&settings).await.unwrap()
}

pub fn secret(s: &str) -> supportdesk::config::Secret {
    supportdesk::config::Secret::new(s.to_string())
}

pub async fn append(session: &mut Session, raw: &str) {
    session
        .append("INBOX", None, None, raw.replace('\n', "\r\n").as_bytes())
        .await
        .unwrap();
}

/// Every message in sink's INBOX once there are at least `n` (or after a
/// minute), two seconds after the n-th arrived.
pub async fn sink_messages(stack: &Stack, n: usize) -> Vec<Vec<u8>> {
    let first = sink_messages_within(stack, n, Duration::from_secs(60)).await;
    if first.len() < n {
        return first;
    }
    // Then a moment more, and everything there: a test asserting exactly
    // `n` also sees a late duplicate (a resend) rather than returning at
    // the n-th mail.
    tokio::time::sleep(Duration::from_secs(2)).await;
    sink_messages_within(stack, 0, Duration::ZERO).await
}

/// The same, giving up after `wait` (to check that nothing more arrives).
pub async fn sink_messages_within(stack: &Stack, n: usize, wait: Duration) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + wait;
    loop {
        let mut s = imap_login(stack, "sink", "sinkpw").await;
        let mb = s.select("INBOX").await.unwrap();
        let mut out = Vec::new();
        if mb.exists > 0 {
            let fetches: Vec<_> = s
                .fetch("1:*", "BODY.PEEK[]")
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            out = fetches
                .iter()
                .filter_map(|f| f.body().map(<[u8]>::to_vec))
                .collect();
        }
        let _ = s.logout().await;
        if out.len() >= n || Instant::now() > deadline {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A loopback port free a moment ago (for a listener the daemon binds).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The Message-IDs at the sink once there are at least `n` distinct ones
/// (or after `wait`). At least once means a resend may arrive beside its
/// original: counting mails would call four mails with a duplicate four
/// acknowledgements.
pub async fn sink_message_ids_within(
    stack: &Stack,
    n: usize,
    wait: Duration,
) -> std::collections::BTreeSet<Option<String>> {
    let deadline = Instant::now() + wait;
    loop {
        let ids: std::collections::BTreeSet<_> =
            parsed(&sink_messages_within(stack, 0, Duration::ZERO).await)
                .into_iter()
                .map(|m| m.message_id)
                .collect();
        if ids.len() >= n || Instant::now() > deadline {
            return ids;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// How many times Postfix took in a message with this Message-ID (its
/// cleanup logs each queued message's ID once): what our outbox sent,
/// whatever Postfix's own redeliveries later put in a mailbox.
pub fn postfix_accepted(stack: &Stack, message_id: &str) -> usize {
    let log =
        std::fs::read_to_string(stack.dir.path().join("stack/postfix/maillog")).unwrap_or_default();
    let needle = format!(": message-id=<{}>", message_id.trim_matches(['<', '>']));
    log.lines().filter(|l| l.ends_with(&needle)).count()
}

/// Postfix retries its deferred mail now (`postqueue -f`), for a test that
/// restarted the Dovecot it delivers to and then waits for the mail.
pub fn postfix_flush(stack: &Stack) {
    let _ = Command::new("postqueue")
        .arg("-c")
        .arg(stack.dir.path().join("stack/postfix"))
        .arg("-f")
        .status();
}

/// Postfix's log lines about a message (its queue ID's lines, found by the
/// Message-ID), for a failure message when a mail did not arrive.
pub fn postfix_trail(stack: &Stack, message_id: &str) -> String {
    let log =
        std::fs::read_to_string(stack.dir.path().join("stack/postfix/maillog")).unwrap_or_default();
    let needle = format!(": message-id=<{}>", message_id.trim_matches(['<', '>']));
    let queue_ids: Vec<&str> = log
        .lines()
        .filter(|l| l.ends_with(&needle))
        .filter_map(|l| l.split(": ").nth(1))
        .collect();
    log.lines()
        .filter(|l| queue_ids.iter().any(|q| l.contains(&format!(" {q}: "))))
        .collect::<Vec<_>>()
        .join("\n")
}

// ------------------------------------------------------------ config and binary

/// An example config's policy (priorities, categories, [sla], [triage]),
/// without its desk, mailboxes and outbox.
pub fn example_parts(name: &str) -> String {
    let text = std::fs::read_to_string(format!("{ROOT}/config/examples/{name}.toml")).unwrap();
    let mut t: toml::Table = toml::from_str(&text).unwrap();
    t.retain(|k, _| matches!(k, "priorities" | "categories" | "sla" | "triage"));
    toml::to_string(&t).unwrap()
}

/// A desk on the stack: IMAP mailbox `support` (STARTTLS or implicit TLS),
/// SMTP submission (STARTTLS + AUTH) or SMTPS.
pub fn write_config(stack: &Stack, implicit: bool) -> PathBuf {
    write_config_with(stack, implicit, "")
}

/// `write_config`, with `extra` TOML appended (agents, escalation, customers).
pub fn write_config_with(stack: &Stack, implicit: bool, extra: &str) -> PathBuf {
    let dir = stack.dir.path();
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    for (f, v) in [("imap", "supportpw"), ("smtp", "supportpw")] {
        let p = dir.join("secrets").join(f);
        std::fs::write(&p, v).unwrap();
        std::os::unix::fs::PermissionsExt::set_mode(
            &mut std::fs::metadata(&p).unwrap().permissions(),
            0o600,
        );
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    let (imap_port, imap_tls, smtp_port, smtp_tls) = if implicit {
        (stack.imaps, "implicit", stack.smtps, "implicit")
    } else {
        (stack.imap, "starttls", stack.submission, "starttls")
    };
    let cfg = format!(
        r#"{parts}
[desk]
name = "Test Desk"
address = "Test Desk <support@desk.test>"
reference_prefix = "SUP"
state_dir = "state"
templates_dir = "{root}/templates"

[[mailboxes]]
name = "support"
kind = "imap"
host = "localhost"
port = {imap_port}
tls = "{imap_tls}"
username = "support"
password_file = "secrets/imap"
ca_file = "{ca}"
poll_interval = "1s"

[outbox]
kind = "smtp"
host = "localhost"
port = {smtp_port}
tls = "{smtp_tls}"
username = "support"
password_file = "secrets/smtp"
ca_file = "{ca}"
{extra}
"#,
        parts = example_parts("zmanda"),
        root = ROOT,
        ca = stack.ca.display(),
    );
    let path = dir.join("supportdesk.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

/// The `[trust]` section of a desk behind the tests' border MTA,
/// "mx.desk.test", which checks DKIM/DMARC and stamps its verdict on top.
pub const TRUST: &str = "\n[trust]\nauthserv_id = [\"mx.desk.test\"]\n";

/// What that MTA stamps on a mail it authenticated as from `domain`: the
/// line to put on top of the message (agents' commands and plan claims
/// count only then).
pub fn stamp(domain: &str) -> String {
    format!(
        "Authentication-Results: mx.desk.test; dkim=pass header.d={domain}; dmarc=pass header.from={domain}\n"
    )
}

pub fn run(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config").arg(config).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Like [`run`], but the process is killed, and the test fails naming
/// `what`, if it has not ended within `limit` (a pass that hangs). Its
/// output goes through files beside the config, read back once it ends.
pub fn run_bounded(
    config: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    limit: Duration,
    what: &str,
) -> Output {
    let dir = config.parent().unwrap();
    let (out_path, err_path) = (dir.join("run.stdout"), dir.join("run.stderr"));
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what}: still running after {limit:?}, killed; its log:\n{}",
                String::from_utf8_lossy(&std::fs::read(&err_path).unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: std::fs::read(&out_path).unwrap(),
        stderr: std::fs::read(&err_path).unwrap(),
    }
}

/// `run --once`, which must succeed.
pub fn run_once_ok(config: &Path) -> Output {
    let out = run(config, &["run", "--once"], &[]);
    assert!(
        out.status.success(),
        "run --once failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn db(config: &Path) -> Connection {
    Connection::open(config.parent().unwrap().join("state/supportdesk.db")).unwrap()
}

pub fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

pub fn customer_mail(n: usize, from: &str, subject: &str, body: &str) -> String {
    format!(
        "From: Customer {n} <{from}>\nTo: support@desk.test\nSubject: {subject}\nMessage-ID: <cust-{n}@example.com>\nDate: Mon, 16 Nov 2026 10:00:00 +0100\nContent-Type: text/plain; charset=utf-8\n\n{body}\n"
    )
}

/// APPEND with an INTERNALDATE `ago` in the past: the server's arrival
/// time, which is what the desk counts from.
pub async fn append_at(session: &mut Session, raw: &str, ago: chrono::TimeDelta) {
    let when = (chrono::Utc::now() - ago)
        .format("\"%d-%b-%Y %H:%M:%S +0000\"")
        .to_string();
    session
        .append(
            "INBOX",
            None,
            Some(&when),
            raw.replace('\n', "\r\n").as_bytes(),
        )
        .await
        .unwrap();
}

/// APPEND with the INTERNALDATE `at`.
pub async fn append_on(session: &mut Session, raw: &str, at: chrono::DateTime<chrono::Utc>) {
    let when = at.format("\"%d-%b-%Y %H:%M:%S +0000\"").to_string();
    session
        .append(
            "INBOX",
            None,
            Some(&when),
            raw.replace('\n', "\r\n").as_bytes(),
        )
        .await
        .unwrap();
}

/// `run --once` with the test clock (debug builds) set to `now`.
pub fn run_once_at(config: &Path, now: &str) -> Output {
    let out = run(
        config,
        &["run", "--once"],
        &[("SUPPORTDESK_TEST_CLOCK", now)],
    );
    assert!(
        out.status.success(),
        "run --once at {now} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn parsed(raws: &[Vec<u8>]) -> Vec<supportdesk::core::inbound::ParsedMail> {
    raws.iter()
        .map(|r| supportdesk::core::inbound::parse(r).unwrap())
        .collect()
}

pub fn maildir(root: &Path, name: &str) -> PathBuf {
    let p = root.join(name);
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(p.join(sub)).unwrap();
    }
    p
}

pub fn deliver(md: &Path, n: usize, from: &str) {
    let raw = format!(
        "From: {from}\nTo: support@desk.test\nSubject: Question {n}\nMessage-ID: <q{n}@reload.test>\n\nHow do I configure retention?\n"
    );
    let tmp = md.join("tmp").join(format!("{n}.reload"));
    std::fs::write(&tmp, raw).unwrap();
    std::fs::rename(&tmp, md.join("new").join(format!("{n}.reload"))).unwrap();
}

pub fn maildir_config(dir: &Path, mailboxes: &[&str]) -> String {
    let mut boxes = String::new();
    for m in mailboxes {
        boxes += &format!("[[mailboxes]]\nname = \"{m}\"\nkind = \"maildir\"\npath = \"{m}\"\n\n");
    }
    format!(
        "{parts}\n[desk]\nname = \"Reload Desk\"\naddress = \"support@desk.test\"\nstate_dir = \"state\"\ntemplates_dir = \"{ROOT}/templates\"\n\n{boxes}[outbox]\nkind = \"directory\"\npath = \"{out}\"\n",
        parts = example_parts("zmanda"),
        out = dir.join("out").display(),
    )
}

pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Says on the terminal, past the test harness's capture (which takes
/// only the print macros), that a test did not run.
pub fn skip_loudly(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED {test}: {why} ***\n");
}

pub fn corpus_files() -> (Vec<PathBuf>, bool) {
    let required = std::env::var_os("SUPPORTDESK_CORPUS");
    let dir = required
        .clone()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("{ROOT}/target/spam-assassin/package/data")));
    let mut files = Vec::new();
    for sub in std::fs::read_dir(&dir).into_iter().flatten() {
        let sub = sub.unwrap().path();
        if sub.is_dir() {
            for f in std::fs::read_dir(&sub).unwrap() {
                let f = f.unwrap().path();
                if f.extension().is_some_and(|x| x == "txt") {
                    files.push(f);
                }
            }
        }
    }
    files.sort();
    (files, required.is_some())
}

/// Delivers files straight into a Dovecot user's Maildir (what an MTA
/// does; APPEND of 6,000 messages takes ~20 s, this a second).
pub fn deliver_to_dovecot(stack: &Stack, user: &str, files: &[PathBuf]) {
    let md = stack.dir.path().join(format!("stack/mail/{user}/Maildir"));
    let owner = std::fs::metadata(stack.dir.path().join("stack/mail")).unwrap();
    for (i, f) in files.iter().enumerate() {
        let dest = md
            .join("new")
            .join(format!("{}.M{i}P1.corpus", 1_700_000_000 + i));
        std::fs::copy(f, &dest).unwrap();
        std::os::unix::fs::chown(
            &dest,
            Some(std::os::unix::fs::MetadataExt::uid(&owner)),
            Some(std::os::unix::fs::MetadataExt::gid(&owner)),
        )
        .unwrap();
    }
}

/// Writes one message straight into a Dovecot user's Maildir `new/`, named
/// as Dovecot's own delivery names it (`S=` and `W=` give the size, so the
/// server need not read the file to answer RFC822.SIZE; `raw` uses CRLF).
pub fn deliver_raw_to_dovecot(stack: &Stack, user: &str, n: usize, raw: &[u8]) {
    let md = stack.dir.path().join(format!("stack/mail/{user}/Maildir"));
    let owner = std::fs::metadata(stack.dir.path().join("stack/mail")).unwrap();
    // Created as Dovecot's own user would (the tests run as root).
    for d in [md.parent().unwrap().to_path_buf(), md.clone()]
        .into_iter()
        .chain(["new", "cur", "tmp"].map(|s| md.join(s)))
    {
        if !d.exists() {
            std::fs::create_dir(&d).unwrap();
            std::os::unix::fs::chown(
                &d,
                Some(std::os::unix::fs::MetadataExt::uid(&owner)),
                Some(std::os::unix::fs::MetadataExt::gid(&owner)),
            )
            .unwrap();
        }
    }
    let name = format!(
        "{}.M{n}P1.raw,S={len},W={len}",
        1_700_000_000 + n,
        len = raw.len()
    );
    let tmp = md.join("tmp").join(&name);
    std::fs::write(&tmp, raw).unwrap();
    std::os::unix::fs::chown(
        &tmp,
        Some(std::os::unix::fs::MetadataExt::uid(&owner)),
        Some(std::os::unix::fs::MetadataExt::gid(&owner)),
    )
    .unwrap();
    std::fs::rename(&tmp, md.join("new").join(&name)).unwrap();
}

/// The file Dovecot keeps message `uid` of `user`'s INBOX in (from its
/// dovecot-uidlist; the message must have been seen by Dovecot).
pub fn dovecot_file(stack: &Stack, user: &str, uid: u32) -> PathBuf {
    let md = stack.dir.path().join(format!("stack/mail/{user}/Maildir"));
    let list = std::fs::read_to_string(md.join("dovecot-uidlist")).unwrap();
    let base = list
        .lines()
        .skip(1)
        .find_map(|l| {
            let (u, rest) = l.split_once(' ')?;
            (u.parse::<u32>().ok()? == uid).then(|| rest.rsplit_once(':').map_or(rest, |(_, b)| b))
        })
        .unwrap_or_else(|| panic!("UID {uid} not in dovecot-uidlist:\n{list}"))
        .to_string();
    for sub in ["cur", "new"] {
        for f in std::fs::read_dir(md.join(sub)).unwrap() {
            let f = f.unwrap();
            let name = f.file_name().to_string_lossy().to_string();
            if name == base || name.starts_with(&format!("{base}:")) {
                return f.path();
            }
        }
    }
    panic!("no file for UID {uid} ({base})");
}

/// Stops the stack's Dovecot (its master takes every child down).
pub fn stop_dovecot(stack: &Stack) {
    let pid_file = stack.dir.path().join("stack/dovecot/run/master.pid");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    Command::new("kill")
        .args(["-TERM", pid.trim()])
        .status()
        .unwrap();
    // The master leaves running imap processes to finish their sessions:
    // kill them as a crash or a reboot would.
    Command::new("pkill")
        .args(["-KILL", "-f", &format!("mailstack-{}/", stack.imap)])
        .status()
        .unwrap();
    wait_until("Dovecot to stop", || {
        TcpListener::bind(("127.0.0.1", stack.imap)).is_ok()
    });
}

pub fn start_dovecot(stack: &Stack) {
    let conf = stack.dir.path().join("stack/dovecot/dovecot.conf");
    let st = Command::new("dovecot")
        .arg("-c")
        .arg(&conf)
        .status()
        .unwrap();
    assert!(st.success());
    wait_until("Dovecot to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", stack.imap)).is_ok()
    });
}

// ------------------------------------------------------------ a small disk

/// A tmpfs of a given size mounted over `path` (the tests run as root, as
/// the mail stack already requires), unmounted on drop.
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    pub fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a tmpfs on {} (needs root): {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

/// Writes `path` until the filesystem refuses (ENOSPC); returns the bytes written.
pub fn fill_disk(path: &Path) -> u64 {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let mut written = 0u64;
    for chunk in [1 << 20, 4096, 1] {
        let buf = vec![0x5au8; chunk];
        while f.write_all(&buf).is_ok() {
            written += chunk as u64;
        }
    }
    let _ = f.sync_all();
    written
}

/// A daemon started by a test, killed when the test ends, even by a
/// failed assertion: an orphan would keep the test's output pipe open
/// (and cargo test waiting) and keep talking to a stack being torn down.
pub struct Daemon(pub std::process::Child);

impl std::ops::Deref for Daemon {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Spawns `supportdesk run` with its log (RUST_LOG=info) in `log`.
pub fn spawn_daemon(config: &Path, log: &Path) -> Daemon {
    Daemon(
        Command::new(BIN)
            .arg("--config")
            .arg(config)
            .arg("run")
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// SIGTERM, and the exit must be clean.
pub fn stop_daemon(mut child: Daemon) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success(), "daemon exit status");
}

/// Like `wait_until`, with its own limit.
pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Like `wait_until`, and a timeout shows the daemon's log: a wait that
/// fails under a loaded CI then says what the daemon was doing.
pub fn wait_until_logged(what: &str, log: &Path, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        if Instant::now() >= deadline {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            panic!("timed out waiting for {what}; daemon log:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A count from a database the daemon may be writing (0 while it does not exist yet).
pub fn count_at(config: &Path, sql: &str) -> i64 {
    Connection::open(config.parent().unwrap().join("state/supportdesk.db"))
        .ok()
        .and_then(|c| c.query_row(sql, [], |r| r.get(0)).ok())
        .unwrap_or(0)
}

// ------------------------------------------------------------ OAuth 2.0

/// A real OAuth 2.0 server (authlib, tests/mailstack/oauth.sh) on the
/// stack's sixth port, and the stack's Dovecot (so Postfix's submission
/// too) taking its tokens by XOAUTH2 and OAUTHBEARER. Stopped on drop.
pub struct OAuth {
    dir: PathBuf,
    pub token_url: String,
    pub device_url: String,
    pub verification_url: String,
    pub admin_revoke_user_url: String,
    pub revoke_url: String,
    pub authorization_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub ca: PathBuf,
}

impl Drop for OAuth {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(format!("{ROOT}/tests/mailstack/oauth.sh"))
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}

/// Starts it; `args` go to the server (e.g. "--access-lifetime", "6").
pub fn start_oauth(stack: &Stack, args: &[&str]) -> OAuth {
    start_oauth_with(stack, args, &[])
}

/// The same with oauth.sh's environment (e.g. OAUTH_VALIDATION=introspect).
pub fn start_oauth_with(stack: &Stack, args: &[&str], env: &[(&str, &str)]) -> OAuth {
    let dir = stack.dir.path().join("stack");
    let out = Command::new("bash")
        .arg(format!("{ROOT}/tests/mailstack/oauth.sh"))
        .arg("start")
        .arg(&dir)
        .arg(stack.imap.to_string())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "oauth.sh start failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vars = String::from_utf8_lossy(&out.stdout).to_string();
    let get = |k: &str| -> String {
        vars.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("oauth.sh did not print {k}: {vars}"))
            .trim()
            .to_string()
    };
    OAuth {
        token_url: get("TOKEN_URL"),
        device_url: get("DEVICE_AUTHORIZATION_URL"),
        verification_url: get("VERIFICATION_URL"),
        admin_revoke_user_url: get("ADMIN_REVOKE_USER_URL"),
        revoke_url: get("REVOKE_URL"),
        authorization_url: get("AUTHORIZATION_URL"),
        client_id: get("CLIENT_ID"),
        client_secret: get("CLIENT_SECRET"),
        ca: PathBuf::from(get("OAUTH_CA_FILE")),
        dir,
    }
}

impl OAuth {
    /// An `[oauth.NAME]` section for this server.
    pub fn account(&self, name: &str, mechanism: &str) -> String {
        format!(
            r#"
[oauth.{name}]
provider = "generic"
client_id = "{id}"
client_secret = "{secret}"
token_url = "{token}"
device_authorization_url = "{device}"
authorization_url = "{authorize}"
scopes = ["imap", "smtp", "offline_access"]
mechanism = "{mechanism}"
ca_file = "{ca}"
"#,
            id = self.client_id,
            secret = self.client_secret,
            token = self.token_url,
            device = self.device_url,
            authorize = self.authorization_url,
            ca = self.ca.display(),
        )
    }

    /// A form POST to the server, as the user's browser would send it.
    pub fn post(&self, url: &str, form: &[(&str, &str)]) -> String {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--fail-with-body", "--cacert"])
            .arg(&self.ca);
        for (k, v) in form {
            cmd.arg("--data-urlencode").arg(format!("{k}={v}"));
        }
        let out = cmd.arg(url).output().unwrap();
        assert!(
            out.status.success(),
            "POST {url}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `supportdesk auth login ACCOUNT --browser`: the user opens the URL
    /// it prints, signs in as `user` (the form's POST, as a browser sends
    /// it), and pastes the address the server redirects to, passed through
    /// `edit` first (to paste a wrong one). Returns the command's output.
    pub fn browser_login(
        &self,
        config: &Path,
        account: &str,
        user: &str,
        edit: impl Fn(&str) -> String,
    ) -> Output {
        use std::io::{BufRead, Write};
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(config)
            .args(["auth", "login", account, "--browser"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut printed = String::new();
        let url = loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap() == 0 {
                let _ = child.kill();
                panic!("auth login --browser printed no URL:\n{printed}");
            }
            printed.push_str(&line);
            if line.starts_with(&self.authorization_url) {
                break line.trim().to_string();
            }
        };
        let out = Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{redirect_url}",
                "--cacert",
            ])
            .arg(&self.ca)
            .args(["-d", &format!("username={user}")])
            .arg(&url)
            .output()
            .unwrap();
        let location = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            location.contains("code="),
            "no redirect with a code: {location:?}"
        );
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{}", edit(&location)).unwrap();
        drop(stdin);
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
        let mut out = child.wait_with_output().unwrap();
        out.stdout = (printed + &rest).into_bytes();
        out
    }

    /// `supportdesk auth login ACCOUNT`, the user approving its code in
    /// the verification page as `user`. Returns what the command printed.
    pub fn device_login(&self, config: &Path, account: &str, user: &str) -> String {
        use std::io::BufRead;
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(config)
            .args(["auth", "login", account])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut printed = String::new();
        let code = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                let mut err = String::new();
                let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
                panic!("auth login printed no code:\n{printed}{err}");
            };
            printed.push_str(&line);
            printed.push('\n');
            if let Some(rest) = line.split("enter the code ").nth(1) {
                break rest.trim().to_string();
            }
        };
        assert!(printed.contains(&self.verification_url), "{printed}");
        self.post(
            &self.verification_url,
            &[("user_code", &code), ("username", user)],
        );
        for line in lines.map_while(Result::ok) {
            printed.push_str(&line);
            printed.push('\n');
        }
        let status = child.wait().unwrap();
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
        assert!(status.success(), "auth login: {printed}{err}");
        printed
    }
}

/// One scrape of the metrics endpoint at `port`, its body.
pub fn scrape(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// The value of the sample `name{labels}` in a scrape.
pub fn sample(body: &str, name_and_labels: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .and_then(|v| v.split(' ').next()?.parse().ok())
}
