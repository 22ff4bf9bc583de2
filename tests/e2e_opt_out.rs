//! Opt-out, critical messages, instruction bounces and daily limits, end to end
//! through a real Postfix (DESIGN §2.2; seeds 000, 001, 002, 004).

mod support;

use std::time::Duration;
use support::postfix::{Reply, send};
use support::process::ok;
use support::world::{WAIT, World, header, json, message};

const SELLER: &str = "alice@seller-corp.example";

fn opted_out_world(extra: &str) -> World {
    let w = World::start_with(extra);
    ok(&w.config, &["buyer", "opt-out", "B1"]);
    w
}

/// A seller message to B1; returns the DATA reply (or the RCPT one if refused there).
fn seller_sends(w: &World, headers: &[(&str, &str)]) -> Reply {
    let mut all = vec![("From", SELLER), ("To", w.s1b1.as_str())];
    all.extend_from_slice(headers);
    let (_, rcpts, data) = send(w.port(), SELLER, &[&w.s1b1], &message(&all, "Hello\r\n"));
    data.unwrap_or_else(|| rcpts[0].clone())
}

fn nothing_delivered(w: &World) {
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        w.postfix.delivered().is_empty(),
        "delivered: {:?}",
        w.postfix.delivered().iter().map(|m| m.header_block()).collect::<Vec<_>>()
    );
}

#[test]
fn opted_out_buyer_blocks_ordinary_seller_mail_with_instructions() {
    let w = opted_out_world("");
    let reply = seller_sends(
        &w,
        &[
            ("Subject", "New arrivals this week!"),
            ("Importance", "high"),
            ("X-Priority", "1 (Highest)"),
            ("Priority", "urgent"),
        ],
    );
    assert_eq!(reply.code, 550, "{reply:?}");
    let text = reply.text.clone();
    assert!(text.starts_with("5.7.1 Not delivered: this buyer has opted out of unsolicited messages."), "{text}");
    for needle in [
        "[Important] in the subject",
        "customization, delivery scheduling or shipping-address",
        "reply in a thread the buyer started",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from: {text}");
    }
    assert!(text.lines().count() >= 5 && text.lines().all(|l| l.starts_with("5.7.1")), "{text}");
    println!("opt-out reply:\n{} {}", reply.code, text);
    nothing_delivered(&w);
    let archived = json(&ok(&w.config, &["archive", "list", "--seller", "S1", "--json"]));
    let rows = archived.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{archived}");
    assert_eq!(rows[0]["decision"], "blocked");
    assert_eq!(rows[0]["direction"], "seller_to_buyer");
    assert_eq!(rows[0]["buyer"], "B1");
    assert_eq!(rows[0]["subject"], "New arrivals this week!");
}

#[test]
fn critical_markers_let_mail_through_even_encoded() {
    let w = opted_out_world("");
    assert_eq!(seller_sends(&w, &[("Subject", "[Important] Which delivery day suits you?")]).code, 250);
    assert_eq!(seller_sends(&w, &[("Subject", "re: [IMPORTANT] address")]).code, 250);
    // "[중요] 배송 주소 확인" (Korean marker), RFC 2047 base64.
    assert_eq!(seller_sends(&w, &[("Subject", "=?UTF-8?B?W+ykkeyalF0g67Cw7IahIOyjvOyGjCDtmZXsnbg=?=")]).code, 250);
    let got = w.postfix.wait_delivered(3, WAIT);
    assert!(got.iter().all(|m| m.rcpt_to == ["bob@buyer-mail.example"]));
}

#[test]
fn replies_in_the_buyers_thread_go_through() {
    let w = opted_out_world("");
    let question = message(
        &[("From", "bob@buyer-mail.example"), ("Subject", "Size?"), ("Message-ID", "<b1@buyer-mail.example>")],
        "Which size?\r\n",
    );
    send(w.port(), "bob@buyer-mail.example", &[&w.seller_alias], &question);
    let relay_id = header(&w.postfix.wait_delivered(1, WAIT)[0], "Message-ID").unwrap();
    assert_eq!(seller_sends(&w, &[("Subject", "Re: Size?"), ("In-Reply-To", &relay_id)]).code, 250);
    assert_eq!(
        seller_sends(&w, &[("Subject", "Re: Size?"), ("References", &format!("<x@y.example> {relay_id}"))]).code,
        250
    );
    // The seller's own earlier messages do not make a thread the buyer started.
    let delivered = w.postfix.wait_delivered(3, WAIT);
    let own = header(&delivered[1], "Message-ID").unwrap();
    assert_eq!(seller_sends(&w, &[("Subject", "Re: more"), ("In-Reply-To", &own)]).code, 550);
    // Nor does a made-up id.
    assert_eq!(seller_sends(&w, &[("Subject", "Re: more"), ("In-Reply-To", "<bsm.fake@m.example.com>")]).code, 550);
}

