//! Untrusted header text: address parsing (envelope and header), the header
//! reader and rewriter (RFC 2047, groups, comments), id lists, and the text
//! scanners of the content policy.
//!
//! Invariants besides "no panic": rewritten headers are allowlisted and carry
//! no address but relay aliases and the recipient's own; redacted text holds
//! no address that the address scanner would still remove; parsed addresses are
//! canonical (parsing one again yields itself).

#![no_main]

use bsm_milter::address::{Address, parse_envelope};
use bsm_milter::content::Removed;
use bsm_milter::content::fuzzing::{
    Rules, decode_entities, emails, extension, is_allowed_web_url, is_local_image, redact_phones, redact_urls, scrub,
    unflow,
};
use bsm_milter::rewrite::contact::redact_emails;
use bsm_milter::rewrite::headers::{self, Outgoing};
use bsm_milter::rewrite::ids::parse_ids;
use bsm_milter::rewrite::{RawHeader, apply_edits};
use bsm_milter_fuzz::{ALLOWLIST, RELAY, allowlisted, describes_body, foreign_addresses, split};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    // Addresses: whatever parses is canonical.
    for candidate in [text.as_ref(), text.lines().next().unwrap_or("")] {
        if let Ok(a) = Address::parse(candidate) {
            assert_eq!(Address::parse(a.as_str()).as_ref(), Ok(&a));
            assert_eq!(Address::parse(&a.bracketed()).as_ref(), Ok(&a));
            assert!(!a.local_part().is_empty() && a.domain().contains('.'));
        }
        let _ = parse_envelope(candidate);
    }
    let _ = parse_ids(&text);

    // Text scanners, as the content policy runs them.
    let allow = [ALLOWLIST.to_string()];
    let (t, n) = emails(&text, RELAY);
    if n > 0 {
        assert_eq!(emails(&t, RELAY).1, 0, "still addresses after redaction: {t:?}");
    }
    let redacted = redact_emails(&text, RELAY);
    assert!(redact_emails(&redacted, RELAY) == redacted, "redact_emails not idempotent: {redacted:?}");
    let _ = redact_urls(&text, &allow);
    let _ = redact_phones(&text);
    let _ = decode_entities(&text);
    let _ = unflow(&text, data.first().is_some_and(|b| b & 1 == 1));
    let _ = is_allowed_web_url(&text, &allow);
    let _ = is_local_image(&text);
    let _ = extension(&text);
    let rules = Rules { emails: true, phones: true, links: true, relay_domain: RELAY, allowlist: &allow };
    let mut removed = Removed::default();
    // Not idempotent by design: removing a link can leave `a@b.c.` looking
    // like an address again (`"x"@m.ex..shop.com` -> `"x"@m.ex..[link removed]`).
    let _ = scrub(&text, &rules, &mut removed);

    // Header fields: read and rewritten as for a seller → buyer message.
    let (fields, _) = split(data);
    let fields: Vec<RawHeader> = fields.into_iter().map(|(n, v)| RawHeader::new(n, v)).collect();
    let parsed = headers::parse(&fields);
    let _ = parsed.referenced();
    for h in &fields {
        for a in headers::addresses(h) {
            assert_eq!(Address::parse(a.as_str()).as_ref(), Ok(&a));
        }
    }
    let a = |s: &str| Address::parse(s).unwrap();
    let (from_alias, rcpt_alias, buyer) =
        (a("sellerxxxxxxxxx@m.example.com"), a("abcdefghijklmno@m.example.com"), a("bob@buyer.example"));
    let out = Outgoing {
        from_name: Some("Shop"),
        from_alias: &from_alias,
        recipient_alias: &rcpt_alias,
        recipient_name: Some("Bob"),
        recipient: &buyer,
        message_id: "bsm.x@m.example.com",
        in_reply_to: &parsed.in_reply_to,
        references: &parsed.references,
        relay_domain: RELAY,
    };
    for h in apply_edits(&fields, &headers::rewrite(&fields, &out)) {
        assert!(allowlisted(&h.name), "header {:?} kept", h.name);
        let lower = h.name.to_ascii_lowercase();
        let own: &[&str] = if lower == "to" || lower == "cc" { &["bob@buyer.example"] } else { &[] };
        // In-Reply-To/References are passed as given here (no store to translate them).
        if lower == "in-reply-to" || lower == "references" || describes_body(&h.name) {
            continue;
        }
        let found = foreign_addresses(&h.value, own);
        assert!(found.is_empty(), "addresses {found:?} in {}: {:?}", h.name, h.value);
    }
});
