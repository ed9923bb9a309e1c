//! Unit tests of the triage model and classification on small inline
//! configs: config checking, negation, overrides, matrix, fallbacks.

use super::*;
use crate::core::inbound::{Address, ParsedMail};

fn ids(l: &[&str]) -> Vec<String> {
    l.iter().map(|s| s.to_string()).collect()
}

fn raw(toml_text: &str) -> RawTriage {
    #[derive(serde::Deserialize)]
    struct Part {
        triage: RawTriage,
    }
    toml::from_str::<Part>(toml_text).unwrap().triage
}

const ZM: &str = r#"
[triage]
languages = ["fr", "en", "de", "es", "it", "nl", "pt"]
default_language = "fr"
impact_levels = ["high", "medium", "low"]
urgency_levels = ["high", "medium", "low"]
default_impact = "medium"
default_urgency = "medium"
[triage.matrix]
high   = { high = "P1", medium = "P2", low = "P3" }
medium = { high = "P2", medium = "P3", low = "P4" }
low    = { high = "P3", medium = "P4", low = "P4" }
[[triage.rules]]
impact = "high"
[triage.rules.phrases]
fr = ["toutes les sauvegardes .. echou*"]
en = ["all backups .. fail*"]
[[triage.rules]]
impact = "medium"
if_negated = "high"
[triage.rules.phrases]
fr = ["contournement"]
en = ["workaround"]
[[triage.rules]]
urgency = "high"
if_negated = "low"
[triage.rules.phrases]
fr = ["urgent", "bloquant", "bloque"]
en = ["urgent", "blocking"]
"#;

fn model() -> TriageModel {
    TriageModel::from_raw(&raw(ZM), &ids(&["P1", "P2", "P3", "P4"]), &[]).unwrap()
}

fn mail(subject: &str, text: &str) -> ParsedMail {
    ParsedMail {
        subject: subject.into(),
        text: text.into(),
        from: Some(Address {
            name: None,
            email: "c@example.org".into(),
        }),
        ..Default::default()
    }
}

#[test]
fn matrix_and_phrases() {
    let m = model();
    let v = classify(
        &mail(
            "Sauvegardes",
            "Bonjour, toutes les sauvegardes ont échoué cette nuit, c'est urgent.",
        ),
        &m,
    );
    assert_eq!(v.language, "fr");
    assert_eq!(v.impact.as_deref(), Some("high"));
    assert_eq!(v.urgency.as_deref(), Some("high"));
    assert_eq!(v.priority.as_deref(), Some("P1"));
    assert!(
        v.reasons.iter().any(|r| r.contains("matrix")),
        "{:?}",
        v.reasons
    );
}

#[test]
fn negations_lower_instead_of_raising() {
    let m = model();
    for text in [
        "Bonjour, la console affiche une erreur mais ce n'est pas urgent du tout.",
        "Bonjour, petite erreur dans la console, rien de bloquant pour nous aujourd'hui.",
        "Bonjour, la console affiche une erreur, cela ne nous bloque pas vraiment.",
        "Hello, the console shows an error, it is not urgent at all for us.",
        "Hello, the console shows an error but it isn't blocking anything today.",
    ] {
        let v = classify(&mail("Console", text), &m);
        assert_eq!(v.urgency.as_deref(), Some("low"), "{text}: {:?}", v.reasons);
        assert_eq!(v.priority.as_deref(), Some("P4"), "{text}");
    }
    // "aucune solution de contournement" raises impact.
    let v = classify(
        &mail(
            "Job",
            "Bonjour, le job reste bloqué et il n'existe aucune solution de contournement.",
        ),
        &m,
    );
    assert_eq!(v.impact.as_deref(), Some("high"), "{:?}", v.reasons);
    // A negation before "but" does not reach past it.
    let v = classify(
        &mail(
            "x",
            "Hello, there is no data loss, but it is urgent for our audit team.",
        ),
        &m,
    );
    assert_eq!(v.urgency.as_deref(), Some("high"), "{:?}", v.reasons);
}

#[test]
fn customer_override_and_switch() {
    let m = model();
    let v = classify(
        &mail(
            "[p2] question",
            "Bonjour, une question sur la licence annuelle.",
        ),
        &m,
    );
    assert_eq!(v.priority.as_deref(), Some("P2"));
    let v = classify(
        &mail(
            "Question",
            "Priorité : P1\nBonjour, une question sur la licence annuelle.",
        ),
        &m,
    );
    assert_eq!(v.priority.as_deref(), Some("P1"));
    let v = classify(
        &mail(
            "[P7] question",
            "Bonjour, une question sur la licence annuelle.",
        ),
        &m,
    );
    assert_eq!(v.priority.as_deref(), Some("P3"));

    let mut r = raw(ZM);
    r.customer_override = Some(false);
    let off = TriageModel::from_raw(&r, &ids(&["P1", "P2", "P3", "P4"]), &[]).unwrap();
    let v = classify(
        &mail(
            "[P1] question",
            "Bonjour, une question sur la licence annuelle.",
        ),
        &off,
    );
    assert_eq!(v.priority.as_deref(), Some("P3"));
    assert!(v.reasons.iter().any(|r| r.contains("overrides are off")));
}

