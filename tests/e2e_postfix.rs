//! End to end through a real Postfix: a private instance on loopback with the
//! real `bsm-milter` binary in front (unix socket, default_action=tempfail)
//! and smtp-sink downstream. Checks what actually arrives.

mod support;

use mail_parser::MessageParser;
use std::time::Duration;
use support::postfix::send;
use support::process::{Served, ok};
use support::world::{WAIT, World, assert_no_trace, header, json, message};

/// One log line per decision with the queue id: with the short macro lists the milter asks
/// Postfix for, the decision on a message is logged under the id Postfix queued it as.
#[test]
fn each_decision_is_logged_with_postfix_queue_id() {
    let w = World::start();
    let msg = message(&[("From", "bob@buyer-mail.example"), ("Subject", "Queue id")], "Hello\r\n");
    let (_, _, data) = send(w.port(), "bob@buyer-mail.example", &[&w.seller_alias], &msg);
    let data = data.unwrap();
    assert_eq!(data.code, 250, "{}", data.text);
    let qid = data.text.rsplit_once("queued as ").map(|(_, q)| q.trim().to_string()).expect("a queue id");
    w.postfix.wait_delivered(1, WAIT);
    let log = w.milter.as_ref().unwrap().log_text();
    assert!(log.lines().any(|l| l.contains(&format!("{qid}: ")) && l.contains("delivered")), "{qid}: {log}");
    assert!(!log.contains("NOQUEUE"), "{log}");
}

#[test]
fn buyer_and_seller_round_trip_and_thread() {
    let w = World::start();
    // Buyer -> seller alias.
    let original = message(
        &[
            ("From", "Bob <bob@buyer-mail.example>"),
            ("To", &format!("Shop One <{}>", w.seller_alias)),
            ("Subject", "Is the blue one in stock?"),
            ("Message-ID", "<q1@buyer-mail.example>"),
            ("Date", "Mon, 23 Nov 2026 10:00:00 +0000"),
        ],
        "Hello, is it in stock?\r\n",
    );
    let (mail, rcpts, data) = send(w.port(), "bob@buyer-mail.example", &[&w.seller_alias], &original);
    assert_eq!((mail.code, rcpts[0].code, data.unwrap().code), (250, 250, 250));
    let got = w.postfix.wait_delivered(1, WAIT).remove(0);
    assert_eq!(got.mail_from, w.s1b1, "envelope sender is the pair alias");
    assert_eq!(got.rcpt_to, ["cs@seller-corp.example"]);
    assert_eq!(header(&got, "From").unwrap(), format!("\"Bob Buyer\" <{}>", w.s1b1));
    assert_eq!(header(&got, "To").unwrap(), "\"Shop One\" <cs@seller-corp.example>");
    assert!(header(&got, "Received").is_none(), "{}", got.header_block());
    let relay_id = header(&got, "Message-ID").unwrap();
    assert!(relay_id.ends_with("@m.example.com>"), "{relay_id}");
    assert_no_trace(&got, &["bob@", "buyer-mail.example"]);

    // Seller replies to the pair alias, threading on the id it was shown.
    let reply = message(
        &[
            ("From", "Alice <alice@seller-corp.example>"),
            ("To", &format!("\"Bob Buyer\" <{}>", w.s1b1)),
            ("Subject", "Re: Is the blue one in stock?"),
            ("Message-ID", "<r1@seller-corp.example>"),
            ("In-Reply-To", &relay_id),
            ("References", &relay_id),
        ],
        "Yes, it is.\r\n",
    );
    let (_, rcpts, data) = send(w.port(), "alice@seller-corp.example", &[&w.s1b1], &reply);
    assert_eq!((rcpts[0].code, data.unwrap().code), (250, 250));
    let got = w.postfix.wait_delivered(2, WAIT).remove(1);
    assert_eq!(got.mail_from, w.seller_alias, "envelope sender is the seller alias");
    assert_eq!(got.rcpt_to, ["bob@buyer-mail.example"]);
    assert_eq!(header(&got, "From").unwrap(), format!("\"Shop One\" <{}>", w.seller_alias));
    assert_eq!(header(&got, "To").unwrap(), "\"Bob Buyer\" <bob@buyer-mail.example>");
    // The buyer's client threads the reply under the buyer's own Message-ID.
    assert_eq!(header(&got, "In-Reply-To").unwrap(), "<q1@buyer-mail.example>");
    assert_eq!(header(&got, "References").unwrap(), "<q1@buyer-mail.example>");
    let seller_relay_id = header(&got, "Message-ID").unwrap();
    assert_no_trace(&got, &["alice", "seller-corp"]);

    // The buyer answers: the seller's client threads on the seller's own ids.
    let answer = message(
        &[
            ("From", "bob@buyer-mail.example"),
            ("To", &w.seller_alias),
            ("Subject", "Re: Re: Is the blue one in stock?"),
            ("Message-ID", "<q2@buyer-mail.example>"),
            ("In-Reply-To", &seller_relay_id),
            ("References", &format!("<q1@buyer-mail.example> {seller_relay_id}")),
        ],
        "Great, thanks.\r\n",
    );
    send(w.port(), "bob@buyer-mail.example", &[&w.seller_alias], &answer);
    let got = w.postfix.wait_delivered(3, WAIT).remove(2);
    assert_eq!(header(&got, "In-Reply-To").unwrap(), "<r1@seller-corp.example>");
    assert_eq!(header(&got, "References").unwrap(), format!("{relay_id} <r1@seller-corp.example>"));
    assert_no_trace(&got, &["bob@", "buyer-mail.example", "q1@", "q2@"]);
    // The log is clean: no protocol warnings, no colour codes outside a terminal,
    // one decision line per message.
    let log = w.milter.as_ref().unwrap().log_text();
    assert!(!log.contains("WARN") && !log.contains('\x1b'), "{log}");
    assert_eq!(log.matches(": delivered").count(), 3, "{log}");
}

