//! Shared by the fuzz targets: the milter's view of a raw message, and the
//! scanners that judge what a recipient would see.

use mail_parser::{Addr, HeaderValue, Message, MessageParser, PartType};

pub mod targets;

pub const RELAY: &str = "m.example.com";
/// `content.link_allowlist` in the fuzzed configuration.
pub const ALLOWLIST: &str = "cdn.m.example.com";

/// Splits raw message bytes into header fields and body the way Postfix hands
/// them to a milter: lines end in CRLF (bare LF too), a folded value keeps
/// `"\n"` before each continuation line, the header section ends at the first
/// empty line or the first line that is not a header field, and NUL bytes
/// cannot be passed (C strings).
pub fn split(raw: &[u8]) -> (Vec<(String, String)>, Vec<u8>) {
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut rest = raw;
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = || String::from_utf8_lossy(line).replace('\0', "");
        if line.is_empty() {
            rest = next;
            break;
        } else if line.starts_with(b" ") || line.starts_with(b"\t") {
            let Some(last) = headers.last_mut() else { break };
            last.1.push('\n');
            last.1.push_str(&text());
        } else if let Some(colon) = line.iter().position(|&b| b == b':')
            && colon > 0
            && line[..colon].iter().all(|&b| (33..=126).contains(&b))
        {
            let t = text();
            let (name, value) = t.split_at(t.find(':').unwrap_or(0));
            let value = &value[1..];
            headers.push((name.to_string(), value.strip_prefix(' ').unwrap_or(value).to_string()));
        } else {
            break;
        }
        rest = next;
    }
    // Postfix passes the body with CRLF line ends.
    let mut body = Vec::with_capacity(rest.len() + rest.len() / 32);
    for (i, line) in rest.split(|&b| b == b'\n').enumerate() {
        if i > 0 {
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
    }
    (headers, body)
}

/// `local@domain` addresses in `text` whose domain is not the relay domain
/// and that are not `allowed` (full-width at signs count too).
pub fn foreign_addresses(text: &str, allowed: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (i, c) in text.char_indices().filter(|(_, c)| matches!(c, '@' | '＠' | '﹫')) {
        let local: String =
            text[..i].chars().rev().take_while(|c| c.is_alphanumeric() || "._+-".contains(*c)).collect();
        let local: String = local.chars().rev().collect::<String>().trim_matches('.').to_lowercase();
        let domain: String = text[i + c.len_utf8()..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '.' || *c == '-')
            .collect::<String>()
            .trim_end_matches('.')
            .to_lowercase();
        let labels: Vec<&str> = domain.split('.').collect();
        // A host name a mailbox can have (RFC 1123 labels, a top-level domain
        // of two or more characters with a letter): `x@-.e`, `o@m.----` or the
        // `0E@m.e` of a raw `=0E=0E@m.e` in an encoded word are no one's address.
        let tld = labels.last().copied().unwrap_or("");
        let plausible = !local.is_empty()
            && labels.len() >= 2
            && labels.iter().all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'))
            && tld.chars().count() >= 2
            && tld.chars().any(char::is_alphabetic);
        let address = format!("{local}@{domain}");
        if plausible && domain != RELAY && !allowed.contains(&address.as_str()) {
            found.push(address);
        }
    }
    found
}

/// `http://` and `https://` URLs whose host is not allowlisted.
pub fn remote_urls(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut found = Vec::new();
    for (i, _) in lower.match_indices("://") {
        let scheme_ok = lower[..i].ends_with("http") || lower[..i].ends_with("https");
        let host: String =
            lower[i + 3..].chars().take_while(|c| c.is_alphanumeric() || *c == '.' || *c == '-').collect();
        // A W3C document type names its DTD by URL; nothing loads it.
        let tag = &lower[lower[..i].rfind('<').unwrap_or(0)..i];
        let dtd = host == "www.w3.org" && tag.starts_with("<!doctype") && !tag.contains('>');
        let allowed = host.is_empty() || host == ALLOWLIST || host.ends_with(&format!(".{ALLOWLIST}")) || dtd;
        if scheme_ok && !allowed {
            found.push(host);
        }
    }
    found
}

