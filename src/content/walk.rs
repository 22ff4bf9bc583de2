//! The MIME walk: decide every part, sanitize text, rebuild only on change.

use super::attachment::{self, Reason};
use super::footer::{self, Extras};
use super::html::{self, HtmlPolicy, escape_text};
use super::text::{Rules, scrub, unflow};
use super::{ContentPolicy, MAX_DEPTH, MAX_PARTS, Outcome, Removed, Spliced};
use mail_builder::headers::content_type::ContentType as BuiltType;
use mail_builder::mime::{BodyPart, MimePart};
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::{Encoding, Message, MessageParser, MessagePart, MimeHeaders, PartType};
use std::borrow::Cow;
use std::collections::HashMap;

struct Refusal(String);

/// What happens to one part.
#[derive(Clone, Debug, PartialEq)]
enum Decision {
    Multipart,
    /// A message body (text/plain or text/html, not an attachment).
    Body,
    /// A kept attachment; text ones are sanitized like bodies.
    Keep,
    Drop,
    /// The signature of a `multipart/signed`.
    Signature,
}

enum Node<'x> {
    Multipart {
        subtype: String,
        params: Vec<(String, String)>,
        children: Vec<Node<'x>>,
    },
    Text {
        subtype: String,
        text: Cow<'x, str>,
        disposition: Option<(String, Option<String>)>,
        cid: Option<String>,
        /// Written as it is with this transfer encoding (`7bit` or `8bit`),
        /// not encoded again: see [`verbatim`].
        verbatim: Option<&'static str>,
    },
    Binary {
        ctype: String,
        data: Cow<'x, [u8]>,
        /// Already valid base64, passed through as it came.
        base64: bool,
        disposition: Option<(String, Option<String>)>,
        name: Option<String>,
        cid: Option<String>,
    },
    Message {
        raw: Cow<'x, [u8]>,
    },
    Dropped,
}

/// `raw`: [`super::prelude`] of the top-level headers, then the body from `body_start`.
pub(super) fn apply(raw: &[u8], body_start: usize, policy: &ContentPolicy, relay: &str, extras: &Extras) -> Outcome {
    match walk(raw, body_start, policy, relay, extras, true) {
        Some(outcome) => outcome,
        // A span's placeholder did not survive the writer: rebuild with copies.
        None => walk(raw, body_start, policy, relay, extras, false).expect("no spans, nothing to miss"),
    }
}

fn walk(
    raw: &[u8],
    body_start: usize,
    policy: &ContentPolicy,
    relay: &str,
    extras: &Extras,
    splice: bool,
) -> Option<Outcome> {
    let mut w = Walker::new(policy, relay, 0);
    w.strip = extras.strip_footer;
    w.footer = extras.footer.as_ref().map(|f| (f.text(), f.html()));
    match plain_as_is(raw, body_start, policy, extras) {
        Some(text) => {
            let root = w.plain(text);
            write(root, w.removed, raw, body_start, splice)
        }
        None => walk_parsed(w, raw, body_start, splice),
    }
}

/// The walk over the parsed message, with `w` set up for it.
fn walk_parsed(mut w: Walker<'_>, raw: &[u8], body_start: usize, splice: bool) -> Option<Outcome> {
    let Some(msg) = MessageParser::new().parse(raw) else {
        return Some(refuse("The message could not be parsed"));
    };
    if w.policy.is_noop() && w.footer.is_none() && !mentions_footer(&msg, w.relay) {
        // Only stripping, and nothing to strip.
        return Some(Outcome::Unchanged);
    }
    match w.run(&msg) {
        Err(Refusal(text)) => Some(refuse(&text)),
        Ok(None) => Some(Outcome::Unchanged),
        Ok(Some(root)) => write(root, w.removed, raw, body_start, splice),
    }
}

/// The rebuilt message: `None` if a span's placeholder did not survive the writer.
fn write(root: Node<'_>, removed: Removed, raw: &[u8], body_start: usize, splice: bool) -> Option<Outcome> {
    let mut spans = Spans::new(raw, body_start, splice);
    let Some(part) = to_mime(root, &mut spans) else {
        return Some(refuse("The message has no content left after the content policy"));
    };
    let mut out = Vec::new();
    part.write_part(&mut out);
    Some(split_root(spans.splice(out)?, removed))
}

