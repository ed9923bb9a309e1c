//! Triage: from a parsed message and the config's `[triage]` rules to a
//! verdict (language, category, impact, urgency, priority, automated or
//! not), each decision with the reason that made it.
//!
//! Pure: no I/O, no clock, no panic on any input. The config is checked
//! once (`TriageModel::from_raw`, every problem at once); `classify` then
//! only reads it.
//!
//! How a verdict is reached:
//! 1. language of the customer's own words (`own_text`), restricted to
//!    the config's list, default when short or unsure;
//! 2. phrases of every rule are matched on folded words; the rules of the
//!    detected language (and "any") decide first, other languages' rules
//!    only fill a field still open; within a field the first rule in
//!    config order wins, so configs list strong signals first;
//! 3. a negated match ("pas urgent") gives the rule's `if_negated` value,
//!    or is ignored when the rule has none;
//! 4. priority: the customer's own `[P2]` / `Priority: P2` when allowed,
//!    else a priority rule, else the impact x urgency matrix, else the
//!    default (per category or global).

mod automated;
mod check;
mod language;
mod normalize;
mod own_text;
mod phrases;
mod reading;

#[cfg(test)]
mod corpus_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::core::inbound::ParsedMail;

pub use automated::{Automated, AutomatedKind, detect_automated, detect_automated_keeping};
pub use language::detection_text;
pub use normalize::fold;
pub use own_text::OwnBody;

use language::LanguageDetector;
use phrases::Matcher;
use reading::{Reader, Reading, Severity};

/// `[triage]` as written. See `config/examples/*.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTriage {
    /// ISO 639-1 codes the desk recognises, e.g. ["fr", "en", "de"].
    pub languages: Vec<String>,
    pub default_language: String,
    /// Fewer words of the customer's own text than this: default language.
    #[serde(default)]
    pub min_words: Option<usize>,
    /// Whether a `[P2]` subject tag or a `Priority: P2` line sets the
    /// priority. Default true.
    #[serde(default)]
    pub customer_override: Option<bool>,
    #[serde(default)]
    pub default_category: Option<String>,
    #[serde(default)]
    pub default_priority: Option<String>,
    /// Default priority per category, before `default_priority`.
    #[serde(default)]
    pub category_priorities: BTreeMap<String, String>,
    /// When set, only tickets of these categories get a priority
    /// (Meteorage prioritises technical assistance only).
    #[serde(default)]
    pub prioritized_categories: Option<Vec<String>>,
    /// Impact levels, most severe first (optional).
    #[serde(default)]
    pub impact_levels: Vec<String>,
    #[serde(default)]
    pub urgency_levels: Vec<String>,
    #[serde(default)]
    pub default_impact: Option<String>,
    #[serde(default)]
    pub default_urgency: Option<String>,
    /// urgency -> impact -> priority, every cell filled.
    #[serde(default)]
    pub matrix: Option<BTreeMap<String, BTreeMap<String, String>>>,
    /// Extra negation words per language, added to the built-in ones.
    #[serde(default)]
    pub negations: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub rules: Vec<RawRule>,
    /// How the built-in reading of the customer's sentences maps to this
    /// policy's levels. Absent: the phrase rules and defaults alone.
    #[serde(default)]
    pub reading: Option<RawReading>,
}

/// `[triage.reading]`: the built-in reading (`reading.rs`) of what the
/// customer's sentences state, mapped to the policy's own levels.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReading {
    /// Fields the reading decides before the phrase rules. The others it
    /// fills only where no rule decided, before the defaults.
    #[serde(default)]
    pub before_rules: Vec<String>,
    /// Category when no category rule decided and a sentence reports
    /// something not working.
    #[serde(default)]
    pub broken: Option<String>,
    /// Category when a sentence asks a question and none reports a fault.
    #[serde(default)]
    pub question: Option<String>,
    /// Category when a sentence suggests an improvement and none reports
    /// a fault (before `question`).
    #[serde(default)]
    pub wish: Option<String>,
    /// Severity (outage, major, minor, cosmetic) -> impact level.
    #[serde(default)]
    pub impact: BTreeMap<String, String>,
    #[serde(default)]
    pub urgency: BTreeMap<String, String>,
    #[serde(default)]
    pub priority: BTreeMap<String, String>,
}

