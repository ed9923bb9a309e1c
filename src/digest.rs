//! Manager digests (`[[digest]]`): at each sweep, a digest whose latest
//! sending is due and not yet recorded is built from the period's figures
//! (as `report` computes them), rendered with `digest.<lang>.txt` and its
//! `.html` alternative (a chart as an HTML table of bars: no image, no
//! SVG, so it shows in ordinary mail clients), and queued in the outbox
//! with its record in one transaction: once per period and recipient,
//! across restarts. Three stages like the sweeper's: read (store
//! thread), render (blocking pool), apply (store thread).

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::Connection;

use crate::compose::{self, Outgoing, Reply};
use crate::config::{Config, Digest};
use crate::core::digest::Due;
use crate::core::stats::{Running, TicketFacts};
use crate::render::Renderer;
use crate::store::{digests, outbox, report};

/// A digest due, with what it is built from.
pub struct Job {
    digest: Digest,
    due: Due,
    facts: Vec<TicketFacts>,
    previous: Vec<TicketFacts>,
    running: Vec<Running>,
}

/// The digests due at `now` and not yet sent, with their facts.
pub fn read_due(conn: &Connection, config: &Config, now: DateTime<Utc>) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    for d in &config.digests {
        let Some(due) = d.schedule.latest_due(now) else {
            continue;
        };
        let to: Vec<String> = d.to.iter().map(|m| m.email.to_string()).collect();
        if digests::all_sent(conn, &d.name, due.first_day, &to)? {
            continue;
        }
        let before = crate::core::stats::previous_start(d.schedule.zone, due.since, due.until);
        jobs.push(Job {
            digest: d.clone(),
            due,
            facts: report::stats_facts(conn, Some(due.since), Some(due.until))?,
            previous: report::stats_facts(conn, Some(before), Some(due.since))?,
            running: report::running(conn)?,
        });
    }
    Ok(jobs)
}

/// One digest's mails, one per recipient: (digest name, first day,
/// recipient, mail).
pub type Ready = Vec<(String, chrono::NaiveDate, String, Outgoing)>;

/// Renders and composes the digests; one whose template fails is logged
/// and left for the next sweep.
pub fn compose(config: &Config, renderer: &Renderer, jobs: Vec<Job>, now: DateTime<Utc>) -> Ready {
    let mut out = Vec::new();
    for job in jobs {
        let name = job.digest.name.clone();
        match compose_one(config, renderer, &job, now) {
            Ok(mails) => out.extend(
                mails
                    .into_iter()
                    .map(|(to, m)| (name.clone(), job.due.first_day, to, m)),
            ),
            Err(e) => tracing::error!(digest = %name, "digest not sent: {e:#}"),
        }
    }
    out
}

fn compose_one(
    config: &Config,
    renderer: &Renderer,
    job: &Job,
    now: DateTime<Utc>,
) -> Result<Vec<(String, Outgoing)>> {
    let zone = job.digest.schedule.zone;
    let f = crate::reporting::figures(
        &config.sla,
        zone,
        (job.due.since, job.due.until),
        now,
        &job.facts,
        &job.previous,
        &job.running,
    );
    let ctx = crate::reporting::context(&crate::reporting::Report {
        desk: &config.desk.name,
        language: renderer.language_for("digest", &job.digest.language),
        zone,
        since: job.due.since,
        until: job.due.until,
        now,
        figures: &f,
    });
    let (_, rendered) = renderer
        .render("digest", &job.digest.language, &ctx)
        .with_context(|| format!("Rendering digest {}", job.digest.name))?;
    // In the Message-ID: "digest-weekly.2026-11-23.<random>@desk".
    let reference: String = format!("digest-{}", job.digest.name)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let period = job.due.first_day.to_string();
    job.digest
        .to
        .iter()
        .map(|to| {
            let mail = compose::compose(&Reply {
                from: &config.desk.address,
                to: to.clone(),
                subject: &rendered.subject,
                body: &rendered.body,
                html: rendered.html.as_deref(),
                in_reply_to: None,
                references: &[],
                reference: &reference,
                kind: &period,
                auto_submitted: Some("auto-generated"),
            })?;
            Ok((to.email.to_string(), mail))
        })
        .collect()
}

/// Queues the mails not recorded yet, each with its record; returns how
/// many were queued.
pub fn apply(conn: &mut Connection, ready: &Ready, now: DateTime<Utc>) -> Result<usize> {
    let tx = crate::store::begin(conn)?;
    let mut n = 0;
    for (name, first_day, to, mail) in ready {
        if !digests::record(&tx, name, *first_day, to, now)? {
            continue;
        }
        let id = outbox::enqueue_mail(&tx, None, "digest", mail, now)?;
        digests::set_outbox(&tx, name, *first_day, to, id)?;
        n += 1;
    }
    tx.commit().context("Committing the digests")?;
    Ok(n)
}

/// Contexts `check-config` renders the digest templates with: a period
/// with figures, and an empty one.
pub fn sample_contexts() -> Vec<serde_json::Value> {
    use crate::core::stats::{AtRisk, ClockStats, Slow, StatsRow};
    let at = |s: &str| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.to_utc())
            .unwrap_or_default()
    };
    let clock = ClockStats {
        met: 3,
        breached: 1,
        open: 1,
        compliance_pct: Some(75.0),
        median_minutes: Some(90),
        p90_minutes: Some(300),
        business_median_minutes: Some(45),
        business_p90_minutes: Some(120),
    };
    let rows = vec![StatsRow {
        period: None,
        plan: "standard".into(),
        priority: Some("P2".into()),
        tickets: 5,
        first_response: clock.clone(),
        resolution: ClockStats::default(),
    }];
    let at_risk = vec![AtRisk {
        reference: "SUP-000042".into(),
        subject: "Restore fails".into(),
        plan: "standard".into(),
        priority: Some("P2".into()),
        assignee: None,
        clock: "first_response",
        due: at("2026-11-16T10:00:00Z"),
        breached: true,
        age_minutes: 600,
    }];
    let slowest = vec![Slow {
        reference: "SUP-000041".into(),
        subject: "Backup slow".into(),
        plan: "standard".into(),
        priority: None,
        business_minutes: None,
        wall_minutes: 200,
        met: None,
    }];
    let daily = vec![(at("2026-11-09T00:00:00Z").date_naive(), 3, 1)];
    let report = |figures: &crate::reporting::Figures| {
        let ctx = crate::reporting::context(&crate::reporting::Report {
            desk: "Support",
            language: "en",
            zone: chrono_tz::Tz::UTC,
            since: at("2026-11-09T00:00:00Z"),
            until: at("2026-11-16T00:00:00Z"),
            now: at("2026-11-16T08:00:00Z"),
            figures,
        });
        serde_json::to_value(ctx).unwrap_or_default()
    };
    let full = crate::reporting::Figures {
        previous: rows.clone(),
        rows,
        daily,
        at_risk,
        slowest,
    };
    let empty = crate::reporting::Figures {
        rows: Vec::new(),
        previous: Vec::new(),
        daily: Vec::new(),
        at_risk: Vec::new(),
        slowest: Vec::new(),
    };
    vec![report(&full), report(&empty)]
}