/// The text of a message that is one plain-text part as it reads (no transfer
/// encoding, UTF-8 or ASCII, CRLF lines of at most 998 bytes), when this
/// direction's rules leave text alone and only the footer is added: the most
/// common buyer message. The walk would keep its bytes and add the footer;
/// [`Walker::plain`] does that without parsing the message (mail-parser's
/// UTF-8 check, a byte at a time, was half the content policy's cost for it).
/// `None` for anything else, down to a header parameter: the walk decides those.
fn plain_as_is<'r>(raw: &'r [u8], body_start: usize, policy: &ContentPolicy, extras: &Extras) -> Option<&'r str> {
    if extras.footer.is_none() || extras.strip_footer || policy.redact_contact_details || policy.unwrap_external_links {
        return None;
    }
    let (head, body) = raw.split_at_checked(body_start)?;
    // The prelude: its own first line, then one line per MIME header.
    let head = std::str::from_utf8(head).ok()?;
    let (mut ctype, mut cte) = (None, None);
    for line in head.split("\r\n").skip(1).filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        let slot = if name.eq_ignore_ascii_case("content-type") {
            &mut ctype
        } else if name.eq_ignore_ascii_case("content-transfer-encoding") {
            &mut cte
        } else if name.eq_ignore_ascii_case("mime-version") {
            continue;
        } else {
            return None;
        };
        if slot.replace(value.trim()).is_some() {
            return None;
        }
    }
    if !cte.is_none_or(|c| c.eq_ignore_ascii_case("7bit") || c.eq_ignore_ascii_case("8bit")) {
        return None;
    }
    let charset = match ctype {
        None => None,
        Some(ct) => {
            let (ty, params) = ct.split_once(';').unwrap_or((ct, ""));
            if !ty.trim().eq_ignore_ascii_case("text/plain") {
                return None;
            }
            match params.trim() {
                "" => None,
                p => {
                    let (name, value) = p.split_once('=')?;
                    if !name.trim().eq_ignore_ascii_case("charset") {
                        return None;
                    }
                    let value = value.trim();
                    Some(value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value))
                }
            }
        }
    };
    // mail-parser reads US-ASCII as windows-1252: only ASCII reads as it came.
    let ascii_only = match charset.map(str::to_ascii_lowercase).as_deref() {
        None | Some("utf-8" | "utf8") => false,
        Some("us-ascii" | "ascii") => true,
        Some(_) => return None,
    };
    let text = std::str::from_utf8(body).ok()?;
    (!text.is_empty() && (!ascii_only || text.is_ascii()) && verbatim(body, text)).then_some(text)
}

/// Large attachments that pass through as they came (valid base64) are not
/// copied into the rebuilt body: the writer gets a placeholder, and the
/// result refers to the attachment's span of the input body instead.
struct Spans<'r> {
    raw: &'r [u8],
    body_start: usize,
    enabled: bool,
    tag: String,
    spans: Vec<std::ops::Range<usize>>,
}

/// Attachments smaller than this are copied: a span is not worth it.
const SPAN_MIN: usize = 64 * 1024;

impl<'r> Spans<'r> {
    fn new(raw: &'r [u8], body_start: usize, enabled: bool) -> Self {
        // Random, so no message can contain a placeholder.
        let tag = format!("BSMSPAN{}N", crate::alias::random_local(16));
        Spans { raw, body_start, enabled, tag, spans: Vec::new() }
    }

    /// A placeholder for `data` if it is a large slice of the body.
    fn placeholder(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        let start = (data.as_ptr() as usize).checked_sub(self.raw.as_ptr() as usize)?;
        let end = start + data.len();
        if !self.enabled || data.len() < SPAN_MIN || start < self.body_start || end > self.raw.len() {
            return None;
        }
        let n = self.spans.len();
        self.spans.push(start - self.body_start..end - self.body_start);
        Some(format!("{}{n:08}", self.tag).into_bytes())
    }

    /// The written body with each placeholder replaced by its span; `None`
    /// if a placeholder is missing.
    fn splice(self, out: Vec<u8>) -> Option<Spliced> {
        if self.spans.is_empty() {
            return Some(Spliced::new(out));
        }
        let mut spliced = Spliced::default();
        let mut rest = out.as_slice();
        for (n, span) in self.spans.into_iter().enumerate() {
            let mark = format!("{}{n:08}", self.tag);
            let at = rest.windows(mark.len()).position(|w| w == mark.as_bytes())?;
            spliced.push_new(&rest[..at]);
            spliced.push_old(span);
            rest = &rest[at + mark.len()..];
        }
        spliced.push_new(rest);
        Some(spliced)
    }
}

/// The quick check over every decoded text and HTML part, attached messages included.
fn mentions_footer(msg: &Message<'_>, relay: &str) -> bool {
    msg.parts.iter().any(|p| match &p.body {
        PartType::Text(t) => footer::mentions(t, relay),
        PartType::Html(t) => footer::mentions_html(t),
        PartType::Message(m) => mentions_footer(m, relay),
        _ => false,
    })
}

/// Whether stripping would change anything in `msg`, attached messages included.
fn holds_footer(msg: &Message<'_>, relay: &str) -> bool {
    msg.parts.iter().any(|p| match &p.body {
        PartType::Text(t) => matches!(footer::strip_text(t, relay), Cow::Owned(_)),
        PartType::Html(t) => {
            footer::mentions_html(t)
                && match footer::strip_html(t, relay) {
                    Ok(found) => found.is_some(),
                    Err(_) => footer::mentions(t, relay),
                }
        }
        PartType::Message(m) => holds_footer(m, relay),
        _ => false,
    })
}

fn refuse(text: &str) -> Outcome {
    Outcome::Refuse { code: "554", xcode: "5.6.0", text: text.to_string() }
}

/// The root part's headers become the top-level Content-Type and
/// Content-Transfer-Encoding; the rest is the new body.
fn split_root(mut body: Spliced, removed: Removed) -> Outcome {
    let out = body.head_mut();
    let at = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(out.len());
    let head = String::from_utf8_lossy(&out[..at]).replace("\r\n\t", " ").replace("\r\n ", " ");
    let mut content_type = String::from("text/plain; charset=utf-8");
    let (mut cte, mut disposition) = (None, None);
    for line in head.split("\r\n") {
        if let Some((n, v)) = line.split_once(':') {
            if n.eq_ignore_ascii_case("content-type") {
                content_type = v.trim().to_string();
            } else if n.eq_ignore_ascii_case("content-transfer-encoding") {
                cte = Some(v.trim().to_string());
            } else if n.eq_ignore_ascii_case("content-disposition") {
                disposition = Some(v.trim().to_string());
            }
        }
    }
    out.drain(..(at + 4).min(out.len()));
    Outcome::Rewritten { body, content_type, content_transfer_encoding: cte, content_disposition: disposition, removed }
}

