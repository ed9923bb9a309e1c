//! Phrase patterns and their matching on normalised words, with negation.
//!
//! A phrase is words separated by spaces, folded like the text
//! ("Ne fonctionne plus" matches "ne fonctionne   PLUS"). `word*` matches
//! any word starting with `word` ("sauvegard*": sauvegarde, sauvegardes);
//! `..` skips up to three words of the same clause ("backup .. fail*":
//! "backup job has failed"). A match is negated when a negation word of
//! its language stands within the three words before it, in the same
//! clause ("pas urgent", "not really blocking", "aucun impact").

use std::collections::HashMap;

use super::normalize::{Token, tokenize};

/// Second half of the French negation "ne ... pas".
const FRENCH_SECOND: &[&str] = &["pas", "plus", "jamais", "guere", "point", "aucunement"];
/// Words a gap may skip.
const GAP: usize = 3;
/// Words before a match searched for a negation.
const NEGATION_REACH: usize = 3;

/// Built-in negation words per language (folded). `t` covers "don't",
/// "isn't", "can't" once the apostrophe splits them.
pub const NEGATIONS: &[(&str, &[&str])] = &[
    (
        "en",
        &[
            "not", "no", "never", "without", "nothing", "none", "t", "nt", "non", "neither", "nor",
            "hardly",
        ],
    ),
    (
        "fr",
        &[
            "pas",
            "aucun",
            "aucune",
            "sans",
            "jamais",
            "rien",
            "ni",
            "non",
            "nullement",
            "guere",
        ],
    ),
    (
        "de",
        &[
            "nicht", "kein", "keine", "keinen", "keiner", "keinem", "ohne", "nie", "niemals",
            "nichts",
        ],
    ),
    (
        "es",
        &[
            "no", "sin", "ningun", "ninguna", "ninguno", "nunca", "nada", "ni",
        ],
    ),
    (
        "it",
        &[
            "non", "nessun", "nessuna", "nessuno", "senza", "mai", "niente", "nulla", "ne",
        ],
    ),
    ("nl", &["niet", "geen", "zonder", "nooit", "niets", "noch"]),
    (
        "pt",
        &["nao", "sem", "nenhum", "nenhuma", "nunca", "nada", "nem"],
    ),
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Word(String),
    Prefix(String),
    Gap,
}

#[derive(Debug, Clone)]
pub struct Phrase {
    /// As written in the config, for reasons.
    pub text: String,
    parts: Vec<Part>,
}

impl Phrase {
    pub fn compile(text: &str) -> Result<Phrase, String> {
        let mut parts = Vec::new();
        for piece in text.split_whitespace() {
            if piece == ".." {
                if parts.is_empty() || parts.last() == Some(&Part::Gap) {
                    return Err(format!(
                        "phrase {text:?}: `..` must stand between two words"
                    ));
                }
                parts.push(Part::Gap);
                continue;
            }
            let (body, star) = match piece.strip_suffix('*') {
                Some(b) => (b, true),
                None => (piece, false),
            };
            let words: Vec<String> = tokenize(body).into_iter().map(|t| t.word).collect();
            if words.is_empty() {
                return Err(format!("phrase {text:?}: {piece:?} has no letter or digit"));
            }
            let last = words.len() - 1;
            for (i, w) in words.into_iter().enumerate() {
                if star && i == last {
                    if w.chars().count() < 3 {
                        return Err(format!(
                            "phrase {text:?}: a prefix needs at least 3 letters ({piece:?})"
                        ));
                    }
                    parts.push(Part::Prefix(w));
                } else {
                    parts.push(Part::Word(w));
                }
            }
        }
        match parts.last() {
            None => Err("empty phrase".into()),
            Some(Part::Gap) => Err(format!(
                "phrase {text:?}: `..` must stand between two words"
            )),
            Some(_) => Ok(Phrase {
                text: text.to_string(),
                parts,
            }),
        }
    }

    /// End (exclusive) of a match of this phrase starting at `start`.
    fn match_at(&self, tokens: &[Token], start: usize) -> Option<usize> {
        match_parts(&self.parts, tokens, start, tokens.get(start)?.clause)
    }
}

fn part_matches(part: &Part, word: &str) -> bool {
    match part {
        Part::Word(w) => w == word,
        Part::Prefix(p) => word.starts_with(p.as_str()),
        Part::Gap => true,
    }
}

fn match_parts(parts: &[Part], tokens: &[Token], at: usize, clause: u32) -> Option<usize> {
    let Some((first, rest)) = parts.split_first() else {
        return Some(at);
    };
    match first {
        Part::Gap => {
            // Try skipping 0..=GAP words of the same clause, shortest first.
            for skip in 0..=GAP {
                let pos = at + skip;
                if skip > 0 && tokens.get(pos - 1).is_none_or(|t| t.clause != clause) {
                    break;
                }
                if tokens.get(pos).is_some_and(|t| t.clause == clause)
                    && let Some(end) = match_parts(rest, tokens, pos, clause)
                {
                    return Some(end);
                }
            }
            None
        }
        part => {
            let t = tokens.get(at)?;
            if part_matches(part, &t.word) {
                match_parts(rest, tokens, at + 1, t.clause)
            } else {
                None
            }
        }
    }
}

/// The first three characters of a word (all of a shorter one).
fn head3(w: &str) -> &str {
    let end = w.char_indices().nth(3).map_or(w.len(), |(i, _)| i);
    &w[..end]
}

