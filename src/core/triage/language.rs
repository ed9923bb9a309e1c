//! Language of the customer's own words, restricted to the config's list,
//! with the config's default when the text is too short or the detector
//! answers a language the config does not list.
//!
//! Detection is whichlang (quickwit-oss): a linear model over hashed
//! n-grams, 16 languages, static weights, no load time, about 2 MB.
//! Measured on the triage corpus against whatlang (allowlist) and
//! langid-rs (restricted): see the issue note. It gives no confidence,
//! so "unsure" is judged by length. Below `min_words` words, or when the
//! answer is not listed, the other signals decide, strongest first: the
//! mail's Content-Language, the language of the thread it quotes, the
//! customer's configured language, the function words of the short text
//! ("the", "le", "der"...), and only then the default. Between
//! `min_words` and `SURE_WORDS` the detector's answer must not be
//! contradicted by the text's function words.
//! Before detecting, text inside double quotes, addresses, URLs and words
//! with digits go: a French customer quoting an English error message is
//! still French.

use whichlang::Lang;

/// ISO 639-1 codes the detector knows, with whichlang's language.
const CODES: &[(&str, Lang)] = &[
    ("fr", Lang::Fra),
    ("en", Lang::Eng),
    ("de", Lang::Deu),
    ("es", Lang::Spa),
    ("it", Lang::Ita),
    ("nl", Lang::Nld),
    ("pt", Lang::Por),
    ("sv", Lang::Swe),
    ("tr", Lang::Tur),
    ("ru", Lang::Rus),
    ("ar", Lang::Ara),
    ("hi", Lang::Hin),
    ("ja", Lang::Jpn),
    ("ko", Lang::Kor),
    ("zh", Lang::Cmn),
    ("vi", Lang::Vie),
];

/// Whether the detector knows this ISO 639-1 code.
pub fn is_supported(code: &str) -> bool {
    CODES.iter().any(|(c, _)| *c == code)
}

/// Every supported code, for error messages.
pub fn supported_codes() -> Vec<&'static str> {
    CODES.iter().map(|(c, _)| *c).collect()
}

fn code_for(lang: Lang) -> Option<&'static str> {
    CODES.iter().find(|(_, l)| *l == lang).map(|(c, _)| *c)
}

/// From this many words on, the detector's answer stands alone.
const SURE_WORDS: usize = 12;

/// Short, common words that belong to one language more than the others
/// (folded). A short text's language is the one with the most of them,
/// when one has strictly more than every other.
const FUNCTION_WORDS: &[(&str, &[&str])] = &[
    (
        "en",
        &[
            "the", "and", "is", "are", "you", "your", "we", "our", "have", "has", "this", "that",
            "with", "for", "not", "it", "to", "of", "will", "can", "please", "thanks", "thank",
            "hi", "hello", "from", "was", "be", "my", "me", "i", "what", "there", "here", "just",
        ],
    ),
    (
        "fr",
        &[
            "le", "les", "et", "est", "sont", "vous", "votre", "nous", "notre", "avec", "pour",
            "pas", "une", "des", "du", "ce", "cette", "merci", "bonjour", "je", "ne", "il", "sur",
            "dans", "au", "aux", "mais", "ou", "qui", "ca", "tres", "bien",
        ],
    ),
    (
        "de",
        &[
            "der", "die", "das", "und", "ist", "sind", "sie", "wir", "unser", "mit", "fur",
            "nicht", "ein", "eine", "ich", "danke", "hallo", "bitte", "auf", "zu", "von", "den",
            "dem", "auch", "noch",
        ],
    ),
    (
        "es",
        &[
            "el", "los", "las", "y", "usted", "nosotros", "con", "para", "por", "gracias", "hola",
            "que", "del", "mi", "su", "esta", "estamos", "pero", "muy",
        ],
    ),
    (
        "it",
        &[
            "il",
            "lo",
            "gli",
            "sono",
            "voi",
            "noi",
            "con",
            "per",
            "non",
            "grazie",
            "ciao",
            "buongiorno",
            "che",
            "della",
            "del",
            "di",
            "mi",
            "questo",
            "molto",
        ],
    ),
    (
        "nl",
        &[
            "het", "een", "zijn", "u", "wij", "we", "ons", "met", "voor", "niet", "dank",
            "bedankt", "hallo", "dat", "van", "ik", "op", "te", "graag",
        ],
    ),
    (
        "pt",
        &[
            "os", "sao", "voce", "nos", "com", "para", "nao", "uma", "obrigado", "obrigada", "ola",
            "que", "em", "meu", "muito",
        ],
    ),
];

