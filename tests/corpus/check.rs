//! Shared by the content-policy tests: split a corpus message, apply the
//! policy, reassemble the result, and check every decoded text part.

#![allow(dead_code)]

use bsm_milter::content::{ContentPolicy, Extras, Outcome, apply_with};
use mail_parser::{MessageParser, PartType};

#[path = "refs.rs"]
mod refs;
pub use refs::resolve_refs;

pub const RELAY: &str = "m.example.com";

/// Headers as Postfix hands them to a milter (name, value without the leading
/// space, folded lines kept) and the body.
pub fn split(raw: &[u8]) -> (Vec<(String, String)>, Vec<u8>) {
    let at = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("header/body separator");
    let head = String::from_utf8_lossy(&raw[..at]).into_owned();
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            let last = headers.last_mut().expect("continuation after a header");
            last.1.push_str("\r\n");
            last.1.push_str(line);
        } else if let Some((n, v)) = line.split_once(':') {
            headers.push((n.to_string(), v.strip_prefix(' ').unwrap_or(v).to_string()));
        }
    }
    (headers, raw[at + 4..].to_vec())
}

/// The message the recipient gets: original headers with Content-Type and
/// Content-Transfer-Encoding replaced (and Content-Disposition deleted from a
/// multipart), and the new body — as the milter does it.
pub fn deliver(raw: &[u8], policy: &ContentPolicy) -> (Vec<u8>, Outcome) {
    deliver_with(raw, policy, &Extras::default())
}

/// [`deliver`] with a footer to add or strip.
pub fn deliver_with(raw: &[u8], policy: &ContentPolicy, extras: &Extras) -> (Vec<u8>, Outcome) {
    let (headers, body_in) = split(raw);
    let outcome = apply_with(&headers, &body_in, policy, RELAY, extras);
    let out = match &outcome {
        Outcome::Unchanged => raw.to_vec(),
        Outcome::Rewritten { body, content_type, content_transfer_encoding, .. } => {
            let multipart = content_type.to_ascii_lowercase().starts_with("multipart/");
            let mut m = Vec::new();
            for (n, v) in &headers {
                let l = n.to_ascii_lowercase();
                if l == "content-type" || l == "content-transfer-encoding" || (multipart && l == "content-disposition")
                {
                    continue;
                }
                m.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
            }
            m.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
            if let Some(cte) = content_transfer_encoding {
                m.extend_from_slice(format!("Content-Transfer-Encoding: {cte}\r\n").as_bytes());
            }
            m.extend_from_slice(b"\r\n");
            m.extend_from_slice(&body.to_vec(&body_in));
            m
        }
        Outcome::Refuse { .. } => Vec::new(),
    };
    (out, outcome)
}

/// Every text and HTML part of `raw`, decoded, HTML character references
/// resolved. Attached messages are searched too.
pub fn decoded_texts(raw: &[u8]) -> Vec<String> {
    let msg = MessageParser::new().parse(raw).expect("parsable output");
    let mut out = Vec::new();
    let mut names = Vec::new();
    collect(&msg, &mut out, &mut names);
    out
}

/// Parameter values of Content-Type and Content-Disposition (file names).
pub fn parameters(raw: &[u8]) -> Vec<String> {
    let msg = MessageParser::new().parse(raw).expect("parsable output");
    let mut out = Vec::new();
    let mut names = Vec::new();
    collect(&msg, &mut out, &mut names);
    names
}

fn collect(msg: &mail_parser::Message<'_>, out: &mut Vec<String>, names: &mut Vec<String>) {
    for part in &msg.parts {
        match &part.body {
            PartType::Text(t) => out.push(t.to_string()),
            PartType::Html(t) => out.push(resolve_refs(t)),
            PartType::Message(m) => collect(m, out, names),
            PartType::Binary(b) | PartType::InlineBinary(b) => {
                if let Ok(t) = std::str::from_utf8(b) {
                    out.push(t.to_string());
                }
            }
            PartType::Multipart(_) => {}
        }
        // File names are shown to the reader too.
        for h in part.headers.iter() {
            if let Some(ct) = h.value().as_content_type() {
                for a in ct.attributes().unwrap_or(&[]) {
                    names.push(a.value.to_string());
                }
            }
        }
    }
}

/// XML namespace names are URLs that nothing loads.
const NAMESPACE_HOSTS: &[&str] = &["www.w3.org", "schemas.microsoft.com"];

/// Remote URLs (`scheme://host`) whose host is not allowlisted.
pub fn remote_urls(text: &str, allowlist: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (i, _) in text.match_indices("://") {
        let host: String = text[i + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '.' || *c == '-')
            .collect::<String>()
            .to_ascii_lowercase();
        let ok = host.is_empty()
            || NAMESPACE_HOSTS.contains(&host.as_str())
            || allowlist.iter().any(|d| host == *d || host.ends_with(&format!(".{d}")));
        if !ok {
            found.push(host);
        }
    }
    found
}

/// `local@domain` addresses whose domain is not the relay domain.
pub fn foreign_addresses(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, c) in text.char_indices().filter(|(_, c)| matches!(c, '@' | '＠')) {
        let local: String =
            text[..i].chars().rev().take_while(|c| c.is_alphanumeric() || "._+-".contains(*c)).collect();
        let domain: String = text[i + c.len_utf8()..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '.' || *c == '-')
            .collect::<String>()
            .trim_end_matches('.')
            .to_lowercase();
        if !local.is_empty() && domain.contains('.') && domain != RELAY {
            found.push(format!("{}@{domain}", local.chars().rev().collect::<String>()));
        }
    }
    found
}

/// Panics unless no decoded part of `raw` holds a remote URL or a foreign address.
pub fn assert_clean(raw: &[u8], allowlist: &[&str]) {
    for t in decoded_texts(raw).into_iter().chain(parameters(raw)) {
        let urls = remote_urls(&t, allowlist);
        assert!(urls.is_empty(), "remote URLs {urls:?} in:\n{t}");
        let addrs = foreign_addresses(&t);
        assert!(addrs.is_empty(), "addresses {addrs:?} in:\n{t}");
    }
}
