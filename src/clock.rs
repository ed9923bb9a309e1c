//! The daemon's and the CLI's idea of now.
//!
//! Real time, except in a debug build started with
//! `SUPPORTDESK_TEST_CLOCK=2026-11-20T16:55:00Z`: the clock then starts at
//! that instant and runs at real speed from there, so tests on real
//! servers can put the sweeper on a Friday evening or at night without
//! waiting. A release build (what the systemd unit runs) never reads the
//! variable. The pure core never calls this: `now` is its parameter.

use std::sync::OnceLock;

use chrono::{DateTime, TimeDelta, Utc};

/// The variable a debug build reads.
pub const TEST_CLOCK_VAR: &str = "SUPPORTDESK_TEST_CLOCK";

static OFFSET: OnceLock<TimeDelta> = OnceLock::new();

/// Now, as this process counts it.
pub fn now() -> DateTime<Utc> {
    let real = Utc::now();
    real + *OFFSET.get_or_init(|| offset(real))
}

/// The test clock's start, when one is set and honoured: for the start-up
/// log line.
pub fn test_clock() -> Option<String> {
    (cfg!(debug_assertions) && !OFFSET.get_or_init(|| offset(Utc::now())).is_zero())
        .then(|| now().to_rfc3339())
}

fn offset(real: DateTime<Utc>) -> TimeDelta {
    if !cfg!(debug_assertions) {
        return TimeDelta::zero();
    }
    std::env::var(TEST_CLOCK_VAR)
        .ok()
        .and_then(|v| DateTime::parse_from_rfc3339(v.trim()).ok())
        .map(|start| start.with_timezone(&Utc) - real)
        .unwrap_or_else(TimeDelta::zero)
}
