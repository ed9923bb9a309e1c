//! One validation path: `run` (start-up) and a SIGHUP reload refuse a
//! template that check-config refuses, and lose no mail over it.

use std::process::Command;

use crate::common::*;

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
