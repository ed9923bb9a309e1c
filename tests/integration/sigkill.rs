//! Reliability under SIGKILL (500 messages, 50 kills: nothing lost or
//! duplicated), and with it: template errors in `check-config`, loop
//! guards, SMTP 4xx/5xx handling, and IMAP down at start or restarted.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use crate::support::demo_copy;
use rusqlite::Connection;

/// A stream of customer mail, the daemon SIGKILLed at random instants
/// again and again, then left to finish: every message is in exactly one
/// ticket, every ticket has exactly one acknowledgement in the outbox, all
/// of them sent, and the SMTP server got each at least once (a resend
/// after a kill between the server's 250 and our commit carries the same
/// Message-ID).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_loses_and_duplicates_nothing() {
    use rand::Rng;
    // Enough work that 50 kills find most of it still to do (with 500,
    // the faster pipeline finished by the 17th kill; with 1000, by the
    // 16th, 8 mid-stream in CI); four domains, each under the per-domain
    // ack limit.
    const MESSAGES: usize = 2000;
    const KILLS: usize = 50;
    let stack = start_stack();
    let config = write_config_with(&stack, false, "");
    let mut s = imap_login(&stack, "support", "supportpw").await;
    for n in 0..MESSAGES {
        let domain = ["example.com", "example.net", "example.org", "example.edu"][n % 4];
        append(
            &mut s,
            &format!(
                "From: User {n} <user{n}@{domain}>\nTo: support@desk.test\nSubject: Problem {n}\nMessage-ID: <p{n}@{domain}>\n\nThe report page is broken.\n"
            ),
        )
        .await;
    }
    let _ = s.logout().await;

    let mut rng = rand::rng();
    let mut progress = Vec::new();
    // A daemon lives 30-300 ms; under load (a full parallel run) its
    // start-up alone can take longer, so each kill that found no progress
    // since the last one widens the window by 200 ms (up to 3 s) until one
    // does. Kills stay random; only the ones after progress count below.
    let mut window = 300u64;
    let mut last = (0, 0);
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
        tokio::time::sleep(Duration::from_millis(rng.random_range(30..window))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // A kill before the first migration leaves no tables yet: 0.
        let now = (
            count_at(&config, "SELECT count(*) FROM tickets"),
            count_at(&config, "SELECT count(*) FROM outbox WHERE status = 'sent'"),
        );
        window = if now == last {
            (window + 200).min(3000)
        } else {
            300
        };
        last = now;
        progress.push(now);
    }
    eprintln!("(tickets, acks sent) after each kill: {progress:?}");
    // Enough kills must have landed mid-stream: after the daemon had done
    // some work in that run (progress rose since the previous kill) and
    // before all of it was done. Kills during start-up count for nothing;
    // without this, daemons that all died before their first commit would
    // leave the whole job to the final run and still pass.
    let mut before = (0, 0);
    let mut mid_stream = 0;
    for &(t, sent) in &progress {
        let rose = t > before.0 || sent > before.1;
        let unfinished = t < MESSAGES as i64 || sent < MESSAGES as i64;
        if rose && unfinished {
            mid_stream += 1;
        }
        before = (t, sent);
    }
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
    // Each ticket holds exactly one message, the one its requester sent
    // (user N wrote <pN@DOMAIN>).
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM tickets t WHERE
               (SELECT count(*) FROM messages m WHERE m.ticket_id = t.id) = 1
               AND (SELECT 'user' || substr(trim(m.message_id, '<>'), 2) FROM messages m
                    WHERE m.ticket_id = t.id) = t.requester"
        ),
        MESSAGES as i64,
        "one message per ticket, from its requester"
    );

    let sent = parsed(&sink_messages(&stack, MESSAGES).await);
    let bare = |s: &str| s.trim_matches(['<', '>']).to_string();
    let mut ids: Vec<String> = sent
        .iter()
        .filter_map(|m| m.message_id.as_deref().map(bare))
        .collect();
    let received = ids.len();
    ids.sort();
    ids.dedup();
    // The set of Message-IDs at the server is the outbox's: a resend
    // under a fresh Message-ID would not make up for a lost one.
    let mut queued: Vec<String> = conn
        .prepare("SELECT message_id FROM outbox WHERE kind = 'ack'")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|m| bare(&m.unwrap()))
        .collect();
    queued.sort();
    assert_eq!(ids, queued, "every ack arrived at least once, as itself");
    // And every customer message is \Seen on the server.
    let mut s = imap_login(&stack, "support", "supportpw").await;
    s.select("INBOX").await.unwrap();
    assert!(s.uid_search("UNSEEN").await.unwrap().is_empty());
    let _ = s.logout().await;
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
    // The first lines of `extra` are still in [outbox]. One SMTP session,
    // so the three go out one after another with PIPELINING (Postfix
    // offers it): each refusal is read as its own message's (450, 550).
    // This does not tell a session kept in step from one dropped and
    // reopened after a refusal: both give these answers.
    let config = write_config_with(&stack, false, "max_attempts = 3\nconnections = 1\n");
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

    // Past its backoff (the test clock of debug builds): tried again, and
    // failed for good at max_attempts, the server's 450 kept.
    let later = |h: i64| {
        (chrono::Utc::now() + chrono::TimeDelta::hours(h))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    run_once_at(&config, &later(2));
    let (st, attempts, err) = row("tempfail@example.com");
    assert_eq!((st.as_str(), attempts), ("pending", 2), "{err:?}");
    run_once_at(&config, &later(4));
    let (st, attempts, err) = row("tempfail@example.com");
    assert_eq!((st.as_str(), attempts), ("failed", 3));
    assert!(err.unwrap_or_default().contains("450"));
    run_once_at(&config, &later(6));
    assert_eq!(
        row("tempfail@example.com").1,
        3,
        "never tried after failing"
    );
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
    // And once past any backoff (the test clock), both are sent, each once.
    let later = (chrono::Utc::now() + chrono::TimeDelta::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    run_once_at(&config, &later);
    assert_eq!(
        count(&conn, "SELECT count(*) FROM outbox WHERE status = 'sent'"),
        2
    );
    // Postfix may hold one deferred from while Dovecot was down: now.
    postfix_flush(&stack);
    let ids = sink_message_ids_within(&stack, 2, Duration::from_secs(60)).await;
    let queued: std::collections::BTreeSet<_> = conn
        .prepare("SELECT message_id FROM outbox WHERE kind = 'ack'")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|m| Some(m.unwrap().trim_matches(['<', '>']).to_string()))
        .collect();
    let trails: Vec<String> = queued
        .difference(&ids)
        .flatten()
        .map(|id| format!("{id}:\n{}", postfix_trail(&stack, id)))
        .collect();
    assert_eq!(
        ids,
        queued,
        "Postfix on the missing ones:\n{}",
        trails.join("\n")
    );
    // Each handed to Postfix once. The sink itself may hold a copy more:
    // the test kills the Dovecot that Postfix delivers to over LMTP, and
    // Postfix delivers again a message whose LMTP answer it never got
    // (seen in CI: three mails at the sink for two Message-IDs).
    for id in ids.iter().flatten() {
        assert_eq!(postfix_accepted(&stack, id), 1, "{id}");
    }
}
