//! Mail-client commands end to end through a real Postfix (DESIGN §2.6,
//! seed 001): the footer on buyer messages, the command addresses, and the
//! footer stripped from a seller's reply that quotes it.

mod support;

use mail_parser::MessageParser;
use std::time::Duration;
use support::postfix::send;
use support::process::ok;
use support::world::{WAIT, World, assert_no_trace, header, json, message};

const BUYER: &str = "bob@buyer-mail.example";
const SELLER: &str = "alice@seller-corp.example";

/// The buyer asks; returns (the message as the seller got it, its decoded text).
fn buyer_asks(w: &World) -> (support::postfix::SinkMessage, String) {
    let q = message(
        &[("From", BUYER), ("Subject", "Gift wrap?"), ("Message-ID", "<g1@buyer-mail.example>")],
        "Can you gift-wrap it?\r\n",
    );
    assert_eq!(send(w.port(), BUYER, &[&w.seller_alias], &q).2.unwrap().code, 250);
    let got = w.postfix.wait_delivered(1, WAIT).remove(0);
    let text = MessageParser::new().parse(&got.raw).unwrap().body_text(0).unwrap().into_owned();
    (got, text)
}

/// The command address of `kind` in the footer text.
fn command(text: &str, kind: &str) -> String {
    let start = text.find(&format!("{kind}+")).unwrap_or_else(|| panic!("no {kind} address in:\n{text}"));
    let end = text[start..].find(['>', ' ', '\r', '\n']).map_or(text.len(), |e| start + e);
    text[start..end].to_string()
}

#[test]
fn buyer_messages_carry_the_footer_and_commands_act_for_the_seller_only() {
    let w = World::start();
    let (_, text) = buyer_asks(&w);
    assert!(text.starts_with("Can you gift-wrap it?"), "{text}");
    let report = command(&text, "report");
    let nrn = command(&text, "no-response-needed");
    assert!(report.ends_with("@m.example.com") && nrn.ends_with("@m.example.com"), "{report} {nrn}");

    // Strangers, the buyer and another seller learn nothing.
    for from in ["eve@evil.example", BUYER, "sales@shop2.example"] {
        let (_, rcpts, _) = send(w.port(), from, &[&report], &message(&[("From", from)], "x\r\n"));
        assert_eq!(
            (rcpts[0].code, rcpts[0].text.as_str()),
            (550, "5.1.1 Recipient address rejected: unknown recipient"),
            "{from}"
        );
    }
    // The seller reports it: accepted, not delivered, listed.
    let (_, rcpts, data) =
        send(w.port(), SELLER, &[&report], &message(&[("From", SELLER), ("Subject", "report")], "\r\n"));
    assert_eq!((rcpts[0].code, data.unwrap().code), (250, 250));
    let reported = json(&ok(&w.config, &["archive", "list", "--reported", "--json"]));
    assert_eq!(reported.as_array().unwrap().len(), 1, "{reported}");
    assert_eq!(reported[0]["direction"], "buyer_to_seller");
    // And marks it "no response needed": it counts as such in the metrics.
    let (_, _, data) = send(w.port(), SELLER, &[&nrn], &message(&[("From", SELLER)], "\r\n"));
    assert_eq!(data.unwrap().code, 250);
    let m = json(&ok(&w.config, &["metrics", "--seller", "S1", "--json"]));
    assert_eq!(m["windows"]["7d"]["no_response_needed"], 1, "{m}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(w.postfix.delivered().len(), 1, "a command was delivered");
    let log = w.milter.as_ref().unwrap().log_text();
    assert!(log.contains("as reported (command accepted, not delivered)"), "{log}");
}

#[test]
fn a_reply_quoting_the_footer_reaches_the_buyer_without_it() {
    let w = World::start();
    let (got, text) = buyer_asks(&w);
    let relay_id = header(&got, "Message-ID").unwrap();
    let token = command(&text, "report").trim_start_matches("report+").split('@').next().unwrap().to_string();
    let quoted: String = text.lines().map(|l| format!("> {l}\r\n")).collect();
    let html_quote = format!(
        "<p>Yes, happily.</p><blockquote class=\"gmail_quote\">{}</blockquote>",
        text.lines()
            .map(|l| format!("{}<br>", l.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")))
            .collect::<String>()
    );
    let reply = format!(
        "From: {SELLER}\r\nSubject: Re: Gift wrap?\r\nIn-Reply-To: {relay_id}\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative; boundary=\"r\"\r\n\r\n--r\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Yes, happily.\r\n\r\nOn Monday, Bob wrote:\r\n{quoted}\r\n--r\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
         <html><body>{html_quote}</body></html>\r\n--r--\r\n"
    );
    let (_, _, data) = send(w.port(), SELLER, &[&w.s1b1], reply.as_bytes());
    assert_eq!(data.unwrap().code, 250);
    let got = w.postfix.wait_delivered(2, WAIT).remove(1);
    assert_no_trace(&got, &["no-response-needed", "report+", &token, "bsm-footer", "alice", "seller-corp"]);
    let parsed = MessageParser::new().parse(&got.raw).unwrap();
    assert!(parsed.body_text(0).unwrap().contains("Yes, happily."));
    assert!(parsed.body_text(0).unwrap().contains("> Can you gift-wrap it?"));
}
