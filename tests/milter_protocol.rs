//! Protocol-level tests: the milter driven with indymilter-test, asserting the
//! SMTP replies and end-of-message actions Postfix would receive.

mod support;

use indymilter_test::{EomAction, MacroStage, ProtoOpts, Status, TestConnection, any};
use support::daemon::{Parties, TestDaemon};

async fn open(d: &TestDaemon) -> TestConnection {
    let mut conn = TestConnection::configure().open_tcp(d.milter).await.unwrap();
    conn.macros(MacroStage::Mail, [("i", "QID1")]).await.unwrap();
    conn
}

fn b(s: &str) -> String {
    format!("<{s}>")
}

fn reply_text(status: &Status) -> String {
    match status {
        Status::Reject { message: Some(m) } | Status::Tempfail { message: Some(m) } => m.to_string_lossy().into_owned(),
        other => panic!("expected a reply with text, got {other:?}"),
    }
}

/// The one archive record of seller S1 (a notice), with its two copies as text.
async fn only_record(d: &TestDaemon) -> (serde_json::Value, String, String) {
    let list = d.admin.get("/v1/messages?seller=S1").await.unwrap();
    let [record] = list.as_array().unwrap().as_slice() else { panic!("one record expected: {list}") };
    let id = record["id"].as_str().unwrap();
    let copy = |which: &'static str| async move {
        let bytes = d.admin.request_raw(hyper::Method::GET, &format!("/v1/messages/{id}/{which}"), None).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    };
    (record.clone(), copy("original").await, copy("delivered").await)
}

/// Reports and automatic messages never count as buyer messages awaiting an answer.
async fn nothing_awaits_an_answer(d: &TestDaemon) {
    let m = d.admin.get("/v1/metrics?seller=S1").await.unwrap();
    assert_eq!(m["windows"]["7d"]["received"], 0, "{m}");
}

async fn send_headers(conn: &mut TestConnection, headers: &[(&str, &str)]) {
    for (n, v) in headers {
        conn.header(*n, *v).await.unwrap();
    }
}

fn header_value(actions: &[EomAction], name: &str) -> Option<String> {
    actions.iter().find_map(|a| match a {
        EomAction::ChangeHeader { name: n, value, .. } | EomAction::AddHeader { name: n, value }
            if n.to_str().unwrap().eq_ignore_ascii_case(name) =>
        {
            Some(value.to_string_lossy().into_owned())
        }
        _ => None,
    })
}

#[tokio::test]
async fn negotiates_only_what_it_uses() {
    let d = TestDaemon::start().await;
    let conn = TestConnection::configure().open_tcp(d.milter).await.unwrap();
    let opts = conn.negotiated_opts();
    // No connect/helo callbacks: Postfix does not send those stages; nor DATA.
    assert!(opts.contains(ProtoOpts::NO_CONNECT | ProtoOpts::NO_HELO | ProtoOpts::NO_DATA));
    assert!(!opts.contains(ProtoOpts::NO_BODY), "the body is archived");
    assert!(opts.contains(ProtoOpts::NOREPLY_HEADER | ProtoOpts::NOREPLY_BODY));
    // Only the macros it reads: the queue id, and the SMTP AUTH login at MAIL.
    let macros: Vec<(MacroStage, &str)> = {
        let mut m: Vec<_> = conn.requested_macros().iter().map(|(s, v)| (*s, v.to_str().unwrap())).collect();
        m.sort();
        m
    };
    assert_eq!(macros, [(MacroStage::Mail, "i {auth_authen}"), (MacroStage::Rcpt, "i"), (MacroStage::Eom, "i")]);
    conn.close().await.unwrap();
    d.stop().await;
}

