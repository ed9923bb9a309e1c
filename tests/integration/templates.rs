//! One validation path: `run` (start-up) and a SIGHUP reload refuse a
//! template that check-config refuses, and lose no mail over it.

use std::process::Command;

use crate::common::*;
use crate::support::deliver_at;

/// A Maildir desk whose templates are a private copy; returns the config.
fn desk_with_templates(dir: &std::path::Path) -> std::path::PathBuf {
    let templates = dir.join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    for e in std::fs::read_dir(format!("{ROOT}/templates")).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, templates.join(p.file_name().unwrap())).unwrap();
        }
    }
    maildir(dir, "inbox");
    let cfg = dir.join("supportdesk.toml");
    let text = maildir_config(dir, &["inbox"]).replace(
        &format!("templates_dir = \"{ROOT}/templates\""),
        "templates_dir = \"templates\"",
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// The measured failure of the issue: `{{ signature }}` (a variable the
/// desk never provides) in ack.en.txt.
fn break_ack_template(dir: &std::path::Path) {
    let p = dir.join("templates/ack.en.txt");
    let mut text = std::fs::read_to_string(&p).unwrap();
    text.push_str("{{ signature }}\n");
    std::fs::write(&p, text).unwrap();
}

fn files_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn run_refuses_a_template_check_config_refuses_and_leaves_the_mailbox_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = desk_with_templates(dir.path());
    let inbox = dir.path().join("inbox");
    deliver(&inbox, 1, "Ann <ann@example.com>");
    break_ack_template(dir.path());

    let check = run(&cfg, &["check-config"], &[]);
    assert_eq!(check.status.code(), Some(1));
    let out = run(&cfg, &["run", "--once"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "run must refuse: {err}");
    assert!(
        err.contains("ack.en.txt") && err.contains("undefined"),
        "names the template and the problem: {err}"
    );
    // The same refusal as check-config's.
    assert_eq!(err, String::from_utf8_lossy(&check.stderr));
    assert_eq!(files_in(&inbox.join("new")), 1, "the message stays in new/");
    assert_eq!(files_in(&inbox.join("cur")), 0);
    assert!(
        !dir.path().join("state/supportdesk.db").exists(),
        "nothing was ingested"
    );

    // Mended: the same message gets its ticket and its acknowledgement.
    std::fs::copy(
        format!("{ROOT}/templates/ack.en.txt"),
        dir.path().join("templates/ack.en.txt"),
    )
    .unwrap();
    run_once_ok(&cfg);
    assert_eq!(count(&db(&cfg), "SELECT count(*) FROM tickets"), 1);
    assert_eq!(
        count(
            &db(&cfg),
            "SELECT count(*) FROM outbox WHERE kind = 'ack' AND status = 'sent'"
        ),
        1
    );
}

#[test]
fn sighup_refuses_a_broken_template_and_mail_keeps_flowing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = desk_with_templates(dir.path());
    let inbox = dir.path().join("inbox");
    let log = dir.path().join("stderr.log");
    let child = spawn_daemon(&cfg, &log);
    deliver(&inbox, 1, "Ann <ann@example.com>");
    let acks = "SELECT count(*) FROM outbox WHERE kind = 'ack' AND status = 'sent'";
    wait_until("the first acknowledgement", || count_at(&cfg, acks) == 1);

    break_ack_template(dir.path());
    assert!(
        Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    wait_until("the refusal in the log", || {
        let text = std::fs::read_to_string(&log).unwrap();
        text.contains("reload refused") && text.contains("ack.en.txt")
    });
    // The running templates stay: the next customer is acknowledged.
    deliver(&inbox, 2, "Bea <bea@example.com>");
    wait_until("the second acknowledgement", || count_at(&cfg, acks) == 2);
    assert_eq!(
        count_at(
            &cfg,
            "SELECT count(*) FROM messages WHERE kind IN ('unparsable', 'poison')"
        ),
        0
    );
    stop_daemon(child);
}

/// Appends a line to a template that fails only for the subject given
/// (the sample contexts of the validation use another), so it passes
/// check-config and fails on one real mail.
fn fail_template_on(dir: &std::path::Path, template: &str, subject: &str) {
    let p = dir.join("templates").join(template);
    let mut text = std::fs::read_to_string(&p).unwrap();
    text.push_str(&format!(
        "{{% if subject == \"{subject}\" %}}{{{{ nope }}}}{{% endif %}}\n"
    ));
    std::fs::write(&p, text).unwrap();
}

fn restore_template(dir: &std::path::Path, template: &str) {
    std::fs::copy(
        format!("{ROOT}/templates/{template}"),
        dir.join("templates").join(template),
    )
    .unwrap();
}

#[test]
fn a_template_failing_at_run_time_holds_the_ack_and_the_notice_until_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = desk_with_templates(dir.path());
    let text = std::fs::read_to_string(&cfg).unwrap().replacen(
        "[desk]\n",
        "[desk]\nadmin_address = \"Admin <admin@desk.test>\"\n",
        1,
    ) + "\n[escalation]\ntick = \"1s\"\n\n[[escalation.recipients]]\naddress = \"Manager <manager@desk.test>\"\nlanguage = \"en\"\ntimezone = \"UTC\"\n"
        + TRUST;
    std::fs::write(&cfg, text).unwrap();
    fail_template_on(dir.path(), "ack.en.txt", "Ack me");
    fail_template_on(dir.path(), "escalation.en.txt", "[P1] Breach me");
    let check = run(&cfg, &["check-config"], &[]);
    assert!(
        check.status.success(),
        "the samples render: {}",
        String::from_utf8_lossy(&check.stderr)
    );

    let inbox = dir.path().join("inbox");
    deliver_at(
        &inbox,
        "1.ann",
        "From: Ann <ann@example.com>\nTo: support@desk.test\nSubject: Ack me\nMessage-ID: <ann-1@example.com>\n\nOur backups fail every night.\n",
        std::time::SystemTime::now(),
    );
    // A premium P1 that arrived an hour ago: its 15-minute first response
    // is breached, so the sweeper owes the manager a breach notice.
    deliver_at(
        &inbox,
        "2.cio",
        &(stamp("acme-nyc.example")
            + "From: CIO <cio@acme-nyc.example>\nTo: support@desk.test\nSubject: [P1] Breach me\nMessage-ID: <cio-1@acme-nyc.example>\n\nProduction is down, nothing works.\n"),
        std::time::SystemTime::now() - std::time::Duration::from_secs(3600),
    );
    let log = dir.path().join("stderr.log");
    let child = spawn_daemon(&cfg, &log);
    let q = |sql: &str| count_at(&cfg, sql);
    let held = "SELECT count(*) FROM tickets WHERE held_ack IS NOT NULL";
    let acks = "SELECT count(*) FROM outbox WHERE kind = 'ack'";
    let notices = "SELECT count(*) FROM outbox WHERE kind = 'escalation'";
    let alerts = "SELECT count(*) FROM outbox WHERE kind = 'alert'";
    wait_until("both tickets", || q("SELECT count(*) FROM tickets") == 2);
    wait_until("the held acknowledgement", || q(held) == 1);
    wait_until("the admin alert", || q(alerts) == 1);
    // Several sweeps (tick 1s) go by: the failing notice is not sent, and
    // its level does not advance.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(q(acks), 1, "only the CIO's acknowledgement went out");
    assert_eq!(q(notices), 0);
    assert_eq!(q("SELECT count(*) FROM tickets WHERE fr_level > 0"), 0);
    assert_eq!(q("SELECT count(*) FROM escalations"), 0);
    let status = run(&cfg, &["status"], &[]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("acknowledgements held: 1"), "{status}");
    let note: String = db(&cfg)
        .query_row(
            "SELECT note FROM tickets WHERE requester = 'ann@example.com'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(note.contains("acknowledgement held"), "{note}");

    // Fixed and reloaded: the acknowledgement and the notice go out, once.
    restore_template(dir.path(), "ack.en.txt");
    restore_template(dir.path(), "escalation.en.txt");
    assert!(
        Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    wait_until("the released acknowledgement", || {
        q(acks) == 2 && q(held) == 0
    });
    wait_until("the breach notice", || q(notices) >= 1);
    wait_until("the recovery notice to the admin", || q(alerts) == 2);
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(q(acks), 2, "each acknowledgement once");
    assert_eq!(q(notices), 1, "the breach notice once");
    let raw: Vec<u8> = db(&cfg)
        .query_row(
            "SELECT raw FROM outbox WHERE kind = 'ack' AND recipients = 'ann@example.com'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.contains("In-Reply-To: <ann-1@example.com>"), "{raw}");
    // The CIO's mail arrived first (an hour ago): Ann's ticket is the second.
    assert!(raw.contains("Subject: [SUP-000002] Ack me"), "{raw}");
    stop_daemon(child);
}
