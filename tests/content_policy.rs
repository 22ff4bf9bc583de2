//! The content policy on the corpus in `tests/corpus/` (written by
//! `tests/corpus/generate.py`), through `bsm_milter::content::apply`.

#[path = "corpus/check.rs"]
mod check;

use bsm_milter::content::{ContentPolicy, Outcome, Removed, apply};
use check::{RELAY, assert_clean, decoded_texts, deliver, split};
use mail_parser::{MessageParser, MimeHeaders, PartType};

fn corpus(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/corpus/{name}.eml", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn seller() -> ContentPolicy {
    ContentPolicy::seller_to_buyer_default()
}

/// Applies the seller policy, checks the output is clean and that a second
/// pass finds nothing more to do; returns the delivered message and counts.
fn sanitized(name: &str) -> (Vec<u8>, Removed) {
    let (out, outcome) = deliver(&corpus(name), &seller());
    let Outcome::Rewritten { removed, .. } = outcome else { panic!("{name}: {outcome:?}") };
    assert_clean(&out, &[]);
    let (_, again) = deliver(&out, &seller());
    assert_eq!(again, Outcome::Unchanged, "{name}: second pass changed it");
    (out, removed)
}

fn joined(raw: &[u8]) -> String {
    decoded_texts(raw).join("\n----\n")
}

/// (content type, file name) of every leaf part.
fn leaves(raw: &[u8]) -> Vec<(String, Option<String>)> {
    let msg = MessageParser::new().parse(raw).unwrap();
    msg.parts
        .iter()
        .filter(|p| !matches!(p.body, PartType::Multipart(_)))
        .map(|p| {
            let ct =
                p.content_type().map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or(""))).unwrap_or_default();
            (ct, p.attachment_name().map(str::to_string))
        })
        .collect()
}

#[test]
fn clean_text_takes_the_cheap_path() {
    let raw = corpus("clean_text");
    let (h, b) = split(&raw);
    assert_eq!(apply(&h, &b, &seller(), RELAY), Outcome::Unchanged);
}

#[test]
fn marketing_html_loses_every_tracker_and_link() {
    let (out, removed) = sanitized("marketing");
    let text = joined(&out);
    for gone in ["tracker", "shop-site", "555", "7946", "010-1234", "utm_source"] {
        assert!(!text.contains(gone), "{gone} survived");
    }
    for kept in ["Product 29", "Shop now", "114-1234567-1234567", "Preheader"] {
        assert!(text.contains(kept), "{kept} lost");
    }
    assert!(removed.remote_resources >= 90, "{removed:?}");
    assert!(removed.links >= 60, "{removed:?}");
    // The mailto link counts as a link; its text and the plain part's address as emails.
    assert_eq!((removed.emails, removed.phones), (2, 3), "{removed:?}");
    assert_eq!(leaves(&out), vec![("text/plain".into(), None), ("text/html".into(), None)]);
}

#[test]
fn buyer_policy_removes_tracking_only() {
    let p = ContentPolicy::buyer_to_seller_default();
    let (out, outcome) = deliver(&corpus("marketing"), &p);
    let Outcome::Rewritten { removed, .. } = outcome else { panic!("{outcome:?}") };
    assert!(removed.remote_resources >= 90 && removed.links == 0 && removed.emails == 0);
    let text = joined(&out);
    assert!(!text.contains("img.tracker-cdn") && !text.contains("open.tracker-mail"));
    assert!(text.contains("href=\"https://click.tracker-mail.example/r/3\""));
    assert!(text.contains("help@shop-site.com") && text.contains("010-1234-5678"));
}

#[test]
fn allowlisted_cdn_images_stay() {
    let p = ContentPolicy { link_allowlist: vec!["tracker-cdn.example".into()], ..seller() };
    let (out, _) = deliver(&corpus("marketing"), &p);
    let text = joined(&out);
    assert!(!text.contains("src=\"https://img.tracker-cdn.example/logo.png\""));
    // Product images are inside external links: they go with them (logos).
    assert!(!text.contains("open.tracker-mail"));
    assert!(text.contains("url(https://img.tracker-cdn.example/hero.jpg)"));
    assert_clean(&out, &["tracker-cdn.example"]);
}