#[tokio::test]
async fn buyer_to_seller_is_rewritten_to_the_pair_alias() {
    let d = TestDaemon::start().await;
    let p: Parties = d.parties().await;
    let mut conn = open(&d).await;
    assert_eq!(conn.mail(["<Bob@Buyer.example>"]).await.unwrap(), Status::Continue);
    assert_eq!(conn.rcpt([b(&p.s1_alias)]).await.unwrap(), Status::Continue);
    send_headers(
        &mut conn,
        &[
            ("From", "\"Bob (bob@buyer.example)\" <bob@buyer.example>"),
            ("To", &format!("Shop <{}>", p.s1_alias)),
            ("Reply-To", "bob@buyer.example"),
            ("Subject", "Question"),
            ("Message-ID", "<m1@buyer.example>"),
        ],
    )
    .await;
    conn.body("Hello, is it in stock?\r\n").await.unwrap();
    let (actions, status) = conn.eom().await.unwrap();
    assert_eq!(status, Status::Continue);
    // Every buyer message carries the seller's command footer.
    let body: Vec<u8> = actions
        .actions
        .iter()
        .filter_map(|a| match a {
            EomAction::ReplaceBody { chunk } => Some(chunk.to_vec()),
            _ => None,
        })
        .flatten()
        .collect();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("Hello, is it in stock?") && body.contains("no-response-needed+"), "{body}");
    assert!(actions.has_change_sender(b(&p.s1b1).as_str(), any()));
    assert!(actions.has_delete_recipient(b(&p.s1_alias).as_str()));
    assert!(actions.has_add_recipient("<cs@shop1.example>", any()));
    assert!(actions.has_change_header("From", 1, format!("\"Bob Buyer\" <{}>", p.s1b1).as_str()));
    assert!(actions.has_change_header("To", 1, "\"Shop One\" <cs@shop1.example>"));
    assert!(actions.has_delete_header("Reply-To", 1));
    let mid = header_value(&actions.actions, "Message-ID").unwrap();
    assert!(mid.ends_with("@m.example.com>") && !mid.contains("buyer.example"), "{mid}");
    conn.close().await.unwrap();
    d.stop().await;
}

#[tokio::test]
async fn end_of_message_is_idempotent_across_retries() {
    let d = TestDaemon::start().await;
    let p = d.parties().await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut conn = open(&d).await;
        conn.mail(["<bob@buyer.example>"]).await.unwrap();
        conn.rcpt([b(&p.s1_alias)]).await.unwrap();
        send_headers(&mut conn, &[("From", "bob@buyer.example"), ("Message-ID", "<retry@buyer.example>")]).await;
        let (actions, _) = conn.eom().await.unwrap();
        ids.push(header_value(&actions.actions, "Message-ID").unwrap());
        conn.close().await.unwrap();
    }
    assert_eq!(ids[0], ids[1]);
    // A report delivered again is the same notice, archived once.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut conn = open(&d).await;
        conn.mail(["<>"]).await.unwrap();
        conn.rcpt([b(&p.s1b2)]).await.unwrap();
        send_headers(
            &mut conn,
            &[("From", "MAILER-DAEMON@mx.shop1.example"), ("Message-ID", "<dsn@mx.shop1.example>")],
        )
        .await;
        let (actions, _) = conn.eom().await.unwrap();
        ids.push(header_value(&actions.actions, "Message-ID").unwrap());
        conn.close().await.unwrap();
    }
    assert_eq!(ids[0], ids[1]);
    let notices = d.admin.get("/v1/messages?buyer=B2").await.unwrap();
    assert_eq!(notices.as_array().unwrap().len(), 1, "{notices}");
    d.stop().await;
}

#[tokio::test]
async fn strangers_and_unknown_aliases_get_one_identical_reply() {
    let d = TestDaemon::start().await;
    let p = d.parties().await;
    let mut replies = Vec::new();
    for (from, rcpt) in [
        ("<eve@evil.example>", b(&p.s1b1)),
        ("<eve@evil.example>", b(&p.s1_alias)),
        ("<bob@buyer.example>", "<zzzzzzzzzzzzzzz@m.example.com>".to_string()),
        ("<eve@evil.example>", "<postmaster@m.example.com>".to_string()),
    ] {
        let mut conn = open(&d).await;
        conn.mail([from]).await.unwrap();
        replies.push(reply_text(&conn.rcpt([rcpt]).await.unwrap()));
        conn.close().await.unwrap();
    }
    assert!(replies[0].starts_with("550 5.1.1 "), "{}", replies[0]);
    assert!(replies.iter().all(|r| r == &replies[0]), "{replies:?}");
    d.stop().await;
}