/// The index's maps: looked up once or twice per word of every text, so
/// hashed with foldhash rather than SipHash (the keys are the config's
/// phrases; a text's words only look them up).
type Index = HashMap<String, Vec<usize>, foldhash::fast::RandomState>;

/// One phrase of one rule, in one language ("any" for every language).
#[derive(Debug, Clone)]
pub struct Entry {
    pub rule: usize,
    /// Overlapping matches compete only within one field (caller-defined).
    pub field: usize,
    pub lang: String,
    pub phrase: Phrase,
}

/// All phrases of a config, indexed by their first word so a long text
/// costs one hash look-up per word, not one comparison per phrase.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    entries: Vec<Entry>,
    by_word: Index,
    /// Phrases opening with a prefix (`word*`, at least three letters),
    /// by the prefix's first three letters: a token is tried only against
    /// those sharing its first three.
    by_prefix: Index,
    /// Negation words per language; "any" phrases use the union.
    negations: HashMap<String, Vec<String>>,
    all_negations: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Match {
    pub entry: usize,
    pub start: usize,
    pub end: usize,
    /// The negation word found before the match, if any.
    pub negated_by: Option<String>,
}

impl Matcher {
    pub fn new(entries: Vec<Entry>, negations: HashMap<String, Vec<String>>) -> Matcher {
        let mut by_word = Index::default();
        let mut by_prefix = Index::default();
        for (i, e) in entries.iter().enumerate() {
            match e.phrase.parts.first() {
                Some(Part::Word(w)) => by_word.entry(w.clone()).or_default().push(i),
                Some(Part::Prefix(p)) => by_prefix.entry(head3(p).to_string()).or_default().push(i),
                // Compile refuses a phrase opening with `..`; nothing else opens one.
                _ => {}
            }
        }
        let mut all_negations: Vec<String> = negations.values().flatten().cloned().collect();
        all_negations.sort();
        all_negations.dedup();
        Matcher {
            entries,
            by_word,
            by_prefix,
            negations,
            all_negations,
        }
    }

    pub fn entry(&self, i: usize) -> Option<&Entry> {
        self.entries.get(i)
    }

    /// Every match in `tokens`, overlapping ones resolved longest first
    /// ("pas de contournement" beats "contournement").
    pub fn find(&self, tokens: &[Token]) -> Vec<Match> {
        let mut found = Vec::new();
        for (pos, t) in tokens.iter().enumerate() {
            let candidates = self
                .by_word
                .get(&t.word)
                .into_iter()
                .flatten()
                .chain(self.by_prefix.get(head3(&t.word)).into_iter().flatten());
            for &i in candidates {
                let Some(e) = self.entries.get(i) else {
                    continue;
                };
                if let Some(end) = e.phrase.match_at(tokens, pos) {
                    found.push(Match {
                        entry: i,
                        start: pos,
                        end,
                        negated_by: self.negation(&e.lang, tokens, pos, end),
                    });
                }
            }
        }
        // Longest first, then earliest; keep the ones that overlap no kept one.
        found.sort_by_key(|m| (std::cmp::Reverse(m.end - m.start), m.start, m.entry));
        let mut kept: Vec<Match> = Vec::new();
        for m in found {
            let overlaps = kept.iter().any(|k| {
                m.start < k.end
                    && k.start < m.end
                    // The same words may serve rules of other fields or languages.
                    && self.same_field(k.entry, m.entry)
            });
            if !overlaps {
                kept.push(m);
            }
        }
        kept.sort_by_key(|m| (m.start, m.entry));
        kept
    }

    fn same_field(&self, a: usize, b: usize) -> bool {
        match (self.entries.get(a), self.entries.get(b)) {
            (Some(x), Some(y)) => x.field == y.field && x.lang == y.lang,
            _ => false,
        }
    }

    fn negation(&self, lang: &str, tokens: &[Token], start: usize, end: usize) -> Option<String> {
        let clause = tokens.get(start)?.clause;
        let words = if lang == "any" {
            &self.all_negations
        } else {
            self.negations.get(lang).unwrap_or(&self.all_negations)
        };
        let before = tokens
            .get(start.saturating_sub(NEGATION_REACH)..start)
            .unwrap_or_default();
        let after = tokens
            .get(end..(end + 2).min(tokens.len()))
            .unwrap_or_default();
        let in_clause = |t: &&Token| t.clause == clause;
        if let Some(t) = before
            .iter()
            .rev()
            .take_while(|t| t.clause == clause)
            .find(|t| words.contains(&t.word))
        {
            return Some(t.word.clone());
        }
        // French wraps the verb: "ne bloque pas", "n'est plus urgent".
        if matches!(lang, "fr" | "any") {
            let ne = before
                .iter()
                .rev()
                .take_while(|t| t.clause == clause)
                .position(|t| t.word == "ne" || t.word == "n");
            if let Some(ne) = ne {
                let between = &before[before.len() - ne..];
                if let Some(t) = between
                    .iter()
                    .chain(after.iter().filter(in_clause))
                    .find(|t| FRENCH_SECOND.contains(&t.word.as_str()))
                {
                    return Some(format!("ne {}", t.word));
                }
            }
        }
        // German and Dutch put the negation after the verb ("blockiert nicht").
        let post: &[&str] = match lang {
            "de" => &["nicht"],
            "nl" => &["niet"],
            "any" => &["nicht", "niet"],
            _ => &[],
        };
        after
            .iter()
            .filter(in_clause)
            .find(|t| post.contains(&t.word.as_str()))
            .map(|t| t.word.clone())
    }
}
