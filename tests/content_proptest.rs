//! Property: whatever mix of links, remote resources, addresses and phone
//! numbers a message carries, in whatever structure and transfer encoding, no
//! decoded part of what the buyer receives holds a remote URL, a non-relay
//! address or one of the phone numbers.

#[path = "corpus/check.rs"]
mod check;

use bsm_milter::content::{ContentPolicy, Outcome};
use check::{assert_clean, decoded_texts, deliver, parameters};
use proptest::prelude::*;

const HOSTS: &[&str] = &["tracker.example.com", "click.mailer.net", "evil.io", "shop-site.co.kr", "cdn.m.example.com"];
const MAIL_DOMAINS: &[&str] = &["gmail.com", "naver.com", "shop-site.co.kr", "m.example.com"];
const PHONES: &[&str] =
    &["+1 (555) 123-4567", "010-1234-5678", "+82 2-1234-5678", "+44 20 7946 0958", "02-987-6543", "(555) 987-6543"];
const SAFE: &[&str] = &[
    "order 114-1234567-1234567",
    "ships 2026-11-23",
    "on 23/11/2026 at 14:30",
    "for $1,234.56",
    "₩12,000",
    "qty 3",
    "postcode 06236",
];

fn url() -> impl Strategy<Value = String> {
    (
        prop::sample::select(HOSTS),
        prop::sample::select(&["https://", "http://", "//", "www.", ""][..]),
        "[a-z0-9/]{0,8}",
    )
        .prop_map(|(h, s, p)| {
            let host = if s == "www." { format!("www.{h}") } else { h.to_string() };
            let scheme = if s == "www." { "" } else { s };
            format!("{scheme}{host}/{p}")
        })
}

fn address() -> impl Strategy<Value = String> {
    ("[a-z][a-z0-9.]{0,6}[a-z0-9]", prop::sample::select(MAIL_DOMAINS)).prop_map(|(l, d)| format!("{l}@{d}"))
}

/// One piece of text content, in plain-text form.
fn text_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z가-힣 ]{1,12}",
        url(),
        address(),
        prop::sample::select(PHONES).prop_map(str::to_string),
        prop::sample::select(SAFE).prop_map(str::to_string),
    ]
}