#[tokio::test]
async fn sellers_are_refused_outside_their_own_buyers() {
    let d = TestDaemon::start().await;
    let p = d.parties().await;
    for (from, rcpt, expect) in [
        ("<sales@shop2.example>", b(&p.s1b1), "550 5.7.1 This buyer alias belongs to another seller"),
        ("<sales@shop2.example>", b(&p.s1_alias), "550 5.7.1 Sellers may not write to other sellers"),
        ("<intern@shop1.example>", b(&p.s1b1), "550-5.7.1 This sending address is not approved"),
    ] {
        let mut conn = open(&d).await;
        conn.mail([from]).await.unwrap();
        let text = reply_text(&conn.rcpt([rcpt]).await.unwrap());
        assert!(text.starts_with(expect), "{from}: {text}");
        conn.close().await.unwrap();
    }
    d.stop().await;
}

#[tokio::test]
async fn seller_from_header_must_be_approved_too() {
    let d = TestDaemon::start().await;
    let p = d.parties().await;
    let mut conn = open(&d).await;
    conn.mail(["<sales@shop1.example>"]).await.unwrap();
    assert_eq!(conn.rcpt([b(&p.s1b1)]).await.unwrap(), Status::Continue);
    send_headers(&mut conn, &[("From", "Boss <boss@shop1.example>"), ("Subject", "hi")]).await;
    let (actions, status) = conn.eom().await.unwrap();
    assert!(reply_text(&status).starts_with("550-5.7.1 The From: address"), "{status:?}");
    assert!(actions.actions.is_empty());
    conn.close().await.unwrap();
    d.stop().await;
}

#[tokio::test]
async fn one_counterpart_per_message() {
    let d = TestDaemon::start().await;
    let p = d.parties().await;
    let mut conn = open(&d).await;
    conn.mail(["<sales@shop1.example>"]).await.unwrap();
    assert_eq!(conn.rcpt([b(&p.s1b1)]).await.unwrap(), Status::Continue);
    let second = conn.rcpt([b(&p.s1b2)]).await.unwrap();
    assert!(reply_text(&second).starts_with("452 4.5.3 "), "{second:?}");
    let outside = conn.rcpt(["<someone@else.example>"]).await.unwrap();
    assert!(reply_text(&outside).starts_with("452 4.5.3 "));
    conn.close().await.unwrap();
    // And the other way round: outside first, then an alias.
    let mut conn = open(&d).await;
    conn.mail(["<sales@shop1.example>"]).await.unwrap();
    assert_eq!(conn.rcpt(["<someone@else.example>"]).await.unwrap(), Status::Continue);
    assert!(reply_text(&conn.rcpt([b(&p.s1b1)]).await.unwrap()).starts_with("452 4.5.3 "));
    conn.close().await.unwrap();
    d.stop().await;
}

#[tokio::test]
async fn mail_without_relay_recipients_passes_untouched() {
    let d = TestDaemon::start().await;
    let mut conn = open(&d).await;
    conn.mail(["<anyone@a.example>"]).await.unwrap();
    assert_eq!(conn.rcpt(["<other@b.example>"]).await.unwrap(), Status::Continue);
    conn.header("From", "anyone@a.example").await.unwrap();
    conn.body("Hello\r\n").await.unwrap();
    let (actions, status) = conn.eom().await.unwrap();
    assert_eq!(status, Status::Accept);
    assert!(actions.actions.is_empty(), "{:?}", actions.actions);
    conn.close().await.unwrap();
    d.stop().await;
}

