//! The ingest decision table, in process: a real store (SQLite in memory),
//! the demo config and the shipped templates, no mail servers.
//! Each case is a raw message (or a batch) and the outcome, ticket and
//! acknowledgement (or held reason) it must give.

use std::path::Path;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use tokio::sync::Notify;

use super::decide::{self, Effect};
use super::{Action, Incoming, Intake, Outcome};
use crate::config::{self, Config, Secrets};
use crate::lifecycle::Followup;
use crate::render::Renderer;
use crate::store::report::{self, TicketDetail};
use crate::store::{Store, tickets};

struct Desk {
    _dir: tempfile::TempDir,
    config: Arc<Config>,
    store: Store,
    intake: Intake,
}

fn config_in(dir: &Path) -> Config {
    config_with(dir, "")
}

/// The demo config with `trust` lines added to its `[trust]` section.
fn config_with(dir: &Path, trust: &str) -> Config {
    config_edited(dir, trust, |s| s)
}

fn config_edited(dir: &Path, trust: &str, edit: impl FnOnce(String) -> String) -> Config {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = edit(std::fs::read_to_string(root.join("config/demo.toml")).unwrap())
        .replace(
            "authserv_id = [\"mx.demo.example\"]\n",
            &format!("authserv_id = [\"mx.demo.example\"]\n{trust}\n"),
        )
        .replace(
            "state_dir = \"../demo-out\"",
            &format!("state_dir = {:?}", dir.join("state")),
        )
        .replace(
            "templates_dir = \"../templates\"",
            &format!("templates_dir = {:?}", root.join("templates")),
        )
        .replace(
            "path = \"../demo-out/outbox\"",
            &format!("path = {:?}", dir.join("outbox")),
        );
    config::parse_with(&dir.join("supportdesk.toml"), &src, Secrets::Skip).unwrap()
}

fn desk() -> Desk {
    desk_with("")
}

fn desk_with(trust: &str) -> Desk {
    desk_edited(trust, |s| s)
}

/// The demo desk with its config text edited first.
fn desk_edited(trust: &str, edit: impl FnOnce(String) -> String) -> Desk {
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(config_edited(dir.path(), trust, edit));
    std::fs::create_dir_all(&config.desk.state_dir).unwrap();
    // SQLite in memory; the state dir holds only attachment files.
    let store = Store::open(Path::new(":memory:")).unwrap();
    let renderer = Arc::new(
        Renderer::load(&config.desk.templates_dir, config.triage.default_language()).unwrap(),
    );
    let intake = Intake::new(
        store.clone(),
        config.clone(),
        renderer,
        Arc::new(Notify::new()),
        Arc::new(Notify::new()),
    );
    Desk {
        _dir: dir,
        config,
        store,
        intake,
    }
}