#[test]
fn exempt_order_categories_go_through() {
    let w = opted_out_world("");
    let c = &w.config;
    ok(c, &["order", "add", "114-0000001-0000001", "--seller", "S1", "--buyer", "B1", "--category", "wine"]);
    ok(c, &["order", "add", "114-0000002-0000002", "--seller", "S1", "--buyer", "B1", "--category", "books"]);
    // The subject names the wine order: exempt.
    assert_eq!(seller_sends(&w, &[("Subject", "Your order 114-0000001-0000001 ships today")]).code, 250);
    // No order id: the pair's latest order (books) decides: blocked.
    assert_eq!(seller_sends(&w, &[("Subject", "Your order ships today")]).code, 550);
    // Another pair's order id does not count either.
    ok(c, &["order", "add", "114-0000003-0000003", "--seller", "S1", "--buyer", "B2", "--category", "handmade"]);
    assert_eq!(seller_sends(&w, &[("Subject", "Order 114-0000003-0000003")]).code, 550);
    // A newer handmade order of this pair becomes the latest: exempt.
    ok(c, &["order", "add", "114-0000004-0000004", "--seller", "S1", "--buyer", "B1", "--category", "handmade"]);
    assert_eq!(seller_sends(&w, &[("Subject", "Your vase is being glazed")]).code, 250);
    assert_eq!(w.postfix.wait_delivered(2, WAIT).len(), 2);
    // Each decision is recorded with the order it concerned.
    let rows = json(&ok(&w.config, &["archive", "list", "--seller", "S1", "--json"]));
    let summary: Vec<(String, String)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["decision"].as_str().unwrap().to_string(), r["order"].as_str().unwrap_or("-").to_string()))
        .collect();
    let expected = [
        ("delivered", "114-0000001-0000001"),
        ("blocked", "114-0000002-0000002"),
        ("blocked", "114-0000002-0000002"),
        ("delivered", "114-0000004-0000004"),
    ];
    assert_eq!(summary, expected.map(|(d, o)| (d.to_string(), o.to_string())));
    let filtered = json(&ok(&w.config, &["archive", "list", "--order", "114-0000004-0000004", "--json"]));
    assert_eq!(filtered.as_array().unwrap().len(), 1);
    println!("{}", ok(&w.config, &["archive", "list", "--seller", "S1"]));
}

#[test]
fn with_notices_off_blocked_mail_is_accepted_and_discarded() {
    let w = opted_out_world("");
    ok(&w.config, &["seller", "set", "S1", "--opt-out-notices", "off"]);
    let reply = seller_sends(&w, &[("Subject", "Weekly newsletter")]);
    assert_eq!(reply.code, 250, "{reply:?}");
    nothing_delivered(&w);
    assert!(w.postfix.maillog().contains("milter-discard"), "{}", w.postfix.maillog());
    let archived = json(&ok(&w.config, &["archive", "list", "--alias", &w.s1b1, "--json"]));
    assert_eq!(archived[0]["decision"], "discarded", "{archived}");
    // Opting back in delivers again.
    ok(&w.config, &["buyer", "opt-in", "B1"]);
    assert_eq!(seller_sends(&w, &[("Subject", "Weekly newsletter")]).code, 250);
    assert_eq!(w.postfix.wait_delivered(1, WAIT).len(), 1);
}

#[test]
fn daily_limit_is_exact_under_concurrency_and_spares_buyers() {
    // base 5, no per-order allowance: the limit is 5 today.
    let w = World::start_with("[policy]\ndaily_limit_base = 5\ndaily_limit_per_order = 0\n");
    // Blocked mail does not count.
    ok(&w.config, &["buyer", "opt-out", "B2"]);
    for _ in 0..3 {
        let m = message(&[("From", SELLER), ("Subject", "Promo")], "x\r\n");
        assert_eq!(send(w.port(), SELLER, &[&w.s1b2], &m).2.unwrap().code, 550);
    }
    for i in 0..4 {
        assert_eq!(seller_sends(&w, &[("Subject", &format!("update {i}"))]).code, 250);
    }
    // 50 parallel sends at limit - 1: exactly one more is accepted.
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let (port, alias) = (w.port(), w.s1b1.clone());
            std::thread::spawn(move || {
                let m = message(&[("From", SELLER), ("Subject", &format!("parallel {i}"))], "x\r\n");
                let (_, rcpts, data) = send(port, SELLER, &[&alias], &m);
                data.unwrap_or_else(|| rcpts[0].clone())
            })
        })
        .collect();
    let replies: Vec<Reply> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let accepted = replies.iter().filter(|r| r.code == 250).count();
    assert_eq!(accepted, 1, "{replies:?}");
    assert!(
        replies.iter().all(|r| r.code == 250 || (r.code == 450 && r.text.starts_with("4.7.1 Daily limit of 5"))),
        "{replies:?}"
    );
    assert_eq!(w.postfix.wait_delivered(5, WAIT).len(), 5);
    // Once reached: 450 at RCPT, saying when it resets.
    let m = message(&[("From", SELLER), ("Subject", "one more")], "x\r\n");
    let (_, rcpts, data) = send(w.port(), SELLER, &[&w.s1b1], &m);
    assert!(data.is_none());
    assert_eq!(rcpts[0].code, 450);
    assert!(rcpts[0].text.contains("resets at 00:00 UTC (in "), "{:?}", rcpts[0]);
    println!("limit reply: {} {}", rcpts[0].code, rcpts[0].text);
    // Buyers are never limited.
    for i in 0..7 {
        let m = message(&[("From", "bob@buyer-mail.example"), ("Subject", &format!("question {i}"))], "?\r\n");
        assert_eq!(send(w.port(), "bob@buyer-mail.example", &[&w.seller_alias], &m).2.unwrap().code, 250);
    }
    assert_eq!(w.postfix.wait_delivered(12, WAIT).len(), 12);
}
