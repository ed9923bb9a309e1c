//! How SLA figures are written out for people and spreadsheets: the
//! `stats` table, CSV (a header row, RFC 4180 quoting by the csv crate,
//! one row per plan x priority x period) and JSON lines, and the
//! self-contained HTML report (`report`: minijinja, its chart an inline
//! SVG drawn by plotters, nothing fetched). The figures themselves come
//! from [`crate::core::stats`].

use std::io::Write;

use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::core::stats::{AtRisk, ClockStats, Slow, StatsRow};

/// The output formats of `stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// Writes `rows` in `format`; `periods` adds the period column.
pub fn write(out: &mut dyn Write, rows: &[StatsRow], format: Format, periods: bool) -> Result<()> {
    match format {
        Format::Json => {
            for r in rows {
                serde_json::to_writer(&mut *out, r)?;
                writeln!(out)?;
            }
        }
        Format::Csv => write_csv(out, rows, periods)?,
        Format::Table => write_table(out, rows, periods)?,
    }
    out.flush().context("Writing the stats")
}

/// A clock's columns, in the order of [`clock_fields`].
const CLOCK_COLUMNS: [&str; 8] = [
    "met",
    "breached",
    "open",
    "compliance_pct",
    "median_minutes",
    "p90_minutes",
    "business_median_minutes",
    "business_p90_minutes",
];

fn clock_fields(c: &ClockStats) -> [String; 8] {
    let n = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_default();
    [
        c.met.to_string(),
        c.breached.to_string(),
        c.open.to_string(),
        c.compliance_pct
            .map(|p| format!("{p:.1}"))
            .unwrap_or_default(),
        n(c.median_minutes),
        n(c.p90_minutes),
        n(c.business_median_minutes),
        n(c.business_p90_minutes),
    ]
}

fn write_csv(out: &mut dyn Write, rows: &[StatsRow], periods: bool) -> Result<()> {
    let mut w = csv::Writer::from_writer(out);
    let mut header: Vec<String> = Vec::new();
    if periods {
        header.push("period".into());
    }
    header.extend(["plan", "priority", "tickets"].map(String::from));
    for clock in ["first_response", "resolution"] {
        header.extend(CLOCK_COLUMNS.iter().map(|c| format!("{clock}_{c}")));
    }
    w.write_record(&header)?;
    for r in rows {
        let mut rec: Vec<String> = Vec::with_capacity(header.len());
        if periods {
            rec.push(r.period.map(|d| d.to_string()).unwrap_or_default());
        }
        rec.push(r.plan.clone());
        rec.push(r.priority.clone().unwrap_or_default());
        rec.push(r.tickets.to_string());
        rec.extend(clock_fields(&r.first_response));
        rec.extend(clock_fields(&r.resolution));
        w.write_record(&rec)?;
    }
    w.flush().context("Writing the CSV")?;
    Ok(())
}

/// "45m", "3h05m", "2d04h"; "-" for none.
pub fn short_minutes(m: Option<i64>) -> String {
    match m {
        None => "-".into(),
        Some(m) if m < 60 => format!("{m}m"),
        Some(m) if m < 1440 => format!("{}h{:02}m", m / 60, m % 60),
        Some(m) => format!("{}d{:02}h", m / 1440, m % 1440 / 60),
    }
}

