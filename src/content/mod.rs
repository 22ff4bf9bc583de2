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
//!   (`multipart/encrypted`, `application/pkcs7-mime`: it cannot be checked), and
//!   a message whose top-level part is itself an attachment that would have to be
//!   removed or renamed (the milter can only replace the top-level
//!   `Content-Type` and `Content-Transfer-Encoding`);
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
    Rewritten { body: Vec<u8>, content_type: String, content_transfer_encoding: Option<String>, removed: Removed },
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
    walk::apply(headers, body, policy, &relay_domain.to_ascii_lowercase(), extras)
}

#[cfg(test)]
mod tests;