#[test]
fn short_text_takes_the_default_language() {
    let m = model();
    assert_eq!(classify(&mail("", "facture incorrecte"), &m).language, "fr");
    assert_eq!(classify(&mail("", ""), &m).language, "fr");
    let v = classify(
        &mail(
            "Backups",
            "Hello, all backups failed last night and we need help quickly.",
        ),
        &m,
    );
    assert_eq!(v.language, "en");
    assert_eq!(v.impact.as_deref(), Some("high"));
}

#[test]
fn every_config_problem_at_once() {
    let bad = r#"
[triage]
languages = ["fr", "xx", "fr"]
default_language = "en"
min_words = 0
default_category = "nope"
default_priority = "P9"
impact_levels = ["high", "low"]
urgency_levels = ["high"]
default_impact = "medium"
[triage.matrix]
high = { high = "P1" }
[[triage.rules]]
impact = "high"
priority = "P1"
[triage.rules.phrases]
fr = ["x"]
[[triage.rules]]
urgency = "extreme"
if_negated = "low"
when_category = ["ghost"]
[triage.rules.phrases]
fr = ["..", "ok*", "a*"]
de = ["dringend"]
"#;
    let problems =
        TriageModel::from_raw(&raw(bad), &ids(&["P1", "P2"]), &ids(&["incident"])).unwrap_err();
    let paths: Vec<String> = problems.iter().map(|p| p.path.join(".")).collect();
    for expected in [
        "triage.languages.1",
        "triage.languages.2",
        "triage.default_language",
        "triage.min_words",
        "triage.default_category",
        "triage.default_priority",
        "triage.default_impact",
        "triage.matrix",
        "triage.matrix.high",
        "triage.rules.0",
        "triage.rules.1.urgency",
        "triage.rules.1.if_negated",
        "triage.rules.1.when_category.0",
        "triage.rules.1.phrases.fr.0",
        "triage.rules.1.phrases.fr.2",
        "triage.rules.1.phrases.de",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "missing {expected} in {paths:#?}"
        );
    }
}

#[test]
fn every_part_reports_its_problems_in_order() {
    let bad = r#"
[triage]
languages = []
default_language = "fr"
min_words = 0
default_category = "nope"
default_priority = "P9"
category_priorities = { ghost = "P7", incident = "P1" }
prioritized_categories = ["incident", "spam"]
impact_levels = ["high", "high", "low"]
urgency_levels = ["now", "soon"]
default_urgency = "later"
[triage.matrix]
now = { high = "P8", mid = "P1" }
later = {}
[triage.negations]
fr = ["pas", "pas du tout"]
[[triage.rules]]
phrases = { any = ["x"] }
[[triage.rules]]
impact = "high"
priority = "P1"
phrases = { any = ["x"] }
[[triage.rules]]
category = "billing"
if_negated = "spam"
when_category = ["ghost"]
phrases = { any = [], de = ["rechnung"] }
[[triage.rules]]
priority = "P1"
phrases = { any = [] }
[[triage.rules]]
urgency = "now"
phrases = { any = ["..", "fine"] }
"#;
    let problems =
        TriageModel::from_raw(&raw(bad), &ids(&["P1", "P2"]), &ids(&["incident"])).unwrap_err();
    let got: Vec<String> = problems
        .iter()
        .map(|p| format!("{}: {}", p.path.join("."), p.message))
        .collect();
    let want = [
        "triage.languages: list at least one language".to_owned(),
        r#"triage.default_language: default language "fr" is not in `languages`"#.into(),
        "triage.min_words: must be at least 1".into(),
        r#"triage.default_category: unknown category "nope" (known: incident)"#.into(),
        r#"triage.default_priority: unknown priority "P9" (known: P1, P2)"#.into(),
        r#"triage.category_priorities.ghost: unknown category "ghost" (known: incident)"#.into(),
        r#"triage.category_priorities.ghost: unknown priority "P7" (known: P1, P2)"#.into(),
        r#"triage.prioritized_categories.1: unknown category "spam" (known: incident)"#.into(),
        r#"triage.impact_levels.1: level "high" listed twice"#.into(),
        r#"triage.default_urgency: "later" is not one of `urgency_levels` (known: now, soon)"#.into(),
        "triage.matrix: a matrix needs `default_impact` and `default_urgency` for mail that says neither".into(),
        r#"triage.matrix.now: no cell for impact "low""#.into(),
        r#"triage.matrix: no row for urgency "soon""#.into(),
        r#"triage.matrix.later: "later" is not one of `urgency_levels`"#.into(),
        r#"triage.matrix.now.high: unknown priority "P8" (known: P1, P2)"#.into(),
        r#"triage.matrix.now.mid: "mid" is not one of `impact_levels`"#.into(),
        r#"triage.negations.fr: language "fr" is not in `languages`"#.into(),
        r#"triage.negations.fr.1: "pas du tout" is not one word"#.into(),
        "triage.rules.0: a rule sets one of category, impact, urgency or priority".into(),
        "triage.rules.1: a rule sets only one of category, impact, urgency or priority".into(),
        r#"triage.rules.2.category: "billing" is not one of `categories` (known: incident)"#.into(),
        r#"triage.rules.2.if_negated: "spam" is not one of `categories` (known: incident)"#.into(),
        r#"triage.rules.2.when_category.0: unknown category "ghost" (known: incident)"#.into(),
        r#"triage.rules.2.phrases.de: language "de" is not in `languages` (or use "any")"#.into(),
        "triage.rules.3.phrases: a rule needs at least one phrase".into(),
    ];
    assert_eq!(got[..want.len().min(got.len())], want[..], "{got:#?}");
    // The phrase that does not compile, in words of the phrase compiler.
    assert_eq!(got.len(), want.len() + 1, "{got:#?}");
    assert!(
        got[want.len()].starts_with("triage.rules.4.phrases.any.0: "),
        "{got:#?}"
    );
}

