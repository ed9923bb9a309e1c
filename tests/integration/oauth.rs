//! OAuth 2.0 logins on real servers: an authlib authorization server with
//! the device and refresh grants (tests/mailstack/oauth_server.py, HTTPS
//! with the test CA), Dovecot's oauth2 passdb validating its JWTs for IMAP,
//! and Postfix's submission asking that Dovecot, so SMTP XOAUTH2 and
//! OAUTHBEARER are checked by the same server. The sign-in is `supportdesk
//! auth login` itself, its code approved in the server's verification page
//! as a user's browser would.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;

/// A desk on the stack with the given mailboxes, outbox and extra TOML.
fn desk(stack: &Stack, mailboxes: &str, outbox: &str, extra: &str) -> PathBuf {
    let dir = stack.dir.path();
    let cfg = format!(
        r#"{parts}
[desk]
name = "Test Desk"
address = "Test Desk <support@desk.test>"
reference_prefix = "SUP"
state_dir = "state"
templates_dir = "{root}/templates"
{mailboxes}
{outbox}
{extra}
"#,
        parts = example_parts("zmanda"),
        root = ROOT,
    );
    let path = dir.join("supportdesk.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

fn imap_mailbox(stack: &Stack, name: &str, user: &str, login: &str) -> String {
    format!(
        r#"
[[mailboxes]]
name = "{name}"
kind = "imap"
host = "localhost"
port = {port}
tls = "implicit"
username = "{user}"
{login}
ca_file = "{ca}"
poll_interval = "1s"
"#,
        port = stack.imaps,
        ca = stack.ca.display(),
    )
}

fn smtp_outbox(stack: &Stack, login: &str) -> String {
    format!(
        r#"
[outbox]
kind = "smtp"
host = "localhost"
port = {port}
tls = "starttls"
username = "support"
{login}
ca_file = "{ca}"
"#,
        port = stack.submission,
        ca = stack.ca.display(),
    )
}

fn token_file(config: &Path, account: &str) -> serde_json::Value {
    let p = config
        .parent()
        .unwrap()
        .join(format!("state/oauth/{account}.json"));
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn mode(p: &Path) -> u32 {
    std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions()) & 0o777
}

fn out_text(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
}

async fn append_to(stack: &Stack, user: &str, raw: &str) {
    let mut s = imap_login(stack, user, &format!("{user}pw")).await;
    append(&mut s, raw).await;
    let _ = s.logout().await;
}

fn tickets(config: &Path) -> i64 {
    count_at(config, "SELECT count(*) FROM tickets")
}

/// Signed in by the device grant, the desk reads a mailbox over XOAUTH2, a
/// shared mailbox with a delegate's token over OAUTHBEARER, a password
/// mailbox beside them, and acknowledges all three through SMTP XOAUTH2.
#[tokio::test(flavor = "multi_thread")]
async fn device_login_then_mail_in_and_acks_out_over_oauth_beside_a_password_mailbox() {
    let stack = start_stack();
    let oauth = start_oauth(&stack, &[]);
    let metrics = free_port();
    let cfg = desk(
        &stack,
        &(imap_mailbox(
            &stack,
            "support",
            "support",
            "auth = \"oauth2\"\noauth = \"desk\"",
        ) + &imap_mailbox(
            &stack,
            "shared",
            "helpdesk",
            "auth = \"oauth2\"\noauth = \"delegate\"",
        ) + &imap_mailbox(&stack, "agentbox", "agent", "password = \"agentpw\"")),
        &smtp_outbox(&stack, "auth = \"oauth2\"\noauth = \"desk\""),
        &(oauth.account("desk", "xoauth2")
            + &oauth.account("delegate", "oauthbearer")
            + &format!("\n[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n")),
    );

    // Before any sign-in: each OAuth login names what to do, the password
    // mailbox logs in.
    let out = run(&cfg, &["check-config", "--connect"], &[]);
    let text = out_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("mailbox support: ")
            && text
                .contains("OAuth account desk: not signed in; run `supportdesk auth login desk`"),
        "{text}"
    );
    assert!(text.contains("mailbox agentbox: IMAP login"), "{text}");
    let out = run(&cfg, &["auth", "status"], &[]);
    assert_eq!(out.status.code(), Some(1));

    let printed = oauth.device_login(&cfg, "desk", "support");
    assert!(printed.contains("token owner support"), "{printed}");
    oauth.device_login(&cfg, "delegate", "agent");
    let state = cfg.parent().unwrap().join("state");
    assert_eq!(mode(&state.join("oauth")), 0o700);
    assert_eq!(mode(&state.join("oauth/desk.json")), 0o600);
    let desk_tokens = token_file(&cfg, "desk");
    let access = desk_tokens["access_token"].as_str().unwrap().to_string();
    let refresh = desk_tokens["refresh_token"].as_str().unwrap().to_string();
    assert!(access.len() > 20 && refresh.len() > 8);

    let out = run(&cfg, &["auth", "status"], &[]);
    let text = out_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("desk (generic): signed in") && text.contains("refresh token held"),
        "{text}"
    );
    assert!(
        text.contains("used by: mailbox support (IMAP as support), outbox (SMTP as support)"),
        "{text}"
    );
    assert!(
        text.contains("delegate (generic): signed in") && text.contains("as agent"),
        "{text}"
    );
    assert!(
        !text.contains(&access) && !text.contains(&refresh),
        "auth status shows a token"
    );

    // The real OAuth login on each server.
    let out = run(&cfg, &["check-config", "--connect"], &[]);
    let text = out_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains(&access), "check-config shows a token");

    for (user, n) in [("support", 1), ("helpdesk", 2), ("agent", 3)] {
        append_to(
            &stack,
            user,
            &customer_mail(
                n,
                "alice@customer.test",
                &format!("Backup job {n} failed"),
                "Last night's backup failed.",
            ),
        )
        .await;
    }
    let log = stack.dir.path().join("daemon.log");
    let daemon = spawn_daemon(&cfg, &log);
    wait_for("three tickets", Duration::from_secs(60), || {
        tickets(&cfg) == 3
    });
    let ids = sink_message_ids_within(&stack, 3, Duration::from_secs(60)).await;
    assert_eq!(ids.len(), 3, "{ids:?}");
    let per_mailbox: i64 = count_at(
        &cfg,
        "SELECT count(DISTINCT mailbox) FROM messages WHERE ticket_id IS NOT NULL",
    );
    assert_eq!(per_mailbox, 3);
    let body = scrape(metrics).unwrap();
    assert_eq!(
        sample(&body, "supportdesk_oauth_token_valid{account=\"desk\"}"),
        Some(1.0),
        "{body}"
    );
    assert!(
        sample(
            &body,
            "supportdesk_oauth_access_token_expiry_timestamp_seconds{account=\"delegate\"}"
        )
        .is_some_and(|t| t > chrono::Utc::now().timestamp() as f64),
        "{body}"
    );
    stop_daemon(daemon);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        !logged.contains(&access) && !logged.contains(&refresh),
        "the log shows a token"
    );

    // The delegate's token opens only the mailbox it was given: support's
    // is refused, with the server's reason.
    let cfg = desk(
        &stack,
        &imap_mailbox(
            &stack,
            "support",
            "support",
            "auth = \"oauth2\"\noauth = \"delegate\"",
        ),
        &smtp_outbox(&stack, "password = \"supportpw\""),
        &oauth.account("delegate", "oauthbearer"),
    );
    let out = run(&cfg, &["check-config", "--connect"], &[]);
    let text = out_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("IMAP OAUTHBEARER login as support with OAuth account delegate failed")
            && text.contains("server said"),
        "{text}"
    );
    assert!(text.contains("outbox: SMTP"), "{text}");
}

