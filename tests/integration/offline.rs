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
