//! Mail no person wrote: auto-replies, bounces and bulk/list mail. Such
//! mail is recorded but never acknowledged, so a desk and an out-of-office
//! robot never answer each other forever (RFC 3834).
//!
//! Order matters only for the kind reported: a bounce is a bounce even
//! when it also carries Auto-Submitted.

use serde::Serialize;

use super::normalize::fold;
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