fn write_table(out: &mut dyn Write, rows: &[StatsRow], periods: bool) -> Result<()> {
    let clock = |c: &ClockStats| {
        format!(
            "{:>5} {:>8} {:>5} {:>6} {:>8} {:>8} {:>8} {:>8}",
            c.met,
            c.breached,
            c.open,
            c.compliance_pct
                .map(|p| format!("{p:.1}%"))
                .unwrap_or_else(|| "-".into()),
            short_minutes(c.business_median_minutes),
            short_minutes(c.business_p90_minutes),
            short_minutes(c.median_minutes),
            short_minutes(c.p90_minutes),
        )
    };
    let head = format!(
        "{:>5} {:>8} {:>5} {:>6} {:>8} {:>8} {:>8} {:>8}",
        "met", "breached", "open", "met%", "median", "p90", "wall:med", "wall:p90"
    );
    let period = |p: &str| {
        if periods {
            format!("{p:<11} ")
        } else {
            String::new()
        }
    };
    writeln!(
        out,
        "{}{:<12} {:<10} {:>7} | first response (business time, then wall time)",
        period(""),
        "",
        "",
        ""
    )?;
    writeln!(
        out,
        "{}{:<12} {:<10} {:>7} | {head} | resolution",
        period("period"),
        "plan",
        "priority",
        "tickets"
    )?;
    for r in rows {
        writeln!(
            out,
            "{}{:<12} {:<10} {:>7} | {} | {}",
            period(&r.period.map(|d| d.to_string()).unwrap_or_default()),
            r.plan,
            r.priority.as_deref().unwrap_or("-"),
            r.tickets,
            clock(&r.first_response),
            clock(&r.resolution),
        )?;
    }
    Ok(())
}

/// A report's figures, computed from the store's facts.
pub struct Figures {
    pub rows: Vec<StatsRow>,
    /// The same figures for the period just before.
    pub previous: Vec<StatsRow>,
    /// Every day of the period with its first responses met and breached.
    pub daily: Vec<(NaiveDate, u64, u64)>,
    pub at_risk: Vec<AtRisk>,
    pub slowest: Vec<Slow>,
}

/// The figures of the period [since, until) read in `zone`, from its
/// tickets (`facts`), those of the period before and the tickets running now.
pub fn figures(
    model: &crate::core::sla::SlaModel,
    zone: Tz,
    (since, until): (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
    facts: &[crate::core::stats::TicketFacts],
    previous: &[crate::core::stats::TicketFacts],
    running: &[crate::core::stats::Running],
) -> Figures {
    use crate::core::stats::{self, Period};
    let by_day = stats::first_response_by_period(&stats::compute(
        model,
        facts,
        Some(Period::Day),
        zone,
        now,
    ));
    // Every day of the period, with nothing where nothing was due.
    let first = since.with_timezone(&zone).date_naive();
    let last = (until - chrono::TimeDelta::seconds(1))
        .with_timezone(&zone)
        .date_naive();
    let daily = first
        .iter_days()
        .take_while(|d| *d <= last)
        .map(|d| {
            by_day
                .iter()
                .find(|(p, _, _)| *p == d)
                .copied()
                .unwrap_or((d, 0, 0))
        })
        .collect();
    Figures {
        rows: stats::compute(model, facts, None, zone, now),
        previous: stats::compute(model, previous, None, zone, now),
        daily,
        at_risk: stats::at_risk(model, running, now),
        slowest: stats::slowest(model, facts, 10),
    }
}

/// What the HTML report and the digest show.
pub struct Report<'a> {
    pub desk: &'a str,
    /// The words the context writes itself: French for "fr", else English.
    pub language: &'a str,
    pub zone: Tz,
    /// The period, [since, until).
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub figures: &'a Figures,
}

const REPORT: &str = include_str!("report.html");

