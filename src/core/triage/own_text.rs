//! The customer's own words in a message: the subject and the body without
//! quoted replies, reply attributions ("On ... wrote:", "Le ... a écrit :"),
//! Outlook original-message blocks, signatures and forwarded headers.
//!
//! Everything after a reply attribution is someone else's text (often ours,
//! often in another language), so it is cut, not just skipped. A forwarded
//! message is different: the customer usually forwards the problem itself
//! ("see the error below"), so only the forwarded header lines go.

use super::normalize::fold;

/// Subject prefixes added by mail clients for replies and forwards.
const REPLY_PREFIXES: &[&str] = &[
    "re", "aw", "sv", "vs", "rv", "r", "ref", "antw", "antwort", "odp", "ynt",
];
const FORWARD_PREFIXES: &[&str] = &[
    "fw", "fwd", "tr", "wg", "enc", "i", "rv", "doorst", "fs", "vb", "reenv",
];

/// "On Mon, Nov 2 ... wrote:" in the languages we serve, folded.
const WROTE: &[&str] = &[
    "wrote",
    "a ecrit",
    "schrieb",
    "escribio",
    "ha scritto",
    "scrisse",
    "schreef",
    "escreveu",
];
const ATTRIBUTION_STARTS: &[&str] = &["on ", "le ", "am ", "el ", "il ", "op ", "em ", "no "];

const ORIGINAL_MESSAGE: &[&str] = &[
    "original message",
    "message d origine",
    "ursprungliche nachricht",
    "mensaje original",
    "messaggio originale",
    "oorspronkelijk bericht",
    "mensagem original",
];
const FORWARDED: &[&str] = &[
    "forwarded message",
    "begin forwarded message",
    "message transfere",
    "message reexpedie",
    "weitergeleitete nachricht",
    "mensaje reenviado",
    "messaggio inoltrato",
    "doorgestuurd bericht",
    "mensagem encaminhada",
];
/// Header names that open an Outlook-style quoted or forwarded block.
const FROM_NAMES: &[&str] = &["from", "de", "von", "da", "van", "fra", "expediteur"];
const HEADER_NAMES: &[&str] = &[
    "from",
    "de",
    "von",
    "da",
    "van",
    "sent",
    "envoye",
    "gesendet",
    "enviado",
    "inviato",
    "verzonden",
    "date",
    "datum",
    "data",
    "fecha",
    "to",
    "a",
    "an",
    "para",
    "aan",
    "cc",
    "subject",
    "objet",
    "betreff",
    "asunto",
    "oggetto",
    "onderwerp",
    "assunto",
    "reply to",
    "repondre a",
];
/// Mobile-client taglines, dropped wherever they appear.
const TAGLINES: &[&str] = &[
    "sent from my",
    "envoye de mon",
    "envoye depuis mon",
    "von meinem",
    "enviado desde mi",
    "inviato da",
    "verzonden vanaf",
    "enviado do meu",
    "get outlook for",
    "obtenir outlook pour",
];
/// Closings after which the rest is a signature block.
const CLOSINGS: &[&str] = &[
    "cordialement",
    "bien cordialement",
    "tres cordialement",
    "bien a vous",
    "salutations",
    "meilleures salutations",
    "merci d avance",
    "best regards",
    "kind regards",
    "regards",
    "best",
    "many thanks",
    "thanks in advance",
    "sincerely",
    "cheers",
    "mit freundlichen grussen",
    "freundliche grusse",
    "viele grusse",
    "beste grusse",
    "saludos",
    "un saludo",
    "atentamente",
    "saludos cordiales",
    "cordiali saluti",
    "distinti saluti",
    "saluti",
    "met vriendelijke groet",
    "met vriendelijke groeten",
    "vriendelijke groet",
    "groeten",
    "atenciosamente",
    "cumprimentos",
    "obrigado",
    "obrigada",
];

/// Subject without reply/forward prefixes, and whether it was a forward.
pub fn clean_subject(subject: &str) -> (&str, bool) {
    let mut s = subject.trim();
    let mut forward = false;
    // Bounded: a hostile subject of a thousand "Re:" costs nothing.
    for _ in 0..10 {
        let Some(colon) = s.find(':') else { break };
        let head = s[..colon].trim();
        // "Re[2]" / "RE (3)" counters.
        let head = head.split(['[', '(']).next().unwrap_or(head).trim();
        let lower = head.to_ascii_lowercase();
        if REPLY_PREFIXES.contains(&lower.as_str()) {
            s = s[colon + 1..].trim_start();
        } else if FORWARD_PREFIXES.contains(&lower.as_str()) {
            forward = true;
            s = s[colon + 1..].trim_start();
        } else {
            break;
        }
    }
    (s, forward)
}

