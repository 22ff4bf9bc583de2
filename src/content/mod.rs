//! The content policy (DESIGN §3): what a message may carry once it passes the
//! relay. Text and HTML parts are decoded (transfer encoding and charset),
//! sanitized and, only when something changed, the message is rebuilt with
//! mail-builder, keeping its MIME structure.
//!
//! # What each rule removes
//! - **remote content**: every network load in HTML — `img`/`input type=image`
//!   sources and `srcset`, `background`, `poster`, any other URL attribute,
//!   CSS `url()`/`image-set()`/`@import`/`expression()` in `style` attributes and
//!   `<style>` blocks, `<link>`, `<base>`, meta refresh, `<script>`, `<iframe>`,
//!   `<object>`, `<embed>`, `<svg>`, `<audio>`, `<video>`, forms, event-handler
//!   attributes, conditional comments. `cid:` and raster `data:` images stay, and
//!   so does anything on an allowlisted domain.
//! - **external links**: `<a>`/`<area>` to anything but an allowlisted
//!   `http(s)` host or a relay-domain `mailto:` are unwrapped (the text stays);
//!   images inside such a link go with it (logos). In text: `[link removed]`.
//! - **contact details**: mail addresses other than relay aliases become
//!   `[email removed]`, phone numbers `[phone removed]`, in plain text, HTML text
//!   (also across inline tags and comments), HTML attributes and file names.
//! - **attachments**: only `.txt .pdf .doc .docx .jpg .jpeg .gif .tif .tiff
//!   .bmp .png` with a matching content type, matching content and a decoded
//!   size within `max_attachment_bytes`; every other leaf part that is not a
//!   message body (forwarded messages and calendar parts included) is removed and
//!   a one-line note in the text and HTML bodies names it and says why.
//!
//! # Command footer ([`apply_with`], DESIGN §2.6)
//! Buyer → seller messages get a short footer with `mailto:` links to the
//! relay command addresses `no-response-needed+TOKEN@relay` and
//! `report+TOKEN@relay`, appended like the notes (after sanitizing, so the
//! policy never touches it). It is marked with [`FOOTER_START`] and
//! [`FOOTER_END`] (and, in HTML, `data-bsm-footer` and class `bsm-footer`),
//! so that seller → buyer messages have every copy stripped again, quoted or
//! not; see `footer.rs` for exactly what goes.
//!
//! # Bad input
//! Nothing here panics on input, and nothing unsanitized passes:
//! - **refused** with `552 5.3.4` — a message over 50 MiB ([`MAX_MESSAGE_BYTES`]);
//! - **refused** with `554 5.6.0` — MIME nesting deeper than 20 ([`MAX_DEPTH`]),
//!   more than 1000 parts ([`MAX_PARTS`]), encrypted content
//!   (`multipart/encrypted`, `application/pkcs7-mime`: it cannot be checked);
//! - **sanitized conservatively** — a message is *rebuilt* from what was checked
//!   (never passed through unchanged) when a text part has an unknown charset, a
//!   broken or unknown transfer encoding, a multipart with a missing boundary
//!   (its content is treated as plain text), or undecodable bytes; broken
//!   boundaries are recovered as mail-parser reads them, and the rebuilt message
//!   has exactly that structure; HTML that the tokenizer gives up on is replaced
//!   by its plain-text rendering, then sanitized as text; `multipart/signed`
//!   loses its signature when its content changes.

mod attachment;
mod css;
mod footer;
mod html;
mod phone;
pub(crate) mod text;
mod url;
mod walk;

pub use crate::rewrite::contact::EMAIL_REMOVED;
pub use footer::{Extras, FOOTER_END, FOOTER_START, Footer};
pub use phone::PHONE_REMOVED;
pub use url::LINK_REMOVED;

/// The private text scanners, for the fuzz targets in `fuzz/`. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use super::attachment::extension;
    pub use super::html::decode_entities;
    pub use super::phone::redact_phones;
    pub use super::text::{Rules, emails, scrub, unflow};
    pub use super::url::{is_allowed_web_url, is_local_image, redact_urls};
}

/// Larger messages are refused (`552 5.3.4`) before parsing.
pub const MAX_MESSAGE_BYTES: usize = 50 * 1024 * 1024;
/// Deeper MIME nesting (multiparts and attached messages) is refused.
pub const MAX_DEPTH: usize = 20;
/// More MIME parts than this are refused.
pub const MAX_PARTS: usize = 1000;

