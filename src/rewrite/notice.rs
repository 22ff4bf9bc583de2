//! The relay's own short notices, which replace delivery reports addressed to an
//! alias: a provider's report names the other party's real address (DESIGN §2.4).
//! Mail with a null sender that does not read as a report (an out-of-office reply
//! sent as RFC 3834 advises, or a bounce in no standard form) gets a notice that
//! says only what is certain: an automatic message came back.

use crate::address::Address;
use crate::rewrite::{HeaderEdit, RawHeader, Rewrite};
use crate::store::Party;
use mail_builder::MessageBuilder;
use mail_builder::headers::{address::Address as BuiltAddress, raw::Raw};

/// Who gets the notice, and from whom it comes.
pub struct Notice<'a> {
    pub to: Party,
    /// What came back: a delivery report, or some other automatic message.
    pub kind: Kind,
    pub recipient: &'a Address,
    pub recipient_name: Option<&'a str>,
    pub relay_name: &'a str,
    pub relay_domain: &'a str,
    /// Relay-minted Message-ID, without brackets.
    pub message_id: &'a str,
    /// Unix seconds.
    pub date: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A delivery report: `multipart/report`, `X-Failed-Recipients`, or from `MAILER-DAEMON`
    /// or `postmaster`.
    Returned,
    /// Anything else with a null sender: a failure or an automatic reply, which cannot be told
    /// apart; neither is relayed, since the envelope names no party the relay could check.
    Automatic,
}

impl Kind {
    /// How a null-sender message (or a report from anyone) addressed to an alias reads.
    pub fn of(headers: &[RawHeader], is_report: bool, from: &[Address]) -> Kind {
        let daemon =
            |a: &Address| ["mailer-daemon", "postmaster"].iter().any(|d| a.local_part().eq_ignore_ascii_case(d));
        let failed = headers.iter().any(|h| h.name.eq_ignore_ascii_case("X-Failed-Recipients"));
        if is_report || failed || from.iter().any(daemon) { Kind::Returned } else { Kind::Automatic }
    }
}

fn text(to: Party, kind: Kind) -> (&'static str, &'static str) {
    match (to, kind) {
        (Party::Seller, Kind::Automatic) => (
            "Automatic message about a message to a buyer",
            "The buyer's email system sent an automatic message about a message you\r\n\
             sent to a buyer: a delivery failure, or an automatic reply such as an\r\n\
             out-of-office notice. It is not forwarded, as it may name the buyer's\r\n\
             own address.\r\n\
             \r\n\
             The buyer can still read your message in their account on the\r\n\
             marketplace.\r\n",
        ),
        (Party::Buyer, Kind::Automatic) => (
            "Automatic message about your message to the seller",
            "The seller's email system sent an automatic message about the message\r\n\
             you sent to the seller: a delivery failure, or an automatic reply such\r\n\
             as an out-of-office notice. It is not forwarded.\r\n\
             \r\n\
             You can still contact the seller through your account on the\r\n\
             marketplace.\r\n",
        ),
        (Party::Seller, Kind::Returned) => (
            "Undelivered message to a buyer",
            "The buyer's email provider returned a message you sent to a buyer.\r\n\
             \r\n\
             The buyer can still read your message in their account on the\r\n\
             marketplace; you do not need to send it again by email.\r\n",
        ),
        (Party::Buyer, Kind::Returned) => (
            "Your message to the seller was not delivered",
            "The seller's email system returned the message you sent to the seller.\r\n\
             \r\n\
             You can still contact the seller through your account on the\r\n\
             marketplace.\r\n",
        ),
    }
}

/// The notice as a complete message, built with mail-builder.
pub fn build(n: &Notice<'_>) -> Vec<u8> {
    let (subject, body) = text(n.to, n.kind);
    MessageBuilder::new()
        .from(BuiltAddress::new_address(Some(n.relay_name), format!("mailer-daemon@{}", n.relay_domain)))
        .to(BuiltAddress::new_address(n.recipient_name, n.recipient.as_str()))
        .subject(subject)
        .date(n.date as i64)
        .message_id(n.message_id)
        .header("Auto-Submitted", Raw::new("auto-generated"))
        .text_body(body)
        .write_to_vec()
        .expect("writing to a Vec cannot fail")
}

/// Splits a built message into header fields (unfolded) and body.
pub fn split(message: &[u8]) -> (Vec<RawHeader>, Vec<u8>) {
    let text = String::from_utf8_lossy(message);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut headers: Vec<RawHeader> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.value.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push(RawHeader::new(name.trim(), value.trim_start()));
        }
    }
    (headers, body.as_bytes().to_vec())
}

/// Replaces the whole message: every original header deleted, the notice's
/// headers added, the body replaced.
pub fn replace_message(original: &[RawHeader], notice: &[u8]) -> Rewrite {
    let mut edits: Vec<HeaderEdit> = super::indexed(original)
        .into_iter()
        .map(|(h, index)| HeaderEdit::Delete { name: h.name.clone(), index })
        .collect();
    let (headers, body) = split(notice);
    edits.extend(headers.into_iter().map(|h| HeaderEdit::Add { name: h.name, value: h.value }));
    Rewrite { headers: super::order_edits(edits), body: Some(crate::content::Spliced::new(body)), ..Rewrite::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notice_to_the_seller_names_no_address_but_its_own() {
        let seller = Address::parse("cs@shop.example").unwrap();
        let msg = build(&Notice {
            to: Party::Seller,
            kind: Kind::Returned,
            recipient: &seller,
            recipient_name: Some("Shop"),
            relay_name: "Marketplace Messaging",
            relay_domain: "m.example.com",
            message_id: "bsm.n@m.example.com",
            date: 1_800_000_000,
        });
        let parsed = mail_parser::MessageParser::new().parse(&msg).unwrap();
        assert_eq!(parsed.subject(), Some("Undelivered message to a buyer"));
        assert_eq!(parsed.message_id(), Some("bsm.n@m.example.com"));
        assert!(parsed.body_text(0).unwrap().contains("can still read your message"));
        let (headers, body) = split(&msg);
        assert!(headers.iter().any(|h| h.name == "Auto-Submitted" && h.value == "auto-generated"));
        assert!(!body.is_empty());
        let rewrite = replace_message(&[RawHeader::new("Received", "x"), RawHeader::new("Received", "y")], &msg);
        assert_eq!(rewrite.headers[0], HeaderEdit::Delete { name: "Received".into(), index: 2 });
        assert_eq!(rewrite.headers[1], HeaderEdit::Delete { name: "Received".into(), index: 1 });
    }

    #[test]
    fn only_what_reads_as_a_report_is_called_returned() {
        let daemon = [Address::parse("MAILER-DAEMON@mx.buyer.example").unwrap()];
        let person = [Address::parse("bob@buyer.example").unwrap()];
        let auto = [RawHeader::new("Auto-Submitted", "auto-replied"), RawHeader::new("Subject", "Out of office")];
        assert_eq!(Kind::of(&auto, true, &person), Kind::Returned);
        assert_eq!(Kind::of(&auto, false, &daemon), Kind::Returned);
        let exim = [RawHeader::new("X-Failed-Recipients", "bob@buyer.example")];
        assert_eq!(Kind::of(&exim, false, &person), Kind::Returned);
        assert_eq!(Kind::of(&auto, false, &person), Kind::Automatic);
        assert_eq!(Kind::of(&[], false, &[]), Kind::Automatic);
    }
}
