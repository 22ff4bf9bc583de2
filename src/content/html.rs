//! HTML parts, through lol_html's tokenizer: remote loads removed, external
//! links unwrapped, contact details in text and attributes redacted.
//!
//! Text that the reader sees as one run but that the markup splits into several
//! text nodes (`bob@<b></b>gmail.com`, `010-<!-- -->1234-5678`) is checked as a
//! whole: runs are cut only at non-inline start tags. A run in which a match
//! spans nodes is rewritten in a second pass as one node.

use super::Removed;
use super::css;
use super::text::{Rules, emails, scrub};
use super::url::{is_allowed_web_url, is_local_image, normalize, scheme};
use lol_html::html_content::{ContentType, Element, TextType};
use lol_html::{HtmlRewriter, Settings, doc_comments, doc_text, doctype, element, end};
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// What the HTML sanitizer does for one part.
pub struct HtmlPolicy<'a> {
    /// Remove every network load.
    pub remote: bool,
    /// Unwrap links to non-allowlisted hosts.
    pub links: bool,
    pub rules: Rules<'a>,
    /// Renamed Content-IDs (old → new); `cid:` references follow them.
    pub cids: &'a HashMap<String, String>,
    /// HTML appended at the end of the body (notes about removed attachments).
    pub notes: Option<&'a str>,
}

pub struct Sanitized {
    pub html: String,
    /// Whether the policy changed anything (charset declarations set to
    /// UTF-8 for a rebuilt part do not count).
    pub changed: bool,
    pub removed: Removed,
}

/// Removed whole, content included, whenever a policy applies.
const ALWAYS_DROPPED: &[&str] = &["noscript"];
/// Removed whole, content included, with remote content: each loads something,
/// or hides markup from the tokenizer.
const LOADERS: &[&str] = &[
    "script", "iframe", "frame", "frameset", "object", "embed", "applet", "noembed", "noframes", "svg", "math",
    "audio", "video", "portal", "link", "base", "bgsound", "layer", "ilayer", "xml", "import",
];
/// Attributes whose value is a URL the browser loads (or sends to).
const URL_ATTRS: &[&str] = &[
    "src",
    "srcset",
    "lowsrc",
    "dynsrc",
    "background",
    "poster",
    "data",
    "codebase",
    "classid",
    "archive",
    "longdesc",
    "profile",
    "manifest",
    "icon",
    "imagesrcset",
    "action",
    "formaction",
    "xlink:href",
    "cite",
    "ping",
    "usemap",
    "o:href",
    "datasrc",
];
/// Inline elements do not cut a run of visible text.
pub(super) const INLINE: &[&str] = &[
    "a", "abbr", "b", "bdi", "bdo", "big", "cite", "code", "data", "del", "dfn", "em", "font", "i", "img", "ins",
    "kbd", "label", "mark", "nobr", "q", "s", "samp", "small", "span", "strike", "strong", "sub", "sup", "time", "tt",
    "u", "var", "wbr", "o:p",
];

/// Why the sanitizer gave a document up: the caller falls back to its text.
#[derive(Debug)]
pub enum GaveUp {
    /// The tokenizer stopped (ambiguous markup, memory limit).
    Tokenizer,
    /// Markup no handler sees, whose bytes would reach the recipient: an end tag that carries
    /// more than a plain name (`</cs@shop.example>`, `</p bob@x.example>`: lol_html has no
    /// handler for an end tag that closes nothing), or a tag the document ends inside
    /// (`<p style="color:#3From: sales@shop.example …`, passed through as it came), or a
    /// `<style>` it ends inside (the text after it read as CSS).
    OddMarkup,
}

impl From<lol_html::errors::RewritingError> for GaveUp {
    fn from(_: lol_html::errors::RewritingError) -> Self {
        GaveUp::Tokenizer
    }
}