/// What else may tell a short mail's language (see the module comment).
#[derive(Debug, Clone, Copy, Default)]
pub struct Signals<'a> {
    /// The mail's Content-Language header, as written.
    pub content_language: Option<&'a str>,
    /// The mail's whole body: what it quotes of earlier mails is read
    /// only when the own text cannot tell.
    pub body: &'a str,
    /// The customer's configured language.
    pub customer: Option<&'a str>,
}

/// Only the first part of a long text is looked at: the language is set
/// in the first paragraphs, and a pasted log must not cost much.
const MAX_DETECT_BYTES: usize = 4_000;

#[derive(Debug, Clone)]
pub struct LanguageDetector {
    languages: Vec<String>,
    default: String,
    /// Fewer words than this: the default language.
    min_words: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Detected {
    pub code: String,
    pub reason: String,
}

impl LanguageDetector {
    /// `languages` are ISO 639-1 codes already checked with `is_supported`.
    pub fn new(languages: &[String], default: &str, min_words: usize) -> Self {
        LanguageDetector {
            languages: languages.to_vec(),
            default: default.to_string(),
            min_words,
        }
    }

    #[cfg(test)]
    pub fn detect(&self, own_text: &str) -> Detected {
        self.detect_with(own_text, &Signals::default())
    }

    pub fn detect_with(&self, own_text: &str, signals: &Signals) -> Detected {
        let text = detection_text(own_text);
        let words = count_words(&text);
        let why = if words < self.min_words {
            format!("only {words} word(s) to go by")
        } else {
            let lang = whichlang::detect_language(&text);
            match code_for(lang) {
                Some(code) if self.listed(code) => {
                    // Counted only where they may overrule: a short text.
                    let fw = if words < SURE_WORDS {
                        self.function_words(&text)
                    } else {
                        None
                    };
                    match fw {
                        Some((other, hits)) if other != code && hits >= 2 => {
                            return Detected {
                                code: other.to_string(),
                                reason: format!(
                                    "language {other}: {hits} function words in {words} words (the detector said {code})"
                                ),
                            };
                        }
                        _ => {
                            return Detected {
                                code: code.to_string(),
                                reason: format!("language {code}: detected in {words} words"),
                            };
                        }
                    }
                }
                Some(code) => format!("detected {code}, which is not listed"),
                None => "detector answered an unknown language".to_string(),
            }
        };
        self.by_signals(&text, signals, &why)
    }

    /// The text alone cannot tell (`why`): the other signals, strongest first.
    fn by_signals(&self, text: &str, s: &Signals, why: &str) -> Detected {
        let found = |code: &str, how: String| Detected {
            code: code.to_string(),
            reason: format!("language {code}: {how} ({why})"),
        };
        if let Some(header) = s.content_language {
            // "fr-FR, en" -> "fr": the first listed primary subtag.
            for tag in header.split(',') {
                let primary = tag
                    .trim()
                    .split(['-', '_', ';'])
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                if self.listed(&primary) {
                    return found(&primary, format!("Content-Language {:?}", header.trim()));
                }
            }
        }
        let quoted = detection_text(&super::own_text::quoted_text(s.body));
        let quoted_words = count_words(&quoted);
        if quoted_words >= SURE_WORDS
            && let Some(code) = code_for(whichlang::detect_language(&quoted))
            && self.listed(code)
        {
            return found(code, format!("of the quoted thread, {quoted_words} words"));
        }
        if let Some(code) = s.customer
            && self.listed(code)
        {
            return found(code, "the customer's language".to_string());
        }
        if let Some((code, hits)) = self.function_words(text) {
            return found(code, format!("{hits} function word(s)"));
        }
        Detected {
            code: self.default.clone(),
            reason: format!("language {}: default, {why}", self.default),
        }
    }

    fn listed(&self, code: &str) -> bool {
        self.languages.iter().any(|l| l == code)
    }

