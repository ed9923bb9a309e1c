//! The sweeper across a night and a weekend, on real servers, with the
//! test clock of debug builds (`SUPPORTDESK_TEST_CLOCK`): notices held
//! for a recipient's office hours, each sent once across restarts.

use std::time::Duration;

use crate::common::*;

fn ts(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

/// Friday evening in Paris, a premium (24x7) ticket two days overdue:
/// the manager (office hours Mon-Fri 08:00-17:00 Paris) gets the breach
/// on Monday at 08:00, the duty desk (breaches not held) at once. A
/// restart on Saturday and another on Monday send nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breach_waits_for_the_recipients_office_hours_and_goes_once() {
    let stack = start_stack();
    let config = write_config_with(
        &stack,
        false,
        &format!(
            r#"{TRUST}
[sla.calendars.manager]
timezone = "Europe/Paris"
hours = {{ mon-fri = "08:00-17:00" }}

[sla.customers.acme]
domains = ["acme.test"]
plan = "premium"

[escalation]
[[escalation.recipients]]
address = "Manager <manager@corp.test>"
language = "en"
timezone = "Europe/Paris"
calendar = "manager"

[[escalation.recipients]]
address = "Duty <duty@corp.test>"
language = "en"
timezone = "Europe/Paris"
levels = ["breach"]
calendar = "manager"
hold = []
"#
        ),
    );
    let mut s = imap_login(&stack, "support", "supportpw").await;
    append_on(
        &mut s,
        &(stamp("acme.test")
            + "From: Bob <bob@acme.test>\nTo: support@desk.test\nSubject: Server down\nMessage-ID: <b1@acme.test>\n\nOur backup server is down.\n"),
        ts("2026-11-18T12:00:00Z"),
    )
    .await;
    let _ = s.logout().await;

    // Friday 2026-11-20, 17:30 in Paris: the manager's office is closed.
    run_once_at(&config, "2026-11-20T16:30:00Z");
    let conn = db(&config);
    let rows = |conn: &rusqlite::Connection| -> Vec<(String, String, String)> {
        conn.prepare(
            "SELECT recipients, status, next_attempt_at FROM outbox WHERE kind = 'escalation' ORDER BY recipients",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    let queued = rows(&conn);
    assert_eq!(queued.len(), 2, "{queued:?}");
    assert_eq!(
        (queued[0].0.as_str(), queued[0].1.as_str()),
        ("duty@corp.test", "sent")
    );
    // Held until Monday 08:00 in Paris (07:00 UTC).
    assert_eq!(
        queued[1],
        (
            "manager@corp.test".to_string(),
            "pending".to_string(),
            "2026-11-23T07:00:00Z".to_string()
        )
    );
    let mails = parsed(&sink_messages_within(&stack, 3, Duration::from_secs(5)).await);
    let to: Vec<&str> = mails.iter().map(|m| m.to[0].email.as_str()).collect();
    assert_eq!(mails.len(), 2, "the ack and the duty desk's breach: {to:?}");
    assert!(to.contains(&"duty@corp.test") && !to.contains(&"manager@corp.test"));

    // A restart on Saturday morning: nothing more goes out.
    run_once_at(&config, "2026-11-21T09:00:00Z");
    assert_eq!(
        sink_messages_within(&stack, 3, Duration::from_secs(3))
            .await
            .len(),
        2
    );

    // Monday 08:00:30 in Paris: the manager's notice, once.
    run_once_at(&config, "2026-11-23T07:00:30Z");
    let mails = parsed(&sink_messages_within(&stack, 4, Duration::from_secs(10)).await);
    assert_eq!(mails.len(), 3);
    let n = mails
        .iter()
        .find(|m| m.to[0].email == "manager@corp.test")
        .expect("the manager's notice");
    assert!(
        n.subject.contains("[SLA BREACHED] [SUP-000001]"),
        "{}",
        n.subject
    );
    // Written as it was on Friday evening, and saying so.
    assert!(
        n.text
            .contains("Held for your office hours: sent at 2026-11-23 08:00 CET")
            && n.text
                .contains("describes the ticket at 2026-11-20 17:30 CET"),
        "{}",
        n.text
    );
    run_once_at(&config, "2026-11-23T07:05:00Z");
    assert_eq!(
        sink_messages_within(&stack, 4, Duration::from_secs(3))
            .await
            .len(),
        3
    );
    assert_eq!(count(&conn, "SELECT count(*) FROM escalations"), 2);
}

/// Pending tickets: a reminder after 2 days, the auto-close after 5, each
/// once across restarts; an out-of-office reply does not count as an
/// answer, a real reply before the auto-close resumes the ticket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_reminder_then_auto_close_and_a_reply_resumes() {
    let stack = start_stack();
    let config = write_config_with(
        &stack,
        false,
        &format!(
            r#"{TRUST}
[agents]
addresses = ["agent@desk.test"]

[sla.customers.acme]
domains = ["acme.test"]
plan = "premium"
timezone = "Europe/Paris"
"#
        ),
    );
    let text = std::fs::read_to_string(&config).unwrap();
    // Desk-wide, in [sla].
    let default_plan = "default_plan = \"community\"\n";
    assert!(text.contains(default_plan), "{text}");
    std::fs::write(
        &config,
        text.replacen(
            default_plan,
            &format!(
                "{default_plan}pending_reminder_after = \"2d\"\npending_close_after = \"5d\"\n"
            ),
            1,
        ),
    )
    .unwrap();
    let mut s = imap_login(&stack, "support", "supportpw").await;
    for (who, mid, reply) in [("Bob", "b1", "a1"), ("Carol", "c1", "a2")] {
        let low = who.to_lowercase();
        append_on(
            &mut s,
            &(stamp("acme.test")
                + &format!("From: {who} <{low}@acme.test>\nTo: support@desk.test\nSubject: Restore fails\nMessage-ID: <{mid}@acme.test>\n\nThe restore of last night's backup fails with an error.\n")),
            ts("2026-11-16T09:00:00Z"),
        )
        .await;
        append_on(
            &mut s,
            &(stamp("desk.test")
                + &format!("From: Agent <agent@desk.test>\nTo: {low}@acme.test\nCc: support@desk.test\nSubject: Re: Restore fails\nMessage-ID: <{reply}@desk.test>\nIn-Reply-To: <{mid}@acme.test>\n\n#pending\nPlease send us the job log.\n")),
            ts("2026-11-16T10:00:00Z"),
        )
        .await;
    }
    let _ = s.logout().await;

    run_once_at(&config, "2026-11-16T10:05:00Z");
    let conn = db(&config);
    let state = |id: i64| -> (String, Option<String>, i64) {
        conn.query_row(
            "SELECT status, pending_next_at, pending_stage FROM tickets WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    };

    for id in [1, 2] {
        assert_eq!(
            state(id),
            ("pending".into(), Some("2026-11-18T10:00:00Z".into()), 0)
        );
    }
    assert_eq!(
        sink_messages_within(&stack, 3, Duration::from_secs(5))
            .await
            .len(),
        2,
        "two acknowledgements"
    );

    // Wednesday 10:01: both reminded, once.
    run_once_at(&config, "2026-11-18T10:01:00Z");
    run_once_at(&config, "2026-11-18T10:02:00Z");
    let mails = parsed(&sink_messages_within(&stack, 5, Duration::from_secs(10)).await);
    let reminders: Vec<_> = mails
        .iter()
        .filter(|m| m.subject.contains("waiting for your answer"))
        .collect();
    assert_eq!(
        mails.len(),
        4,
        "{:?}",
        mails.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    assert_eq!(reminders.len(), 2);
    let words = reminders[0]
        .text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        words
            .contains("on Monday 16 November 2026 at 11:00 (Paris time), and we are still waiting")
            && words.contains(
                "we will close the ticket on Saturday 21 November 2026 at 11:00 (Paris time)"
            ),
        "{words}"
    );
    assert_eq!(
        reminders[0].header("Auto-Submitted"),
        Some("auto-generated")
    );
    for id in [1, 2] {
        assert_eq!(
            state(id),
            ("pending".into(), Some("2026-11-21T10:00:00Z".into()), 1)
        );
    }

    // Carol's out-of-office answers the reminder: no answer.
    let mut s = imap_login(&stack, "support", "supportpw").await;
    append_on(
        &mut s,
        "From: Carol <carol@acme.test>\nTo: support@desk.test\nSubject: Out of office\nMessage-ID: <c2@acme.test>\nIn-Reply-To: <a2@desk.test>\nAuto-Submitted: auto-replied\n\nI am away until Friday.\n",
        ts("2026-11-18T10:03:00Z"),
    )
    .await;
    let _ = s.logout().await;
    run_once_at(&config, "2026-11-18T10:04:00Z");
    assert_eq!(state(2).0, "pending", "an auto-reply is no answer");

    // Carol's real answer on Thursday resumes her ticket.
    let mut s = imap_login(&stack, "support", "supportpw").await;
    append_on(
        &mut s,
        &(stamp("acme.test")
            + "From: Carol <carol@acme.test>\nTo: support@desk.test\nSubject: Re: Restore fails\nMessage-ID: <c3@acme.test>\nIn-Reply-To: <a2@desk.test>\n\nHere is the log.\n"),
        ts("2026-11-19T09:00:00Z"),
    )
    .await;
    let _ = s.logout().await;
    run_once_at(&config, "2026-11-19T09:01:00Z");
    assert_eq!(state(2), ("open".into(), None, 0));

    // Saturday 10:01: Bob's ticket is closed and Bob told, once.
    run_once_at(&config, "2026-11-21T10:01:00Z");
    run_once_at(&config, "2026-11-21T10:05:00Z");
    assert_eq!(state(1), ("resolved".into(), None, 0));
    assert_eq!(state(2).0, "open");
    let mails = parsed(&sink_messages_within(&stack, 6, Duration::from_secs(10)).await);
    assert_eq!(
        mails.len(),
        5,
        "{:?}",
        mails.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    let closed: Vec<_> = mails
        .iter()
        .filter(|m| m.subject.contains("closed without an answer"))
        .collect();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].to[0].email, "bob@acme.test");
    let detail: String = conn
        .query_row(
            "SELECT detail FROM ticket_events WHERE ticket_id = 1 AND action = 'resolved'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(detail, "auto-closed: no answer while pending");
}

/// A ticket answered and closed, reopened by the customer three days
/// later: its clocks start again from the reopening message, so it does
/// not breach at once; it breaches (once) when the new first response is
/// late. `tickets show` says why it is due when it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_ticket_counts_from_the_reopening_message() {
    let stack = start_stack();
    let config = write_config_with(
        &stack,
        false,
        &format!(
            r#"{TRUST}
[agents]
addresses = ["agent@desk.test"]

[sla.customers.acme]
domains = ["acme.test"]
plan = "premium"

[escalation]
[[escalation.recipients]]
address = "Manager <manager@corp.test>"
language = "en"
timezone = "Europe/Paris"
levels = ["breach"]
"#
        ),
    );
    let mut s = imap_login(&stack, "support", "supportpw").await;
    append_on(
        &mut s,
        &(stamp("acme.test")
            + "From: Bob <bob@acme.test>\nTo: support@desk.test\nSubject: Restore fails\nMessage-ID: <b1@acme.test>\n\nThe restore of last night's backup fails with an error.\n"),
        ts("2026-11-16T09:00:00Z"),
    )
    .await;
    append_on(
        &mut s,
        &(stamp("desk.test")
            + "From: Agent <agent@desk.test>\nTo: bob@acme.test\nCc: support@desk.test\nSubject: Re: Restore fails\nMessage-ID: <a1@desk.test>\nIn-Reply-To: <b1@acme.test>\n\n#close\nFixed by the patch.\n"),
        ts("2026-11-16T09:30:00Z"),
    )
    .await;
    let _ = s.logout().await;
    run_once_at(&config, "2026-11-16T09:35:00Z");
    let conn = db(&config);
    let row = || -> (String, Option<String>, Option<String>) {
        conn.query_row(
            "SELECT status, first_response_due, first_responded_at FROM tickets WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    };
    let (status, due, responded) = row();
    assert_eq!(
        (status.as_str(), responded.as_deref()),
        ("resolved", Some("2026-11-16T09:30:00Z"))
    );
    let target = ts(&due.unwrap()) - ts("2026-11-16T09:00:00Z");
    assert!(
        target > chrono::TimeDelta::zero() && target < chrono::TimeDelta::days(1),
        "{target}"
    );

    // Thursday: Bob writes again.
    let mut s = imap_login(&stack, "support", "supportpw").await;
    append_on(
        &mut s,
        &(stamp("acme.test")
            + "From: Bob <bob@acme.test>\nTo: support@desk.test\nSubject: Re: Restore fails\nMessage-ID: <b2@acme.test>\nIn-Reply-To: <a1@desk.test>\n\nIt fails again since this morning.\n"),
        ts("2026-11-19T09:00:00Z"),
    )
    .await;
    let _ = s.logout().await;
    run_once_at(&config, "2026-11-19T09:01:00Z");
    let back = ts("2026-11-19T09:00:00Z");
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    assert_eq!(row(), ("open".into(), Some(fmt(back + target)), None));
    assert_eq!(
        count(&conn, "SELECT count(*) FROM escalations"),
        0,
        "no breach at the reopen"
    );
    let out = run(&config, &["tickets", "show", "SUP-000001"], &[]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        shown.contains("the clocks restarted at the reopen, 2026-11-19T09:00:00Z")
            && shown.contains("of elapsed time (nights, weekends and holidays count)")
            && !shown.contains("differs from today's config"),
        "{shown}"
    );
    assert!(
        shown.contains("event reopened by bob@acme.test: clocks restarted"),
        "{shown}"
    );

    // The new first response is late: one breach notice.
    let late = fmt(back + target + chrono::TimeDelta::minutes(1));
    run_once_at(&config, &late);
    run_once_at(&config, &late);
    assert_eq!(count(&conn, "SELECT count(*) FROM escalations"), 1);
    let mails = parsed(&sink_messages_within(&stack, 3, Duration::from_secs(10)).await);
    let notices: Vec<_> = mails.iter().filter(|m| m.subject.contains("SLA")).collect();
    assert_eq!(
        notices.len(),
        1,
        "{:?}",
        mails.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
}