/// Sanitizes one HTML document. `Err`: the caller falls back to plain text.
pub fn sanitize(html: &str, p: &HtmlPolicy<'_>) -> Result<Sanitized, GaveUp> {
    let first = pass(html, p, None)?;
    // Token ends fall on character boundaries; if one did not, the markup goes too.
    // A `<style>` never closed swallowed the rest of the document: CSS rules kept it.
    if first.open_style || !html.get(first.seen_end.min(html.len())..).is_some_and(unseen_is_end_tags) {
        return Err(GaveUp::OddMarkup);
    }
    let out = if first.merge.is_empty() {
        first.out
    } else {
        let plan: HashMap<u32, String> = first.merge.into_iter().collect();
        pass(html, p, Some(&plan))?.out
    };
    if has_odd_end_tag(&out.html) {
        return Err(GaveUp::OddMarkup);
    }
    Ok(out)
}

/// Whether what follows the last token a handler saw is only end tags and whitespace.
fn unseen_is_end_tags(tail: &str) -> bool {
    let mut rest = tail.trim_start();
    while let Some(after) = rest.strip_prefix("</") {
        let Some(close) = after.find('>') else { return false };
        let name = after[..close].trim_end();
        if !tag_name_ok(name) {
            return false;
        }
        rest = after[close + 1..].trim_start();
    }
    rest.is_empty()
}

/// Whether `html` has an end tag other than `</name>` with a name [`tag_name_ok`] takes
/// (whitespace before the `>` aside). Every `</` and a letter counts, inside a tag or a
/// `<style>` too: a false alarm costs the part its markup, nothing else.
fn has_odd_end_tag(html: &str) -> bool {
    let b = html.as_bytes();
    memchr::memmem::find_iter(b, b"</").any(|i| {
        let rest = &b[i + 2..];
        if !rest.first().is_some_and(u8::is_ascii_alphabetic) {
            // Not an end tag: text, or a bogus comment (comments are removed).
            return false;
        }
        let name_len =
            rest.iter().position(|&c| c.is_ascii_whitespace() || c == b'/' || c == b'>').unwrap_or(rest.len());
        let name_ok = std::str::from_utf8(&rest[..name_len]).is_ok_and(tag_name_ok);
        let after = rest[name_len..].iter().find(|c| !c.is_ascii_whitespace());
        !name_ok || after.is_some_and(|&c| c != b'>')
    })
}

struct Pass {
    out: Sanitized,
    /// Where the last token a handler saw ends in the input.
    seen_end: usize,
    /// Whether the document ended inside a `<style>` element.
    open_style: bool,
    /// Runs whose text must be merged: run id → merged original text.
    merge: Vec<(u32, String)>,
}

#[derive(Default)]
struct RunState {
    id: u32,
    nodes: u32,
    original: String,
    scrubbed: String,
}

