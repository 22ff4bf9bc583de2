//! Raw message bytes → the milter's header fields and body → end of message
//! in both directions, against a real redb store → the delivered message,
//! judged as its recipient would see it.
//!
//! Property (DESIGN §2.3, §3; README "Content policy"):
//! - no panic;
//! - only allowlisted headers reach the recipient, and none of them, raw or
//!   decoded, holds a mail address other than a relay alias (and, in `To`/`Cc`,
//!   the recipient's own address);
//! - seller → buyer, in every decoded text and HTML part, file name and
//!   attached message header: no address other than a relay alias and no
//!   `http(s)` URL off the link allowlist. Buyer → seller keeps the buyer's
//!   contact details and links (tracking removal only), so its body is not
//!   judged here.

#![no_main]

use bsm_milter::address::Address;
use bsm_milter::clock::SystemClock;
use bsm_milter::config::Config;
use bsm_milter::metrics::ops::OpsMetrics;
use bsm_milter::policy::Target;
use bsm_milter::relay::{Incoming, Relay, Verdict};
use bsm_milter::rewrite::{RawHeader, apply_edits, assemble, headers};
use bsm_milter::store::archive::Archive;
use bsm_milter::store::{NewBuyer, NewSeller, Party, RedbStore, Store};
use bsm_milter_fuzz::{RELAY, allowlisted, foreign_addresses, remote_urls, shown, split};
use std::sync::{Arc, Mutex};

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
            bsm_milter_fuzz::ALLOWLIST,
        ))
        .unwrap();
        let store = Arc::new(RedbStore::open_with_cache(&config.store.path, 8 << 20).unwrap());
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
            archive: Arc::new(Archive::new(config.archive.dir.clone())),
            config: Arc::new(config),
            store,
            clock: Arc::new(SystemClock),
            ops: Arc::new(OpsMetrics::default()),
            dkim: None,
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
    let verdict = world.relay.end_of_message(&Incoming { target: &target, rcpts: &rcpts, headers, body }).unwrap();
    let Verdict::Deliver { rewrite, .. } = verdict else { return };
    let delivered_headers = apply_edits(headers, &rewrite.headers);
    let delivered = assemble(&delivered_headers, rewrite.body.as_deref().unwrap_or(body));
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

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
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
});