#[tokio::test]
async fn delivery_report_to_a_seller_alias_becomes_a_relay_notice() {
    let d = TestDaemon::start().await;
    let p = d.parties().await;
    let mut conn = open(&d).await;
    conn.mail(["<>"]).await.unwrap();
    assert_eq!(conn.rcpt([b(&p.s1_alias)]).await.unwrap(), Status::Continue);
    send_headers(
        &mut conn,
        &[
            ("From", "MAILER-DAEMON@mx.buyer.example"),
            ("Subject", "Undelivered Mail Returned to Sender"),
            ("Content-Type", "multipart/report; report-type=delivery-status; boundary=\"b\""),
        ],
    )
    .await;
    let (actions, status) = conn.eom().await.unwrap();
    assert_eq!(status, Status::Continue);
    assert!(actions.has_delete_recipient(b(&p.s1_alias).as_str()));
    assert!(actions.has_add_recipient("<cs@shop1.example>", any()));
    assert!(actions.has_delete_header("From", 1) && actions.has_delete_header("Content-Type", 1));
    assert_eq!(header_value(&actions.actions, "Subject").as_deref(), Some("Undelivered message to a buyer"));
    let body: Vec<u8> = actions
        .actions
        .iter()
        .filter_map(|a| match a {
            EomAction::ReplaceBody { chunk } => Some(chunk.to_vec()),
            _ => None,
        })
        .flatten()
        .collect();
    let body = String::from_utf8(body).unwrap();
    assert!(body.contains("The buyer can still read your message"), "{body}");
    assert!(!body.contains("buyer.example"));
    // Archived: the report as it came, the notice as delivered; its buyer is not known.
    let (record, original, delivered) = only_record(&d).await;
    assert_eq!(record["notice"], true, "{record}");
    assert_eq!((&record["direction"], &record["decision"]), (&"buyer_to_seller".into(), &"delivered".into()));
    assert_eq!((&record["buyer"], &record["alias"]), (&"".into(), &serde_json::Value::Null), "{record}");
    assert_eq!(record["subject"], "Undelivered Mail Returned to Sender");
    assert!(original.contains("From: MAILER-DAEMON@mx.buyer.example"), "{original}");
    assert!(delivered.contains("The buyer can still read your message") && delivered.contains("cs@shop1.example"));
    nothing_awaits_an_answer(&d).await;
    conn.close().await.unwrap();
    d.stop().await;
}

#[tokio::test]
async fn shutdown_lets_the_message_in_flight_finish() {
    let d = TestDaemon::start().await;
    let p = d.parties().await;
    let mut conn = open(&d).await;
    conn.mail(["<bob@buyer.example>"]).await.unwrap();
    conn.rcpt([b(&p.s1_alias)]).await.unwrap();
    let milter = d.milter;
    let stopping = tokio::spawn(d.stop());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!stopping.is_finished(), "shutdown must wait for the message in flight");
    // No new sessions once shutdown began.
    let late = tokio::time::timeout(std::time::Duration::from_millis(500), TestConnection::open(milter)).await;
    assert!(!matches!(late, Ok(Ok(_))), "a new session was accepted during shutdown");
    send_headers(&mut conn, &[("From", "bob@buyer.example"), ("Subject", "last one")]).await;
    let (actions, status) = conn.eom().await.unwrap();
    assert_eq!(status, Status::Continue);
    assert!(actions.has_add_recipient("<cs@shop1.example>", any()));
    tokio::time::timeout(std::time::Duration::from_secs(10), stopping).await.unwrap().unwrap();
}

