//! The content policy end to end through a real Postfix: every corpus message
//! sent by a seller arrives with no remote URL and no foreign address in any
//! decoded part; clean mail is not rewritten (DESIGN §3).

mod support;

#[path = "corpus/check.rs"]
mod check;

use mail_parser::{MessageParser, MimeHeaders};
use support::postfix::send;
use support::process::ok;
use support::world::{WAIT, World, json};

const SELLER: &str = "alice@seller-corp.example";

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/corpus/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The corpus message as the seller's client would send it: From is the
/// approved address, To the buyer's alias.
fn as_seller(raw: &[u8], to: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\n\n").or_else(|| text.split_once("\r\n\r\n")).unwrap();
    let mut out: String = head
        .lines()
        .filter(|l| !l.starts_with("From:") && !l.starts_with("To:"))
        .map(|l| format!("{}\r\n", l.trim_end_matches('\r')))
        .collect();
    out.push_str(&format!("From: {SELLER}\r\nTo: {to}\r\n\r\n"));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

#[test]
fn seller_mail_arrives_clean_for_every_corpus_message() {
    let w = World::start();
    let names = [
        "marketing.eml",
        "gmail.eml",
        "outlook.eml",
        "qp_soft_breaks.eml",
        "base64_parts.eml",
        "nested.eml",
        "renamed_executable.eml",
        "charset_euc-kr.eml",
        "charset_iso-8859-1.eml",
        "charset_shift_jis.eml",
        "forwarded.eml",
    ];
    for name in names {
        let (_, rcpts, data) = send(w.port(), SELLER, &[&w.s1b1], &as_seller(&corpus(name), &w.s1b1));
        assert_eq!(rcpts[0].code, 250, "{name}");
        assert_eq!(data.as_ref().map(|d| d.code), Some(250), "{name}: {data:?}");
    }
    let delivered = w.postfix.wait_delivered(names.len(), WAIT);
    for m in &delivered {
        check::assert_clean(&m.raw, &[]);
        let parsed = MessageParser::new().parse(&m.raw).unwrap();
        // Nothing that is not a relay alias, and no trace of the seller.
        let raw = String::from_utf8_lossy(&m.raw).to_lowercase();
        assert!(!raw.contains("seller-corp"), "{raw}");
        assert!(parsed.attachments().all(|a| {
            let n = a.attachment_name().unwrap_or("").to_lowercase();
            !n.ends_with(".exe")
        }));
    }
    // What each rule removed is recorded with the message.
    let rows = json(&ok(&w.config, &["archive", "list", "--seller", "S1", "--json"]));
    let marketing = rows.as_array().unwrap().iter().find(|r| r["subject"] == "Big sale").unwrap();
    let removed = &marketing["removed"];
    assert!(removed["remote_resources"].as_u64().unwrap() > 0, "{marketing}");
    assert!(removed["links"].as_u64().unwrap() > 0, "{marketing}");
    let exe = rows.as_array().unwrap().iter().find(|r| r["removed"]["attachments"].as_u64().unwrap_or(0) >= 2);
    assert!(exe.is_some(), "no record of removed attachments: {rows}");
    let log = w.milter.as_ref().unwrap().log_text();
    assert!(log.contains("delivered (removed "), "{log}");
}

#[test]
fn clean_seller_mail_is_not_rewritten() {
    let w = World::start();
    let body = "Hello,\r\nyour vase ships on Friday with the usual carrier.\r\n";
    let msg = format!("From: {SELLER}\r\nSubject: Vase\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}");
    send(w.port(), SELLER, &[&w.s1b1], msg.as_bytes());
    let got = w.postfix.wait_delivered(1, WAIT).remove(0);
    let delivered = String::from_utf8_lossy(&got.raw);
    assert!(delivered.ends_with(body), "{delivered}");
    let rows = json(&ok(&w.config, &["archive", "list", "--json"]));
    assert_eq!(
        rows[0]["removed"],
        serde_json::json!({"remote_resources":0,"links":0,"emails":0,"phones":0,"attachments":0})
    );
}

#[test]
fn an_attachment_over_10_mb_is_removed_with_a_note() {
    let w = World::start();
    use base64::Engine as _;
    let data = vec![b'a'; 10 * 1024 * 1024 + 1];
    let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
    let wrapped: String = b64.as_bytes().chunks(76).map(|c| format!("{}\r\n", String::from_utf8_lossy(c))).collect();
    let msg = format!(
        "From: {SELLER}\r\nTo: {}\r\nSubject: big\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n--b\r\nContent-Type: text/plain; name=\"big.txt\"\r\n\
         Content-Disposition: attachment; filename=\"big.txt\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{wrapped}--b--\r\n",
        w.s1b1
    );
    let (_, _, data) = send(w.port(), SELLER, &[&w.s1b1], msg.as_bytes());
    assert_eq!(data.unwrap().code, 250);
    let got = w.postfix.wait_delivered(1, WAIT).remove(0);
    assert!(got.raw.len() < 100_000, "the attachment was delivered ({} bytes)", got.raw.len());
    let parsed = MessageParser::new().parse(&got.raw).unwrap();
    let text = parsed.body_text(0).unwrap();
    assert!(text.contains("See attached.") && text.contains("big.txt"), "{text}");
}

/// A message that is nothing but a forbidden attachment arrives as the note alone: its
/// top-level headers no longer describe the file (DESIGN §3).
#[test]
fn a_message_that_is_one_forbidden_attachment_arrives_as_the_note() {
    let w = World::start();
    let msg = format!(
        "From: {SELLER}\r\nTo: {}\r\nSubject: installer\r\nMIME-Version: 1.0\r\n\
         Content-Type: application/x-msdownload; name=\"setup.exe\"\r\n\
         Content-Disposition: attachment; filename=\"setup.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
         TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n",
        w.s1b1
    );
    let (_, _, data) = send(w.port(), SELLER, &[&w.s1b1], msg.as_bytes());
    assert_eq!(data.unwrap().code, 250);
    let got = w.postfix.wait_delivered(1, WAIT).remove(0);
    let parsed = MessageParser::new().parse(&got.raw).unwrap();
    let ct = parsed.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("text", Some("plain")), "{}", String::from_utf8_lossy(&got.raw));
    assert!(parsed.content_disposition().is_none() && parsed.attachments().next().is_none());
    let text = parsed.body_text(0).unwrap();
    assert!(text.contains("[Attachment removed: \"setup.exe\""), "{text}");
    assert!(!String::from_utf8_lossy(&got.raw).contains("TVqQ"));
}