    /// The listed language with strictly the most function words in
    /// `text`, with their count.
    fn function_words(&self, text: &str) -> Option<(&'static str, usize)> {
        let words = super::normalize::tokenize(text);
        let mut best: Option<(&'static str, usize)> = None;
        let mut tie = false;
        for (code, list) in FUNCTION_WORDS {
            if !self.listed(code) {
                continue;
            }
            let hits = words
                .iter()
                .filter(|w| list.contains(&w.word.as_str()))
                .count();
            if hits == 0 {
                continue;
            }
            match best {
                Some((_, b)) if hits == b => tie = true,
                Some((_, b)) if hits < b => {}
                _ => {
                    best = Some((code, hits));
                    tie = false;
                }
            }
        }
        if tie { None } else { best }
    }
}

/// Words of at least two letters.
fn count_words(text: &str) -> usize {
    text.split_whitespace()
        .filter(|w| w.chars().filter(|c| c.is_alphabetic()).count() >= 2)
        .count()
}

/// What the detector sees: no quoted strings, addresses, URLs, or words
/// with digits (error codes, versions, dates); at most MAX_DETECT_BYTES.
pub fn detection_text(own_text: &str) -> String {
    // The text's first MAX_DETECT_BYTES * 2 characters are looked at.
    let end = own_text
        .char_indices()
        .nth(MAX_DETECT_BYTES * 2)
        .map_or(own_text.len(), |(i, _)| i);
    let seen = &own_text[..end];
    let mut kept = String::with_capacity(seen.len().min(MAX_DETECT_BYTES) + 16);
    let mut chars = seen.char_indices();
    while kept.len() < MAX_DETECT_BYTES {
        let Some((at, c)) = chars.next() else {
            break;
        };
        let close = match c {
            '"' => Some('"'),
            '“' => Some('”'),
            '«' => Some('»'),
            '„' => Some('“'),
            _ => None,
        };
        if let Some(close) = close {
            // Skip a quoted span when it closes within a few lines.
            if let Some(len) = seen[at + c.len_utf8()..]
                .chars()
                .take(400)
                .position(|d| d == close || (close == '“' && d == '”'))
            {
                // The span and its closing mark.
                for _ in 0..=len {
                    chars.next();
                }
                kept.push(' ');
                continue;
            }
        }
        kept.push(c);
    }
    let mut out = String::with_capacity(kept.len());
    for w in kept.split_whitespace().filter(|w| {
        !w.contains('@')
            && !w.contains("://")
            && !w.starts_with("www.")
            && !w.chars().any(|c| c.is_ascii_digit())
    }) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(default: &str) -> LanguageDetector {
        let langs: Vec<String> = ["fr", "en", "de", "es", "it", "nl", "pt"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        LanguageDetector::new(&langs, default, 4)
    }

    #[test]
    fn quotes_and_codes_do_not_count() {
        assert_eq!(
            detection_text(
                "Le job affiche \"Backup failed: disk full\" depuis 10:00, voir https://x.y"
            ),
            "Le job affiche depuis voir"
        );
    }

    #[test]
    fn detects_and_falls_back() {
        let d = det("fr");
        assert_eq!(
            d.detect("Our nightly backups have been failing since Monday and we need help")
                .code,
            "en"
        );
        assert_eq!(
            d.detect(
                "Nos sauvegardes échouent toutes les nuits depuis lundi, pouvez-vous nous aider"
            )
            .code,
            "fr"
        );
        assert_eq!(det("en").detect("facture incorrecte").code, "en");
        assert_eq!(d.detect("").code, "fr");
    }

    #[test]
    fn a_short_mail_takes_its_language_from_the_other_signals_before_the_default() {
        let d = det("fr");
        let with = |text: &str, s: Signals| d.detect_with(text, &s);
        // Function words alone: "thanks, that is fine" is English.
        let got = with("Thanks, that is fine", Signals::default());
        assert_eq!(got.code, "en", "{}", got.reason);
        // Nothing to go by: the default, saying why.
        let got = with("OK", Signals::default());
        assert_eq!(got.code, "fr");
        assert!(got.reason.contains("default"), "{}", got.reason);
        // The header beats everything else.
        let got = with(
            "OK",
            Signals {
                content_language: Some("de-DE, en"),
                body: "> Thank you for your message, we are looking into the backup failures right now",
                customer: Some("it"),
            },
        );
        assert_eq!(got.code, "de", "{}", got.reason);
        // Then the quoted thread, when it is long enough to tell.
        let got = with(
            "OK",
            Signals {
                content_language: Some("x-klingon"),
                body: "OK\n\nOn Mon, support wrote:\n> Thank you for your message, we are looking into the backup failures right now and will write again today",
                customer: Some("it"),
            },
        );
        assert_eq!(got.code, "en", "{}", got.reason);
        // Then the customer's language.
        let got = with(
            "OK",
            Signals {
                body: "> grazie",
                customer: Some("it"),
                ..Signals::default()
            },
        );
        assert_eq!(got.code, "it", "{}", got.reason);
        // An unlisted customer language is no signal.
        assert_eq!(
            with(
                "OK",
                Signals {
                    customer: Some("sv"),
                    ..Signals::default()
                }
            )
            .code,
            "fr"
        );
    }

    #[test]
    fn a_long_text_is_not_overruled_by_the_signals() {
        let d = det("fr");
        let got = d.detect_with(
            "Nos sauvegardes échouent toutes les nuits depuis lundi, pouvez-vous nous aider rapidement",
            &Signals {
                content_language: Some("en"),
                customer: Some("en"),
                ..Signals::default()
            },
        );
        assert_eq!(got.code, "fr", "{}", got.reason);
    }
}
