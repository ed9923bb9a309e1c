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
