//! URLs: which ones a message may keep, and finding them in free text.

use std::borrow::Cow;

pub const LINK_REMOVED: &str = "[link removed]";

/// Whether `host` is one of `allowlist`'s domains or a subdomain of one.
pub fn host_allowed(host: &str, allowlist: &[String]) -> bool {
    let host = host.trim_end_matches('.');
    !host.is_empty()
        && allowlist.iter().any(|d| {
            // Bytes, not str slices: a non-ASCII host need not split on a char boundary.
            let (host, d) = (host.as_bytes(), d.trim_start_matches('.').as_bytes());
            !d.is_empty()
                && host.len() >= d.len()
                && host[host.len() - d.len()..].eq_ignore_ascii_case(d)
                && (host.len() == d.len() || host[host.len() - d.len() - 1] == b'.')
        })
}

/// Browsers strip leading/trailing C0 controls and spaces, and every tab and
/// newline inside a URL; do the same before judging one.
pub fn normalize(url: &str) -> Cow<'_, str> {
    let t = url.trim_matches(|c: char| c <= ' ');
    if memchr::memchr3(b'\t', b'\n', b'\r', t.as_bytes()).is_some() {
        Cow::Owned(t.chars().filter(|c| !matches!(c, '\t' | '\n' | '\r')).collect())
    } else {
        Cow::Borrowed(t)
    }
}

/// The scheme of a URL, lower-cased, if it has one.
pub fn scheme(url: &str) -> Option<String> {
    let (s, _) = url.split_once(':')?;
    let ok = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    ok.then(|| s.to_ascii_lowercase())
}

/// An `http(s)` URL on an allowlisted host. Anything odd (user info, percent
/// signs or non-ASCII in the host, backslashes) is refused rather than parsed
/// differently from a browser.
pub fn is_allowed_web_url(url: &str, allowlist: &[String]) -> bool {
    if allowlist.is_empty() {
        return false;
    }
    let url = normalize(url);
    let Some(scheme) = scheme(&url) else {
        return false;
    };
    if scheme != "http" && scheme != "https" {
        return false;
    }
    let rest = &url[scheme.len() + 1..];
    let Some(rest) = rest.strip_prefix("//") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or("");
    if authority.contains('@') || authority.contains('%') {
        return false;
    }
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    };
    host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') && host_allowed(host, allowlist)
}

/// An image source that loads nothing from the network: `cid:`, or a `data:`
/// raster image (SVG can reference further resources, so it is not kept).
pub fn is_local_image(url: &str) -> bool {
    let url = normalize(url);
    let lower = url.get(..20).unwrap_or(&url).to_ascii_lowercase();
    lower.starts_with("cid:") || (lower.starts_with("data:image/") && !lower.starts_with("data:image/svg"))
}

/// Domains written without a scheme are links too (`myshop.com`); these
/// top-level domains are recognised. Words that are common file extensions or
/// English words (`.in`, `.it`, `.pl`, `.md`, `.zip`…) are left out.
const TLDS: &[&str] = &[
    "com", "net", "org", "info", "biz", "io", "co", "me", "tv", "cc", "ly", "gl", "gg", "ai", "app", "dev", "xyz",
    "top", "club", "online", "site", "website", "shop", "store", "link", "click", "live", "blog", "page", "tech",
    "space", "art", "email", "kr", "jp", "cn", "uk", "de", "fr", "es", "nl", "ru", "br", "au", "ca", "us", "eu", "ch",
    "se", "dk", "fi", "cz", "hk", "tw", "sg", "my", "th", "vn", "ph", "nz", "mx", "ar", "cl", "tr", "ua", "gr", "pt",
    "ro", "hu", "ie", "il", "za", "ae", "ir", "pk", "ng", "ke", "eg", "ws", "fm", "to", "icu", "vip", "pro", "mobi",
    "asia", "global", "world", "today", "news", "one", "kim",
];

fn is_dot(c: char) -> bool {
    matches!(c, '.' | '\u{3002}' | '\u{FF0E}' | '\u{FF61}')
}

fn is_label_char(c: char) -> bool {
    c.is_alphanumeric() || c == '-'
}

/// Characters that end a URL in free text.
fn ends_url(c: char) -> bool {
    if c.is_ascii() {
        return ENDS_URL_ASCII[c as usize];
    }
    c.is_whitespace() || c.is_control()
}

/// [`ends_url`] for ASCII: whitespace and controls (all at or below the space, or DEL),
/// and the characters no URL holds unescaped.
const ENDS_URL_ASCII: [bool; 128] = {
    let mut t = [false; 128];
    let mut i = 0;
    while i < 128 {
        t[i] = i <= b' ' as usize || i == 0x7f;
        i += 1;
    }
    let stops = b"<>\"'`{}|\\^[]";
    let mut k = 0;
    while k < stops.len() {
        t[stops[k] as usize] = true;
        k += 1;
    }
    t
};

