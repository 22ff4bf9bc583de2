//! Archive, export, response metrics and Prometheus metrics, end to end
//! through a real Postfix (DESIGN §2.5, §2.6).

mod support;

use mail_parser::MessageParser;
use std::io::{Read, Write};
use support::postfix::send;
use support::process::{cli, ok};
use support::world::{WAIT, World, header, json, message};

const BUYER: &str = "bob@buyer-mail.example";
const SELLER: &str = "alice@seller-corp.example";

/// Buyer asks, seller answers in the thread; returns the buyer message's relay id.
fn conversation(w: &World, auto_reply: bool) -> String {
    let q = message(
        &[("From", BUYER), ("Subject", "Is it handmade?"), ("Message-ID", "<q@buyer-mail.example>")],
        "Is it?\r\n",
    );
    assert_eq!(send(w.port(), BUYER, &[&w.seller_alias], &q).2.unwrap().code, 250);
    let relay_id = header(&w.postfix.wait_delivered(1, WAIT)[0], "Message-ID").unwrap();
    let mut headers = vec![("From", SELLER), ("Subject", "Re: Is it handmade?"), ("In-Reply-To", relay_id.as_str())];
    if auto_reply {
        headers.push(("Auto-Submitted", "auto-replied"));
    }
    let a = message(&headers, "Yes, by hand.\r\n");
    assert_eq!(send(w.port(), SELLER, &[&w.s1b1], &a).2.unwrap().code, 250);
    w.postfix.wait_delivered(2, WAIT);
    relay_id
}

#[test]
fn archive_keeps_both_copies_and_exports_the_conversation() {
    let w = World::start();
    let asked = conversation(&w, false);
    let rows = json(&ok(&w.config, &["archive", "list", "--seller", "S1", "--buyer", "B1", "--json"]));
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["direction"], "buyer_to_seller");
    assert_eq!(rows[1]["direction"], "seller_to_buyer");
    assert_eq!(format!("<{}>", rows[0]["id"].as_str().unwrap()), asked);
    assert!(rows.iter().all(|r| r["decision"] == "delivered" && r["at"].as_str().unwrap().ends_with('Z')));

    let id = rows[0]["id"].as_str().unwrap();
    let original = ok(&w.config, &["archive", "show", id, "--original"]);
    assert!(original.contains("From: bob@buyer-mail.example") && original.contains("Is it?"), "{original}");
    let delivered = ok(&w.config, &["archive", "show", id, "--delivered"]);
    assert!(!delivered.contains("buyer-mail.example") && delivered.contains(&w.s1b1), "{delivered}");
    assert!(ok(&w.config, &["archive", "show", id]).contains("Is it handmade?"));

    let mbox = ok(&w.config, &["archive", "export", "--seller", "S1", "--buyer", "B1"]);
    let separators: Vec<&str> = mbox.lines().filter(|l| l.starts_with("From ")).collect();
    assert_eq!(separators.len(), 2, "{mbox}");
    for part in mbox.split("\nFrom ").skip(1) {
        let msg = part.split_once('\n').unwrap().1;
        assert!(MessageParser::new().parse(msg.as_bytes()).unwrap().subject().is_some());
    }
    assert_eq!(ok(&w.config, &["archive", "export", "--alias", &w.s1b1]), mbox);
    // Filters: time range and an unknown id.
    let none = json(&ok(&w.config, &["archive", "list", "--seller", "S1", "--until", "2000-01-01", "--json"]));
    assert_eq!(none.as_array().unwrap().len(), 0);
    let o = cli(&w.config, &["archive", "show", "bsm.nope@m.example.com"]);
    assert!(!o.status.success());
    let o = cli(&w.config, &["archive", "list", "--since", "yesterday"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("since"));
    assert!(!cli(&w.config, &["archive", "export", "--seller", "S1"]).status.success());
}

#[test]
fn a_seller_reply_in_the_thread_answers_the_buyer() {
    let w = World::start();
    conversation(&w, false);
    let m = json(&ok(&w.config, &["metrics", "--seller", "S1", "--json"]));
    assert_eq!(m["seller"], "S1");
    for window in ["7d", "30d", "90d"] {
        let x = &m["windows"][window];
        assert_eq!(x["received"], 1, "{m}");
        assert_eq!(x["answered_within_24h"], 1, "{m}");
        assert_eq!(x["answered_late"], 0);
        assert_eq!(x["no_response_needed"], 0);
        assert_eq!(x["unanswered_over_24h"], 0);
        assert!(x["avg_response_secs"].as_u64().unwrap() < 60, "{m}");
    }
    println!("{}", ok(&w.config, &["metrics", "--seller", "S1"]));
    // Every seller when none is named.
    let all = json(&ok(&w.config, &["metrics", "--json"]));
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert!(!cli(&w.config, &["metrics", "--seller", "nobody"]).status.success());
}

#[test]
fn an_automatic_reply_is_not_an_answer() {
    let w = World::start();
    conversation(&w, true);
    let m = json(&ok(&w.config, &["metrics", "--seller", "S1", "--json"]));
    let x = &m["windows"]["7d"];
    assert_eq!(
        (x["received"].as_u64(), x["answered_within_24h"].as_u64(), x["open"].as_u64()),
        (Some(1), Some(0), Some(1)),
        "{m}"
    );
}

#[test]
fn prometheus_metrics_count_decisions_and_refusals() {
    let w = World::start();
    conversation(&w, false);
    let stranger = message(&[("From", "eve@evil.example"), ("Subject", "x")], "x\r\n");
    send(w.port(), "eve@evil.example", &[&w.s1b1], &stranger);
    let sock = w.milter.as_ref().unwrap().admin_socket.clone();
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    for needle in [
        "bsm_messages_total{direction=\"buyer_to_seller\",decision=\"delivered\"} 1",
        "bsm_messages_total{direction=\"seller_to_buyer\",decision=\"delivered\"} 1",
        "bsm_refusals_total{reason=\"unknown_recipient\"} 1",
        "bsm_eom_duration_seconds_count 2",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    let value = |name: &str| -> u64 {
        let line = text.lines().find(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with(' '))).unwrap();
        line.split(' ').nth(1).unwrap().parse().unwrap()
    };
    assert!(value("bsm_store_bytes") > 0);
    // Two messages acknowledged, each after a flush of the archive that held it.
    assert!(value("bsm_archive_flushes_total") >= 1, "{text}");
}
