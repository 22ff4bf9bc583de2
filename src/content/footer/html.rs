//! Footers in HTML parts. A quoted footer may have lost its `data-bsm-footer`
//! attribute and its class (Outlook rebuilds the markup; Gmail drops `data-*`),
//! so the visible text decides, as in plain text: a first lol_html pass reads
//! the lines a reader sees (text nodes, cut at block elements and `<br>`; an
//! `<hr>` reads as `--`; a command link as a command address), the plain-text
//! rules pick the footer lines, and a second pass removes them — text, and
//! the tags that start inside them. Marked elements and command links go whole.
//! Both passes see the same tokens, so text node and element numbers agree.

use super::{footer_lines, has_command_address};
use crate::content::html::{INLINE, decode_entities, escape_text, percent_decode};
use crate::content::url::normalize;
use lol_html::html_content::{ContentType, Element, TextType};
use lol_html::{HtmlRewriter, Settings, doc_text, element};
use std::cell::{Cell, RefCell};
use std::ops::Range;
use std::rc::Rc;

/// Elements whose content is not text a reader sees.
const OPAQUE: &[&str] = &[
    "script",
    "style",
    "title",
    "textarea",
    "xmp",
    "iframe",
    "noembed",
    "noframes",
    "noscript",
    "plaintext",
    "template",
];
/// Elements in which line ends are line ends.
const PRE: &[&str] = &["pre", "listing", "plaintext", "textarea", "xmp"];

/// The visible text, as lines, and where each token sits in it.
#[derive(Default)]
struct Reading {
    lines: String,
    /// Per text node: its offset in `lines` and its decoded text, when shown.
    texts: Vec<Option<(usize, String)>>,
    /// Per element: its offset in `lines`.
    elements: Vec<usize>,
    /// Some element goes whole.
    whole: bool,
}

/// Removes relay footers from an HTML document; `None` when there was
/// nothing to remove. `relay` is lower-case.
pub(in crate::content) fn strip_html(
    html: &str,
    relay: &str,
) -> Result<Option<String>, lol_html::errors::RewritingError> {
    let reading = read(html, relay)?;
    let dropped = footer_lines(&reading.lines, relay);
    if dropped.is_empty() && !reading.whole {
        return Ok(None);
    }
    rewrite(html, relay, &reading, &dropped)
}

/// An element that goes with its content: a marked footer, or a command link.
fn goes_whole(el: &Element<'_, '_>, tag: &str, relay: &str) -> bool {
    if el.has_attribute("data-bsm-footer")
        || el.get_attribute("class").is_some_and(|c| c.to_ascii_lowercase().contains("bsm-footer"))
    {
        return true;
    }
    if tag != "a" && tag != "area" {
        return false;
    }
    el.get_attribute("href").is_some_and(|href| {
        let href = decode_entities(&href);
        let href = normalize(&href);
        href.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("mailto:"))
            && has_command_address(&percent_decode(&href[7..]), relay)
    })
}

