//! Finding contact details in free text.

use crate::address::Address;
use std::borrow::Cow;

pub const EMAIL_REMOVED: &str = "[email removed]";

/// Replaces every mail address in `text` that is not on the relay domain with
/// `[email removed]`. Relay aliases are how parties reach each other, so they stay.
pub fn redact_emails<'a>(text: &'a str, relay_domain: &str) -> Cow<'a, str> {
    if !text.contains('@') {
        return Cow::Borrowed(text);
    }
    let is_local = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c);
    let is_domain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (at, _) in text.match_indices('@') {
        if at < last {
            continue;
        }
        let start = text[last..at]
            .char_indices()
            .rev()
            .find(|(_, c)| !is_local(*c))
            .map_or(last, |(i, c)| last + i + c.len_utf8());
        let end = text[at + 1..].find(|c: char| !is_domain(c)).map_or(text.len(), |i| at + 1 + i);
        let candidate = text[start..end].trim_matches('.');
        let Ok(addr) = Address::parse(candidate) else {
            continue;
        };
        if addr.domain() == relay_domain {
            continue;
        }
        let start = start + text[start..end].find(candidate).unwrap_or(0);
        out.push_str(&text[last..start]);
        out.push_str(EMAIL_REMOVED);
        last = start + candidate.len();
    }
    if last == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[last..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_outside_addresses_and_keeps_aliases() {
        let t = "Re: order for Bob.Smith@Gmail.com (alias abcdefghijklmno@m.example.com).";
        assert_eq!(
            redact_emails(t, "m.example.com"),
            "Re: order for [email removed] (alias abcdefghijklmno@m.example.com)."
        );
        assert!(matches!(redact_emails("no address here", "m.example.com"), Cow::Borrowed(_)));
        assert_eq!(redact_emails("a@b.example,c@d.example", "m.example.com"), "[email removed],[email removed]");
        assert_eq!(redact_emails("twitter @handle", "m.example.com"), "twitter @handle");
        // A multi-byte character right before the address (this used to panic).
        assert_eq!(redact_emails("연락처:bob@gmail.com 으로", "m.example.com"), "연락처:[email removed] 으로");
        assert_eq!(redact_emails("é@x.example é", "m.example.com"), "é@x.example é");
    }
}
