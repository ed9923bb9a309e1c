//! Language of the customer's own words, restricted to the config's list,
//! with the config's default when the text is too short or the detector
//! answers a language the config does not list.
//!
//! Detection is whichlang (quickwit-oss): a linear model over hashed
//! n-grams, 16 languages, static weights, no load time, about 2 MB.
//! Measured on the triage corpus against whatlang (allowlist) and
//! langid-rs (restricted): see the issue note. It gives no confidence,
//! so "unsure" is judged by length: below `min_words` words, the default.
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

    pub fn detect(&self, own_text: &str) -> Detected {
        let text = detection_text(own_text);
        let words = text
            .split_whitespace()
            .filter(|w| w.chars().filter(|c| c.is_alphabetic()).count() >= 2)
            .count();
        if words < self.min_words {
            return self.fallback(&format!("only {words} word(s) to go by"));
        }
        let lang = whichlang::detect_language(&text);
        match code_for(lang) {
            Some(code) if self.languages.iter().any(|l| l == code) => Detected {
                code: code.to_string(),
                reason: format!("language {code}: detected in {words} words"),
            },
            Some(code) => self.fallback(&format!("detected {code}, which is not listed")),
            None => self.fallback("detector answered an unknown language"),
        }
    }

    fn fallback(&self, why: &str) -> Detected {
        Detected {
            code: self.default.clone(),
            reason: format!("language {}: default, {why}", self.default),
        }
    }
}

/// What the detector sees: no quoted strings, addresses, URLs, or words
/// with digits (error codes, versions, dates); at most MAX_DETECT_BYTES.
pub fn detection_text(own_text: &str) -> String {
    let mut out = String::with_capacity(own_text.len().min(MAX_DETECT_BYTES) + 16);
    let chars: Vec<char> = own_text.chars().take(MAX_DETECT_BYTES * 2).collect();
    let mut i = 0;
    while i < chars.len() && out.len() < MAX_DETECT_BYTES {
        let c = chars[i];
        let close = match c {
            '"' => Some('"'),
            '“' => Some('”'),
            '«' => Some('»'),
            '„' => Some('“'),
            _ => None,
        };
        if let Some(close) = close {
            // Skip a quoted span when it closes within a few lines.
            if let Some(len) = chars[i + 1..]
                .iter()
                .take(400)
                .position(|&d| d == close || (close == '“' && d == '”'))
            {
                i += len + 2;
                out.push(' ');
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out.split_whitespace()
        .filter(|w| {
            !w.contains('@')
                && !w.contains("://")
                && !w.starts_with("www.")
                && !w.chars().any(|c| c.is_ascii_digit())
        })
        .collect::<Vec<_>>()
        .join(" ")
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
}