struct Walker<'p> {
    policy: &'p ContentPolicy,
    rules: Rules<'p>,
    relay: &'p str,
    depth_base: usize,
    decisions: Vec<Option<Decision>>,
    removed: Removed,
    notes: Vec<String>,
    /// The command footer to append (text, HTML).
    footer: Option<(String, String)>,
    /// Remove relay footers.
    strip: bool,
    /// Rebuild even if the policy changes nothing: the input is not canonical
    /// (what a mail client would show may differ from what was checked).
    force: bool,
    changes: u32,
    cids: HashMap<String, String>,
    parts: usize,
}

fn lower_type(part: &MessagePart<'_>) -> (String, String) {
    match part.content_type() {
        Some(ct) => (ct.ctype().to_ascii_lowercase(), ct.subtype().unwrap_or("").to_ascii_lowercase()),
        None => ("text".into(), "plain".into()),
    }
}

/// Every file name the part gives: clients differ in which one they use.
fn names<'a>(part: &'a MessagePart<'_>) -> Vec<&'a str> {
    let mut v = Vec::new();
    if let Some(n) = part.content_disposition().and_then(|d| d.attribute("filename")) {
        v.push(n);
    }
    if let Some(n) = part.content_type().and_then(|c| c.attribute("name"))
        && !v.contains(&n)
    {
        v.push(n);
    }
    v
}

fn is_attachment_like(part: &MessagePart<'_>) -> bool {
    part.content_disposition().is_some_and(|d| d.is_attachment()) || !names(part).is_empty()
}

impl<'p> Walker<'p> {
    fn new(policy: &'p ContentPolicy, relay: &'p str, depth_base: usize) -> Self {
        Walker {
            policy,
            rules: Rules {
                emails: policy.redact_contact_details,
                phones: policy.redact_contact_details,
                links: policy.unwrap_external_links,
                relay_domain: relay,
                allowlist: &policy.link_allowlist,
            },
            relay,
            depth_base,
            decisions: Vec::new(),
            removed: Removed::default(),
            notes: Vec::new(),
            footer: None,
            strip: false,
            force: false,
            changes: 0,
            cids: HashMap::new(),
            parts: 0,
        }
    }

    /// `Ok(None)`: nothing to change.
    fn run<'x>(&mut self, msg: &'x Message<'x>) -> Result<Option<Node<'x>>, Refusal> {
        if msg.parts.is_empty() {
            return Ok(self.footer.as_ref().map(|(text, _)| Node::Text {
                subtype: "plain".into(),
                text: Cow::Owned(text.clone()),
                disposition: None,
                cid: None,
                verbatim: None,
            }));
        }
        self.decisions = vec![None; msg.parts.len()];
        self.plan(msg, 0, self.depth_base)?;
        let main_text = msg
            .text_body
            .iter()
            .map(|&i| i as usize)
            .find(|&i| self.decisions[i] == Some(Decision::Body) && matches!(msg.parts[i].body, PartType::Text(_)));
        let main_html = msg
            .html_body
            .iter()
            .map(|&i| i as usize)
            .find(|&i| self.decisions[i] == Some(Decision::Body) && matches!(msg.parts[i].body, PartType::Html(_)));
        let mut root = self.build(msg, 0, main_text, main_html);
        if self.has_appendix() && main_text.is_none() && main_html.is_none() {
            let note = Node::Text {
                subtype: "plain".into(),
                text: Cow::Owned(self.appendix_text()),
                disposition: None,
                cid: None,
                verbatim: None,
            };
            root = match root {
                Node::Dropped => note,
                Node::Multipart { subtype, params, mut children } if subtype == "mixed" => {
                    children.insert(0, note);
                    Node::Multipart { subtype, params, children }
                }
                other => Node::Multipart { subtype: "mixed".into(), params: Vec::new(), children: vec![note, other] },
            };
        }
        // Stripping alone rebuilds only what it changed: the quick check may
        // have fired on a word.
        let strip_only = self.policy.is_noop() && self.footer.is_none();
        if self.changes == 0 && (!self.force || strip_only) && !self.has_appendix() {
            return Ok(None);
        }
        Ok(Some(root))
    }

    fn plan(&mut self, msg: &Message<'_>, id: usize, depth: usize) -> Result<(), Refusal> {
        if depth > MAX_DEPTH {
            return Err(Refusal(format!(
                "MIME structure nested deeper than {MAX_DEPTH} levels cannot be checked by the content policy"
            )));
        }
        self.parts += 1;
        if self.parts > MAX_PARTS {
            return Err(Refusal(format!(
                "Messages with more than {MAX_PARTS} MIME parts cannot be checked by the content policy"
            )));
        }
        let part = &msg.parts[id];
        let (ty, sub) = lower_type(part);
        if (ty == "multipart" && sub == "encrypted")
            || (ty == "application" && (sub == "pkcs7-mime" || sub == "x-pkcs7-mime"))
        {
            return Err(Refusal(
                "Encrypted messages cannot be relayed: the content policy must be able to read them".into(),
            ));
        }
        if self.policy.redact_contact_details
            && let Some(cid) = part.content_id()
        {
            let foreign =
                cid.rsplit_once('@').is_some_and(|(_, d)| !d.trim_end_matches('>').eq_ignore_ascii_case(self.relay));
            if foreign {
                let new = format!("part{id}.{}@{}", self.cids.len() + 1, self.relay);
                self.cids.insert(cid.trim_matches(['<', '>', ' ']).to_string(), new);
                self.force = true;
            }
        }
        if mime_headers_hold_contact(msg, part, &self.rules) {
            self.force = true;
        }
        let decision = match &part.body {
            PartType::Multipart(children) => {
                for (k, &c) in children.iter().enumerate() {
                    if sub == "signed" && k > 0 {
                        self.decisions[c as usize] = Some(Decision::Signature);
                        self.parts += 1;
                        continue;
                    }
                    self.plan(msg, c as usize, depth + 1)?;
                }
                Decision::Multipart
            }
            PartType::Message(inner) => self.nested(part, inner, depth)?,
            PartType::Text(_) | PartType::Html(_) => {
                if part.is_encoding_problem || !canonical_text(msg, part) {
                    self.force = true;
                }
                let body_type = (ty == "text" && (sub == "plain" || sub == "html")) || ty == "multipart";
                if body_type && !is_attachment_like(part) {
                    Decision::Body
                } else {
                    self.attachment(msg, part, &ty, &sub)
                }
            }
            PartType::Binary(_) | PartType::InlineBinary(_) => {
                if part.is_encoding_problem {
                    self.force = true;
                }
                self.attachment(msg, part, &ty, &sub)
            }
        };
        self.decisions[id] = Some(decision);
        Ok(())
    }