fn pass(
    html: &str,
    p: &HtmlPolicy<'_>,
    plan: Option<&HashMap<u32, String>>,
) -> Result<Pass, lol_html::errors::RewritingError> {
    let removed = RefCell::new(Removed::default());
    let changed = Cell::new(false);
    let link_depth = Rc::new(Cell::new(0u32));
    let in_style = Rc::new(Cell::new(false));
    let pending = RefCell::new(String::new());
    let run = RefCell::new(RunState::default());
    let merge = RefCell::new(Vec::new());
    let merged_first: RefCell<HashSet<u32>> = RefCell::new(HashSet::new());
    let notes_done = Rc::new(Cell::new(p.notes.is_none()));
    let text_rules = p.rules.any();
    let seen_end = Cell::new(0usize);
    let seen = |at: std::ops::Range<usize>| seen_end.set(seen_end.get().max(at.end));

    let close_run = |run: &mut RunState, merge: &mut Vec<(u32, String)>| {
        if run.nodes >= 2 && text_rules {
            let mut scratch = Removed::default();
            if let Cow::Owned(_) = scrub(&run.scrubbed, &p.rules, &mut scratch) {
                merge.push((run.id, std::mem::take(&mut run.original)));
            }
        }
        run.id += 1;
        run.nodes = 0;
        run.original.clear();
        run.scrubbed.clear();
    };

    let mut out = Vec::with_capacity(html.len() + 256);
    let settings = Settings::new()
        .append_element_content_handler(element!("*", |el| {
            seen(el.source_location().bytes());
            let tag = el.tag_name();
            if !INLINE.contains(&tag.as_str()) {
                close_run(&mut run.borrow_mut(), &mut merge.borrow_mut());
            }
            element(el, &tag, p, &removed, &changed, &link_depth, &in_style, &notes_done)
        }))
        .append_document_content_handler(doctype!(|d| {
            let at = d.source_location().bytes();
            seen(at.clone());
            // Its text is the sender's, and reaches the recipient as it came.
            if (p.remote || text_rules) && !html.get(at).is_some_and(doctype_ok) {
                d.remove();
                changed.set(true);
            }
            Ok(())
        }))
        .append_document_content_handler(doc_comments!(|c| {
            seen(c.source_location().bytes());
            // Comments are invisible except to Outlook, which reads
            // conditional comments (VML with remote images). They go.
            if p.remote || text_rules {
                let t = c.text();
                if p.remote && (t.contains("[if") || t.contains('<') || t.contains("[endif")) {
                    changed.set(true);
                }
                c.remove();
            }
            Ok(())
        }))
        .append_document_content_handler(doc_text!(|t| {
            seen(t.source_location().bytes());
            let ty = t.text_type();
            if ty == TextType::ScriptData {
                return Ok(());
            }
            if !t.last_in_text_node() {
                pending.borrow_mut().push_str(t.as_str());
                t.remove();
                return Ok(());
            }
            let mut raw = std::mem::take(&mut *pending.borrow_mut());
            let restore = !raw.is_empty();
            raw.push_str(t.as_str());
            if ty == TextType::RawText && in_style.get() {
                if let Some(css) = style_css(&raw, p, &mut removed.borrow_mut()) {
                    changed.set(true);
                    t.replace(&css, ContentType::Html);
                } else if restore {
                    t.replace(&raw, ContentType::Html);
                }
                return Ok(());
            }
            if !text_rules {
                if restore {
                    t.replace(&raw, ContentType::Html);
                }
                return Ok(());
            }
            let entities = matches!(ty, TextType::Data | TextType::RCData);
            let decoded = if entities { decode_entities(&raw) } else { Cow::Borrowed(raw.as_str()) };
            let mut r = run.borrow_mut();
            if let Some(plan) = plan
                && let Some(merged) = plan.get(&r.id)
            {
                let first = merged_first.borrow_mut().insert(r.id);
                if first {
                    let mut rm = removed.borrow_mut();
                    let s = scrub(merged, &p.rules, &mut rm);
                    t.replace(&escape_text(&s), ContentType::Html);
                } else {
                    t.remove();
                }
                changed.set(true);
                return Ok(());
            }
            let s = scrub(&decoded, &p.rules, &mut removed.borrow_mut());
            r.nodes += 1;
            r.original.push_str(&decoded);
            r.scrubbed.push_str(&s);
            drop(r);
            if let Cow::Owned(s) = s {
                changed.set(true);
                t.replace(&escape_text(&s), ContentType::Html);
            } else if restore {
                t.replace(&raw, ContentType::Html);
            }
            Ok(())
        }))
        .append_document_content_handler(end!(|e| {
            if !notes_done.get()
                && let Some(n) = p.notes
            {
                e.append(n, ContentType::Html);
            }
            Ok(())
        }));
    let mut rewriter = HtmlRewriter::new(settings, |c: &[u8]| out.extend_from_slice(c));
    rewriter.write(html.as_bytes())?;
    rewriter.end()?;
    close_run(&mut run.borrow_mut(), &mut merge.borrow_mut());
    let html = String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    let changed = changed.get() || p.notes.is_some();
    Ok(Pass {
        out: Sanitized { html, changed, removed: removed.into_inner() },
        seen_end: seen_end.get(),
        open_style: in_style.get(),
        merge: merge.into_inner(),
    })
}