/// Access tokens living 8 seconds: the running daemon refreshes them as
/// they expire (IMAP after a server restart, SMTP at each session), the
/// rotated refresh token replacing the old one, and no mail is missed.
#[tokio::test(flavor = "multi_thread")]
async fn short_lived_access_tokens_are_refreshed_by_the_running_daemon_and_rotated() {
    let stack = start_stack();
    let oauth = start_oauth(&stack, &["--access-lifetime", "8"]);
    let cfg = desk(
        &stack,
        &imap_mailbox(
            &stack,
            "support",
            "support",
            "auth = \"oauth2\"\noauth = \"desk\"",
        ),
        &smtp_outbox(&stack, "auth = \"oauth2\"\noauth = \"desk\""),
        &oauth.account("desk", "xoauth2"),
    );
    oauth.device_login(&cfg, "desk", "support");
    let first_refresh = token_file(&cfg, "desk")["refresh_token"].clone();
    let log = stack.dir.path().join("daemon.log");
    let daemon = spawn_daemon(&cfg, &log);
    append_to(
        &stack,
        "support",
        &customer_mail(1, "alice@customer.test", "Restore fails", "Help."),
    )
    .await;
    wait_for("the first ticket", Duration::from_secs(60), || {
        tickets(&cfg) == 1
    });
    assert_eq!(
        sink_message_ids_within(&stack, 1, Duration::from_secs(60))
            .await
            .len(),
        1
    );

    // Past the token's life; Dovecot restarts, so IMAP must log in again.
    tokio::time::sleep(Duration::from_secs(9)).await;
    stop_dovecot(&stack);
    start_dovecot(&stack);
    append_to(
        &stack,
        "support",
        &customer_mail(2, "bob@customer.test", "Tape drive offline", "Help."),
    )
    .await;
    wait_for("the second ticket", Duration::from_secs(60), || {
        tickets(&cfg) == 2
    });
    let ids = sink_message_ids_within(&stack, 2, Duration::from_secs(60)).await;
    assert_eq!(ids.len(), 2, "{ids:?}");
    stop_daemon(daemon);

    let t = token_file(&cfg, "desk");
    assert!(t["refreshed_at"].is_string(), "{t}");
    assert_ne!(
        t["refresh_token"], first_refresh,
        "the rotated refresh token is stored"
    );
    assert!(t["last_error"].is_null(), "{t}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("OAuth access token refreshed"), "{logged}");
    // Every ack sent once: the outbox's Message-IDs are the sink's.
    let conn = db(&cfg);
    let mut stmt = conn.prepare("SELECT message_id FROM outbox").unwrap();
    let sent: std::collections::BTreeSet<Option<String>> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|r| Some(r.unwrap().trim_matches(['<', '>']).to_string()))
        .collect();
    assert_eq!(sent, ids);
}