#[tokio::test]
async fn auto_replies_are_relayed_and_marked_and_trigger_nothing() {
    let d = TestDaemon::start().await;
    let p = d.parties().await;
    let mut conn = open(&d).await;
    conn.mail(["<sales@shop1.example>"]).await.unwrap();
    conn.rcpt([b(&p.s1b1)]).await.unwrap();
    send_headers(
        &mut conn,
        &[("From", "sales@shop1.example"), ("Subject", "Out of office"), ("Auto-Submitted", "auto-replied")],
    )
    .await;
    let (actions, status) = conn.eom().await.unwrap();
    assert_eq!(status, Status::Continue);
    // Kept, so the buyer's own vacation responder does not answer it back.
    assert!(!actions.has_delete_header("Auto-Submitted", 1));
    // Delivered to the buyer and nowhere else: no notice, no extra recipient.
    let added: Vec<_> = actions.actions.iter().filter(|a| matches!(a, EomAction::AddRecipient { .. })).collect();
    assert_eq!(added.len(), 1);
    assert!(actions.has_add_recipient("<bob@buyer.example>", any()));
    assert!(!actions.actions.iter().any(|a| matches!(a, EomAction::ReplaceBody { .. })));
    conn.close().await.unwrap();
    d.stop().await;
}

/// The buyer's provider bounces a seller's message to the seller alias: the
/// report names no buyer, but the message it quotes (or its headers) carries
/// the Message-ID the relay gave it, so the record is filed under the pair.
#[tokio::test]
async fn a_report_to_the_seller_alias_is_filed_under_the_buyer_of_the_message_it_quotes() {
    let d = TestDaemon::start().await;
    let p = d.parties().await;
    let mut conn = open(&d).await;
    conn.mail(["<sales@shop1.example>"]).await.unwrap();
    conn.rcpt([b(&p.s1b1)]).await.unwrap();
    send_headers(&mut conn, &[("From", "sales@shop1.example"), ("Subject", "Your order has shipped")]).await;
    let (actions, _) = conn.eom().await.unwrap();
    let relay_id = header_value(&actions.actions, "Message-ID").unwrap();
    conn.close().await.unwrap();
    for (n, quoted) in [
        format!("Content-Type: message/rfc822\r\n\r\nMessage-ID: {relay_id}\r\nSubject: Your order has shipped\r\n\r\nHi\r\n"),
        format!("Content-Type: text/rfc822-headers\r\n\r\nMessage-ID: {relay_id}\r\nSubject: Your order has shipped\r\n"),
    ]
    .iter()
    .enumerate()
    {
        let mut conn = open(&d).await;
        conn.mail(["<>"]).await.unwrap();
        conn.rcpt([b(&p.s1_alias)]).await.unwrap();
        let id = format!("<dsn{n}@mx.buyer.example>");
        send_headers(
            &mut conn,
            &[
                ("From", "MAILER-DAEMON@mx.buyer.example"),
                ("Message-ID", &id),
                ("Content-Type", "multipart/report; report-type=delivery-status; boundary=\"b\""),
            ],
        )
        .await;
        let body = format!(
            "--b\r\nContent-Type: text/plain\r\n\r\n<bob@buyer.example>: mailbox full\r\n\
             --b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.buyer.example\r\n\r\n\
             Final-Recipient: rfc822; bob@buyer.example\r\nAction: failed\r\nStatus: 5.2.2\r\n\r\n--b\r\n{quoted}--b--\r\n"
        );
        conn.body(body.into_bytes()).await.unwrap();
        let (actions, status) = conn.eom().await.unwrap();
        assert_eq!(status, Status::Continue);
        assert!(actions.has_add_recipient("<cs@shop1.example>", any()));
        conn.close().await.unwrap();
    }
    let list = d.admin.get("/v1/messages?buyer=B1").await.unwrap();
    let notices: Vec<_> = list.as_array().unwrap().iter().filter(|r| r["notice"] == true).collect();
    assert_eq!(notices.len(), 2, "{list}");
    for r in notices {
        assert_eq!((&r["direction"], &r["alias"]), (&"buyer_to_seller".into(), &p.s1b1.clone().into()), "{r}");
    }
    d.stop().await;
}

