//! The daemon: SIGHUP reload (good and bad configs) with sd_notify, the
//! systemd unit's security score, and the admin alert for an unreachable
//! mailbox.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;
use rusqlite::Connection;

#[test]
fn sighup_reloads_a_good_config_refuses_a_bad_one_and_notifies_systemd() {
    let dir = tempfile::tempdir().unwrap();
    let a = maildir(dir.path(), "a");
    let b = maildir(dir.path(), "b");
    let cfg = dir.path().join("supportdesk.toml");
    std::fs::write(&cfg, maildir_config(dir.path(), &["a"])).unwrap();
    let sock_path = dir.path().join("notify.sock");
    let notes = notify_listener(&sock_path);
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
    let status = child.wait().unwrap();
    assert!(status.success(), "daemon exit status {status}");
}

/// The notes a daemon sends to `NOTIFY_SOCKET` at `path`, as received.
fn notify_listener(path: &std::path::Path) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    use std::os::unix::net::UnixDatagram;
    let sock = UnixDatagram::bind(path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let notes = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let n = notes.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            if let Ok(len) = sock.recv(&mut buf) {
                n.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..len]).to_string());
            }
        }
    });
    notes
}

/// The watchdog pings while the store answers, withholds its ping while
/// the store thread is stuck (here: waiting out the busy timeout on a
/// database another process has locked), and pings again once it is free.
#[test]
fn the_watchdog_withholds_its_ping_while_the_store_is_stuck() {
    let dir = tempfile::tempdir().unwrap();
    let a = maildir(dir.path(), "a");
    let cfg = dir.path().join("supportdesk.toml");
    std::fs::write(&cfg, maildir_config(dir.path(), &["a"])).unwrap();
    let sock_path = dir.path().join("notify.sock");
    let notes = notify_listener(&sock_path);
    let pings = || {
        notes
            .lock()
            .unwrap()
            .iter()
            .filter(|n| n.lines().any(|l| l == "WATCHDOG=1"))
            .count()
    };
    let log = dir.path().join("stderr.log");
    let mut child = Daemon(
        Command::new(BIN)
            .arg("--config")
            .arg(&cfg)
            .arg("run")
            .env("NOTIFY_SOCKET", &sock_path)
            // A ping every second.
            .env("WATCHDOG_USEC", "2000000")
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    deliver(&a, 1, "Ann <ann@example.com>");
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
    wait_until("the first ticket", || tickets() == 1);
    wait_until("three pings", || pings() >= 3);

    // Another process takes the write lock; the next mail's commit waits
    // on it for the busy timeout (30 s), and the store thread with it.
    let locker = Connection::open(&db_path).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();
    deliver(&a, 2, "Bea <bea@example.com>");
    let withheld = || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("withholding the watchdog ping")
    };
    wait_until("the ping withheld", withheld);
    let before = pings();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        pings(),
        before,
        "pinged while the store was stuck:\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
    assert!(child.try_wait().unwrap().is_none(), "the daemon still runs");

    locker.execute_batch("COMMIT").unwrap();
    drop(locker);
    wait_until("pings again", || pings() >= before + 2);
    wait_until("the second ticket", || tickets() == 2);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "daemon exit status {status}");
}

/// SIGHUP reloads the templates with the config: an edited
/// acknowledgement is used for the next ticket; a template broken by the
/// admin is refused on reload, and the running (good) templates go on.
#[test]
fn sighup_reloads_templates_and_refuses_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let a = maildir(dir.path(), "a");
    let templates = dir.path().join("templates");
    let copied = Command::new("cp")
        .arg("-r")
        .arg(format!("{ROOT}/templates"))
        .arg(&templates)
        .status()
        .unwrap();
    assert!(copied.success());
    let cfg = dir.path().join("supportdesk.toml");
    std::fs::write(
        &cfg,
        maildir_config(dir.path(), &["a"]).replace(
            &format!("templates_dir = \"{ROOT}/templates\""),
            &format!("templates_dir = \"{}\"", templates.display()),
        ),
    )
    .unwrap();
    assert!(
        std::fs::read_to_string(&cfg)
            .unwrap()
            .contains(templates.to_str().unwrap())
    );
    let log = dir.path().join("stderr.log");
    let mut child = Daemon(
        Command::new(BIN)
            .arg("--config")
            .arg(&cfg)
            .arg("run")
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let out = dir.path().join("out");
    // The ack of the ticket whose requester is `who`, once written.
    let ack_to = |who: &str| -> Option<String> {
        std::fs::read_dir(&out).ok()?.find_map(|e| {
            let text = std::fs::read_to_string(e.ok()?.path()).ok()?;
            text.contains(&format!("To: {who}")).then_some(text)
        })
    };
    let hup = || {
        assert!(
            Command::new("kill")
                .args(["-HUP", &child.id().to_string()])
                .status()
                .unwrap()
                .success()
        )
    };
    let reloads = |what: &str| std::fs::read_to_string(&log).unwrap().matches(what).count();
    deliver(&a, 1, "ann@example.com");
    wait_until("the first ack", || ack_to("ann@example.com").is_some());
    const MARK: &str = "Our phone line is open from 8 to 18.";
    assert!(!ack_to("ann@example.com").unwrap().contains(MARK));

    let ack = templates.join("ack.en.txt");
    let original = std::fs::read_to_string(&ack).unwrap();
    std::fs::write(&ack, format!("{original}\n{MARK}\n")).unwrap();
    hup();
    wait_until("the reload", || reloads("config reloaded") == 1);
    deliver(&a, 2, "bea@example.com");
    wait_until("the second ack", || ack_to("bea@example.com").is_some());
    assert!(
        ack_to("bea@example.com").unwrap().contains(MARK),
        "the edited template is used after SIGHUP"
    );

    // The admin's typo: an unclosed block. Refused; the edited template
    // that was loaded goes on, and the customer's mail gets its ack.
    std::fs::write(&ack, format!("{original}\n{{% if priority %}}\n")).unwrap();
    hup();
    wait_until("the refusal", || reloads("reload refused") == 1);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("ack.en.txt"),
        "the refusal names the file:\n{text}"
    );
    deliver(&a, 3, "cid@example.com");
    wait_until("the third ack", || ack_to("cid@example.com").is_some());
    assert!(ack_to("cid@example.com").unwrap().contains(MARK));
    assert!(child.try_wait().unwrap().is_none(), "the daemon still runs");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "daemon exit status {status}");
    assert_eq!(reloads("config reloaded"), 1);
}
