//! Sender authentication, pure: the verdict on whether a message's From
//! domain really sent it, from the Authentication-Results headers (RFC
//! 8601) of servers the config trusts, or from the daemon's own DKIM check
//! (made in the shell, handed in here as results), and what the trust
//! policy makes of it.
//!
//! What a sender can type is never a verdict. An Authentication-Results
//! header counts only when its authserv-id is one the config lists, and
//! only in the topmost run of such headers: the trusted server adds its
//! own above every header of the message as it came, so a copy the sender
//! put in lies below it, and below the trace headers: one among the
//! message's own headers (From, Subject, ...) never counts (RFC 8601
//! section 5 also has the border server remove copies claiming its id). A method reported twice in that run, a
//! malformed or oversized header, or a DMARC result about another From
//! domain gives no pass.

use serde::{Deserialize, Serialize};

/// Headers a message starts with as its author wrote it (RFC 5322); a
/// server in transit adds its trace headers above them.
const OWN_HEADERS: &[&str] = &[
    "From",
    "Sender",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Reply-To",
    "In-Reply-To",
    "References",
];

/// Longest Authentication-Results value read; a longer one is malformed.
const MAX_VALUE: usize = 3_000;
/// Authentication-Results headers looked at, at most.
const MAX_HEADERS: usize = 20;

/// A method's result (RFC 8601 section 2.7; SPF's hardfail is fail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Res {
    Pass,
    Fail,
    Softfail,
    Neutral,
    #[default]
    None,
    Temperror,
    Permerror,
    Policy,
}

impl Res {
    fn parse(s: &str) -> Option<Res> {
        Some(match s.to_ascii_lowercase().as_str() {
            "pass" => Res::Pass,
            "fail" | "hardfail" => Res::Fail,
            "softfail" => Res::Softfail,
            "neutral" => Res::Neutral,
            "none" => Res::None,
            "temperror" => Res::Temperror,
            "permerror" => Res::Permerror,
            "policy" => Res::Policy,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Res::Pass => "pass",
            Res::Fail => "fail",
            Res::Softfail => "softfail",
            Res::Neutral => "neutral",
            Res::None => "none",
            Res::Temperror => "temperror",
            Res::Permerror => "permerror",
            Res::Policy => "policy",
        }
    }
}

/// One DKIM signature's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dkim {
    /// The signing domain (d=), lowercased.
    pub domain: String,
    pub result: Res,
    /// Whether `domain` aligns with the From domain (relaxed, RFC 7489).
    pub aligned: bool,
}

/// Who vouches for a message's From domain, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Verdict {
    /// "header mx.example.com" (a trusted Authentication-Results), "own
    /// DKIM check", or "none".
    pub source: String,
    pub dmarc: Res,
    pub dkim: Vec<Dkim>,
    pub spf: Res,
    /// The From domain the verdict is about.
    pub from_domain: Option<String>,
    /// Why there is no (or only part of a) verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Verdict {
    pub fn none(from_domain: Option<&str>, why: &str) -> Verdict {
        Verdict {
            source: "none".into(),
            from_domain: from_domain.map(str::to_string),
            note: Some(why.to_string()),
            ..Verdict::default()
        }
    }

    /// DMARC pass, or a DKIM pass whose domain aligns with From: the From
    /// domain sent this message.
    pub fn authenticated(&self) -> bool {
        self.from_domain.is_some()
            && (self.dmarc == Res::Pass
                || self.dkim.iter().any(|d| d.result == Res::Pass && d.aligned))
    }

    /// One line: "dmarc=pass dkim=pass(example.com, aligned) spf=none
    /// (header mx.example.com)".
    pub fn summary(&self) -> String {
        let mut s = format!("dmarc={}", self.dmarc.as_str());
        if self.dkim.is_empty() {
            s.push_str(" dkim=none");
        }
        for d in &self.dkim {
            s.push_str(&format!(
                " dkim={}({}{})",
                d.result.as_str(),
                d.domain,
                if d.aligned { ", aligned" } else { "" }
            ));
        }
        s.push_str(&format!(" spf={} ({}", self.spf.as_str(), self.source));
        if let Some(n) = &self.note {
            s.push_str(&format!("; {n}"));
        }
        s.push(')');
        s
    }
}

/// Relaxed alignment (RFC 7489 section 3.1.1): the two domains share their
/// organisational domain, by the Public Suffix List.
pub fn aligned(signing: &str, from: &str) -> bool {
    let (a, b) = (signing.to_ascii_lowercase(), from.to_ascii_lowercase());
    let (a, b) = (a.trim_end_matches('.'), b.trim_end_matches('.'));
    if a.is_empty() || b.is_empty() {
        return false;
    }
    a == b
        || matches!(
            (psl::domain_str(a), psl::domain_str(b)),
            (Some(x), Some(y)) if x == y
        )
}

