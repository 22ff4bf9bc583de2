//! The fuzz targets' bodies, as plain functions: `fuzz_targets/*.rs` hand
//! them libFuzzer's input, and the main crate's `tests/fuzz_corpus.rs` replays
//! the seed corpus through them, so they compile, and hold, in every CI run.

use super::{ALLOWLIST, RELAY, allowlisted, describes_body, foreign_addresses, remote_urls, shown, split};
use bsm_milter::address::{Address, parse_envelope};
use bsm_milter::clock::SystemClock;
use bsm_milter::config::Config;
use bsm_milter::content::Removed;
use bsm_milter::content::fuzzing::{
    Rules, decode_entities, emails, extension, is_allowed_web_url, is_local_image, redact_phones, redact_urls, scrub,
    unflow,
};
use bsm_milter::content::prelude;
use bsm_milter::metrics::ops::OpsMetrics;
use bsm_milter::policy::Target;
use bsm_milter::relay::{Incoming, Relay, Verdict};
use bsm_milter::rewrite::contact::redact_emails;
use bsm_milter::rewrite::headers::{self, Outgoing};
use bsm_milter::rewrite::ids::parse_ids;
use bsm_milter::rewrite::{RawHeader, apply_edits, assemble};
use bsm_milter::store::archive::Archive;
use bsm_milter::store::{NewBuyer, NewSeller, Party, RedbStore, Store};
use std::sync::{Arc, Mutex};

// ---- pipeline
// Raw message bytes → the milter's header fields and body → end of message
// in both directions, against a real redb store → the delivered message,
// judged as its recipient would see it.
//
// Property (DESIGN §2.3, §3; README "Content policy"):
// - no panic;
// - only allowlisted headers reach the recipient, and none of them, raw or
//   decoded, holds a mail address other than a relay alias (and, in `To`/`Cc`,
//   the recipient's own address);
// - seller → buyer, in every decoded text and HTML part, file name and
//   attached message header: no address other than a relay alias and no
//   `http(s)` URL off the link allowlist. Buyer → seller keeps the buyer's
//   contact details and links (tracking removal only), so its body is not
//   judged here.

const SELLER_SERVICE: &str = "cs@shop.example";
const SELLER_APPROVED: &str = "sales@shop.example";
const BUYER: &str = "bob@buyer.example";
/// The store and archive grow with every message; start afresh this often.
const RUNS_PER_WORLD: u32 = 2000;

struct World {
    _dir: tempfile::TempDir,
    relay: Relay,
    seller_alias: String,
    pair_alias: String,
    runs: u32,
}

impl World {
    fn new() -> World {
        // tmpfs when there is one: fsync is then nearly free.
        let dir = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).unwrap();
        let config = Config::parse(&format!(
            "[relay]\ndomain = \"{RELAY}\"\n[store]\npath = \"{0}/s.redb\"\n[archive]\ndir = \"{0}/archive\"\n\
             [policy]\ndaily_limit_base = 1000000000\n[content]\nlink_allowlist = [\"{1}\"]\n",
            dir.path().display(),
            ALLOWLIST,
        ))
        .unwrap();
        let archive = Arc::new(Archive::new(config.archive.dir.clone()));
        let store = Arc::new(RedbStore::open_with_cache(&config.store.path, 8 << 20, archive.clone()).unwrap());
        let a = |s: &str| Address::parse(s).unwrap();
        store
            .add_seller(NewSeller {
                id: "S1".into(),
                name: "Shop".into(),
                service_address: a(SELLER_SERVICE),
                approved_addresses: vec![a(SELLER_APPROVED)],
            })
            .unwrap();
        store.add_buyer(NewBuyer { id: "B1".into(), email: a(BUYER), name: Some("Bob".into()) }).unwrap();
        let pair_alias = store.pair_alias("S1", "B1").unwrap();
        let seller_alias = store.seller("S1").unwrap().unwrap().alias;
        let relay = Relay {
            archive,
            config: Arc::new(config),
            store,
            clock: Arc::new(SystemClock),
            ops: Arc::new(OpsMetrics::default()),
            dkim: None,
            verifier: None,
            authres_marker: "fuzz".into(),
        };
        World { _dir: dir, relay, seller_alias, pair_alias, runs: 0 }
    }
}

static WORLD: Mutex<Option<World>> = Mutex::new(None);

