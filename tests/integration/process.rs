//! The process around the desk (issue 16, items 7 and 8): one process per
//! database, offline commands that leave the daemon's files as they are
//! (run as root next to a daemon of another user), colour only on a
//! terminal, the metrics endpoint's warning and connection cap, and mail
//! text escaped on the admin's terminal. Maildir and directory outbox: no
//! mail servers needed.

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

/// The daemon's user in these tests (the tests run as root).
const NOBODY: u32 = 65534;

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn ok(config: &Path, args: &[&str]) -> String {
    let out = run(config, args, &[]);
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        stdout_of(&out),
        stderr_of(&out)
    );
    stdout_of(&out)
}

/// `status --json`'s count of open tickets, 0 while there is no database.
fn open_tickets(config: &Path) -> i64 {
    let out = run(config, &["status", "--json"], &[]);
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v["open_tickets"].as_i64())
        .unwrap_or(0)
}

/// Starts `args` and waits for its exit; a process still running after
/// `limit` is killed and reported as None (a second daemon that was not
/// refused would run forever).
fn exits_within(config: &Path, args: &[&str], limit: Duration) -> Option<std::process::Output> {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(child.wait_with_output().unwrap())
}

#[test]
fn issue_16_run_once_refuses_next_to_a_running_daemon_and_offline_commands_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let a = maildir(dir.path(), "a");
    deliver(&a, 1, "Ann <ann@example.com>");
    let cfg = dir.path().join("supportdesk.toml");
    std::fs::write(&cfg, maildir_config(dir.path(), &["a"])).unwrap();
    let state = dir.path().join("state");
    let daemon = spawn_daemon(&cfg, &dir.path().join("daemon.log"));
    let pid = daemon.id();
    wait_until("the first ticket", || open_tickets(&cfg) == 1);

    // The lock file names its holder, for the owner only.
    let lock = state.join("supportdesk.lock");
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap().trim(),
        pid.to_string()
    );
    assert_eq!(std::fs::metadata(&lock).unwrap().mode() & 0o777, 0o600);

    // `run --once` would take the daemon's in-flight outbox rows for
    // interrupted ones and send them again: refused, before any work.
    let refused = format!(
        "another supportdesk process (pid {pid}) is running on {}",
        state.display()
    );
    let out = exits_within(&cfg, &["run", "--once"], Duration::from_secs(60))
        .expect("run --once next to a daemon did not exit");
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains(&refused), "{}", stderr_of(&out));
    assert!(stdout_of(&out).is_empty(), "{}", stdout_of(&out));
    // A second daemon too.
    let out = exits_within(&cfg, &["run"], Duration::from_secs(60))
        .expect("a second daemon on the same state dir kept running");
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains(&refused), "{}", stderr_of(&out));
    // The lock still names the daemon.
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap().trim(),
        pid.to_string()
    );

    // The offline commands work next to it, reads and writes.
    assert!(ok(&cfg, &["status"]).contains("tickets: 1 open"));
    assert!(ok(&cfg, &["tickets", "list"]).contains("SUP-000001"));
    assert!(ok(&cfg, &["tickets", "show", "SUP-000001"]).contains("ann@example.com"));
    ok(&cfg, &["stats"]);
    assert!(ok(&cfg, &["tickets", "close", "1"]).contains("done"));
    assert_eq!(open_tickets(&cfg), 0);

    // The kernel drops the lock with its holder, however it ends.
    let mut daemon = daemon;
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    deliver(&a, 2, "Bob <bob@example.com>");
    let out = run_once_ok(&cfg);
    assert!(
        stdout_of(&out).starts_with("1 new ticket"),
        "{}",
        stdout_of(&out)
    );
}

/// Every file of `dir`: name, owner, group, mode, and with `contents` its
/// size, modification time and inode too.
fn listing(dir: &Path, contents: bool) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            let mut line = format!(
                "{} uid={} gid={} mode={:o}",
                e.file_name().to_string_lossy(),
                m.uid(),
                m.gid(),
                m.mode() & 0o7777
            );
            if contents {
                line += &format!(
                    " size={} mtime={}.{} ino={}",
                    m.len(),
                    m.mtime(),
                    m.mtime_nsec(),
                    m.ino()
                );
            }
            line
        })
        .collect();
    out.sort();
    out
}

/// The journal mode written in the database header (bytes 18 and 19: 2
/// for WAL, 1 for a rollback journal).
fn header_mode(db: &Path) -> (u8, u8) {
    let mut h = [0u8; 20];
    std::fs::File::open(db).unwrap().read_exact(&mut h).unwrap();
    (h[18], h[19])
}

