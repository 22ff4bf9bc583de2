//! Free text (plain-text parts, HTML text nodes and attribute values, file
//! names): contact details and links.

use super::Removed;
use super::phone::redact_phones;
use super::url::redact_urls;
use crate::rewrite::contact::{EMAIL_REMOVED, redact_emails};
use std::borrow::Cow;

/// What the text rules remove, for one direction.
#[derive(Clone, Debug)]
pub struct Rules<'a> {
    pub emails: bool,
    pub phones: bool,
    pub links: bool,
    /// Lower-cased relay domain: its aliases stay.
    pub relay_domain: &'a str,
    pub allowlist: &'a [String],
}

impl Rules<'_> {
    pub fn any(&self) -> bool {
        self.emails || self.phones || self.links
    }
}

/// Applies the rules to `text`: addresses first (so that their domains are not
/// taken for links), then links, then phone numbers (so that digits inside a
/// removed link are not counted twice). Borrowed when nothing changed.
pub fn scrub<'t>(text: &'t str, rules: &Rules<'_>, removed: &mut Removed) -> Cow<'t, str> {
    let mut cur = Cow::Borrowed(text);
    if rules.emails {
        let (t, n) = emails(&cur, rules.relay_domain);
        if n > 0 {
            removed.emails += n;
            cur = Cow::Owned(t.into_owned());
        }
    }
    if rules.links {
        let (t, n) = redact_urls(&cur, rules.allowlist);
        if n > 0 {
            removed.links += n;
            cur = Cow::Owned(t.into_owned());
        }
    }
    if rules.phones {
        let (t, n) = redact_phones(&cur);
        if n > 0 {
            removed.phones += n;
            cur = Cow::Owned(t.into_owned());
        }
    }
    cur
}

/// Mail addresses other than relay aliases: the project's `redact_emails`
/// for ASCII text, then a scanner for what it does not parse (non-ASCII local
/// parts or domains, full-width `＠`, dotted-out local parts like `bo..b@`).
/// `redact_emails` slices at byte offsets that are only char boundaries in
/// ASCII text, so non-ASCII text goes to the second scanner alone.
pub fn emails<'t>(text: &'t str, relay_domain: &str) -> (Cow<'t, str>, u32) {
    if at_signs(text).next().is_none() {
        return (Cow::Borrowed(text), 0);
    }
    let (first, n_first) = if text.is_ascii() {
        let before = count(text);
        let t = redact_emails(text, relay_domain);
        let n = count(&t) - before;
        (t, n as u32)
    } else {
        (Cow::Borrowed(text), 0)
    };
    match redact_unicode_emails(&first, relay_domain) {
        (Cow::Borrowed(_), 0) => (first, n_first),
        (t, n) => (Cow::Owned(t.into_owned()), n_first + n),
    }
}

/// The at signs in `text` with their byte offsets: `@`, full-width `＠` and small `﹫`, the
/// only other two, which both start with the byte 0xEF. Found bytewise: a scan by `char` costs
/// several times as much on the long text nodes of HTML mail (a `<style>` block's `@media`).
fn at_signs(text: &str) -> impl Iterator<Item = (usize, &'static str)> + '_ {
    let b = text.as_bytes();
    memchr::memchr2_iter(b'@', 0xEF, b).filter_map(move |i| match b[i..] {
        [b'@', ..] => Some((i, "@")),
        [0xEF, 0xBC, 0xA0, ..] => Some((i, "＠")),
        [0xEF, 0xB9, 0xAB, ..] => Some((i, "﹫")),
        _ => None,
    })
}

fn count(s: &str) -> usize {
    s.matches(EMAIL_REMOVED).count()
}

fn redact_unicode_emails<'t>(text: &'t str, relay_domain: &str) -> (Cow<'t, str>, u32) {
    let is_local = |c: char| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c);
    let is_domain = |c: char| c.is_alphanumeric() || c == '-' || c == '.' || c == '。';
    let mut out = String::new();
    let mut last = 0;
    let mut n = 0;
    for (at, c) in at_signs(text) {
        if at < last {
            continue;
        }
        let start = text[last..at]
            .rfind(|c: char| !is_local(c))
            .map_or(last, |i| last + i + text[last + i..].chars().next().map_or(1, char::len_utf8));
        let after = at + c.len();
        let end = text[after..].find(|c: char| !is_domain(c)).map_or(text.len(), |i| after + i);
        let local = text[start..at].trim_matches('.');
        let domain = text[after..end].trim_end_matches(['.', '。']);
        // A mail client reads `a@b.example。.x` and `a@b.example。-x` as the address
        // `a@b.example`: the domain ends where a label would be empty or start with a hyphen.
        let is_dot = |c: char| c == '.' || c == '。';
        let cut =
            domain.char_indices().zip(domain.chars().skip(1)).find(|&((_, a), b)| is_dot(a) && (is_dot(b) || b == '-'));
        let domain = cut.map_or(domain, |((i, _), _)| &domain[..i]);
        let labels: Vec<&str> = domain.split(['.', '。']).collect();
        let plausible =
            !local.is_empty() && labels.len() >= 2 && labels.iter().all(|l| !l.is_empty() && !l.starts_with('-'));
        if !plausible || domain.eq_ignore_ascii_case(relay_domain) {
            continue;
        }
        let s = start + text[start..at].find(local).unwrap_or(0);
        out.push_str(&text[last..s]);
        out.push_str(EMAIL_REMOVED);
        last = after + domain.len();
        n += 1;
    }
    if n == 0 {
        return (Cow::Borrowed(text), 0);
    }
    out.push_str(&text[last..]);
    (Cow::Owned(out), n)
}

