//! The header allowlist and the rewriting of From/To/Cc/ids (DESIGN §2.3).

use super::{HeaderEdit, RawHeader, ids::parse_ids};
use crate::address::Address;
use crate::content::text::emails;
use mail_builder::headers::{Header, address::Address as BuiltAddress, text::Text};
use mail_parser::{HeaderValue, MessageParser};
use std::borrow::Cow;

/// What the relay reads from a message's headers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub from: Vec<Address>,
    /// The author's Message-ID, without brackets.
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub subject: Option<String>,
    /// `Content-Type: multipart/report` (a delivery or disposition report).
    pub is_report: bool,
    /// `Auto-Submitted:` other than `no` (RFC 3834): vacation replies and the like.
    pub auto_submitted: bool,
}

impl Parsed {
    /// Every id the message names, for one store look-up.
    pub fn referenced(&self) -> Vec<String> {
        let mut ids = self.in_reply_to.clone();
        ids.extend(self.references.iter().filter(|id| !self.in_reply_to.contains(id)).cloned());
        ids
    }
}

/// Parses one header value the way a mail client would (RFC 2047, comments, groups).
fn parse_value(h: &RawHeader) -> Option<HeaderValue<'static>> {
    let raw = format!("{}: {}\r\n\r\n", h.name, unfold(&h.value));
    let msg = MessageParser::new().parse_headers(raw.as_bytes())?;
    msg.headers().first().map(|h| h.value().clone().into_owned())
}

fn unfold(v: &str) -> String {
    v.replace("\r\n", "").replace('\n', "")
}

/// The addresses of an address header; entries that are not plain mailboxes are skipped.
pub fn addresses(h: &RawHeader) -> Vec<Address> {
    match parse_value(h) {
        Some(HeaderValue::Address(a)) => {
            a.iter().filter_map(|a| a.address()).filter_map(|a| Address::parse(a).ok()).collect()
        }
        _ => Vec::new(),
    }
}

pub fn parse(headers: &[RawHeader]) -> Parsed {
    let mut p = Parsed::default();
    for h in headers {
        match h.name.to_ascii_lowercase().as_str() {
            "from" => p.from.extend(addresses(h)),
            "message-id" if p.message_id.is_none() => p.message_id = parse_ids(&h.value).into_iter().next(),
            "in-reply-to" => p.in_reply_to.extend(parse_ids(&h.value)),
            "references" => p.references.extend(parse_ids(&h.value)),
            "subject" if p.subject.is_none() => {
                p.subject = parse_value(h).and_then(|v| v.into_text()).map(|t| t.into_owned())
            }
            "content-type" => {
                if let Some(ct) = parse_value(h).and_then(|v| v.into_content_type()) {
                    p.is_report = ct.ctype().eq_ignore_ascii_case("multipart")
                        && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report"));
                }
            }
            "auto-submitted" => p.auto_submitted = !h.value.trim().to_ascii_lowercase().starts_with("no"),
            _ => {}
        }
    }
    p
}

/// Who the recipient sees, and as what.
pub struct Outgoing<'a> {
    /// The sender as the recipient knows them: display name from the store, and alias.
    pub from_name: Option<&'a str>,
    pub from_alias: &'a Address,
    /// The alias the message was addressed to (envelope recipient).
    pub recipient_alias: &'a Address,
    pub recipient_name: Option<&'a str>,
    pub recipient: &'a Address,
    /// Relay-minted Message-ID, without brackets.
    pub message_id: &'a str,
    pub in_reply_to: &'a [String],
    pub references: &'a [String],
    pub relay_domain: &'a str,
}

enum Kind {
    From,
    ToCc,
    MessageId,
    InReplyTo,
    References,
    Subject,
    Keep,
    Drop,
}

/// The allowlist: anything not named here can carry an address, a domain or a
/// read receipt, and is removed. Top-level `Content-ID` names its author's domain.
fn kind(name: &str) -> Kind {
    match name {
        "from" => Kind::From,
        "to" | "cc" => Kind::ToCc,
        "message-id" => Kind::MessageId,
        "in-reply-to" => Kind::InReplyTo,
        "references" => Kind::References,
        "subject" => Kind::Subject,
        "date" | "mime-version" | "auto-submitted" => Kind::Keep,
        n if n.starts_with("content-") && n != "content-id" => Kind::Keep,
        _ => Kind::Drop,
    }
}