/// A plain mail; `headers` are extra header lines.
fn mail(from: &str, subject: &str, mid: &str, headers: &[&str], body: &str) -> Vec<u8> {
    let mut s = format!(
        "From: {from}\r\nTo: support@demo.example\r\nSubject: {subject}\r\nMessage-ID: <{mid}>\r\nDate: Mon, 16 Nov 2026 10:00:00 +0000\r\n"
    );
    for h in headers {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str("Content-Type: text/plain; charset=utf-8\r\n\r\n");
    s.push_str(body);
    s.push_str("\r\n");
    s.into_bytes()
}

/// Mail from the demo's agent domain, as the border MTA the demo config
/// trusts (mx.demo.example) stamps it after checking its DKIM signature.
fn agent_mail(subject: &str, mid: &str, headers: &[&str], body: &str) -> Vec<u8> {
    stamped(
        "pass",
        "demo.example",
        mail("Agent <agent@demo.example>", subject, mid, headers, body),
    )
}

fn incoming(mailbox: &str, key: &str, raw: Vec<u8>) -> Incoming {
    Incoming {
        mailbox: mailbox.into(),
        source_key: key.into(),
        uidvalidity: None,
        uid: None,
        received_at: Utc::now(),
        raw: raw.into(),
    }
}

impl Desk {
    async fn one(&self, key: &str, raw: Vec<u8>) -> Outcome {
        let mut v = self.batch(vec![(key, raw)]).await;
        assert_eq!(v.len(), 1);
        v.pop().unwrap()
    }

    /// One message received at `at`.
    async fn one_at(&self, key: &str, raw: Vec<u8>, at: chrono::DateTime<Utc>) -> Outcome {
        let mut i = incoming("inbox", key, raw);
        i.received_at = at;
        let mut v = self.intake.submit(vec![i]).await.unwrap();
        assert_eq!(v.len(), 1);
        v.pop().unwrap()
    }

    async fn batch(&self, msgs: Vec<(&str, Vec<u8>)>) -> Vec<Outcome> {
        let n = msgs.len();
        let out = self
            .intake
            .submit(
                msgs.into_iter()
                    .map(|(k, raw)| incoming("inbox", k, raw))
                    .collect(),
            )
            .await
            .unwrap();
        assert_eq!(out.len(), n, "one outcome per message");
        out
    }

    fn show(&self, reference: &str) -> TicketDetail {
        let r = reference.to_string();
        self.store
            .call_blocking(move |conn| {
                let id = report::find_id(conn, &r)?.expect("ticket exists");
                report::show(conn, id)
            })
            .unwrap()
    }

    fn tickets(&self) -> usize {
        self.store
            .call_blocking(|conn| report::list(conn, None, None))
            .unwrap()
            .len()
    }

    /// Kinds of the incoming messages kept without a ticket.
    fn orphan_kinds(&self) -> Vec<(String, Option<String>)> {
        self.store
            .call_blocking(|conn| report::unticketed(conn))
            .unwrap()
    }
}

fn assert_outcome(o: &Outcome, action: Action, ticket: Option<&str>, ack: bool) {
    assert_eq!(o.action, action, "{o:?}");
    assert_eq!(o.ticket.as_deref(), ticket, "{o:?}");
    assert_eq!(o.queued_ack, ack, "{o:?}");
}

fn events(d: &TicketDetail) -> Vec<String> {
    d.events.iter().map(|e| e.action.clone()).collect()
}

const ALICE: &str = "Alice <alice@customer.example>";

#[tokio::test]
async fn new_ticket_is_acknowledged_and_its_replies_thread() {
    let d = desk();
    let o = d
        .one("1", mail(ALICE, "Backups fail", "m1@c", &[], "Hello"))
        .await;
    assert_outcome(&o, Action::NewTicket, Some("SUP-000001"), true);
    let t = d.show("SUP-000001");
    assert_eq!(t.requester, "alice@customer.example");
    assert_eq!(t.outgoing.len(), 1, "one acknowledgement queued");
    assert!(t.outgoing[0].kind.starts_with("ack"), "{:?}", t.outgoing);

    // In-Reply-To the customer's first mail.
    let o = d
        .one(
            "2",
            mail(
                ALICE,
                "Re: Backups fail",
                "m2@c",
                &["In-Reply-To: <m1@c>"],
                "More",
            ),
        )
        .await;
    assert_outcome(&o, Action::Followup, Some("SUP-000001"), false);

    // References only (the In-Reply-To is unknown).
    let o = d
        .one(
            "3",
            mail(
                ALICE,
                "Re: Backups fail",
                "m3@c",
                &["In-Reply-To: <unknown@x>", "References: <m1@c> <unknown@x>"],
                "Again",
            ),
        )
        .await;
    assert_outcome(&o, Action::Followup, Some("SUP-000001"), false);

    // In-Reply-To our acknowledgement (a Message-ID in the outbox).
    let ack_id = t.outgoing[0].subject.clone().unwrap();
    let o = d
        .one(
            "4",
            mail(
                ALICE,
                "Re: ack",
                "m4@c",
                &[&format!("In-Reply-To: <{ack_id}>")],
                "Thanks",
            ),
        )
        .await;
    assert_outcome(&o, Action::Followup, Some("SUP-000001"), false);

    // The subject tag, from a colleague at the same domain.
    let o = d
        .one(
            "5",
            mail(
                "Bob <bob@customer.example>",
                "Re: [SUP-000001] Backups fail",
                "m5@c",
                &[],
                "Same here",
            ),
        )
        .await;
    assert_outcome(&o, Action::Followup, Some("SUP-000001"), false);

    // The same tag from a stranger opens a ticket of its own.
    let o = d
        .one(
            "6",
            mail(
                "Mallory <m@elsewhere.example>",
                "Re: [SUP-000001] Backups fail",
                "m6@e",
                &[],
                "Let me in",
            ),
        )
        .await;
    assert_outcome(&o, Action::NewTicket, Some("SUP-000002"), true);
    assert_eq!(d.show("SUP-000001").messages.len(), 5);
    assert_eq!(d.tickets(), 2);
}

#[tokio::test]
async fn agent_response_and_commands_then_customer_reopens() {
    let d = desk();
    d.one("1", mail(ALICE, "Help", "m1@c", &[], "Hello")).await;
    let o = d
        .one(
            "2",
            agent_mail("Re: [SUP-000001] Help", "a1@d", &[], "Looking into it."),
        )
        .await;
    assert_outcome(&o, Action::Agent, Some("SUP-000001"), false);
    let t = d.show("SUP-000001");
    assert!(
        t.first_responded_at.is_some(),
        "the response stops the clock"
    );
    assert_eq!(t.status, "open");

    let o = d
        .one(
            "3",
            agent_mail(
                "Re: [SUP-000001] Help",
                "a2@d",
                &["In-Reply-To: <m1@c>"],
                "#close",
            ),
        )
        .await;
    assert_outcome(&o, Action::Agent, Some("SUP-000001"), false);
    assert_eq!(d.show("SUP-000001").status, "resolved");

    // Within the reopen window: the reply reopens the ticket.
    let o = d
        .one(
            "4",
            mail(
                ALICE,
                "Re: Help",
                "m2@c",
                &["In-Reply-To: <a2@d>"],
                "Not fixed",
            ),
        )
        .await;
    assert_outcome(&o, Action::Followup, Some("SUP-000001"), false);
    let t = d.show("SUP-000001");
    assert_eq!(t.status, "open");
    assert!(
        events(&t).contains(&"reopened".to_string()),
        "{:?}",
        t.events
    );

    // An agent mail that threads to nothing is kept for an admin.
    let o = d.one("5", agent_mail("Hi", "a3@d", &[], "#close")).await;
    assert_outcome(&o, Action::Agent, None, false);
    assert_eq!(d.orphan_kinds(), vec![("agent".to_string(), None)]);
}

/// The premium plan with a resolution target, and `reopen` as given.
fn premium_with_resolution(reopen: &'static str) -> impl FnOnce(String) -> String {
    move |s: String| {
        let old = "  { priority = \"P3\", first_response = { wall_clock = \"4h\" } },\n";
        assert!(s.contains(old));
        s.replace(
            old,
            "  { priority = \"P3\", first_response = { wall_clock = \"4h\" }, resolution = { wall_clock = \"24h\" } },\n",
        )
        .replace(
            "[sla.plans.premium]\n",
            &format!("[sla.plans.premium]\n{reopen}\n"),
        )
    }
}

/// Reopen: a ticket resolved and reopened by the customer three days later
/// (past its old due instants) counts its clocks again from the reopening
/// message (default "restart"), or goes on where it stopped ("resume").
#[tokio::test]
async fn reopen_restarts_or_resumes_the_clocks() {
    let t0 = Utc.with_ymd_and_hms(2026, 11, 16, 10, 0, 0).unwrap();
    let h = chrono::TimeDelta::hours;
    let cio = "CIO <cio@acme-nyc.example>";
    let ts = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    for (rule, restart) in [
        ("", true),
        ("reopen = \"restart\"", true),
        ("reopen = \"resume\"", false),
    ] {
        let d = desk_edited("", premium_with_resolution(rule));
        let o = d
            .one_at(
                "1",
                stamped(
                    "pass",
                    "acme-nyc.example",
                    mail(cio, "Help", "m1@c", &[], "Hello"),
                ),
                t0,
            )
            .await;
        assert_outcome(&o, Action::NewTicket, Some("SUP-000001"), true);
        let t = d.show("SUP-000001");
        assert_eq!(
            (t.priority.as_deref(), t.plan.as_str()),
            (Some("P3"), "premium"),
            "{rule}"
        );
        assert_eq!(t.first_response_due, Some(ts(t0 + h(4))));
        assert_eq!(t.resolution_due, Some(ts(t0 + h(24))));
        d.one_at(
            "2",
            agent_mail("Re: [SUP-000001] Help", "a1@d", &[], "#close\nDone."),
            t0 + h(2),
        )
        .await;
        assert_eq!(d.show("SUP-000001").status, "resolved");
        let back = t0 + h(72);
        let o = d
            .one_at(
                "3",
                stamped(
                    "pass",
                    "acme-nyc.example",
                    mail(
                        cio,
                        "Re: Help",
                        "m2@c",
                        &["In-Reply-To: <a1@d>"],
                        "Not fixed",
                    ),
                ),
                back,
            )
            .await;
        assert_outcome(&o, Action::Followup, Some("SUP-000001"), false);
        let t = d.show("SUP-000001");
        assert_eq!(t.status, "open", "{rule}");
        let reopened = t
            .events
            .iter()
            .find(|e| e.action == "reopened")
            .expect("event");
        if restart {
            assert_eq!(
                reopened.detail.as_deref(),
                Some("clocks restarted"),
                "{rule}"
            );
            assert_eq!(t.first_responded_at, None, "a first response is due again");
            assert_eq!(t.first_response_due, Some(ts(back + h(4))), "{rule}");
            assert_eq!(t.resolution_due, Some(ts(back + h(24))), "{rule}");
        } else {
            assert_eq!(
                reopened.detail.as_deref(),
                Some("resolution clock resumed, resolved for 252000s"),
                "{rule}"
            );
            assert_eq!(t.first_responded_at, Some(ts(t0 + h(2))), "stays answered");
            // 2h of the 24h were used before the #close: 22h are left.
            assert_eq!(t.resolution_due, Some(ts(back + h(22))), "{rule}");
        }
    }
}

/// A sweep that comes late (the daemon was down) never sends a warning
/// once the clock is due: a recipient who takes only warnings hears
/// nothing of an overdue ticket, one who takes breaches gets the breach.
#[tokio::test]
async fn a_late_sweep_sends_no_warning_after_the_due_instant() {
    for (levels, want) in [
        ("levels = [\"warning\"]\n", vec![]),
        ("", vec!["breach".to_string()]),
    ] {
        let d = desk_edited("", |s| {
            s.replace(
                "address = \"Support Manager <manager@demo.example>\"\n",
                &format!("address = \"Support Manager <manager@demo.example>\"\n{levels}"),
            )
        });
        d.one_at(
            "1",
            stamped(
                "pass",
                "acme-nyc.example",
                mail("CIO <cio@acme-nyc.example>", "Backup question", "w1@c", &[], "Hello, could you tell me how to restore a single file from last week's backup? Thanks."),
            ),
            Utc::now() - chrono::TimeDelta::days(2),
        )
        .await;
        let cfg = d.config.clone();
        let renderer =
            Renderer::load(&cfg.desk.templates_dir, cfg.triage.default_language()).unwrap();
        let (queued, levels_sent, fr_level): (usize, Vec<String>, u8) = d
            .store
            .call_blocking(move |conn| {
                let n = crate::escalate::sweep(conn, &cfg, &renderer, Utc::now())?;
                let sent = conn
                    .prepare("SELECT level FROM escalations ORDER BY id")?
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()?;
                let level =
                    conn.query_row("SELECT fr_level FROM tickets WHERE id = 1", [], |r| {
                        r.get(0)
                    })?;
                Ok((n, sent, level))
            })
            .unwrap();
        assert_eq!(levels_sent, want, "{levels}");
        assert_eq!(queued, want.len());
        assert_eq!(
            fr_level, 2,
            "the breach is handled, sent or not: never retried"
        );
    }
}

/// Sweeps the desk's store at `now`; the levels recorded so far.
fn sweep_at(d: &Desk, now: chrono::DateTime<Utc>) -> Vec<String> {
    let cfg = d.config.clone();
    let renderer = Renderer::load(&cfg.desk.templates_dir, cfg.triage.default_language()).unwrap();
    d.store
        .call_blocking(move |conn| {
            crate::escalate::sweep(conn, &cfg, &renderer, now)?;
            Ok(conn
                .prepare("SELECT clock || ' ' || level FROM escalations ORDER BY id")?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?)
        })
        .unwrap()
}

/// Every level of both clocks, and who gets it: a recipient naming the
/// plan takes its warnings, the default the breach and the second level
/// (a recipient for P1 only is not told of a P3), on the resolution clock
/// too.
#[tokio::test]
async fn each_level_of_each_clock_reaches_its_recipients() {
    let d = desk_edited("", |s| {
        premium_with_resolution("")(s)
            .replace("[escalation]\n", "[escalation]\nsecond_level_after = \"2h\"\n")
            .replace(
                "address = \"Support Manager <manager@demo.example>\"\n",
                "address = \"Support Manager <manager@demo.example>\"\nlevels = [\"warning\", \"breach\", \"second\"]\n",
            )
            + "\n[[escalation.recipients]]\naddress = \"premium@demo.example\"\nplans = [\"premium\"]\nlevels = [\"warning\"]\n\n[[escalation.recipients]]\naddress = \"director@demo.example\"\npriorities = [\"P1\"]\nlevels = [\"second\"]\n"
    });
    let t0 = Utc::now() - chrono::TimeDelta::days(3);
    let m = chrono::TimeDelta::minutes;
    let cio = "CIO <cio@acme-nyc.example>";
    d.one_at(
        "1",
        stamped(
            "pass",
            "acme-nyc.example",
            mail(cio, "Help", "e1@c", &[], "Hello"),
        ),
        t0,
    )
    .await;
    let t = d.show("SUP-000001");
    assert_eq!(
        (t.plan.as_str(), t.priority.as_deref()),
        ("premium", Some("P3"))
    );
    let who = |d: &Desk| -> Vec<String> {
        d.store
            .call_blocking(|conn| {
                Ok(conn
                    .prepare("SELECT clock || ' ' || level || ' ' || recipient FROM escalations ORDER BY id")?
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()?)
            })
            .unwrap()
    };
    // First response 4h: warning at 80% (3h12), breach at 4h, second 2h later.
    sweep_at(&d, t0 + m(3 * 60 + 11));
    assert!(who(&d).is_empty(), "{:?}", who(&d));
    sweep_at(&d, t0 + m(3 * 60 + 13));
    sweep_at(&d, t0 + m(4 * 60 + 1));
    sweep_at(&d, t0 + m(6 * 60 + 1));
    // Resolution 24h: its warning at 19h12.
    sweep_at(&d, t0 + m(19 * 60 + 13));
    assert_eq!(
        who(&d),
        [
            "first_response warning premium@demo.example",
            "first_response breach manager@demo.example",
            "first_response second manager@demo.example",
            "resolution warning premium@demo.example",
        ]
    );
}

/// The spam filter's verdict: a message it flagged opens no ticket and is
/// not acknowledged, kept as "spam"; one it passed ("NO") is mail.
#[tokio::test]
async fn x_spam_flag_yes_is_kept_as_spam_without_ticket_or_ack() {
    let d = desk();
    let o = d
        .one(
            "1",
            mail(
                ALICE,
                "Cheap pills",
                "s1@c",
                &["X-Spam-Flag: YES"],
                "Buy now",
            ),
        )
        .await;
    assert_outcome(&o, Action::Spam, None, false);
    assert_eq!(d.orphan_kinds(), vec![("spam".to_string(), None)]);
    let o = d
        .one(
            "2",
            mail(ALICE, "Backups fail", "s2@c", &["X-Spam-Flag: NO"], "Hello"),
        )
        .await;
    assert_outcome(&o, Action::NewTicket, Some("SUP-000001"), true);
}

/// A restarted reopen starts escalation over: a ticket that breached in
/// its first life breaches (and is notified) again when the restarted
/// first response is late. An agent's #reopen with text is that first
/// response itself.
#[tokio::test]
async fn a_restarted_reopen_escalates_again_and_an_agent_reopen_answers() {
    let d = desk_edited("", premium_with_resolution(""));
    let t0 = Utc::now() - chrono::TimeDelta::days(5);
    let h = chrono::TimeDelta::hours;
    let cio = "CIO <cio@acme-nyc.example>";
    d.one_at(
        "1",
        stamped(
            "pass",
            "acme-nyc.example",
            mail(cio, "Help", "r1@c", &[], "Hello"),
        ),
        t0,
    )
    .await;
    assert_eq!(sweep_at(&d, t0 + h(5)), ["first_response breach"]);
    d.one_at(
        "2",
        agent_mail("Re: [SUP-000001] Help", "ra1@d", &[], "#close\nDone."),
        t0 + h(6),
    )
    .await;
    let back = t0 + h(48);
    d.one_at(
        "3",
        stamped(
            "pass",
            "acme-nyc.example",
            mail(
                cio,
                "Re: Help",
                "r2@c",
                &["In-Reply-To: <ra1@d>"],
                "Not fixed",
            ),
        ),
        back,
    )
    .await;
    assert_eq!(
        sweep_at(&d, back + h(1)),
        Vec::<String>::new(),
        "nothing due yet"
    );
    assert_eq!(
        sweep_at(&d, back + h(5)),
        ["first_response breach"],
        "breached again, notified again"
    );

    // The agent reopens it with an answer: the restarted first response
    // is that answer.
    d.one_at(
        "4",
        agent_mail("Re: [SUP-000001] Help", "ra2@d", &[], "#close"),
        back + h(6),
    )
    .await;
    d.one_at(
        "5",
        agent_mail(
            "Re: [SUP-000001] Help",
            "ra3@d",
            &[],
            "#reopen\nLooking at it again.",
        ),
        back + h(7),
    )
    .await;
    let t = d.show("SUP-000001");
    assert_eq!(t.status, "open");
    let ts = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    assert_eq!(t.first_responded_at, Some(ts(back + h(7))));
}

/// A pending ticket closed (by an agent or the auto-close) and reopened
/// with `reopen = "resume"`: neither the wait on the customer nor the time
/// resolved counts.
#[tokio::test]
async fn a_resumed_reopen_after_a_pending_close_does_not_count_the_wait() {
    let d = desk_edited("", premium_with_resolution("reopen = \"resume\""));
    let t0 = Utc::now() - chrono::TimeDelta::days(20);
    let h = chrono::TimeDelta::hours;
    let cio = "CIO <cio@acme-nyc.example>";
    d.one_at(
        "1",
        stamped(
            "pass",
            "acme-nyc.example",
            mail(cio, "Help", "p1@c", &[], "Hello"),
        ),
        t0,
    )
    .await;
    // Answered and pending after 2h, closed after 5 days of waiting,
    // reopened 2 days later: 22h of the 24h are left.
    d.one_at(
        "2",
        agent_mail(
            "Re: [SUP-000001] Help",
            "pa1@d",
            &[],
            "#pending\nYour log, please.",
        ),
        t0 + h(2),
    )
    .await;
    d.one_at(
        "3",
        agent_mail("Re: [SUP-000001] Help", "pa2@d", &[], "#close"),
        t0 + h(2 + 120),
    )
    .await;
    let back = t0 + h(2 + 120 + 48);
    d.one_at(
        "4",
        stamped(
            "pass",
            "acme-nyc.example",
            mail(
                cio,
                "Re: Help",
                "p2@c",
                &["In-Reply-To: <pa2@d>"],
                "Here it is",
            ),
        ),
        back,
    )
    .await;
    let t = d.show("SUP-000001");
    let ts = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    assert_eq!(t.status, "open");
    assert_eq!(t.resolution_due, Some(ts(back + h(22))));
    assert_eq!(t.paused_secs, (120 + 48) * 3600);
}

/// The text of the acknowledgement queued for a ticket.
fn ack_text(d: &Desk, reference: &str) -> String {
    let r = reference.to_string();
    let raw: Vec<u8> = d
        .store
        .call_blocking(move |conn| {
            Ok(conn.query_row(
                "SELECT o.raw FROM outbox o JOIN tickets t ON t.id = o.ticket_id
                 WHERE t.reference = ?1 AND o.kind = 'ack'",
                [r],
                |row| row.get(0),
            )?)
        })
        .unwrap();
    crate::core::inbound::parse(&raw).unwrap().text
}

/// The acknowledgement promises its time in the customer's zone and
/// language, and never a time already past.
#[tokio::test]
async fn the_promise_in_the_customers_terms() {
    let d = desk();
    let now = Utc::now();
    // A French mail from a New York customer of the standard plan (office
    // hours in the customer's zone).
    let o = d
        .one_at(
            "1",
            stamped(
                "pass",
                "acme-nyc.example",
                mail(
                    "Jean <jean@acme-nyc.example>",
                    "Sauvegarde en échec",
                    "f1@c",
                    &[],
                    "Bonjour, la sauvegarde de cette nuit a échoué sur un serveur. Merci de regarder.",
                ),
            ),
            now,
        )
        .await;
    assert_outcome(&o, Action::NewTicket, Some("SUP-000001"), true);
    let t = d.show("SUP-000001");
    assert_eq!(t.language, "fr");
    let due = chrono::DateTime::parse_from_rfc3339(t.first_response_due.as_deref().unwrap())
        .unwrap()
        .to_utc();
    let ny: chrono_tz::Tz = "America/New_York".parse().unwrap();
    let want = crate::core::when::local(due, ny, "fr");
    assert!(want.ends_with("(heure de New York)"), "{want}");
    let text = ack_text(&d, "SUP-000001");
    assert!(
        text.contains(&format!("Un agent vous répondra au plus tard le {want}.")),
        "{text}"
    );

    // A premium mail that waited three days while the desk was down: its
    // first response (4h) is already due when it is acknowledged.
    let o = d
        .one_at(
            "2",
            stamped(
                "pass",
                "acme-nyc.example",
                mail("CIO <cio@acme-nyc.example>", "Restore question", "f2@c", &[], "Hello, could you tell me how to restore a single file from last week's backup? Thanks."),
            ),
            now - chrono::TimeDelta::days(3),
        )
        .await;
    assert_outcome(&o, Action::NewTicket, Some("SUP-000002"), true);
    let text = ack_text(&d, "SUP-000002");
    assert!(
        text.contains("Your request is being handled with priority")
            && !text.contains("at the latest"),
        "{text}"
    );
}

#[tokio::test]
async fn a_command_and_a_reply_in_one_batch_apply_in_order() {
    let d = desk();
    d.one("1", mail(ALICE, "Help", "m1@c", &[], "Hello")).await;
    // The reply must see the ticket the #close left: resolved, so it
    // reopens it (the second message is decided in a second round).
    let out = d
        .batch(vec![
            (
                "2",
                agent_mail("Re: [SUP-000001] Help", "a1@d", &[], "#close"),
            ),
            (
                "3",
                mail(ALICE, "Re: Help", "m2@c", &["In-Reply-To: <a1@d>"], "Wait"),
            ),
        ])
        .await;
    assert_outcome(&out[0], Action::Agent, Some("SUP-000001"), false);
    assert_outcome(&out[1], Action::Followup, Some("SUP-000001"), false);
    let t = d.show("SUP-000001");
    assert_eq!(t.status, "open");
    assert_eq!(
        events(&t)
            .into_iter()
            .filter(|e| e == "resolved" || e == "reopened")
            .collect::<Vec<_>>(),
        ["resolved", "reopened"]
    );
}

#[tokio::test]
async fn a_batch_sees_its_own_tickets_and_acknowledgements() {
    let d = desk();
    let limit = d.config.desk.ack_limit_per_hour as usize;
    let mut msgs = vec![
        ("1", mail(ALICE, "First", "b1@c", &[], "One")),
        (
            "2",
            mail(ALICE, "Re: First", "b2@c", &["In-Reply-To: <b1@c>"], "Two"),
        ),
    ];
    // Enough new tickets from one address to pass the hourly cap.
    let keys: Vec<String> = (0..limit + 1).map(|i| format!("n{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        msgs.push((
            k.as_str(),
            mail(
                "Carol <carol@other.example>",
                &format!("Issue {i}"),
                &format!("c{i}@o"),
                &[],
                "text",
            ),
        ));
    }
    let out = d.batch(msgs).await;
    assert_outcome(&out[0], Action::NewTicket, Some("SUP-000001"), true);
    assert_outcome(&out[1], Action::Followup, Some("SUP-000001"), false);
    for (i, o) in out[2..].iter().enumerate() {
        let reference = format!("SUP-{:06}", i + 2);
        assert_outcome(o, Action::NewTicket, Some(&reference), i < limit);
    }
    let last = d.show(&format!("SUP-{:06}", limit + 2));
    assert!(
        last.note
            .as_deref()
            .unwrap_or("")
            .contains("in the last hour (limit"),
        "{:?}",
        last.note
    );
}