/// Undoes `format=flowed` (RFC 3676) soft line breaks, so that an address or
/// link split across them is seen whole.
pub fn unflow(text: &str, delsp: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut lines = text.split('\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let is_sig = line == "-- ";
        if line.ends_with(' ') && !is_sig && lines.peek().is_some() {
            out.push_str(if delsp { &line[..line.len() - 1] } else { line });
        } else {
            out.push_str(line);
            if lines.peek().is_some() {
                out.push_str("\r\n");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules<'a>(allow: &'a [String]) -> Rules<'a> {
        Rules { emails: true, phones: true, links: true, relay_domain: "m.example.com", allowlist: allow }
    }

    #[test]
    fn an_address_ends_where_its_domain_would_have_an_empty_label() {
        // Found by the headers fuzz target: `。` then `.` hid the address whole.
        let (t, n) = emails("n mlo@mp.ai。.g.ezen。Sjo", "m.example.com");
        assert_eq!((t.as_ref(), n), ("n [email removed]。.g.ezen。Sjo", 1));
        let (t, n) = emails("write to bob@gmail.com..x or 하 bob@gmail.com。。", "m.example.com");
        assert_eq!((t.as_ref(), n), ("write to [email removed]..x or 하 [email removed]。。", 2));
    }

    #[test]
    fn an_address_ends_where_its_domain_would_have_a_label_starting_with_a_hyphen() {
        // Found by the headers fuzz target: `。-` after the domain hid the address whole.
        for (text, want) in [
            ("n lo@m.ai。-.Z", "n [email removed]。-.Z"),
            ("~%lo@mp.ai。-Sj a", "[email removed]。-Sj a"),
            ("xxnoezemittedmpPo@m.a.ai。-2229bt: 111u", "[email removed]。-2229bt: 111u"),
            ("하 bob@gmail.com.-x", "하 [email removed].-x"),
            ("write to bob@gmail.com.-x", "write to [email removed].-x"),
        ] {
            let (t, n) = emails(text, "m.example.com");
            assert_eq!((t.as_ref(), n), (want, 1), "{text:?}");
        }
        // A domain whose first label starts with a hyphen is no domain.
        assert_eq!(emails("하 bob@-x.com", "m.example.com").1, 0);
    }

    #[test]
    fn scrubs_everything_and_counts() {
        let mut r = Removed::default();
        let t = scrub(
            "Mail bob@gmail.com or abcdefghijklmno@m.example.com, call 010-1234-5678, see https://shop.example/x",
            &rules(&[]),
            &mut r,
        );
        assert_eq!(
            t,
            "Mail [email removed] or abcdefghijklmno@m.example.com, call [phone removed], see [link removed]"
        );
        assert_eq!((r.emails, r.phones, r.links), (1, 1, 1));
        let mut r = Removed::default();
        assert!(matches!(
            scrub("Order 114-1234567-1234567 ships 2026-11-23 for $1,234.56", &rules(&[]), &mut r),
            Cow::Borrowed(_)
        ));
        assert!(r.is_empty());
    }

    #[test]
    fn unicode_and_full_width_addresses() {
        let (t, n) = emails("홍길동@네이버.com and bob＠gmail.com", "m.example.com");
        assert_eq!(t, "[email removed] and [email removed]");
        assert_eq!(n, 2);
        let (t, n) = emails("alias＠m.example.com", "m.example.com");
        assert_eq!((t.as_ref(), n), ("alias＠m.example.com", 0));
        let (t, n) = emails("bo..b@gmail.com, x@M.Example.com", "m.example.com");
        assert_eq!((t.as_ref(), n), ("[email removed], x@M.Example.com", 1));
        // Text before the address that is not ASCII (redact_emails would slice mid-char).
        let (t, _) = emails("연락처:bob@gmail.com", "m.example.com");
        assert_eq!(t, "연락처:[email removed]");
    }

    #[test]
    fn every_at_sign_is_found_and_nothing_else_that_starts_with_0xef() {
        // `Ａ` (U+FF21), `﹪` (U+FE6A) and a BOM share the lead byte of `＠` and `﹫`.
        let (t, n) = emails("\u{feff}Ａ bob﹫gmail.com ﹪ x＠b.example", "m.example.com");
        assert_eq!((t.as_ref(), n), ("\u{feff}Ａ [email removed] ﹪ [email removed]", 2));
        assert_eq!(emails("ＡＢ﹪\u{feff} b.example", "m.example.com").1, 0);
        let found: Vec<_> = at_signs("a@b ＠﹫Ａ\u{feff}").collect();
        assert_eq!(found, [(1, "@"), (4, "＠"), (7, "﹫")]);
    }

    #[test]
    fn links_only_when_asked() {
        let mut r = Removed::default();
        let only_contacts = Rules { links: false, ..rules(&[]) };
        assert_eq!(
            scrub("https://x.example/a bob@x.example", &only_contacts, &mut r),
            "https://x.example/a [email removed]"
        );
    }

    #[test]
    fn unflows() {
        assert_eq!(unflow("bob@gm \r\nail.com\r\nnext", true), "bob@gmail.com\r\nnext");
        assert_eq!(unflow("a \r\nb", false), "a b");
        assert_eq!(unflow("-- \r\nsig", false), "-- \r\nsig");
    }
}