/// Whether a header's value, raw or decoded (RFC 2047), names an address
/// other than a relay alias.
fn holds_address(h: &RawHeader, relay_domain: &str) -> bool {
    let relay = relay_domain.to_ascii_lowercase();
    let found = |t: &str| emails(t, &relay).1 > 0;
    found(&unfold(&h.value))
        || match parse_value(h) {
            Some(HeaderValue::Text(t)) => found(&t),
            Some(HeaderValue::TextList(l)) => l.iter().any(|t| found(t)),
            _ => false,
        }
}

/// A header value rendered by mail-builder (RFC 2047 where needed), on one line.
fn render(h: &impl Header) -> String {
    let mut out = Vec::new();
    h.write_header(&mut out, 0);
    unfold(String::from_utf8_lossy(&out).trim_end())
}

pub fn mailbox(name: Option<&str>, addr: &Address) -> String {
    render(&BuiltAddress::new_address(name.filter(|n| !n.trim().is_empty()), addr.as_str()))
}

fn id_list(ids: &[String]) -> String {
    ids.iter().map(|id| format!("<{id}>")).collect::<Vec<_>>().join(" ")
}

/// The header edits that turn the sender's headers into what the recipient sees.
pub fn rewrite(headers: &[RawHeader], out: &Outgoing<'_>) -> Vec<HeaderEdit> {
    let mut edits = Vec::new();
    let mut recipient_shown = false;
    let mut message_id_set = false;
    for (h, index) in super::indexed(headers) {
        let name = h.name.to_ascii_lowercase();
        let change = |value: String| HeaderEdit::Change { name: h.name.clone(), index, value };
        let delete = HeaderEdit::Delete { name: h.name.clone(), index };
        let edit = match kind(&name) {
            Kind::From if index == 1 => Some(change(mailbox(out.from_name, out.from_alias))),
            Kind::ToCc if !recipient_shown && addresses(h).contains(out.recipient_alias) => {
                recipient_shown = true;
                Some(change(mailbox(out.recipient_name, out.recipient)))
            }
            Kind::MessageId if index == 1 => {
                message_id_set = true;
                Some(change(format!("<{}>", out.message_id)))
            }
            Kind::InReplyTo if index == 1 && !out.in_reply_to.is_empty() => Some(change(id_list(out.in_reply_to))),
            Kind::References if index == 1 && !out.references.is_empty() => Some(change(id_list(out.references))),
            Kind::Subject if index == 1 => {
                let decoded =
                    parse_value(h).and_then(|v| v.into_text()).map_or_else(|| unfold(&h.value), |t| t.into_owned());
                // The content policy's scanner: non-ASCII and full-width addresses too.
                let relay = out.relay_domain.to_ascii_lowercase();
                match emails(&decoded, &relay) {
                    (Cow::Owned(clean), _) => Some(change(render(&Text::new(clean)))),
                    // A client that reads a malformed encoded word as plain
                    // text shows what the decoder took for encoding.
                    (Cow::Borrowed(_), _) if emails(&unfold(&h.value), &relay).1 > 0 => {
                        Some(change(render(&Text::new(decoded.clone()))))
                    }
                    (Cow::Borrowed(_), _) => None,
                }
            }
            Kind::Keep if holds_address(h, out.relay_domain) => match name.as_str() {
                // These describe the body: the content policy judges and rebuilds them.
                "content-type" | "content-disposition" => None,
                "mime-version" => Some(change("1.0".into())),
                // Kept so that the other side's responder stays quiet.
                "auto-submitted" => Some(change("auto-generated".into())),
                _ => Some(delete),
            },
            Kind::Keep => None,
            _ => Some(delete),
        };
        edits.extend(edit);
    }
    if !message_id_set {
        edits.push(HeaderEdit::Add { name: "Message-ID".into(), value: format!("<{}>", out.message_id) });
    }
    super::order_edits(edits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    fn apply(headers: &[RawHeader], edits: &[HeaderEdit]) -> Vec<RawHeader> {
        crate::rewrite::apply_edits(headers, edits)
    }

    #[test]
    fn only_the_allowlist_survives_and_the_sender_is_only_its_alias() {
        let headers = vec![
            RawHeader::new("Received", "from mail.seller-corp.example by mx"),
            RawHeader::new("From", "\"Alice (alice@seller-corp.example)\" <alice@seller-corp.example>"),
            RawHeader::new("Reply-To", "alice@seller-corp.example"),
            RawHeader::new("Sender", "alice@seller-corp.example"),
            RawHeader::new("To", "\"Bob\" <abcdefghijklmno@m.example.com>, carol@other.example"),
            RawHeader::new("Cc", "alice@seller-corp.example"),
            RawHeader::new("Subject", "Your order, from alice@seller-corp.example"),
            RawHeader::new("Date", "Mon, 23 Nov 2026 10:00:00 +0000"),
            RawHeader::new("Message-ID", "<123@seller-corp.example>"),
            RawHeader::new("DKIM-Signature", "v=1; d=seller-corp.example"),
            RawHeader::new("X-Originating-IP", "[192.0.2.1]"),
            RawHeader::new("Disposition-Notification-To", "alice@seller-corp.example"),
            RawHeader::new("List-Unsubscribe", "<mailto:u@seller-corp.example>"),
            RawHeader::new("MIME-Version", "1.0"),
            RawHeader::new("Content-Type", "text/plain; charset=utf-8"),
            RawHeader::new("Content-ID", "<part@seller-corp.example>"),
            RawHeader::new("Received", "from another.seller-corp.example"),
        ];
        let (alias, rcpt_alias, buyer) =
            (a("sellerxxxxxxxxx@m.example.com"), a("abcdefghijklmno@m.example.com"), a("bob@buyer.example"));
        let out = Outgoing {
            from_name: Some("Shop One"),
            from_alias: &alias,
            recipient_alias: &rcpt_alias,
            recipient_name: Some("Bob B."),
            recipient: &buyer,
            message_id: "bsm.x@m.example.com",
            in_reply_to: &[],
            references: &[],
            relay_domain: "m.example.com",
        };
        let result = apply(&headers, &rewrite(&headers, &out));
        let names: Vec<&str> = result.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"]);
        let text: String = result.iter().map(|h| format!("{}: {}\n", h.name, h.value)).collect();
        assert!(!text.contains("seller-corp"), "{text}");
        assert!(!text.contains("carol"), "{text}");
        assert!(text.contains("From: \"Shop One\" <sellerxxxxxxxxx@m.example.com>"), "{text}");
        assert!(text.contains("To: \"Bob B.\" <bob@buyer.example>"), "{text}");
        assert!(text.contains("Message-ID: <bsm.x@m.example.com>"), "{text}");
        assert!(text.contains("Subject: Your order, from [email removed]"), "{text}");
    }

    #[test]
    fn encoded_display_names_and_subjects_are_decoded_before_judging() {
        let headers = vec![
            RawHeader::new("From", "=?utf-8?B?YWxpY2VAc2VsbGVyLWNvcnAuZXhhbXBsZQ==?= <x@seller-corp.example>"),
            RawHeader::new("To", "=?utf-8?Q?B=C3=B6b?= <abcdefghijklmno@m.example.com>"),
            RawHeader::new("Subject", "=?utf-8?B?UmU6IGFsaWNlQHNlbGxlci1jb3JwLmV4YW1wbGU=?="),
        ];
        let p = parse(&headers);
        assert_eq!(p.from, [a("x@seller-corp.example")]);
        assert_eq!(p.subject.as_deref(), Some("Re: alice@seller-corp.example"));
        let (alias, rcpt_alias, buyer) =
            (a("sellerxxxxxxxxx@m.example.com"), a("abcdefghijklmno@m.example.com"), a("bob@buyer.example"));
        let out = Outgoing {
            from_name: Some("Gärtnerei Schön"),
            from_alias: &alias,
            recipient_alias: &rcpt_alias,
            recipient_name: None,
            recipient: &buyer,
            message_id: "bsm.x@m.example.com",
            in_reply_to: &[],
            references: &[],
            relay_domain: "m.example.com",
        };
        let result = apply(&headers, &rewrite(&headers, &out));
        let from = &result[0].value;
        assert!(from.starts_with("=?utf-8?") && from.ends_with("<sellerxxxxxxxxx@m.example.com>"), "{from}");
        let subject = parse(&result).subject.unwrap();
        assert_eq!(subject, "Re: [email removed]");
        assert_eq!(result.last().unwrap().name, "Message-ID");
    }

    /// Found by `cargo fuzz run headers`: a malformed encoded word that the
    /// decoder swallows whole hid an address that a stricter client shows.
    /// The headers as a buyer receives them from seller S (no names, no thread).
    fn to_buyer(headers: &[RawHeader]) -> Vec<RawHeader> {
        let (alias, rcpt_alias, buyer) =
            (a("sellerxxxxxxxxx@m.example.com"), a("abcdefghijklmno@m.example.com"), a("bob@buyer.example"));
        let out = Outgoing {
            from_name: None,
            from_alias: &alias,
            recipient_alias: &rcpt_alias,
            recipient_name: None,
            recipient: &buyer,
            message_id: "bsm.x@m.example.com",
            in_reply_to: &[],
            references: &[],
            relay_domain: "m.example.com",
        };
        apply(headers, &rewrite(headers, &out))
    }

    #[test]
    fn an_address_hidden_from_the_decoder_is_still_removed() {
        let raw = "x &=?=]bob@gmail.com=i=?q?o::t?==5";
        let headers = vec![RawHeader::new("Subject", raw)];
        let decoded = parse(&headers).subject.unwrap_or_default();
        let result = to_buyer(&headers);
        let subject = result.iter().find(|h| h.name == "Subject").map(|h| h.value.clone()).unwrap_or_default();
        assert!(!subject.contains("gmail"), "decoded as {decoded:?}, delivered as {subject:?}");
    }

    /// Found by `cargo fuzz run pipeline`/`headers`: the subject scanner missed
    /// non-ASCII and full-width addresses, and kept headers passed verbatim.
    #[test]
    fn no_kept_header_carries_an_address() {
        let headers = vec![
            RawHeader::new("From", "sales@shop.example"),
            RawHeader::new("Subject", "연락처:bob@gmail.com 홍길동@네이버.com bob＠gmail.com"),
            RawHeader::new("Date", "alice@seller-corp.example"),
            RawHeader::new("Content-Description", "=?utf-8?Q?call_bob=40gmail.com?="),
            RawHeader::new("Content-Language", "en"),
            RawHeader::new("MIME-Version", "1.0 (bob@gmail.com)"),
            RawHeader::new("Auto-Submitted", "auto-replied (alice@seller-corp.example)"),
        ];
        let result = to_buyer(&headers);
        let text: String = result.iter().map(|h| format!("{}: {}\n", h.name, h.value)).collect();
        assert!(!text.contains("gmail") && !text.contains("seller-corp"), "{text}");
        assert!(text.contains("Content-Language: en\nMIME-Version: 1.0\nAuto-Submitted: auto-generated\n"), "{text}");
        assert!(!text.contains("Date:") && !text.contains("Content-Description"), "{text}");
        assert_eq!(parse(&result).subject.as_deref(), Some("연락처:[email removed] [email removed] [email removed]"));
    }

    #[test]
    fn reports_and_auto_replies_are_recognised() {
        let p = parse(&[
            RawHeader::new("Content-Type", "multipart/report; report-type=delivery-status; boundary=x"),
            RawHeader::new("Auto-Submitted", "auto-replied"),
            RawHeader::new("In-Reply-To", "<a@b>"),
            RawHeader::new("References", "<z@y> <a@b>"),
        ]);
        assert!(p.is_report && p.auto_submitted);
        assert_eq!(p.referenced(), ["a@b", "z@y"]);
        assert!(!parse(&[RawHeader::new("Auto-Submitted", "no")]).auto_submitted);
    }
}