#[tokio::test]
async fn held_automated_duplicate_already_done_unparsable() {
    let d = desk();
    // No-reply sender: a ticket, no acknowledgement, the reason noted.
    let o = d
        .one(
            "1",
            mail("Robot <no-reply@shop.example>", "Order", "r1@s", &[], "x"),
        )
        .await;
    assert_outcome(&o, Action::NewTicket, Some("SUP-000001"), false);
    let note = d.show("SUP-000001").note.unwrap_or_default();
    assert!(note.contains("no-reply sender"), "{note}");

    // An auto-reply: kept, never a ticket, never acknowledged.
    let o = d
        .one(
            "2",
            mail(
                ALICE,
                "Out of office",
                "oo@c",
                &["Auto-Submitted: auto-replied"],
                "Away",
            ),
        )
        .await;
    assert_outcome(&o, Action::Automated, None, false);

    // A new customer mail, then the same Message-ID through another mailbox.
    let raw = mail(ALICE, "Help", "dup@c", &[], "Hello");
    let o = d.one("3", raw.clone()).await;
    assert_outcome(&o, Action::NewTicket, Some("SUP-000002"), true);
    let o = d
        .intake
        .submit(vec![incoming("other", "x", raw.clone())])
        .await
        .unwrap();
    assert_outcome(&o[0], Action::Duplicate, Some("SUP-000002"), false);
    // The same source key again: nothing new.
    let o = d.one("3", raw).await;
    assert_outcome(&o, Action::AlreadyDone, None, false);

    // Nothing parsable: kept raw with its error.
    let o = d.one("4", b"   \r\n".to_vec()).await;
    assert_outcome(&o, Action::Unparsable, None, false);
    let kinds: Vec<String> = d.orphan_kinds().into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["automated", "unparsable"]);
    assert_eq!(d.tickets(), 2);
}