fn chown_tree(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
    if std::fs::symlink_metadata(path).unwrap().is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            chown_tree(&e.unwrap().path(), uid);
        }
    }
}

/// The daemon as another user (as under systemd's DynamicUser), the admin
/// as root: `status`, `tickets list|show` and `stats` create, remove and
/// change nothing in the state directory, whether the daemon runs, was
/// killed (its -wal and -shm left behind) or closed its database; the
/// `tickets` writes leave no file behind and keep the journal mode; and
/// the daemon's user can still use its database afterwards.
#[test]
fn offline_commands_as_root_leave_the_daemons_files_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let a = maildir(dir.path(), "a");
    deliver(&a, 1, "Ann <ann@example.com>");
    let cfg = dir.path().join("supportdesk.toml");
    std::fs::write(&cfg, maildir_config(dir.path(), &["a"])).unwrap();
    chown_tree(dir.path(), NOBODY);
    let state = dir.path().join("state");
    let db = state.join("supportdesk.db");
    let as_nobody = |args: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(&cfg)
            .args(args)
            .env("RUST_LOG", "info")
            .uid(NOBODY)
            .gid(NOBODY);
        cmd
    };
    let reads: [&[&str]; 6] = [
        &["status"],
        &["status", "--json"],
        &["tickets", "list"],
        &["tickets", "list", "--json"],
        &["tickets", "show", "1"],
        &["stats"],
    ];
    let read_all = |want_open: &str| {
        for args in reads {
            let text = ok(&cfg, args);
            if args == ["status"] {
                assert!(text.contains(want_open), "{text}");
            }
        }
    };

    // 1. Next to the running daemon.
    let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
    let mut daemon = Daemon(as_nobody(&["run"]).stderr(log).spawn().unwrap());
    wait_until("the first ticket", || open_tickets(&cfg) == 1);
    let before = listing(&state, false);
    assert!(
        before.iter().all(|l| l.contains(&format!("uid={NOBODY} "))),
        "{before:?}"
    );
    assert!(
        before.iter().any(|l| l.starts_with("supportdesk.db-shm ")),
        "{before:?}"
    );
    read_all("tickets: 1 open");
    assert_eq!(listing(&state, false), before);
    // A write next to it: SQLite's locking, nothing left behind.
    ok(&cfg, &["tickets", "respond", "1"]);
    assert_eq!(listing(&state, false), before);

    // 2. Killed: its -wal and -shm stay, with what it committed. A
    // read-write connection would check the log into the database and
    // delete both; a read changes nothing, to the byte and the mtime.
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let killed = listing(&state, true);
    assert!(
        killed.iter().any(|l| l.starts_with("supportdesk.db-wal ")),
        "{killed:?}"
    );
    read_all("tickets: 1 open");
    assert_eq!(listing(&state, true), killed);

    // 3. Closed: only the database and the lock. A read-only connection
    // would create the -wal and -shm; these reads do not.
    rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM tickets", [], |r| r.get::<_, i64>(0))
        .unwrap();
    let quiet = listing(&state, true);
    assert_eq!(quiet.len(), 2, "{quiet:?}");
    read_all("tickets: 1 open");
    assert_eq!(listing(&state, true), quiet);
    assert_eq!(header_mode(&db), (2, 2));
    // A write leaves no file behind and the journal mode as it was.
    ok(&cfg, &["tickets", "close", "1"]);
    assert_eq!(listing(&state, false), listing_names_only(&quiet));
    assert_eq!(header_mode(&db), (2, 2));

    // 4. An admin switched it to a rollback journal: reads keep it so.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
    drop(conn);
    let rollback = listing(&state, true);
    read_all("tickets: 0 open");
    assert_eq!(header_mode(&db), (1, 1));
    assert_eq!(listing(&state, true), rollback);
    // (Back to WAL, as the daemon wants it; only the daemon sets it.)
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
        .unwrap();
    drop(conn);

    // Nothing in the state dir belongs to root: the daemon's user goes on.
    chown_check(&state);
    deliver(&a, 2, "Bob <bob@example.com>");
    chown_tree(&a, NOBODY);
    let out = as_nobody(&["run", "--once"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stdout_of(&out).starts_with("1 new ticket"),
        "{}",
        stdout_of(&out)
    );
}

fn listing_names_only(full: &[String]) -> Vec<String> {
    full.iter()
        .map(|l| l.split(" size=").next().unwrap().to_string())
        .collect()
}

fn chown_check(state: &Path) {
    for l in listing(state, false) {
        assert!(l.contains(&format!("uid={NOBODY} gid={NOBODY}")), "{l}");
    }
}