#[allow(clippy::too_many_arguments)]
fn element(
    el: &mut Element<'_, '_>,
    tag: &str,
    p: &HtmlPolicy<'_>,
    removed: &RefCell<Removed>,
    changed: &Cell<bool>,
    link_depth: &Rc<Cell<u32>>,
    in_style: &Rc<Cell<bool>>,
    notes_done: &Rc<Cell<bool>>,
) -> lol_html::HandlerResult {
    if !tag_name_ok(tag) {
        el.remove_and_keep_content();
        changed.set(true);
        return Ok(());
    }
    if ALWAYS_DROPPED.contains(&tag) {
        el.remove();
        changed.set(true);
        return Ok(());
    }
    if p.remote && LOADERS.contains(&tag) {
        el.remove();
        removed.borrow_mut().remote_resources += 1;
        changed.set(true);
        return Ok(());
    }
    match tag {
        "style" if el.can_have_content() => {
            in_style.set(true);
            let flag = in_style.clone();
            el.on_end_tag(Box::new(move |_| {
                flag.set(false);
                Ok(())
            }))?;
        }
        "body" if el.can_have_content() => {
            if let Some(n) = p.notes {
                let n = n.to_string();
                let done = notes_done.clone();
                el.on_end_tag(Box::new(move |end| {
                    if !done.get() {
                        end.before(&n, ContentType::Html);
                        done.set(true);
                    }
                    Ok(())
                }))?;
            }
        }
        "form" if p.remote => {
            el.remove_and_keep_content();
            removed.borrow_mut().remote_resources += 1;
            changed.set(true);
            return Ok(());
        }
        "meta" => {
            let equiv = el.get_attribute("http-equiv").map(|v| v.trim().to_ascii_lowercase());
            match equiv.as_deref() {
                Some("content-type") => {
                    let _ = el.set_attribute("content", "text/html; charset=utf-8");
                }
                Some("refresh" | "set-cookie" | "link" | "default-style") if p.remote || p.links => {
                    el.remove();
                    removed.borrow_mut().remote_resources += 1;
                    changed.set(true);
                    return Ok(());
                }
                _ => {}
            }
            if el.has_attribute("charset") {
                let _ = el.set_attribute("charset", "utf-8");
            }
        }
        "input" if p.remote => {
            let image = el.get_attribute("type").is_some_and(|t| t.trim().eq_ignore_ascii_case("image"));
            if image {
                el.remove();
                removed.borrow_mut().remote_resources += 1;
                changed.set(true);
                return Ok(());
            }
        }
        "a" | "area" => {
            if let Some(href) = el.get_attribute("href") {
                let href = decode_entities(&href);
                let href = normalize(&href);
                if let Some(kind) = link_verdict(&href, p) {
                    {
                        let mut r = removed.borrow_mut();
                        match kind {
                            Unwrap::Link => r.links += 1,
                            Unwrap::Email => r.emails += 1,
                            Unwrap::Phone => r.phones += 1,
                        }
                    }
                    changed.set(true);
                    if tag == "area" || !el.can_have_content() {
                        el.remove();
                        return Ok(());
                    }
                    el.remove_and_keep_content();
                    // Images inside a link that goes (logos) go with it.
                    link_depth.set(link_depth.get() + 1);
                    let depth = link_depth.clone();
                    el.on_end_tag(Box::new(move |_| {
                        depth.set(depth.get().saturating_sub(1));
                        Ok(())
                    }))?;
                    return Ok(());
                }
            }
        }
        "img" | "image" if link_depth.get() > 0 && (p.links || p.remote) => {
            let remote = el.get_attribute("src").is_some_and(|s| !resource_ok(&decode_entities(&s), p));
            if remote {
                removed.borrow_mut().remote_resources += 1;
            }
            el.remove();
            changed.set(true);
            return Ok(());
        }
        _ => {}
    }
    attributes(el, tag, p, removed, changed);
    Ok(())
}

enum Unwrap {
    Link,
    Email,
    Phone,
}