/// Base64 of `n` zero bytes (a multiple of 3), in lines of 76.
fn zeros_base64(n: usize) -> String {
    assert_eq!(n % 3, 0);
    let b64 = "AAAA".repeat(n / 3);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    lines.join("\r\n")
}

/// A customer mail with one attachment (base64 `content`).
fn with_attachment_of(from: &str, mid: &str, extra: &str, content: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: support@demo.example\r\nSubject: Logs\r\nMessage-ID: <{mid}>\r\n{extra}\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nSee attached\r\n\
         --b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=log.bin\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{content}\r\n--b--\r\n"
    )
    .into_bytes()
}

fn with_attachment(from: &str, mid: &str, extra: &str) -> Vec<u8> {
    with_attachment_of(from, mid, extra, "AAECAw==")
}

#[tokio::test]
async fn attachments_are_written_in_the_analysis_only_for_mail_that_keeps_them() {
    use crate::store::messages::{INLINE_ATTACHMENT_MAX, Kept};
    let d = desk();
    const BIG: usize = 66_000;
    const { assert!(BIG > INLINE_ATTACHMENT_MAX) };
    let big = zeros_base64(BIG);
    let files = |raw: Vec<u8>| {
        let mut a = super::analyse_guarded(&d.config, incoming("inbox", "x", raw));
        super::prewrite_attachments(&d.config, &mut a);
        a.files
    };
    let kept = files(with_attachment_of(ALICE, "a1@c", "", &big)).expect("written in the analysis");
    assert_eq!(kept.len(), 1);
    let Kept::File(rel) = &kept[0].kept else {
        panic!("a large attachment is a file: {:?}", kept[0].kept);
    };
    let on_disk = d.config.desk.state_dir.join(rel);
    let bytes = std::fs::read(&on_disk).unwrap();
    assert!(
        bytes.len() == BIG && bytes.iter().all(|b| *b == 0),
        "{} bytes",
        bytes.len()
    );
    std::fs::remove_file(&on_disk).unwrap();
    // Spam keeps none: nothing written for it.
    let spam = with_attachment_of(ALICE, "a2@c", "X-Spam-Flag: YES\r\n", &big);
    assert!(files(spam).is_none());
    assert!(!on_disk.exists());
    // A small one is kept in its row: no file.
    let small = files(with_attachment(ALICE, "a4@c", "")).expect("kept in the analysis");
    assert_eq!(small[0].kept, Kept::Inline(vec![0, 1, 2, 3]));

    // Ingested, the rows name the file the analysis wrote, or hold the bytes.
    let o = d
        .one("1", with_attachment_of(ALICE, "a3@c", "", &big))
        .await;
    assert_outcome(&o, Action::NewTicket, Some("SUP-000001"), true);
    let o = d.one("2", with_attachment(ALICE, "a5@c", "")).await;
    assert_outcome(&o, Action::NewTicket, Some("SUP-000002"), true);
    let rows: Vec<(Option<String>, Option<Vec<u8>>, i64)> = d
        .store
        .call_blocking(|conn| {
            let mut st = conn.prepare("SELECT path, content, size FROM attachments ORDER BY id")?;
            let rows = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .unwrap();
    let big_len = BIG as i64;
    assert_eq!(
        rows,
        [
            (Some(rel.to_string_lossy().into_owned()), None, big_len),
            (None, Some(vec![0, 1, 2, 3]), 4),
        ]
    );
    assert!(on_disk.exists());
}

#[tokio::test]
async fn a_message_that_cannot_be_stored_is_poison_and_the_rest_go_on() {
    let d = desk();
    // Attachments cannot be written: a file where their directory goes.
    std::fs::write(d.config.desk.state_dir.join("attachments"), b"in the way").unwrap();
    // (A large one: small ones are kept in their row.)
    let big = zeros_base64(66_000);
    let out = d
        .batch(vec![
            ("1", with_attachment_of(ALICE, "p1@c", "", &big)),
            ("2", mail(ALICE, "Other", "p2@c", &[], "Hello")),
        ])
        .await;
    assert_outcome(&out[0], Action::Unparsable, None, false);
    assert_outcome(&out[1], Action::NewTicket, Some("SUP-000001"), true);
    let orphans = d.orphan_kinds();
    assert_eq!(orphans.len(), 1);
    assert_eq!(orphans[0].0, "poison");
    assert!(
        orphans[0]
            .1
            .as_deref()
            .unwrap_or("")
            .starts_with("poison: "),
        "{orphans:?}"
    );
}

#[tokio::test]
async fn a_message_the_store_refuses_is_set_aside_alone_and_the_round_before_it_kept() {
    let d = desk();
    // The store refuses one message when it is written (a failure of the
    // commit itself, after the decision): the round is applied without
    // savepoints first, so that attempt is rolled back whole and applied
    // again with one savepoint per message.
    d.store
        .call_blocking(|conn| {
            conn.execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON messages WHEN NEW.subject = 'Boom'
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
            )?;
            Ok(())
        })
        .unwrap();
    let out = d
        .batch(vec![
            ("1", mail(ALICE, "First", "r1@c", &[], "Hello")),
            ("2", mail(ALICE, "Boom", "r2@c", &[], "Hello")),
            ("3", mail(ALICE, "Third", "r3@c", &[], "Hello")),
        ])
        .await;
    assert_outcome(&out[0], Action::NewTicket, Some("SUP-000001"), true);
    assert_outcome(&out[1], Action::Unparsable, None, false);
    assert_outcome(&out[2], Action::NewTicket, Some("SUP-000002"), true);
    assert_eq!(d.tickets(), 2);
    let orphans = d.orphan_kinds();
    assert_eq!(orphans.len(), 1, "{orphans:?}");
    assert_eq!(orphans[0].0, "poison");
    assert!(
        orphans[0]
            .1
            .as_deref()
            .unwrap_or("")
            .contains("refused by the test"),
        "{orphans:?}"
    );
    // One acknowledgement per ticket: the rolled-back attempt left none.
    let acks: i64 = d
        .store
        .call_blocking(|conn| {
            Ok(
                conn.query_row("SELECT count(*) FROM outbox WHERE kind = 'ack'", [], |r| {
                    r.get(0)
                })?,
            )
        })
        .unwrap();
    assert_eq!(acks, 2);
}

#[tokio::test]
async fn a_write_between_reading_and_applying_is_caught() {
    let d = desk();
    d.one("1", mail(ALICE, "Help", "m1@c", &[], "Hello")).await;
    let batch = vec![super::analyse_guarded(
        &d.config,
        incoming(
            "inbox",
            "2",
            mail(ALICE, "Re: Help", "m2@c", &["In-Reply-To: <m1@c>"], "x"),
        ),
    )];
    let queries: Vec<_> = batch.iter().map(|a| decide::query(&d.config, a)).collect();
    let now = Utc::now();
    let q = queries.clone();
    let (version, facts) = d
        .store
        .call_blocking(move |conn| super::apply::read_facts(conn, &q, now))
        .unwrap();
    let renderer = Renderer::load(&d.config.desk.templates_dir, "en").unwrap();
    let round =
        super::prepare_round(&d.config, &renderer, &batch, &queries, version, facts).unwrap();
    assert!(matches!(
        round.ready[0].decision.effect,
        Effect::Followup(Followup::Join)
    ));
    // Someone (the CLI) closes the ticket in between.
    d.store
        .call_blocking(move |conn| tickets::resolve(conn, 1, now))
        .unwrap();
    let cfg = d.config.clone();
    let applied = d
        .store
        .call_blocking(move |conn| super::apply::apply(conn, &cfg, &batch, &queries, round, now))
        .unwrap();
    assert!(applied.is_none(), "stale facts must not be applied");
    assert_eq!(d.show("SUP-000001").messages.len(), 1, "nothing committed");
}

// ---------------------------------------------------------------- pure decisions

fn thread(status: &str, resolved_days_ago: Option<i64>) -> tickets::Thread {
    let now = Utc.with_ymd_and_hms(2026, 11, 16, 12, 0, 0).unwrap();
    tickets::Thread {
        reference: "SUP-000007".into(),
        requester: "alice@customer.example".into(),
        status: status.into(),
        resolved_at: resolved_days_ago.map(|d| now - chrono::TimeDelta::days(d)),
        pending_since: (status == "pending").then(|| now - chrono::TimeDelta::hours(2)),
    }
}

fn decide_reply(cfg: &Config, state: tickets::Thread) -> decide::Decision {
    // Arrived at the instant `thread` measures from.
    let mut inc = incoming(
        "inbox",
        "k",
        mail(ALICE, "Re: [SUP-000007] x", "r@c", &[], "reply"),
    );
    inc.received_at = Utc.with_ymd_and_hms(2026, 11, 16, 12, 0, 0).unwrap();
    let a = super::analyse_guarded(cfg, inc);
    let q = decide::query(cfg, &a);
    assert_eq!(q.tag, Some(7));
    let facts = decide::BatchFacts {
        now: Utc::now(),
        next_ticket: 8,
        recent_acks_all: 0,
        messages: vec![decide::Facts {
            tickets: vec![(7, state)],
            ..decide::Facts::default()
        }],
    };
    let mut v = decide::decide(cfg, &[a], &[q], &facts);
    assert_eq!(v.len(), 1);
    v.pop().unwrap()
}

#[test]
fn follow_up_policy_by_ticket_state() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_in(dir.path());
    let d = decide_reply(&cfg, thread("open", None));
    assert!(matches!(d.effect, Effect::Followup(Followup::Join)));
    let d = decide_reply(&cfg, thread("pending", None));
    assert!(matches!(
        d.effect,
        Effect::Followup(Followup::Resume { paused_secs: 7200 })
    ));
    let d = decide_reply(&cfg, thread("resolved", Some(1)));
    assert!(matches!(d.effect, Effect::Followup(Followup::Reopen)));
    // Resolved longer ago than the 7-day window: a new ticket that links it.
    let d = decide_reply(&cfg, thread("resolved", Some(30)));
    assert_eq!(d.action, Action::NewTicket);
    let Effect::NewTicket(t) = d.effect else {
        panic!("a new ticket")
    };
    assert_eq!((t.id, t.previous), (8, Some(7)));
    assert!(t.notes.iter().any(|n| n.contains("follows up SUP-000007")));
    assert!(t.ack.is_ok());
}

