//! How SLA figures are written out for people and spreadsheets: the
//! `stats` table, CSV (a header row, RFC 4180 quoting by the csv crate,
//! one row per plan x priority x period) and JSON lines. The figures
//! themselves come from [`crate::core::stats`].

use std::io::Write;

use anyhow::{Context, Result};

use crate::core::stats::{ClockStats, StatsRow};

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
