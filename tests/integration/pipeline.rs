//! The pipeline end to end on a real Dovecot + Postfix: tickets and
//! acknowledgements over STARTTLS and implicit TLS, a crash between commit
//! and \Seen mark, the daemon in IDLE stopped by SIGTERM, and the ticket
//! lifecycle (agents, threading, escalation, the tickets/stats CLI). The
//! SMTP login failure is in outbox.rs.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_customers_three_tickets_three_acks_over_starttls() {
    // INTERNALDATE has whole seconds.
    let started = chrono::Utc::now() - chrono::TimeDelta::seconds(1);
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
    // The summary line, not "13 new tickets" somewhere.
    assert!(
        stdout.lines().any(|l| l.starts_with("3 new tickets")),
        "{stdout}"
    );

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
    let received = chrono::DateTime::parse_from_rfc3339(&received)
        .unwrap_or_else(|e| panic!("{received}: {e}"))
        .to_utc();
    assert!(
        started <= received && received <= chrono::Utc::now(),
        "{received} is not the server's arrival time (after {started})"
    );
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

/// The outbox's two commit points: killed between the claim and the send,
/// the row goes out once after the restart; killed between the server's
/// 250 and the "sent" commit, it goes out again with the same Message-ID
/// (at least once, never under a new identity).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_around_the_smtp_send_resends_the_same_message() {
    let stack = start_stack();
    let config = write_config(&stack, false);
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
    let conn_at = || db(&config);
    let ack = |conn: &rusqlite::Connection| -> (String, String) {
        conn.query_row(
            "SELECT status, message_id FROM outbox WHERE kind = 'ack'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };

    // Claimed, not sent.
    let out = run(
        &config,
        &["run", "--once"],
        &[("SUPPORTDESK_FAULT", "after_claim")],
    );
    assert!(
        !out.status.success(),
        "the fault should have killed the process"
    );
    let conn = conn_at();
    let (status, mid) = ack(&conn);
    assert_eq!(status, "pending");
    assert!(
        sink_messages_within(&stack, 1, Duration::from_secs(3))
            .await
            .is_empty()
    );
    // The message itself was committed and marked \Seen before the outbox ran.
    let mut s = imap_login(&stack, "support", "supportpw").await;
    s.select("INBOX").await.unwrap();
    assert!(s.uid_search("UNSEEN").await.unwrap().is_empty());
    let _ = s.logout().await;

    // Sent (250), killed before the commit.
    let out = run(
        &config,
        &["run", "--once"],
        &[("SUPPORTDESK_FAULT", "after_send")],
    );
    assert!(
        !out.status.success(),
        "the fault should have killed the process"
    );
    assert_eq!(ack(&conn).0, "pending");
    let first = parsed(&sink_messages(&stack, 1).await);
    assert_eq!(first.len(), 1);

    // The restart sends it again, as the same message.
    run_once_ok(&config);
    assert_eq!(ack(&conn), ("sent".to_string(), mid.clone()));
    let both = parsed(&sink_messages(&stack, 2).await);
    assert_eq!(both.len(), 2, "delivered twice: once per 250");
    let ids: Vec<String> = both.iter().filter_map(|m| m.message_id.clone()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    let bare = |s: &str| s.trim_matches(['<', '>']).to_string();
    assert_eq!(bare(&ids[0]), bare(&mid), "the outbox's Message-ID");
    run_once_ok(&config);
    assert_eq!(
        sink_messages(&stack, 2).await.len(),
        2,
        "nothing more once sent"
    );
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
    // Wait for its first pass (an empty mailbox) to finish: from then on
    // only IDLE can bring the message in within the hour.
    wait_until("the first pass", || {
        count_at(
            &config,
            "SELECT count(*) FROM mailbox_health WHERE last_ok_at IS NOT NULL",
        ) == 1
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
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

[trust]
authserv_id = ["mx.desk.test"]

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
    append_at(&mut s, &(stamp("acme.test") + "From: Bob <bob@acme.test>\nTo: support@desk.test\nSubject: Server down\nMessage-ID: <b1@acme.test>\n\nOur backup server is down, all backups fail.\n"), days(2)).await;
    // 2. Carol too, but an agent answered her (3) with #pending, and she
    //    replied (4) with only a References header.
    append_at(&mut s, &(stamp("acme.test") + "From: Carol <carol@acme.test>\nTo: support@desk.test\nSubject: Restore question\nMessage-ID: <c1@acme.test>\n\nHow do I restore a single file?\n"), days(2)).await;
    append_at(&mut s, &(stamp("desk.test") + "From: Agent <agent@desk.test>\nTo: carol@acme.test\nCc: support@desk.test\nSubject: Re: Restore question\nMessage-ID: <a1@desk.test>\nIn-Reply-To: <c1@acme.test>\n\n#pending\nPlease send us the job log.\n"), days(1)).await;
    append_at(&mut s, &(stamp("acme.test") + "From: Carol <carol@acme.test>\nTo: support@desk.test\nSubject: the log\nMessage-ID: <c2@acme.test>\nReferences: <c1@acme.test>\n\nHere it is.\n"), chrono::TimeDelta::zero()).await;
    // 5. Bob follows up with In-Reply-To only (no tag in the subject).
    append_at(&mut s, &(stamp("acme.test") + "From: Bob <bob@acme.test>\nTo: support@desk.test\nSubject: more details\nMessage-ID: <b2@acme.test>\nIn-Reply-To: <b1@acme.test>\n\nIt started after the upgrade.\n"), chrono::TimeDelta::zero()).await;
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
    // Never to the agent: the stack delivers agent@ mail to the agent's
    // own mailbox, not to the sink, so look there and at the outbox.
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM outbox WHERE lower(recipients) LIKE '%agent@desk.test%'"
        ),
        0
    );
    let mut agent = imap_login(&stack, "agent", "agentpw").await;
    let inbox = agent.select("INBOX").await.unwrap();
    assert_eq!(inbox.exists, 0, "mail reached the agent's mailbox");
    let _ = agent.logout().await;

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
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    // On a ticket with due instants the change shows: Carol's premium
    // ticket at P1 is due 15 minutes after its reception.
    let before: (String, String) = conn
        .query_row(
            "SELECT priority, first_response_due FROM tickets WHERE id = 2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_ne!(before.0, "P1", "{before:?}");
    assert!(
        run(&config, &["tickets", "priority", "SUP-000002", "P1"], &[])
            .status
            .success()
    );
    let (received, due): (String, String) = conn
        .query_row(
            "SELECT received_at, first_response_due FROM tickets WHERE id = 2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
    assert_eq!(at(&due) - at(&received), chrono::TimeDelta::minutes(15));
    assert_ne!(due, before.1);
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
    // --since after every ticket: nothing counted.
    let tomorrow = (chrono::Utc::now() + chrono::TimeDelta::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let out = run(&config, &["stats", "--since", &tomorrow, "--json"], &[]);
    assert!(out.status.success());
    let tickets_counted: u64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["tickets"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(tickets_counted, 0);
    // tickets list --status, as JSON lines: the one resolved ticket.
    let out = run(
        &config,
        &["tickets", "list", "--status", "resolved", "--json"],
        &[],
    );
    assert!(out.status.success());
    let refs: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["reference"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(refs, ["SUP-000001"]);
    let out = run(&config, &["tickets", "list", "--status", "nonsense"], &[]);
    assert_eq!(out.status.code(), Some(2));
    // Nothing more to escalate for Bob once answered and resolved.
    let next: Option<String> = conn
        .query_row("SELECT fr_next_at FROM tickets WHERE id = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(next, None);
}

/// `move_to`: handled messages leave INBOX for the folder (UID MOVE),
/// only once their tickets are committed; a second pass finds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handled_mail_is_moved_to_the_configured_folder() {
    let stack = start_stack();
    let config = write_config(&stack, false);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("poll_interval = \"1s\"\n"));
    std::fs::write(
        &config,
        text.replacen(
            "poll_interval = \"1s\"\n",
            "poll_interval = \"1s\"\nmove_to = \"Tickets\"\n",
            1,
        ),
    )
    .unwrap();
    let mut s = imap_login(&stack, "support", "supportpw").await;
    s.create("Tickets").await.unwrap();
    for n in 1..=2 {
        append(
            &mut s,
            &customer_mail(
                n,
                &format!("c{n}@example.com"),
                "Broken",
                "The report page is broken.",
            ),
        )
        .await;
    }
    let _ = s.logout().await;
    run_once_ok(&config);
    let conn = db(&config);
    assert_eq!(count(&conn, "SELECT count(*) FROM tickets"), 2);
    let mut s = imap_login(&stack, "support", "supportpw").await;
    assert_eq!(
        s.select("INBOX").await.unwrap().exists,
        0,
        "moved out of INBOX"
    );
    assert_eq!(s.select("Tickets").await.unwrap().exists, 2, "into Tickets");
    let _ = s.logout().await;
    run_once_ok(&config);
    assert_eq!(count(&conn, "SELECT count(*) FROM tickets"), 2);
    assert_eq!(sink_messages(&stack, 2).await.len(), 2);
}