fn folded_line(line: &str) -> String {
    let f = fold(line);
    let mut out = String::with_capacity(f.len());
    let mut space = true;
    for c in f.chars() {
        if c.is_alphanumeric() {
            out.push(c);
            space = false;
        } else if c == ':' {
            if out.ends_with(' ') {
                out.pop();
            }
            out.push(':');
            space = false;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    // No space opens it; one may close it.
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

fn is_attribution(folded: &str) -> bool {
    folded.ends_with(':') && WROTE.iter().any(|w| folded.contains(w))
}

fn header_name(folded: &str) -> Option<&str> {
    let (name, _) = folded.split_once(':')?;
    HEADER_NAMES.iter().find(|h| **h == name.trim()).copied()
}

/// Is line `i` (`folded`, as [`folded_line`] gives it) the start of an
/// Outlook header block (From: then Sent:/To:)?
fn opens_header_block(lines: &[&str], i: usize, folded: &str) -> bool {
    let Some(name) = header_name(folded) else {
        return false;
    };
    if !FROM_NAMES.contains(&name) {
        return false;
    }
    lines
        .iter()
        .skip(i + 1)
        .take(4)
        .filter(|l| header_name(&folded_line(l)).is_some())
        .count()
        >= 1
}

/// The body's own lines (see the module comment). `forward` says the
/// subject marked a forward, so header blocks are skipped rather than cut.
pub fn own_body(body: &str, forward: bool) -> String {
    let lines: Vec<&str> = body.lines().collect();
    let mut out = String::with_capacity(body.len().min(64 * 1024));
    let mut i = 0;
    let mut in_forward_headers = false;
    let mut in_forward = forward;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim();
        let f = folded_line(trimmed);

        if in_forward_headers {
            if trimmed.is_empty() || header_name(&f).is_some() {
                if trimmed.is_empty() {
                    in_forward_headers = false;
                }
                i += 1;
                continue;
            }
            in_forward_headers = false;
        }
        if trimmed.starts_with('>') {
            i += 1;
            continue;
        }
        if line == "-- " || line == "--" || trimmed == "__" {
            break;
        }
        let marker = f.trim_end_matches(':');
        if trimmed.len() < 100 {
            if FORWARDED.contains(&marker) {
                in_forward = true;
                in_forward_headers = true;
                i += 1;
                continue;
            }
            if ORIGINAL_MESSAGE.contains(&marker) {
                if in_forward {
                    in_forward_headers = true;
                    i += 1;
                    continue;
                }
                break;
            }
        }
        if is_attribution(&f) {
            break;
        }
        // An attribution wrapped over two lines by the client.
        if ATTRIBUTION_STARTS.iter().any(|s| f.starts_with(s))
            && let Some(next) = lines.get(i + 1)
        {
            let joined = format!("{f} {}", folded_line(next));
            if is_attribution(&joined) && joined.len() < 300 {
                break;
            }
        }
        if opens_header_block(&lines, i, &f) {
            if in_forward {
                in_forward_headers = true;
                i += 1;
                continue;
            }
            break;
        }
        if trimmed.chars().all(|c| c == '_' || c == '-' || c == '=') && trimmed.len() >= 10 {
            // Outlook's rule above a quoted header block.
            i += 1;
            continue;
        }
        if TAGLINES.iter().any(|t| f.starts_with(t)) && f.len() < 80 {
            i += 1;
            continue;
        }
        out.push_str(line);
        out.push('\n');
        let bare = f.trim_end_matches([',', '.', '!', ' ']);
        if CLOSINGS.contains(&bare) {
            break;
        }
        i += 1;
    }
    out
}

/// What the message quotes of earlier mails: its `>` lines, else what
/// follows a reply attribution or an original-message rule. The desk's
/// earlier replies are usually in the customer's language, so it tells
/// the language of a reply too short to tell by itself. At most 4 KB.
pub fn quoted_text(body: &str) -> String {
    const MAX: usize = 4_000;
    let mut out = String::new();
    for line in body.lines() {
        if let Some(q) = line.trim_start().strip_prefix('>') {
            out.push_str(q.trim_start_matches(['>', ' ']));
            out.push('\n');
            if out.len() > MAX {
                break;
            }
        }
    }
    if !out.is_empty() {
        return out;
    }
    let mut after = false;
    for line in body.lines() {
        if after {
            out.push_str(line);
            out.push('\n');
            if out.len() > MAX {
                break;
            }
            continue;
        }
        let f = folded_line(line.trim());
        let marker = f.trim_end_matches(':');
        after = (line.len() < 300 && is_attribution(&f)) || ORIGINAL_MESSAGE.contains(&marker);
    }
    out
}

/// A message's own body as one reading of its subject left it (whether
/// the subject marked a forward), kept so the automated check and the
/// triage after it cut the quotes once, not twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnBody {
    forward: bool,
    text: String,
}

impl OwnBody {
    /// The own body of `body` under this subject.
    pub fn cut(subject: &str, body: &str) -> OwnBody {
        let forward = clean_subject(subject).1;
        OwnBody {
            forward,
            text: own_body(body, forward),
        }
    }
}

/// The customer's own words: cleaned subject, a blank line, own body.
pub fn own_text(subject: &str, body: &str) -> String {
    own_text_reusing(subject, body, None)
}

/// `own_text`, with the own body taken from `known` when it was cut for
/// the same reading of the subject (a `[P1]` tag removed before a "Fwd:"
/// changes it).
pub fn own_text_reusing(subject: &str, body: &str, known: Option<&OwnBody>) -> String {
    let (subject, forward) = clean_subject(subject);
    match known {
        Some(k) if k.forward == forward => join(subject, &k.text),
        _ => join(subject, &own_body(body, forward)),
    }
}

fn join(subject: &str, body: &str) -> String {
    let mut s = String::with_capacity(subject.len() + body.len() + 2);
    s.push_str(subject);
    s.push_str("\n\n");
    s.push_str(body.trim_end());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_replies_and_signatures() {
        let body = "Toujours en panne.\n\nLe lun. 2 nov. 2026 à 10:00, Support <s@x> a écrit :\n> We are looking into it.\n";
        assert_eq!(own_body(body, false).trim(), "Toujours en panne.");
        let body = "Still broken.\nOn Mon, Nov 2, 2026 at 10:00 AM Support\n<s@x> wrote:\n> ok";
        assert_eq!(own_body(body, false).trim(), "Still broken.");
        let body = "Hello\n-- \nJohn, Critical Systems Ltd";
        assert_eq!(own_body(body, false).trim(), "Hello");
        let body = "Bonjour,\nça plante.\nCordialement,\nJean Dupont\nDirecteur";
        assert_eq!(
            own_body(body, false).trim(),
            "Bonjour,\nça plante.\nCordialement,"
        );
    }

    #[test]
    fn outlook_blocks_cut_in_replies_skipped_in_forwards() {
        let body =
            "Any news?\n\nFrom: Support <s@x>\nSent: Monday\nTo: me\nSubject: x\n\nWe are on it";
        assert_eq!(own_body(body, false).trim(), "Any news?");
        let body = "Voir ci-dessous.\n\n---------- Forwarded message ---------\nFrom: ops <o@x>\nDate: Mon\nSubject: alert\nTo: me\n\nBackup job failed";
        let own = own_body(body, false);
        assert!(own.contains("Backup job failed"), "{own}");
        assert!(!own.contains("ops <o@x>"), "{own}");
    }

    #[test]
    fn a_reused_own_body_is_the_one_its_subject_would_cut() {
        // An Outlook header block: cut in a reply, skipped in a forward.
        let body = "See below.\n\nFrom: ops <o@x>\nSent: Monday\nTo: me\nSubject: alert\n\nBackup job failed";
        // Cut under a forward's subject, asked for under one that is not
        // (a tag stripped before "Fwd:" changes the reading): cut again.
        let under_forward = OwnBody::cut("Fwd: alert", body);
        for subject in ["Fwd: alert", "alert", "Re: alert", "[P1] Fwd: alert"] {
            assert_eq!(
                own_text_reusing(subject, body, Some(&under_forward)),
                own_text(subject, body),
                "{subject}"
            );
            let under_reply = OwnBody::cut("Re: alert", body);
            assert_eq!(
                own_text_reusing(subject, body, Some(&under_reply)),
                own_text(subject, body),
                "{subject}"
            );
        }
        assert_ne!(own_text("Fwd: alert", body), own_text("alert", body));
    }

    #[test]
    fn subject_prefixes() {
        assert_eq!(clean_subject("RE: TR: Fwd: panne"), ("panne", true));
        assert_eq!(clean_subject("Re[2]: hello"), ("hello", false));
        assert_eq!(
            clean_subject("Erreur: sauvegarde"),
            ("Erreur: sauvegarde", false)
        );
    }
}