#[test]
fn unknown_keys_are_rejected() {
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Part {
        triage: RawTriage,
    }
    let r = toml::from_str::<Part>(
        "[triage]\nlanguages=[\"fr\"]\ndefault_language=\"fr\"\ncolour=\"blue\"\n",
    );
    assert!(r.is_err());
}

#[test]
fn automated_mail_is_flagged() {
    let mut m = mail("Hello", "x");
    m.headers = vec![("Auto-Submitted".into(), "auto-replied".into())];
    assert_eq!(
        detect_automated(&m).map(|a| a.kind),
        Some(AutomatedKind::AutoReply)
    );
    m.headers = vec![("Auto-Submitted".into(), "no".into())];
    assert_eq!(detect_automated(&m), None);
    m.headers = vec![("Precedence".into(), "list".into())];
    assert_eq!(
        detect_automated(&m).map(|a| a.kind),
        Some(AutomatedKind::Bulk)
    );
    m.headers = vec![("List-Unsubscribe".into(), "<mailto:u@x>".into())];
    assert_eq!(
        detect_automated(&m).map(|a| a.kind),
        Some(AutomatedKind::Bulk)
    );
    m.headers = vec![("X-Autoreply".into(), "yes".into())];
    assert_eq!(
        detect_automated(&m).map(|a| a.kind),
        Some(AutomatedKind::AutoReply)
    );
    m.headers = vec![];
    m.return_path = Some(String::new());
    assert_eq!(
        detect_automated(&m).map(|a| a.kind),
        Some(AutomatedKind::AutoReply)
    );
    m.return_path = None;
    m.from = Some(Address {
        name: None,
        email: "postmaster@example.org".into(),
    });
    assert_eq!(
        detect_automated(&m).map(|a| a.kind),
        Some(AutomatedKind::Bounce)
    );
    let mut b = mail("x", "y");
    b.content_type = Some("multipart/report".into());
    b.report_type = Some("delivery-status".into());
    assert_eq!(
        detect_automated(&b).map(|a| a.kind),
        Some(AutomatedKind::Bounce)
    );
}

#[test]
fn own_text_drops_quotes_and_signature() {
    let m = mail(
        "Re: Panne",
        "Toujours en panne.\n-- \nJean\n\nLe lun. 2 nov. 2026, Support a écrit :\n> urgent",
    );
    let own = own_text(&m);
    assert!(own.starts_with("Panne"), "{own}");
    assert!(own.contains("Toujours en panne."));
    assert!(!own.contains("Jean") && !own.contains("urgent"));
}

#[test]
fn hostile_input_never_panics() {
    let m = model();
    let long = "urgent ".repeat(100_000);
    let weird = "[[[[]]]] Priorité: \u{0}\u{301}\u{301} «««« \" “ „ é\r\n> \n-- \n".repeat(1000);
    for (s, t) in [
        ("", ""),
        ("[", "]"),
        ("[P1", "Priority:"),
        (long.as_str(), long.as_str()),
        (weird.as_str(), weird.as_str()),
        (
            "Re: Re: Re: Re: Re: Re: Re: Re: Re: Re: Re: Re: x",
            "On\nwrote:",
        ),
    ] {
        let v = classify(&mail(s, t), &m);
        assert!(!v.language.is_empty());
    }
}