/// HTML with the URLs of `xmlns` attribute values defused (`://` → `:__`):
/// namespace names are URLs that nothing loads, and the content policy keeps
/// them; the rest of the value (an address) is still judged. The attributes are
/// found by an HTML tokenizer (a recipient's browser would find the same ones),
/// not by a text scan, which a quote in CSS or text misleads. HTML the tokenizer
/// cannot take is judged as it is.
pub fn without_namespaces(html: &str) -> String {
    use lol_html::{HtmlRewriter, Settings, element};
    let settings = Settings::new().append_element_content_handler(element!("*", |el| {
        let defused: Vec<(String, String)> = el
            .attributes()
            .iter()
            .filter(|a| a.name().starts_with("xmlns") && a.value().contains("://"))
            .map(|a| (a.name(), a.value().replace("://", ":__")))
            .collect();
        for (name, value) in defused {
            el.set_attribute(&name, &value)?;
        }
        Ok(())
    }));
    let mut out = Vec::with_capacity(html.len());
    let mut rewriter = HtmlRewriter::new(settings, |c: &[u8]| out.extend_from_slice(c));
    if rewriter.write(html.as_bytes()).and_then(|()| rewriter.end()).is_err() {
        return html.to_string();
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// HTML character references that can spell URL or address syntax.
#[path = "../../tests/corpus/refs.rs"]
mod refs;
pub use refs::resolve_refs;

/// The headers a recipient may see (DESIGN §2.3; top-level Content-ID names
/// its author's domain).
pub fn allowlisted(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "from"
            | "to"
            | "cc"
            | "subject"
            | "date"
            | "message-id"
            | "in-reply-to"
            | "references"
            | "mime-version"
            | "auto-submitted"
    ) || (n.starts_with("content-") && n != "content-id")
}

pub fn describes_body(name: &str) -> bool {
    name.eq_ignore_ascii_case("content-type") || name.eq_ignore_ascii_case("content-disposition")
}

/// The decoded text of a header value: display names, addresses, text,
/// parameter values.
pub fn header_texts(value: &HeaderValue<'_>) -> Vec<String> {
    fn addr(a: &Addr<'_>, out: &mut Vec<String>) {
        out.extend(a.name.iter().chain(a.address.iter()).map(|s| s.to_string()));
    }
    let mut out = Vec::new();
    match value {
        HeaderValue::Address(mail_parser::Address::List(l)) => l.iter().for_each(|a| addr(a, &mut out)),
        HeaderValue::Address(mail_parser::Address::Group(g)) => {
            for g in g {
                out.extend(g.name.iter().map(|s| s.to_string()));
                g.addresses.iter().for_each(|a| addr(a, &mut out));
            }
        }
        HeaderValue::Text(t) => out.push(t.to_string()),
        HeaderValue::TextList(l) => out.extend(l.iter().map(|t| t.to_string())),
        HeaderValue::ContentType(ct) => {
            out.push(ct.ctype().to_string());
            out.extend(ct.subtype().map(str::to_string));
            out.extend(ct.attributes().unwrap_or(&[]).iter().map(|a| a.value.to_string()));
        }
        _ => {}
    }
    out
}

/// What a recipient's mail client shows of a message: every header (raw and
/// decoded) and every text and HTML part, decoded, attached messages included.
/// `Content-Type` and `Content-Disposition` describe the body: their
/// parameters (file names) are judged with the parts, like the content policy
/// judges them.
pub struct Shown {
    /// (header name, text), top-level headers only.
    pub headers: Vec<(String, String)>,
    /// Decoded text and HTML parts (references resolved), file names, and the
    /// headers of attached messages.
    pub parts: Vec<String>,
}

/// `value` with each RFC 2047 encoded word blanked out: its text is judged
/// decoded. Raw, `=?utf-8?Q?=EF=BF=BD@m.example?=` holds no address, however
/// much `BD@m.example` looks like one, nor does `mn_@b.example` (`_` is a space).
pub fn without_encoded_words(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("=?") {
        out.push_str(&rest[..start]);
        let word = &rest[start + 2..];
        // charset ? encoding ? text ?=, with no white space inside.
        let end = word.find(char::is_whitespace).unwrap_or(word.len());
        let parts: Vec<&str> = word[..end].splitn(3, '?').collect();
        match parts.as_slice() {
            [charset, enc, text] if !charset.is_empty() && enc.len() == 1 && text.contains("?=") => {
                let len = charset.len() + enc.len() + 2 + text.find("?=").unwrap_or(0) + 2;
                out.push(' ');
                rest = &word[len..];
            }
            _ => {
                out.push_str("=?");
                rest = word;
            }
        }
    }
    out.push_str(rest);
    out
}

pub fn shown(raw: &[u8]) -> Option<Shown> {
    let msg = MessageParser::new().parse(raw)?;
    let mut s = Shown { headers: Vec::new(), parts: Vec::new() };
    for h in msg.headers() {
        let name = h.name().to_string();
        if describes_body(&name) {
            continue;
        }
        let raw_value = raw.get(h.offset_start as usize..h.offset_end as usize).unwrap_or_default();
        s.headers.push((name.clone(), without_encoded_words(&String::from_utf8_lossy(raw_value))));
        s.headers.extend(header_texts(h.value()).into_iter().map(|t| (name.clone(), t)));
    }
    collect(&msg, &mut s.parts, true);
    Some(s)
}

fn collect(msg: &Message<'_>, out: &mut Vec<String>, top: bool) {
    for (i, part) in msg.parts.iter().enumerate() {
        match &part.body {
            PartType::Text(t) => out.push(t.to_string()),
            PartType::Html(t) => out.push(without_namespaces(&resolve_refs(t))),
            PartType::Message(m) => collect(m, out, false),
            _ => {}
        }
        for h in part.headers.iter() {
            if let Some(ct) = h.value().as_content_type() {
                out.extend(ct.attributes().unwrap_or(&[]).iter().map(|a| a.value.to_string()));
            }
            if !top && i == 0 {
                out.extend(header_texts(h.value()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words_are_blanked_and_the_rest_kept() {
        assert_eq!(without_encoded_words("a =?utf-8?Q?=EF=BF=BD@m.example?= b"), "a   b");
        assert_eq!(without_encoded_words("=?x?B?YUBiLmM=?==?utf-8?q?mn_@b.example?="), "  ");
        assert_eq!(without_encoded_words("bob@gmail.com =?broken"), "bob@gmail.com =?broken");
        assert_eq!(without_encoded_words("=? x@y.example ?="), "=? x@y.example ?=");
    }

    #[test]
    fn only_namespace_attributes_are_defused() {
        let html = r#"<p style='x:"'>xmlns="http://t.example/p"</p><html xmlns:v="urn:x" xmlns="http://www.w3.org/1999/xhtml">"#;
        let out = without_namespaces(html);
        assert!(out.contains(r#">xmlns="http://t.example/p"</p>"#), "{out}");
        assert!(out.contains(r#"xmlns="http:__www.w3.org/1999/xhtml""#), "{out}");
        assert_eq!(remote_urls(&out), ["t.example"]);
    }

    #[test]
    fn only_host_names_a_mailbox_can_have_count() {
        assert_eq!(foreign_addresses("bob@gmail.com o@-.ex 0e@m.e o@m.---- x@a.b2", &[]), ["bob@gmail.com", "x@a.b2"]);
    }
}