    /// A part sent as a file (the whole message, too: its top-level headers are
    /// replaced by the rebuilt part's, so a removed one leaves only the note).
    fn attachment(&mut self, msg: &Message<'_>, part: &MessagePart<'_>, ty: &str, sub: &str) -> Decision {
        let names = names(part);
        let verdict = if self.policy.filter_attachments {
            attachment::judge(&names, &format!("{ty}/{sub}"), part.contents(), self.policy.max_attachment_bytes)
        } else {
            Ok(())
        };
        match verdict {
            Ok(()) => {
                if self.policy.filter_attachments
                    && part.encoding == Encoding::Base64
                    && !valid_base64(raw_body(msg, part))
                {
                    self.force = true;
                }
                Decision::Keep
            }
            Err(reason) => {
                self.drop_part(names.first().copied(), &format!("{ty}/{sub}"), &reason.to_string());
                Decision::Drop
            }
        }
    }

    fn nested(&mut self, part: &MessagePart<'_>, inner: &Message<'_>, depth: usize) -> Result<Decision, Refusal> {
        let name = names(part).first().copied();
        if self.policy.filter_attachments || self.policy.redact_contact_details {
            // Its headers name third parties and real addresses.
            self.drop_part(name.or(Some("forwarded message")), "message/rfc822", &Reason::Type.to_string());
            return Ok(Decision::Drop);
        }
        if self.strip && holds_footer(inner, self.relay) {
            self.drop_part(name.or(Some("forwarded message")), "message/rfc822", "it contains relay commands");
            return Ok(Decision::Drop);
        }
        let mut sub = Walker::new(self.policy, self.relay, depth + 1);
        match sub.run(inner)? {
            None => Ok(Decision::Keep),
            Some(_) => {
                self.drop_part(name.or(Some("forwarded message")), "message/rfc822", "it contains remote content");
                Ok(Decision::Drop)
            }
        }
    }

    fn drop_part(&mut self, name: Option<&str>, ctype: &str, reason: &str) {
        let shown = match name {
            Some(n) => format!("\"{}\"", self.clean_name(n)),
            None if is_mime_type(ctype) => format!("an unnamed {} part", ctype.to_ascii_lowercase()),
            // The type is the sender's text: anything but a well-formed type
            // could carry an address or a link into the note.
            None => "an unnamed part".to_string(),
        };
        self.notes.push(format!("[Attachment removed: {shown} ({reason})]"));
        self.removed.attachments += 1;
        self.changes += 1;
    }

    /// File names are text: contact details and links go, and so do control and
    /// bidirectional-override characters (`invoice\u{202E}fdp.exe`).
    fn clean_name(&mut self, name: &str) -> String {
        let stripped: String = name
            .chars()
            .filter(|c| {
                !c.is_control()
                    && !matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
            })
            .collect();
        let mut scratch = Removed::default();
        scrub(&stripped, &self.rules, &mut scratch).into_owned()
    }

    fn notes_text(&self) -> String {
        let mut s = String::new();
        for n in &self.notes {
            s.push_str(n);
            s.push_str("\r\n");
        }
        s
    }

    fn notes_html(&self) -> String {
        let mut s = String::new();
        for n in &self.notes {
            s.push_str("<p>");
            s.push_str(&escape_text(n));
            s.push_str("</p>");
        }
        s
    }

    /// Notes or a footer go at the end of the main body parts.
    fn has_appendix(&self) -> bool {
        !self.notes.is_empty() || self.footer.is_some()
    }

    fn appendix_text(&self) -> String {
        let mut s = self.notes_text();
        if let Some((text, _)) = &self.footer {
            if !s.is_empty() {
                s.push_str("\r\n");
            }
            s.push_str(text);
        }
        s
    }

    fn appendix_html(&self) -> String {
        let mut s = self.notes_html();
        if let Some((_, html)) = &self.footer {
            s.push_str(html);
        }
        s
    }