// ------------------------------------------------------------ trust (issue 14)

/// What the trusted border MTA of the demo stamps on mail it checked.
fn stamped(result: &str, from_domain: &str, raw: Vec<u8>) -> Vec<u8> {
    stamped_as("mx.demo.example", result, from_domain, raw)
}

/// An Authentication-Results header of `server` on top of `raw`.
fn stamped_as(server: &str, result: &str, from_domain: &str, raw: Vec<u8>) -> Vec<u8> {
    let mut out = format!(
        "Authentication-Results: {server}; dkim={result} header.d={from_domain}; dmarc={result} header.from={from_domain}\r\n"
    )
    .into_bytes();
    out.extend(raw);
    out
}

fn acks_to(d: &Desk, reference: &str) -> Vec<String> {
    d.show(reference)
        .outgoing
        .iter()
        .filter(|m| m.kind.starts_with("ack"))
        .filter_map(|m| m.sender.clone())
        .collect()
}

#[tokio::test]
async fn a_forged_agent_command_is_kept_as_a_note_and_does_nothing() {
    let d = desk();
    d.one("1", mail(ALICE, "Help", "m1@c", &[], "Hello")).await;
    let forged = |mid: &str, extra: &[&str]| {
        mail(
            "Agent <agent@demo.example>",
            "Re: [SUP-000001] Help",
            mid,
            extra,
            "#close",
        )
    };
    // No header at all; one from a server the config does not trust; the
    // trusted server's name in a header the sender put below others; and
    // the trusted server saying fail.
    let cases = [
        forged("f1@x", &[]),
        stamped_as("evil.example", "pass", "demo.example", forged("f2@x", &[])),
        forged(
            "f3@x",
            &[
                "Authentication-Results: mx.demo.example; dkim=pass header.d=demo.example; dmarc=pass header.from=demo.example",
            ],
        ),
        stamped("fail", "demo.example", forged("f4@x", &[])),
    ];
    for (i, raw) in cases.into_iter().enumerate() {
        let o = d.one(&format!("f{i}"), raw).await;
        assert_outcome(&o, Action::Unauthenticated, Some("SUP-000001"), false);
    }
    let t = d.show("SUP-000001");
    assert_eq!(t.status, "open", "no forged #close took effect");
    assert_eq!(t.first_responded_at, None, "no first-response credit");
    let noted = t
        .events
        .iter()
        .filter(|e| e.action == "unauthenticated agent mail")
        .count();
    assert_eq!(noted, 4, "{:?}", t.events);
    assert!(
        t.messages
            .iter()
            .filter(|m| m.kind == "unauthenticated-agent")
            .all(|m| m.auth.as_deref().is_some_and(|a| a.starts_with("dmarc="))),
        "each kept with its verdict: {:?}",
        t.messages
    );
    let st = d
        .store
        .call_blocking(|conn| report::status(conn, &crate::store::ts(Utc::now())))
        .unwrap();
    assert_eq!(st.unauthenticated_agent_mail, 4);

    // The same command, stamped pass by the trusted server, closes it.
    let o = d
        .one("ok", stamped("pass", "demo.example", forged("ok@x", &[])))
        .await;
    assert_outcome(&o, Action::Agent, Some("SUP-000001"), false);
    assert_eq!(d.show("SUP-000001").status, "resolved");
}

