//! Stats against hand-computed figures: business time across a DST
//! change and a weekend, pauses, periods at the zone's midnight.

use super::*;
use crate::core::sla::RawSla;

#[derive(serde::Deserialize)]
struct Part {
    priorities: Vec<String>,
    categories: Vec<String>,
    sla: RawSla,
}

/// Two plans: `office` counts Paris office hours (Mon-Fri 09:00-18:00),
/// `always` counts wall-clock time.
fn model() -> SlaModel {
    let p: Part = toml::from_str(
        r#"
priorities = ["P1", "P2"]
categories = ["incident"]
[sla]
default_plan = "office"
[sla.calendars.paris]
timezone = "Europe/Paris"
hours = { mon-fri = "09:00-18:00" }
[sla.plans.office]
calendar = "paris"
targets = [{ priority = "P1", first_response = "4h" }]
[sla.plans.always]
targets = [{ priority = "P1", first_response = { wall_clock = "1h" } }]
"#,
    )
    .unwrap();
    SlaModel::from_raw(&p.sla, &p.priorities, &p.categories).unwrap()
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn ticket(plan: &str, received: &str) -> TicketFacts {
    TicketFacts {
        reference: format!("SUP-{}", received),
        subject: "Help".into(),
        plan: plan.into(),
        priority: Some("P1".into()),
        received: utc(received),
        start: utc(received),
        timezone: None,
        first_response_due: None,
        first_responded: None,
        resolution_due: None,
        resolved: None,
        events: Vec::new(),
    }
}

const PARIS: Tz = chrono_tz::Europe::Paris;

#[test]
fn business_time_skips_the_weekend_across_the_dst_change() {
    // Friday 23 October 2026 17:00 in Paris (CEST, 15:00 UTC), answered
    // Monday 26 October 10:00 (CET since Sunday, 09:00 UTC): one open
    // hour on Friday and one on Monday; 66 hours of wall time.
    let mut t = ticket("office", "2026-10-23T17:00:00+02:00");
    t.first_response_due = Some(utc("2026-10-26T12:00:00+01:00"));
    t.first_responded = Some(utc("2026-10-26T10:00:00+01:00"));
    let now = utc("2026-11-01T00:00:00Z");
    let rows = compute(&model(), &[t.clone()], None, PARIS, now);
    assert_eq!(rows.len(), 1);
    let c = &rows[0].first_response;
    assert_eq!((c.met, c.breached, c.open), (1, 0, 0));
    assert_eq!(c.compliance_pct, Some(100.0));
    assert_eq!(c.median_minutes, Some(66 * 60));
    assert_eq!(c.business_median_minutes, Some(120));
    // The same ticket on a plan without a calendar: business time is
    // wall time. On a plan the config no longer has: unknown.
    t.plan = "always".into();
    let rows = compute(&model(), &[t.clone()], None, PARIS, now);
    assert_eq!(
        rows[0].first_response.business_median_minutes,
        Some(66 * 60)
    );
    t.plan = "gone".into();
    let rows = compute(&model(), &[t], None, PARIS, now);
    let c = &rows[0].first_response;
    assert_eq!(
        (c.median_minutes, c.business_median_minutes),
        (Some(66 * 60), None)
    );
}

#[test]
fn a_pending_pause_and_a_resumed_reopen_are_left_out_of_the_resolution_time() {
    // Monday 2 November 2026 09:00 Paris. Pending from 10:00 to Tuesday
    // 10:00, resolved Tuesday 12:00: 27 h of wall time less the 24 h
    // pause is 3 h; open time 9 h + 3 h less the pause's 8 h + 1 h is 3 h.
    let mut t = ticket("office", "2026-11-02T09:00:00+01:00");
    t.resolved = Some(utc("2026-11-03T12:00:00+01:00"));
    t.events = vec![
        (utc("2026-11-02T10:00:00+01:00"), ClockEvent::Pending),
        (utc("2026-11-03T10:00:00+01:00"), ClockEvent::Resumed),
        (utc("2026-11-03T12:00:00+01:00"), ClockEvent::Resolved),
    ];
    let now = utc("2026-11-10T00:00:00Z");
    let c = &compute(&model(), &[t.clone()], None, PARIS, now)[0].resolution;
    assert_eq!(
        (c.median_minutes, c.business_median_minutes),
        (Some(180), Some(180))
    );

    // Resolved on Monday at 11:00, reopened (clock resumed) on Wednesday
    // at 09:00, resolved again at 10:00: the two days resolved do not
    // count. Wall: 49 h less 46 h; business: 2 h + 1 h (Monday 11:00 to
    // Wednesday 09:00 holds Monday's 7 h and Tuesday's 9 h, all paused).
    let mut r = ticket("office", "2026-11-02T09:00:00+01:00");
    r.resolved = Some(utc("2026-11-04T10:00:00+01:00"));
    r.events = vec![
        (utc("2026-11-02T11:00:00+01:00"), ClockEvent::Resolved),
        (
            utc("2026-11-04T09:00:00+01:00"),
            ClockEvent::ReopenedResumed,
        ),
        (utc("2026-11-04T10:00:00+01:00"), ClockEvent::Resolved),
    ];
    let c = &compute(&model(), &[r], None, PARIS, now)[0].resolution;
    assert_eq!(
        (c.median_minutes, c.business_median_minutes),
        (Some(180), Some(180))
    );

    // Closed while pending: the pause ends at the close, so only the
    // hour before it went pending counts.
    t.events = vec![
        (utc("2026-11-02T10:00:00+01:00"), ClockEvent::Pending),
        (utc("2026-11-03T12:00:00+01:00"), ClockEvent::Resolved),
    ];
    let c = &compute(&model(), &[t.clone()], None, PARIS, now)[0].resolution;
    assert_eq!(
        (c.median_minutes, c.business_median_minutes),
        (Some(60), Some(60))
    );

    // Events before a restart (the clocks' start) are not pauses of it.
    t.start = utc("2026-11-03T11:00:00+01:00");
    let c = &compute(&model(), &[t], None, PARIS, now)[0].resolution;
    assert_eq!(
        (c.median_minutes, c.business_median_minutes),
        (Some(60), Some(60))
    );
}

#[test]
fn periods_start_at_midnight_in_the_report_zone() {
    // Sunday 25 October 23:30 in Paris is in the week of Monday 19
    // October; Monday 26 October 00:30 in Paris (Sunday 23:30 UTC) is in
    // the next week, though it is still Sunday in UTC.
    let a = ticket("office", "2026-10-25T23:30:00+01:00");
    let b = ticket("office", "2026-10-26T00:30:00+01:00");
    let now = utc("2026-11-01T00:00:00Z");
    let weeks = |zone| {
        compute(
            &model(),
            &[a.clone(), b.clone()],
            Some(Period::Week),
            zone,
            now,
        )
        .into_iter()
        .map(|r| (r.period.unwrap().to_string(), r.tickets))
        .collect::<Vec<_>>()
    };
    assert_eq!(
        weeks(PARIS),
        [("2026-10-19".to_string(), 1), ("2026-10-26".to_string(), 1)]
    );
    assert_eq!(weeks(Tz::UTC), [("2026-10-19".to_string(), 2)]);
    let months = compute(&model(), &[a, b], Some(Period::Month), PARIS, now);
    assert_eq!(months.len(), 1);
    assert_eq!(months[0].period.unwrap().to_string(), "2026-10-01");
    assert_eq!(
        Period::Day.start(NaiveDate::from_ymd_opt(2026, 2, 28).unwrap()),
        NaiveDate::from_ymd_opt(2026, 2, 28).unwrap()
    );
}

#[test]
fn met_breached_open_and_compliance() {
    let now = utc("2026-11-10T12:00:00Z");
    let due = |t: &mut TicketFacts, due: &str, done: Option<&str>| {
        t.first_response_due = Some(utc(due));
        t.first_responded = done.map(utc);
    };
    let mut ts = Vec::new();
    for (d, done) in [
        ("2026-11-10T10:00:00Z", Some("2026-11-10T09:00:00Z")), // met
        ("2026-11-10T10:00:00Z", Some("2026-11-10T10:00:00Z")), // met, on the dot
        ("2026-11-10T10:00:00Z", Some("2026-11-10T10:00:01Z")), // late
        ("2026-11-10T11:00:00Z", None),                         // running past due
        ("2026-11-10T13:00:00Z", None),                         // open
    ] {
        let mut t = ticket("always", "2026-11-10T08:00:00Z");
        due(&mut t, d, done);
        ts.push(t);
    }
    let c = &compute(&model(), &ts, None, Tz::UTC, now)[0].first_response;
    assert_eq!((c.met, c.breached, c.open), (2, 2, 1));
    assert_eq!(c.compliance_pct, Some(50.0));
    // 60, 120, 120 minutes: median 120, p90 at 1.8: 120.
    assert_eq!((c.median_minutes, c.p90_minutes), (Some(120), Some(120)));
    // Two met of three decided: 66.7 %.
    let c = &compute(&model(), &ts[..3], None, Tz::UTC, now)[0].first_response;
    assert_eq!(c.compliance_pct, Some(66.7));
    // Nothing decided: no compliance figure, not 0 % or 100 %.
    let c = &compute(&model(), &ts[4..], None, Tz::UTC, now)[0].first_response;
    assert_eq!(c.compliance_pct, None);
}

#[test]
fn an_unknown_period_names_the_known_ones() {
    assert_eq!("week".parse::<Period>(), Ok(Period::Week));
    let e = "fortnight".parse::<Period>().unwrap_err();
    assert_eq!(e, "unknown period \"fortnight\"; known: day, week, month");
}

#[test]
fn quantiles_of_one_value_and_of_none() {
    assert_eq!(quantile(&mut [], 0.5), None);
    assert_eq!(quantile(&mut [7], 0.9), Some(7));
    assert_eq!(quantile(&mut [30, 10, 20], 0.5), Some(20), "sorted first");
    assert_eq!(quantile(&mut [10, 20, 30, 40], 0.5), Some(25));
    assert_eq!(quantile(&mut [10, 20, 30, 40, 100], 0.9), Some(76));
}

#[test]
fn a_stopped_clock_counts_as_the_report_counts_it() {
    let now = utc("2026-11-10T00:00:00Z");
    let mut t = ticket("office", "2026-10-23T17:00:00+02:00");
    t.first_response_due = Some(utc("2026-10-26T12:00:00+01:00"));
    t.first_responded = Some(utc("2026-10-26T10:00:00+01:00"));
    let at = t.first_responded.unwrap();
    let s = stopped(&model(), &t, Clock::FirstResponse, at).unwrap();
    assert_eq!(s.business, Some(TimeDelta::minutes(120)));
    assert_eq!(s.met, Some(true));
    let row = &compute(&model(), &[t.clone()], None, PARIS, now)[0];
    assert_eq!(
        s.business.map(|b| b.num_minutes()),
        row.first_response.business_median_minutes
    );
    // Late; best effort; before a restart.
    let late = utc("2026-10-26T13:00:00+01:00");
    assert_eq!(
        stopped(&model(), &t, Clock::FirstResponse, late)
            .unwrap()
            .met,
        Some(false)
    );
    assert_eq!(
        stopped(&model(), &t, Clock::Resolution, late).unwrap().met,
        None
    );
    t.start = utc("2026-10-27T09:00:00+01:00");
    assert_eq!(stopped(&model(), &t, Clock::FirstResponse, at), None);
    // A resolution leaves out the pauses before it, not those after.
    let mut r = ticket("office", "2026-11-02T09:00:00+01:00");
    r.events = vec![
        (utc("2026-11-02T10:00:00+01:00"), ClockEvent::Pending),
        (utc("2026-11-03T10:00:00+01:00"), ClockEvent::Resumed),
        (utc("2026-11-03T12:00:00+01:00"), ClockEvent::Resolved),
        (
            utc("2026-11-03T13:00:00+01:00"),
            ClockEvent::ReopenedResumed,
        ),
    ];
    let s = stopped(
        &model(),
        &r,
        Clock::Resolution,
        utc("2026-11-03T12:00:00+01:00"),
    )
    .unwrap();
    assert_eq!(s.business, Some(TimeDelta::minutes(180)));
}

#[test]
fn at_risk_means_breaching_or_due_within_one_business_day() {
    // Friday 6 November 2026, 16:00 in Paris: one business day on is
    // Monday 16:00.
    let now = utc("2026-11-06T16:00:00+01:00");
    let running = |reference: &str, plan: &str, due: &str| Running {
        reference: reference.into(),
        subject: String::new(),
        plan: plan.into(),
        priority: Some("P1".into()),
        received: utc("2026-11-02T09:00:00+01:00"),
        timezone: None,
        assignee: None,
        first_response_due: Some(utc(due)),
        resolution_due: None,
    };
    let tickets = [
        running("monday-late", "office", "2026-11-09T17:00:00+01:00"),
        running("monday", "office", "2026-11-09T15:00:00+01:00"),
        running("past", "office", "2026-11-05T10:00:00+01:00"),
        // A plan without a calendar: 24 hours.
        running("saturday", "always", "2026-11-07T15:00:00+01:00"),
        running("sunday", "always", "2026-11-08T15:00:00+01:00"),
    ];
    let risk = at_risk(&model(), &tickets, now);
    let refs: Vec<_> = risk.iter().map(|r| r.reference.as_str()).collect();
    assert_eq!(refs, ["past", "saturday", "monday"]);
    assert!(risk[0].breached && !risk[1].breached);
    assert_eq!(risk[0].age_minutes, (4 * 24 + 7) * 60);
    assert_eq!(risk[0].clock, "first_response");
}

#[test]
fn the_slowest_first_responses_come_first_in_business_time() {
    let answered = |reference: &str, plan: &str, received: &str, at: &str| {
        let mut t = ticket(plan, received);
        t.reference = reference.into();
        t.first_responded = Some(utc(at));
        t
    };
    let tickets = [
        // Friday 17:00 to Monday 10:00 in Paris: 2 business hours, 65 wall.
        answered(
            "weekend",
            "office",
            "2026-11-06T17:00:00+01:00",
            "2026-11-09T10:00:00+01:00",
        ),
        // 3 hours on a Tuesday.
        answered(
            "tuesday",
            "office",
            "2026-11-03T09:00:00+01:00",
            "2026-11-03T12:00:00+01:00",
        ),
        answered(
            "quick",
            "always",
            "2026-11-03T09:00:00+01:00",
            "2026-11-03T09:05:00+01:00",
        ),
        ticket("office", "2026-11-03T09:00:00+01:00"),
    ];
    let slow = slowest(&model(), &tickets, 2);
    let refs: Vec<_> = slow.iter().map(|s| s.reference.as_str()).collect();
    assert_eq!(refs, ["tuesday", "weekend"]);
    assert_eq!(slow[1].business_minutes, Some(120));
    assert_eq!(slow[1].wall_minutes, 65 * 60);
}

#[test]
fn a_first_response_after_a_resumed_reopen_leaves_out_the_time_resolved() {
    // Received Monday 2 November 09:00 in Paris, closed unanswered at
    // 09:30, reopened (clocks resumed) on Wednesday 09:00, answered at
    // 09:10: 40 minutes, not two days.
    let mut t = ticket("always", "2026-11-02T09:00:00+01:00");
    t.first_responded = Some(utc("2026-11-04T09:10:00+01:00"));
    t.events = vec![
        (utc("2026-11-02T09:30:00+01:00"), ClockEvent::Resolved),
        (
            utc("2026-11-04T09:00:00+01:00"),
            ClockEvent::ReopenedResumed,
        ),
    ];
    let now = utc("2026-11-10T00:00:00Z");
    let c = &compute(&model(), &[t.clone()], None, PARIS, now)[0].first_response;
    assert_eq!(c.median_minutes, Some(40));
    let at = t.first_responded.unwrap();
    let s = stopped(&model(), &t, Clock::FirstResponse, at).unwrap();
    assert_eq!(s.business, Some(TimeDelta::minutes(40)));
    // A pending spell does not pause the first response.
    t.events = vec![
        (utc("2026-11-02T09:30:00+01:00"), ClockEvent::Pending),
        (utc("2026-11-04T09:00:00+01:00"), ClockEvent::Resumed),
    ];
    let c = &compute(&model(), &[t], None, PARIS, now)[0].first_response;
    assert_eq!(c.median_minutes, Some(2 * 24 * 60 + 10));
}

#[test]
fn the_period_before_is_as_many_local_days_or_as_long() {
    // 26 October - 1 November in Paris (168 h): the week before starts at
    // midnight on the 19th, in summer time, 169 h earlier.
    let (since, until) = (
        utc("2026-10-26T00:00:00+01:00"),
        utc("2026-11-02T00:00:00+01:00"),
    );
    let first = NaiveDate::from_ymd_opt(2026, 10, 26).unwrap();
    let last = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    assert_eq!(whole_days(PARIS, since, until), Some((first, last)));
    assert_eq!(
        previous_start(PARIS, since, until),
        utc("2026-10-19T00:00:00+02:00")
    );
    // Instants: the same length back.
    let (a, b) = (utc("2026-10-26T10:00:00Z"), utc("2026-10-27T16:00:00Z"));
    assert_eq!(whole_days(PARIS, a, b), None);
    assert_eq!(previous_start(PARIS, a, b), utc("2026-10-25T04:00:00Z"));
}
