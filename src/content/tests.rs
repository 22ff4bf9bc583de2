//! One test per rule, on the sanitizers and on `apply`.

use super::html::{HtmlPolicy, decode_entities, sanitize};
use super::text::Rules;
use super::*;
use std::collections::HashMap;

const RELAY: &str = "m.example.com";

fn html_with(input: &str, allow: &[String], notes: Option<&str>) -> (String, Removed, bool) {
    let cids = HashMap::new();
    let p = HtmlPolicy {
        remote: true,
        links: true,
        rules: Rules { emails: true, phones: true, links: true, relay_domain: RELAY, allowlist: allow },
        cids: &cids,
        notes,
    };
    let s = sanitize(input, &p).expect("sanitizes");
    (s.html, s.removed, s.changed)
}

fn html(input: &str) -> (String, Removed) {
    let (h, r, _) = html_with(input, &[], None);
    (h, r)
}

#[test]
fn tracking_pixels_and_remote_images_go_local_images_stay() {
    let (h, r) = html(
        r#"<p>Hi<img src="https://t.example/open.gif" width="1" height="1"><img src="cid:logo@m.example.com"><img src="data:image/png;base64,iVBO"><img src="data:image/svg+xml,&lt;svg/&gt;"><img src=" //t.example/p "></p>"#,
    );
    assert!(!h.contains("t.example"), "{h}");
    assert!(h.contains(r#"src="cid:logo@m.example.com""#), "{h}");
    assert!(h.contains("data:image/png"), "{h}");
    assert!(!h.contains("svg"), "{h}");
    assert_eq!(r.remote_resources, 3);
}

#[test]
fn srcset_background_poster_and_css_urls_go() {
    let (h, r) = html(
        r#"<body background="http://t.example/bg.png"><img src="cid:a" srcset="https://t.example/a2.png 2x"><table style="color:red;background-image:url('https://t.example/bg')"><tr><td>x</td></tr></table><style>@import url(https://t.example/s.css); p{background:url(https://t.example/x)} .a{color:blue}</style></body>"#,
    );
    assert!(!h.contains("t.example"), "{h}");
    assert!(h.contains("color:red"), "{h}");
    assert!(h.contains(".a{color:blue}"), "{h}");
    assert!(h.contains(r#"src="cid:a""#), "{h}");
    assert_eq!(r.remote_resources, 5);
}

#[test]
fn loaders_go_whole() {
    let (h, r) = html(
        r#"<head><link rel="stylesheet" href="https://t.example/a.css"><base href="https://t.example/"><meta http-equiv="refresh" content="0;url=https://t.example/"></head><body><iframe src="https://t.example/f"></iframe><object data="https://t.example/o"></object><embed src="https://t.example/e"><script>fetch('https://t.example/s')</script><form action="https://t.example/f"><input type="image" src="https://t.example/i.png">Name</form><video poster="https://t.example/v.png"></video><svg><image href="https://t.example/s.png"/></svg><noscript><img src="https://t.example/n.gif"></noscript></body>"#,
    );
    assert!(!h.contains("t.example"), "{h}");
    assert!(h.contains("Name"), "form content stays: {h}");
    assert!(r.remote_resources >= 10, "{r:?}");
}

#[test]
fn event_handlers_and_conditional_comments_go() {
    let (h, _) = html(
        r#"<p onclick="x()" onmouseover="new Image().src='https://t.example/'">a</p><!--[if mso]><v:rect><v:fill src="https://t.example/vml.png"/></v:rect><![endif]-->"#,
    );
    assert!(!h.contains("onclick") && !h.contains("t.example") && !h.contains("[if"), "{h}");
}

#[test]
fn external_links_unwrap_and_logos_go_with_them() {
    let (h, r) = html(
        r##"<p><a href="https://click.example/r?u=shop">Visit the shop</a> <a href="https://www.shop.example/"><img src="cid:logo" alt="Shop"></a> <a href="#top">top</a></p>"##,
    );
    assert_eq!(h, r##"<p>Visit the shop  <a href="#top">top</a></p>"##);
    assert_eq!(r.links, 2);
}

#[test]
fn allowlisted_links_and_images_stay() {
    let allow = vec!["cdn.market.example".to_string()];
    let input = r#"<a href="https://cdn.market.example/p/1"><img src="https://img.cdn.market.example/x.png"></a>"#;
    let (h, r, changed) = html_with(input, &allow, None);
    assert_eq!(h, input);
    assert!(r.is_empty() && !changed);
}

#[test]
fn mailto_links_only_to_relay_aliases() {
    let (h, r) = html(
        r#"<a href="mailto:bob@gmail.com">write</a> <a href="mailto:abcdefghijklmno@m.example.com?subject=Hi">reply</a> <a href="tel:+15551234567">call</a>"#,
    );
    assert!(!h.contains("gmail") && !h.contains("tel:"), "{h}");
    assert!(h.contains(r#"href="mailto:abcdefghijklmno@m.example.com?subject=Hi""#), "{h}");
    assert_eq!(r.links, 2);
}

#[test]
fn contact_details_in_text_and_attributes() {
    let (h, r) = html(
        r#"<p title="mail bob@gmail.com">Call 010-1234-5678 or mail bob&#64;shop.example &amp; order 114-1234567-1234567</p><img src="cid:x" alt="+44 20 7946 0958">"#,
    );
    assert!(!h.contains("gmail") && !h.contains("1234-5678") && !h.contains("shop.example"), "{h}");
    assert!(!h.contains("7946"), "{h}");
    assert!(h.contains("order 114-1234567-1234567"), "{h}");
    assert!(h.contains("&amp; order"), "{h}");
    assert_eq!((r.emails, r.phones), (2, 2));
}

#[test]
fn text_the_markup_swallowed_as_names_goes() {
    // Found by the pipeline fuzz target: a forwarded header's `<address>` read as an
    // attribute name, an address as a tag name, a pixel's URL in a broken attribute name.
    let (h, _) = html(
        r#"<p>From: Shop <cFrom: Shop <cs@shop-seller.example> hi</p><cs@shop-seller.example>kept</cs@shop-seller.example><img srcM"https://open.tracker.example/o.gif" width="1"><td class="item" style="" img.tracker.example bg.png')">x</td><p data-x="1" xmlns:v="urn:x" class="a">y</p>"#,
    );
    assert!(!h.contains("shop-seller") && !h.contains("tracker.example"), "{h}");
    assert!(h.contains("kept") && h.contains(">x<") && h.contains(r#"data-x="1""#), "{h}");
    assert!(h.contains(r#"xmlns:v="urn:x""#) && h.contains(r#"width="1""#), "{h}");
    // A namespace name keeps its URL, not an address.
    let (h, r) =
        html(r#"<html xmlns="http://www.w3.org/1999/xhtml" xmlns:o="urn:cs@shop-seller.example"><p>x</p></html>"#);
    assert!(h.contains(r#"xmlns="http://www.w3.org/1999/xhtml""#) && !h.contains("shop-seller"), "{h}");
    assert_eq!(r.emails, 1);
    // Found by the pipeline fuzz target: attribute names `https:`, `/`, `click` spell a
    // tracker's URL in the tag; a broken unquoted `href` starts with `#` and holds one.
    let (h, _) = html(
        r##"<p style="a" https://click>.t.example/r/0" x</p><a href=#D"https://click.tracker.example/c?id=28"></a><a href="#top-2">t</a><img usemap="#m" src="cid:a">"##,
    );
    assert!(!h.contains("https") && !h.contains("tracker"), "{h}");
    assert!(h.contains(r##"<a href="#top-2">t</a>"##) && h.contains(r##"usemap="#m""##), "{h}");
}

#[test]
fn a_repeated_attribute_and_addresses_in_style_go() {
    // Found by the pipeline fuzz target: a second `style` passed unread, and a pasted
    // message swallowed into a `style` value kept its addresses.
    let (h, _) = html(
        r#"<p style="padding:1px" style="background-image:url('https://t.example/bg.png')" class="a">x</p><p style="color:#3From: sales@shop.example">y</p>"#,
    );
    assert!(!h.contains("t.example") && !h.contains("shop.example"), "{h}");
    assert!(h.contains("padding:1px") && h.contains(r#"class="a""#) && h.contains("[email removed]"), "{h}");
}

#[test]
fn references_to_content_ids_no_part_had_go() {
    // Found by the pipeline fuzz target: Outlook's image reference, its part gone.
    let (h, _) = html(
        r#"<p><img src="cid:image001.png@01DA1E2F.3A4B5C60" alt="Logo"><img src="cid:logo"><img src="cid:p1.1@m.example.com"></p>"#,
    );
    assert!(!h.contains("01DA1E2F") && h.contains(r#"src="cid:logo""#), "{h}");
    assert!(h.contains("cid:p1.1@m.example.com"), "{h}");
}

#[test]
fn markup_no_handler_sees_gives_the_markup_up() {
    // No handler sees an end tag that closes nothing: the part falls back to its text.
    let cids = HashMap::new();
    let p = HtmlPolicy {
        remote: true,
        links: true,
        rules: Rules { emails: true, phones: true, links: true, relay_domain: RELAY, allowlist: &[] },
        cids: &cids,
        notes: None,
    };
    for odd in ["<p>a</cs@shop-seller.example>b</p>", "<p>a</p bob@gmail.com>", "<p>a</p\n/x>"] {
        assert!(matches!(sanitize(odd, &p), Err(html::GaveUp::OddMarkup)), "{odd}");
    }
    for fine in ["<p>a</p >b</p\n>", "<p>a < /b and </ 3 and <!-- </x@y.example> --></p>", "<style>p{}</style>"] {
        assert!(sanitize(fine, &p).is_ok(), "{fine}");
    }
    // A tag the document ends inside is passed through by the tokenizer as it came.
    for cut in [
        "<p style=\"color:#3From: sales@shop.example\nSubject: x",
        "<p>Hi</p><img src=\"https://t.example/o.gif\" width=\"1\" height=k.t",
        "<p>x</p><a href='https://t.example/?u=write help@shop.example",
    ] {
        assert!(matches!(sanitize(cut, &p), Err(html::GaveUp::OddMarkup)), "{cut}");
    }
    for whole in ["<!DOCTYPE html><html><body><p>x</p></body></html>\n", "<p>x</p></div></td>  </body>"] {
        assert!(sanitize(whole, &p).is_ok(), "{whole}");
    }
    // Found by the pipeline fuzz target: a `<style>` never closed reads the rest of the
    // document (a pasted message) as CSS.
    let open = "<p>x</p><style>p{margin:0; font-sizFrom: Shop <cs@shop-seller.example>\r\nSubject: 010-1234-5678";
    assert!(matches!(sanitize(open, &p), Err(html::GaveUp::OddMarkup)), "{open}");
    assert!(sanitize("<style>p{}</style><p>x</p>", &p).is_ok());
}

#[test]
fn addresses_in_style_blocks_go() {
    // Found by the pipeline fuzz target: a pasted message inside a closed `<style>`.
    let (h, r) = html("<style>p{font-family:\"lee@shop-seller.example\"}</style><p>x</p>");
    assert!(!h.contains("shop-seller"), "{h}");
    assert!(h.contains("<style>") && h.contains("</style><p>x</p>"), "{h}");
    assert_eq!(r.emails, 1);
    // At-rules are no addresses.
    let css = "<style>@media screen{p{color:red}}</style>";
    assert_eq!(html(css).0, css);
}

#[test]
fn only_html_and_w3c_doctypes_stay() {
    for kept in [
        "<!DOCTYPE html><p>x</p>",
        "<!doctype HTML ><p>x</p>",
        "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\" \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\"><p>x</p>",
        "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\"><p>x</p>",
    ] {
        assert_eq!(html(kept).0, kept);
    }
    // Found by the pipeline fuzz target: a doctype that swallowed a pasted address.
    for dropped in [
        "<!DOCTYPEmarketing@shop-seller.example><p>x</p>",
        "<!DOCTYPE html PUBLIC \"-//W3C//DTD X//EN\" \"http://www.w3.org/x\" bob@gmail.com><p>x</p>",
        "<!DOCTYPE html SYSTEM \"https://t.example/track.dtd\"><p>x</p>",
        "<!DOCTYPE html PUBLIC \"-//W3C//bob@gmail.com\"><p>x</p>",
    ] {
        let (h, _, changed) = html_with(dropped, &[], None);
        assert_eq!(h, "<p>x</p>", "{dropped}");
        assert!(changed);
    }
}

#[test]
fn a_part_whose_markup_was_given_up_is_delivered_as_its_text() {
    let policy = ContentPolicy::seller_to_buyer_default();
    let raw =
        "Content-Type: text/html; charset=utf-8\r\n\r\n<p>Hi</p><p>From: Shop</cs@shop-seller.example> see you</p>\r\n";
    let at = raw.find("\r\n\r\n").unwrap();
    let headers = vec![("Content-Type".to_string(), "text/html; charset=utf-8".to_string())];
    let input = &raw.as_bytes()[at + 4..];
    let out = apply(&headers, input, &policy, RELAY);
    let Outcome::Rewritten { body, content_type, .. } = out else { panic!("{out:?}") };
    let body = String::from_utf8(body.to_vec(input)).unwrap();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert!(!body.contains("shop-seller") && body.contains("see you"), "{body}");
}

#[test]
fn contact_details_split_by_markup_are_seen_whole() {
    let (h, r) = html("<p>bob@<b></b>gmail.com and 010-<!-- x -->1234-<span>5678</span></p><p>2026-11-23</p>");
    assert!(!h.contains("gmail") && !h.contains("5678"), "{h}");
    assert!(h.contains("[email removed]") && h.contains("[phone removed]"), "{h}");
    assert!(h.contains("2026-11-23"), "{h}");
    assert_eq!((r.emails, r.phones), (1, 1));
    // Separate blocks are separate runs: no false join.
    let (h, _) = html("<p>Order 114</p><p>1234567</p>");
    assert_eq!(h, "<p>Order 114</p><p>1234567</p>");
}

#[test]
fn clean_html_is_unchanged_and_notes_go_before_body_end() {
    let input =
        "<html><body><p>Hello, your order 114-1234567-1234567 ships on 23/11/2026 for $1,234.56.</p></body></html>";
    let (h, r, changed) = html_with(input, &[], None);
    assert_eq!(h, input);
    assert!(r.is_empty() && !changed);
    let (h, _, changed) = html_with(input, &[], Some("<p>note</p>"));
    assert!(changed && h.ends_with("<p>note</p></body></html>"), "{h}");
    let (h, _, _) = html_with("<p>no body", &[], Some("<p>note</p>"));
    assert!(h.ends_with("<p>note</p>"), "{h}");
}

#[test]
fn entities_are_decoded_before_judging() {
    assert_eq!(decode_entities("a&#64;b&#x2e;c&commat;d&period;e&amp"), "a@b.c@d.e&");
    assert_eq!(decode_entities("x&#64y"), "x@y");
    assert_eq!(decode_entities("&unknown; & &"), "&unknown; & &");
}

#[test]
fn policies_and_summary() {
    assert!(ContentPolicy::seller_to_buyer_default().filter_attachments);
    let b = ContentPolicy::buyer_to_seller_default();
    assert!(b.remove_remote_content && !b.unwrap_external_links && !b.redact_contact_details);
    assert!(!b.is_noop());
    let noop = ContentPolicy { remove_remote_content: false, ..b };
    assert!(noop.is_noop());
    let r = Removed { remote_resources: 2, links: 1, phones: 1, ..Removed::default() };
    assert_eq!(r.summary(), "2 remote resources, 1 link, 1 phone");
    assert_eq!(Removed::default().summary(), "nothing");
    assert!(Removed::default().is_empty() && !r.is_empty());
}

fn ct(v: &str) -> Vec<(String, String)> {
    vec![("MIME-Version".into(), "1.0".into()), ("Content-Type".into(), v.into())]
}

#[test]
fn noop_and_clean_messages_are_unchanged() {
    let body = b"Hello,\r\nyour order 114-1234567-1234567 ships 2026-11-23.\r\n";
    let h = ct("text/plain; charset=utf-8");
    assert_eq!(apply(&h, body, &ContentPolicy::seller_to_buyer_default(), RELAY), Outcome::Unchanged);
    let noop = ContentPolicy { remove_remote_content: false, ..ContentPolicy::buyer_to_seller_default() };
    assert_eq!(apply(&h, b"bob@gmail.com", &noop, RELAY), Outcome::Unchanged);
}

#[test]
fn plain_text_is_rewritten_with_new_headers() {
    let h = ct("text/plain; charset=utf-8");
    let Outcome::Rewritten { body, content_type, content_transfer_encoding, removed, .. } =
        apply(&h, b"Mail bob@gmail.com or call 010-1234-5678\r\n", &ContentPolicy::seller_to_buyer_default(), RELAY)
    else {
        panic!("not rewritten")
    };
    assert_eq!(content_type, "text/plain; charset=\"utf-8\"");
    assert_eq!(content_transfer_encoding.as_deref(), Some("7bit"));
    assert_eq!(String::from_utf8(body.to_vec(b"")).unwrap(), "Mail [email removed] or call [phone removed]\r\n");
    assert_eq!(removed.summary(), "1 email, 1 phone");
}

#[test]
fn oversized_deep_and_encrypted_messages_are_refused() {
    let p = ContentPolicy::seller_to_buyer_default();
    let big = vec![b'a'; MAX_MESSAGE_BYTES + 1];
    assert!(matches!(apply(&ct("text/plain"), &big, &p, RELAY), Outcome::Refuse { code: "552", xcode: "5.3.4", .. }));
    let mut body = String::new();
    for i in 0..25 {
        body.push_str(&format!("--b{i}\r\nContent-Type: multipart/mixed; boundary=\"b{}\"\r\n\r\n", i + 1));
    }
    body.push_str("--b25\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b25--\r\n");
    assert!(matches!(
        apply(&ct("multipart/mixed; boundary=\"b0\""), body.as_bytes(), &p, RELAY),
        Outcome::Refuse { code: "554", xcode: "5.6.0", .. }
    ));
    let enc = "--e\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n--e\r\nContent-Type: application/octet-stream\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n--e--\r\n";
    let r = apply(
        &ct("multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"e\""),
        enc.as_bytes(),
        &p,
        RELAY,
    );
    assert!(matches!(r, Outcome::Refuse { code: "554", .. }), "{r:?}");
}

#[test]
fn a_message_that_is_one_bad_attachment_becomes_the_note() {
    let h = vec![
        ("Content-Type".into(), "application/x-msdownload; name=\"setup.exe\"".into()),
        ("Content-Disposition".into(), "attachment; filename=\"setup.exe\"".into()),
        ("Content-Transfer-Encoding".into(), "base64".into()),
    ];
    let input = b"TVqQAAMAAAAEAAAA\r\n";
    let r = apply(&h, input, &ContentPolicy::seller_to_buyer_default(), RELAY);
    let Outcome::Rewritten { body, content_type, content_transfer_encoding, content_disposition, removed } = r else {
        panic!("{r:?}")
    };
    let body = String::from_utf8(body.to_vec(input)).unwrap();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert_eq!(content_disposition, None, "the message must no longer read as the attachment");
    assert_ne!(content_transfer_encoding.as_deref(), Some("base64"));
    assert!(body.starts_with("[Attachment removed: \"setup.exe\" ("), "{body}");
    assert!(!body.contains("TVqQ"), "{body}");
    assert_eq!(removed.attachments, 1);
}

#[test]
fn a_message_that_is_one_allowed_attachment_gets_its_name_cleaned() {
    let h = vec![
        ("Content-Type".into(), "application/pdf; name=\"call 010-1234-5678.pdf\"".into()),
        ("Content-Disposition".into(), "attachment; filename=\"call 010-1234-5678.pdf\"".into()),
        ("Content-Transfer-Encoding".into(), "base64".into()),
    ];
    let input = b"JVBERi0xLjQK\r\n";
    let r = apply(&h, input, &ContentPolicy::seller_to_buyer_default(), RELAY);
    let Outcome::Rewritten { body, content_type, content_disposition, .. } = r else { panic!("{r:?}") };
    let body = String::from_utf8(body.to_vec(input)).unwrap();
    let disposition = content_disposition.unwrap_or_default();
    for header in [&content_type, &disposition] {
        assert!(!header.contains("1234") && header.contains("[phone removed]"), "{header}");
    }
    assert!(content_type.starts_with("application/pdf") && disposition.starts_with("attachment"), "{content_type}");
    assert_eq!(body.trim_end(), "JVBERi0xLjQK");
}

#[test]
fn non_canonical_text_is_rebuilt_even_when_clean() {
    let p = ContentPolicy::seller_to_buyer_default();
    // Unknown charset: rebuilt as UTF-8 from what was checked.
    let r = apply(&ct("text/plain; charset=x-unknown-7"), b"hello\r\n", &p, RELAY);
    assert!(matches!(r, Outcome::Rewritten { .. }), "{r:?}");
    // Broken quoted-printable.
    let mut h = ct("text/plain; charset=utf-8");
    h.push(("Content-Transfer-Encoding".into(), "quoted-printable".into()));
    let r = apply(&h, b"hello =ZZ world\r\n", &p, RELAY);
    assert!(matches!(r, Outcome::Rewritten { .. }), "{r:?}");
    // Valid quoted-printable with a soft break stays untouched.
    let r = apply(&h, b"hello =\r\nworld =E2=9C=93\r\n", &p, RELAY);
    assert_eq!(r, Outcome::Unchanged);
}

#[test]
fn folded_header_values_are_understood() {
    let h = vec![("Content-Type".to_string(), "multipart/alternative;\r\n\tboundary=\"zz\"".to_string())];
    let body = b"--zz\r\nContent-Type: text/plain\r\n\r\ncall 010-1234-5678\r\n--zz--\r\n";
    let r = apply(&h, body, &ContentPolicy::seller_to_buyer_default(), RELAY);
    let Outcome::Rewritten { content_type, removed, .. } = r else { panic!("{r:?}") };
    assert!(content_type.starts_with("multipart/alternative;"), "{content_type}");
    assert_eq!(removed.phones, 1);
}

/// A buyer message with a large attachment gets its footer without the
/// attachment being copied: the rebuilt body refers to it.
#[test]
fn a_large_attachment_passes_through_as_a_span_of_the_input() {
    use base64::Engine as _;
    let data: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
    let lines: Vec<&str> = b64.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).unwrap()).collect();
    let body = format!(
        "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPhotos attached.\r\n--b\r\n\
         Content-Type: application/zip; name=\"p.zip\"\r\nContent-Disposition: attachment; filename=\"p.zip\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
        lines.join("\r\n")
    );
    let h = ct("multipart/mixed; boundary=\"b\"");
    let extras = Extras {
        footer: Some(Footer { token: "t".repeat(24), relay_domain: RELAY.into(), relay_name: "Relay".into() }),
        strip_footer: false,
    };
    let policy = ContentPolicy::buyer_to_seller_default();
    let Outcome::Rewritten { body: out, content_type, .. } = apply_with(&h, body.as_bytes(), &policy, RELAY, &extras)
    else {
        panic!("not rewritten")
    };
    assert!(out.spanned_len() >= b64.len(), "spanned {} of {}", out.spanned_len(), b64.len());
    let rebuilt = out.to_vec(body.as_bytes());
    assert_eq!(out.len(), rebuilt.len());
    let full = [format!("Content-Type: {content_type}\r\n\r\n").into_bytes(), rebuilt].concat();
    let parsed = mail_parser::MessageParser::new().parse(&full).unwrap();
    assert!(parsed.body_text(0).unwrap().contains("no-response-needed+"), "footer missing");
    let attachment = parsed.attachments().next().expect("attachment kept");
    assert_eq!(attachment.contents(), data.as_slice());
}

#[test]
fn a_removed_part_is_named_by_its_type_only_when_the_type_is_well_formed() {
    let p = ContentPolicy::seller_to_buyer_default();
    let note = |part_type: &str| {
        let body = format!(
            "--b\r\nContent-Type: text/plain\r\n\r\nInvoice attached.\r\n--b\r\nContent-Type: {part_type}\r\n\r\nxyz\r\n--b--\r\n"
        );
        let Outcome::Rewritten { body, .. } = apply(&ct("multipart/mixed; boundary=\"b\""), body.as_bytes(), &p, RELAY)
        else {
            panic!("not rewritten")
        };
        let text = String::from_utf8_lossy(&body.to_vec(b"")).into_owned();
        let line = text.lines().find(|l| l.contains("[Attachment removed")).map(str::to_string);
        line.unwrap_or_else(|| panic!("no note in {text}"))
    };
    assert!(note("application/x-msdownload").contains("an unnamed application/x-msdownload part"));
    // Found by the pipeline fuzz target: the type is the sender's text.
    for evil in ["application/bob@gmail.com", "text/pfrom: shop <bob@gmail.com>", "bob@gmail.com/x"] {
        let n = note(evil);
        assert!(!n.contains("gmail"), "{evil:?} gave {n:?}");
        assert!(n.contains("an unnamed part"), "{evil:?} gave {n:?}");
    }
}

#[test]
fn an_address_or_link_in_mime_parameters_makes_the_message_rebuilt() {
    // Found by the pipeline fuzz target: the boundary is the sender's text too.
    let p = ContentPolicy::seller_to_buyer_default();
    let b = "cs@shop-seller.example";
    let body = format!("--{b}\r\nContent-Type: text/plain\r\n\r\nYour order ships today.\r\n--{b}--\r\n");
    let Outcome::Rewritten { body, content_type, .. } =
        apply(&ct(&format!("multipart/mixed; boundary=\"{b}\"")), body.as_bytes(), &p, RELAY)
    else {
        panic!("not rebuilt")
    };
    let out = String::from_utf8_lossy(&body.to_vec(b"")).into_owned();
    assert!(!content_type.contains("shop-seller") && !out.contains("shop-seller"), "{content_type}\n{out}");
    assert!(out.contains("Your order ships today."), "{out}");
    // A part's own parameters, and a multipart's `type` that is not a type.
    let body = "--x\r\nContent-Type: text/plain; x-note=\"see https://tracker.example/p\"\r\n\r\nHi\r\n--x--\r\n";
    let r = apply(&ct("multipart/related; type=\"bob@gmail.com\"; boundary=\"x\""), body.as_bytes(), &p, RELAY);
    let Outcome::Rewritten { body, content_type, .. } = r else { panic!("not rebuilt: {r:?}") };
    let out = String::from_utf8_lossy(&body.to_vec(b"")).into_owned();
    assert!(!content_type.contains("gmail") && !out.contains("tracker.example"), "{content_type}\n{out}");
    // Generated boundaries full of digits are not mistaken for phone numbers.
    let b = "----=_Part_1234567_890123456.1700000000000";
    let body = format!("--{b}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello\r\n--{b}--\r\n");
    let h = ct(&format!("multipart/mixed; boundary=\"{b}\""));
    assert_eq!(apply(&h, body.as_bytes(), &p, RELAY), Outcome::Unchanged);
}

#[test]
fn an_attachment_name_with_an_address_is_cleaned_even_when_nothing_else_changes() {
    let p = ContentPolicy::seller_to_buyer_default();
    let multipart = "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhi\r\n\
                     --b\r\nContent-Type: text/plain; charset=utf-8\r\n\
                     Content-Disposition: attachment; filename=\"bob@gmail.com.txt\"\r\n\r\nhello\r\n--b--\r\n";
    let top_level = "hello\r\n";
    let cases = [
        (ct("multipart/mixed; boundary=\"b\""), multipart),
        (ct("text/plain; charset=utf-8; name=\"=?utf-8?B?Ym9iQGdtYWlsLmNvbS50eHQ=?=\""), top_level),
    ];
    for (headers, body) in cases {
        let r = apply(&headers, body.as_bytes(), &p, RELAY);
        let Outcome::Rewritten { body: out, content_type, content_disposition, .. } = r else {
            panic!("{r:?} for {body:?}")
        };
        let all = format!(
            "{content_type}\n{}\n{}",
            content_disposition.unwrap_or_default(),
            String::from_utf8(out.to_vec(body.as_bytes())).unwrap()
        );
        assert!(!all.contains("gmail") && !all.contains("Ym9iQGdtYWls"), "{all}");
        assert!(all.contains("hello"), "{all}");
    }
}

/// Text that came unencoded and that the policy leaves alone goes out byte
/// for byte, the footer after it, not encoded again; text that came encoded,
/// or in lines SMTP would not carry as they are, is encoded as before.
#[test]
fn unchanged_unencoded_text_keeps_its_bytes_and_gets_the_footer_after_them() {
    let extras = Extras {
        footer: Some(Footer { token: "t".repeat(24), relay_domain: RELAY.into(), relay_name: "Relay".into() }),
        strip_footer: false,
    };
    let policy = ContentPolicy::buyer_to_seller_default();
    let footed = |headers: &[(String, String)], body: &[u8]| {
        let Outcome::Rewritten { body: out, content_type, content_transfer_encoding, .. } =
            apply_with(headers, body, &policy, RELAY, &extras)
        else {
            panic!("not rewritten")
        };
        let out = out.to_vec(body);
        let full = [
            format!("Content-Type: {content_type}\r\n").as_bytes(),
            match &content_transfer_encoding {
                Some(c) => format!("Content-Transfer-Encoding: {c}\r\n").into_bytes(),
                None => Vec::new(),
            }
            .as_slice(),
            b"\r\n",
            &out,
        ]
        .concat();
        let text = mail_parser::MessageParser::new().parse(&full).unwrap().body_text(0).unwrap().into_owned();
        (out, content_transfer_encoding, text)
    };
    // Lines of 80 bytes: the writer alone would have chosen quoted-printable.
    let line = "The parcel for order 114-1234567-1234567 has not arrived yet, could you check it";
    let body = format!("{line}\r\n{line}\r\n\r\n-- \r\nBob\r\n");
    let (out, cte, text) = footed(&ct("text/plain; charset=utf-8"), body.as_bytes());
    assert_eq!(cte.as_deref(), Some("7bit"));
    assert!(out.starts_with(body.as_bytes()), "{}", String::from_utf8_lossy(&out));
    assert!(text.starts_with(&body) && text.contains("no-response-needed+"), "{text}");

    // UTF-8 without a transfer encoding: 8bit, the same bytes.
    let body = "주문하신 상품이 아직 도착하지 않았습니다. 확인 부탁드립니다.\r\n";
    let (out, cte, text) = footed(&ct("text/plain; charset=utf-8"), body.as_bytes());
    assert_eq!(cte.as_deref(), Some("8bit"));
    assert!(out.starts_with(body.as_bytes()) && text.starts_with(body));

    // Encoded, bare line feeds, or a line over 998 bytes: encoded again, read the same.
    let mut qp = ct("text/plain; charset=utf-8");
    qp.push(("Content-Transfer-Encoding".into(), "quoted-printable".into()));
    let long = format!("{}\r\n", "x".repeat(1200));
    for (headers, body, reads) in [
        (&qp, "caf=C3=A9 au lait\r\n", "café au lait\r\n"),
        (&ct("text/plain"), "one\ntwo\n", "one\r\ntwo\r\n"),
        (&ct("text/plain"), long.as_str(), long.as_str()),
    ] {
        let (_, cte, text) = footed(headers, body.as_bytes());
        assert_ne!(cte.as_deref(), Some("7bit"), "{body:?}");
        assert!(text.starts_with(reads), "{body:?}: {text:?}");
    }
}

/// A namespace value with white space inside is text the markup swallowed: it
/// goes, with the link it holds; a namespace URI stays.
#[test]
fn a_namespace_value_that_is_no_uri_goes() {
    let (h, _) = html(
        r#"<div class="x" xmlns:v="urn:schemas-microsoft-com:vml SALE at https://click.t.example/r">a</div><p xmlns="http://www.w3.org/TR/REC-html40">b</p>"#,
    );
    assert!(!h.contains("t.example") && !h.contains("xmlns:v"), "{h}");
    assert!(h.contains(r#"xmlns="http://www.w3.org/TR/REC-html40""#), "{h}");
}
