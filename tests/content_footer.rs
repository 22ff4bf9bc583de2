//! The command footer (DESIGN §2.6) through `bsm_milter::content::apply_with`:
//! added to buyer → seller messages, stripped from seller replies that quote
//! it, and the cheap path kept when there is nothing to strip.

#[path = "corpus/check.rs"]
mod check;

use bsm_milter::content::{ContentPolicy, Extras, FOOTER_END, FOOTER_START, Footer, Outcome, apply_with};
use check::{RELAY, decoded_texts, deliver_with, split};
use mail_parser::{MessageParser, MimeHeaders, PartType};
use proptest::prelude::*;

const TOKEN: &str = "q1w2e3r4t5y6u7i8o9p0a1s2";

fn footer(token: &str) -> Footer {
    Footer { token: token.into(), relay_domain: RELAY.into(), relay_name: "Marketplace Messaging".into() }
}

fn adding(token: &str) -> Extras {
    Extras { footer: Some(footer(token)), strip_footer: false }
}

fn stripping() -> Extras {
    Extras { footer: None, strip_footer: true }
}

fn buyer() -> ContentPolicy {
    ContentPolicy::buyer_to_seller_default()
}

fn seller() -> ContentPolicy {
    ContentPolicy::seller_to_buyer_default()
}

fn noop() -> ContentPolicy {
    ContentPolicy {
        remove_remote_content: false,
        unwrap_external_links: false,
        redact_contact_details: false,
        filter_attachments: false,
        ..buyer()
    }
}

fn lf(s: &str) -> String {
    s.replace("\r\n", "\n")
}

/// (content type, decoded text) of every text and HTML part.
fn bodies(raw: &[u8]) -> Vec<(String, String)> {
    let msg = MessageParser::new().parse(raw).expect("parsable");
    msg.parts
        .iter()
        .filter_map(|p| {
            let ct = p.content_type().map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")));
            match &p.body {
                PartType::Text(t) | PartType::Html(t) => Some((ct.unwrap_or_else(|| "text/plain".into()), lf(t))),
                _ => None,
            }
        })
        .collect()
}

fn b64(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for (i, c) in b.chunks(3).enumerate() {
        if i > 0 && i % 19 == 0 {
            s.push_str("\r\n");
        }
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            s.push(if k <= c.len() { T[(n >> (18 - 6 * k) & 63) as usize] as char } else { '=' });
        }
    }
    s
}

/// Quoted-printable, soft breaks every 40 characters (inside the addresses).
fn qp(s: &str) -> String {
    let mut out = String::new();
    for line in s.split("\r\n") {
        let mut col = 0;
        for b in line.bytes() {
            let enc = if b == b'=' || b >= 0x7f { format!("={b:02X}") } else { (b as char).to_string() };
            if col + enc.len() > 40 {
                out.push_str("=\r\n");
                col = 0;
            }
            col += enc.len();
            out.push_str(&enc);
        }
        out.push_str("\r\n");
    }
    out
}

fn rewritten(outcome: &Outcome) {
    let Outcome::Rewritten { removed, .. } = outcome else { panic!("not rewritten: {outcome:?}") };
    assert!(removed.is_empty(), "the footer counts nothing: {removed:?}");
}

#[test]
fn a_plain_message_ends_with_the_footer() {
    let raw =
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nIs the blue one still available?\r\n";
    for policy in [buyer(), noop()] {
        let (out, outcome) = deliver_with(raw, &policy, &adding(TOKEN));
        rewritten(&outcome);
        let parts = bodies(&out);
        assert_eq!(parts.len(), 1, "{parts:?}");
        let (ct, text) = &parts[0];
        assert_eq!(ct, "text/plain");
        assert!(text.starts_with("Is the blue one still available?\n\n-- \n"), "{text}");
        assert!(text.ends_with(&lf(&footer(TOKEN).text())), "{text}");
        assert!(text.contains(&format!("<mailto:no-response-needed+{TOKEN}@{RELAY}>")), "{text}");
        assert!(text.contains(&format!("<mailto:report+{TOKEN}@{RELAY}>")), "{text}");
    }
}

