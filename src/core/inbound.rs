//! Parsing a raw message into supportdesk's own type.
//!
//! Owns the boundary with mail-parser: everything downstream (triage,
//! threading, storage) sees `ParsedMail`, never mail-parser's borrowed tree.
//! Parsing never panics and never drops bytes: on failure the caller keeps
//! the raw message and records the error.

use chrono::{DateTime, Utc};
use mail_parser::{MessageParser, MimeHeaders};

/// Hard limits that keep one hostile message from costing unbounded memory
/// downstream. The raw bytes are always kept in full by the caller.
const MAX_ADDRESSES: usize = 500;
const MAX_SUBJECT_CHARS: usize = 2_000;
const MAX_TEXT_BYTES: usize = 1_000_000;
const MAX_HEADER_VALUE_CHARS: usize = 4_000;
const MAX_REFERENCES: usize = 100;

/// mail-parser's own choice of parser per header, except `Received`,
/// which it would tokenize into hops: nothing here reads them that way
/// (the header list is taken raw), and in mail that crossed a few relays
/// that tokenizing was a third of the parse (perf, BENCHMARKS.md issue
/// 17 seventh pass). A map that is not empty applies to every header, so
/// it names every one the default parses.
static PARSER: std::sync::LazyLock<MessageParser> = std::sync::LazyLock::new(|| {
    use mail_parser::HeaderName as H;
    let mut p = MessageParser::new();
    for h in [
        H::Subject,
        H::Comments,
        H::ContentDescription,
        H::ContentLocation,
        H::ContentTransferEncoding,
    ] {
        p = p.header_text(h);
    }
    for h in [
        H::From,
        H::To,
        H::Cc,
        H::Bcc,
        H::ReplyTo,
        H::Sender,
        H::ResentTo,
        H::ResentFrom,
        H::ResentBcc,
        H::ResentCc,
        H::ResentSender,
        H::ListArchive,
        H::ListHelp,
        H::ListId,
        H::ListOwner,
        H::ListPost,
        H::ListSubscribe,
        H::ListUnsubscribe,
    ] {
        p = p.header_address(h);
    }
    for h in [H::Date, H::ResentDate] {
        p = p.header_date(h);
    }
    for h in [
        H::MessageId,
        H::References,
        H::InReplyTo,
        H::ReturnPath,
        H::ContentId,
        H::ResentMessageId,
    ] {
        p = p.header_id(h);
    }
    for h in [H::Keywords, H::ContentLanguage] {
        p = p.header_comma_separated(h);
    }
    for h in [H::ContentType, H::ContentDisposition] {
        p = p.header_content_type(h);
    }
    p.header_raw(H::Received)
});

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub name: Option<String>,
    /// Lowercased.
    pub email: String,
}

