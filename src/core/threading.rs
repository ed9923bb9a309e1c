//! Ticket references and the subject tag that carries them: `[SUP-000123]`.

/// The human form of a ticket id: prefix, dash, at least six digits.
pub fn reference(prefix: &str, id: i64) -> String {
    format!("{prefix}-{id:06}")
}

/// Finds the first `[PREFIX-digits]` tag in a subject and returns the ticket id.
pub fn find_tag(prefix: &str, subject: &str) -> Option<i64> {
    let mut rest = subject;
    while let Some(open) = rest.find('[') {
        rest = &rest[open + 1..];
        let close = rest.find(']')?;
        let inner = rest[..close].trim();
        if let Some((p, digits)) = inner.split_once('-')
            && p.eq_ignore_ascii_case(prefix)
            && !digits.is_empty()
            && digits.len() <= 12
            && digits.bytes().all(|b| b.is_ascii_digit())
            && let Ok(id) = digits.parse::<i64>()
        {
            return Some(id);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        assert_eq!(reference("SUP", 123), "SUP-000123");
        assert_eq!(reference("SUP", 1234567), "SUP-1234567");
        assert_eq!(find_tag("SUP", "Re: [SUP-000123] Backup"), Some(123));
        assert_eq!(find_tag("SUP", "RE: TR: [sup-000042]"), Some(42));
        assert_eq!(find_tag("SUP", "[P1] [SUP-7] x"), Some(7));
        assert_eq!(find_tag("SUP", "[OTHER-000123] x"), None);
        assert_eq!(find_tag("SUP", "[SUP-] x [SUP-12a]"), None);
        assert_eq!(find_tag("SUP", "[SUP-99999999999999999999]"), None);
        assert_eq!(find_tag("SUP", "[[[[["), None);
    }
}