#[test]
fn the_reading_section_is_checked_where_it_is_written() {
    let bad = format!(
        "{ZM}\n[triage.reading]\nbefore_rules = [\"impact\", \"colour\"]\nbroken = \"ghost\"\nimpact = {{ outage = \"huge\", dreadful = \"high\" }}\npriority = {{ minor = \"P9\" }}\n"
    );
    let problems = TriageModel::from_raw(
        &raw(&bad),
        &ids(&["P1", "P2", "P3", "P4"]),
        &ids(&["incident"]),
    )
    .unwrap_err();
    let paths: Vec<String> = problems.iter().map(|p| p.path.join(".")).collect();
    for expected in [
        "triage.reading.before_rules.1",
        "triage.reading.broken",
        "triage.reading.impact.outage",
        "triage.reading.impact.dreadful",
        "triage.reading.priority.minor",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "missing {expected} in {paths:#?}"
        );
    }
    assert_eq!(paths.len(), 5, "{paths:#?}");
}

/// A config with a reading and one weak (topic) rule.
const READ: &str = r#"
[triage]
languages = ["fr", "en"]
default_language = "en"
impact_levels = ["high", "medium", "low"]
urgency_levels = ["high", "medium", "low"]
default_impact = "medium"
default_urgency = "medium"
[triage.matrix]
high   = { high = "P1", medium = "P2", low = "P3" }
medium = { high = "P2", medium = "P3", low = "P4" }
low    = { high = "P3", medium = "P4", low = "P4" }
[[triage.rules]]
impact = "high"
[triage.rules.phrases]
en = ["all backups .. fail*"]
[[triage.rules]]
impact = "medium"
weak = true
[triage.rules.phrases]
en = ["console"]
[triage.reading]
impact = { outage = "high", major = "high", minor = "medium", cosmetic = "low" }
"#;

#[test]
fn the_reading_fills_what_no_rule_decided_and_a_weak_rule_yields_to_it() {
    let r = raw(READ);
    assert!(r.reading.is_some() && r.rules.len() == 2, "{r:#?}");
    let m = TriageModel::from_raw(&r, &ids(&["P1", "P2", "P3", "P4"]), &[]).unwrap();
    let v = |s: &str, t: &str| classify(&mail(s, t), &m);
    // A rule still decides first.
    let got = v(
        "Backups",
        "All backups fail since Monday. Just a typo otherwise.",
    );
    assert_eq!(got.impact.as_deref(), Some("high"), "{:?}", got.reasons);
    // No rule: the reading, with the sentence as its reason.
    let got = v(
        "Portal",
        "Since this morning nobody can log in to the portal.",
    );
    assert_eq!(got.impact.as_deref(), Some("high"), "{:?}", got.reasons);
    assert!(
        got.reasons
            .iter()
            .any(|r| r.contains("reading") && r.contains("nobody can log in")),
        "{:?}",
        got.reasons
    );
    // The topic word "console" yields to what the sentence says of it.
    let got = v("Console", "There is a typo in the console's title bar.");
    assert_eq!(got.impact.as_deref(), Some("low"), "{:?}", got.reasons);
    // Nothing read: the weak rule decides.
    let got = v("Console", "About the console.");
    assert_eq!(got.impact.as_deref(), Some("medium"), "{:?}", got.reasons);
    // Without a [triage.reading], nothing changes: the default.
    let plain = READ.split("[triage.reading]").next().unwrap_or_default();
    let m = TriageModel::from_raw(&raw(plain), &ids(&["P1", "P2", "P3", "P4"]), &[]).unwrap();
    let got = classify(
        &mail(
            "Portal",
            "Since this morning nobody can log in to the portal.",
        ),
        &m,
    );
    assert_eq!(got.impact.as_deref(), Some("medium"), "{:?}", got.reasons);
}

#[test]
fn an_out_of_office_reply_is_not_a_problem_report_because_its_subject_echoes_one() {
    let m = model();
    let ooo = "Bonjour,\n\nJe suis absente jusqu'au 5 mai inclus. Je prendrai connaissance de votre message à mon retour.\n\nPour toute demande urgente, merci de contacter le support informatique.\n\nCordialement,\nSandrine";
    let v = classify(
        &mail("Re: [Ticket #77120] Echec sauvegarde VM vSphere", ooo),
        &m,
    );
    assert!(v.automated.is_some(), "{:?}", v.reasons);
    // Without the reply prefix the subject is the writer's own words: a
    // problem report that mentions an absence stays a request.
    let v = classify(&mail("Echec sauvegarde VM vSphere", ooo), &m);
    assert!(v.automated.is_none(), "{:?}", v.reasons);
}