#[test]
fn gmail_message_keeps_structure_and_inline_image() {
    let (out, removed) = sanitized("gmail");
    assert_eq!(
        leaves(&out),
        vec![("text/plain".into(), None), ("text/html".into(), None), ("image/png".into(), Some("parcel.png".into()))]
    );
    let text = joined(&out);
    assert!(text.contains("Kim Seller | [phone removed] | [link removed]"), "{text}");
    assert!(text.contains(r#"<img src="cid:ii_lp1abc""#), "{text}");
    assert!(!text.contains("gmail.com") && !text.contains("kimshop"));
    assert_eq!((removed.phones, removed.emails), (2, 1), "{removed:?}");
    let msg = MessageParser::new().parse(&out).unwrap();
    let img = msg.parts.iter().find(|p| p.content_id().is_some()).unwrap();
    assert_eq!(img.content_id(), Some("ii_lp1abc"));
    assert!(img.contents().starts_with(b"\x89PNG"));
}

#[test]
fn outlook_message_decodes_windows_1252_and_renames_content_ids() {
    let (out, _) = sanitized("outlook");
    let text = joined(&out);
    assert!(text.contains("Café crème arrives Tuesday"), "{text}");
    assert!(!text.contains("outlook-track") && !text.contains("v:fill"), "{text}");
    assert!(!text.contains("01DA1E2F"), "Content-ID names a foreign host: {text}");
    let msg = MessageParser::new().parse(&out).unwrap();
    let cid = msg.parts.iter().find_map(|p| p.content_id()).expect("image kept");
    assert!(cid.ends_with("@m.example.com"), "{cid}");
    assert!(text.contains(&format!("src=\"cid:{cid}\"")), "{text}");
    assert!(text.contains("charset=utf-8"), "meta charset follows the new encoding");
}

#[test]
fn quoted_printable_soft_breaks_hide_nothing() {
    let (out, removed) = sanitized("qp_soft_breaks");
    let text = joined(&out);
    assert_eq!(text.trim_end(), "Track it at [link removed] or write [email removed], phone [phone removed].");
    assert_eq!((removed.links, removed.emails, removed.phones), (1, 1, 1));
}

#[test]
fn base64_parts_are_decoded_and_re_encoded() {
    let (out, removed) = sanitized("base64_parts");
    let text = joined(&out);
    assert!(text.contains("Pay here"), "{text}");
    assert!(!text.contains("pay-elsewhere") && !text.contains("123-4567"));
    assert_eq!(removed.remote_resources, 1);
}

#[test]
fn nested_multiparts_keep_their_shape_and_lose_the_executable() {
    let (out, removed) = sanitized("nested");
    assert_eq!(
        leaves(&out),
        vec![
            ("text/plain".into(), None),
            ("text/html".into(), None),
            ("image/gif".into(), None),
            ("application/pdf".into(), Some("invoice.pdf".into())),
        ]
    );
    assert_eq!(removed.attachments, 1);
    let texts = decoded_texts(&out);
    let note = r#"[Attachment removed: "tool.exe" (file type not allowed)]"#;
    assert!(texts[0].contains(note), "{}", texts[0]);
    assert!(texts[1].contains(note), "{}", texts[1]);
    assert!(texts[1].contains(r#"<img src="cid:logo1">"#));
    let msg = MessageParser::new().parse(&out).unwrap();
    let pdf = msg.parts.iter().find(|p| p.attachment_name() == Some("invoice.pdf")).unwrap();
    assert!(pdf.contents().starts_with(b"%PDF-1.4"));
    let ct = msg.parts[0].content_type().unwrap();
    assert_eq!(ct.subtype(), Some("mixed"));
}

#[test]
fn odd_charsets_are_decoded() {
    for (name, native, gone) in [
        ("charset_iso-8859-1", "Café crème", ["23 45 67 89", "cafe-shop", "jean@"]),
        ("charset_euc-kr", "안녕하세요, 주문 114-1234567-1234567", ["010-1234", "naver", "kimshop"]),
        ("charset_shift_jis", "ご注文ありがとうございます", ["03-1234", "tanaka", "shop-jp"]),
    ] {
        let (out, _) = sanitized(name);
        let text = joined(&out);
        assert!(text.contains(native), "{name}: {text}");
        for g in gone {
            assert!(!text.contains(g), "{name}: {g} in {text}");
        }
    }
}

#[test]
fn renamed_executables_are_removed_and_file_names_sanitized() {
    let (out, removed) = sanitized("renamed_executable");
    assert_eq!(removed.attachments, 3);
    assert_eq!(
        leaves(&out),
        vec![("text/plain".into(), None), ("application/pdf".into(), Some("call [phone removed].pdf".into())),]
    );
    let text = &decoded_texts(&out)[0];
    for line in [
        r#"[Attachment removed: "invoice.pdf.exe" (file type not allowed)]"#,
        r#"[Attachment removed: "setup.exe" (file type not allowed)]"#,
        r#"[Attachment removed: "receipt.pdf" (content does not match its file type)]"#,
    ] {
        assert!(text.contains(line), "{line} not in {text}");
    }
}

#[test]
fn forwarded_messages_are_removed() {
    let (out, removed) = sanitized("forwarded");
    assert_eq!(removed.attachments, 1);
    let text = joined(&out);
    assert!(text.contains("See below.") && !text.contains("other.buyer"), "{text}");
    assert!(text.contains("[Attachment removed: \"forwarded message\""), "{text}");
}

fn with_attachment(size: usize) -> Vec<u8> {
    let mut data = b"%PDF-1.7\n".to_vec();
    data.resize(size, b'x');
    let mut m = b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"big\"\r\n\r\n--big\r\nContent-Type: text/plain\r\n\r\nThe catalogue.\r\n--big\r\nContent-Type: application/pdf; name=\"catalogue.pdf\"\r\nContent-Disposition: attachment; filename=\"catalogue.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
    use std::io::Write;
    for chunk in data.chunks(57) {
        let line = encode_b64(chunk);
        m.write_all(line.as_bytes()).unwrap();
        m.write_all(b"\r\n").unwrap();
    }
    m.extend_from_slice(b"--big--\r\n");
    m
}

fn encode_b64(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(b.len() * 4 / 3 + 4);
    for c in b.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= c.len() {
                s.push(T[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[test]
fn attachments_over_10_mb_are_removed_at_10_mb_kept() {
    let limit = 10 * 1024 * 1024;
    let (out, outcome) = deliver(&with_attachment(limit + 1), &seller());
    let Outcome::Rewritten { removed, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(removed.attachments, 1);
    assert!(joined(&out).contains(r#"[Attachment removed: "catalogue.pdf" (larger than 10 MB)]"#));
    assert!(out.len() < 10_000);
    let (h, b) = split(&with_attachment(limit));
    assert_eq!(apply(&h, &b, &seller(), RELAY), Outcome::Unchanged);
}

#[test]
fn broken_input_never_passes_unchecked() {
    let p = seller();
    let cases: Vec<Vec<u8>> = vec![
        // Boundary declared, never used.
        b"Content-Type: multipart/mixed; boundary=\"nope\"\r\n\r\nMail bob@gmail.com\r\n".to_vec(),
        // Closing boundary missing.
        b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<img src=https://t.example/p.gif>\r\n".to_vec(),
        // Unknown transfer encoding, invalid base64.
        b"Content-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\ncall 010-1234-5678\r\n".to_vec(),
        b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!Ym9iQGdtYWlsLmNvbQ==\r\n".to_vec(),
        // UTF-7: '+AEA-' is '@'.
        b"Content-Type: text/plain; charset=utf-7\r\n\r\nbob+AEA-gmail.com\r\n".to_vec(),
        // No headers at all, binary junk.
        vec![0xff, 0xfe, 0, 1, 2, 3, b'\r', b'\n', b'\r', b'\n', 0x80],
        b"\r\n\r\n".to_vec(),
    ];
    for raw in cases {
        let (out, outcome) = deliver(&raw, &p);
        if let Outcome::Refuse { code, .. } = outcome {
            assert!(code.starts_with('5'));
            continue;
        }
        assert_clean(&out, &[]);
        let text = joined(&out);
        assert!(!text.contains("010-1234-5678") && !text.contains("t.example"), "{text}");
    }
}

#[test]
fn deep_nesting_is_refused_with_a_clear_reply() {
    let mut body = String::from("Content-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n");
    for i in 0..30 {
        body.push_str(&format!("--b{i}\r\nContent-Type: multipart/mixed; boundary=\"b{}\"\r\n\r\n", i + 1));
    }
    let (_, outcome) = deliver(body.as_bytes(), &seller());
    match outcome {
        Outcome::Refuse { code, xcode, text } => {
            assert_eq!((code, xcode), ("554", "5.6.0"));
            assert!(text.contains("nested"), "{text}");
        }
        other => panic!("{other:?}"),
    }
}
