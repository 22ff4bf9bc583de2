use super::*;

const RELAY: &str = "m.example.com";
const TOKEN: &str = "k3j9x0q2w8e7r6t5y4u1i0o9";

fn footer() -> Footer {
    Footer { token: TOKEN.into(), relay_domain: RELAY.into(), relay_name: "Marketplace Messaging".into() }
}

/// No command address, no token, no marker, no footer wording.
fn assert_gone(s: &str) {
    for gone in [
        "no-response-needed+",
        "report+",
        TOKEN,
        FOOTER_START,
        FOOTER_END,
        "bsm-footer",
        "Reply to this message",
        "No response needed",
        "Report this message",
        "end of Marketplace",
    ] {
        assert!(!s.contains(gone), "{gone:?} left in:\n{s}");
    }
}

/// Quotes `text` the way a mail client does: each line wrapped at `width`
/// columns (words move forward), then prefixed.
fn quote(text: &str, prefix: &str, width: usize) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut cur = String::new();
        for word in line.split(' ') {
            if !cur.is_empty() && cur.len() + 1 + word.len() > width {
                out.push_str(&format!("{prefix}{cur}\r\n"));
                cur.clear();
            } else if !cur.is_empty() || line.starts_with(' ') {
                cur.push(' ');
            }
            cur.push_str(word);
        }
        // "-- " keeps its trailing space.
        out.push_str(&format!("{prefix}{cur}\r\n"));
    }
    out
}

#[test]
fn text_footer_is_exactly_this() {
    assert_eq!(
        footer().text(),
        "-- \r\n\
         ::bsm-footer:: [Marketplace Messaging] Reply to this message to answer the buyer.\r\n\
         No response needed? Write to <mailto:no-response-needed+k3j9x0q2w8e7r6t5y4u1i0o9@m.example.com>\r\n\
         Report this message: <mailto:report+k3j9x0q2w8e7r6t5y4u1i0o9@m.example.com>\r\n\
         [end of Marketplace Messaging footer] ::bsm-footer-end::\r\n"
    );
    // Configuration cannot break the line structure.
    let f = Footer { relay_name: "A\r\nB".into(), ..footer() };
    assert!(f.text().contains("[A  B] Reply"), "{}", f.text());
}

#[test]
fn html_footer_is_a_marked_div_with_links() {
    let h = footer().html();
    assert!(h.starts_with("<div data-bsm-footer=\"1\" class=\"bsm-footer\" style=\""), "{h}");
    assert!(h.contains("color:#888888") && h.contains("font-size:12px"), "{h}");
    assert!(h.contains("\"><hr "), "the rule opens the div: {h}");
    let nrn = format!("no-response-needed+{TOKEN}@{RELAY}");
    assert!(h.contains(&format!("<a href=\"mailto:{nrn}\" style=\"color:#888888\">{nrn}</a>")), "{h}");
    assert!(h.contains(&format!("<a href=\"mailto:report+{TOKEN}@{RELAY}\"")), "{h}");
    assert!(h.contains("::bsm-footer:: [Marketplace Messaging] Reply to this message to answer the buyer.<br>"));
    assert!(h.ends_with("[end of Marketplace Messaging footer] ::bsm-footer-end::</div>"), "{h}");
    let f = Footer { relay_name: "<b>\"Shop\"</b>".into(), ..footer() };
    assert!(f.html().contains("[&lt;b&gt;&quot;Shop&quot;&lt;/b&gt;]"), "{}", f.html());
}

#[test]
fn command_addresses_are_recognised() {
    for yes in [
        "x <mailto:no-response-needed+abc@m.example.com>",
        "NO-RESPONSE-NEEDED+ABC@M.EXAMPLE.COM.",
        "report+abc@m.example.com",
        "mailto:report%2Babc@m.example.com?subject=x",
    ] {
        assert!(has_command_address(yes, RELAY), "{yes}");
    }
    for no in [
        "report+abc@other.example",
        "report+abc@m.example.com.evil.net",
        "report+abc@m.example.community",
        "bob.report+abc@m.example.com",
        "reported@m.example.com",
        "abcdefghijklmno@m.example.com",
        "report+abc m.example.com",
    ] {
        assert!(!has_command_address(no, RELAY), "{no}");
    }
}

#[test]
fn nothing_to_strip_is_borrowed() {
    let t = "Hi,\r\nthe parcel ships today.\r\n-- \r\nBob's shop\r\nabcdefghijklmno@m.example.com\r\n";
    assert!(matches!(strip_text(t, RELAY), Cow::Borrowed(_)));
    // The quick check fires on the word, the strip finds no block.
    assert!(matches!(strip_text("see bsm-footer docs", RELAY), Cow::Borrowed(_)));
}

#[test]
fn strip_undoes_the_footer() {
    let body = "Hello, is the blue one still available?\r\n";
    let with = format!("{body}\r\n{}", footer().text());
    assert_eq!(strip_text(&with, RELAY), format!("{body}\r\n"));
}

#[test]
fn quoted_footers_go_at_any_depth() {
    let reply = "Yes, it ships tomorrow.\r\n\r\nOn Mon, Buyer wrote:\r\n";
    let original = format!("Is the blue one available?\r\n\r\n{}", footer().text());
    for prefix in ["> ", "> > ", ">>", ">", " > >> "] {
        let quoted = quote(&original, prefix, 998);
        let msg = format!("{reply}{quoted}\r\nBest, Seller\r\n");
        let out = strip_text(&msg, RELAY);
        assert_gone(&out);
        assert!(out.contains("Yes, it ships tomorrow.") && out.contains("Best, Seller"), "{out}");
        assert!(out.contains(&format!("{prefix}Is the blue one available?")), "{out}");
        assert!(!out.contains(&format!("{}--", prefix.trim_end())), "separator left: {out}");
    }
}