#[test]
fn both_alternatives_carry_it_and_tracking_still_goes() {
    let html = "<html><body><p>Is it available?</p><img src=\"https://t.example/open.gif\"></body></html>";
    let raw = format!(
        "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"a\"\r\n\r\n\
         --a\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nIs it available?\r\n\
         --a\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--a--\r\n",
        b64(html.as_bytes())
    );
    let (out, outcome) = deliver_with(raw.as_bytes(), &buyer(), &adding(TOKEN));
    let Outcome::Rewritten { removed, content_type, .. } = &outcome else { panic!("{outcome:?}") };
    assert_eq!(removed.remote_resources, 1);
    assert!(content_type.starts_with("multipart/alternative"), "{content_type}");
    let parts = bodies(&out);
    assert_eq!(parts.len(), 2, "{parts:?}");
    assert!(parts[0].1.ends_with(&lf(&footer(TOKEN).text())), "{}", parts[0].1);
    let h = &parts[1].1;
    assert_eq!(parts[1].0, "text/html");
    assert!(!h.contains("t.example"), "{h}");
    assert!(h.ends_with(&format!("{}</body></html>", footer(TOKEN).html())), "{h}");
    assert!(h.contains(&format!("href=\"mailto:report+{TOKEN}@{RELAY}\"")), "{h}");
}

#[test]
fn an_attachment_only_message_gets_a_text_part() {
    let pdf = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n%%EOF\n";
    let raw = format!(
        "MIME-Version: 1.0\r\nContent-Type: application/pdf; name=\"order.pdf\"\r\n\
         Content-Disposition: attachment; filename=\"order.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
        b64(pdf)
    );
    let (out, outcome) = deliver_with(raw.as_bytes(), &buyer(), &adding(TOKEN));
    rewritten(&outcome);
    let Outcome::Rewritten { content_type, .. } = &outcome else { unreachable!() };
    assert!(content_type.starts_with("multipart/mixed"), "{content_type}");
    assert_eq!(bodies(&out), vec![("text/plain".to_string(), lf(&footer(TOKEN).text()))]);
    let msg = MessageParser::new().parse(&out).unwrap();
    let att = msg.parts.iter().find(|p| p.attachment_name() == Some("order.pdf")).expect("attachment kept");
    assert_eq!(att.contents(), pdf);
    // An empty body gets one too.
    let (out, outcome) = deliver_with(b"Content-Type: text/plain\r\n\r\n", &noop(), &adding(TOKEN));
    rewritten(&outcome);
    assert!(bodies(&out)[0].1.ends_with(&lf(&footer(TOKEN).text())));
}

/// What Gmail sends when the seller answers the buyer message with the footer
/// (its `data-*` attribute gone; with `class_kept`, the class kept as Gmail
/// prefixes it, otherwise gone too).
fn gmail_reply(class_kept: bool) -> Vec<u8> {
    let f = footer(TOKEN);
    let quoted: String =
        format!("Is the blue one still available?\r\n\r\n{}", f.text()).lines().map(|l| format!("> {l}\r\n")).collect();
    let text = format!(
        "Yes, it ships tomorrow morning.\r\n\r\nOn Mon, 23 Nov 2026 at 10:00, Buyer <abcdefghijklmno@{RELAY}> wrote:\r\n\r\n{quoted}"
    );
    let class = if class_kept { "class=\"m_-4815162342bsm-footer\" " } else { "" };
    let div = f.html().replace("data-bsm-footer=\"1\" class=\"bsm-footer\" ", class);
    let html = format!(
        "<div dir=\"ltr\">Yes, it ships tomorrow morning.</div><br><div class=\"gmail_quote\"><div dir=\"ltr\" class=\"gmail_attr\">\
         On Mon, 23 Nov 2026 at 10:00, Buyer &lt;<a href=\"mailto:abcdefghijklmno@{RELAY}\">abcdefghijklmno@{RELAY}</a>&gt; wrote:<br></div>\
         <blockquote class=\"gmail_quote\" style=\"margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204);padding-left:1ex\">\
         <div dir=\"ltr\">Is the blue one still available?</div>{div}</blockquote></div>\r\n"
    );
    format!(
        "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"000000000000abcdef\"\r\n\r\n\
         --000000000000abcdef\r\nContent-Type: text/plain; charset=\"UTF-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{}\
         --000000000000abcdef\r\nContent-Type: text/html; charset=\"UTF-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{}\
         --000000000000abcdef--\r\n",
        qp(&text),
        qp(&html)
    )
    .into_bytes()
}