/// One result of a parsed header: method, result, properties
/// (`header.d`, `header.from`, ..., keys lowercased).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ResInfo {
    method: String,
    result: Res,
    props: Vec<(String, String)>,
}

impl ResInfo {
    fn prop(&self, key: &str) -> Option<&str> {
        self.props
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A parsed Authentication-Results value: its authserv-id (lowercased;
/// "" when the header has none, as Exchange Online writes it) and results.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Header {
    authserv_id: String,
    results: Vec<ResInfo>,
}

/// The verdict of the trusted servers' headers, or None when no trusted
/// server added one. `headers` are the message's, top first.
pub fn from_headers(
    headers: &[(String, String)],
    trusted: &[String],
    from_domain: Option<&str>,
) -> Option<Verdict> {
    let is_ar = |n: &str| n.eq_ignore_ascii_case("Authentication-Results");
    // The message's own headers start at the first of these: everything
    // from there down is as the sender wrote it, servers only add above.
    let own = headers
        .iter()
        .position(|(n, _)| OWN_HEADERS.iter().any(|o| n.eq_ignore_ascii_case(o)))
        .unwrap_or(headers.len());
    let ars: Vec<(usize, &str)> = headers[..own]
        .iter()
        .enumerate()
        .filter(|(_, (n, _))| is_ar(n))
        .map(|(i, (_, v))| (i, v.as_str()))
        .collect();
    if ars.is_empty() {
        return None;
    }
    let trusted_id = |id: &str| trusted.iter().any(|t| t.eq_ignore_ascii_case(id));
    // The first header whose id is trusted, and the headers right below it
    // (no other header between) whose id is trusted too.
    let mut run: Vec<Header> = Vec::new();
    let mut last: Option<usize> = None;
    for &(i, value) in ars.iter().take(MAX_HEADERS) {
        if last.is_some_and(|l| i != l + 1) {
            break;
        }
        let parsed = if value.len() > MAX_VALUE {
            None
        } else {
            parse(value)
        };
        match parsed {
            Some(h) if trusted_id(&h.authserv_id) => {
                run.push(h);
                last = Some(i);
            }
            // Inside the run, a header that cannot be read may be the
            // trusted server's: nothing in the run counts.
            None if last.is_some() => {
                return Some(Verdict::none(
                    from_domain,
                    "a malformed or oversized Authentication-Results header among the trusted ones",
                ));
            }
            // Another server's, or unreadable, above the trusted run.
            _ if last.is_none() => {}
            // Another server's right below the trusted run ends it.
            _ => break,
        }
    }
    if run.is_empty() {
        if ars
            .iter()
            .any(|(_, v)| v.len() > MAX_VALUE || parse(v).is_none())
            && ars
                .iter()
                .any(|(_, v)| trusted.iter().any(|t| contains_ci(v, t)))
        {
            return Some(Verdict::none(
                from_domain,
                "a malformed or oversized Authentication-Results header",
            ));
        }
        return None;
    }
    let from = from_domain.map(str::to_ascii_lowercase);
    let mut v = Verdict {
        source: if run[0].authserv_id.is_empty() {
            "header without authserv-id (Exchange Online)".to_string()
        } else {
            format!("header {}", run[0].authserv_id)
        },
        from_domain: from.clone(),
        ..Verdict::default()
    };
    let mut notes = Vec::new();
    // Each method must come from one header of the run.
    let reported_by = |m: &str| {
        run.iter()
            .filter(|h| h.results.iter().any(|r| r.method == m))
            .count()
    };
    for method in ["dmarc", "dkim", "spf"] {
        if reported_by(method) > 1 {
            notes.push(format!("{method} reported twice: ignored"));
            continue;
        }
        for r in run
            .iter()
            .flat_map(|h| &h.results)
            .filter(|r| r.method == method)
        {
            match method {
                "dmarc" => {
                    let about = r.prop("header.from").map(str::to_ascii_lowercase);
                    if about.is_some() && about != from {
                        notes.push(format!(
                            "dmarc result about {}, not the From domain",
                            about.unwrap_or_default()
                        ));
                    } else if v.dmarc == Res::None {
                        v.dmarc = r.result;
                    } else if v.dmarc != r.result {
                        notes.push("conflicting dmarc results: ignored".into());
                        v.dmarc = Res::None;
                    }
                }
                "dkim" => {
                    let domain = r
                        .prop("header.d")
                        .map(str::to_string)
                        .or_else(|| {
                            r.prop("header.i")
                                .and_then(|i| i.rsplit_once('@').map(|(_, d)| d.to_string()))
                        })
                        .map(|d| d.to_ascii_lowercase());
                    if let Some(domain) = domain {
                        let aligned = from.as_deref().is_some_and(|f| aligned(&domain, f));
                        v.dkim.push(Dkim {
                            domain,
                            result: r.result,
                            aligned,
                        });
                    }
                }
                _ => {
                    if v.spf == Res::None {
                        v.spf = r.result;
                    }
                }
            }
        }
    }
    if !notes.is_empty() {
        v.note = Some(notes.join("; "));
    }
    Some(v)
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    !needle.is_empty()
        && hay
            .to_ascii_lowercase()
            .contains(&needle.to_ascii_lowercase())
}

/// The value with its comments removed (nested, with quoted pairs), or
/// None when they do not balance. Quoted strings are kept as they are.
fn strip_comments(v: &str) -> Option<String> {
    let mut out = String::with_capacity(v.len());
    let mut depth = 0usize;
    let mut quoted = false;
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if depth > 0 || quoted => {
                let next = chars.next()?;
                if depth == 0 {
                    out.push(c);
                    out.push(next);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    out.push(' ');
                }
            }
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    (depth == 0 && !quoted).then_some(out)
}

/// Splits on `sep` outside quoted strings.
fn split_outside_quotes(s: &str, sep: impl Fn(char) -> bool) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => {
                cur.push(c);
                escaped = true;
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if !quoted && sep(c) => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    parts
}

fn unquote(v: &str) -> String {
    match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => v.to_string(),
    }
}

/// Parses one Authentication-Results value; None when malformed.
fn parse(value: &str) -> Option<Header> {
    let clean = strip_comments(value)?;
    let mut segments = split_outside_quotes(&clean, |c| c == ';').into_iter();
    let first = segments.next()?;
    let first = first.trim();
    let mut results = Vec::new();
    let authserv_id = if first.contains('=') {
        // No authserv-id: the first segment is already a result.
        results.push(resinfo(first)?);
        String::new()
    } else {
        let mut words = first.split_whitespace();
        let id = words.next()?.to_ascii_lowercase();
        // An optional version, a number.
        if let Some(ver) = words.next()
            && !ver.chars().all(|c| c.is_ascii_digit())
        {
            return None;
        }
        if words.next().is_some() || id.contains('"') {
            return None;
        }
        id
    };
    for seg in segments {
        let seg = seg.trim();
        if seg.is_empty() {
            continue;
        }
        if seg.eq_ignore_ascii_case("none") {
            continue;
        }
        results.push(resinfo(seg)?);
    }
    Some(Header {
        authserv_id,
        results,
    })
}

/// `method[/version]=result [reason=...] [ptype.property=value]...`
fn resinfo(seg: &str) -> Option<ResInfo> {
    let words: Vec<String> = split_outside_quotes(seg, char::is_whitespace)
        .into_iter()
        .filter(|w| !w.is_empty())
        .collect();
    let (method, result) = words.first()?.split_once('=')?;
    let method = method.split('/').next()?.trim().to_ascii_lowercase();
    if method.is_empty()
        || !method
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return None;
    }
    let result = Res::parse(result.trim())?;
    let mut props = Vec::new();
    for w in &words[1..] {
        let (k, v) = w.split_once('=')?;
        props.push((k.trim().to_ascii_lowercase(), unquote(v.trim())));
    }
    Some(ResInfo {
        method,
        result,
        props,
    })
}