#[tokio::test]
async fn a_plan_or_priority_claim_counts_only_for_an_authenticated_sender() {
    let d = desk();
    let cio = "CIO <cio@acme-nyc.example>";
    let o = d
        .one(
            "1",
            mail(cio, "[P1] Everything is down", "c1@a", &[], "Down."),
        )
        .await;
    assert_outcome(&o, Action::NewTicket, Some("SUP-000001"), true);
    let t = d.show("SUP-000001");
    assert_eq!(t.plan, "community", "the premium plan is a claim");
    assert_eq!(t.customer, None);
    let reasons = t.triage_reasons.to_string();
    assert!(
        reasons.contains("not applied, the sender is not authenticated"),
        "{reasons}"
    );
    assert!(
        reasons.contains("but the sender is not authenticated"),
        "{reasons}"
    );
    assert_ne!(t.priority.as_deref(), Some("P1"));

    let o = d
        .one(
            "2",
            stamped(
                "pass",
                "acme-nyc.example",
                mail(cio, "[P1] Everything is down", "c2@a", &[], "Down."),
            ),
        )
        .await;
    assert_outcome(&o, Action::NewTicket, Some("SUP-000002"), true);
    let t = d.show("SUP-000002");
    assert_eq!(t.plan, "premium");
    assert_eq!(t.priority.as_deref(), Some("P1"));
}