fn read(html: &str, relay: &str) -> Result<Reading, lol_html::errors::RewritingError> {
    let r = Rc::new(RefCell::new(Reading::default()));
    let hidden = Rc::new(Cell::new(0u32));
    let pre = Rc::new(Cell::new(0u32));
    let pending = RefCell::new(String::new());
    let settings = Settings::new()
        .append_element_content_handler(element!("*", |el| {
            let tag = el.tag_name();
            let inline = INLINE.contains(&tag.as_str());
            let mut lines = r.borrow_mut();
            let mut pos = lines.lines.len();
            let mut depths = Vec::new();
            if goes_whole(el, &tag, relay) {
                lines.whole = true;
                if hidden.get() == 0 && (tag == "a" || tag == "area") {
                    // The line a command link is on is a command line.
                    lines.lines.push_str(&format!(" no-response-needed+x@{relay} "));
                }
                depths.push(hidden.clone());
            }
            let block = !inline && hidden.get() == 0;
            if block && tag == "hr" {
                lines.lines.push('\n');
                pos = lines.lines.len();
                lines.lines.push_str("--\n");
            } else if block {
                lines.lines.push('\n');
            }
            if PRE.contains(&tag.as_str()) {
                depths.push(pre.clone());
            }
            lines.elements.push(pos);
            drop(lines);
            if !el.can_have_content() {
                return Ok(());
            }
            for d in &depths {
                d.set(d.get() + 1);
            }
            let r = r.clone();
            el.on_end_tag(Box::new(move |_| {
                for d in &depths {
                    d.set(d.get().saturating_sub(1));
                }
                if block {
                    r.borrow_mut().lines.push('\n');
                }
                Ok(())
            }))?;
            Ok(())
        }))
        .append_document_content_handler(doc_text!(|t| {
            if !t.last_in_text_node() {
                pending.borrow_mut().push_str(t.as_str());
                return Ok(());
            }
            let mut raw = std::mem::take(&mut *pending.borrow_mut());
            raw.push_str(t.as_str());
            let mut r = r.borrow_mut();
            if t.text_type() != TextType::Data || hidden.get() > 0 {
                r.texts.push(None);
                return Ok(());
            }
            let text = decode_entities(&raw).into_owned();
            let at = r.lines.len();
            if pre.get() > 0 {
                r.lines.push_str(&text);
            } else {
                // Source line ends are spaces to a reader.
                r.lines.extend(text.chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }));
            }
            r.texts.push(Some((at, text)));
            Ok(())
        }));
    let mut rewriter = HtmlRewriter::new(settings, |_: &[u8]| {});
    rewriter.write(html.as_bytes())?;
    rewriter.end()?;
    Ok(Rc::try_unwrap(r).map(RefCell::into_inner).unwrap_or_else(|r| std::mem::take(&mut r.borrow_mut())))
}

fn rewrite(
    html: &str,
    relay: &str,
    reading: &Reading,
    dropped: &[Range<usize>],
) -> Result<Option<String>, lol_html::errors::RewritingError> {
    let inside = |p: usize| {
        let i = dropped.partition_point(|r| r.end <= p);
        dropped.get(i).is_some_and(|r| r.contains(&p))
    };
    let changed = Cell::new(false);
    let element_no = Cell::new(0usize);
    let text_no = Cell::new(0usize);
    // What becomes of the current text node: kept, or replaced (removed when empty).
    let verdict: RefCell<Option<Option<String>>> = RefCell::new(None);
    let mut out = Vec::with_capacity(html.len());
    let settings = Settings::new()
        .append_element_content_handler(element!("*", |el| {
            let tag = el.tag_name();
            let n = element_no.get();
            element_no.set(n + 1);
            if goes_whole(el, &tag, relay) {
                el.remove();
                changed.set(true);
            } else if reading.elements.get(n).is_some_and(|&p| inside(p)) {
                if OPAQUE.contains(&tag.as_str()) || !el.can_have_content() {
                    el.remove();
                } else {
                    el.remove_and_keep_content();
                }
                changed.set(true);
            }
            Ok(())
        }))
        .append_document_content_handler(doc_text!(|t| {
            let mut v = verdict.borrow_mut();
            if v.is_none() {
                let node = reading.texts.get(text_no.get()).and_then(Option::as_ref);
                *v = Some(node.and_then(|(at, text)| kept(text, *at, dropped)));
            }
            let last = t.last_in_text_node();
            if let Some(Some(replacement)) = v.as_ref() {
                if last && !replacement.is_empty() {
                    t.replace(&escape_text(replacement), ContentType::Html);
                } else {
                    t.remove();
                }
                changed.set(true);
            }
            if last {
                *v = None;
                text_no.set(text_no.get() + 1);
            }
            Ok(())
        }));
    let mut rewriter = HtmlRewriter::new(settings, |c: &[u8]| out.extend_from_slice(c));
    rewriter.write(html.as_bytes())?;
    rewriter.end()?;
    if !changed.get() {
        return Ok(None);
    }
    Ok(Some(String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())))
}

/// The part of a text node (at offset `at` of the lines) outside the dropped
/// ranges; `None` when nothing of it is dropped.
fn kept(text: &str, at: usize, dropped: &[Range<usize>]) -> Option<String> {
    let end = at + text.len();
    let hit: Vec<&Range<usize>> = dropped.iter().filter(|r| r.start < end && r.end > at).collect();
    if hit.is_empty() {
        return None;
    }
    let mut out = String::new();
    let mut from = at;
    for r in hit {
        if r.start > from {
            out.push_str(&text[from - at..r.start - at]);
        }
        from = from.max(r.end);
    }
    if from < end {
        out.push_str(&text[from - at..]);
    }
    Some(out)
}