    /// `text` followed by a blank line and the appendix.
    fn append_text<'x>(&self, text: Cow<'x, str>) -> Cow<'x, str> {
        let mut s = text.into_owned();
        if !s.is_empty() && !s.ends_with('\n') {
            s.push_str("\r\n");
        }
        s.push_str("\r\n");
        s.push_str(&self.appendix_text());
        Cow::Owned(s)
    }

    /// [`plain_as_is`]'s text as [`Self::leaf`] makes a main text part it
    /// leaves alone: the appendix after it, its bytes as they came.
    fn plain<'x>(&self, text: &'x str) -> Node<'x> {
        let text = self.append_text(Cow::Borrowed(text));
        let verbatim = Some(if text.is_ascii() { "7bit" } else { "8bit" });
        Node::Text { subtype: "plain".into(), text, disposition: None, cid: None, verbatim }
    }

    fn build<'x>(
        &mut self,
        msg: &'x Message<'x>,
        id: usize,
        main_text: Option<usize>,
        main_html: Option<usize>,
    ) -> Node<'x> {
        let part = &msg.parts[id];
        let (ty, sub) = lower_type(part);
        match self.decisions[id].clone() {
            None | Some(Decision::Drop) => Node::Dropped,
            Some(Decision::Multipart) => {
                let before = self.changes;
                let PartType::Multipart(ids) = &part.body else {
                    return Node::Dropped;
                };
                let mut children: Vec<Node<'x>> = ids
                    .iter()
                    .map(|&c| self.build(msg, c as usize, main_text, main_html))
                    .filter(|n| !matches!(n, Node::Dropped))
                    .collect();
                if sub == "signed" && (self.changes > before || self.policy.filter_attachments || self.force) {
                    // The signature cannot survive a change; keep the content.
                    self.changes += 1;
                    return if children.is_empty() { Node::Dropped } else { children.swap_remove(0) };
                }
                if children.is_empty() {
                    return Node::Dropped;
                }
                let params = part
                    .content_type()
                    .and_then(|c| c.attributes())
                    .unwrap_or(&[])
                    .iter()
                    .filter(|a| {
                        // Kept only as what they name: a type, an algorithm.
                        let n = a.name.to_ascii_lowercase();
                        ((n == "type" || n == "protocol") && is_mime_type(&a.value))
                            || (n == "micalg" && a.value.split(',').all(|t| is_token(t.trim())))
                    })
                    .map(|a| (a.name.to_string(), a.value.to_string()))
                    .collect();
                Node::Multipart { subtype: if ty == "multipart" { sub } else { "mixed".into() }, params, children }
            }
            Some(Decision::Body) | Some(Decision::Keep) | Some(Decision::Signature) => {
                self.leaf(msg, part, &ty, &sub, Some(id) == main_text, Some(id) == main_html)
            }
        }
    }

    fn leaf<'x>(
        &mut self,
        msg: &'x Message<'x>,
        part: &'x MessagePart<'x>,
        ty: &str,
        sub: &str,
        main_text: bool,
        main_html: bool,
    ) -> Node<'x> {
        let disposition = self.disposition(part);
        let cid = part.content_id().map(|c| {
            let c = c.trim_matches(['<', '>', ' ']);
            self.cids.get(c).cloned().unwrap_or_else(|| c.to_string())
        });
        match &part.body {
            PartType::Text(t) => {
                let flowed = part
                    .content_type()
                    .and_then(|c| c.attribute("format"))
                    .is_some_and(|f| f.eq_ignore_ascii_case("flowed"));
                let text: Cow<'x, str> = if flowed {
                    let delsp = part
                        .content_type()
                        .and_then(|c| c.attribute("delsp"))
                        .is_some_and(|f| f.eq_ignore_ascii_case("yes"));
                    Cow::Owned(unflow(t, delsp))
                } else {
                    Cow::Borrowed(t.as_ref())
                };
                let text = self.strip_owned(text);
                let mut text = self.scrub_owned(text);
                let unchanged = !flowed && matches!(text, Cow::Borrowed(_)) && verbatim(raw_body(msg, part), t);
                if main_text && self.has_appendix() {
                    text = self.append_text(text);
                }
                let verbatim = unchanged.then(|| if text.is_ascii() { "7bit" } else { "8bit" });
                let subtype = if ty == "text" { sub.to_string() } else { "plain".into() };
                Node::Text { subtype, text, disposition, cid, verbatim }
            }
            PartType::Html(t) => {
                let source: Cow<'_, str> = if self.strip && footer::mentions_html(t) {
                    match footer::strip_html(t, self.relay) {
                        Ok(None) => Cow::Borrowed(t.as_ref()),
                        Ok(Some(s)) => {
                            self.changes += 1;
                            Cow::Owned(s)
                        }
                        Err(_) => return self.html_as_text(t, main_html, disposition, cid),
                    }
                } else {
                    Cow::Borrowed(t.as_ref())
                };
                let notes = (main_html && self.has_appendix()).then(|| self.appendix_html());
                let policy = HtmlPolicy {
                    remote: self.policy.remove_remote_content,
                    links: self.policy.unwrap_external_links,
                    rules: self.rules.clone(),
                    cids: &self.cids,
                    notes: notes.as_deref(),
                };
                match html::sanitize(&source, &policy) {
                    Ok(s) => {
                        if s.changed {
                            self.changes += 1;
                        }
                        self.removed.add(&s.removed);
                        Node::Text {
                            subtype: "html".into(),
                            text: Cow::Owned(s.html),
                            disposition,
                            cid,
                            verbatim: None,
                        }
                    }
                    Err(_) => self.html_as_text(t, main_html, disposition, cid),
                }
            }
            PartType::Binary(data) | PartType::InlineBinary(data) => {
                let raw = raw_body(msg, part);
                let base64 = part.encoding == Encoding::Base64 && valid_base64(raw);
                // The name `disposition` cleaned (and counted, if it changed).
                let name = disposition.as_ref().and_then(|(_, n)| n.clone());
                Node::Binary {
                    ctype: format!("{ty}/{sub}"),
                    data: if base64 { Cow::Borrowed(trim_crlf(raw)) } else { Cow::Borrowed(data.as_ref()) },
                    base64,
                    disposition,
                    name,
                    cid,
                }
            }
            PartType::Message(inner) => {
                let raw: Cow<'x, [u8]> = if part.encoding == Encoding::None {
                    Cow::Borrowed(raw_body(msg, part))
                } else {
                    Cow::Borrowed(inner.raw_message.as_ref())
                };
                Node::Message { raw }
            }
            PartType::Multipart(_) => Node::Dropped,
        }
    }

    /// The tokenizer gave up: keep what a reader would see, as text.
    fn html_as_text<'x>(
        &mut self,
        html: &str,
        main_html: bool,
        disposition: Option<(String, Option<String>)>,
        cid: Option<String>,
    ) -> Node<'x> {
        self.force = true;
        let plain = mail_parser::decoders::html::html_to_text(html);
        let text = self.strip_owned(Cow::Owned(plain));
        let mut text = self.scrub_owned(text);
        if main_html && self.has_appendix() {
            text = self.append_text(text);
        }
        Node::Text { subtype: "plain".into(), text, disposition, cid, verbatim: None }
    }

    /// Relay footers go; nothing is counted.
    fn strip_owned<'x>(&mut self, text: Cow<'x, str>) -> Cow<'x, str> {
        if !self.strip {
            return text;
        }
        match footer::strip_text(&text, self.relay) {
            Cow::Borrowed(_) => text,
            Cow::Owned(s) => {
                self.changes += 1;
                Cow::Owned(s)
            }
        }
    }

    fn scrub_owned<'x>(&mut self, text: Cow<'x, str>) -> Cow<'x, str> {
        if !self.rules.any() {
            return text;
        }
        let mut removed = Removed::default();
        let out = match scrub(&text, &self.rules, &mut removed) {
            Cow::Borrowed(_) => text,
            Cow::Owned(s) => {
                self.changes += 1;
                Cow::Owned(s)
            }
        };
        self.removed.add(&removed);
        out
    }

    fn disposition(&mut self, part: &MessagePart<'_>) -> Option<(String, Option<String>)> {
        let d = part.content_disposition();
        let name = names(part).first().copied();
        let kind = match d {
            Some(d) if d.is_attachment() => "attachment",
            Some(_) => "inline",
            None if name.is_some() => "attachment",
            None => return None,
        };
        let clean = name.map(|n| self.clean_name(n));
        if clean.as_deref() != name {
            // Only a rebuilt part (or top-level header) carries the clean name.
            self.changes += 1;
        }
        Some((kind.to_string(), clean))
    }
}