#[tokio::test]
async fn the_acknowledgement_goes_to_a_reply_to_only_of_an_authenticated_senders_domain() {
    let d = desk();
    let victim = ["Reply-To: victim@third-party.example"];
    d.one("1", mail(ALICE, "Help", "r1@c", &victim, "Hello"))
        .await;
    assert_eq!(acks_to(&d, "SUP-000001"), vec!["alice@customer.example"]);
    // Authenticated, but the Reply-To is another domain's.
    d.one(
        "2",
        stamped(
            "pass",
            "customer.example",
            mail(ALICE, "Help", "r2@c", &victim, "x"),
        ),
    )
    .await;
    assert_eq!(acks_to(&d, "SUP-000002"), vec!["alice@customer.example"]);
    // Authenticated, Reply-To in its own domain: followed.
    let team = ["Reply-To: team@customer.example"];
    d.one(
        "3",
        stamped(
            "pass",
            "customer.example",
            mail(ALICE, "Help", "r3@c", &team, "x"),
        ),
    )
    .await;
    assert_eq!(acks_to(&d, "SUP-000003"), vec!["team@customer.example"]);
}

#[tokio::test]
async fn a_stranger_at_a_public_provider_cannot_join_a_tagged_ticket() {
    let d = desk();
    d.one("1", mail("ann@gmail.com", "Help", "g1@g", &[], "Hello"))
        .await;
    let o = d
        .one(
            "2",
            mail(
                "mallory@gmail.com",
                "Re: [SUP-000001] Help",
                "g2@g",
                &[],
                "I am Ann's colleague",
            ),
        )
        .await;
    assert_outcome(&o, Action::NewTicket, Some("SUP-000002"), true);
    // A colleague at a company domain still joins.
    d.one("3", mail("bob@corp.example", "Help", "g3@c", &[], "Hello"))
        .await;
    let o = d
        .one(
            "4",
            mail(
                "carol@corp.example",
                "Re: [SUP-000003] Help",
                "g4@c",
                &[],
                "Same here",
            ),
        )
        .await;
    assert_outcome(&o, Action::Followup, Some("SUP-000003"), false);
}

