//! No servers needed: the demo config run twice, and `check-config` on the
//! demo and the examples (accepted, and errors named by file, line, column
//! and key).

use std::path::{Path, PathBuf};

use crate::common::*;
use crate::support::demo_copy;

#[test]
fn demo_runs_twice_and_the_second_run_says_nothing_new() {
    let (dir, cfg) = demo_copy();
    let out = run_once_ok(&cfg);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("3 new tickets, 1 other message recorded"),
        "{stdout}"
    );
    // Three acknowledgements, and the manager's weekly digest (the
    // latest one due, sent once).
    let emls: Vec<String> = std::fs::read_dir(dir.path().join("out/outbox"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(emls.len(), 4);
    let digests: Vec<&String> = emls
        .iter()
        .filter(|m| m.contains("Subject: [SLA digest]"))
        .collect();
    assert_eq!(digests.len(), 1);
    assert!(
        digests[0].contains("<manager@demo.example>"),
        "{}",
        digests[0]
    );
    assert!(
        digests[0].contains("multipart/alternative"),
        "{}",
        digests[0]
    );
    let out = run(&cfg, &["run", "--once"], &[]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("nothing new arrived"), "{stdout}");
    assert_eq!(
        std::fs::read_dir(dir.path().join("out/outbox"))
            .unwrap()
            .count(),
        4
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
fn the_oauth_examples_pass_check_config_and_name_what_is_missing() {
    // Microsoft's public client needs no secret; Google's reads one.
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(
        creds.path().join("google-client-secret"),
        "not-a-real-secret",
    )
    .unwrap();
    let creds_dir = creds.path().to_str().unwrap();
    for (name, account) in [("microsoft365", "m365"), ("google", "google")] {
        let path = PathBuf::from(format!("{ROOT}/config/examples/{name}.toml"));
        let out = run(
            &path,
            &["check-config"],
            &[("CREDENTIALS_DIRECTORY", creds_dir)],
        );
        let printed = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {printed}");
        assert!(
            !printed.contains("not-a-real-secret"),
            "{name} shows a secret: {printed}"
        );
        assert!(
            printed.contains(&format!("oauth {account} ("))
                && printed.contains(&format!("auth login {account}")),
            "{name}: {printed}"
        );
        let out = run(&path, &["auth", "status"], &[]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name}: not signed in is not ok"
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("not signed in"));
    }
    let path = PathBuf::from(format!("{ROOT}/config/examples/google.toml"));
    let out = run(
        &path,
        &["check-config"],
        &[("CREDENTIALS_DIRECTORY", "/nonexistent")],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("key `oauth.google.client_secret_credential`"),
        "{err}"
    );
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

#[test]
fn maildir_takes_unseen_files_in_cur_and_leaves_seen_ones() {
    // A mail client (or an admin's `mv`) may leave unread mail in cur/:
    // with no info part, with ":2," and no flags, or flagged but not Seen.
    let dir = tempfile::tempdir().unwrap();
    let a = maildir(dir.path(), "a");
    let mail = |n: u32| {
        format!(
            "From: C{n} <c{n}@example.com>\nTo: support@desk.test\nSubject: Question {n}\nMessage-ID: <cur-{n}@example.com>\n\nHow do I restore a file?\n"
        )
    };
    let files = [
        ("new/1.host", Some("cur/1.host:2,S")),
        ("cur/2.host", Some("cur/2.host:2,S")),
        ("cur/3.host:2,", Some("cur/3.host:2,S")),
        ("cur/4.host:2,FR", Some("cur/4.host:2,FRS")),
        // Seen: the client has read it, the desk leaves it alone.
        ("cur/5.host:2,S", None),
        ("cur/6.host:2,RS", None),
    ];
    for (i, (f, _)) in files.iter().enumerate() {
        std::fs::write(a.join(f), mail(i as u32 + 1)).unwrap();
    }
    let cfg = dir.path().join("supportdesk.toml");
    std::fs::write(&cfg, maildir_config(dir.path(), &["a"])).unwrap();
    let out = run_once_ok(&cfg);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().any(|l| l.starts_with("4 new tickets")),
        "{stdout}"
    );
    let conn = db(&cfg);
    let mut keys: Vec<String> = conn
        .prepare("SELECT source_key FROM messages ORDER BY source_key")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    keys.sort();
    assert_eq!(keys, ["1.host", "2.host", "3.host", "4.host"]);
    for (f, seen) in files {
        match seen {
            Some(to) => {
                assert!(a.join(to).is_file(), "{f} marked as {to}");
                assert!(!a.join(f).exists(), "{f} moved");
            }
            None => assert!(a.join(f).is_file(), "{f} untouched"),
        }
    }
    // Marked unread again by the client: the same file name, so not new.
    std::fs::rename(a.join("cur/2.host:2,S"), a.join("cur/2.host:2,")).unwrap();
    let out = run_once_ok(&cfg);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("nothing new arrived"), "{stdout}");
    assert_eq!(count(&conn, "SELECT count(*) FROM messages"), 4);
    assert_eq!(count(&conn, "SELECT count(*) FROM outbox"), 4);
}

#[test]
fn one_message_id_in_two_mailboxes_makes_one_ticket_and_one_ack() {
    // A customer writes To: support@ and Cc: sales@, both read by the
    // desk: the same mail arrives twice under one Message-ID.
    let dir = tempfile::tempdir().unwrap();
    let raw = "From: Dana <dana@example.com>\nTo: support@desk.test\nCc: sales@desk.test\nSubject: Restore fails\nMessage-ID: <twice@example.com>\n\nThe restore of last night's backup fails.\n";
    for m in ["support", "sales"] {
        let md = maildir(dir.path(), m);
        std::fs::write(md.join(format!("new/1.{m}")), raw).unwrap();
    }
    let cfg = dir.path().join("supportdesk.toml");
    std::fs::write(&cfg, maildir_config(dir.path(), &["support", "sales"])).unwrap();
    run_once_ok(&cfg);
    let conn = db(&cfg);
    assert_eq!(count(&conn, "SELECT count(*) FROM tickets"), 1);
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM outbox WHERE kind = 'ack' AND recipients = 'dana@example.com'"
        ),
        1
    );
    // Both copies recorded (and marked in their own mailbox), one as the
    // ticket's mail, the other as its duplicate on the same ticket.
    let mut rows: Vec<(String, String, Option<i64>)> = conn
        .prepare(
            "SELECT mailbox, kind, ticket_id FROM messages WHERE message_id = 'twice@example.com'",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows.sort_by(|x, y| x.1.cmp(&y.1));
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (rows[0].1.as_str(), rows[1].1.as_str()),
        ("customer", "duplicate"),
        "{rows:?}"
    );
    assert_ne!(rows[0].0, rows[1].0, "one in each mailbox");
    assert_eq!(rows[0].2, Some(1));
    assert_eq!(rows[1].2, Some(1), "the duplicate is kept on the ticket");
    for m in ["support", "sales"] {
        assert!(
            dir.path().join(format!("{m}/cur/1.{m}:2,S")).is_file(),
            "{m}: marked"
        );
    }
    // And again in another run: still one ticket, one ack.
    let md = dir.path().join("sales");
    std::fs::write(md.join("new/2.sales"), raw).unwrap();
    run_once_ok(&cfg);
    assert_eq!(count(&conn, "SELECT count(*) FROM tickets"), 1);
    assert_eq!(count(&conn, "SELECT count(*) FROM outbox"), 1);
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM messages WHERE kind = 'duplicate'"
        ),
        2
    );
}