#[derive(Debug, Clone)]
pub struct Attachment {
    pub filename: Option<String>,
    /// "type/subtype", lowercased.
    pub content_type: String,
    pub content: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct ParsedMail {
    /// Without angle brackets.
    pub message_id: Option<String>,
    pub from: Option<Address>,
    pub reply_to: Option<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    /// Decoded (RFC 2047); "" when absent.
    pub subject: String,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// The sender's Date header. Informational only: received time is the
    /// server's arrival time, never this.
    pub date: Option<DateTime<Utc>>,
    /// Text body; HTML converted to text when there is no text part.
    pub text: String,
    /// Every top-level header: (name as written, unfolded value).
    pub headers: Vec<(String, String)>,
    /// Top-level "type/subtype", lowercased.
    pub content_type: Option<String>,
    /// The report-type parameter, lowercased, when present.
    pub report_type: Option<String>,
    /// None when the header is absent; Some("") for `<>`.
    pub return_path: Option<String>,
    pub attachments: Vec<Attachment>,
}

impl ParsedMail {
    /// First value of a header, case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every Message-ID this message points at: In-Reply-To first, then
    /// References from the newest.
    pub fn referenced_ids(&self) -> impl Iterator<Item = &str> {
        self.in_reply_to
            .iter()
            .chain(self.references.iter().rev())
            .map(String::as_str)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("empty message")]
    Empty,
    #[error("not a parsable RFC 5322 message")]
    Unparsable,
}

pub fn parse(raw: &[u8]) -> Result<ParsedMail, ParseError> {
    parse_with(&PARSER, raw)
}

fn parse_with(parser: &MessageParser, raw: &[u8]) -> Result<ParsedMail, ParseError> {
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ParseError::Empty);
    }
    let msg = parser.parse(raw).ok_or(ParseError::Unparsable)?;
    if msg.headers().is_empty() {
        return Err(ParseError::Unparsable);
    }

    let first = |a: Option<&mail_parser::Address>| a.and_then(|a| a.first()).and_then(to_address);
    let all = |a: Option<&mail_parser::Address>| -> Vec<Address> {
        a.map(|a| {
            a.iter()
                .filter_map(to_address)
                .take(MAX_ADDRESSES)
                .collect()
        })
        .unwrap_or_default()
    };

    let headers = msg
        .headers_raw()
        .map(|(n, v)| (n.to_string(), unfold(v)))
        .collect::<Vec<_>>();

    let (content_type, report_type) = match msg.content_type() {
        Some(ct) => {
            let full = match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                None => ct.ctype().to_string(),
            }
            .to_ascii_lowercase();
            (
                Some(full),
                ct.attribute("report-type").map(|s| s.to_ascii_lowercase()),
            )
        }
        None => (None, None),
    };

    let return_path = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Return-Path"))
        .map(|(_, v)| {
            v.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .trim()
                .to_string()
        });

    let mut text = match msg.body_text(0) {
        Some(t) => t.into_owned(),
        None => msg.body_html(0).map(|h| h.into_owned()).unwrap_or_default(),
    };
    truncate_bytes(&mut text, MAX_TEXT_BYTES);

    let attachments = msg
        .attachments()
        .map(|part| Attachment {
            filename: part
                .attachment_name()
                .map(|s| one_line(&truncate_chars(s, 255))),
            content_type: part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".into())
                .to_ascii_lowercase(),
            content: part.contents().to_vec(),
        })
        .collect();

    Ok(ParsedMail {
        message_id: msg.message_id().map(clean_id).filter(|s| !s.is_empty()),
        from: first(msg.from()),
        reply_to: first(msg.reply_to()),
        to: all(msg.to()),
        cc: all(msg.cc()),
        subject: msg
            .subject()
            .map(|s| one_line(&truncate_chars(s, MAX_SUBJECT_CHARS)))
            .unwrap_or_default(),
        in_reply_to: id_list(msg.in_reply_to()),
        references: id_list(msg.references()),
        date: msg
            .date()
            .and_then(|d| DateTime::<Utc>::from_timestamp(d.to_timestamp(), 0)),
        text,
        headers: headers
            .into_iter()
            .map(|(n, v)| (n, truncate_chars(&v, MAX_HEADER_VALUE_CHARS)))
            .collect(),
        content_type,
        report_type,
        return_path,
        attachments,
    })
}

fn to_address(a: &mail_parser::Addr) -> Option<Address> {
    let email = a.address()?.trim().to_lowercase();
    if email.is_empty() {
        return None;
    }
    Some(Address {
        name: a.name().map(one_line).filter(|n| !n.is_empty()),
        email,
    })
}

fn id_list(v: &mail_parser::HeaderValue) -> Vec<String> {
    v.as_text_list()
        .map(|l| {
            l.iter()
                .map(|s| clean_id(s))
                .filter(|s| !s.is_empty())
                .take(MAX_REFERENCES)
                .collect()
        })
        .unwrap_or_default()
}

/// A Message-ID without its brackets. Folding whitespace and controls
/// inside it (seen in the wild, kept by the parser) are dropped: an id is
/// one token, and it goes back out in In-Reply-To and References.
fn clean_id(s: &str) -> String {
    let id: String = s
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .chars()
        .filter(|c| !c.is_control() && !c.is_whitespace())
        .collect();
    truncate_chars(&id, 500)
}

fn unfold(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for line in v
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(line);
    }
    out
}