fn run(world: &World, from: Party, headers: &[RawHeader], body: &[u8]) {
    let (rcpt, recipient) = match from {
        Party::Buyer => (&world.seller_alias, SELLER_SERVICE),
        Party::Seller => (&world.pair_alias, BUYER),
    };
    let target = Target::Conversation { from, seller: "S1".into(), buyer: "B1".into() };
    let rcpts = [format!("<{rcpt}@{RELAY}>")];
    // As the milter buffers it: the content prelude of the headers, then the body.
    let pairs: Vec<(&str, &str)> = headers.iter().map(|h| (h.name.as_str(), h.value.as_str())).collect();
    let mut raw = prelude(&pairs);
    let prelude_len = raw.len();
    raw.extend_from_slice(body);
    let incoming = Incoming { target: &target, rcpts: &rcpts, headers, body, raw: &raw, prelude_len, auth: None };
    let verdict = world.relay.end_of_message(&incoming).unwrap();
    let Verdict::Deliver { rewrite, .. } = verdict else { return };
    let delivered_headers = apply_edits(headers, &rewrite.headers);
    let delivered = assemble(&delivered_headers, &rewrite.body_slices(body).collect::<Vec<_>>().concat());
    for h in &delivered_headers {
        assert!(allowlisted(&h.name), "header {:?} delivered", h.name);
    }
    let Some(seen) = shown(&delivered) else { panic!("delivered message does not parse") };
    for (name, text) in &seen.headers {
        let own: &[&str] =
            if name.eq_ignore_ascii_case("to") || name.eq_ignore_ascii_case("cc") { &[recipient] } else { &[] };
        let found = foreign_addresses(text, own);
        assert!(found.is_empty(), "{from:?}: addresses {found:?} in header {name}: {text:?}");
    }
    if from == Party::Seller {
        for text in &seen.parts {
            let found = foreign_addresses(text, &[]);
            assert!(found.is_empty(), "addresses {found:?} in:\n{text}");
            let urls = remote_urls(text);
            assert!(urls.is_empty(), "remote URLs {urls:?} in:\n{text}");
        }
    }
}

/// One input of the `pipeline` target.
pub fn pipeline(data: &[u8]) {
    let (fields, body) = split(data);
    let mut headers: Vec<RawHeader> = fields.into_iter().map(|(n, v)| RawHeader::new(n, v)).collect();
    let mut guard = WORLD.lock().unwrap_or_else(|e| e.into_inner());
    if guard.as_ref().is_none_or(|w| w.runs >= RUNS_PER_WORLD) {
        *guard = None;
        *guard = Some(World::new());
    }
    let world = guard.as_mut().unwrap();
    world.runs += 1;
    run(world, Party::Buyer, &headers, &body);
    // A seller's From: must be approved, or the message is refused before
    // anything is rewritten; make it so unless the input already is.
    let approved = Address::parse(SELLER_APPROVED).unwrap();
    let from = headers::parse(&headers).from;
    if from.is_empty() || from.iter().any(|a| *a != approved) {
        headers.retain(|h| !h.name.eq_ignore_ascii_case("from"));
        headers.insert(0, RawHeader::new("From", SELLER_APPROVED));
    }
    run(world, Party::Seller, &headers, &body);
}

// ---- headers
// Untrusted header text: address parsing (envelope and header), the header
// reader and rewriter (RFC 2047, groups, comments), id lists, and the text
// scanners of the content policy.
//
// Invariants besides "no panic": rewritten headers are allowlisted and carry
// no address but relay aliases and the recipient's own; redacted text holds
// no address that the address scanner would still remove; parsed addresses are
// canonical (parsing one again yields itself).

/// One input of the `headers` target.
pub fn headers(data: &[u8]) {
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
    let delivered = apply_edits(&fields, &headers::rewrite(&fields, &out));
    for h in &delivered {
        assert!(allowlisted(&h.name), "header {:?} kept", h.name);
    }
    // Judged as a mail client shows them: raw (encoded words aside) and decoded.
    let Some(seen) = shown(&assemble(&delivered, b"")) else { panic!("rewritten headers do not parse") };
    for (name, text) in &seen.headers {
        let lower = name.to_ascii_lowercase();
        let own: &[&str] = if lower == "to" || lower == "cc" { &["bob@buyer.example"] } else { &[] };
        // In-Reply-To/References are passed as given here (no store to translate them).
        if lower == "in-reply-to" || lower == "references" || describes_body(name) {
            continue;
        }
        let found = foreign_addresses(text, own);
        assert!(found.is_empty(), "addresses {found:?} in {name}: {text:?}");
    }
}