#[test]
fn log_format_json_writes_one_json_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let a = maildir(dir.path(), "a");
    deliver(&a, 1, "Ann <ann@example.com>");
    let cfg = dir.path().join("supportdesk.toml");
    std::fs::write(
        &cfg,
        maildir_config(dir.path(), &["a"]).replacen(
            "[desk]\n",
            "[desk]\nlog_format = \"json\"\n",
            1,
        ),
    )
    .unwrap();
    let out = run(&cfg, &["run", "--once"], &[("RUST_LOG", "info")]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.len() >= 2, "{stderr}");
    let mut messages = Vec::new();
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["timestamp"].is_string(), "{l}");
        assert!(
            matches!(
                v["level"].as_str(),
                Some("INFO" | "WARN" | "ERROR" | "DEBUG")
            ),
            "{l}"
        );
        messages.push(
            v["fields"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    assert!(messages.iter().all(|m| !m.is_empty()), "{messages:?}");
    // Structured fields stay fields, beside the message.
    assert!(
        lines.iter().any(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["fields"].as_object().is_some_and(|f| f.len() > 1)
        }),
        "{stderr}"
    );
    // The environment overrides the config either way.
    let out = run(
        &cfg,
        &["run", "--once"],
        &[("RUST_LOG", "info"), ("SUPPORTDESK_LOG_FORMAT", "text")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_err()),
        "{stderr}"
    );
    assert!(!stderr.is_empty());
}