#[tokio::test]
async fn delivery_report_to_a_pair_alias_becomes_a_notice_to_the_buyer() {
    let d = TestDaemon::start().await;
    let p = d.parties().await;
    let mut conn = open(&d).await;
    conn.mail(["<>"]).await.unwrap();
    assert_eq!(conn.rcpt([b(&p.s1b1)]).await.unwrap(), Status::Continue);
    send_headers(&mut conn, &[("From", "MAILER-DAEMON@mx.shop1.example"), ("Subject", "failure notice")]).await;
    let (actions, status) = conn.eom().await.unwrap();
    assert_eq!(status, Status::Continue);
    assert!(actions.has_delete_recipient(b(&p.s1b1).as_str()));
    assert!(actions.has_add_recipient("<bob@buyer.example>", any()));
    assert_eq!(
        header_value(&actions.actions, "Subject").as_deref(),
        Some("Your message to the seller was not delivered")
    );
    let text: String = actions.actions.iter().map(|a| format!("{a:?}")).collect();
    assert!(!text.contains("shop1.example"), "the notice names the seller's real domain: {text}");
    let (record, original, delivered) = only_record(&d).await;
    assert_eq!(record["notice"], true, "{record}");
    assert_eq!((&record["direction"], &record["buyer"]), (&"seller_to_buyer".into(), &"B1".into()), "{record}");
    assert_eq!(record["alias"], format!("{}", p.s1b1));
    assert!(original.contains("MAILER-DAEMON@mx.shop1.example") && delivered.contains("bob@buyer.example"));
    nothing_awaits_an_answer(&d).await;
    conn.close().await.unwrap();
    d.stop().await;
}

/// An out-of-office reply sent with a null sender (RFC 3834) is not a report: the buyer
/// is not told the message was returned, only that an automatic message came back.
#[tokio::test]
async fn a_null_sender_auto_reply_is_not_called_a_returned_message() {
    let d = TestDaemon::start().await;
    let p = d.parties().await;
    let mut conn = open(&d).await;
    conn.mail(["<>"]).await.unwrap();
    assert_eq!(conn.rcpt([b(&p.s1b1)]).await.unwrap(), Status::Continue);
    send_headers(
        &mut conn,
        &[
            ("From", "Shop One <cs@shop1.example>"),
            ("Subject", "Out of office: Order question"),
            ("Auto-Submitted", "auto-replied"),
        ],
    )
    .await;
    conn.body("I am away until Monday. Call me on 010-1234-5678.\r\n").await.unwrap();
    let (actions, status) = conn.eom().await.unwrap();
    assert_eq!(status, Status::Continue);
    assert!(actions.has_add_recipient("<bob@buyer.example>", any()));
    assert_eq!(
        header_value(&actions.actions, "Subject").as_deref(),
        Some("Automatic message about your message to the seller")
    );
    let text: String = actions.actions.iter().map(|a| format!("{a:?}")).collect();
    assert!(!text.contains("shop1.example") && !text.contains("010-1234"), "{text}");
    conn.close().await.unwrap();
    d.stop().await;
}

