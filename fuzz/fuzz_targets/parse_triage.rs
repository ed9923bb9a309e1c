//! Any bytes, as a message from a mailbox, through the CPU stages of
//! ingest: analysis (MIME parsing, the automated/loop checks), then the
//! pure decision on an empty store, which for a customer's mail runs
//! triage and the SLA clocks, under each of the five example policies.
//! Must never panic.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use supportdesk::config::{self, Config, Secrets};
use supportdesk::ingest::decide::{self, BatchFacts, Facts};
use supportdesk::ingest::{Analysed, Analysis, Incoming, analyse};

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
    // The policy and the arrival time (any hour of a week, so business
    // hours, nights and weekends are all reached) come from a hash of the
    // input, so every byte stays mail and seeds keep their meaning.
    let h = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let cfg = &configs()[(h % 5) as usize];
    let received = Utc.with_ymd_and_hms(2026, 11, 16, 0, 0, 0).unwrap()
        + chrono::TimeDelta::minutes(((h >> 8) % (7 * 24 * 60)) as i64);
    let incoming = Incoming {
        mailbox: "fuzz".into(),
        source_key: "1".into(),
        uidvalidity: None,
        uid: None,
        received_at: received,
        raw: data.to_vec().into(),
    };
    // `analyse`, not `analyse_guarded`: a panic must reach the fuzzer.
    let analysis = analyse(cfg, &incoming);
    let analysed = Analysed {
        incoming,
        analysis,
        files: None,
    };
    if let Analysis::Parsed(p) = &analysed.analysis {
        assert!(!p.mail.subject.chars().any(char::is_control));
    }
    let query = decide::query(cfg, &analysed);
    let facts = BatchFacts {
        now: received,
        next_ticket: 1,
        recent_acks_all: 0,
        messages: vec![Facts::default()],
    };
    let decided = decide::decide(cfg, &[analysed], &[query], &facts);
    assert_eq!(decided.len(), 1);
});
