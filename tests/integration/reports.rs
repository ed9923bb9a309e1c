//! `stats` on a database built by the test: tickets with known arrival,
//! response and resolution instants across two weeks and the change to
//! winter time, under the zmanda policy (standard: Paris office hours
//! 08:00-17:00; premium: wall clock). The table, CSV and JSON agree with
//! each other and with figures computed by hand; bad arguments are named.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::*;

/// A desk whose reports read dates and periods in Paris, its database
/// created by a first run, and the tickets inserted as the store writes
/// them (instants in UTC, `Z`).
fn desk() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    maildir(dir.path(), "a");
    let cfg = dir.path().join("supportdesk.toml");
    let text = maildir_config(dir.path(), &["a"])
        .replace("[desk]\n", "[desk]\ntimezone = \"Europe/Paris\"\n");
    std::fs::write(&cfg, text).unwrap();
    run_once_ok(&cfg);
    let conn = rusqlite::Connection::open(dir.path().join("state/supportdesk.db")).unwrap();
    insert_tickets(&conn);
    (dir, cfg)
}

/// T1-T5 (below), as the store writes them.
fn insert_tickets(conn: &rusqlite::Connection) {
    // (plan, received, first response due, responded, resolved)
    let tickets = [
        // T1, Friday 23 October 16:30 in Paris (CEST): due after one open
        // hour, Monday 08:30 (CET); answered Monday 08:15: met. Business
        // 30 + 15 = 45 minutes; wall 64 h 45 = 3885 minutes.
        (
            "standard",
            "2026-10-23T14:30:00Z",
            Some("2026-10-26T07:30:00Z"),
            Some("2026-10-26T07:15:00Z"),
            None,
        ),
        // T2, Sunday 25 October 23:30 in Paris: due 15 minutes later,
        // answered after 30: breached.
        (
            "premium",
            "2026-10-25T22:30:00Z",
            Some("2026-10-25T22:45:00Z"),
            Some("2026-10-25T23:00:00Z"),
            None,
        ),
        // T3, Monday 26 October 00:30 in Paris (still Sunday in UTC):
        // answered after 10 minutes: met.
        (
            "premium",
            "2026-10-25T23:30:00Z",
            Some("2026-10-25T23:45:00Z"),
            Some("2026-10-25T23:40:00Z"),
            None,
        ),
        // T4, Tuesday 27 October 09:00 in Paris, due 10:00, never answered:
        // breached.
        (
            "standard",
            "2026-10-27T08:00:00Z",
            Some("2026-10-27T09:00:00Z"),
            None,
            None,
        ),
        // T5, Tuesday 10:00, answered 10:25 (25 minutes, met); pending from
        // 11:00 to Wednesday 09:00, resolved at 10:00. Resolution (best
        // effort under zmanda): wall 24 h less the 22 h pause; business
        // 7 h + 2 h less the pause's 6 h + 1 h: 120 minutes both.
        (
            "standard",
            "2026-10-27T09:00:00Z",
            Some("2026-10-27T10:00:00Z"),
            Some("2026-10-27T09:25:00Z"),
            Some("2026-10-28T09:00:00Z"),
        ),
    ];
    for (n, (plan, received, due, responded, resolved)) in tickets.iter().enumerate() {
        conn.execute(
            "INSERT INTO tickets (reference, requester, plan, language, priority, status,
                received_at, first_response_due, first_responded_at, resolved_at, created_at,
                subject)
             VALUES (?1, 'c@example.com', ?2, 'en', 'P1', ?3, ?4, ?5, ?6, ?7, ?4,
                'Restore <b>fails</b> & more')",
            rusqlite::params![
                format!("SUP-{:06}", n + 1),
                plan,
                if resolved.is_some() {
                    "resolved"
                } else {
                    "open"
                },
                received,
                due,
                responded,
                resolved,
            ],
        )
        .unwrap();
    }
    for (at, action, detail) in [
        ("2026-10-27T10:00:00Z", "pending", None),
        ("2026-10-28T08:00:00Z", "resumed", Some("paused 79200s")),
        ("2026-10-28T09:00:00Z", "resolved", None),
    ] {
        conn.execute(
            "INSERT INTO ticket_events (ticket_id, at, actor, action, detail)
             VALUES (5, ?1, 'agent@example.com', ?2, ?3)",
            rusqlite::params![at, action, detail],
        )
        .unwrap();
    }
}