#[tokio::test]
async fn oversized_messages_are_refused_with_552_and_not_kept() {
    let d = TestDaemon::start_with(
        "[limits]\nmax_message_bytes = 2000\nmax_headers = 5\nmax_header_bytes = 1000\n",
        std::sync::Arc::new(bsm_milter::clock::SystemClock),
    )
    .await;
    let p = d.parties().await;
    let cases: [(&str, usize, usize); 3] =
        [("too many headers", 6, 0), ("body too big", 1, 3000), ("headers too long", 2, 0)];
    for (what, headers, body) in cases {
        let mut conn = open(&d).await;
        conn.mail(["<bob@buyer.example>"]).await.unwrap();
        conn.rcpt([b(&p.s1_alias)]).await.unwrap();
        for i in 0..headers {
            let value = if what == "headers too long" { "x".repeat(600) } else { format!("v{i}") };
            conn.header(format!("X-H{i}"), value).await.unwrap();
        }
        if body > 0 {
            conn.body(vec![b'a'; body]).await.unwrap();
        }
        let (actions, status) = conn.eom().await.unwrap();
        assert!(reply_text(&status).starts_with("552 5.3.4 "), "{what}: {status:?}");
        assert!(actions.actions.is_empty());
        conn.close().await.unwrap();
    }
    // Each is on record as refused, without copies; the conversation still exports.
    let list = d.admin.get("/v1/messages?seller=S1").await.unwrap();
    let reasons: Vec<_> =
        list.as_array().unwrap().iter().map(|r| (r["decision"].clone(), r["reason"].clone())).collect();
    let refused = |why: &str| (serde_json::json!("refused"), serde_json::json!(format!("{why} (not kept)")));
    assert_eq!(reasons, [refused("header too large"), refused("message too big"), refused("header too large")]);
    let id = list[0]["id"].as_str().unwrap();
    let copy = d.admin.request_raw(hyper::Method::GET, &format!("/v1/messages/{id}/original"), None).await;
    assert!(copy.unwrap_err().to_string().contains("no archived copy"));
    d.admin.request_raw(hyper::Method::GET, "/v1/export?seller=S1&buyer=B1", None).await.unwrap();
    // Within the limits: delivered.
    let mut conn = open(&d).await;
    conn.mail(["<bob@buyer.example>"]).await.unwrap();
    conn.rcpt([b(&p.s1_alias)]).await.unwrap();
    conn.header("From", "bob@buyer.example").await.unwrap();
    conn.body(vec![b'a'; 1000]).await.unwrap();
    assert_eq!(conn.eom().await.unwrap().1, Status::Continue);
    conn.close().await.unwrap();
    d.stop().await;
}

#[tokio::test]
async fn clean_seller_mail_takes_the_cheap_path() {
    let d = TestDaemon::start().await;
    let p = d.parties().await;
    let mut conn = open(&d).await;
    conn.mail(["<sales@shop1.example>"]).await.unwrap();
    conn.rcpt([b(&p.s1b1)]).await.unwrap();
    send_headers(
        &mut conn,
        &[("From", "sales@shop1.example"), ("Subject", "Shipping"), ("Content-Type", "text/plain")],
    )
    .await;
    conn.body("Your parcel ships on Friday.\r\n").await.unwrap();
    let (actions, status) = conn.eom().await.unwrap();
    assert_eq!(status, Status::Continue);
    // Nothing to remove and no footer to strip: no REPLACE_BODY.
    assert!(!actions.actions.iter().any(|a| matches!(a, EomAction::ReplaceBody { .. })), "{:?}", actions.actions);
    conn.close().await.unwrap();
    d.stop().await;
}

#[tokio::test]
async fn with_sasl_required_sellers_must_log_in_with_a_mapped_login() {
    let d =
        TestDaemon::start_with("[auth]\nmethods = [\"sasl\"]\n", std::sync::Arc::new(bsm_milter::clock::SystemClock))
            .await;
    let p = d.parties().await;
    let s = d.post("/v1/sellers/S1/logins", serde_json::json!({"login": "shop1-cs"})).await;
    assert_eq!(s["logins"], serde_json::json!(["shop1-cs"]));
    for (login, expect_ok) in [(None, false), (Some("someone-else"), false), (Some("shop1-cs"), true)] {
        let mut conn = TestConnection::configure().open_tcp(d.milter).await.unwrap();
        let mut macros = vec![("i", "Q")];
        if let Some(l) = login {
            macros.push(("{auth_authen}", l));
        }
        conn.macros(MacroStage::Mail, macros).await.unwrap();
        conn.mail(["<sales@shop1.example>"]).await.unwrap();
        let status = conn.rcpt([b(&p.s1b1)]).await.unwrap();
        if expect_ok {
            assert_eq!(status, Status::Continue, "{login:?}");
        } else {
            assert!(
                reply_text(&status).starts_with("550-5.7.1 Seller mail must be submitted with SMTP authentication"),
                "{login:?}: {status:?}"
            );
        }
        conn.close().await.unwrap();
    }
    // Buyers are not asked to log in.
    let mut conn = open(&d).await;
    conn.mail(["<bob@buyer.example>"]).await.unwrap();
    assert_eq!(conn.rcpt([b(&p.s1_alias)]).await.unwrap(), Status::Continue);
    conn.close().await.unwrap();
    d.stop().await;
}