/// The offset of the first character at or after `from` for which
/// `ends_url(c) == ends`, bytewise over ASCII.
fn next_where(text: &str, from: usize, ends: bool) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = from;
    while i < b.len() {
        if b[i].is_ascii() {
            if ENDS_URL_ASCII[b[i] as usize] == ends {
                return Some(i);
            }
            i += 1;
        } else {
            let c = text[i..].chars().next()?;
            if ends_url(c) == ends {
                return Some(i);
            }
            i += c.len_utf8();
        }
    }
    None
}

/// Whether a run could hold a link at all: a scheme separator or a dot.
fn may_hold_link(s: &str) -> bool {
    let b = s.as_bytes();
    let scheme = |i: usize| b[i + 1..].starts_with(b"//");
    let ascii = if b.len() < MEMCHR_MIN {
        // Most runs are words: a plain loop costs less than setting up memchr twice.
        b.iter().enumerate().any(|(i, &c)| c == b'.' || c == b':' && scheme(i))
    } else {
        memchr::memchr(b'.', b).is_some() || memchr::memchr_iter(b':', b).any(scheme)
    };
    ascii || (!s.is_ascii() && s.contains(is_dot))
}

/// Runs shorter than this are searched byte by byte.
const MEMCHR_MIN: usize = 32;

/// Replaces links to non-allowlisted hosts in free text with `[link removed]`:
/// `scheme://…`, `www.…` and bare domains on a known top-level domain,
/// with their paths. Returns the text and how many were removed.
pub fn redact_urls<'t>(text: &'t str, allowlist: &[String]) -> (Cow<'t, str>, u32) {
    let mut out = String::new();
    let mut last = 0;
    let mut count = 0;
    let mut pos = 0;
    if !may_hold_link(text) {
        return (Cow::Borrowed(text), 0);
    }
    let b = text.as_bytes();
    // ASCII text: only the runs around a dot or a colon can hold a link, so those are
    // found, not every word. Otherwise every run is looked at (the dots of other scripts).
    let mut hits = text.is_ascii().then(|| memchr::memchr2_iter(b'.', b':', b));
    while pos < text.len() {
        // Next candidate run: a maximal stretch of non-terminating characters.
        let (run_start, run_end) = match &mut hits {
            Some(hits) => {
                let Some(hit) = hits.find(|&h| h >= pos) else {
                    break;
                };
                let start = b[pos..hit].iter().rposition(|&c| ENDS_URL_ASCII[c as usize]).map_or(pos, |i| pos + i + 1);
                (start, next_where(text, hit, true).unwrap_or(text.len()))
            }
            None => {
                let Some(start) = next_where(text, pos, false) else {
                    break;
                };
                (start, next_where(text, start, true).unwrap_or(text.len()))
            }
        };
        let run = &text[run_start..run_end];
        pos = run_end;
        if !may_hold_link(run) {
            continue;
        }
        for (s, e, host) in find_in_run(run) {
            let (s, e) = (run_start + s, run_start + e);
            if s < last || host_allowed(&host, allowlist) {
                continue;
            }
            out.push_str(&text[last..s]);
            out.push_str(LINK_REMOVED);
            last = e;
            count += 1;
        }
    }
    if count == 0 {
        return (Cow::Borrowed(text), 0);
    }
    out.push_str(&text[last..]);
    (Cow::Owned(out), count)
}

/// Links in one whitespace-free run: (start, end, host) in run offsets.
fn find_in_run(run: &str) -> Vec<(usize, usize, String)> {
    let mut found = Vec::new();
    if let Some(i) = run.find("://") {
        let start = run[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |j| j + run[j..].chars().next().map_or(1, char::len_utf8));
        let after = &run[i + 3..];
        let authority = after.split(['/', '?', '#', '\\']).next().unwrap_or("");
        let host = authority.rsplit('@').next().unwrap_or("");
        let host = host.split(':').next().unwrap_or("").to_lowercase();
        // Anything odd in the authority (user info) counts as not allowlisted.
        let host = if authority.contains('@') { String::new() } else { host };
        let end = start + trim_tail(&run[start..]);
        found.push((start, end, host));
        return found;
    }
    // Host-like tokens: labels joined by dots.
    let mut i = 0;
    while i < run.len() {
        let Some(s) = run[i..].find(is_label_char).map(|k| i + k) else {
            break;
        };
        let mut e = s;
        let mut labels = Vec::new();
        let mut label_start = s;
        for (k, c) in run[s..].char_indices() {
            let at = s + k;
            if is_label_char(c) {
                e = at + c.len_utf8();
            } else if is_dot(c) && at == e && at > label_start {
                labels.push(&run[label_start..at]);
                label_start = at + c.len_utf8();
            } else {
                break;
            }
        }
        if e > label_start {
            labels.push(&run[label_start..e]);
        }
        // Preceded by '@' means the domain of an address (handled elsewhere).
        let after_at = run[..s].ends_with('@');
        let www = labels.first().is_some_and(|l| l.eq_ignore_ascii_case("www"));
        let tld_ok = labels.len() >= 2 && labels.last().is_some_and(|t| TLDS.iter().any(|x| x.eq_ignore_ascii_case(t)));
        if !after_at && ((www && labels.len() >= 2) || tld_ok) {
            let host: String = labels.join(".").to_lowercase();
            // A path, port or query after the host belongs to the link.
            let mut end = e;
            if run[e..].starts_with(['/', ':', '?', '#']) {
                end = e + trim_tail(&run[e..]);
            }
            found.push((s, end, host));
            i = end.max(s + 1);
        } else {
            i = e.max(s + run[s..].chars().next().map_or(1, char::len_utf8));
        }
    }
    found
}