/// What the trust policy requires of a sender for something to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Require {
    /// DMARC pass or an aligned DKIM pass (the default).
    Authenticated,
    /// The From header alone (the old behaviour: anyone can claim it).
    From,
}

impl Require {
    pub fn met(self, v: &Verdict) -> bool {
        match self {
            Require::Authenticated => v.authenticated(),
            Require::From => true,
        }
    }
}

/// Where an acknowledgement may go when the message has a Reply-To.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyTo {
    /// Only when the sender is authenticated and the Reply-To is in the
    /// From domain (the default); otherwise to the From.
    SameDomain,
    /// Always to the Reply-To (the old behaviour).
    Always,
    /// Never: always to the From.
    Never,
}

/// The domain of an address, lowercased.
pub fn domain_of(address: &str) -> Option<String> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>').to_ascii_lowercase())
        .filter(|d| !d.is_empty())
}

/// Whether the acknowledgement goes to the Reply-To rather than the From.
pub fn ack_to_reply_to(policy: ReplyTo, v: &Verdict, from: &str, reply_to: &str) -> bool {
    match policy {
        ReplyTo::Always => true,
        ReplyTo::Never => false,
        ReplyTo::SameDomain => {
            v.authenticated()
                && domain_of(reply_to).is_some()
                && domain_of(reply_to) == domain_of(from)
        }
    }
}