/// Methods combine: a seller's mapped SMTP AUTH login passes without any DNS;
/// without it, the message must pass `verify`, whose DNS here does not answer.
#[tokio::test]
async fn sasl_and_verify_combine_and_a_login_needs_no_dns() {
    let d = TestDaemon::start_with(
        "[auth]\nmethods = [\"sasl\", \"verify\"]\ndns_servers = [\"127.0.0.1:9\"]\ndns_timeout_secs = 1\n",
        std::sync::Arc::new(bsm_milter::clock::SystemClock),
    )
    .await;
    let p = d.parties().await;
    d.post("/v1/sellers/S1/logins", serde_json::json!({"login": "shop1-cs"})).await;
    for login in [Some("shop1-cs"), None] {
        let mut conn = TestConnection::configure().open_tcp(d.milter).await.unwrap();
        let client: std::net::SocketAddr = "192.0.2.7:40000".parse().unwrap();
        // `verify` asks for the client: it may answer (no-reply stage) or not.
        let _ = conn.connect("client.test", client).await.unwrap();
        conn.helo("client.test").await.unwrap();
        let mut macros = vec![("i", "Q")];
        macros.extend(login.map(|l| ("{auth_authen}", l)));
        conn.macros(MacroStage::Mail, macros).await.unwrap();
        conn.mail(["<sales@shop1.example>"]).await.unwrap();
        // Not refused at RCPT: `verify` may still pass the message.
        assert_eq!(conn.rcpt([b(&p.s1b1)]).await.unwrap(), Status::Continue, "{login:?}");
        send_headers(&mut conn, &[("From", "sales@shop1.example"), ("Subject", "Shipping")]).await;
        conn.body("Your parcel ships on Friday.\r\n").await.unwrap();
        let (_, status) = conn.eom().await.unwrap();
        match login {
            Some(_) => assert_eq!(status, Status::Continue),
            None => assert!(reply_text(&status).starts_with("451 4.7.1 "), "{status:?}"),
        }
        conn.close().await.unwrap();
    }
    d.stop().await;
}

/// A body line longer than `limits.max_line_bytes` is refused, also when it
/// runs across body chunks; long lines within the limit pass.
#[tokio::test]
async fn an_overlong_body_line_is_refused_554() {
    let d = TestDaemon::start_with(
        "[limits]\nmax_line_bytes = 2000\n",
        std::sync::Arc::new(bsm_milter::clock::SystemClock),
    )
    .await;
    let p = d.parties().await;
    for (chunks, refused) in [
        (vec![vec![b'a'; 2000], b"\r\n".to_vec()], false),
        (vec![vec![b'a'; 1500], vec![b'b'; 501], b"\r\nshort\r\n".to_vec()], true),
        (vec![[vec![b'a'; 1999], b"\r\n".to_vec(), vec![b'c'; 2001]].concat()], true),
    ] {
        let mut conn = open(&d).await;
        conn.mail(["<bob@buyer.example>"]).await.unwrap();
        conn.rcpt([b(&p.s1_alias)]).await.unwrap();
        conn.header("From", "bob@buyer.example").await.unwrap();
        for c in chunks {
            conn.body(c).await.unwrap();
        }
        let (actions, status) = conn.eom().await.unwrap();
        if refused {
            assert_eq!(reply_text(&status), "554 5.6.0 Message has a line longer than 2000 bytes: wrap or encode it");
            assert!(actions.actions.is_empty());
        } else {
            assert_eq!(status, Status::Continue);
        }
        conn.close().await.unwrap();
    }
    d.stop().await;
}
