//! The check of `[triage]` into a [`TriageModel`]: one function per part
//! (languages, defaults, levels, matrix, negations, rules), each reporting
//! to one collector so every problem is reported at once, under
//! `triage.`.

use std::collections::{BTreeMap, HashMap};

use super::language::{self, LanguageDetector};
use super::normalize;
use super::phrases::{self, Entry, Matcher, Phrase};
use super::reading::{Reader, Severity};
use super::{
    DEFAULT_MIN_WORDS, Field, RawReading, RawRule, RawTriage, ReadingMap, Rule, TriageModel,
};
use crate::core::problem::{Problem, Problems};

impl TriageModel {
    /// Check `[triage]` against the config's priorities and categories,
    /// reporting every problem at once.
    pub fn from_raw(
        raw: &RawTriage,
        priorities: &[String],
        categories: &[String],
    ) -> Result<TriageModel, Vec<Problem>> {
        let mut pr = Problems::under(&["triage"]);
        check_languages(raw, &mut pr);
        check_defaults(raw, priorities, categories, &mut pr);
        check_levels(raw, &mut pr);
        if let Some(matrix) = &raw.matrix {
            pr.within(&["matrix"], |pr| check_matrix(raw, matrix, priorities, pr));
        }
        let negations = pr.within(&["negations"], |pr| check_negations(raw, pr));
        let (rules, entries) = pr.within(&["rules"], |pr| {
            check_rules(raw, priorities, categories, pr)
        });
        let reading = raw.reading.as_ref().map(|r| {
            pr.within(&["reading"], |pr| {
                check_reading(raw, r, priorities, categories, pr)
            })
        });

        if !pr.is_empty() {
            return Err(pr.into_vec());
        }
        Ok(TriageModel {
            languages: raw.languages.clone(),
            default_language: raw.default_language.clone(),
            detector: LanguageDetector::new(
                &raw.languages,
                &raw.default_language,
                raw.min_words.unwrap_or(DEFAULT_MIN_WORDS),
            ),
            customer_override: raw.customer_override.unwrap_or(true),
            priorities: priorities
                .iter()
                .map(|p| (p.clone(), normalize::words(p)))
                .collect(),
            default_category: raw.default_category.clone(),
            default_priority: raw.default_priority.clone(),
            category_priorities: raw.category_priorities.clone(),
            prioritized_categories: raw.prioritized_categories.clone(),
            default_impact: raw.default_impact.clone(),
            default_urgency: raw.default_urgency.clone(),
            matrix: raw.matrix.clone(),
            rules,
            matcher: Matcher::new(entries, negations),
            reading: reading.map(|m| (m, Reader::new())),
        })
    }
}

fn known(list: &[String], v: &str) -> bool {
    list.iter().any(|x| x == v)
}

fn describe(list: &[String]) -> String {
    if list.is_empty() {
        "none are defined".to_string()
    } else {
        format!("known: {}", list.join(", "))
    }
}

/// `languages`, `default_language` and `min_words`.
fn check_languages(raw: &RawTriage, pr: &mut Problems) {
    if raw.languages.is_empty() {
        pr.push(&["languages"], "list at least one language");
    }
    for (i, code) in raw.languages.iter().enumerate() {
        if !language::is_supported(code) {
            pr.push(
                &["languages", &i.to_string()],
                format!(
                    "unknown language code {code:?}; supported: {}",
                    language::supported_codes().join(", ")
                ),
            );
        } else if raw.languages[..i].contains(code) {
            pr.push(
                &["languages", &i.to_string()],
                format!("language {code:?} listed twice"),
            );
        }
    }
    if !raw.languages.contains(&raw.default_language) {
        pr.push(
            &["default_language"],
            format!(
                "default language {:?} is not in `languages`",
                raw.default_language
            ),
        );
    }
    if raw.min_words == Some(0) {
        pr.push(&["min_words"], "must be at least 1");
    }
}

/// The default category and priorities, and which categories get one.
fn check_defaults(
    raw: &RawTriage,
    priorities: &[String],
    categories: &[String],
    pr: &mut Problems,
) {
    if let Some(c) = &raw.default_category
        && !known(categories, c)
    {
        pr.push(
            &["default_category"],
            format!("unknown category {c:?} ({})", describe(categories)),
        );
    }
    if let Some(p) = &raw.default_priority
        && !known(priorities, p)
    {
        pr.push(
            &["default_priority"],
            format!("unknown priority {p:?} ({})", describe(priorities)),
        );
    }
    for (c, p) in &raw.category_priorities {
        if !known(categories, c) {
            pr.push(
                &["category_priorities", c],
                format!("unknown category {c:?} ({})", describe(categories)),
            );
        }
        if !known(priorities, p) {
            pr.push(
                &["category_priorities", c],
                format!("unknown priority {p:?} ({})", describe(priorities)),
            );
        }
    }
    if let Some(list) = &raw.prioritized_categories {
        for (i, c) in list.iter().enumerate() {
            if !known(categories, c) {
                pr.push(
                    &["prioritized_categories", &i.to_string()],
                    format!("unknown category {c:?} ({})", describe(categories)),
                );
            }
        }
    }
}