/// What the report and the digest templates see: `desk`, `since`,
/// `until`, `zone`, `days`, `generated`, `rows` (plan, priority, tickets,
/// `fr` and `res` with met, breached, open, compliance, median; `trend`
/// up, down or same against `before`), `daily` (day, met, breached, pct,
/// `width` of its bar in pixels out of 200), `chart_text` (the chart in
/// a sentence), `at_risk` and `slowest`.
pub fn context(r: &Report) -> minijinja::Value {
    use minijinja::context;
    let w = Words::of(r.language);
    let f = r.figures;
    let local = |t: DateTime<Utc>| {
        t.with_timezone(&r.zone)
            .format("%Y-%m-%d %H:%M")
            .to_string()
    };
    let pct = |c: &ClockStats| {
        c.compliance_pct
            .map(|p| format!("{p:.1}%"))
            .unwrap_or_else(|| "-".into())
    };
    let clock = |c: &ClockStats| {
        context! {
            met => c.met, breached => c.breached, open => c.open,
            compliance => pct(c),
            median => short_minutes(c.business_median_minutes.or(c.median_minutes)),
        }
    };
    let rows: Vec<_> = f
        .rows
        .iter()
        .map(|row| {
            let before = f
                .previous
                .iter()
                .find(|p| p.plan == row.plan && p.priority == row.priority)
                .and_then(|p| p.first_response.compliance_pct);
            let trend = match (row.first_response.compliance_pct, before) {
                (Some(now), Some(then)) if now > then => "up",
                (Some(now), Some(then)) if now < then => "down",
                (Some(_), Some(_)) => "same",
                _ => "",
            };
            context! {
                plan => row.plan, priority => row.priority.as_deref().unwrap_or("-"),
                tickets => row.tickets,
                fr => clock(&row.first_response), res => clock(&row.resolution),
                trend => trend,
                before => before.map(|b| format!("{b:.1}%")).unwrap_or_default(),
            }
        })
        .collect();
    let at_risk: Vec<_> = f
        .at_risk
        .iter()
        .map(|t| {
            context! {
                reference => t.reference, subject => t.subject, plan => t.plan,
                priority => t.priority.as_deref().unwrap_or("-"),
                clock => if t.clock == "resolution" { w.resolution } else { w.first_response },
                due => local(t.due), breached => t.breached,
                age => short_minutes(Some(t.age_minutes)),
                assignee => t.assignee.as_deref().unwrap_or("-"),
            }
        })
        .collect();
    let slowest: Vec<_> = f
        .slowest
        .iter()
        .map(|t| {
            context! {
                reference => t.reference, subject => t.subject, plan => t.plan,
                priority => t.priority.as_deref().unwrap_or("-"),
                business => short_minutes(t.business_minutes),
                wall => short_minutes(Some(t.wall_minutes)),
                met => match t.met { Some(true) => w.met, Some(false) => w.breached, None => w.best_effort },
            }
        })
        .collect();
    let decided: Vec<_> = f.daily.iter().filter(|(_, m, b)| m + b > 0).collect();
    let chart_text = if decided.is_empty() {
        w.nothing_due.to_string()
    } else {
        let (m, b) = decided
            .iter()
            .fold((0, 0), |(m, b), (_, dm, db)| (m + dm, b + db));
        (w.over_the_period)(m, b, decided.len(), f.daily.len())
    };
    // Local days, not 24-hour spans: a week across a DST change is 7.
    let days = (r.until.with_timezone(&r.zone).date_naive()
        - r.since.with_timezone(&r.zone).date_naive())
    .num_days()
    .max(1);
    // A period of whole days reads as its first and last day.
    let (since, until) = match crate::core::stats::whole_days(r.zone, r.since, r.until) {
        Some((first, last)) => (first.to_string(), format!("{last} {}", w.included)),
        None => (local(r.since), local(r.until)),
    };
    let daily: Vec<_> = f
        .daily
        .iter()
        .map(|(day, m, b)| {
            let pct = (m + b > 0).then(|| *m as f64 * 100.0 / (m + b) as f64);
            context! {
                day => day.format_localized("%Y-%m-%d %a", w.locale).to_string(),
                met => m, breached => b,
                pct => pct.map(|p| format!("{p:.0}%")).unwrap_or_else(|| "-".into()),
                width => pct.map_or(0, |p| (p * 2.0).round() as u32),
            }
        })
        .collect();
    context! {
        desk => r.desk,
        since => since,
        until => until,
        zone => r.zone.name(),
        days => days,
        generated => local(r.now),
        rows => rows,
        daily => daily,
        chart_text => chart_text,
        at_risk => at_risk,
        slowest => slowest,
    }
}

/// The report as one HTML file.
pub fn html_report(r: &Report) -> Result<String> {
    let mut env = minijinja::Environment::new();
    env.add_template("report.html", REPORT)?;
    let ctx = minijinja::context! { chart => daily_chart(&r.figures.daily)?, ..context(r) };
    Ok(env.get_template("report.html")?.render(ctx)?)
}

/// The few words [`context`] writes itself (the templates hold the rest).
struct Words {
    locale: chrono::Locale,
    included: &'static str,
    met: &'static str,
    breached: &'static str,
    best_effort: &'static str,
    first_response: &'static str,
    resolution: &'static str,
    nothing_due: &'static str,
    over_the_period: fn(u64, u64, usize, usize) -> String,
}