/// Why a link must go, if it must.
fn link_verdict(href: &str, p: &HtmlPolicy<'_>) -> Option<Unwrap> {
    if href.is_empty() || plain_fragment(href) {
        return None;
    }
    let scheme = scheme(href);
    match scheme.as_deref() {
        Some("mailto") => {
            let relay_only = mailto_relay_only(href, p.rules.relay_domain);
            if relay_only {
                None
            } else if p.links {
                Some(Unwrap::Link)
            } else if p.rules.emails {
                Some(Unwrap::Email)
            } else {
                None
            }
        }
        Some("tel" | "sms" | "callto" | "facetime" | "whatsapp" | "viber" | "skype") => {
            if p.links {
                Some(Unwrap::Link)
            } else if p.rules.phones {
                Some(Unwrap::Phone)
            } else {
                None
            }
        }
        _ if p.links && !is_allowed_web_url(href, p.rules.allowlist) => Some(Unwrap::Link),
        _ => None,
    }
}

/// `mailto:` whose every address is on the relay domain, and whose query
/// carries nothing the text rules would remove.
fn mailto_relay_only(href: &str, relay_domain: &str) -> bool {
    let decoded = percent_decode(&href["mailto:".len()..]);
    let (to, query) = decoded.split_once('?').unwrap_or((&decoded, ""));
    let suffix = format!("@{relay_domain}");
    let addrs_ok = !to.trim().is_empty()
        && to.split(',').all(|a| {
            let a = a.trim().to_ascii_lowercase();
            a.ends_with(&suffix) && a.matches('@').count() == 1
        });
    addrs_ok && !query.contains('@')
}

pub(super) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn attributes(
    el: &mut Element<'_, '_>,
    tag: &str,
    p: &HtmlPolicy<'_>,
    removed: &RefCell<Removed>,
    changed: &Cell<bool>,
) {
    if el.attributes().is_empty() {
        return;
    }
    let all: Vec<(String, String)> = el.attributes().iter().map(|a| (a.name(), a.value())).collect();
    // Browsers keep an attribute's first occurrence and ignore the rest (a second `style`),
    // which would otherwise pass unread: only the first stays.
    let mut attrs: Vec<(String, String)> = Vec::with_capacity(all.len());
    let mut repeated: Vec<usize> = Vec::new();
    for (name, raw) in all {
        match attrs.iter().position(|(n, _)| *n == name) {
            Some(k) => repeated.push(k),
            None => attrs.push((name, raw)),
        }
    }
    repeated.dedup();
    for &k in &repeated {
        let (name, raw) = &attrs[k];
        el.remove_attribute(name);
        let _ = el.set_attribute(name, raw);
        changed.set(true);
    }
    for (name, raw) in attrs {
        if !attribute_name_ok(&name) {
            el.remove_attribute(&name);
            changed.set(true);
            continue;
        }
        let is_link_href = name == "href" && (tag == "a" || tag == "area");
        if name.starts_with("xmlns") {
            // A namespace name is a URI nothing loads, so the link rules leave it, but it is the
            // sender's text: addresses in it go. A value with white space inside is no URI but
            // text the markup swallowed (`class="…` left open before a pasted message): it goes.
            let value = decode_entities(&raw);
            if value.trim().contains(char::is_whitespace) {
                el.remove_attribute(&name);
                changed.set(true);
                continue;
            }
            if let Some(t) = without_addresses(&value, p, &mut removed.borrow_mut()) {
                changed.set(true);
                let _ = el.set_attribute(&name, &escape_attr(&t));
            }
            continue;
        }
        if name.starts_with("on") {
            if p.remote {
                el.remove_attribute(&name);
                changed.set(true);
            }
            continue;
        }
        let is_url = URL_ATTRS.contains(&name.as_str()) || (name == "href" && !is_link_href);
        if is_url && p.remote {
            let value = decode_entities(&raw);
            if name == "src" || name == "srcset" || name == "background" || name == "poster" {
                let ok = if name == "srcset" { srcset_ok(&value, p) } else { resource_ok(&value, p) };
                if let Some(new) = renamed_cid(&value, p)
                    && ok
                {
                    let _ = el.set_attribute(&name, &escape_attr(&new));
                    changed.set(true);
                    continue;
                }
                // A Content-ID on another domain that no part had (its part's would have been
                // renamed): the reference loads nothing, and its id names a host.
                let dangling = ok && p.rules.emails && foreign_cid(&value, p.rules.relay_domain);
                if ok && !dangling {
                    continue;
                }
                if !dangling {
                    removed.borrow_mut().remote_resources += 1;
                }
                changed.set(true);
                if name == "src" && matches!(tag, "img" | "image" | "source" | "track") {
                    el.remove();
                    return;
                }
                el.remove_attribute(&name);
                continue;
            }
            if plain_fragment(value.trim()) || resource_ok(&value, p) && name != "ping" {
                continue;
            }
            el.remove_attribute(&name);
            removed.borrow_mut().remote_resources += 1;
            changed.set(true);
            continue;
        }
        if name == "style" {
            if let Some(css) = style_css(&decode_entities(&raw), p, &mut removed.borrow_mut()) {
                changed.set(true);
                let _ = el.set_attribute("style", &escape_attr(&css));
            }
            continue;
        }
        if !p.rules.any() || raw.is_empty() {
            continue;
        }
        let value = decode_entities(&raw);
        let rules = if is_link_href {
            // A kept link's target is judged by the link rules, not as text.
            Rules { links: false, ..p.rules.clone() }
        } else {
            p.rules.clone()
        };
        if let Cow::Owned(s) = scrub(&value, &rules, &mut removed.borrow_mut()) {
            changed.set(true);
            let _ = el.set_attribute(&name, &escape_attr(&s));
        }
    }
}