/// Impact and urgency levels, and their defaults.
fn check_levels(raw: &RawTriage, pr: &mut Problems) {
    for (key, levels) in [
        ("impact_levels", &raw.impact_levels),
        ("urgency_levels", &raw.urgency_levels),
    ] {
        for (i, l) in levels.iter().enumerate() {
            if levels[..i].contains(l) {
                pr.push(&[key, &i.to_string()], format!("level {l:?} listed twice"));
            }
        }
    }
    for (key, value, levels, levels_key) in [
        (
            "default_impact",
            &raw.default_impact,
            &raw.impact_levels,
            "impact_levels",
        ),
        (
            "default_urgency",
            &raw.default_urgency,
            &raw.urgency_levels,
            "urgency_levels",
        ),
    ] {
        if let Some(v) = value
            && !known(levels, v)
        {
            pr.push(
                &[key],
                format!("{v:?} is not one of `{levels_key}` ({})", describe(levels)),
            );
        }
    }
}

/// `[triage.reading]`: known fields, severities and levels.
fn check_reading(
    raw: &RawTriage,
    r: &RawReading,
    priorities: &[String],
    categories: &[String],
    pr: &mut Problems,
) -> ReadingMap {
    let mut map = ReadingMap::default();
    for (i, f) in r.before_rules.iter().enumerate() {
        let field = match f.as_str() {
            "category" => Field::Category,
            "impact" => Field::Impact,
            "urgency" => Field::Urgency,
            "priority" => Field::Priority,
            other => {
                pr.push(
                    &["before_rules", &i.to_string()],
                    format!("{other:?} is not a field (category, impact, urgency, priority)"),
                );
                continue;
            }
        };
        map.before_rules.push(field);
    }
    for (key, value) in [
        ("broken", &r.broken),
        ("question", &r.question),
        ("wish", &r.wish),
    ] {
        if let Some(c) = value
            && !known(categories, c)
        {
            pr.push(
                &[key],
                format!("{c:?} is not a category ({})", describe(categories)),
            );
        }
    }
    map.broken = r.broken.clone();
    map.question = r.question.clone();
    map.wish = r.wish.clone();
    for (field, given, levels, levels_key) in [
        (
            Field::Impact,
            &r.impact,
            raw.impact_levels.as_slice(),
            "impact_levels",
        ),
        (
            Field::Urgency,
            &r.urgency,
            raw.urgency_levels.as_slice(),
            "urgency_levels",
        ),
        (Field::Priority, &r.priority, priorities, "priorities"),
    ] {
        for (sev_name, level) in given {
            let Some(sev) = Severity::ALL.iter().find(|s| s.name() == sev_name) else {
                pr.push(
                    &[field.name(), sev_name],
                    "not a severity (outage, major, minor, cosmetic)",
                );
                continue;
            };
            if !known(levels, level) {
                pr.push(
                    &[field.name(), sev_name],
                    format!(
                        "{level:?} is not one of `{levels_key}` ({})",
                        describe(levels)
                    ),
                );
                continue;
            }
            if let Some(m) = map.levels.get_mut(field.index()) {
                m.insert(*sev, level.clone());
            }
        }
    }
    map
}

/// `[triage.matrix]`: urgency -> impact -> priority, every cell filled.
fn check_matrix(
    raw: &RawTriage,
    matrix: &BTreeMap<String, BTreeMap<String, String>>,
    priorities: &[String],
    pr: &mut Problems,
) {
    let here: &[&str] = &[];
    if raw.impact_levels.is_empty() || raw.urgency_levels.is_empty() {
        pr.push(here, "a matrix needs `impact_levels` and `urgency_levels`");
    }
    if raw.default_impact.is_none() || raw.default_urgency.is_none() {
        pr.push(
            here,
            "a matrix needs `default_impact` and `default_urgency` for mail that says neither",
        );
    }
    for u in &raw.urgency_levels {
        match matrix.get(u) {
            None => pr.push(here, format!("no row for urgency {u:?}")),
            Some(row) => {
                for i in &raw.impact_levels {
                    if !row.contains_key(i) {
                        pr.push(&[u], format!("no cell for impact {i:?}"));
                    }
                }
            }
        }
    }
    for (u, row) in matrix {
        if !known(&raw.urgency_levels, u) {
            pr.push(&[u], format!("{u:?} is not one of `urgency_levels`"));
        }
        for (i, p) in row {
            if !known(&raw.impact_levels, i) {
                pr.push(&[u, i], format!("{i:?} is not one of `impact_levels`"));
            }
            if !known(priorities, p) {
                pr.push(
                    &[u, i],
                    format!("unknown priority {p:?} ({})", describe(priorities)),
                );
            }
        }
    }
}