/// Consent withdrawn at the provider: the refresh is refused, status and
/// auth status say so in the provider's words, Prometheus shows it, the
/// admin gets one alert, the mail waits on the server; `auth login`
/// again, without a restart, and the waiting mail comes in.
#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_token_alerts_once_and_mail_resumes_after_a_new_sign_in() {
    let stack = start_stack();
    let oauth = start_oauth(&stack, &["--access-lifetime", "6"]);
    let metrics = free_port();
    let cfg = desk(
        &stack,
        &imap_mailbox(
            &stack,
            "support",
            "support",
            "auth = \"oauth2\"\noauth = \"desk\"",
        ),
        // The alert must get out: the outbox logs in with a password.
        &smtp_outbox(&stack, "password = \"supportpw\""),
        &(oauth.account("desk", "xoauth2")
            + &format!("\n[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n")
            + "\n[escalation]\ntick = \"1s\"\n"),
    );
    let text = std::fs::read_to_string(&cfg).unwrap().replacen(
        "[desk]\n",
        // Long enough that the alert goes out after the daemon has tried
        // the new token: Dovecot's restart below first shows as a closed
        // connection, and the alert names the last error it saw.
        "[desk]\nadmin_address = \"Admin <admin@desk.test>\"\nfetch_alert_after = \"12s\"\n",
        1,
    );
    std::fs::write(&cfg, text).unwrap();
    oauth.device_login(&cfg, "desk", "support");
    let log = stack.dir.path().join("daemon.log");
    let daemon = spawn_daemon(&cfg, &log);
    append_to(
        &stack,
        "support",
        &customer_mail(1, "alice@customer.test", "Restore fails", "Help."),
    )
    .await;
    wait_for("the first ticket", Duration::from_secs(60), || {
        tickets(&cfg) == 1
    });

    oauth.post(&oauth.admin_revoke_user_url, &[("username", "support")]);
    tokio::time::sleep(Duration::from_secs(7)).await;
    stop_dovecot(&stack);
    start_dovecot(&stack);
    append_to(
        &stack,
        "support",
        &customer_mail(2, "bob@customer.test", "Tape drive offline", "Help."),
    )
    .await;

    let subjects = |mails: &[Vec<u8>]| -> Vec<(String, String)> {
        parsed(mails)
            .into_iter()
            .map(|m| (m.subject, m.text))
            .collect()
    };
    let alerts = |all: &[(String, String)]| {
        all.iter()
            .filter(|(s, _)| s.contains("mailbox support cannot be fetched"))
            .count()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let all = loop {
        let all = subjects(&sink_messages_within(&stack, 0, Duration::ZERO).await);
        if alerts(&all) > 0 || std::time::Instant::now() > deadline {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let (_, body) = all
        .iter()
        .find(|(s, _)| s.contains("cannot be fetched"))
        .unwrap_or_else(|| panic!("no fetch alert: {all:?}"));
    assert!(
        body.contains("consent withdrawn") && body.contains("supportdesk auth login desk"),
        "{body}"
    );
    let out = run(&cfg, &["status"], &[]);
    let text = out_text(&out);
    assert!(
        text.contains("mailbox support") && text.contains("consent withdrawn"),
        "{text}"
    );
    assert!(
        text.contains("oauth desk (generic): ") && text.contains("REFUSED by the provider"),
        "{text}"
    );
    let out = run(&cfg, &["auth", "status"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", out_text(&out));
    let m = scrape(metrics).unwrap();
    assert_eq!(
        sample(&m, "supportdesk_oauth_token_valid{account=\"desk\"}"),
        Some(0.0),
        "{m}"
    );
    assert!(
        sample(
            &m,
            "supportdesk_oauth_refresh_failures_total{account=\"desk\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{m}"
    );
    // The second mail waits on the server, untouched.
    assert_eq!(tickets(&cfg), 1);

    // Signed in again while the daemon runs: the mail comes in, once.
    oauth.device_login(&cfg, "desk", "support");
    wait_for("the waiting mail's ticket", Duration::from_secs(30), || {
        tickets(&cfg) == 2
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let all = loop {
        let all = subjects(&sink_messages_within(&stack, 0, Duration::ZERO).await);
        let recovered = all
            .iter()
            .any(|(s, _)| s.contains("mailbox support recovered"));
        if recovered || std::time::Instant::now() > deadline {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        all.iter()
            .any(|(s, _)| s.contains("mailbox support recovered")),
        "{all:?}"
    );
    assert_eq!(alerts(&all), 1, "one alert: {all:?}");
    stop_daemon(daemon);
    let out = run(&cfg, &["auth", "status"], &[]);
    assert!(out.status.success(), "{}", out_text(&out));
}

/// An access token the provider revoked before its expiry (Dovecot asks
/// the server on every login here, RFC 7662): IMAP refuses it, the desk
/// refreshes once and logs in with the new one; SMTP then uses that one.
#[tokio::test(flavor = "multi_thread")]
async fn an_access_token_refused_before_its_expiry_is_replaced_once() {
    let stack = start_stack();
    let oauth = start_oauth_with(&stack, &[], &[("OAUTH_VALIDATION", "introspect")]);
    let cfg = desk(
        &stack,
        &imap_mailbox(
            &stack,
            "support",
            "support",
            "auth = \"oauth2\"\noauth = \"desk\"",
        ),
        &smtp_outbox(&stack, "auth = \"oauth2\"\noauth = \"desk\""),
        &oauth.account("desk", "oauthbearer"),
    );
    oauth.device_login(&cfg, "desk", "support");
    let out = run(&cfg, &["check-config", "--connect"], &[]);
    assert!(out.status.success(), "{}", out_text(&out));
    let before = token_file(&cfg, "desk");
    let revoked = before["access_token"].as_str().unwrap().to_string();
    oauth.post(
        &oauth.revoke_url,
        &[
            ("token", &revoked),
            ("token_type_hint", "access_token"),
            ("client_id", &oauth.client_id),
            ("client_secret", &oauth.client_secret),
        ],
    );
    let out = run(
        &cfg,
        &["check-config", "--connect"],
        &[("RUST_LOG", "info")],
    );
    let text = out_text(&out);
    assert!(out.status.success(), "{text}");
    let after = token_file(&cfg, "desk");
    assert_ne!(
        after["access_token"], before["access_token"],
        "a new access token"
    );
    assert!(
        after["refreshed_at"].is_string() && after["last_error"].is_null(),
        "{after}"
    );
    assert!(!text.contains(&revoked), "a token in the output: {text}");
}

/// The browser sign-in (authorization code with PKCE, for Google): the
/// printed URL, the sign-in page's POST, the redirected address pasted
/// back; the token then logs in to IMAP and SMTP. A pasted address of
/// another sign-in (its state changed) is refused and stores nothing.
#[tokio::test(flavor = "multi_thread")]
async fn browser_sign_in_with_pkce_and_a_pasted_address() {
    let stack = start_stack();
    let oauth = start_oauth(&stack, &[]);
    let cfg = desk(
        &stack,
        &imap_mailbox(
            &stack,
            "support",
            "support",
            "auth = \"oauth2\"\noauth = \"desk\"",
        ),
        &smtp_outbox(&stack, "auth = \"oauth2\"\noauth = \"desk\""),
        &oauth.account("desk", "xoauth2"),
    );
    let out = oauth.browser_login(&cfg, "desk", "support", |l| l.replace("state=", "state=x"));
    let text = out_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("state differs"), "{text}");
    assert!(!cfg.parent().unwrap().join("state/oauth/desk.json").exists());

    let out = oauth.browser_login(&cfg, "desk", "support", |l| l.to_string());
    let text = out_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("token owner support"), "{text}");
    let out = run(&cfg, &["check-config", "--connect"], &[]);
    assert!(out.status.success(), "{}", out_text(&out));
}
