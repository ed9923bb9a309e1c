//! Broken and hostile input: malformed mail recorded without panic in
//! bounded memory, auto-replies/bounces/list mail never acknowledged, and
//! line breaks that cannot inject headers over real SMTP.

use std::process::Command;
use std::time::Duration;

use crate::common::*;
use rusqlite::Connection;

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
        // What each input is: a customer's mail however broken its MIME
        // (a person wrote it and waits for an answer), except the empty
        // file (nothing to parse) and the noise (no From: nobody to answer).
        let (want_kind, want_error) = match *what {
            "empty file" => ("unparsable", Some("")),
            "100 KB of random bytes" => ("automated", Some("no From address")),
            _ => ("customer", None),
        };
        assert_eq!(kind, want_kind, "{what}");
        assert_eq!(
            ticket.is_some(),
            want_kind == "customer",
            "{what}: ticket {ticket:?}"
        );
        let error: Option<String> = conn
            .query_row(
                "SELECT error FROM messages WHERE source_key = ?1",
                [format!("{i}.bad")],
                |r| r.get(0),
            )
            .unwrap();
        match want_error {
            None => assert_eq!(error, None, "{what}"),
            Some(e) => assert!(
                error.as_deref().is_some_and(|got| got.contains(e)),
                "{what}: error {error:?}"
            ),
        }
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

[trust]
authserv_id = ["mx.desk.test"]

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
        &(stamp("acme.test") + "From: =?utf-8?b?RXZlDQpCY2M6IHZpY3RpbTJAZXZpbC50ZXN0AA==?= <eve@acme.test>\nTo: support@desk.test\nSubject: =?utf-8?b?SGVscA0KQmNjOiB2aWN0aW1AZXZpbC50ZXN0DQpYLUluamVjdGVkOiB5ZXM=?=\nMessage-ID: <inject-1@acme.test>\n\nOur server is down, all backups fail.\n"),
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
        let to: Vec<&str> = m.to.iter().map(|a| a.email.as_str()).collect();
        assert!(
            to == ["eve@acme.test"] || to == ["manager@corp.test"],
            "{to:?}"
        );
    }
    // The subject as sent, decoded by mail-parser itself: our own parse
    // flattens control characters, so it could not see one we sent.
    let raw_subject = |raw: &[u8]| {
        mail_parser::MessageParser::default()
            .parse(raw)
            .and_then(|m| m.subject().map(str::to_string))
            .unwrap_or_default()
    };
    let inbound = b"Subject: =?utf-8?b?SGVscA0KQmNjOiB2aWN0aW1AZXZpbC50ZXN0DQpYLUluamVjdGVkOiB5ZXM=?=\r\n\r\nx\r\n";
    assert!(
        raw_subject(inbound).contains("\r\n"),
        "the check's parser keeps a line break inside an encoded word"
    );
    for raw in &got {
        let s = raw_subject(raw);
        assert!(!s.chars().any(char::is_control), "{s:?}");
    }
    let subjects: Vec<String> = parsed(&got).into_iter().map(|m| m.subject).collect();
    assert!(
        subjects
            .iter()
            .any(|s| s.contains("Help Bcc: victim@evil.test X-Injected: yes")),
        "the customer's words are kept, on one line: {subjects:?}"
    );
}