impl Words {
    fn of(language: &str) -> Words {
        match language {
            "fr" => Words {
                locale: chrono::Locale::fr_FR,
                included: "inclus",
                met: "tenu",
                breached: "dépassé",
                best_effort: "au mieux",
                first_response: "première réponse",
                resolution: "résolution",
                nothing_due: "Aucune première réponse n'était attendue sur la période.",
                over_the_period: |m, b, days, of| {
                    format!(
                        "Sur la période : {m} tenues, {b} dépassées, sur {days} jours sur {of}."
                    )
                },
            },
            _ => Words {
                locale: chrono::Locale::en_GB,
                included: "included",
                met: "met",
                breached: "breached",
                best_effort: "best effort",
                first_response: "first response",
                resolution: "resolution",
                nothing_due: "No first response was due in this period.",
                over_the_period: |m, b, days, of| {
                    format!("Over the period: {m} met, {b} breached, on {days} of {of} days.")
                },
            },
        }
    }
}

/// The bars' colour (the test of the rendered report looks for it).
pub const BAR: plotters::style::RGBColor = plotters::style::RGBColor(43, 108, 176);

/// Bars of first-response compliance per day, as an SVG element; a day
/// with nothing decided has no bar.
pub fn daily_chart(daily: &[(NaiveDate, u64, u64)]) -> Result<String> {
    use plotters::prelude::*;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 320)).into_drawing_area();
        let err = |e: &dyn std::fmt::Display| anyhow!("Drawing the chart: {e}");
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let n = daily.len().max(1) as i32;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d((0..n).into_segmented(), 0f64..100f64)
            .map_err(|e| err(&e))?;
        let label = |v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => daily
                .get(*i as usize)
                .map(|(d, _, _)| d.format("%d %b").to_string())
                .unwrap_or_default(),
            SegmentValue::Last => String::new(),
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(daily.len().clamp(1, 16))
            .x_label_formatter(&label)
            .y_label_formatter(&|v| format!("{v:.0}%"))
            .y_desc("first responses met")
            .draw()
            .map_err(|e| err(&e))?;
        let bars = daily.iter().enumerate().filter_map(|(i, (_, m, b))| {
            let decided = m + b;
            (decided > 0).then(|| {
                let pct = *m as f64 * 100.0 / decided as f64;
                let i = i as i32;
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), pct),
                    ],
                    BAR.filled(),
                );
                bar.set_margin(0, 0, 3, 3);
                bar
            })
        });
        chart.draw_series(bars).map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> StatsRow {
        StatsRow {
            period: chrono::NaiveDate::from_ymd_opt(2026, 11, 16),
            plan: "gold, \"24/7\"".into(),
            priority: Some("P1".into()),
            tickets: 3,
            first_response: ClockStats {
                met: 2,
                breached: 1,
                open: 0,
                compliance_pct: Some(66.7),
                median_minutes: Some(90),
                p90_minutes: Some(3000),
                business_median_minutes: Some(30),
                business_p90_minutes: None,
            },
            resolution: ClockStats::default(),
        }
    }

    #[test]
    fn csv_has_a_header_row_and_quotes_as_rfc_4180() {
        let mut out = Vec::new();
        write(&mut out, &[row()], Format::Csv, true).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with(
            "period,plan,priority,tickets,first_response_met,first_response_breached,\
             first_response_open,first_response_compliance_pct,first_response_median_minutes,"
        ));
        assert!(
            lines[0]
                .ends_with("resolution_business_median_minutes,resolution_business_p90_minutes")
        );
        assert_eq!(
            lines[1],
            "2026-11-16,\"gold, \"\"24/7\"\"\",P1,3,2,1,0,66.7,90,3000,30,,0,0,0,,,,,"
        );
        assert_eq!(lines[0].split(',').count(), 4 + 2 * 8);
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(short_minutes(None), "-");
        assert_eq!(short_minutes(Some(45)), "45m");
        assert_eq!(short_minutes(Some(185)), "3h05m");
        assert_eq!(short_minutes(Some(3000)), "2d02h");
    }
}
