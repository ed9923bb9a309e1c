//! Any bytes, as a message from a mailbox, through the CPU half of ingest:
//! MIME parsing, the automated/loop checks, triage and the SLA clocks, under
//! each of the five example policies. Must never panic.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use supportdesk::config::{self, Config, Secrets};
use supportdesk::ingest::{Analysis, Incoming, prepare};

fn configs() -> &'static [Config] {
    static CONFIGS: OnceLock<Vec<Config>> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/examples");
        [
            "zmanda",
            "meteorage",
            "cirrus-shield",
            "cloud-avenue",
            "cegedim",
        ]
        .iter()
        .map(|n| {
            config::load_with(&dir.join(format!("{n}.toml")), Secrets::Skip)
                .unwrap_or_else(|e| panic!("{n}: {e}"))
        })
        .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the policy and the arrival time (any hour of a
    // week, so business hours, nights and weekends are all reached).
    let Some((&pick, raw)) = data.split_first() else {
        return;
    };
    let cfg = &configs()[pick as usize % 5];
    let received = Utc.with_ymd_and_hms(2026, 11, 16, 0, 0, 0).unwrap()
        + chrono::TimeDelta::minutes(i64::from(pick) * 41);
    let prepared = prepare(
        cfg,
        Incoming {
            mailbox: "fuzz".into(),
            source_key: "1".into(),
            uidvalidity: None,
            uid: None,
            received_at: received,
            raw: raw.to_vec(),
        },
        received,
    );
    if let Analysis::Parsed(p) = &prepared.analysis {
        assert!(!p.mail.subject.chars().any(char::is_control));
    }
});