#[test]
fn logs_are_coloured_only_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let a = maildir(dir.path(), "a");
    deliver(&a, 1, "Ann <ann@example.com>");
    let cfg = dir.path().join("supportdesk.toml");
    std::fs::write(&cfg, maildir_config(dir.path(), &["a"])).unwrap();

    // The daemon with its stderr in a file (the journal, a log file).
    let log = dir.path().join("daemon.log");
    let daemon = Daemon(
        Command::new(BIN)
            .arg("--config")
            .arg(&cfg)
            .arg("run")
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_until("the first ticket", || open_tickets(&cfg) == 1);
    stop_daemon(daemon);
    let bytes = std::fs::read(&log).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("ingested"), "{text}");
    assert!(
        !bytes.contains(&0x1b),
        "escape codes in a log file:\n{text:?}"
    );

    // On a terminal (script(1) gives it one), colour; unless NO_COLOR.
    let on_terminal = |n: usize, no_color: bool| -> Vec<u8> {
        deliver(&a, n, "Ann <ann@example.com>");
        let line = format!("{BIN} --config {} run --once", cfg.display());
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &line, "/dev/null"])
            .stdin(Stdio::null())
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR");
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        assert!(stdout_of(&out).contains("ingested"), "{}", stdout_of(&out));
        out.stdout
    };
    assert!(on_terminal(2, false).contains(&0x1b));
    assert!(!on_terminal(3, true).contains(&0x1b));
}

#[test]
fn check_config_and_start_up_warn_about_a_metrics_endpoint_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    maildir(dir.path(), "a");
    let cfg = dir.path().join("supportdesk.toml");
    let base = maildir_config(dir.path(), &["a"]);
    for (listen, warned) in [
        ("0.0.0.0:9187", true),
        ("192.0.2.10:9187", true),
        ("[::]:9187", true),
        ("127.0.0.1:9187", false),
        ("[::1]:9187", false),
        ("[::ffff:127.0.0.1]:9187", false),
    ] {
        std::fs::write(&cfg, format!("{base}\n[metrics]\nlisten = \"{listen}\"\n")).unwrap();
        let out = run(&cfg, &["check-config"], &[]);
        assert!(out.status.success(), "{listen}: {}", stderr_of(&out));
        let err = stderr_of(&out);
        assert_eq!(
            err.contains("warning: the metrics endpoint listens on"),
            warned,
            "{listen}: {err}"
        );
        if warned {
            assert!(err.contains("beyond loopback"), "{err}");
        }
    }
    // Start-up logs the same warnings (`run --once` binds no listener).
    std::fs::write(
        &cfg,
        format!("{base}\n[metrics]\nlisten = \"0.0.0.0:9187\"\n"),
    )
    .unwrap();
    let out = run_once_ok(&cfg);
    assert!(
        stderr_of(&out).contains("the metrics endpoint listens on 0.0.0.0:9187, beyond loopback"),
        "{}",
        stderr_of(&out)
    );
}

fn count_dir(path: &str) -> usize {
    std::fs::read_dir(path).map(|d| d.count()).unwrap_or(0)
}

/// More idle connections than the cap: the daemon holds at most the cap
/// (no thread, no descriptor per extra connection), closes the idle ones,
/// and a scrape still answers while they are open.
#[test]
fn metrics_endpoint_caps_connections_and_still_answers_a_scrape() {
    const CAP: usize = 16; // supportdesk::metrics::MAX_CONNECTIONS
    assert_eq!(CAP, supportdesk::metrics::MAX_CONNECTIONS);
    let dir = tempfile::tempdir().unwrap();
    let a = maildir(dir.path(), "a");
    deliver(&a, 1, "Ann <ann@example.com>");
    let port = free_port();
    let cfg = dir.path().join("supportdesk.toml");
    std::fs::write(
        &cfg,
        maildir_config(dir.path(), &["a"])
            + &format!("\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let daemon = spawn_daemon(&cfg, &dir.path().join("daemon.log"));
    let scrape = |request: &str| -> Option<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        s.write_all(request.as_bytes()).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    };
    let get = "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    wait_until("the ticket in the metrics", || {
        scrape(get).is_some_and(|b| b.contains("supportdesk_tickets_open 1"))
    });
    let fds = format!("/proc/{}/fd", daemon.id());
    let tasks = format!("/proc/{}/task", daemon.id());
    std::thread::sleep(Duration::from_millis(300));
    let (base_fds, base_threads) = (count_dir(&fds), count_dir(&tasks));

    // Six times the cap, connected and silent.
    let mut idle: Vec<_> = (0..6 * CAP)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let (mut max_fds, mut max_threads) = (0, 0);
    for _ in 0..15 {
        std::thread::sleep(Duration::from_millis(100));
        max_fds = max_fds.max(count_dir(&fds));
        max_threads = max_threads.max(count_dir(&tasks));
    }
    assert!(
        max_fds <= base_fds + CAP + 4,
        "{max_fds} descriptors with {} idle connections (base {base_fds})",
        idle.len()
    );
    assert!(
        max_threads <= base_threads + 4,
        "{max_threads} threads with {} idle connections (base {base_threads})",
        idle.len()
    );

    // Still more than the cap open: a scrape gets through once the
    // silent ones before it are dropped.
    idle.truncate(CAP + 4);
    let body = scrape(get).expect("no answer to a scrape past the cap");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("supportdesk_tickets_open 1"), "{body}");
    // The daemon closed the first silent one.
    let first = &mut idle[0];
    first
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        first.read(&mut buf).expect("an idle connection left open"),
        0
    );
    drop(idle);

    // A request head past the limit, and anything but GET.
    // (Unterminated, so the daemon reads all of it before it answers.)
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nX-Filler: {}",
        "x".repeat(supportdesk::metrics::MAX_HEAD)
    );
    let answer = scrape(&huge).unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    let answer = scrape("POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    stop_daemon(daemon);
}

