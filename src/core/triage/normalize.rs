//! Text normalisation shared by rules, overrides and language detection:
//! lowercase, accents removed, words split on anything not a letter or a
//! digit, with clause boundaries kept so a negation never reaches across a
//! full stop or a "but".

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Lowercase and strip accents ("Priorité" -> "priorite", "Œ" -> "oe").
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        // ASCII decomposes to itself: the common case skips NFD. Per
        // character is the same as per string here, since the marks that
        // canonical ordering would move are dropped.
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
            continue;
        }
        for d in std::iter::once(c).nfd() {
            if is_combining_mark(d) {
                continue;
            }
            match d {
                'œ' | 'Œ' => out.push_str("oe"),
                'æ' | 'Æ' => out.push_str("ae"),
                'ß' => out.push_str("ss"),
                'ø' | 'Ø' => out.push('o'),
                'ł' | 'Ł' => out.push('l'),
                '’' | 'ʼ' | '‘' => out.push('\''),
                _ => out.extend(d.to_lowercase()),
            }
        }
    }
    out
}

/// One word of a normalised text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub word: String,
    /// Tokens of one clause share this number; punctuation that ends a
    /// clause (. , ; : ! ? newline) and contrastive conjunctions start a new one.
    pub clause: u32,
    /// Tokens of one sentence share this number: . ! ?, a blank line and
    /// a line ending in a comma end one; a single newline does not.
    pub sentence: u32,
}

/// Words that open a new clause: a negation before "but" does not reach
/// what follows it ("pas de panne, mais tout est bloqué").
const CLAUSE_WORDS: &[&str] = &[
    "but",
    "however",
    "although",
    "mais",
    "cependant",
    "pourtant",
    "aber",
    "jedoch",
    "pero",
    "sino",
    "ma",
    "maar",
    "mas",
    "porem",
];

/// Split folded text into words. Apostrophes split ("n'est" -> "n", "est").
pub fn tokenize(text: &str) -> Vec<Token> {
    let folded = fold(text);
    let mut tokens = Vec::new();
    let mut clause = 0u32;
    let mut sentence = 0u32;
    let mut word = String::new();
    let flush = |word: &mut String, clause: &mut u32, sentence: u32, tokens: &mut Vec<Token>| {
        if word.is_empty() {
            return;
        }
        if CLAUSE_WORDS.contains(&word.as_str()) {
            *clause += 1;
        }
        tokens.push(Token {
            word: std::mem::take(word),
            clause: *clause,
            sentence,
        });
    };
    // Newlines since the last word: two end a sentence (a paragraph), one
    // does not (plain text is wrapped at 72 columns).
    let mut newlines = 0u32;
    // The last character that was not a space: a line ending in a comma
    // is a greeting ("Hi all,") and ends its sentence.
    let mut last = ' ';
    for c in folded.chars() {
        if c.is_alphanumeric() {
            word.push(c);
            newlines = 0;
            last = c;
            continue;
        }
        flush(&mut word, &mut clause, sentence, &mut tokens);
        if matches!(c, '.' | ',' | ';' | ':' | '!' | '?' | '\n' | '(' | ')') {
            clause += 1;
        }
        // A dot in "1.5" or "example.com" splits a sentence too: it only
        // narrows what counts as one sentence's scope.
        if c == '\n' {
            newlines += 1;
        }
        if matches!(c, '.' | '!' | '?')
            || (c == '\n' && (newlines == 2 || (newlines == 1 && last == ',')))
        {
            sentence += 1;
        }
        if !c.is_whitespace() {
            last = c;
        }
    }
    flush(&mut word, &mut clause, sentence, &mut tokens);
    tokens
}

/// Folded words of a phrase or id, joined by single spaces
/// ("Priorité :  P2" -> "priorite p2").
pub fn words(s: &str) -> String {
    tokenize(s)
        .into_iter()
        .map(|t| t.word)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-character fold gives what folding the whole string with
    /// NFD gave (the previous implementation), on mixed scripts and marks.
    #[test]
    fn per_character_fold_equals_the_whole_string_fold() {
        fn whole(s: &str) -> String {
            let mut out = String::new();
            for c in s.nfd() {
                if is_combining_mark(c) {
                    continue;
                }
                match c {
                    'œ' | 'Œ' => out.push_str("oe"),
                    'æ' | 'Æ' => out.push_str("ae"),
                    'ß' => out.push_str("ss"),
                    'ø' | 'Ø' => out.push('o'),
                    'ł' | 'Ł' => out.push('l'),
                    '’' | 'ʼ' | '‘' => out.push('\''),
                    _ => out.extend(c.to_lowercase()),
                }
            }
            out
        }
        for s in [
            "Priorité ÉLEVÉE Œuvre straße Łódź Ørsted",
            "e\u{301}\u{323} a\u{308}\u{301} ñ Ǆ İstanbul ΣΑΣ",
            "日本語のテキスト, Ελληνικά, русский ТЕКСТ ﬁ ①",
            "plain ASCII: Backup FAILED at 10:00!",
        ] {
            assert_eq!(fold(s), whole(s), "{s:?}");
        }
    }

    #[test]
    fn folds_accents_and_case() {
        assert_eq!(fold("Priorité ÉLEVÉE Œuvre"), "priorite elevee oeuvre");
        assert_eq!(words("n’est  pas-bloquant!"), "n est pas bloquant");
    }

    #[test]
    fn clauses_split_on_punctuation_and_but() {
        let t = tokenize("pas de panne, mais bloqué");
        let clauses: Vec<u32> = t.iter().map(|t| t.clause).collect();
        assert_eq!(clauses[0], clauses[2]);
        assert_ne!(clauses[2], clauses[3]);
        assert_eq!(clauses[3], clauses[4]);
    }
}