/// `[triage.negations]`: the built-in negation words per language, with
/// the config's added.
fn check_negations(raw: &RawTriage, pr: &mut Problems) -> HashMap<String, Vec<String>> {
    let mut negations: HashMap<String, Vec<String>> = phrases::NEGATIONS
        .iter()
        .map(|(l, ws)| (l.to_string(), ws.iter().map(|w| w.to_string()).collect()))
        .collect();
    for (lang, words) in &raw.negations {
        if !known(&raw.languages, lang) {
            pr.push(&[lang], format!("language {lang:?} is not in `languages`"));
        }
        for (i, w) in words.iter().enumerate() {
            let folded = normalize::words(w);
            if folded.is_empty() || folded.contains(' ') {
                pr.push(&[lang, &i.to_string()], format!("{w:?} is not one word"));
            } else {
                negations.entry(lang.clone()).or_default().push(folded);
            }
        }
    }
    negations
}

/// `[[triage.rules]]`: the rules that set exactly one field, and the
/// compiled phrases of all of them.
fn check_rules(
    raw: &RawTriage,
    priorities: &[String],
    categories: &[String],
    pr: &mut Problems,
) -> (Vec<Rule>, Vec<Entry>) {
    let mut rules = Vec::new();
    let mut entries = Vec::new();
    for (i, r) in raw.rules.iter().enumerate() {
        let index = rules.len();
        let rule = pr.within(&[&i.to_string()], |pr| {
            check_rule(r, index, raw, priorities, categories, &mut entries, pr)
        });
        rules.extend(rule);
    }
    (rules, entries)
}

/// One rule, the `index`-th kept; its phrases go to `entries`. None when
/// it does not set exactly one field.
fn check_rule(
    r: &RawRule,
    index: usize,
    raw: &RawTriage,
    priorities: &[String],
    categories: &[String],
    entries: &mut Vec<Entry>,
    pr: &mut Problems,
) -> Option<Rule> {
    let here: &[&str] = &[];
    let set: Vec<(Field, &String)> = [
        (Field::Category, &r.category),
        (Field::Impact, &r.impact),
        (Field::Urgency, &r.urgency),
        (Field::Priority, &r.priority),
    ]
    .into_iter()
    .filter_map(|(f, v)| v.as_ref().map(|v| (f, v)))
    .collect();
    let (field, value) = match set.as_slice() {
        [one] => *one,
        [] => {
            pr.push(
                here,
                "a rule sets one of category, impact, urgency or priority",
            );
            return None;
        }
        _ => {
            pr.push(
                here,
                "a rule sets only one of category, impact, urgency or priority",
            );
            return None;
        }
    };
    let (domain, domain_name): (&[String], &str) = match field {
        Field::Category => (categories, "categories"),
        Field::Impact => (&raw.impact_levels, "impact_levels"),
        Field::Urgency => (&raw.urgency_levels, "urgency_levels"),
        Field::Priority => (priorities, "priorities"),
    };
    for (key, v) in [
        (field.name(), Some(value)),
        ("if_negated", r.if_negated.as_ref()),
    ] {
        if let Some(v) = v
            && !known(domain, v)
        {
            pr.push(
                &[key],
                format!("{v:?} is not one of `{domain_name}` ({})", describe(domain)),
            );
        }
    }
    if let Some(list) = &r.when_category {
        for (i, c) in list.iter().enumerate() {
            if !known(categories, c) {
                pr.push(
                    &["when_category", &i.to_string()],
                    format!("unknown category {c:?} ({})", describe(categories)),
                );
            }
        }
    }
    if r.phrases.values().all(|v| v.is_empty()) {
        pr.push(&["phrases"], "a rule needs at least one phrase");
    }
    for (lang, list) in &r.phrases {
        if lang != "any" && !known(&raw.languages, lang) {
            pr.push(
                &["phrases", lang],
                format!("language {lang:?} is not in `languages` (or use \"any\")"),
            );
            continue;
        }
        for (pi, text) in list.iter().enumerate() {
            match Phrase::compile(text) {
                Ok(phrase) => entries.push(Entry {
                    rule: index,
                    field: field.index(),
                    lang: lang.clone(),
                    phrase,
                }),
                Err(e) => pr.push(&["phrases", lang, &pi.to_string()], e),
            }
        }
    }
    Some(Rule {
        field,
        value: value.clone(),
        if_negated: r.if_negated.clone(),
        when_category: r.when_category.clone(),
        weak: r.weak,
    })
}