/// Mail text with terminal escapes (a sender address, an agent's command
/// line) prints escaped in `tickets show` and `tickets list`; the JSON
/// output carries the text as it is, escaped by JSON.
#[test]
fn tickets_show_and_list_escape_control_characters_from_mail() {
    let dir = tempfile::tempdir().unwrap();
    let a = maildir(dir.path(), "a");
    let cfg = dir.path().join("supportdesk.toml");
    std::fs::write(
        &cfg,
        maildir_config(dir.path(), &["a"]) + "\n[agents]\ndomains = [\"desk.test\"]\n" + TRUST,
    )
    .unwrap();
    let put = |name: &str, raw: &[u8]| {
        let tmp = a.join("tmp").join(name);
        std::fs::write(&tmp, raw).unwrap();
        std::fs::rename(&tmp, a.join("new").join(name)).unwrap();
    };
    // OSC 0 (set the window title, ended by BEL) in the address.
    put(
        "1.esc",
        b"From: Eve <eve\x1b]0;pwned\x07@evil.test>\nTo: support@desk.test\nSubject: Backup broken\nMessage-ID: <esc1@evil.test>\n\nThe nightly backup fails.\n",
    );
    // A C1 CSI (U+009B, UTF-8 C2 9B) making the text blink.
    put(
        "2.esc",
        b"From: Mallory <\"m\xc2\x9b5m\"@evil.test>\nTo: support@desk.test\nSubject: Restore broken\nMessage-ID: <esc2@evil.test>\n\nThe restore fails.\n",
    );
    run_once_ok(&cfg);
    // An agent's commands with escapes: an assignee, a command error.
    put(
        "3.esc",
        &[stamp("desk.test").as_bytes(), b"From: Agent <agent@desk.test>\nTo: support@desk.test\nSubject: Re: [SUP-000001] Backup broken\nMessage-ID: <esc3@desk.test>\n\n#assign bob\x1b[8m@desk.test\n#prio \x1b[5mP1\n\nLooking at it.\n"].concat(),
    );
    run_once_ok(&cfg);

    let raw = |args: &[&str]| {
        let out = run(&cfg, args, &[]);
        assert!(out.status.success(), "{args:?}: {}", stderr_of(&out));
        out.stdout
    };
    let clean = |bytes: &[u8]| {
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "control characters on the terminal: {text:?}"
        );
        text
    };
    let list = clean(&raw(&["tickets", "list"]));
    assert!(list.contains("eve\\x1b]0;pwned\\x07@evil.test"), "{list}");
    assert!(list.contains("\"m\\u{9b}5m\"@evil.test"), "{list}");
    let show = clean(&raw(&["tickets", "show", "SUP-000001"]));
    assert!(
        show.contains("requester  eve\\x1b]0;pwned\\x07@evil.test"),
        "{show}"
    );
    assert!(show.contains("assignee   bob\\x1b[8m@desk.test"), "{show}");
    assert!(
        show.contains("by agent@desk.test: bob\\x1b[8m@desk.test"),
        "{show}"
    );
    assert!(show.contains("not a command: #prio \\x1b[5mP1"), "{show}");
    let show = clean(&raw(&["tickets", "show", "2"]));
    assert!(show.contains("\"m\\u{9b}5m\"@evil.test"), "{show}");

    // JSON keeps the text, escaped the JSON way.
    let json = clean(&raw(&["tickets", "show", "1", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["requester"], "eve\x1b]0;pwned\x07@evil.test");
    assert_eq!(v["assignee"], "bob\x1b[8m@desk.test");
}