/// Mail providers whose domain is shared by strangers: an address there
/// says nothing of its owner's organisation. Shipped as the default of
/// `[trust] public_providers`.
pub const PUBLIC_PROVIDERS: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "outlook.com",
    "hotmail.com",
    "hotmail.fr",
    "hotmail.co.uk",
    "live.com",
    "live.fr",
    "msn.com",
    "yahoo.com",
    "yahoo.fr",
    "yahoo.co.uk",
    "ymail.com",
    "aol.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "proton.me",
    "protonmail.com",
    "pm.me",
    "gmx.com",
    "gmx.de",
    "gmx.net",
    "gmx.fr",
    "web.de",
    "mail.com",
    "yandex.com",
    "yandex.ru",
    "mail.ru",
    "zoho.com",
    "fastmail.com",
    "tutanota.com",
    "orange.fr",
    "wanadoo.fr",
    "free.fr",
    "laposte.net",
    "sfr.fr",
    "neuf.fr",
    "bbox.fr",
    "t-online.de",
    "qq.com",
    "163.com",
    "126.com",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn h(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn trusted() -> Vec<String> {
        vec!["mx.desk.test".to_string()]
    }

    const AR: &str = "Authentication-Results";

    #[test]
    fn a_trusted_header_gives_the_verdict() {
        let v = from_headers(
            &h(&[
                ("Received", "from a by mx.desk.test"),
                (
                    AR,
                    "mx.desk.test 1; dkim=pass (2048-bit key; secure) header.d=Example.com header.i=@example.com header.b=\"abc;def\"; spf=pass smtp.mailfrom=example.com; dmarc=pass (p=reject dis=none) header.from=example.com",
                ),
                ("From", "a@example.com"),
            ]),
            &trusted(),
            Some("example.com"),
        )
        .unwrap();
        assert_eq!(v.source, "header mx.desk.test");
        assert_eq!(v.dmarc, Res::Pass);
        assert_eq!(v.spf, Res::Pass);
        assert_eq!(
            v.dkim,
            vec![Dkim {
                domain: "example.com".into(),
                result: Res::Pass,
                aligned: true
            }]
        );
        assert!(v.authenticated());
        assert!(
            v.summary()
                .starts_with("dmarc=pass dkim=pass(example.com, aligned) spf=pass")
        );
    }

    #[test]
    fn a_forged_header_below_the_trusted_one_or_from_another_server_does_not_count() {
        // The trusted server says fail; the sender's copy below says pass.
        let headers = h(&[
            ("Received", "from a by mx.desk.test"),
            (
                AR,
                "mx.desk.test; dkim=none; dmarc=fail header.from=example.com",
            ),
            ("Subject", "x"),
            (
                AR,
                "mx.desk.test; dkim=pass header.d=example.com; dmarc=pass header.from=example.com",
            ),
        ]);
        let v = from_headers(&headers, &trusted(), Some("example.com")).unwrap();
        assert_eq!(v.dmarc, Res::Fail);
        assert!(v.dkim.is_empty());
        assert!(!v.authenticated());
        // With no header of the trusted server on top, a copy among the
        // message's own headers still does not count.
        let headers = h(&[
            ("Received", "from a by mx.desk.test"),
            ("From", "a@example.com"),
            (AR, "mx.desk.test; dmarc=pass header.from=example.com"),
        ]);
        assert_eq!(
            from_headers(&headers, &trusted(), Some("example.com")),
            None
        );
        // Only an untrusted server's header: no verdict at all.
        let headers = h(&[(AR, "evil.example; dmarc=pass header.from=example.com")]);
        assert_eq!(
            from_headers(&headers, &trusted(), Some("example.com")),
            None
        );
        // Right below the trusted one, a copy repeating its method voids it.
        let headers = h(&[
            (AR, "mx.desk.test; dmarc=fail header.from=example.com"),
            (AR, "mx.desk.test; dmarc=pass header.from=example.com"),
        ]);
        let v = from_headers(&headers, &trusted(), Some("example.com")).unwrap();
        assert_eq!(v.dmarc, Res::None);
        assert!(!v.authenticated());
        assert!(v.note.unwrap().contains("dmarc reported twice"));
        // Two headers of the trusted server for different methods (an
        // OpenDKIM and an OpenDMARC milter) make one verdict.
        let headers = h(&[
            (AR, "mx.desk.test; dmarc=pass header.from=example.com"),
            (AR, "mx.desk.test; dkim=pass header.d=mail.example.com"),
        ]);
        let v = from_headers(&headers, &trusted(), Some("example.com")).unwrap();
        assert_eq!(v.dmarc, Res::Pass);
        assert!(v.dkim[0].aligned);
    }

    #[test]
    fn malformed_oversized_and_misdirected_results_never_pass() {
        for bad in [
            "mx.desk.test; dmarc=pass (unclosed comment header.from=example.com",
            "mx.desk.test; dmarc=pass header.from=\"example.com",
            "mx.desk.test; dmarc",
            "mx.desk.test; dmarc=great header.from=example.com",
            "mx.desk.test extra words; dmarc=pass header.from=example.com",
        ] {
            let v = from_headers(&h(&[(AR, bad)]), &trusted(), Some("example.com"));
            assert!(
                !v.as_ref().is_some_and(Verdict::authenticated),
                "{bad}: {v:?}"
            );
            assert_eq!(parse(bad), None, "{bad}");
        }
        let long = format!(
            "mx.desk.test; dmarc=pass header.from=example.com; {}",
            "x=y ".repeat(1000)
        );
        let v = from_headers(&h(&[(AR, &long)]), &trusted(), Some("example.com")).unwrap();
        assert!(!v.authenticated());
        // Trusted, but the run holds an unreadable header.
        let v = from_headers(
            &h(&[
                (AR, "mx.desk.test; dmarc=pass header.from=example.com"),
                (AR, "mx.desk.test; dkim=pass (broken"),
            ]),
            &trusted(),
            Some("example.com"),
        )
        .unwrap();
        assert!(!v.authenticated());
        // DMARC about another domain than the From.
        let v = from_headers(
            &h(&[(AR, "mx.desk.test; dmarc=pass header.from=attacker.example")]),
            &trusted(),
            Some("example.com"),
        )
        .unwrap();
        assert!(!v.authenticated());
        // An unaligned DKIM pass.
        let v = from_headers(
            &h(&[(AR, "mx.desk.test; dkim=pass header.d=attacker.example")]),
            &trusted(),
            Some("example.com"),
        )
        .unwrap();
        assert!(!v.authenticated());
        // No From domain: nothing to authenticate.
        let v = from_headers(
            &h(&[(AR, "mx.desk.test; dmarc=pass header.from=example.com")]),
            &trusted(),
            None,
        )
        .unwrap();
        assert!(!v.authenticated());
    }

    #[test]
    fn a_header_without_authserv_id_and_none_results_parse() {
        let p = parse("spf=pass (sender IP is 1.2.3.4) smtp.mailfrom=contoso.com; dkim=pass (signature was verified) header.d=contoso.com;dmarc=pass action=none header.from=contoso.com;compauth=pass reason=100").unwrap();
        assert_eq!(p.authserv_id, "");
        assert_eq!(p.results.len(), 4);
        let p = parse("example.org 1; none").unwrap();
        assert_eq!(p.authserv_id, "example.org");
        assert!(p.results.is_empty());
    }

    #[test]
    fn alignment_is_relaxed_by_organisational_domain() {
        assert!(aligned("example.com", "example.com"));
        assert!(aligned("mail.example.com", "example.com"));
        assert!(aligned("a.example.com", "b.example.com"));
        assert!(aligned("shop.example.co.uk", "example.co.uk"));
        assert!(!aligned("example.co.uk", "other.co.uk"));
        assert!(!aligned("example.com", "example.net"));
        assert!(!aligned("com", "example.com"));
        assert!(!aligned("", "example.com"));
    }

    #[test]
    fn reply_to_is_followed_only_for_an_authenticated_sender_of_its_domain() {
        let ok = Verdict {
            dmarc: Res::Pass,
            from_domain: Some("example.com".into()),
            ..Verdict::default()
        };
        let none = Verdict::none(Some("example.com"), "no trusted header");
        let p = ReplyTo::SameDomain;
        assert!(ack_to_reply_to(p, &ok, "a@example.com", "team@example.com"));
        assert!(!ack_to_reply_to(
            p,
            &ok,
            "a@example.com",
            "victim@other.example"
        ));
        assert!(!ack_to_reply_to(
            p,
            &none,
            "a@example.com",
            "team@example.com"
        ));
        assert!(ack_to_reply_to(
            ReplyTo::Always,
            &none,
            "a@x.example",
            "b@y.example"
        ));
        assert!(!ack_to_reply_to(
            ReplyTo::Never,
            &ok,
            "a@example.com",
            "b@example.com"
        ));
    }
}
