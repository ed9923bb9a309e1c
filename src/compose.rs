//! Composing the mail the desk sends, as bytes ready for the outbox.
//!
//! Every outbound message gets a Message-ID chosen before it is queued, so a
//! resend after a crash carries the same id and the receiver (and our own
//! threading) can recognise it.

use anyhow::{Context, Result};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message, MultiPart};
use rand::Rng;

pub struct Outgoing {
    pub message_id: String,
    pub sender: String,
    pub recipients: Vec<String>,
    pub raw: Vec<u8>,
}

pub struct Reply<'a> {
    pub from: &'a Mailbox,
    pub to: Mailbox,
    pub subject: &'a str,
    pub body: &'a str,
    /// An HTML alternative of `body` (already escaped by its template).
    pub html: Option<&'a str>,
    /// Message-ID of the message answered (without brackets).
    pub in_reply_to: Option<&'a str>,
    /// Its References chain (without brackets), oldest first.
    pub references: &'a [String],
    /// Ticket reference, embedded in the Message-ID.
    pub reference: &'a str,
    pub kind: &'a str,
    /// RFC 3834: "auto-replied" for acknowledgements.
    pub auto_submitted: Option<&'a str>,
}

pub fn new_message_id(reference: &str, kind: &str, domain: &str) -> String {
    let token: u64 = rand::rng().random();
    format!("{reference}.{kind}.{token:016x}@{domain}")
}

pub fn compose(r: &Reply<'_>) -> Result<Outgoing> {
    let domain = r.from.email.domain().to_string();
    let message_id = new_message_id(r.reference, r.kind, &domain);
    let mut b = Message::builder()
        .from(r.from.clone())
        .to(r.to.clone())
        .subject(r.subject)
        .message_id(Some(format!("<{message_id}>")));
    if let Some(parent) = r.in_reply_to {
        b = b.in_reply_to(format!("<{parent}>"));
        let mut chain: Vec<&str> = r.references.iter().map(String::as_str).collect();
        if chain.last() != Some(&parent) {
            chain.push(parent);
        }
        // Mail clients cope with long References; keep the first and the last ones.
        if chain.len() > 20 {
            let keep_tail = chain.split_off(chain.len() - 19);
            chain.truncate(1);
            chain.extend(keep_tail);
        }
        let refs = chain
            .iter()
            .map(|id| format!("<{id}>"))
            .collect::<Vec<_>>()
            .join(" ");
        b = b.references(refs);
    }
    let mut msg = match r.html {
        None => b.header(ContentType::TEXT_PLAIN).body(r.body.to_string()),
        Some(html) => b.multipart(MultiPart::alternative_plain_html(
            r.body.to_string(),
            html.to_string(),
        )),
    }
    .context("Building the outgoing message")?;
    if let Some(v) = r.auto_submitted {
        msg.headers_mut().insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            v.to_string(),
        ));
    }
    Ok(Outgoing {
        message_id,
        sender: r.from.email.to_string(),
        recipients: vec![r.to.email.to_string()],
        raw: msg.formatted(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_headers() {
        let from: Mailbox = "Desk <support@desk.test>".parse().unwrap();
        let out = compose(&Reply {
            from: &from,
            to: "René <rene@example.com>".parse().unwrap(),
            subject: "[SUP-000001] Sauvegarde échouée",
            body: "Bonjour\n",
            html: None,
            in_reply_to: Some("abc@example.com"),
            references: &["root@example.com".to_string()],
            reference: "SUP-000001",
            kind: "ack",
            auto_submitted: Some("auto-replied"),
        })
        .unwrap();
        let parsed = crate::core::inbound::parse(&out.raw).unwrap();
        assert_eq!(parsed.in_reply_to, vec!["abc@example.com"]);
        assert_eq!(
            parsed.references,
            vec!["root@example.com", "abc@example.com"]
        );
        assert_eq!(parsed.subject, "[SUP-000001] Sauvegarde échouée");
        assert_eq!(parsed.header("Auto-Submitted"), Some("auto-replied"));
        assert_eq!(parsed.message_id.as_deref(), Some(out.message_id.as_str()));
        assert!(out.message_id.starts_with("SUP-000001.ack."));
        assert_eq!(out.recipients, vec!["rene@example.com"]);
    }
}
