//! Throughput of SLA due computation, timed with plain `std::time` (no
//! criterion): `cargo bench --bench sla`. Prints due computations per
//! second for each target kind, including 24 business hours across a
//! Christmas-week closure.

use std::error::Error;
use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use supportdesk::core::sla::{DueQuery, RawSla, SlaModel};

/// Mon-Fri 09:00-12:30 and 13:30-18:00 in Paris, French public holidays,
/// closed from 24 December to 1 January.
const CONFIG: &str = r#"
priorities = ["P1", "P2", "P3", "P4"]
categories = []

[sla]
default_plan = "standard"

[sla.calendars.office]
timezone = "Europe/Paris"
follow_customer_timezone = true
holiday_sets = ["fr"]
holidays = ["12-24..01-01"]
hours = { mon-fri = "09:00-12:30, 13:30-18:00" }

[sla.plans.standard]
calendar = "office"
targets = [
  { priority = "P1", first_response = "24h" },
  { priority = "P2", first_response = { business_days = 2 } },
  { priority = "P3", first_response = { wall_clock = "4h" } },
  { priority = "P4", first_response = { inside_hours = "1h", outside_hours = { wall_clock = "12h" } } },
]
"#;

#[derive(serde::Deserialize)]
struct Doc {
    priorities: Vec<String>,
    categories: Vec<String>,
    sla: RawSla,
}

fn main() -> Result<(), Box<dyn Error>> {
    let doc: Doc = toml::from_str(CONFIG)?;
    let model = SlaModel::from_raw(&doc.sla, &doc.priorities, &doc.categories)
        .map_err(|ps| format!("config problems: {ps:?}"))?;
    let christmas: DateTime<Utc> = "2026-12-23T15:00:00Z".parse()?;
    let year_start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse()?;

    let query = |priority: &'static str, received| DueQuery {
        plan: "standard",
        priority: Some(priority),
        category: None,
        timezone: None,
        received,
    };
    let shown = model.due(&query("P1", christmas))?;
    println!(
        "24 business hours from {christmas}: due {:?}",
        shown.first_response.map(|d| d.to_rfc3339())
    );

    // Receptions spread over a year, 7 minutes and 13 seconds apart.
    let spread = |i: u64| year_start + TimeDelta::seconds(((i * 433) % (365 * 86_400)) as i64);
    let runs: [(&str, &dyn Fn(u64) -> DueQuery<'static>); 5] = [
        ("24 business hours across Christmas week", &|_| {
            query("P1", christmas)
        }),
        ("24 business hours, receptions over 2026", &|i| {
            query("P1", spread(i))
        }),
        ("2 business days, receptions over 2026", &|i| {
            query("P2", spread(i))
        }),
        ("4h wall clock, receptions over 2026", &|i| {
            query("P3", spread(i))
        }),
        ("inside 1h / outside 12h, over 2026", &|i| {
            query("P4", spread(i))
        }),
    ];
    for (name, make) in runs {
        let (n, elapsed) = time(|i| {
            black_box(model.due(&make(i)).ok());
        });
        let per_sec = n as f64 / elapsed.as_secs_f64();
        println!(
            "{name:<42} {per_sec:>12.0} due computations/s ({:.0} ns each)",
            1e9 / per_sec
        );
    }
    Ok(())
}

/// Runs `f` in batches for about half a second; returns the calls made and
/// the time taken.
fn time(mut f: impl FnMut(u64)) -> (u64, Duration) {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_millis(500) {
        for _ in 0..1000 {
            f(n);
            n += 1;
        }
    }
    (n, start.elapsed())
}
