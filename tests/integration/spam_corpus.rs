//! The SpamAssassin corpus through a real Dovecot and the whole pipeline,
//! and with it: a changed UIDVALIDITY, an oversized message, the metrics
//! endpoint, offline commands without a database, the plaintext SMTP
//! warning, and a poison message set aside.

use std::process::Command;
use std::time::Instant;

use crate::common::*;
use crate::support::demo_copy;
use rusqlite::Connection;

/// Every message of the corpus goes through a real Dovecot mailbox and the
/// whole pipeline: each becomes a ticket or a recorded non-ticket, none is
/// lost or crashes the run, and a second run adds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spamassassin_corpus_through_the_whole_pipeline() {
    let (files, required) = corpus_files();
    if files.is_empty() {
        assert!(!required, "SUPPORTDESK_CORPUS is set but holds no corpus");
        skip_loudly(
            "spamassassin_corpus_through_the_whole_pipeline",
            "no SpamAssassin corpus (scripts/test fetches it and sets SUPPORTDESK_CORPUS)",
        );
        return;
    }
    let stack = start_stack();
    let config = write_config(&stack, false);
    // Acknowledgements as files: this test is about ingestion.
    let text = std::fs::read_to_string(&config).unwrap();
    let outbox_at = text.find("[outbox]").unwrap();
    let text = format!(
        "{}[outbox]\nkind = \"directory\"\npath = \"out\"\n",
        &text[..outbox_at]
    );
    std::fs::write(&config, text).unwrap();
    // Dovecot creates the Maildir at the first login.
    let mut s = imap_login(&stack, "support", "supportpw").await;
    s.select("INBOX").await.unwrap();
    let _ = s.logout().await;
    deliver_to_dovecot(&stack, "support", &files);

    let started = Instant::now();
    let out = run(&config, &["run", "--once"], &[("RUST_LOG", "warn")]);
    let secs = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conn = db(&config);
    let n = files.len() as i64;
    assert_eq!(
        count(&conn, "SELECT count(*) FROM messages"),
        n,
        "one record per message"
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM messages WHERE marked = 0"),
        0
    );
    let tickets = count(&conn, "SELECT count(*) FROM tickets");
    let kinds: Vec<(String, i64)> = conn
        .prepare("SELECT kind, count(*) FROM messages GROUP BY kind ORDER BY kind")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let acks = count(&conn, "SELECT count(*) FROM outbox WHERE kind = 'ack'");
    // A ticket without an acknowledgement says why.
    let unexplained: Vec<(String, Option<String>)> = conn
        .prepare(
            "SELECT requester, note FROM tickets t WHERE NOT EXISTS
               (SELECT 1 FROM outbox o WHERE o.ticket_id = t.id AND o.kind = 'ack')",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .filter(|(_, note)| note.as_deref().is_none_or(|n| !n.contains("acknowledg")))
        .collect();
    assert!(
        unexplained.is_empty(),
        "tickets without ack or reason: {unexplained:?}"
    );
    let held = count(
        &conn,
        "SELECT count(*) FROM tickets t WHERE NOT EXISTS
           (SELECT 1 FROM outbox o WHERE o.ticket_id = t.id AND o.kind = 'ack')",
    );
    assert_eq!(
        acks + held,
        tickets,
        "never two acknowledgements for one ticket"
    );
    eprintln!(
        "corpus: {n} messages in {secs:.1}s (debug build, {:.0} msg/s): {tickets} tickets, {acks} acks, {held} held; by kind {kinds:?}",
        n as f64 / secs
    );
    // The figures it prints, pinned (the corpus is pinned too, see
    // scripts/corpus.sh): a change to triage, the automated-mail checks or
    // the acknowledgement guards shows here and is updated on purpose.
    // (3482 -> 3483 automated: easy-ham-1/00033.2ceb52..., an out-of-office
    // reply with no header, "I will be out of the office until Monday",
    // known by its text since the independent triage corpus.)
    assert_eq!(n, 6046);
    assert_eq!(
        kinds,
        [
            ("automated".to_string(), 3483),
            ("customer".to_string(), 2452),
            ("followup".to_string(), 111)
        ]
    );
    assert_eq!((tickets, acks, held), (2452, 1794, 658));
    let poison: Vec<String> = conn
        .prepare("SELECT error FROM messages WHERE kind = 'poison'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(poison.is_empty(), "set aside as poison: {poison:?}");
    // Nothing again on a second pass.
    let out = run(&config, &["run", "--once"], &[]);
    assert!(out.status.success());
    assert_eq!(count(&conn, "SELECT count(*) FROM messages"), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_uidvalidity_rescans_without_reticketing() {
    let stack = start_stack();
    let config = write_config(&stack, false);
    let mut s = imap_login(&stack, "support", "supportpw").await;
    for n in 1..=3 {
        append(
            &mut s,
            &customer_mail(
                n,
                &format!("c{n}@example.com"),
                "Help",
                "The report page is broken.",
            ),
        )
        .await;
    }
    run_once_ok(&config);
    // The server renumbers the mailbox (restored from backup, migrated...).
    let conf = stack.dir.path().join("stack/dovecot/dovecot.conf");
    let st = Command::new("doveadm")
        .arg("-c")
        .arg(&conf)
        .args([
            "mailbox",
            "update",
            "-u",
            "support",
            "--uid-validity",
            "4242",
            "INBOX",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    append(
        &mut s,
        &customer_mail(4, "c4@example.com", "Help", "The report page is broken."),
    )
    .await;
    let _ = s.logout().await;
    run_once_ok(&config);
    let conn = db(&config);
    assert_eq!(count(&conn, "SELECT uidvalidity FROM mailbox_state"), 4242);
    assert_eq!(
        count(&conn, "SELECT count(*) FROM tickets"),
        4,
        "no ticket twice"
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM messages WHERE kind = 'duplicate'"
        ),
        3
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM outbox WHERE kind = 'ack'"),
        4
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM messages WHERE marked = 0"),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_message_is_kept_raw_ticketed_and_acknowledged() {
    let stack = start_stack();
    let config = write_config(&stack, false);
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "[desk]\n",
        "[desk]\nmax_message_bytes = 4096\n",
        1,
    );
    std::fs::write(&config, text).unwrap();
    let body = "The attached log is large. ".repeat(1000);
    let raw = customer_mail(1, "big@example.com", "Huge log", &body);
    let mut s = imap_login(&stack, "support", "supportpw").await;
    append(&mut s, &raw).await;
    let _ = s.logout().await;
    run_once_ok(&config);
    let conn = db(&config);
    let (note, subject): (String, String) = conn
        .query_row("SELECT note, subject FROM tickets", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert!(note.contains("over the 4096-byte limit"), "{note}");
    assert_eq!(subject, "Huge log", "headers are still read");
    // Over max_message_bytes: kept whole in a spool file the row names.
    let (inline, path): (i64, String) = conn
        .query_row("SELECT length(raw), raw_path FROM messages", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(inline, 0);
    let stored = std::fs::read(config.parent().unwrap().join("state").join(&path)).unwrap();
    assert!(
        stored.len() >= raw.len(),
        "raw kept whole: {}",
        stored.len()
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM outbox WHERE kind = 'ack' AND status = 'sent'"
        ),
        1
    );
}

#[test]
fn metrics_endpoint_serves_the_status_figures_in_prometheus_text() {
    use std::io::{Read, Write};
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
    let mut child = Daemon(
        Command::new(BIN)
            .arg("--config")
            .arg(&cfg)
            .arg("run")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let get = |path: &str| -> Option<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    };
    let mut body = String::new();
    // The pass records the mailbox's health after committing its ticket:
    // wait for both.
    wait_until("the ticket and the mailbox in the metrics", || {
        body = get("/metrics").unwrap_or_default();
        body.contains("supportdesk_tickets_open 1")
            && body.contains("supportdesk_mailbox_up{mailbox=\"a\"} 1")
    });
    assert!(body.contains("supportdesk_outbox_failed 0"), "{body}");
    assert!(
        body.contains("# TYPE supportdesk_tickets_breaching gauge"),
        "{body}"
    );
    assert!(
        get("/other").unwrap().starts_with("HTTP/1.0 404")
            || get("/other").unwrap().contains(" 404 ")
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
}

#[test]
fn offline_commands_never_create_the_database() {
    let (dir, cfg) = demo_copy();
    for args in [&["status"][..], &["tickets", "list"], &["stats"]] {
        let out = run(&cfg, args, &[]);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no database"),
            "{args:?}"
        );
    }
    assert!(!dir.path().join("out/supportdesk.db").exists());
    // After a run, status lists every configured mailbox.
    let once = run(&cfg, &["run", "--once"], &[]);
    assert!(
        once.status.success(),
        "{}",
        String::from_utf8_lossy(&once.stderr)
    );
    // The run closed the database before it exited: a process that ends
    // midway through SQLite's close can leave a -wal with no -shm, which
    // the offline commands refuse to read.
    for side in ["supportdesk.db-wal", "supportdesk.db-shm"] {
        assert!(!dir.path().join("out").join(side).exists(), "{side} left");
    }
    let out = run(&cfg, &["status"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("mailbox demo"), "{text}");
}

#[test]
fn check_config_warns_about_plaintext_smtp() {
    let dir = tempfile::tempdir().unwrap();
    maildir(dir.path(), "a");
    let cfg = dir.path().join("supportdesk.toml");
    let text = maildir_config(dir.path(), &["a"]);
    let at = text.find("[outbox]").unwrap();
    let plain = format!(
        "{}[outbox]\nkind = \"smtp\"\nhost = \"127.0.0.1\"\nport = 25\ntls = \"none\"\n",
        &text[..at]
    );
    std::fs::write(&cfg, &plain).unwrap();
    let out = run(&cfg, &["check-config"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: the outbox talks plaintext SMTP to 127.0.0.1:25"),
        "{err}"
    );
    // Not to a remote host.
    std::fs::write(&cfg, plain.replace("127.0.0.1", "smtp.example.com")).unwrap();
    let out = run(&cfg, &["check-config"], &[]);
    assert_eq!(out.status.code(), Some(1));
}

/// A message whose storing fails (here its attachment cannot be written:
/// the attachments path is a file) is set aside with its raw bytes and the
/// error, and the messages behind it still become tickets.
#[test]
fn poison_message_is_set_aside_and_the_mailbox_keeps_flowing() {
    let dir = tempfile::tempdir().unwrap();
    let a = maildir(dir.path(), "a");
    // 74 KB decoded: an attachment large enough for a file of its own (small
    // ones are kept in their row).
    let log: Vec<String> = (0..1300).map(|_| "A".repeat(76)).collect();
    let poison = format!(
        "From: Pat <pat@example.com>\nTo: support@desk.test\nSubject: Logs attached\nMessage-ID: <poison@example.com>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nSee the log.\n--b\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"job.log\"\nContent-Transfer-Encoding: base64\n\n{}\n--b--\n",
        log.join("\n")
    );
    std::fs::write(a.join("new/1.poison"), &poison).unwrap();
    deliver(&a, 2, "Ann <ann@example.com>");
    let cfg = dir.path().join("supportdesk.toml");
    std::fs::write(&cfg, maildir_config(dir.path(), &["a"])).unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::write(dir.path().join("state/attachments"), "not a directory").unwrap();
    run_once_ok(&cfg);
    let conn = Connection::open(dir.path().join("state/supportdesk.db")).unwrap();
    let (kind, error, raw_len): (String, String, i64) = conn
        .query_row(
            "SELECT kind, error, length(raw) FROM messages WHERE source_key = '1.poison'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(kind, "poison");
    assert!(error.contains("attachments"), "{error}");
    assert_eq!(raw_len as usize, poison.len(), "raw bytes kept");
    assert_eq!(
        count(&conn, "SELECT count(*) FROM tickets"),
        1,
        "the next message flowed"
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM tickets WHERE requester = 'ann@example.com'"
        ),
        1
    );
    // Never retried as a new message.
    assert!(run(&cfg, &["run", "--once"], &[]).status.success());
    assert_eq!(count(&conn, "SELECT count(*) FROM messages"), 2);
}