/// The CSS of a `style` attribute or `<style>` block, or `None` when nothing had to go:
/// loads dropped ([`css::sanitize`]), and addresses redacted, for text the markup swallowed
/// into it (a pasted message) is no CSS, but its addresses would reach the recipient.
fn style_css(css: &str, p: &HtmlPolicy<'_>, removed: &mut Removed) -> Option<String> {
    let mut new = None;
    if p.remote || p.rules.phones {
        let (out, n) = css::sanitize(css, p.rules.allowlist, p.rules.phones);
        if out.is_some() {
            removed.remote_resources += n;
        }
        new = out;
    }
    without_addresses(new.as_deref().unwrap_or(css), p, removed).or(new)
}

/// `text` with its addresses redacted, when the policy redacts them and it has any.
fn without_addresses(text: &str, p: &HtmlPolicy<'_>, removed: &mut Removed) -> Option<String> {
    if !p.rules.emails {
        return None;
    }
    let (t, n) = emails(text, p.rules.relay_domain);
    removed.emails += n;
    (n > 0).then(|| t.into_owned())
}

/// `<!DOCTYPE html>`, or a W3C document type (`<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0
/// Transitional//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">`), which set
/// the rendering mode; keywords in any case, any whitespace. Any other is removed: it names
/// nothing a client needs, and a broken one swallows text (`<!DOCTYPEcs@shop.example>`).
fn doctype_ok(raw: &str) -> bool {
    let lower = raw.to_ascii_lowercase();
    let words: Vec<&str> = lower.split_ascii_whitespace().collect();
    let text = words.join(" ");
    let Some(rest) = text.strip_prefix("<!doctype html").and_then(|r| r.strip_suffix('>')) else {
        return false;
    };
    let rest = rest.trim_end();
    if rest.is_empty() {
        return true;
    }
    let quoted = |r: &str, prefix: &str| -> Option<usize> {
        let body = r.strip_prefix('"')?;
        let end = body.find('"')?;
        let id = &body[..end];
        (id.starts_with(prefix) && !id.contains(['@', '<', '>'])).then_some(end + 2)
    };
    let Some(public) = rest.strip_prefix(" public ") else { return false };
    let Some(n) = quoted(public, "-//w3c//") else { return false };
    let system = public[n..].trim_start();
    system.is_empty() || quoted(system, "http://www.w3.org/").is_some_and(|m| m == system.len())
}

/// Names as HTML mail spells them: `td`, `o:p`, `v:shape`, `data-x`, `xmlns:v`, `_moz_dirty`.
/// What else the tokenizer reads as a name is text the markup swallowed (`<cFrom: Shop
/// <cs@shop.example>` is an element `cfrom:` with an attribute `<cs@shop.example`): no
/// browser shows it, but its bytes would reach the recipient, so it goes.
fn attribute_name_ok(name: &str) -> bool {
    // A colon only between a prefix and a name: `https:` and `/` and `click` spell a URL.
    name.split(':').all(|part| !part.is_empty())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':'))
}