/// The encoded body of `part` as it came.
fn raw_body<'a>(msg: &'a Message<'_>, part: &MessagePart<'_>) -> &'a [u8] {
    let (s, e) = (part.offset_body as usize, part.offset_end as usize);
    msg.raw_message.get(s..e.max(s)).unwrap_or(&[])
}

fn trim_crlf(b: &[u8]) -> &[u8] {
    let mut e = b.len();
    while e > 0 && matches!(b[e - 1], b'\r' | b'\n') {
        e -= 1;
    }
    &b[..e]
}

fn valid_base64(raw: &[u8]) -> bool {
    !raw.is_empty()
        && raw
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'\r' | b'\n' | b' ' | b'\t'))
        && raw.split(|&b| b == b'\n').all(|l| l.len() <= 998)
}

/// Text that came as it reads: its bytes are the decoded text (no transfer
/// encoding or charset conversion changed them), in lines SMTP carries as
/// they are (CRLF line ends, at most 998 bytes, no NUL). Kept unchanged, it
/// goes out as it came instead of being encoded again.
fn verbatim(raw: &[u8], text: &str) -> bool {
    if raw != text.as_bytes() || memchr::memchr(0, raw).is_some() {
        return false;
    }
    let fits = |line: &[u8]| line.len() <= 998 && memchr::memchr(b'\r', line).is_none();
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', raw) {
        match raw[start..end].strip_suffix(b"\r") {
            Some(line) if fits(line) => start = end + 1,
            _ => return false,
        }
    }
    fits(&raw[start..])
}

/// A text part that any mail client decodes to what mail-parser decoded.
fn canonical_text(msg: &Message<'_>, part: &MessagePart<'_>) -> bool {
    let (ty, _) = lower_type(part);
    if ty == "multipart" {
        // A multipart whose boundary never came: read as text.
        return false;
    }
    let charset_ok = match part.content_type().and_then(|c| c.attribute("charset")) {
        None => true,
        Some(c) => {
            let c = c.trim().to_ascii_lowercase();
            matches!(c.as_str(), "utf-8" | "utf8" | "us-ascii" | "ascii") || charset_decoder(c.as_bytes()).is_some()
        }
    };
    let cte = part.content_transfer_encoding().map(|c| c.trim().to_ascii_lowercase());
    let cte_ok = match cte.as_deref() {
        None | Some("7bit" | "8bit" | "binary") => true,
        Some("base64") => valid_base64(raw_body(msg, part)) || raw_body(msg, part).is_empty(),
        Some("quoted-printable") => valid_qp(raw_body(msg, part)),
        Some(_) => false,
    };
    charset_ok && cte_ok
}