fn assert_no_footer(raw: &[u8], token: &str) {
    for t in decoded_texts(raw) {
        for gone in ["no-response-needed+", "report+", token, FOOTER_START, FOOTER_END, "bsm-footer", "Report this"] {
            assert!(!t.contains(gone), "{gone:?} left in:\n{t}");
        }
    }
}

#[test]
fn a_gmail_reply_loses_the_quoted_footer() {
    for class_kept in [false, true] {
        let raw = gmail_reply(class_kept);
        assert!(String::from_utf8_lossy(&raw).contains("report+"), "the fixture quotes the footer");
        for policy in [seller(), noop()] {
            let (out, outcome) = deliver_with(&raw, &policy, &stripping());
            rewritten(&outcome);
            assert_no_footer(&out, TOKEN);
            let parts = bodies(&out);
            assert_eq!(parts.len(), 2, "{parts:?}");
            for (ct, t) in &parts {
                assert!(t.contains("Yes, it ships tomorrow morning."), "{ct}: {t}");
                assert!(t.contains("Is the blue one still available?"), "{ct}: {t}");
                assert!(t.contains(&format!("abcdefghijklmno@{RELAY}")), "{ct}: {t}");
            }
            // Quoted-printable decoding drops trailing spaces: "> -- " came as ">--".
            assert!(parts[0].1.trim_end().ends_with("> Is the blue one still available?\n>"), "{}", parts[0].1);
            assert!(!parts[1].1.contains("<hr"), "{}", parts[1].1);
            // Nothing left for a second pass.
            let (_, again) = deliver_with(&out, &policy, &stripping());
            assert_eq!(again, Outcome::Unchanged);
        }
    }
}

#[test]
fn nothing_to_strip_takes_the_cheap_path() {
    let clean = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_string()
        + &b64(b"Yes, it ships tomorrow. Write to abcdefghijklmno@m.example.com, report back!\r\n")
        + "\r\n";
    for policy in [noop(), seller()] {
        let (h, b) = split(clean.as_bytes());
        assert_eq!(apply_with(&h, &b, &policy, RELAY, &stripping()), Outcome::Unchanged);
    }
    // Not even a non-canonical part is rebuilt for stripping alone.
    let odd = b"Content-Type: text/plain; charset=x-unknown\r\n\r\nYes.\r\n";
    let (h, b) = split(odd);
    assert_eq!(apply_with(&h, &b, &noop(), RELAY, &stripping()), Outcome::Unchanged);
    // Nor one whose HTML only mentions a report (the quick check fires, the strip finds nothing).
    let odd = b"Content-Type: text/html; charset=x-unknown\r\n\r\n<p>Report attached: no-response-needed</p>\r\n";
    let (h, b) = split(odd);
    assert_eq!(apply_with(&h, &b, &noop(), RELAY, &stripping()), Outcome::Unchanged);
    // A command address on another domain is none of the relay's business.
    let other = b"Content-Type: text/plain\r\n\r\n> report+abc@elsewhere.example\r\n";
    let (h, b) = split(other);
    assert_eq!(apply_with(&h, &b, &noop(), RELAY, &stripping()), Outcome::Unchanged);
}

#[test]
fn a_forwarded_buyer_message_with_its_footer_goes() {
    let inner_footer = format!("Subject: Q\r\nContent-Type: text/plain\r\n\r\nQ?\r\n\r\n{}", footer(TOKEN).text());
    let inner = &inner_footer;
    let raw = format!(
        "Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n--m\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n\
         --m\r\nContent-Type: message/rfc822\r\n\r\n{inner}\r\n--m--\r\n"
    );
    let (out, outcome) = deliver_with(raw.as_bytes(), &noop(), &stripping());
    assert!(matches!(outcome, Outcome::Rewritten { .. }), "{outcome:?}");
    assert_no_footer(&out, TOKEN);
    let text = decoded_texts(&out).join("\n");
    assert!(text.contains("See below.") && text.contains("it contains relay commands"), "{text}");
    // One without a footer stays, even if it talks about reports.
    let inner = "Subject: Q\r\nContent-Type: text/html\r\n\r\n<p>The report is attached.</p>\r\n";
    let raw = raw.replace(inner_footer.as_str(), inner);
    let (h, b) = split(raw.as_bytes());
    assert_eq!(apply_with(&h, &b, &noop(), RELAY, &stripping()), Outcome::Unchanged);
}