/// `#name`, a link within the document: it goes nowhere, so it stays. Anything else after
/// the `#` (`#D"https://t.example/…`, an unquoted value the markup broke) is judged as a URL.
fn plain_fragment(href: &str) -> bool {
    href.strip_prefix('#').is_some_and(|id| id.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.')))
}

/// [`attribute_name_ok`], starting with a letter. An element with another name is
/// removed, its content kept.
fn tag_name_ok(tag: &str) -> bool {
    tag.as_bytes().first().is_some_and(u8::is_ascii_alphabetic) && attribute_name_ok(tag)
}

fn resource_ok(url: &str, p: &HtmlPolicy<'_>) -> bool {
    is_local_image(url) || is_allowed_web_url(url, p.rules.allowlist)
}

fn srcset_ok(srcset: &str, p: &HtmlPolicy<'_>) -> bool {
    srcset.split(',').filter_map(|c| c.split_whitespace().next()).all(|u| resource_ok(u, p))
}

/// A `cid:` reference whose Content-ID was renamed.
fn renamed_cid(url: &str, p: &HtmlPolicy<'_>) -> Option<String> {
    let url = normalize(url);
    url.get(..4).filter(|s| s.eq_ignore_ascii_case("cid:"))?;
    let old = percent_decode(&url[4..]);
    p.cids.get(old.trim()).map(|new| format!("cid:{new}"))
}

/// A `cid:` reference whose Content-ID is on another domain than the relay's.
fn foreign_cid(url: &str, relay_domain: &str) -> bool {
    let url = normalize(url);
    if !url.get(..4).is_some_and(|s| s.eq_ignore_ascii_case("cid:")) {
        return false;
    }
    let id = percent_decode(&url[4..]);
    id.trim_matches(['<', '>', ' ']).rsplit_once('@').is_some_and(|(_, d)| !d.eq_ignore_ascii_case(relay_domain))
}

/// Decodes character references (`&#64;`, `&#x40;`, `&commat;` …) the way a
/// browser would before showing the text, so that nothing hides behind them.
pub fn decode_entities(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(num) = after.strip_prefix('#') {
            let (hex, digits) = match num.strip_prefix(['x', 'X']) {
                Some(h) => (true, h),
                None => (false, num),
            };
            let len = digits
                .find(|c: char| !(if hex { c.is_ascii_hexdigit() } else { c.is_ascii_digit() }))
                .unwrap_or(digits.len());
            if len > 0 {
                let v = u32::from_str_radix(&digits[..len.min(8)], if hex { 16 } else { 10 }).unwrap_or(0xFFFD);
                out.push(char::from_u32(v).filter(|&c| c != '\0').unwrap_or('\u{FFFD}'));
                let consumed = 1 + usize::from(hex) + len;
                let consumed = consumed + usize::from(after[consumed..].starts_with(';'));
                rest = &after[consumed..];
                continue;
            }
        } else {
            let name_len = after.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(after.len());
            if name_len > 0 && name_len <= 32 && after[name_len..].starts_with(';') {
                // Unknown names are copied as they are.
                let token = &rest[i..i + 1 + name_len + 1];
                mail_parser::decoders::html::add_html_token(&mut out, token.as_bytes(), false);
                rest = &after[name_len + 1..];
                continue;
            }
            // Legacy references that browsers decode without a semicolon.
            let legacy = [("amp", '&'), ("lt", '<'), ("gt", '>'), ("quot", '"'), ("nbsp", '\u{a0}')];
            if let Some((n, c)) = legacy.iter().find(|(n, _)| after.starts_with(n)) {
                out.push(*c);
                rest = &after[n.len()..];
                continue;
            }
        }
        out.push('&');
        rest = after;
    }
    out.push_str(rest);
    Cow::Owned(out)
}

pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

fn escape_attr(s: &str) -> String {
    s.replace('&', "&amp;")
}