/// Decoded text that ends up in a header or a single line (subject,
/// display name, file name): an encoded word may carry CR, LF, NUL or
/// other controls, which must never reach a header we write (injection) or
/// a log line. Each run of controls and spaces becomes one space.
pub fn one_line(s: &str) -> String {
    s.split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

fn truncate_bytes(s: &mut String, max: usize) {
    if s.len() > max {
        let mut i = max;
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        s.truncate(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`PARSER`] reads every message as mail-parser's default does, but
    /// for the Received hops nothing here uses: the same `ParsedMail` for
    /// every fixture and for mail with relays and a forwarded message.
    #[test]
    fn the_parser_without_received_hops_reads_mail_as_the_default_does() {
        let relayed = b"Received: from mx.example.com (mx.example.com [192.0.2.1])\r\n\
\tby mail.desk.test (Postfix) with ESMTPS id 4F3;\r\n\
\tMon, 16 Nov 2026 10:00:01 +0100 (CET)\r\n\
Received: from [10.0.0.5] (unknown [198.51.100.7]) by mx.example.com; Mon, 16 Nov 2026 10:00:00 +0100\r\n\
Return-Path: <bounce@example.com>\r\n\
From: =?utf-8?q?Ren=C3=A9?= <rene@example.com>\r\n\
To: support@desk.test\r\n\
List-Id: <users.example.com>\r\n\
Subject: Fwd: =?iso-8859-1?q?Probl=E8me?=\r\n\
Message-ID: <fwd@example.com>\r\n\
Date: Mon, 16 Nov 2026 10:00:00 +0100\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Voir ci-dessous, la sauvegarde =C3=A9choue.\r\n\
--b\r\n\
Content-Type: message/rfc822\r\n\
Content-Disposition: attachment; filename=\"original.eml\"\r\n\
\r\n\
Received: from a by b; Mon, 16 Nov 2026 09:00:00 +0100\r\n\
From: Client <client@example.org>\r\n\
Subject: Backup failed\r\n\
\r\n\
It failed again.\r\n\
--b--\r\n";
        let mut mails: Vec<Vec<u8>> = vec![relayed.to_vec()];
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut dirs = vec![root];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "eml") {
                    mails.push(std::fs::read(&p).unwrap());
                }
            }
        }
        assert!(mails.len() > 100, "{} fixtures", mails.len());
        let default = MessageParser::default();
        for raw in &mails {
            let ours = format!("{:?}", parse_with(&PARSER, raw));
            let theirs = format!("{:?}", parse_with(&default, raw));
            assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(raw));
        }
        let got = parse(relayed).unwrap();
        assert_eq!(got.subject, "Fwd: Problème");
        assert!(got.header("Received").unwrap().contains("mx.example.com"));
    }

    #[test]
    fn parses_the_fields_we_use() {
        let raw = b"From: =?utf-8?q?Ren=C3=A9?= <Rene@Example.COM>\r\n\
To: support@desk.test, other@desk.test\r\n\
Cc: boss@example.com\r\n\
Subject: =?iso-8859-1?q?Probl=E8me?= de sauvegarde\r\n\
Message-ID: <abc@example.com>\r\n\
In-Reply-To: <prev@desk.test>\r\n\
References: <first@desk.test> <prev@desk.test>\r\n\
Return-Path: <>\r\n\
Date: Mon, 2 Nov 2026 10:00:00 +0100\r\n\
\r\n\
Bonjour, plus rien ne marche.\r\n";
        let m = parse(raw).unwrap();
        assert_eq!(m.message_id.as_deref(), Some("abc@example.com"));
        assert_eq!(m.from.as_ref().unwrap().email, "rene@example.com");
        assert_eq!(m.from.as_ref().unwrap().name.as_deref(), Some("René"));
        assert_eq!(m.to.len(), 2);
        assert_eq!(m.cc[0].email, "boss@example.com");
        assert_eq!(m.subject, "Problème de sauvegarde");
        assert_eq!(m.in_reply_to, vec!["prev@desk.test"]);
        assert_eq!(m.references, vec!["first@desk.test", "prev@desk.test"]);
        assert_eq!(m.return_path.as_deref(), Some(""));
        assert!(m.text.contains("plus rien ne marche"));
        assert_eq!(
            m.referenced_ids().collect::<Vec<_>>(),
            vec!["prev@desk.test", "prev@desk.test", "first@desk.test"]
        );
    }

    #[test]
    fn encoded_words_cannot_smuggle_line_breaks() {
        let raw =
            b"From: =?utf-8?b?RXZlDQpCY2M6IHZpY3RpbTJAZXZpbC50ZXN0AA==?= <eve@example.com>\r\n\
Subject: =?utf-8?b?SGVscA0KQmNjOiB2aWN0aW1AZXZpbC50ZXN0DQpYLUluamVjdGVkOiB5ZXM=?=\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain\r\n\
\r\n\
hi\r\n\
--b\r\n\
Content-Type: application/pdf\r\n\
Content-Disposition: attachment; filename=\"=?utf-8?b?YQ0KYi5wZGY=?=\"\r\n\
\r\n\
x\r\n\
--b--\r\n";
        let m = parse(raw).unwrap();
        assert_eq!(
            m.subject, "Help Bcc: victim@evil.test X-Injected: yes",
            "one line, nothing lost"
        );
        assert_eq!(
            m.from.as_ref().unwrap().name.as_deref(),
            Some("Eve Bcc: victim2@evil.test")
        );
        assert_eq!(m.attachments[0].filename.as_deref(), Some("a b.pdf"));
    }

    #[test]
    fn message_ids_are_one_token() {
        assert_eq!(clean_id(" <ab\r\n c\0@example.com> "), "abc@example.com");
    }

    #[test]
    fn html_only_becomes_text() {
        let raw = b"From: a@b.c\r\nSubject: x\r\nContent-Type: text/html\r\n\r\n<p>Hello <b>world</b></p>";
        let m = parse(raw).unwrap();
        assert!(m.text.contains("Hello"));
        assert!(!m.text.contains("<b>"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(parse(b"").unwrap_err(), ParseError::Empty);
        assert_eq!(parse(b"  \r\n").unwrap_err(), ParseError::Empty);
        for junk in [
            &b"\0\0\0\xff\xfe"[..],
            b"no colon here at all",
            b"\x00:\x00\r\n\r\n",
        ] {
            let _ = parse(junk);
        }
    }
}