/// The content policy of one direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentPolicy {
    /// Tracking pixels and every other network load.
    pub remove_remote_content: bool,
    pub unwrap_external_links: bool,
    /// Mail addresses (other than relay-domain aliases) and phone numbers.
    pub redact_contact_details: bool,
    pub filter_attachments: bool,
    /// Domains (and their subdomains) whose links and images are kept.
    pub link_allowlist: Vec<String>,
    /// Largest attachment kept, decoded size.
    pub max_attachment_bytes: u64,
}

impl ContentPolicy {
    /// Everything on (seeds 002, 003).
    pub fn seller_to_buyer_default() -> Self {
        ContentPolicy {
            remove_remote_content: true,
            unwrap_external_links: true,
            redact_contact_details: true,
            filter_attachments: true,
            link_allowlist: Vec::new(),
            max_attachment_bytes: 10 * 1024 * 1024,
        }
    }

    /// Tracking removal only: a buyer may give the seller their own details.
    pub fn buyer_to_seller_default() -> Self {
        ContentPolicy {
            remove_remote_content: true,
            unwrap_external_links: false,
            redact_contact_details: false,
            filter_attachments: false,
            link_allowlist: Vec::new(),
            max_attachment_bytes: 10 * 1024 * 1024,
        }
    }

    pub fn is_noop(&self) -> bool {
        !(self.remove_remote_content
            || self.unwrap_external_links
            || self.redact_contact_details
            || self.filter_attachments)
    }
}

/// What the policy removed, per kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Removed {
    pub remote_resources: u32,
    pub links: u32,
    pub emails: u32,
    pub phones: u32,
    pub attachments: u32,
}

impl Removed {
    pub fn is_empty(&self) -> bool {
        *self == Removed::default()
    }

    /// `"2 remote resources, 1 link, 1 phone"`, or `"nothing"`.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = [
            (self.remote_resources, "remote resource", "remote resources"),
            (self.links, "link", "links"),
            (self.emails, "email", "emails"),
            (self.phones, "phone", "phones"),
            (self.attachments, "attachment", "attachments"),
        ]
        .into_iter()
        .filter(|(n, _, _)| *n > 0)
        .map(|(n, one, many)| format!("{n} {}", if n == 1 { one } else { many }))
        .collect();
        if parts.is_empty() { "nothing".into() } else { parts.join(", ") }
    }

    pub(crate) fn add(&mut self, o: &Removed) {
        self.remote_resources += o.remote_resources;
        self.links += o.links;
        self.emails += o.emails;
        self.phones += o.phones;
        self.attachments += o.attachments;
    }
}

/// A rebuilt body: new bytes, and spans of the input body that pass through
/// unchanged (large attachments), so a rebuild never copies them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spliced {
    pieces: Vec<Piece>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    New(Vec<u8>),
    /// A range of the input body.
    Old(std::ops::Range<usize>),
}

impl Spliced {
    pub fn new(bytes: Vec<u8>) -> Spliced {
        Spliced { pieces: vec![Piece::New(bytes)] }
    }

    /// The body in order, given the input body the spans refer to.
    pub fn slices<'a>(&'a self, input: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.pieces.iter().map(move |p| match p {
            Piece::New(b) => b.as_slice(),
            Piece::Old(r) => &input[r.clone()],
        })
    }

    pub fn to_vec(&self, input: &[u8]) -> Vec<u8> {
        self.slices(input).collect::<Vec<_>>().concat()
    }

    pub fn len(&self) -> usize {
        self.pieces.iter().map(|p| if let Piece::New(b) = p { b.len() } else { 0 }).sum::<usize>()
            + self.pieces.iter().map(|p| if let Piece::Old(r) = p { r.len() } else { 0 }).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes that pass through as spans of the input, not copied.
    pub fn spanned_len(&self) -> usize {
        self.pieces.iter().map(|p| if let Piece::Old(r) = p { r.len() } else { 0 }).sum()
    }

    /// The first bytes written (the root part's headers come first).
    fn head_mut(&mut self) -> &mut Vec<u8> {
        if !matches!(self.pieces.first(), Some(Piece::New(_))) {
            self.pieces.insert(0, Piece::New(Vec::new()));
        }
        match &mut self.pieces[0] {
            Piece::New(b) => b,
            Piece::Old(_) => unreachable!("just made sure"),
        }
    }

    fn push_old(&mut self, r: std::ops::Range<usize>) {
        self.pieces.push(Piece::Old(r));
    }

    fn push_new(&mut self, b: &[u8]) {
        if b.is_empty() {
            return;
        }
        match self.pieces.last_mut() {
            Some(Piece::New(last)) => last.extend_from_slice(b),
            _ => self.pieces.push(Piece::New(b.to_vec())),
        }
    }
}