/// A buyer's message is rebuilt for its footer; a large attachment in it goes
/// to Postfix as a span of the received body (not a copy) and arrives intact.
#[test]
fn a_buyer_attachment_arrives_intact_beside_the_footer() {
    let w = World::start();
    use base64::Engine as _;
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
    let wrapped: String = b64.as_bytes().chunks(76).map(|c| format!("{}\r\n", String::from_utf8_lossy(c))).collect();
    let buyer = "bob@buyer-mail.example";
    let msg = format!(
        "From: {buyer}\r\nTo: {}\r\nSubject: photos\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nThe bowl arrived cracked.\r\n--b\r\nContent-Type: application/zip; name=\"p.zip\"\r\n\
         Content-Disposition: attachment; filename=\"p.zip\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{wrapped}--b--\r\n",
        w.seller_alias
    );
    let (_, _, reply) = send(w.port(), buyer, &[&w.seller_alias], msg.as_bytes());
    assert_eq!(reply.unwrap().code, 250);
    let got = w.postfix.wait_delivered(1, WAIT).remove(0);
    let parsed = MessageParser::new().parse(&got.raw).unwrap();
    let text = parsed.body_text(0).unwrap();
    assert!(text.contains("The bowl arrived cracked.") && text.contains("no-response-needed+"), "{text}");
    let attachments: Vec<_> = parsed.attachments().collect();
    assert_eq!(attachments.len(), 1);
    assert_eq!(attachments[0].attachment_name(), Some("p.zip"));
    assert!(attachments[0].contents() == data.as_slice(), "attachment changed on the way");
}