fn stats(cfg: &Path, args: &[&str]) -> String {
    let mut all = vec!["stats"];
    all.extend(args);
    let out = run(cfg, &all, &[]);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json_rows(cfg: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["--format", "json"];
    all.extend(args);
    stats(cfg, &all)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The CSV as maps from its header's names.
fn csv_rows(cfg: &Path, args: &[&str]) -> Vec<BTreeMap<String, String>> {
    let mut all = vec!["--format", "csv"];
    all.extend(args);
    let text = stats(cfg, &all);
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let header = r.headers().unwrap().clone();
    r.records()
        .map(|rec| {
            header
                .iter()
                .zip(rec.unwrap().iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// The hand-computed figures of one row: tickets, then per clock met,
/// breached, open, compliance, wall median and p90, business median and
/// p90 ("" for none).
type Expected<'a> = (&'a str, [&'a str; 9]);

fn check(csv: &BTreeMap<String, String>, json: &serde_json::Value, want: &Expected) {
    let (tickets, [met, breached, open, pct, med, p90, bmed, bp90, res_med]) = want;
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::Number(n) if n.is_f64() => format!("{:.1}", n.as_f64().unwrap()),
        v => v.to_string(),
    };
    let fr = &json["first_response"];
    let pairs = [
        ("tickets", &json["tickets"], tickets),
        ("first_response_met", &fr["met"], met),
        ("first_response_breached", &fr["breached"], breached),
        ("first_response_open", &fr["open"], open),
        ("first_response_compliance_pct", &fr["compliance_pct"], pct),
        ("first_response_median_minutes", &fr["median_minutes"], med),
        ("first_response_p90_minutes", &fr["p90_minutes"], p90),
        (
            "first_response_business_median_minutes",
            &fr["business_median_minutes"],
            bmed,
        ),
        (
            "first_response_business_p90_minutes",
            &fr["business_p90_minutes"],
            bp90,
        ),
        (
            "resolution_median_minutes",
            &json["resolution"]["median_minutes"],
            res_med,
        ),
    ];
    for (column, j, want) in pairs {
        assert_eq!(csv[column], *want, "CSV {column} of {csv:?}");
        assert_eq!(text(j), *want, "JSON {column} of {json}");
    }
    assert_eq!(csv["plan"], json["plan"].as_str().unwrap());
}

#[test]
fn stats_csv_json_and_table_agree_with_hand_computed_figures() {
    let (_dir, cfg) = desk();
    let csv = csv_rows(&cfg, &[]);
    let json = json_rows(&cfg, &[]);
    assert_eq!(csv.len(), 2);
    assert_eq!(json.len(), 2);
    // premium P1: T2 breached after 30 minutes, T3 met after 10: 50 %;
    // median 20, p90 10 + 0.9 x 20 = 28; business time is wall time.
    let premium: Expected = ("2", ["1", "1", "0", "50.0", "20", "28", "20", "28", ""]);
    // standard P1: T1 and T5 met, T4 breached: 66.7 %. Wall 3885 and 25:
    // median 1955, p90 25 + 0.9 x 3860 = 3499; business 45 and 25:
    // median 35, p90 43. Resolution: T5's 120 minutes.
    let standard: Expected = (
        "3",
        ["2", "1", "0", "66.7", "1955", "3499", "35", "43", "120"],
    );
    check(&csv[0], &json[0], &premium);
    check(&csv[1], &json[1], &standard);
    assert_eq!(csv[1]["resolution_business_median_minutes"], "120");
    // The table says the same, durations written for people.
    let table = stats(&cfg, &[]);
    let line = table
        .lines()
        .find(|l| l.starts_with("standard"))
        .unwrap_or_else(|| panic!("{table}"));
    for cell in ["66.7%", "35m", "43m", "1d08h", "2d10h", "2h00m"] {
        assert!(line.contains(cell), "{cell} in {line}\n{table}");
    }
    // --json is --format json.
    assert_eq!(stats(&cfg, &["--json"]), stats(&cfg, &["--format", "json"]));
}

#[test]
fn stats_by_week_starts_weeks_at_the_zone_s_midnight() {
    let (_dir, cfg) = desk();
    let weeks = |args: &[&str]| -> Vec<(String, String, String)> {
        let mut all = vec!["--by", "week"];
        all.extend(args);
        csv_rows(&cfg, &all)
            .into_iter()
            .map(|r| (r["period"].clone(), r["plan"].clone(), r["tickets"].clone()))
            .collect()
    };
    let row = |p: &str, plan: &str, n: &str| (p.to_string(), plan.to_string(), n.to_string());
    // In Paris (the desk's zone), T3 arrived on Monday 26 October.
    assert_eq!(
        weeks(&[]),
        [
            row("2026-10-19", "premium", "1"),
            row("2026-10-19", "standard", "1"),
            row("2026-10-26", "premium", "1"),
            row("2026-10-26", "standard", "2"),
        ]
    );
    // In UTC, on Sunday 25 October.
    assert_eq!(
        weeks(&["--timezone", "UTC"]),
        [
            row("2026-10-19", "premium", "2"),
            row("2026-10-19", "standard", "1"),
            row("2026-10-26", "standard", "2"),
        ]
    );
    // The per-week figures of premium in Paris: T2 alone, then T3 alone.
    let json = json_rows(&cfg, &["--by", "week"]);
    let premium: Vec<_> = json.iter().filter(|r| r["plan"] == "premium").collect();
    assert_eq!(premium[0]["period"], "2026-10-19");
    assert_eq!(premium[0]["first_response"]["compliance_pct"], 0.0);
    assert_eq!(premium[1]["first_response"]["compliance_pct"], 100.0);
    // Days and months.
    // 23, 25 and 26 October, and the 27th with T4 and T5 in one row.
    assert_eq!(csv_rows(&cfg, &["--by", "day"]).len(), 4);
    let months = csv_rows(&cfg, &["--by", "month"]);
    assert!(
        months.iter().all(|r| r["period"] == "2026-10-01"),
        "{months:?}"
    );
}

#[test]
fn stats_since_and_until_are_dates_in_the_zone_until_included() {
    let (_dir, cfg) = desk();
    let tickets = |args: &[&str]| -> u64 {
        json_rows(&cfg, args)
            .iter()
            .map(|r| r["tickets"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(tickets(&[]), 5);
    // From Monday 26 October, midnight in Paris (Sunday 23:00 UTC): T3-T5.
    assert_eq!(tickets(&["--since", "2026-10-26"]), 3);
    // Up to Sunday 25 October, included: T1 and T2.
    assert_eq!(tickets(&["--until", "2026-10-25"]), 2);
    assert_eq!(
        tickets(&["--since", "2026-10-25", "--until", "2026-10-25"]),
        1
    );
    // An instant is taken as it is.
    assert_eq!(tickets(&["--since", "2026-10-25T23:00:00Z"]), 3);
    assert_eq!(tickets(&["--since", "2026-10-25T23:30:01Z"]), 2);
}

#[test]
fn stats_names_a_bad_argument() {
    let (_dir, cfg) = desk();
    for (args, says) in [
        (
            &["--by", "fortnight"][..],
            "unknown period \"fortnight\"; known: day, week, month",
        ),
        (
            &["--since", "2026-10-26", "--until", "2026-10-20"],
            "--until 2026-10-20 is before --since 2026-10-26",
        ),
        (
            &["--timezone", "Mars/Olympus"],
            "--timezone \"Mars/Olympus\": unknown time zone",
        ),
        (
            &["--since", "26/10/2026"],
            "--since \"26/10/2026\": expected YYYY-MM-DD or an RFC 3339 instant",
        ),
        (&["--format", "xml"], "invalid value 'xml' for '--format"),
    ] {
        let mut all = vec!["stats"];
        all.extend(args);
        let out = run(&cfg, &all, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn metrics_export_the_stopped_clocks_per_plan_and_priority_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let a = maildir(dir.path(), "a");
    let port = free_port();
    let cfg = dir.path().join("supportdesk.toml");
    // Premium (wall clock, a first response due within minutes) for every
    // sender, so the response made at once is met.
    let text = maildir_config(dir.path(), &["a"])
        .replace("default_plan = \"community\"", "default_plan = \"premium\"")
        + &format!("\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n");
    std::fs::write(&cfg, text).unwrap();
    let daemon = spawn_daemon(&cfg, &dir.path().join("daemon.log"));
    // Scraped before anything stopped: no clock series yet.
    wait_until("the endpoint", || scrape(port).is_some());
    deliver(&a, 1, "Ann <ann@example.com>");
    wait_until("the ticket", || {
        count_at(&cfg, "SELECT count(*) FROM tickets") == 1
    });
    let (plan, priority): (String, String) = db(&cfg)
        .query_row("SELECT plan, priority FROM tickets", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(plan, "premium");
    let body = scrape(port).unwrap();
    assert!(!body.contains("supportdesk_sla_met_total{"), "{body}");
    for args in [&["tickets", "respond", "1"][..], &["tickets", "close", "1"]] {
        let out = run(&cfg, args, &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let fr = format!("{{clock=\"first_response\",plan=\"premium\",priority=\"{priority}\"}}");
    let res = format!("{{clock=\"resolution\",plan=\"premium\",priority=\"{priority}\"}}");
    // Twice: each stop is observed once, not once per scrape.
    for _ in 0..2 {
        let body = scrape(port).unwrap();
        let got = |name: &str, labels: &str| sample(&body, &format!("supportdesk_{name}{labels}"));
        assert_eq!(
            got("sla_time_business_seconds_count", &fr),
            Some(1.0),
            "{body}"
        );
        assert_eq!(
            got("sla_time_business_seconds_count", &res),
            Some(1.0),
            "{body}"
        );
        assert_eq!(got("sla_met_total", &fr), Some(1.0), "{body}");
        assert_eq!(got("sla_breached_total", &fr), None, "{body}");
        // Premium promises no resolution time: observed, neither met nor breached.
        assert_eq!(got("sla_met_total", &res), None, "{body}");
        // Answered within seconds: in the first bucket, 5 minutes.
        let first_bucket = format!(
            "supportdesk_sla_time_business_seconds_bucket{{le=\"300.0\",clock=\"first_response\",plan=\"premium\",priority=\"{priority}\"}}"
        );
        assert_eq!(sample(&body, &first_bucket), Some(1.0), "{body}");
        let sum = got("sla_time_business_seconds_sum", &fr).unwrap();
        assert!((0.0..300.0).contains(&sum), "{sum}");
    }
    stop_daemon(daemon);
}

/// `file` rendered by Debian's Chromium, headless, as a PNG: (width,
/// height, RGB pixels).
fn screenshot(file: &Path, dir: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let png = dir.join("report.png");
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1200,2000",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.join("chromium").display()
        ))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", file.display()))
        .output()
        .expect("chromium (scripts/test installs Debian's chromium)");
    assert!(
        png.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("a {other:?} screenshot"),
    };
    let px = buf
        .chunks_exact(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, px)
}

#[test]
fn report_is_one_self_contained_html_file_whose_chart_renders_in_chromium() {
    let (dir, cfg) = desk();
    let file = dir.path().join("report.html");
    let file_arg = file.to_str().unwrap();
    let out = run(
        &cfg,
        &[
            "report",
            "--since",
            "2026-10-19",
            "--until",
            "2026-10-28",
            "--out",
            file_arg,
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&file).unwrap();
    // Nothing fetched: no link, script or image from anywhere.
    for outside in ["http://", "https://", "<script", "<img", "<link", "url("] {
        let found = html
            .match_indices(outside)
            .filter(|(i, _)| !html[..*i].ends_with("xmlns=\""))
            .count();
        assert_eq!(found, 0, "{outside} in the report");
    }
    assert_eq!(html.matches("<svg").count(), 1);
    // A customer's subject is text, never markup.
    assert!(!html.contains("<b>fails"));
    assert!(
        html.contains("Restore &lt;b&gt;fails&lt;&#x2f;b&gt; &amp; more"),
        "{html}"
    );
    assert!(
        html.contains(
            "Tickets received from 2026-10-19 to 2026-10-28 included (Europe&#x2f;Paris)"
        )
    );
    // The figures `stats` gives for the same days.
    let compliance = html
        .split("<table id=\"compliance\">")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .unwrap();
    let row = |plan: &str| {
        compliance
            .split("<tr>")
            .find(|r| r.contains(&format!(">{plan}<")))
            .unwrap_or_else(|| panic!("{plan} in {compliance}"))
            .to_string()
    };
    let csv = csv_rows(&cfg, &["--since", "2026-10-19", "--until", "2026-10-28"]);
    for c in &csv {
        let r = row(&c["plan"]);
        let pct = format!("{}%", c["first_response_compliance_pct"]);
        assert!(r.contains(&format!(">{pct}<")), "{pct} in {r}");
        assert!(r.contains(&format!("<td>{}</td>", c["tickets"])), "{r}");
    }
    assert!(row("standard").contains(">35m<"), "the business median");
    // Nothing the week before: no trend.
    assert!(!compliance.contains("&#9650;") && !compliance.contains("&#9660;"));
    // At risk: T4, unanswered and past due.
    let risk = html.split("<table id=\"at-risk\">").nth(1).unwrap();
    let risk = risk.split("</table>").next().unwrap();
    assert_eq!(risk.matches("SUP-").count(), 1, "{risk}");
    assert!(
        risk.contains("SUP-000004") && risk.contains("(breached)"),
        "{risk}"
    );
    // The slowest first responses, in business time: T1 45m, T2 30m,
    // T5 25m, T3 10m.
    let slow = html.split("<table id=\"slowest\">").nth(1).unwrap();
    let order: Vec<&str> = slow
        .split("</table>")
        .next()
        .unwrap()
        .match_indices("SUP-0000")
        .map(|(i, _)| &slow[i..i + 10])
        .collect();
    assert_eq!(
        order,
        ["SUP-000001", "SUP-000002", "SUP-000005", "SUP-000003"]
    );
    // The text alternative of the chart.
    assert!(html.contains("Over the period: 3 met, 2 breached, on 4 of 10 days."));

    // Rendered: the chart's bars are there (100 % on the 23rd and the
    // 26th, 50 % on the 27th, none where nothing was due or all breached).
    let (w, h, px) = screenshot(&file, dir.path());
    let bar = supportdesk::reporting::BAR;
    let bars = px
        .iter()
        .filter(|p| {
            p[0].abs_diff(bar.0) < 8 && p[1].abs_diff(bar.1) < 8 && p[2].abs_diff(bar.2) < 8
        })
        .count();
    // Each bar is some 80 pixels wide; 2.5 bars of some 250 pixels high.
    assert!(bars > 20_000, "{bars} bar pixels in {w}x{h}");
    // Not all one colour either: the page has text.
    let white = px.iter().filter(|p| **p == [255, 255, 255]).count();
    assert!(white < (w * h) as usize, "a blank page");
}

/// Pixels of the bars' colour in a screenshot.
fn bar_pixels(px: &[[u8; 3]]) -> usize {
    let bar = supportdesk::reporting::BAR;
    px.iter()
        .filter(|p| {
            p[0].abs_diff(bar.0) < 8 && p[1].abs_diff(bar.1) < 8 && p[2].abs_diff(bar.2) < 8
        })
        .count()
}

/// The digests at the sink: (subject, text part, HTML part).
async fn sink_digests(stack: &Stack) -> Vec<(String, String, String)> {
    sink_messages_within(stack, 0, std::time::Duration::ZERO)
        .await
        .iter()
        .filter_map(|raw| {
            let m = mail_parser::MessageParser::default().parse(raw)?;
            let subject = m.subject()?.to_string();
            subject.starts_with("[SLA digest]").then(|| {
                (
                    subject,
                    m.body_text(0).unwrap_or_default().to_string(),
                    m.body_html(0).unwrap_or_default().to_string(),
                )
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_due_while_down_goes_out_once_through_postfix_and_renders() {
    let stack = start_stack();
    let config = write_config_with(
        &stack,
        false,
        "\n[[digest]]\nname = \"weekly\"\nto = [\"Manager <manager@example.com>\"]\n\
         language = \"en\"\ntimezone = \"Europe/Paris\"\nevery = \"week\"\nweekday = \"monday\"\nhour = 8\n",
    );
    // The database as the daemon left it, with T1-T5.
    let state = config.parent().unwrap().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let mut conn = rusqlite::Connection::open(state.join("supportdesk.db")).unwrap();
    supportdesk::store::schema::migrate(&mut conn).unwrap();
    insert_tickets(&conn);
    drop(conn);
    // Monday 2 November 08:30 in Paris: the digest of 26 October - 1
    // November was due at 08:00, while the daemon was down.
    let log = stack.dir.path().join("daemon.log");
    let daemon = Daemon(
        std::process::Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .arg("run")
            .env("RUST_LOG", "info")
            .env("SUPPORTDESK_TEST_CLOCK", "2026-11-02T08:30:00+01:00")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut got = Vec::new();
    while got.is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        got = sink_digests(&stack).await;
    }
    stop_daemon(daemon);
    assert_eq!(got.len(), 1, "{}", std::fs::read_to_string(&log).unwrap());
    let (subject, text, html) = &got[0];
    assert_eq!(
        subject,
        "[SLA digest] Reload Desk: 2026-10-26 to 2026-11-01 included"
            .replace("Reload Desk", &desk_name(&config))
            .as_str()
    );
    // The figures `stats` gives for the same week: standard 50 % (T4
    // breached, T5 met), premium 100 % (T3); the week before had T1 and
    // T2 (premium 0 %: up).
    let csv = csv_rows(
        &config,
        &[
            "--since",
            "2026-10-26",
            "--until",
            "2026-11-01",
            "--timezone",
            "Europe/Paris",
        ],
    );
    assert_eq!(csv.len(), 2);
    for c in &csv {
        let tickets = match c["tickets"].as_str() {
            "1" => "1 ticket".to_string(),
            n => format!("{n} tickets"),
        };
        let line = format!(
            "- {} P1: {tickets}. First response {}% on time",
            c["plan"], c["first_response_compliance_pct"]
        );
        assert!(text.contains(&line), "{line} in\n{text}");
    }
    assert!(text.contains("premium P1: 1 ticket. First response 100.0% on time (1 met, 0 breached, 0 open; up from 0.0%)"), "{text}");
    assert!(text.contains("- SUP-000004 "), "at risk: {text}");
    assert!(
        text.contains("2026-10-27 Tue  50%  (1 met, 1 breached)"),
        "{text}"
    );
    // The HTML part: no image, no script, nothing fetched; rendered, its
    // bars show (200 px for the 26th, 100 px for the 27th, 14 px high).
    for outside in ["<img", "<script", "<svg", "http://", "https://", "url("] {
        assert!(!html.contains(outside), "{outside} in the digest");
    }
    let file = stack.dir.path().join("digest.html");
    std::fs::write(&file, html).unwrap();
    let (w, h, px) = screenshot(&file, stack.dir.path());
    let bars = bar_pixels(&px);
    assert!(bars > 3_000, "{bars} bar pixels in {w}x{h}");

    // A restart right after: nothing more. Later that week: nothing more.
    for now in ["2026-11-02T08:31:00+01:00", "2026-11-06T12:00:00+01:00"] {
        run_once_at(&config, now);
    }
    let digests = |conn: &rusqlite::Connection| -> i64 {
        conn.query_row(
            "SELECT count(*) FROM outbox WHERE kind = 'digest'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(digests(&db(&config)), 1);
    // The next Monday: the next week's, once.
    run_once_at(&config, "2026-11-09T08:00:00+01:00");
    run_once_at(&config, "2026-11-09T09:00:00+01:00");
    let conn = db(&config);
    assert_eq!(digests(&conn), 2);
    let weeks: Vec<String> = conn
        .prepare("SELECT first_day FROM digests ORDER BY first_day")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(weeks, ["2026-10-26", "2026-11-02"]);
    let later = sink_messages(&stack, 2).await;
    assert_eq!(sink_digests(&stack).await.len(), 2, "{} mails", later.len());
}

fn desk_name(config: &Path) -> String {
    let text = std::fs::read_to_string(config).unwrap();
    let t: toml::Table = toml::from_str(&text).unwrap();
    t["desk"]["name"].as_str().unwrap().to_string()
}

#[test]
fn check_config_names_a_bad_digest_entry() {
    let dir = tempfile::tempdir().unwrap();
    maildir(dir.path(), "a");
    let base = maildir_config(dir.path(), &["a"]);
    for (entry, key, says) in [
        (
            "name = \"w\"\nto = [\"m@example.com\"]\nlanguage = \"xx\"\nevery = \"week\"",
            "digest.0.language",
            "no digest template for the language \"xx\"",
        ),
        (
            "name = \"w\"\nto = [\"m@example.com\"]\ntimezone = \"Mars/Olympus\"\nevery = \"day\"",
            "digest.0.timezone",
            "unknown time zone \"Mars/Olympus\"",
        ),
        (
            "name = \"w\"\nto = [\"m@example.com\"]\nevery = \"fortnight\"",
            "digest.0.every",
            "unknown value \"fortnight\"; expected \"day\" or \"week\"",
        ),
        (
            "name = \"w\"\nto = [\"m@example.com\"]\nevery = \"week\"\nweekday = \"someday\"",
            "digest.0.weekday",
            "\"someday\" is not a day of the week",
        ),
        (
            "name = \"w\"\nto = [\"m@example.com\"]\nevery = \"day\"\nhour = 24",
            "digest.0.hour",
            "24 is not an hour of the day (0-23)",
        ),
        (
            "name = \"w\"\nto = [\"not an address\"]\nevery = \"day\"",
            "digest.0.to.0",
            "\"not an address\" is not a mail address",
        ),
    ] {
        let cfg = dir.path().join("supportdesk.toml");
        std::fs::write(&cfg, format!("{base}\n[[digest]]\n{entry}\n")).unwrap();
        let out = run(&cfg, &["check-config"], &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{entry}: {err}");
        assert!(err.contains(says), "{entry}: {err}");
        assert!(err.contains(&format!("key `{key}`: ")), "{key} in {err}");
        assert!(err.contains("supportdesk.toml:"), "{err}");
    }
}