/// What mail-parser is given before the body: a placeholder header and the
/// top-level MIME headers (the others do not matter to the content policy).
/// The milter writes it ahead of the body as the body arrives, so the
/// message is parsed without another copy of it.
pub fn prelude(headers: &[(impl AsRef<str>, impl AsRef<str>)]) -> Vec<u8> {
    let mut raw = b"X-Bsm: 1\r\n".to_vec();
    for (name, value) in headers {
        let (name, value) = (name.as_ref(), value.as_ref());
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("content-") || lower == "mime-version" {
            raw.extend_from_slice(name.as_bytes());
            raw.extend_from_slice(b": ");
            raw.extend(value.bytes().filter(|&b| b != b'\r' && b != b'\n'));
            raw.extend_from_slice(b"\r\n");
        }
    }
    raw.extend_from_slice(b"\r\n");
    raw
}

/// The policy's verdict on one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to change: the milter must NOT send REPLACE_BODY (cheap path).
    Unchanged,
    /// New body + the new values of the top-level Content-Type and
    /// Content-Transfer-Encoding headers (the milter applies them with
    /// CHANGE_HEADER/ADD_HEADER in the same end-of-message). A `None`
    /// transfer encoding means the message must have no such header (a
    /// multipart): delete it if present. When `content_type` is `multipart/*`
    /// and the message has a top-level Content-Disposition, delete that too:
    /// a message that was one attachment and got a footer text part is now a
    /// `multipart/mixed`, which must not read as an attachment itself.
    Rewritten {
        body: Spliced,
        content_type: String,
        content_transfer_encoding: Option<String>,
        /// The rebuilt top-level part's disposition (`None`: it has none).
        content_disposition: Option<String>,
        removed: Removed,
    },
    /// Refuse at end of message, e.g. `("554", "5.6.0", "...")`.
    Refuse { code: &'static str, xcode: &'static str, text: String },
}

/// Applies `policy` to one message. `headers`: the top-level headers as
/// Postfix gives them (values without the leading space, folded lines possibly
/// containing `"\n\t"` or `"\r\n\t"`); `body`: the raw body exactly as received
/// (CRLF line ends, after the header/body separator).
pub fn apply(headers: &[(String, String)], body: &[u8], policy: &ContentPolicy, relay_domain: &str) -> Outcome {
    apply_with(headers, body, policy, relay_domain, &Extras::default())
}

/// [`apply`], plus the command footer: added to the main text and HTML parts
/// (a message with neither gets a text part; the message is always rebuilt),
/// or stripped from every text and HTML part, quoted copies included. A
/// message with no footer to strip takes the cheap path as before; stripping
/// counts nothing in [`Removed`].
pub fn apply_with(
    headers: &[(String, String)],
    body: &[u8],
    policy: &ContentPolicy,
    relay_domain: &str,
    extras: &Extras,
) -> Outcome {
    let mut raw = prelude(headers);
    let start = raw.len();
    raw.extend_from_slice(body);
    apply_in(&raw, start, policy, relay_domain, extras)
}

/// [`apply_with`] on a buffer that holds [`prelude`] of `headers` followed
/// by the body at `body_start`; the spans of the result refer to the body.
pub fn apply_in(raw: &[u8], body_start: usize, policy: &ContentPolicy, relay_domain: &str, extras: &Extras) -> Outcome {
    let body = &raw[body_start..];
    if policy.is_noop() && extras.footer.is_none() && !extras.strip_footer {
        return Outcome::Unchanged;
    }
    if body.len() > MAX_MESSAGE_BYTES {
        return Outcome::Refuse {
            code: "552",
            xcode: "5.3.4",
            text: format!("Message too large for the content policy (limit {} MB)", MAX_MESSAGE_BYTES / (1024 * 1024)),
        };
    }
    walk::apply(raw, body_start, policy, &relay_domain.to_ascii_lowercase(), extras)
}

#[cfg(test)]
mod tests;