/// The length of `s` without trailing sentence punctuation (and an unbalanced `)`).
fn trim_tail(s: &str) -> usize {
    let mut end = s.len();
    loop {
        let Some(c) = s[..end].chars().next_back() else {
            return end;
        };
        let unbalanced_paren = c == ')' && s[..end].matches('(').count() < s[..end].matches(')').count();
        if matches!(c, '.' | ',' | ';' | ':' | '!' | '?' | '。' | '、') || unbalanced_paren {
            end -= c.len_utf8();
        } else {
            return end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow() -> Vec<String> {
        vec!["cdn.market.example".into()]
    }

    fn r(s: &str) -> String {
        redact_urls(s, &allow()).0.into_owned()
    }

    #[test]
    fn removes_links_keeps_allowlisted() {
        for (i, want) in [
            ("see https://evil.example/a?b=c.", "see [link removed]."),
            ("(http://evil.example/x)", "([link removed])"),
            ("go to www.myshop.kr now", "go to [link removed] now"),
            ("visit myshop.com/sale!", "visit [link removed]!"),
            ("홈페이지 myshop.co.kr 방문", "홈페이지 [link removed] 방문"),
            ("ftp://files.example.net/x", "[link removed]"),
            ("link:https://evil.example", "link:[link removed]"),
            ("shop。com", "[link removed]"),
            ("https://cdn.market.example/logo.png ok", "https://cdn.market.example/logo.png ok"),
            ("https://img.cdn.market.example/x", "https://img.cdn.market.example/x"),
            ("https://cdn.market.example@evil.example/", "[link removed]"),
            ("https://cdn.market.example.evil.example/", "[link removed]"),
            // Found by `cargo fuzz run headers`: a non-ASCII host of the
            // allowlisted domain's length used to panic (slice off a char boundary).
            ("https://a\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}/ x", "[link removed] x"),
        ] {
            assert_eq!(r(i), want, "{i:?}");
        }
    }

    #[test]
    fn the_ascii_table_is_the_definition() {
        for b in 0u8..128 {
            let c = b as char;
            let want = c.is_whitespace()
                || c.is_control()
                || matches!(c, '<' | '>' | '"' | '\'' | '`' | '{' | '}' | '|' | '\\' | '^' | '[' | ']');
            assert_eq!(ends_url(c), want, "{c:?}");
        }
        // Runs are cut at non-ASCII spaces too.
        assert_eq!(r("see\u{3000}www.myshop.kr\u{a0}now"), "see\u{3000}[link removed]\u{a0}now");
    }

    #[test]
    fn keeps_file_names_versions_and_prose() {
        for keep in [
            "invoice.pdf",
            "report.docx and photo.jpeg",
            "version 1.2.3",
            "e.g. this. And that.",
            "total 3.50 USD",
            "shop.com.pdf",
            "[email removed]",
        ] {
            assert_eq!(r(keep), keep, "{keep:?}");
        }
    }

    #[test]
    fn judges_resource_urls() {
        let a = allow();
        assert!(is_allowed_web_url("https://cdn.market.example/a.png", &a));
        assert!(is_allowed_web_url(" https://CDN.market.example:443/a ", &a));
        assert!(!is_allowed_web_url("https://cdn.market.example@evil.example/", &a));
        assert!(!is_allowed_web_url("https://cdn.market.example%2eevil.example/", &a));
        assert!(!is_allowed_web_url("//cdn.market.example/a.png", &a));
        assert!(!is_allowed_web_url("javascript:alert(1)", &a));
        assert!(!is_allowed_web_url("https://evil.example/", &a));
        assert!(!is_allowed_web_url("https://xcdn.market.example/", &a));
        assert!(is_local_image("cid:logo@x"));
        assert!(is_local_image(" CID:logo"));
        assert!(is_local_image("data:image/png;base64,AAAA"));
        assert!(!is_local_image("data:image/svg+xml,<svg/>"));
        assert!(!is_local_image("https://t.example/p.gif"));
    }
}
