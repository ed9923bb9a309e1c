//! The `sla due` CLI contract: due times under the five example policies,
//! and exit code 2 for unknown names.

use std::path::PathBuf;

use crate::common::*;

fn sla_due(example: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let cfg = PathBuf::from(format!("{ROOT}/config/examples/{example}.toml"));
    let mut all = vec!["sla", "due"];
    all.extend_from_slice(args);
    let out = run(&cfg, &all, &[]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn dues(example: &str, args: &[&str]) -> Vec<(Option<String>, Option<String>)> {
    let (code, out, err) = sla_due(example, args);
    assert_eq!(code, Some(0), "{example} {args:?}: {err}");
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().map(str::to_string);
            (s("first_response_due"), s("resolution_due"))
        })
        .collect()
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

#[test]
fn sla_due_cli_on_the_five_policies() {
    // Zmanda standard, business time in Paris: Friday 16:30 + 1h -> Monday 08:30.
    // Premium: wall clock. Community: best effort. A New York customer's hours.
    assert_eq!(
        dues(
            "zmanda",
            &[
                "--plan",
                "standard",
                "--priority",
                "P1",
                "--received",
                "2026-11-20T15:30:00Z",
                "--received",
                "2026-11-20T16:00:00Z"
            ]
        ),
        vec![
            (some("2026-11-23T07:30:00Z"), None),
            (some("2026-11-23T08:00:00Z"), None)
        ]
    );
    assert_eq!(
        dues(
            "zmanda",
            &[
                "--plan",
                "premium",
                "--priority",
                "P2",
                "--received",
                "2026-11-21T10:00:00Z"
            ]
        ),
        vec![(some("2026-11-21T11:00:00Z"), None)]
    );
    assert_eq!(
        dues(
            "zmanda",
            &[
                "--plan",
                "community",
                "--priority",
                "P1",
                "--received",
                "2026-11-21T10:00:00Z"
            ]
        ),
        vec![(None, None)]
    );
    assert_eq!(
        dues(
            "zmanda",
            &[
                "--plan",
                "standard",
                "--priority",
                "P1",
                "--timezone",
                "America/New_York",
                "--received",
                "2026-11-20T21:30:00Z"
            ]
        ),
        vec![(some("2026-11-23T13:30:00Z"), None)]
    );
    // Meteorage technical: 1h inside hours (Thursday 10:00 Paris), 12h on a Saturday.
    assert_eq!(
        dues(
            "meteorage",
            &[
                "--plan",
                "standard",
                "--category",
                "technical",
                "--priority",
                "high",
                "--received",
                "2026-11-19T09:00:00Z",
                "--received",
                "2026-11-21T10:00:00Z"
            ]
        ),
        vec![
            (some("2026-11-19T10:00:00Z"), None),
            (some("2026-11-21T22:00:00Z"), None)
        ]
    );
    assert_eq!(
        dues(
            "meteorage",
            &[
                "--plan",
                "standard",
                "--category",
                "question",
                "--priority",
                "high",
                "--received",
                "2026-11-19T09:00:00Z"
            ]
        ),
        vec![(None, None)]
    );
    // Cirrus Shield: 2 business days over the 11 November holiday; 1 business
    // day over the October DST change (10:00 CEST -> 10:00 CET).
    assert_eq!(
        dues(
            "cirrus-shield",
            &[
                "--plan",
                "payant",
                "--priority",
                "majeure",
                "--received",
                "2026-11-10T10:00:00Z"
            ]
        ),
        vec![(some("2026-11-13T10:00:00Z"), None)]
    );
    assert_eq!(
        dues(
            "cirrus-shield",
            &[
                "--plan",
                "premium",
                "--priority",
                "critique",
                "--received",
                "2026-10-23T08:00:00Z"
            ]
        ),
        vec![(some("2026-10-26T09:00:00Z"), None)]
    );
    assert_eq!(
        dues(
            "cirrus-shield",
            &[
                "--plan",
                "gratuite",
                "--priority",
                "critique",
                "--received",
                "2026-10-23T08:00:00Z"
            ]
        ),
        vec![(None, None)]
    );
    // Cloud Avenue: P1 resolution wall clock, gold 4h; other priorities best effort.
    assert_eq!(
        dues(
            "cloud-avenue",
            &[
                "--plan",
                "gold",
                "--priority",
                "P1",
                "--received",
                "2026-11-21T10:00:00Z"
            ]
        ),
        vec![(None, some("2026-11-21T14:00:00Z"))]
    );
    assert_eq!(
        dues(
            "cloud-avenue",
            &[
                "--plan",
                "gold",
                "--priority",
                "P2",
                "--received",
                "2026-11-21T10:00:00Z"
            ]
        ),
        vec![(None, None)]
    );
    // cegedim: requests resolved within 7 business days.
    assert_eq!(
        dues(
            "cegedim",
            &[
                "--plan",
                "standard",
                "--category",
                "request",
                "--received",
                "2026-11-20T10:00:00Z"
            ]
        ),
        vec![(None, some("2026-12-01T10:00:00Z"))]
    );
}

#[test]
fn sla_due_cli_rejects_unknown_names_with_exit_2() {
    for args in [
        vec!["--plan", "platinum", "--received", "2026-11-20T10:00:00Z"],
        vec![
            "--plan",
            "standard",
            "--priority",
            "P9",
            "--received",
            "2026-11-20T10:00:00Z",
        ],
        vec![
            "--plan",
            "standard",
            "--category",
            "nope",
            "--received",
            "2026-11-20T10:00:00Z",
        ],
        vec![
            "--plan",
            "standard",
            "--timezone",
            "Mars/Olympus",
            "--received",
            "2026-11-20T10:00:00Z",
        ],
        vec!["--plan", "standard", "--received", "yesterday"],
    ] {
        let (code, out, err) = sla_due("zmanda", &args);
        assert_eq!(code, Some(2), "{args:?}: {out} {err}");
        assert!(out.is_empty());
        assert!(!err.trim().is_empty());
    }
}

/// `sla due --explain`: Meteorage on a Sunday night (the policy's "within
/// 24 hours" outside working hours, counted as written), and cirrus-shield
/// business days over Ascension.
#[test]
fn sla_due_explain_shows_the_arithmetic() {
    let (code, out, err) = sla_due(
        "meteorage",
        &[
            "--plan",
            "standard",
            "--priority",
            "average",
            "--category",
            "technical",
            "--received",
            "2026-11-29T21:00:00Z",
            "--explain",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("received Sun 2026-11-29 22:00 CET (21:00 UTC) (closed)")
            && out.contains("received outside hours: 1d of elapsed time")
            && out.contains("= Mon 2026-11-30 22:00 CET (21:00 UTC)"),
        "{out}"
    );
    let (code, out, err) = sla_due(
        "cirrus-shield",
        &[
            "--plan",
            "payant",
            "--priority",
            "majeure",
            "--received",
            "2026-05-13T13:00:00Z",
            "--received",
            "2026-05-16T10:00:00Z",
            "--explain",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("Thu 2026-05-14: holiday, skipped")
            && out.contains("due Mon 2026-05-18 15:00 CEST (13:00 UTC), the same local time of day")
            && out.contains("received while closed: the clock starts at the next opening, Mon 2026-05-18 09:00 CEST"),
        "{out}"
    );
    let (code, _, err) = sla_due(
        "cirrus-shield",
        &[
            "--plan",
            "gold",
            "--received",
            "2026-05-13T13:00:00Z",
            "--explain",
        ],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("unknown plan \"gold\""), "{err}");
}