/// How the seller's client may quote what the relay delivered.
#[derive(Debug, Clone)]
struct Quoting {
    prefix: &'static str,
    width: usize,
    /// HTML: keep the data attribute, keep a prefixed class, or keep neither.
    markup: u8,
}

fn quote_text(text: &str, q: &Quoting) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut cur = String::new();
        for word in line.split(' ') {
            if !cur.is_empty() && cur.len() + 1 + word.len() > q.width {
                out.push_str(&format!("{}{cur}\r\n", q.prefix));
                cur.clear();
            } else if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(word);
        }
        out.push_str(&format!("{}{cur}\r\n", q.prefix));
    }
    out
}

fn quote_html(html: &str, q: &Quoting) -> String {
    let html = match q.markup {
        0 => html.to_string(),
        1 => html.replace("data-bsm-footer=\"1\" class=\"", "class=\"m_42"),
        _ => html.replace("data-bsm-footer=\"1\" class=\"bsm-footer\" ", ""),
    };
    format!("<div>My answer.</div><blockquote class=\"gmail_quote\">{html}</blockquote>")
}

fn plain_part(ctype: &str, body: &str) -> String {
    format!(
        "Content-Type: {ctype}; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
        b64(body.as_bytes())
    )
}

fn message(text: &str, html: &str, shape: u8) -> String {
    let alt = format!(
        "Content-Type: multipart/alternative; boundary=\"a\"\r\n\r\n--a\r\n{}--a\r\n{}--a--\r\n",
        plain_part("text/plain", text),
        plain_part("text/html", html)
    );
    match shape {
        0 => plain_part("text/plain", text),
        1 => plain_part("text/html", html),
        2 => alt,
        _ => format!(
            "Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n--m\r\n{alt}--m\r\n\
             Content-Type: image/png; name=\"p.png\"\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--m--\r\n"
        ),
    }
}

fn quoting() -> impl Strategy<Value = Quoting> {
    (prop::sample::select(&["> ", "> > ", ">>", ">", "  > "][..]), 20..120usize, 0..3u8)
        .prop_map(|(prefix, width, markup)| Quoting { prefix, width, markup })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn a_stripped_reply_keeps_no_command_address(
        words in prop::collection::vec("[A-Za-z가-힣]{1,10}", 1..30),
        shape in 0..4u8,
        token in "[a-z0-9]{24}",
        q in quoting(),
    ) {
        let text = words.join(" ") + "\n";
        let html = format!("<html><body><p>{}</p></body></html>", words.join(" "));
        let buyer_msg = format!("MIME-Version: 1.0\r\n{}", message(&text, &html, shape));
        let (delivered, outcome) = deliver_with(buyer_msg.as_bytes(), &buyer(), &adding(&token));
        prop_assert!(matches!(outcome, Outcome::Rewritten { .. }), "{:?}", outcome);
        let seen = bodies(&delivered);
        let report = format!("report+{token}@");
        prop_assert!(seen.iter().any(|(_, t)| t.contains(&report)));

        // The delivered message itself, stripped.
        let (out, _) = deliver_with(&delivered, &seller(), &stripping());
        assert_no_footer(&out, &token);

        // The seller's reply quoting it.
        let reply_text = seen.iter().find(|(ct, _)| ct == "text/plain").map(|(_, t)| t.as_str()).unwrap_or("");
        let reply_html = seen.iter().find(|(ct, _)| ct == "text/html").map(|(_, t)| t.as_str()).unwrap_or("<p></p>");
        let reply = format!(
            "MIME-Version: 1.0\r\n{}",
            message(&format!("My answer.\n\n{}", quote_text(reply_text, &q)), &quote_html(reply_html, &q), 2)
        );
        let (out, outcome) = deliver_with(reply.as_bytes(), &seller(), &stripping());
        prop_assert!(matches!(outcome, Outcome::Rewritten { .. }), "{:?}", outcome);
        assert_no_footer(&out, &token);
        for t in decoded_texts(&out) {
            prop_assert!(t.contains("My answer."), "{}", t);
        }
    }
}
