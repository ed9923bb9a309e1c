//! SLA clocks run on the mail's arrival (the server's delivery time), not
//! on when the daemon got round to it: mail that arrived while the desk
//! was down is stamped as it arrived.

use std::time::{Duration, SystemTime};

use crate::common::*;
use crate::support::deliver_at;

fn stamp(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[test]
fn mail_that_arrived_while_the_desk_was_down_is_stamped_at_arrival() {
    let dir = tempfile::tempdir().unwrap();
    let md = maildir(dir.path(), "inbox");
    let cfg = dir.path().join("supportdesk.toml");
    let text =
        maildir_config(dir.path(), &["inbox"]) + "\n[agents]\ndomains = [\"desk.test\"]\n" + TRUST;
    std::fs::write(&cfg, text).unwrap();

    // The desk is down: the customer writes two hours ago, the agent
    // answers and closes from their mail client ten minutes later.
    let asked = SystemTime::now() - Duration::from_secs(2 * 3600);
    let answered = asked + Duration::from_secs(600);
    deliver_at(
        &md,
        "1.customer",
        "From: Ann <ann@example.com>\nTo: support@desk.test\nSubject: Restore fails\nMessage-ID: <ask@example.com>\n\nThe restore fails.\n",
        asked,
    );
    deliver_at(
        &md,
        "2.agent",
        &(crate::common::stamp("desk.test")
            + "From: Agent <agent@desk.test>\nTo: support@desk.test\nSubject: Re: Restore fails\nMessage-ID: <answer@desk.test>\nIn-Reply-To: <ask@example.com>\n\n#close\nFixed: the tape was full.\n"),
        answered,
    );

    // The desk comes back now.
    run_once_ok(&cfg);
    let conn = db(&cfg);
    let (received, responded, resolved): (String, Option<String>, Option<String>) = conn
        .query_row(
            "SELECT received_at, first_responded_at, resolved_at FROM tickets",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(received, stamp(asked));
    assert_eq!(responded.as_deref(), Some(stamp(answered).as_str()));
    assert_eq!(resolved.as_deref(), Some(stamp(answered).as_str()));
    let resolved_event: String = conn
        .query_row(
            "SELECT at FROM ticket_events WHERE action = 'resolved'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(resolved_event, stamp(answered));
}
