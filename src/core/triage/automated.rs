//! Mail no person wrote: auto-replies, bounces and bulk/list mail. Such
//! mail is recorded but never acknowledged, so a desk and an out-of-office
//! robot never answer each other forever (RFC 3834).
//!
//! Order matters only for the kind reported: a bounce is a bounce even
//! when it also carries Auto-Submitted.
//!
//! Headers first; then, for the out-of-office replies that carry none
//! (many clients, and every "rule" a user sets up by hand), the text: a
//! short own text whose opening sentences say, in the first person, that
//! the writer is away, with a return date or a contact for urgent
//! matters. A request that merely mentions someone's absence ("my
//! colleague is on holiday, the backup failed") is not one: the absence
//! is not the writer's, or the text goes on to describe a problem.

use serde::Serialize;

use super::normalize::{fold, words};
use super::own_text::OwnBody;
use crate::core::inbound::ParsedMail;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AutomatedKind {
    AutoReply,
    Bounce,
    Bulk,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Automated {
    pub kind: AutomatedKind,
    /// The header or sign that gave it away, e.g. "Auto-Submitted: auto-replied".
    pub reason: String,
}

fn found(kind: AutomatedKind, reason: String) -> Option<Automated> {
    Some(Automated { kind, reason })
}

/// Local parts of senders that only machines use.
const ROBOT_SENDERS: &[&str] = &["mailer-daemon", "postmaster"];

/// Subject prefixes of out-of-office replies from clients that send no
/// Auto-Submitted header (older Exchange, some webmails). Folded.
const AUTO_REPLY_SUBJECTS: &[&str] = &[
    "automatic reply:",
    "auto reply:",
    "autoreply:",
    "out of office:",
    "out of the office:",
    "reponse automatique:",
    "reponse automatique :",
    "absence du bureau:",
    "absent du bureau:",
    "automatische antwort:",
    "abwesenheitsnotiz:",
    "respuesta automatica:",
    "fuera de la oficina:",
    "risposta automatica:",
    "fuori sede:",
    "automatisch antwoord:",
    "afwezig:",
    "resposta automatica:",
    "ausencia:",
];

/// Is this message from a machine rather than a person? See the module comment.
pub fn detect_automated(mail: &ParsedMail) -> Option<Automated> {
    detect_automated_keeping(mail).0
}

/// `detect_automated`, also giving the own body it cut when it read the
/// text (for the triage that follows, see [`OwnBody`]).
pub fn detect_automated_keeping(mail: &ParsedMail) -> (Option<Automated>, Option<OwnBody>) {
    if let Some(a) = by_headers(mail) {
        return (Some(a), None);
    }
    let body = OwnBody::cut(&mail.subject, &mail.text);
    let own = super::own_text::own_text_reusing(&mail.subject, &mail.text, Some(&body));
    // A reply's subject echoes the ticket ("Re: [#77120] Backup failed"):
    // its problem words are ours, not the writer's.
    // A forward's subject is the writer's own words, and stays.
    let (cleaned, forward) = super::own_text::clean_subject(&mail.subject);
    let problem_scope = if !forward && cleaned.len() < mail.subject.trim().len() {
        own.get(cleaned.len()..).unwrap_or(&own)
    } else {
        own.as_str()
    };
    let automated =
        out_of_office(&own, problem_scope).and_then(|why| found(AutomatedKind::AutoReply, why));
    (automated, Some(body))
}

/// Headers, sender and subject: the signs that need no reading of the text.
fn by_headers(mail: &ParsedMail) -> Option<Automated> {
    let ct = mail.content_type.as_deref().unwrap_or("");
    let report = mail.report_type.as_deref().unwrap_or("");
    if ct == "multipart/report" && report == "delivery-status" {
        return found(
            AutomatedKind::Bounce,
            "multipart/report; report-type=delivery-status".into(),
        );
    }
    if let Some(from) = &mail.from {
        let local = from.email.split('@').next().unwrap_or("");
        if ROBOT_SENDERS.contains(&local) {
            return found(AutomatedKind::Bounce, format!("sender {}", from.email));
        }
    }
    if ct == "multipart/report" {
        // Read receipts (disposition-notification) and other reports.
        let kind = if report.is_empty() { "unknown" } else { report };
        return found(
            AutomatedKind::AutoReply,
            format!("multipart/report; report-type={kind}"),
        );
    }
    for (name, value) in &mail.headers {
        let v = value.trim();
        if name.eq_ignore_ascii_case("Auto-Submitted") {
            // RFC 3834: "no" is a person; any other value (auto-replied,
            // auto-generated, auto-notified...) is a machine.
            let token = v.split(';').next().unwrap_or("").trim();
            if !token.eq_ignore_ascii_case("no") {
                return found(AutomatedKind::AutoReply, format!("Auto-Submitted: {v}"));
            }
        } else if name.eq_ignore_ascii_case("X-Autoreply")
            || name.eq_ignore_ascii_case("X-Autorespond")
            || name.eq_ignore_ascii_case("X-Autorespond-Version")
        {
            if !v.eq_ignore_ascii_case("no") {
                return found(AutomatedKind::AutoReply, format!("{name}: {v}"));
            }
        } else if name.eq_ignore_ascii_case("Precedence") {
            let p = v.to_ascii_lowercase();
            match p.as_str() {
                "bulk" | "junk" | "list" => {
                    return found(AutomatedKind::Bulk, format!("Precedence: {v}"));
                }
                "auto_reply" | "auto-reply" => {
                    return found(AutomatedKind::AutoReply, format!("Precedence: {v}"));
                }
                _ => {}
            }
        }
    }
    for (name, value) in &mail.headers {
        if name.eq_ignore_ascii_case("List-Id") || name.eq_ignore_ascii_case("List-Unsubscribe") {
            return found(AutomatedKind::Bulk, format!("{name}: {}", value.trim()));
        }
    }
    let subject = fold(mail.subject.trim());
    if let Some(prefix) = AUTO_REPLY_SUBJECTS.iter().find(|p| subject.starts_with(*p)) {
        return found(
            AutomatedKind::AutoReply,
            format!("subject starts with {prefix:?}"),
        );
    }
    if mail.return_path.as_deref() == Some("") {
        // A null reverse path: RFC 5321 reserves it for notifications,
        // RFC 3834 asks auto-responders to use it.
        return found(AutomatedKind::AutoReply, "Return-Path: <>".into());
    }
    None
}

/// The writer saying they are away, in the first person, folded: "I am"
/// (and its forms in the seven languages) and an absence in one sentence.
const FIRST_PERSON: &[&str] = &[
    "i am",
    "i m",
    "i will be",
    "i ll be",
    "i shall be",
    "je suis",
    "je serai",
    "ich bin",
    "ich werde",
    "estoy",
    "estare",
    "me encuentro",
    "sono",
    "saro",
    "ik ben",
    "estou",
    "estarei",
    "i am currently",
    "je suis actuellement",
];
const AWAY: &[&str] = &[
    "out of the office",
    "out of office",
    "away from the office",
    "away from my desk",
    "on leave",
    "annual leave",
    "parental leave",
    "maternity leave",
    "sick leave",
    "on holiday",
    "on vacation",
    "away until",
    "absent",
    "absente",
    "en conge",
    "en conges",
    "en vacances",
    "hors du bureau",
    "en deplacement",
    "nicht im buro",
    "nicht im buero",
    "abwesend",
    "im urlaub",
    "ausser haus",
    "fuera de la oficina",
    "de vacaciones",
    "ausente",
    "fuori ufficio",
    "fuori sede",
    "in ferie",
    "assente",
    "afwezig",
    "niet op kantoor",
    "met vakantie",
    "op vakantie",
    "fora do escritorio",
    "de ferias",
    "em ferias",
];
/// The second sign: a return, or whom to ask meanwhile.
const UNTIL_OR_INSTEAD: &[&str] = &[
    "until",
    "back on",
    "will be back",
    "when i return",
    "upon my return",
    "on my return",
    "not be forwarded",
    "limited access",
    "no access",
    "urgent",
    "jusqu",
    "a mon retour",
    "de retour",
    "retour le",
    "urgence",
    "urgent",
    "bis zum",
    "bis einschliesslich",
    "bis",
    "zuruck",
    "dringend",
    "hasta",
    "a mi regreso",
    "urgente",
    "fino al",
    "fino a",
    "rientro",
    "urgenz",
    "tot en met",
    "tot",
    "terug",
    "dringende",
    "ate",
    "regresso",
    "urgentes",
];
/// Words of a problem report: a text with one is a request, whatever
/// absence it mentions.
const PROBLEM: &[&str] = &[
    "error",
    "errors",
    "fails",
    "failed",
    "failing",
    "failure",
    "broken",
    "crash",
    "erreur",
    "erreurs",
    "echec",
    "echoue",
    "panne",
    "plante",
    "fehler",
    "fehlgeschlagen",
    "ausgefallen",
    "falla",
    "fallo",
    "fallado",
    "errore",
    "guasto",
    "fout",
    "storing",
    "erro",
    "falha",
];
/// Longer than this, the text says more than an absence.
const OUT_OF_OFFICE_MAX_WORDS: usize = 80;

/// Why this own text is an out-of-office reply, if it is one.
fn out_of_office(own: &str, problem_scope: &str) -> Option<String> {
    // Each whitespace-separated piece with a letter or digit gives at
    // least one word: counting them is a bound that saves folding a
    // long mail only to find it too long.
    let pieces = own
        .split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .take(OUT_OF_OFFICE_MAX_WORDS + 1)
        .count();
    if pieces > OUT_OF_OFFICE_MAX_WORDS {
        return None;
    }
    let all = words(own);
    if all.split(' ').count() > OUT_OF_OFFICE_MAX_WORDS {
        return None;
    }
    let has = |hay: &str, list: &[&'static str]| -> Option<&'static str> {
        let hay = format!(" {hay} ");
        list.iter()
            .copied()
            .find(|p| hay.contains(&format!(" {p} ")))
    };
    // "I am" and an absence close after it ("ich bin bis zum 12.01. nicht
    // im Buro"), among the opening words (a greeting and a thank you may
    // come first).
    let w: Vec<&str> = all.split(' ').collect();
    let at = |i: usize, p: &str| {
        let p: Vec<&str> = p.split(' ').collect();
        w.get(i..i + p.len()) == Some(&p[..])
    };
    let sign = has(&all, UNTIL_OR_INSTEAD)?;
    if has(&words(problem_scope), PROBLEM).is_some() {
        return None;
    }
    for i in 0..w.len().min(40) {
        let Some(me) = FIRST_PERSON.iter().find(|p| at(i, p)) else {
            continue;
        };
        let after = i + me.split(' ').count();
        for j in after..(after + 7).min(w.len()) {
            if let Some(away) = AWAY.iter().find(|p| at(j, p)) {
                return Some(format!(
                    "out-of-office text: {me:?} .. {away:?}, and {sign:?}"
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::out_of_office;

    #[test]
    fn out_of_office_text_without_headers() {
        for t in [
            "Je suis absent du bureau jusqu'au 12/01, pour toute urgence contactez Mme Sabatier au 04 91 22 33 44.",
            "Bonjour,\nJe suis en congés jusqu'au 2 septembre.\nEn cas d'urgence, joindre la permanence.",
            "Guten Tag,\nich bin bis zum 12.01. nicht im Büro. In dringenden Fällen wenden Sie sich an Frau Koch.",
            "Hi,\nThanks for your email. I'm currently on parental leave and will be back on 3 March.",
            "Buongiorno, sono fuori ufficio fino al 7 gennaio. Per urgenze contattare l'ufficio tecnico.",
            "Estoy fuera de la oficina hasta el 7 de enero.",
            "Ik ben afwezig tot en met 3 maart. Voor dringende zaken: helpdesk@example.nl.",
            "Estou de férias até dia 10. Para assuntos urgentes contacte a Ana.",
        ] {
            assert!(out_of_office(t, t).is_some(), "{t}");
        }
    }

    #[test]
    fn a_request_that_mentions_an_absence_is_not_one() {
        for t in [
            // Someone else's absence.
            "Mon collègue est en congés jusqu'au 12/01, je reprends le dossier : la sauvegarde de cette nuit a échoué.",
            // An absence with neither a return nor a contact.
            "I am out of the office.",
            // The writer away, then a real problem at length.
            "I am out of the office from Friday until Monday, so please answer before: since this morning every backup \
             of our file server fails with error 13, the job log shows a permission problem on /srv/data and the \
             tape library reports a drive fault. We restarted the service twice and checked the credentials. \
             Nothing changed and we have no copy of yesterday's data; please call me.",
        ] {
            assert!(out_of_office(t, t).is_none(), "{t}");
        }
    }
}