fn valid_qp(raw: &[u8]) -> bool {
    memchr::memchr_iter(b'=', raw).all(|i| {
        let rest = &raw[i + 1..];
        let hex = rest.len() >= 2 && rest[0].is_ascii_hexdigit() && rest[1].is_ascii_hexdigit();
        let ws = rest.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
        hex || rest[ws..].starts_with(b"\r\n") || rest[ws..].starts_with(b"\n") || ws == rest.len()
    })
}

fn to_mime<'x>(node: Node<'x>, spans: &mut Spans<'_>) -> Option<MimePart<'x>> {
    Some(match node {
        Node::Dropped => return None,
        Node::Multipart { subtype, params, children } => {
            let mut ct = BuiltType::new(format!("multipart/{subtype}"));
            for (k, v) in params {
                ct = ct.attribute(k, v);
            }
            let children: Vec<MimePart<'_>> = children.into_iter().filter_map(|c| to_mime(c, spans)).collect();
            MimePart::new(ct, BodyPart::Multipart(children))
        }
        Node::Text { subtype, text, disposition, cid, verbatim } => {
            let ct = BuiltType::new(format!("text/{subtype}")).attribute("charset", "utf-8");
            let part = with_disposition(MimePart::new(ct, BodyPart::Text(text)), disposition, cid);
            // With its transfer encoding named, the writer writes the text as it is.
            match verbatim {
                Some(cte) => part.transfer_encoding(cte),
                None => part,
            }
        }
        Node::Binary { ctype, data, base64, disposition, name, cid } => {
            let mut ct = BuiltType::new(ctype);
            if let Some(n) = name {
                ct = ct.attribute("name", n);
            }
            let data = match base64.then(|| spans.placeholder(&data)).flatten() {
                Some(placeholder) => Cow::Owned(placeholder),
                None => data,
            };
            let part = with_disposition(MimePart::new(ct, BodyPart::Binary(data)), disposition, cid);
            if base64 { part.transfer_encoding("base64") } else { part }
        }
        Node::Message { raw } => {
            let cte = if raw.iter().any(|&b| b >= 0x80) { "8bit" } else { "7bit" };
            MimePart::new("message/rfc822", BodyPart::Binary(raw)).transfer_encoding(cte)
        }
    })
}

fn with_disposition<'x>(
    mut part: MimePart<'x>,
    disposition: Option<(String, Option<String>)>,
    cid: Option<String>,
) -> MimePart<'x> {
    if let Some((kind, name)) = disposition {
        let mut d = BuiltType::new(kind);
        if let Some(n) = name {
            d = d.attribute("filename", n);
        }
        part = part.header("Content-Disposition", d);
    }
    if let Some(c) = cid {
        part = part.cid(c);
    }
    part
}

/// An RFC 2045 token (no white space, controls or tspecials such as
/// `@ < > : "`) of a sensible length.
fn is_token(t: &str) -> bool {
    !t.is_empty() && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
}

/// `type/subtype`, each a token.
fn is_mime_type(ctype: &str) -> bool {
    ctype.split_once('/').is_some_and(|(ty, sub)| is_token(ty) && is_token(sub))
}