/// `[triage.reading]` checked.
#[derive(Debug, Clone, Default)]
struct ReadingMap {
    before_rules: Vec<Field>,
    broken: Option<String>,
    question: Option<String>,
    wish: Option<String>,
    /// Per field (by `Field::index`), severity -> level.
    levels: [BTreeMap<Severity, String>; 4],
}

/// One `[[triage.rules]]`: exactly one of category / impact / urgency /
/// priority, and phrases per language.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub impact: Option<String>,
    #[serde(default)]
    pub urgency: Option<String>,
    #[serde(default)]
    pub priority: Option<String>,
    /// Value given when the phrase is negated ("no impact" on an impact
    /// rule, "pas de contournement" on a workaround rule).
    #[serde(default)]
    pub if_negated: Option<String>,
    /// The rule applies only to tickets of these categories.
    #[serde(default)]
    pub when_category: Option<Vec<String>>,
    /// The phrases name a topic, not a state ("console", "report"): the
    /// reading (`[triage.reading]`) decides first when it states anything.
    #[serde(default)]
    pub weak: bool,
    /// Language code (or "any") -> phrases.
    pub phrases: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Field {
    Category,
    Impact,
    Urgency,
    Priority,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Category => "category",
            Field::Impact => "impact",
            Field::Urgency => "urgency",
            Field::Priority => "priority",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone)]
struct Rule {
    field: Field,
    value: String,
    if_negated: Option<String>,
    when_category: Option<Vec<String>>,
    weak: bool,
}

/// `[triage]` checked: every id known, every phrase compiled.
#[derive(Debug, Clone)]
pub struct TriageModel {
    languages: Vec<String>,
    default_language: String,
    detector: LanguageDetector,
    customer_override: bool,
    /// Priority ids with their folded form, for overrides.
    priorities: Vec<(String, String)>,
    default_category: Option<String>,
    default_priority: Option<String>,
    category_priorities: BTreeMap<String, String>,
    prioritized_categories: Option<Vec<String>>,
    default_impact: Option<String>,
    default_urgency: Option<String>,
    matrix: Option<BTreeMap<String, BTreeMap<String, String>>>,
    rules: Vec<Rule>,
    matcher: Matcher,
    reading: Option<(ReadingMap, Reader)>,
}

/// Below four words ("facture incorrecte", "licence question facture")
/// every detector guesses: the default language is the better bet.
const DEFAULT_MIN_WORDS: usize = 4;

impl TriageModel {
    pub fn default_language(&self) -> &str {
        &self.default_language
    }