#[test]
fn rewrapped_quotes_go_whole() {
    let original = format!("Is the blue one available?\r\n\r\n{}", footer().text());
    for width in [20, 40, 60, 72] {
        let msg = format!("Yes.\r\n\r\n{}", quote(&original, "> ", width));
        let out = strip_text(&msg, RELAY);
        assert_gone(&out);
        assert!(out.starts_with("Yes.\r\n\r\n> Is the blue"), "{width}: {out}");
    }
}

#[test]
fn a_missing_end_marker_ends_the_block_at_the_last_command_line() {
    let text = footer().text();
    let cut = text.replace("[end of Marketplace Messaging footer] ::bsm-footer-end::\r\n", "");
    let msg = format!("Sure.\r\n> Question?\r\n> {}\r\nThanks again\r\n", cut.trim_end().replace("\r\n", "\r\n> "));
    let out = strip_text(&msg, RELAY);
    assert_gone(&out);
    assert_eq!(out, "Sure.\r\n> Question?\r\nThanks again\r\n");
}

#[test]
fn the_safety_net_takes_stray_command_lines_only() {
    let msg = "Thanks!\r\n> write to report+abc@m.example.com now\r\n> report+abc@elsewhere.example stays\r\nbye";
    assert_eq!(strip_text(msg, RELAY), "Thanks!\r\n> report+abc@elsewhere.example stays\r\nbye");
    // An end marker alone goes too; a separator above a removed line goes with it.
    let msg = "a\r\n--\r\n\r\n[end] ::bsm-footer-end::\r\nb\r\n";
    assert_eq!(strip_text(msg, RELAY), "a\r\nb\r\n");
    // Two footers, the first without an end marker: the text between stays.
    let f = footer().text();
    let first = f.replace(FOOTER_END, "");
    let msg = format!("{first}between\r\n{f}after\r\n");
    let out = strip_text(&msg, RELAY);
    assert!(out.contains("between\r\n") && out.ends_with("after\r\n"), "{out}");
    assert!(!out.contains(TOKEN), "{out}");
}

fn stripped_html(html: &str) -> String {
    strip_html(html, RELAY).expect("tokenizes").unwrap_or_else(|| html.to_string())
}

#[test]
fn marked_html_footers_go_whole() {
    let html = format!("<html><body><p>Is it available?</p>{}</body></html>", footer().html());
    assert_eq!(stripped_html(&html), "<html><body><p>Is it available?</p></body></html>");
    // Gmail keeps the class with a prefix and drops data-*.
    let gmail = footer().html().replace("data-bsm-footer=\"1\" class=\"", "class=\"m_-7265001234gmail-m_");
    let html = format!("<div>Yes</div><blockquote class=\"gmail_quote\"><div>Q?</div>{gmail}</blockquote>");
    assert_eq!(stripped_html(&html), "<div>Yes</div><blockquote class=\"gmail_quote\"><div>Q?</div></blockquote>");
}

#[test]
fn unmarked_html_footers_go_by_their_text() {
    // Outlook: the div lost its attribute and class, the lines became paragraphs.
    let nrn = format!("no-response-needed+{TOKEN}@{RELAY}");
    let rep = format!("report+{TOKEN}@{RELAY}");
    let html = format!(
        "<p>Yes, tomorrow.</p><div><p class=MsoNormal>Is it available?</p>\n<div><hr size=2 width=\"100%\">\n\
         <p><span style=\"color:grey\">::bsm-footer:: [Marketplace Messaging] Reply to this\nmessage to answer the buyer.<br>\n\
         No response needed? Write to <a href=\"mailto:{nrn}\"><span>{nrn}</span></a><br>\
         Report this message: <a href=\"MAILTO:{}\">{rep}</a><br>\
         [end of Marketplace Messaging footer] ::bsm-footer-end::</span></p></div></div><p>Regards</p>",
        rep.replace('+', "%2B")
    );
    let out = stripped_html(&html);
    assert_gone(&out);
    assert!(!out.contains("<hr"), "{out}");
    assert!(out.starts_with("<p>Yes, tomorrow.</p><div><p class=MsoNormal>Is it available?</p>"), "{out}");
    assert!(out.ends_with("</div></div><p>Regards</p>"), "{out}");
    // Quoted plain text inside <pre>, with the seller's text in the same node.
    let text = format!("Q?\n\n{}", footer().text().replace("\r\n", "\n"));
    let html = format!("<p>Sure</p><pre>{}Thanks</pre>", escape(&quote(&text, "> ", 50).replace("\r\n", "\n")));
    let out = stripped_html(&html);
    assert_gone(&out);
    assert!(out.contains("<pre>&gt; Q?\n&gt; \nThanks</pre>"), "{out}");
}

#[test]
fn stray_command_links_go_with_their_line() {
    let html = format!(
        "<p>Fine.</p><div>Write to <a href=\"mailto:report+{TOKEN}@m.EXAMPLE.com\">this address</a> if needed<br>Kept line</div>"
    );
    assert_eq!(stripped_html(&html), "<p>Fine.</p><div>Kept line</div>");
    let clean = "<p>Write to <a href=\"mailto:abcdefghijklmno@m.example.com\">me</a></p>";
    assert_eq!(strip_html(clean, RELAY).unwrap(), None);
}