#[tokio::test]
async fn acknowledgements_are_capped_for_all_and_per_domain() {
    let d = desk_with("ack_limit_all_per_hour = 5\nack_limit_domain_per_hour = 2");
    let mut batch = Vec::new();
    let keys: Vec<String> = (0..4).map(|i| format!("d{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        batch.push((
            k.as_str(),
            mail(
                &format!("u{i}@bigcorp.example"),
                "Down",
                &format!("d{i}@b"),
                &[],
                "x",
            ),
        ));
    }
    let out = d.batch(batch).await;
    let acked: Vec<bool> = out.iter().map(|o| o.queued_ack).collect();
    assert_eq!(acked, vec![true, true, false, false], "two per domain");
    // Every ticket is opened; the others are capped by the global limit
    // (2 acks so far, 3 more allowed), in this batch and the next.
    let keys: Vec<String> = (0..6).map(|i| format!("e{i}")).collect();
    let mut batch = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        batch.push((
            k.as_str(),
            mail(
                &format!("x@c{i}.example"),
                "Down",
                &format!("e{i}@x"),
                &[],
                "x",
            ),
        ));
    }
    let out = d.batch(batch).await;
    let acked = out.iter().filter(|o| o.queued_ack).count();
    assert_eq!(acked, 3);
    assert_eq!(d.tickets(), 10, "every mail has its ticket");
    let held = d.show("SUP-000010").note.unwrap_or_default();
    assert!(held.contains("ack_limit_all_per_hour"), "{held}");
}

/// The triage computed with the analysis is the decision's own: for every
/// triage fixture, `pretriage` gives the verdict `classify_hinted` gives
/// from the mail, its claims and its customer, as `decide` would.
#[test]
fn pretriage_is_the_triage_the_decision_would_compute() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_in(dir.path());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut compared = 0;
    for sub in [
        "triage",
        "triage-independent",
        "triage-heldout",
        "triage-heldout-2",
    ] {
        for entry in std::fs::read_dir(root.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|x| x != "eml") {
                continue;
            }
            let incoming = Incoming {
                mailbox: "m".into(),
                source_key: path.display().to_string(),
                uidvalidity: None,
                uid: None,
                received_at: Utc.with_ymd_and_hms(2026, 3, 4, 10, 0, 0).unwrap(),
                raw: std::fs::read(&path).unwrap().into(),
            };
            let mut a = super::analyse_guarded(&cfg, incoming);
            super::pretriage(&cfg, &mut a);
            let super::Analysis::Parsed(p) = &a.analysis else {
                continue;
            };
            let Some(pre) = &p.triage else {
                assert!(p.automated.is_some() || p.spam, "{}", path.display());
                continue;
            };
            let customer = cfg.sla.customer_for(&p.sender, a.incoming.received_at);
            let direct = crate::core::triage::classify_hinted(
                &p.mail,
                &cfg.triage,
                cfg.trust.claims.met(&p.auth),
                crate::core::triage::Hints {
                    customer_language: customer.language.as_deref(),
                    ..Default::default()
                },
            );
            assert_eq!(
                serde_json::to_string(pre).unwrap(),
                serde_json::to_string(&direct).unwrap(),
                "{}",
                path.display()
            );
            compared += 1;
        }
    }
    assert!(compared > 150, "only {compared} fixtures compared");
}