#[test]
fn unauthorised_senders_are_refused_and_nothing_is_delivered() {
    let w = World::start();
    let body = message(&[("From", "x@x.example"), ("Subject", "hi")], "hi\r\n");
    let cases = [
        ("stranger", "eve@evil.example", w.s1b1.clone(), "550 5.1.1"),
        ("unknown alias", "bob@buyer-mail.example", "zzzzzzzzzzzzzzz@m.example.com".to_string(), "550 5.1.1"),
        ("another seller", "sales@shop2.example", w.s1b1.clone(), "550 5.7.1"),
        ("seller to seller", "sales@shop2.example", w.seller_alias.clone(), "550 5.7.1"),
        ("unapproved address of the right seller", "intern@seller-corp.example", w.s1b1.clone(), "550 5.7.1"),
    ];
    let mut texts = Vec::new();
    for (what, from, rcpt, expect) in &cases {
        let (_, rcpts, data) = send(w.port(), from, &[rcpt], &body);
        let reply = format!("{} {}", rcpts[0].code, rcpts[0].text);
        assert!(reply.starts_with(expect), "{what}: {reply}");
        assert!(data.is_none(), "{what}: DATA after a refused recipient");
        texts.push(reply);
    }
    // Stranger and unknown alias: the same reply, byte for byte.
    assert_eq!(texts[0], texts[1]);
    // A seller From: header that is not approved is refused at end of message.
    let forged = message(&[("From", "boss@seller-corp.example"), ("To", &w.s1b1), ("Subject", "hi")], "hi\r\n");
    let (_, rcpts, data) = send(w.port(), "alice@seller-corp.example", &[&w.s1b1], &forged);
    assert_eq!(rcpts[0].code, 250);
    let data = data.unwrap();
    assert!(data.code == 550 && data.text.contains("5.7.1"), "{data:?}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(w.postfix.delivered().is_empty());
}

#[test]
fn second_buyer_gets_452_and_the_first_copy_names_no_other_alias() {
    let w = World::start();
    let msg = message(
        &[
            ("From", "alice@seller-corp.example"),
            ("To", &format!("{}, {}", w.s1b1, w.s1b2)),
            ("Subject", "New collection"),
        ],
        "Dear customer\r\n",
    );
    let (_, rcpts, data) = send(w.port(), "alice@seller-corp.example", &[&w.s1b1, &w.s1b2], &msg);
    assert_eq!(rcpts[0].code, 250);
    assert!(rcpts[1].code == 452 && rcpts[1].text.contains("4.5.3"), "{:?}", rcpts[1]);
    assert_eq!(data.unwrap().code, 250);
    let got = w.postfix.wait_delivered(1, WAIT).remove(0);
    assert_eq!(got.rcpt_to, ["bob@buyer-mail.example"]);
    assert_no_trace(&got, &[&w.s1b2, "carol", "alice", "seller-corp"]);
}

#[test]
fn leaky_headers_leave_no_trace_of_the_sender() {
    let w = World::start();
    let msg = message(
        &[
            (
                "Received",
                "from mail.seller-corp.example (mail.seller-corp.example [192.0.2.7]) by mx.seller-corp.example",
            ),
            ("DKIM-Signature", "v=1; a=rsa-sha256; d=seller-corp.example; s=sel; h=from; bh=x; b=y"),
            ("From", "\"alice@seller-corp.example\" <alice@seller-corp.example>"),
            ("Sender", "Alice <alice@seller-corp.example>"),
            ("Reply-To", "alice.private@seller-corp.example"),
            ("To", &format!("=?utf-8?B?{}?= <{}>", "YWxpY2VAc2VsbGVyLWNvcnAuZXhhbXBsZQ==", w.s1b1)),
            ("Cc", "Alice Boss <boss@seller-corp.example>"),
            ("Subject", "=?utf-8?Q?Write_to_alice=40seller-corp.example?="),
            ("Message-ID", "<leak1@seller-corp.example>"),
            ("X-Originating-IP", "[192.0.2.7]"),
            ("X-Mailer", "SellerCorp Mailer"),
            ("Disposition-Notification-To", "alice@seller-corp.example"),
            ("Return-Receipt-To", "alice@seller-corp.example"),
            ("List-Unsubscribe", "<mailto:unsub@seller-corp.example>"),
            ("MIME-Version", "1.0"),
            ("Content-Type", "text/plain; charset=utf-8"),
        ],
        "Your parcel ships today.\r\n",
    );
    let (_, rcpts, data) = send(w.port(), "alice@seller-corp.example", &[&w.s1b1], &msg);
    assert_eq!((rcpts[0].code, data.unwrap().code), (250, 250));
    let got = w.postfix.wait_delivered(1, WAIT).remove(0);
    assert_no_trace(&got, &["alice", "seller-corp", "192.0.2.7", "sellercorp"]);
    let names: Vec<String> =
        MessageParser::new().parse(&got.raw).unwrap().headers().iter().map(|h| h.name().to_string()).collect();
    for gone in [
        "Received",
        "Reply-To",
        "Sender",
        "Cc",
        "DKIM-Signature",
        "X-Originating-IP",
        "Disposition-Notification-To",
        "List-Unsubscribe",
    ] {
        assert!(!names.iter().any(|n| n.eq_ignore_ascii_case(gone)), "{gone} survived: {names:?}");
    }
    assert_eq!(header(&got, "Subject").unwrap(), "Write to [email removed]");
}

#[test]
fn delivery_report_to_the_seller_alias_becomes_a_notice() {
    let w = World::start();
    let dsn = message(
        &[
            ("From", "Mail Delivery System <MAILER-DAEMON@mx.buyer-mail.example>"),
            ("To", &w.seller_alias),
            ("Subject", "Undelivered Mail Returned to Sender"),
            ("MIME-Version", "1.0"),
            ("Content-Type", "multipart/report; report-type=delivery-status; boundary=\"B\""),
        ],
        "--B\r\nContent-Type: text/plain\r\n\r\n<bob@buyer-mail.example>: mailbox full\r\n\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; bob@buyer-mail.example\r\nAction: failed\r\nStatus: 5.2.2\r\n\r\n--B--\r\n",
    );
    let (_, rcpts, data) = send(w.port(), "", &[&w.seller_alias], &dsn);
    assert_eq!((rcpts[0].code, data.unwrap().code), (250, 250));
    let got = w.postfix.wait_delivered(1, WAIT).remove(0);
    assert_eq!(got.mail_from, "");
    assert_eq!(got.rcpt_to, ["cs@seller-corp.example"]);
    let parsed = MessageParser::new().parse(&got.raw).unwrap();
    assert!(parsed.body_text(0).unwrap().contains("The buyer can still read your message"));
    assert_no_trace(&got, &["bob", "buyer-mail"]);
}

#[test]
fn milter_down_means_tempfail_and_restart_keeps_every_alias() {
    let mut w = World::start();
    let before = ok(&w.config, &["alias", "get", "--seller", "S1", "--buyer", "B1"]);
    let msg = message(&[("From", "bob@buyer-mail.example"), ("Subject", "hi")], "hi\r\n");
    let (_, rcpts, data) = send(w.port(), "bob@buyer-mail.example", &[&w.seller_alias], &msg);
    assert_eq!((rcpts[0].code, data.unwrap().code), (250, 250));
    w.postfix.wait_delivered(1, WAIT);
    assert!(w.milter.take().unwrap().stop().success());
    let (mail, rcpts, data) = send(w.port(), "bob@buyer-mail.example", &[&w.seller_alias], &msg);
    // Postfix answers 451 4.7.1 at MAIL (the RCPT then gets "503 need MAIL").
    assert_eq!(mail.code, 451, "{mail:?}");
    assert!(rcpts[0].code != 250 && data.is_none(), "{rcpts:?}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(w.postfix.delivered().len(), 1, "delivered while the milter was down");

    // Same store, new process: every alias is as it was, and mail flows again.
    let dir = w.config.parent().unwrap().to_path_buf();
    let milter = Served::start_with(&dir, w.config.clone());
    assert_eq!(ok(&w.config, &["alias", "get", "--seller", "S1", "--buyer", "B1"]), before);
    let seller = json(&ok(&w.config, &["seller", "show", "S1", "--json"]));
    assert_eq!(seller["alias"], w.seller_alias.as_str());
    let (_, rcpts, data) = send(w.port(), "bob@buyer-mail.example", &[&w.seller_alias], &msg);
    assert_eq!((rcpts[0].code, data.unwrap().code), (250, 250));
    let got = w.postfix.wait_delivered(2, WAIT).remove(1);
    assert_eq!(got.mail_from, w.s1b1);
    // A clean stop made the journaled record durable in the store: nothing to replay.
    let log = milter.log_text();
    assert!(!log.contains("from the journal"), "{log}");
    assert_eq!(json(&ok(&w.config, &["archive", "list", "--json"])).as_array().unwrap().len(), 2);
    w.milter = Some(milter);
}

#[test]
fn what_was_acknowledged_survives_sigkill() {
    let mut w = World::start();
    ok(&w.config, &["buyer", "add", "B3", "--email", "dana@dana-mail.example"]);
    // B3's first message creates its pair alias and Message-ID map at end of message.
    let first = message(
        &[("From", "dana@dana-mail.example"), ("Subject", "Hello"), ("Message-ID", "<d1@dana-mail.example>")],
        "Hi\r\n",
    );
    let (_, rcpts, data) = send(w.port(), "dana@dana-mail.example", &[&w.seller_alias], &first);
    assert_eq!((rcpts[0].code, data.unwrap().code), (250, 250));
    w.milter.take().unwrap().kill();
    let got = w.postfix.wait_delivered(1, WAIT).remove(0);
    let pair_alias = got.mail_from.clone();
    let relay_id = header(&got, "Message-ID").unwrap();

    let dir = w.config.parent().unwrap().to_path_buf();
    let milter = Served::start_with(&dir, w.config.clone());
    // The record was committed to the store without a flush; the archive's journal kept it.
    let log = milter.log_text();
    assert!(log.contains("applied 1 message record(s) from the journal"), "{log}");
    w.milter = Some(milter);
    let found = json(&ok(&w.config, &["alias", "lookup", &pair_alias, "--json"]));
    assert_eq!((found["seller"].as_str(), found["buyer"].as_str()), (Some("S1"), Some("B3")));
    let reply = message(
        &[
            ("From", "alice@seller-corp.example"),
            ("Subject", "Re: Hello"),
            ("In-Reply-To", &relay_id),
            ("Message-ID", "<a9@seller-corp.example>"),
        ],
        "Hello Dana\r\n",
    );
    let (_, rcpts, data) = send(w.port(), "alice@seller-corp.example", &[&pair_alias], &reply);
    assert_eq!((rcpts[0].code, data.unwrap().code), (250, 250));
    let got = w.postfix.wait_delivered(2, WAIT).remove(1);
    assert_eq!(got.rcpt_to, ["dana@dana-mail.example"]);
    assert_eq!(header(&got, "In-Reply-To").unwrap(), "<d1@dana-mail.example>");
}

#[test]
fn an_unusable_archive_stops_the_daemon_at_start_naming_it() {
    // The archive directory cannot be created: its path is a regular file. The archive is the
    // store's journal too, so the daemon does not start (systemd says why) rather than
    // tempfail every message; a full or failing archive at run time tempfails (e2e_faults).
    let mut w = World::start_with("");
    let config = std::fs::read_to_string(&w.config).unwrap();
    let dir = w.config.parent().unwrap().to_path_buf();
    std::fs::write(dir.join("not-a-dir"), b"x").unwrap();
    let broken = config.replace(
        &format!("dir = \"{}/archive\"", dir.display()),
        &format!("dir = \"{}/not-a-dir/archive\"", dir.display()),
    );
    assert_ne!(broken, config);
    w.milter.take().unwrap().stop();
    std::fs::write(&w.config, broken).unwrap();
    let err = support::process::fails(&w.config, &["serve"]);
    let path = format!("{}/not-a-dir/archive", dir.display());
    assert!(err.contains("cannot open the store") && err.contains(&path) && err.contains("Not a directory"), "{err}");
    let msg = message(&[("From", "bob@buyer-mail.example"), ("Subject", "hi")], "hi\r\n");
    let (mail, _, _) = send(w.port(), "bob@buyer-mail.example", &[&w.seller_alias], &msg);
    assert!(mail.is_transient(), "no milter: Postfix tempfails (default_action = tempfail): {mail}");
    std::thread::sleep(Duration::from_secs(1));
    assert!(w.postfix.delivered().is_empty());
}