/// One piece of HTML.
fn html_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        text_piece(),
        url().prop_map(|u| format!(r#"<img src="{u}" width="1" height="1">"#)),
        url().prop_map(|u| format!(r#"<a href="{u}">{u}</a>"#)),
        url().prop_map(|u| format!(r#"<a href="{u}"><img src="cid:logo" alt="logo"></a>"#)),
        url().prop_map(|u| format!(r#"<td background="{u}">x</td>"#)),
        url().prop_map(|u| format!(r#"<p style="background:url('{u}')">bg</p>"#)),
        url().prop_map(|u| format!("<style>@import url({u}); p{{background:url({u})}}</style>")),
        url().prop_map(|u| format!(r#"<link rel="stylesheet" href="{u}">"#)),
        url().prop_map(|u| format!(r#"<img src="cid:a" srcset="{u} 2x">"#)),
        url().prop_map(|u| format!(r#"<!--[if mso]><v:fill src="{u}"/><![endif]-->"#)),
        url().prop_map(|u| format!(r#"<iframe src="{u}"></iframe>"#)),
        address().prop_map(|a| format!(r#"<a href="mailto:{a}">{a}</a>"#)),
        address().prop_map(|a| a.replace('@', "&#64;")),
        address().prop_map(|a| format!(r#"<span title="{a}">t</span>"#)),
        prop::sample::select(PHONES).prop_map(|p| format!("<b>{p}</b>")),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Cte {
    Bit8,
    Qp,
    Base64,
}

fn encode(body: &str, cte: Cte) -> (String, Vec<u8>) {
    match cte {
        Cte::Bit8 => ("8bit".into(), body.replace('\n', "\r\n").into_bytes()),
        Cte::Qp => ("quoted-printable".into(), qp(body.as_bytes())),
        Cte::Base64 => ("base64".into(), b64(body.as_bytes())),
    }
}

/// Quoted-printable with soft breaks every 20 characters, so that they fall
/// inside URLs and addresses.
fn qp(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut col = 0;
    for &c in b {
        if c == b'\n' {
            out.extend_from_slice(b"\r\n");
            col = 0;
            continue;
        }
        let enc = if c == b'=' || !(0x20..0x7f).contains(&c) { format!("={c:02X}").into_bytes() } else { vec![c] };
        if col + enc.len() > 20 {
            out.extend_from_slice(b"=\r\n");
            col = 0;
        }
        col += enc.len();
        out.extend_from_slice(&enc);
    }
    out
}

fn b64(b: &[u8]) -> Vec<u8> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    for (i, c) in b.chunks(3).enumerate() {
        if i > 0 && i % 19 == 0 {
            out.extend_from_slice(b"\r\n");
        }
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            out.push(if k <= c.len() { T[(n >> (18 - 6 * k) & 63) as usize] } else { b'=' });
        }
    }
    out
}

fn part(ctype: &str, body: &str, cte: Cte) -> Vec<u8> {
    let (name, enc) = encode(body, cte);
    let mut p =
        format!("Content-Type: {ctype}; charset=utf-8\r\nContent-Transfer-Encoding: {name}\r\n\r\n").into_bytes();
    p.extend_from_slice(&enc);
    p
}

fn cte() -> impl Strategy<Value = Cte> {
    prop_oneof![Just(Cte::Bit8), Just(Cte::Qp), Just(Cte::Base64)]
}

/// A whole message: text, HTML, or both in an alternative, possibly inside a
/// mixed multipart with an attachment.
fn message() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(text_piece(), 1..8),
        prop::collection::vec(html_piece(), 1..10),
        cte(),
        cte(),
        0..4u8,
    )
        .prop_map(|(texts, htmls, c1, c2, shape)| {
            let text = texts.join(" ") + "\n";
            let html = format!("<html><body><p>{}</p></body></html>", htmls.join(" "));
            let mut m = b"MIME-Version: 1.0\r\n".to_vec();
            match shape {
                0 => m.extend(part("text/plain", &text, c1)),
                1 => m.extend(part("text/html", &html, c2)),
                _ => {
                    let mut alt = b"--alt\r\n".to_vec();
                    alt.extend(part("text/plain", &text, c1));
                    alt.extend_from_slice(b"\r\n--alt\r\n");
                    alt.extend(part("text/html", &html, c2));
                    alt.extend_from_slice(b"\r\n--alt--\r\n");
                    if shape == 2 {
                        m.extend_from_slice(b"Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n");
                        m.extend(alt);
                    } else {
                        m.extend_from_slice(b"Content-Type: multipart/mixed; boundary=\"mix\"\r\n\r\n--mix\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n");
                        m.extend(alt);
                        m.extend_from_slice(b"\r\n--mix\r\nContent-Type: application/zip; name=\"x.zip\"\r\nContent-Transfer-Encoding: base64\r\n\r\nUEsDBA==\r\n--mix--\r\n");
                    }
                }
            }
            m
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn nothing_remote_and_no_foreign_address_survives(raw in message()) {
        let (out, outcome) = deliver(&raw, &ContentPolicy::seller_to_buyer_default());
        let refused = matches!(outcome, Outcome::Refuse { .. });
        prop_assert!(!refused, "{:?}", outcome);
        assert_clean(&out, &["cdn.m.example.com"]);
        for t in decoded_texts(&out).into_iter().chain(parameters(&out)) {
            for h in HOSTS.iter().filter(|h| !h.starts_with("cdn.")) {
                prop_assert!(!t.contains(h), "{h} in {t}");
            }
            for d in MAIL_DOMAINS.iter().filter(|d| **d != "m.example.com") {
                prop_assert!(!t.contains(&format!("@{d}")), "{d} in {t}");
            }
            for p in PHONES {
                prop_assert!(!t.contains(p), "{p} in {t}");
            }
        }
        // Order ids, dates, prices and the like are never eaten.
        let before = String::from_utf8_lossy(&raw).into_owned();
        let texts = decoded_texts(&out).join("\n");
        for s in SAFE {
            if before.contains(s) {
                prop_assert!(texts.contains(s), "{s} lost");
            }
        }
        // A second pass has nothing left to do.
        let (_, again) = deliver(&out, &ContentPolicy::seller_to_buyer_default());
        prop_assert_eq!(again, Outcome::Unchanged);
    }

    #[test]
    fn buyer_policy_removes_every_remote_load(raw in message()) {
        let (out, outcome) = deliver(&raw, &ContentPolicy::buyer_to_seller_default());
        let refused = matches!(outcome, Outcome::Refuse { .. });
        prop_assert!(!refused, "refused");
        for t in decoded_texts(&out) {
            for tag in ["<img src=\"http", "<img src=\"//", "background=", "url(", "<link", "<iframe", "v:fill"] {
                prop_assert!(!t.contains(tag), "{tag} in {t}");
            }
        }
    }
}