/// Whether a part's MIME headers (`Content-Type`, `Content-Disposition`, …:
/// the boundary, the file name, any parameter) hold an address or a link the
/// policy removes. Such a part is rebuilt: fresh boundaries, cleaned names,
/// and only the parameters the rebuild writes. Phones are not looked for:
/// generated boundaries are full of digit groups.
fn mime_headers_hold_contact(msg: &Message<'_>, part: &MessagePart<'_>, rules: &Rules<'_>) -> bool {
    let rules = Rules { phones: false, ..rules.clone() };
    if !rules.any() {
        return false;
    }
    part.headers.iter().any(|h| {
        let name = h.name();
        let mime = name.get(..8).is_some_and(|p| p.eq_ignore_ascii_case("content-"))
            && !name.eq_ignore_ascii_case("content-id");
        let raw = msg.raw_message.get(h.offset_start as usize..h.offset_end as usize).unwrap_or_default();
        mime && matches!(scrub(&String::from_utf8_lossy(raw), &rules, &mut Removed::default()), Cow::Owned(_))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::{Footer, prelude};
    use proptest::prelude::*;

    const RELAY: &str = "m.example.com";

    fn extras() -> Extras {
        Extras {
            footer: Some(Footer { token: "t".repeat(24), relay_domain: RELAY.into(), relay_name: "Relay".into() }),
            strip_footer: false,
        }
    }

    fn message(headers: &[(&str, &str)], body: &[u8]) -> (Vec<u8>, usize) {
        let mut raw = prelude(headers);
        let start = raw.len();
        raw.extend_from_slice(body);
        (raw, start)
    }

    /// Both ways to the outcome: the one `walk` takes, and the parsed walk.
    fn both(raw: &[u8], start: usize, policy: &ContentPolicy) -> (Option<Outcome>, Option<Outcome>) {
        let extras = extras();
        let mut w = Walker::new(policy, RELAY, 0);
        w.footer = extras.footer.as_ref().map(|f| (f.text(), f.html()));
        (walk(raw, start, policy, RELAY, &extras, true), walk_parsed(w, raw, start, true))
    }

    /// What the cheap path may take, and what it must leave to the parsed walk.
    const CONTENT_TYPES: &[&str] = &[
        "",
        "text/plain",
        "text/plain; charset=utf-8",
        "TEXT/Plain;charset=\"UTF-8\"",
        "text/plain; charset=us-ascii",
    ];
    const OTHER_CONTENT_TYPES: &[&str] = &[
        "text/plain; charset=ascii",
        "text/plain; charset=iso-8859-1",
        "text/plain; charset=utf-8; format=flowed",
        "text/plain; format=flowed",
        "text/plain; name=\"a.txt\"",
        "text/html; charset=utf-8",
        "text/plain; charset=utf-8 (comment)",
        "multipart/mixed; boundary=x",
    ];
    const ENCODINGS: &[&str] = &["", "7bit", "8BIT"];
    const OTHER_ENCODINGS: &[&str] = &["binary", "quoted-printable", "base64", "x-uuencode"];
    const LINES: &[&[u8]] = &[
        b"Hello, is the parcel for order 114-1234567-1234567 on its way?",
        "주문하신 상품이 아직 도착하지 않았습니다.".as_bytes(),
        b"",
        b"-- ",
        b"tab\there = sign =3D",
        b"> quoted bob@gmail.com https://shop.example/x",
    ];
    const OTHER_LINES: &[&[u8]] =
        &[b"caf\xe9 au lait", b"nul \x00 byte", b"a bare\nline feed", b"a bare\rcarriage return"];

    fn one_of<T: Clone + std::fmt::Debug + 'static>(
        common: &'static [T],
        other: &'static [T],
    ) -> impl Strategy<Value = T> {
        prop_oneof![6 => prop::sample::select(common), 1 => prop::sample::select(other)]
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        (prop::collection::vec(one_of(LINES, OTHER_LINES), 0..6), any::<bool>(), any::<bool>()).prop_map(
            |(lines, end, long)| {
                let mut b = lines.join(&b"\r\n"[..]);
                if long {
                    b.extend(std::iter::repeat_n(b'x', 998 + usize::from(end)));
                }
                if end {
                    b.extend_from_slice(b"\r\n");
                }
                b
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Wherever the cheap path applies, its outcome is the parsed walk's, byte for byte.
        #[test]
        fn a_plain_message_as_is_comes_out_as_the_parsed_walk_makes_it(
            ct in one_of(CONTENT_TYPES, OTHER_CONTENT_TYPES),
            cte in one_of(ENCODINGS, OTHER_ENCODINGS),
            ct_twice in prop::bool::weighted(0.1),
            mime_version in any::<bool>(),
            disposition in one_of(&[""], &["inline", "attachment; filename=a.txt"]),
            filter in any::<bool>(),
            body in body(),
        ) {
            let mut headers = Vec::new();
            if mime_version {
                headers.push(("MIME-Version", "1.0"));
            }
            if !ct.is_empty() {
                headers.push(("Content-Type", ct));
                if ct_twice {
                    headers.push(("Content-Type", "text/html"));
                }
            }
            if !cte.is_empty() {
                headers.push(("Content-Transfer-Encoding", cte));
            }
            if !disposition.is_empty() {
                headers.push(("Content-Disposition", disposition));
            }
            let policy = ContentPolicy { filter_attachments: filter, ..ContentPolicy::buyer_to_seller_default() };
            let (raw, start) = message(&headers, &body);
            let (cheap, parsed) = both(&raw, start, &policy);
            if plain_as_is(&raw, start, &policy, &extras()).is_some() {
                prop_assert_eq!(cheap, parsed);
            }
        }
    }

    #[test]
    fn the_cheap_path_is_taken_only_for_plain_text_as_is_with_the_footer_alone() {
        let b2s = ContentPolicy::buyer_to_seller_default();
        let takes = |headers: &[(&str, &str)], body: &[u8], policy: &ContentPolicy, extras: &Extras| {
            let (raw, start) = message(headers, body);
            plain_as_is(&raw, start, policy, extras).is_some()
        };
        let plain = [
            ("MIME-Version", "1.0"),
            ("Content-Type", "text/plain; charset=\"UTF-8\""),
            ("Content-Transfer-Encoding", "8bit"),
        ];
        let text = "주문하신 상품이 아직 도착하지 않았습니다.\r\nHello\r\n".as_bytes();
        assert!(takes(&plain, text, &b2s, &extras()));
        assert!(takes(&[], b"Hello\r\n", &b2s, &extras()));
        // Not without a footer, with footers to strip, or with text rules.
        assert!(!takes(&plain, text, &b2s, &Extras::default()));
        assert!(!takes(&plain, text, &b2s, &Extras { strip_footer: true, ..extras() }));
        assert!(!takes(&plain, text, &ContentPolicy::seller_to_buyer_default(), &extras()));
        // Not for text that does not read as it came, or headers with more to them.
        assert!(!takes(&[("Content-Type", "text/plain; charset=us-ascii")], text, &b2s, &extras()));
        assert!(!takes(&[("Content-Type", "text/plain; format=flowed")], b"Hello\r\n", &b2s, &extras()));
        assert!(!takes(&[("Content-Transfer-Encoding", "quoted-printable")], b"Hello\r\n", &b2s, &extras()));
        assert!(!takes(&[("Content-Disposition", "inline")], b"Hello\r\n", &b2s, &extras()));
        assert!(!takes(&[], b"one\ntwo\n", &b2s, &extras()));
        assert!(!takes(&[], b"caf\xe9\r\n", &b2s, &extras()));
        assert!(!takes(&[], b"", &b2s, &extras()));
        // And what it makes is the parsed walk's.
        let (raw, start) = message(&plain, text);
        let (cheap, parsed) = both(&raw, start, &b2s);
        assert_eq!(cheap, parsed);
        let Some(Outcome::Rewritten { body, content_transfer_encoding, .. }) = cheap else { panic!("not rewritten") };
        assert!(body.to_vec(text).starts_with(text));
        assert_eq!(content_transfer_encoding.as_deref(), Some("8bit"));
    }
}
