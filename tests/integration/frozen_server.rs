//! A frozen IMAP server never delays the other mailboxes, IDLE is
//! re-issued, secrets stay out of the logs; TLS certificates are verified;
//! HTML acknowledgements escape the customer's words.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::common::*;

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