    pub fn languages(&self) -> &[String] {
        &self.languages
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub language: String,
    pub category: Option<String>,
    pub impact: Option<String>,
    pub urgency: Option<String>,
    pub priority: Option<String>,
    /// Set for auto-replies, bounces and bulk mail: record, never acknowledge.
    pub automated: Option<Automated>,
    /// One line per decision, e.g. `impact high: "toutes les sauvegardes echouent" (fr, rule 2)`.
    pub reasons: Vec<String>,
}

/// The customer's own words: subject, then the body without quoted
/// replies, attributions and what follows them, signatures and forwarded
/// headers.
pub fn own_text(mail: &ParsedMail) -> String {
    own_text::own_text(&mail.subject, &mail.text)
}

/// The subject without bracketed tags naming a known priority: the
/// override logic has used (or deliberately ignored) them, so they must
/// not count again as words ("[critique]" is not a description).
fn subject_without_priority_tags(subject: &str, model: &TriageModel) -> String {
    let mut out = String::with_capacity(subject.len());
    let mut rest = subject;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else { break };
        let tag = &after[..close];
        out.push_str(&rest[..open]);
        if priority_id(model, tag).is_none() {
            out.push('[');
            out.push_str(tag);
            out.push(']');
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// The priority id a customer's word names, case- and accent-insensitively.
fn priority_id(model: &TriageModel, s: &str) -> Option<String> {
    if s.len() > 60 {
        return None;
    }
    let w = normalize::words(s);
    model
        .priorities
        .iter()
        .find(|(_, folded)| !folded.is_empty() && *folded == w)
        .map(|(id, _)| id.clone())
}

/// Rule matching looks at this much of the customer's own text at most:
/// a pasted 1 MB log must not cost more than a page.
const MAX_RULE_BYTES: usize = 20_000;

/// A field's decision: value and reason.
type Decision = Option<(String, String)>;

/// Classify a message with a checked model. Never fails: what cannot be
/// decided gets the config's defaults, with a reason saying so.
pub fn classify(mail: &ParsedMail, model: &TriageModel) -> Verdict {
    classify_with(mail, model, true)
}

/// `classify`, where `claims` says whether the sender may claim a
/// priority (a `[P1]` in the subject): false for a sender the trust
/// policy does not authenticate.
pub fn classify_with(mail: &ParsedMail, model: &TriageModel, claims: bool) -> Verdict {
    classify_hinted(mail, model, claims, Hints::default())
}

/// What the shell knows of the sender beyond the mail itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hints<'a> {
    /// The customer's configured language (`[sla.customers.NAME] language`),
    /// for a mail too short to tell its own.
    pub customer_language: Option<&'a str>,
    /// The shell has run [`detect_automated`] on this mail and it found
    /// nothing: not run again.
    pub not_automated: bool,
    /// The own body that check cut, reused rather than cut again.
    pub own_body: Option<&'a OwnBody>,
}

/// `classify_with`, with what the shell knows of the sender.
pub fn classify_hinted(
    mail: &ParsedMail,
    model: &TriageModel,
    claims: bool,
    hints: Hints,
) -> Verdict {
    let mut reasons = Vec::new();
    let (automated, cut) = if hints.not_automated {
        (None, None)
    } else {
        detect_automated_keeping(mail)
    };
    let known = hints.own_body.or(cut.as_ref());
    if let Some(a) = &automated {
        reasons.push(format!("automated ({:?}): {}", a.kind, a.reason));
    }

    let own = own_text::own_text_reusing(
        &subject_without_priority_tags(&mail.subject, model),
        &mail.text,
        known,
    );
    let detected = model.detector.detect_with(
        &own,
        &language::Signals {
            content_language: mail.header("Content-Language"),
            body: &mail.text,
            customer: hints.customer_language,
        },
    );
    reasons.push(detected.reason.clone());
    let lang = detected.code;

    let mut end = own.len().min(MAX_RULE_BYTES);
    while !own.is_char_boundary(end) {
        end -= 1;
    }
    let tokens = normalize::tokenize(&own[..end]);
    let mut matches = if automated.is_some() {
        // Our own subject echoed by a robot says nothing about urgency.
        reasons.push("rules skipped: automated mail gets the defaults".into());
        Vec::new()
    } else {
        model.matcher.find(&tokens)
    };
    // Config order decides between rules, then position in the text.
    matches.sort_by_key(|m| {
        (
            model.matcher.entry(m.entry).map_or(usize::MAX, |e| e.rule),
            m.start,
        )
    });

    // The reading of the sentences, where the config maps it.
    let read: Option<Reading> = match (&model.reading, &automated) {
        (Some((_, reader)), None) => Some(reader.read(&tokens, &lang)),
        _ => None,
    };
    let reading_of = |field: Field| -> Decision {
        let (map, _) = model.reading.as_ref()?;
        let r = read.as_ref()?;
        let value = match field {
            Field::Category if r.broken => map.broken.clone()?,
            Field::Category if r.wish && map.wish.is_some() => map.wish.clone()?,
            Field::Category if r.question => map.question.clone()?,
            Field::Category => return None,
            f => map.levels.get(f.index())?.get(&r.severity?)?.clone(),
        };
        let what = match (field, r.severity) {
            (Field::Category, _) if r.broken => "a fault reported".to_string(),
            (Field::Category, _) if r.wish && map.wish.is_some() => "a suggestion made".to_string(),
            (Field::Category, _) => "a question asked".to_string(),
            (_, Some(sev)) => sev.name().to_string(),
            (_, None) => String::new(),
        };
        Some((
            value.clone(),
            format!("{} {value}: reading, {what}; {}", field.name(), r.reason),
        ))
    };
    // Once per field, not once per weak rule that asks.
    let read_fields: [Decision; 4] = [
        Field::Category,
        Field::Impact,
        Field::Urgency,
        Field::Priority,
    ]
    .map(reading_of);
    let from_reading =
        |field: Field| -> Decision { read_fields.get(field.index()).cloned().flatten() };
    let decide = |field: Field, category: Option<&str>, reasons: &mut Vec<String>| -> Decision {
        // Pass 1: the text's language (and "any"); pass 2: other languages.
        for pass in 0..2 {
            let mut ignored = Vec::new();
            for m in &matches {
                let Some(e) = model.matcher.entry(m.entry) else {
                    continue;
                };
                let Some(rule) = model.rules.get(e.rule) else {
                    continue;
                };
                if rule.field != field {
                    continue;
                }
                // A topic word ("console", "report") yields to what the
                // sentences state about it.
                if rule.weak && read_fields.get(field.index()).is_some_and(Option::is_some) {
                    continue;
                }
                let own_lang = e.lang == lang || e.lang == "any";
                if (pass == 0) != own_lang {
                    continue;
                }
                if let Some(cats) = &rule.when_category
                    && !category.is_some_and(|c| cats.iter().any(|x| x == c))
                {
                    continue;
                }
                let seen = tokens
                    .get(m.start..m.end)
                    .map(|ts| {
                        ts.iter()
                            .map(|t| t.word.as_str())
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default();
                let lang_note = if own_lang {
                    e.lang.clone()
                } else {
                    format!("{} rule on {lang} text", e.lang)
                };
                match (&m.negated_by, &rule.if_negated) {
                    (None, _) => {
                        return Some((
                            rule.value.clone(),
                            format!(
                                "{} {}: {:?} matched {:?} ({lang_note}, rule {})",
                                field.name(),
                                rule.value,
                                seen,
                                e.phrase.text,
                                e.rule
                            ),
                        ));
                    }
                    (Some(neg), Some(v)) => {
                        return Some((
                            v.clone(),
                            format!(
                                "{} {v}: {:?} negated by {neg:?} ({lang_note}, rule {})",
                                field.name(),
                                seen,
                                e.rule
                            ),
                        ));
                    }
                    (Some(neg), None) => ignored.push(format!(
                        "{}: ignored {:?}, negated by {neg:?} (rule {})",
                        field.name(),
                        seen,
                        e.rule
                    )),
                }
            }
            reasons.extend(ignored);
        }
        None
    };

    let decide = |field: Field, category: Option<&str>, reasons: &mut Vec<String>| -> Decision {
        let before = model
            .reading
            .as_ref()
            .is_some_and(|(m, _)| m.before_rules.contains(&field));
        if before && let Some(d) = from_reading(field) {
            return Some(d);
        }
        decide(field, category, reasons).or_else(|| if before { None } else { from_reading(field) })
    };

    // Category.
    let category = match decide(Field::Category, None, &mut reasons) {
        Some((v, why)) => {
            reasons.push(why);
            Some(v)
        }
        None => model.default_category.clone().inspect(|c| {
            reasons.push(format!("category {c}: default, no category phrase"));
        }),
    };
    let cat = category.as_deref();

    // Impact and urgency: matched, else the default.
    let level = |field: Field, default: &Option<String>, reasons: &mut Vec<String>| match decide(
        field, cat, reasons,
    ) {
        Some((v, why)) => {
            reasons.push(why);
            Some(v)
        }
        None => default.clone().inspect(|d| {
            reasons.push(format!(
                "{} {d}: default, no {} phrase",
                field.name(),
                field.name()
            ));
        }),
    };
    let impact = level(Field::Impact, &model.default_impact, &mut reasons);
    let urgency = level(Field::Urgency, &model.default_urgency, &mut reasons);

    // Priority.
    let gated = model
        .prioritized_categories
        .as_ref()
        .is_some_and(|list| !cat.is_some_and(|c| list.iter().any(|x| x == c)));
    let priority = if gated {
        reasons.push(format!(
            "priority: none, only {} tickets are prioritised",
            model
                .prioritized_categories
                .as_deref()
                .unwrap_or_default()
                .join("/")
        ));
        None
    } else {
        let over = customer_priority(mail, model);
        match over {
            Some((p, why)) if model.customer_override && claims => {
                reasons.push(format!("priority {p}: customer override, {why}"));
                Some(p)
            }
            over => {
                if let Some((p, why)) = over {
                    reasons.push(if model.customer_override {
                        format!(
                            "priority: customer asked for {p} ({why}) but the sender is not authenticated"
                        )
                    } else {
                        format!("priority: customer asked for {p} ({why}) but overrides are off")
                    });
                }
                match decide(Field::Priority, cat, &mut reasons) {
                    Some((v, why)) => {
                        reasons.push(why);
                        Some(v)
                    }
                    None => matrix_priority(model, impact.as_deref(), urgency.as_deref())
                        .map(|(p, why)| {
                            reasons.push(why);
                            p
                        })
                        .or_else(|| default_priority(model, cat, &mut reasons)),
                }
            }
        }
    };

    Verdict {
        language: lang,
        category,
        impact,
        urgency,
        priority,
        automated,
        reasons,
    }
}

fn matrix_priority(
    model: &TriageModel,
    impact: Option<&str>,
    urgency: Option<&str>,
) -> Option<(String, String)> {
    let (i, u) = (impact?, urgency?);
    let p = model.matrix.as_ref()?.get(u)?.get(i)?;
    Some((
        p.clone(),
        format!("priority {p}: matrix, urgency {u} x impact {i}"),
    ))
}

fn default_priority(
    model: &TriageModel,
    category: Option<&str>,
    reasons: &mut Vec<String>,
) -> Option<String> {
    if let Some(c) = category
        && let Some(p) = model.category_priorities.get(c)
    {
        reasons.push(format!("priority {p}: default for category {c}"));
        return Some(p.clone());
    }
    model.default_priority.clone().inspect(|p| {
        reasons.push(format!("priority {p}: default, no priority phrase"));
    })
}

/// Labels of a first-lines priority line, folded.
const PRIORITY_LABELS: &[&str] = &[
    "priority",
    "priorite",
    "prioritat",
    "prioritaet",
    "prioridad",
    "priorita",
    "prioriteit",
    "prioridade",
    "severity",
    "severite",
];
/// How many non-empty body lines may carry a `Priority:` line.
const OVERRIDE_LINES: usize = 5;

/// A priority the customer set: `[P2]` in the subject, or a
/// `Priority: P2` line among the first body lines. Only known ids count.
fn customer_priority(mail: &ParsedMail, model: &TriageModel) -> Option<(String, String)> {
    let known = |s: &str| priority_id(model, s);
    let subject = mail.subject.as_str();
    let mut rest = subject;
    // Bounded scan of bracketed tags.
    for _ in 0..10 {
        let Some(open) = rest.find('[') else { break };
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else { break };
        let tag = &after[..close];
        if tag.len() <= 40
            && let Some(p) = known(tag)
        {
            return Some((p, format!("subject tag [{tag}]")));
        }
        rest = &after[close + 1..];
    }
    for line in mail
        .text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(OVERRIDE_LINES)
    {
        let Some((label, value)) = line.split_once(':') else {
            continue;
        };
        if label.len() > 30 || value.len() > 60 {
            continue;
        }
        let label_w = normalize::words(label);
        if PRIORITY_LABELS.contains(&label_w.as_str())
            && let Some(p) = known(value)
        {
            return Some((p, format!("line {:?}", line)));
        }
    }
    None
}
