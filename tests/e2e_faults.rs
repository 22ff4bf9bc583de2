//! Faults (issue #6, item 3): the milter killed while Postfix feeds it, killed during store
//! commits, a full archive or store, and SIGTERM under load. In every case: nothing that was
//! acknowledged is lost, nothing is delivered twice or un-anonymised, and a fault is a
//! `451 4.3.0` (Postfix retries), never a `250`.
//!
//! Runs as root (Postfix), like the other `e2e_*` tests.

mod support;

use bsm_milter::store::archive::{Archive, Copy};
use bsm_milter::store::{AliasOwner, Decision, MessageFilter, Party, RedbStore, Store};
use indymilter_test::{EomAction, MacroStage, Status, TestConnection};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};
use support::faults::{Immutable, frames_end, now, segments_around, sending_mta, set_file_size_limit};
use support::postfix::{SinkMessage, Smtp, send};
use support::process::{Served, ok, write_config};
use support::world::{World, assert_no_trace, header, json, message};

const TEMPFAIL: (u16, &str) = (451, "4.3.0 Temporary failure in the relay, try again later");

fn marker_of(msg: &SinkMessage) -> String {
    let subject = header(msg, "Subject").unwrap_or_default();
    subject
        .split_whitespace()
        .find(|w| w.starts_with("FM-"))
        .unwrap_or_else(|| panic!("no marker in {subject:?}"))
        .into()
}

// ---------------------------------------------------------------------------------------------
// (a) SIGKILL while a sending Postfix feeds the milter'd one
// ---------------------------------------------------------------------------------------------

/// One direction of mail: who sends, to which alias, who receives, and what of the sender must
/// never reach the recipient.
struct Flow {
    from: &'static str,
    to_alias: String,
    delivered_to: &'static str,
    secrets: &'static [&'static str],
}

#[test]
fn sigkill_while_postfix_feeds_it_delivers_every_message_exactly_once() {
    const N: usize = 60;
    const KILL_AT: [usize; 3] = [N / 5, N * 9 / 20, N * 7 / 10];
    let started = Instant::now();
    let mut w = World::start();
    let s2 = json(&ok(&w.config, &["seller", "show", "S2", "--json"]));
    let s2_alias = s2["alias"].as_str().unwrap().to_string();
    let s2b1 = json(&ok(&w.config, &["alias", "get", "--seller", "S2", "--buyer", "B1", "--json"]))["alias"]
        .as_str()
        .unwrap()
        .to_string();
    let buyer_secrets: &'static [&'static str] = &["bob@", "buyer-mail"];
    let flows = [
        Flow {
            from: "bob@buyer-mail.example",
            to_alias: w.seller_alias.clone(),
            delivered_to: "cs@seller-corp.example",
            secrets: buyer_secrets,
        },
        Flow {
            from: "carol@carol-mail.example",
            to_alias: w.seller_alias.clone(),
            delivered_to: "cs@seller-corp.example",
            secrets: &["carol"],
        },
        Flow {
            from: "alice@seller-corp.example",
            to_alias: w.s1b1.clone(),
            delivered_to: "bob@buyer-mail.example",
            secrets: &["alice", "seller-corp"],
        },
        Flow {
            from: "alice@seller-corp.example",
            to_alias: w.s1b2.clone(),
            delivered_to: "carol@carol-mail.example",
            secrets: &["alice", "seller-corp"],
        },
        Flow {
            from: "sales@shop2.example",
            to_alias: s2b1.clone(),
            delivered_to: "bob@buyer-mail.example",
            secrets: &["sales@", "shop2"],
        },
        Flow {
            from: "bob@buyer-mail.example",
            to_alias: s2_alias.clone(),
            delivered_to: "cs@shop2.example",
            secrets: buyer_secrets,
        },
    ];
    let mta = sending_mta(w.port());

    // Feed the sending MTA from another thread while this one kills the milter.
    let messages: Vec<(usize, Vec<u8>)> = (0..N)
        .map(|i| {
            let f = &flows[i % flows.len()];
            let domain = f.from.split('@').nth(1).unwrap();
            let msg = message(
                &[
                    ("From", f.from),
                    ("To", &f.to_alias),
                    ("Subject", &format!("Order question FM-{i:03}")),
                    ("Message-ID", &format!("<fm-{i:03}.{}@{domain}>", now())),
                    ("Date", "Mon, 23 Nov 2026 10:00:00 +0000"),
                ],
                &format!("Hello, this is message FM-{i:03}.\r\n"),
            );
            (i, msg)
        })
        .collect();
    let envelopes: Vec<(String, String)> =
        (0..N).map(|i| (flows[i % flows.len()].from.to_string(), flows[i % flows.len()].to_alias.clone())).collect();
    let mta_port = mta.smtp_port();
    let feeder = std::thread::spawn(move || {
        let mut smtp = Smtp::connect(mta_port);
        for (i, msg) in messages {
            let (from, to) = &envelopes[i];
            assert_eq!(smtp.mail_from(from).code, 250);
            assert_eq!(smtp.rcpt_to(to).code, 250);
            let r = smtp.data(&msg);
            assert_eq!(r.code, 250, "the sending MTA refused message {i}: {r}");
        }
        smtp.quit();
    });

    let dir = w.config.parent().unwrap().to_path_buf();
    let mut kills = Vec::new();
    for at in KILL_AT {
        let deadline = Instant::now() + Duration::from_secs(40);
        while w.postfix.delivered().len() < at {
            assert!(Instant::now() < deadline, "stuck before {at} deliveries:\n{}", mta.maillog());
            std::thread::sleep(Duration::from_millis(2));
        }
        w.milter.take().unwrap().kill();
        kills.push(w.postfix.delivered().len());
        std::thread::sleep(Duration::from_millis(300));
        w.milter = Some(Served::start_with(&dir, w.config.clone()));
        mta.flush();
    }
    feeder.join().unwrap();

    let deadline = Instant::now() + Duration::from_secs(45);
    while w.postfix.delivered().len() < N {
        assert!(Instant::now() < deadline, "not all delivered\n--- sending MTA ---\n{}", mta.maillog());
        mta.flush();
        std::thread::sleep(Duration::from_millis(200));
    }
    mta.wait_queue_empty(Duration::from_secs(20));
    w.postfix.wait_queue_empty(Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));
    let got = w.postfix.delivered();

    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for m in &got {
        let marker = marker_of(m);
        let i: usize = marker[3..].parse().unwrap();
        let f = &flows[i % flows.len()];
        assert_eq!(m.rcpt_to, [f.delivered_to], "{marker}");
        assert!(m.mail_from.ends_with("@m.example.com"), "{marker}: envelope sender {}", m.mail_from);
        assert_no_trace(m, f.secrets);
        *seen.entry(marker).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!((got.len(), seen.len()), (N, N), "sent {N}, delivered {}", got.len());
    // Every message recorded once, whatever attempt got through (retries are idempotent).
    let listed = json(&ok(&w.config, &["archive", "list", "--json"]));
    assert_eq!(listed.as_array().unwrap().len(), N);

    let log = mta.maillog();
    let deferred = log.matches("status=deferred").count();
    eprintln!(
        "sigkill under Postfix: {N} sent, {} delivered, {} killed at {kills:?} deliveries, {deferred} deferrals \
         retried by the sending MTA, {:.1}s",
        got.len(),
        KILL_AT.len(),
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// (b) SIGKILL during store commits, many times
// ---------------------------------------------------------------------------------------------

/// One buyer's first contact: the buyer is registered (admin API, one store transaction), writes
/// to the seller (a new pair alias and a message record), and the seller answers (a record on the
/// pair). Each step is acknowledged only when its call returns; a step cut short by the kill is
/// retried after the restart, as Postfix and the back office would.
#[derive(Clone, Debug)]
struct Contact {
    n: usize,
    step: u8,
    /// Pair alias (local part) and relay id of the buyer's message, once acknowledged.
    pair: Option<String>,
    question: Option<String>,
    /// A step found recorded after a kill that cut its acknowledgement off: the retry must get
    /// the same relay id.
    recorded_unacknowledged: Option<String>,
}

impl Contact {
    fn buyer(&self) -> String {
        format!("K{}", self.n)
    }
    fn email(&self) -> String {
        format!("k{}@buyers-{}.example", self.n, self.n % 5)
    }
    /// Original Message-ID of the step's message (without angle brackets).
    fn original_id(&self, sender: Party) -> String {
        match sender {
            Party::Buyer => format!("q{}@buyers-{}.example", self.n, self.n % 5),
            Party::Seller => format!("r{}@shop1.example", self.n),
        }
    }
    fn marker(&self, sender: Party) -> String {
        format!("FM-{}-{}", self.n, if sender == Party::Buyer { "q" } else { "r" })
    }
}

#[derive(Debug)]
struct AckedMessage {
    buyer: String,
    sender: Party,
    original_id: String,
    relay_id: String,
    pair: String,
    marker: String,
}

#[derive(Default)]
struct Ledger {
    next: usize,
    pending: Vec<Contact>,
    buyers: Vec<(String, String)>,
    messages: Vec<AckedMessage>,
    /// Commits the kill cut off from their acknowledgement (recorded, never acknowledged).
    unacknowledged_commits: usize,
}

struct Sockets {
    admin: PathBuf,
    milter: PathBuf,
    seller_alias: String,
}

fn bracketless(s: &str) -> String {
    s.trim().trim_start_matches('<').trim_end_matches('>').to_string()
}

fn header_edit(actions: &[EomAction], name: &str) -> Option<String> {
    actions.iter().find_map(|a| match a {
        EomAction::ChangeHeader { name: n, value, .. } | EomAction::AddHeader { name: n, value }
            if n.to_str().unwrap().eq_ignore_ascii_case(name) =>
        {
            Some(value.to_string_lossy().into_owned())
        }
        _ => None,
    })
}

/// Sends one message over the milter protocol as Postfix would; `Some(actions)` if accepted.
async fn milter_message(
    conn: &mut TestConnection,
    from: &str,
    rcpt: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<Vec<EomAction>> {
    conn.macros(MacroStage::Mail, [("i", "FAULTQ")]).await.ok()?;
    if conn.mail([format!("<{from}>")]).await.ok()? != Status::Continue {
        return None;
    }
    if conn.rcpt([format!("<{rcpt}>")]).await.ok()? != Status::Continue {
        return None;
    }
    for (n, v) in headers {
        conn.header(*n, *v).await.ok()?;
    }
    conn.body(body.to_string()).await.ok()?;
    match conn.eom().await.ok()? {
        (actions, Status::Continue) => Some(actions.actions),
        _ => None,
    }
}

/// Takes the contact one step further; false if the step was not acknowledged.
async fn step(
    s: &Sockets,
    admin: &bsm_milter::admin::client::Client,
    conn: &mut Option<TestConnection>,
    c: &mut Contact,
    ledger: &Mutex<Ledger>,
) -> bool {
    use bsm_milter::admin::client::ClientError;
    if c.step == 0 {
        let body = serde_json::json!({"id": c.buyer(), "email": c.email()});
        match admin.request(hyper::Method::POST, "/v1/buyers", Some(body)).await {
            // 409: committed before a kill cut off the answer.
            Ok(_) | Err(ClientError::Api { status: 409, .. }) => {}
            Err(_) => return false,
        }
        ledger.lock().unwrap().buyers.push((c.buyer(), c.email()));
        c.step = 1;
        return true;
    }
    if conn.is_none() {
        let opened = TestConnection::configure()
            .read_timeout(Duration::from_secs(10))
            .write_timeout(Duration::from_secs(10))
            .open_unix(&s.milter)
            .await;
        match opened {
            Ok(c) => *conn = Some(c),
            Err(_) => return false,
        }
    }
    let sender = if c.step == 1 { Party::Buyer } else { Party::Seller };
    let (marker, original_id) = (c.marker(sender), c.original_id(sender));
    let message_id = format!("<{original_id}>");
    let subject = format!("Question {marker}");
    let accepted = match sender {
        Party::Buyer => {
            let headers = [("From", c.email()), ("Subject", subject), ("Message-ID", message_id)];
            let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            milter_message(
                conn.as_mut().unwrap(),
                &c.email(),
                &s.seller_alias,
                &headers,
                &format!("Hello {marker}\r\n"),
            )
            .await
        }
        Party::Seller => {
            let pair = format!("{}@m.example.com", c.pair.as_ref().unwrap());
            let in_reply_to = format!("<{}>", c.question.as_ref().unwrap());
            let headers = [
                ("From", "sales@shop1.example".to_string()),
                ("Subject", format!("Re: {subject}")),
                ("Message-ID", message_id),
                ("In-Reply-To", in_reply_to),
            ];
            let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            milter_message(
                conn.as_mut().unwrap(),
                "sales@shop1.example",
                &pair,
                &headers,
                &format!("Answer {marker}\r\n"),
            )
            .await
        }
    };
    let Some(actions) = accepted else {
        *conn = None;
        return false;
    };
    let relay_id = bracketless(&header_edit(&actions, "Message-ID").expect("a relay Message-ID"));
    if let Some(before) = c.recorded_unacknowledged.take() {
        assert_eq!(relay_id, before, "{marker}: the retry of a recorded message got another relay id");
    }
    if sender == Party::Buyer {
        let new_sender = actions.iter().find_map(|a| match a {
            EomAction::ChangeSender { mail, .. } => Some(bracketless(&mail.to_string_lossy())),
            _ => None,
        });
        c.pair =
            Some(new_sender.expect("the envelope sender becomes the pair alias").split('@').next().unwrap().into());
        c.question = Some(relay_id.clone());
    }
    ledger.lock().unwrap().messages.push(AckedMessage {
        buyer: c.buyer(),
        sender,
        original_id,
        relay_id,
        pair: c.pair.clone().unwrap(),
        marker,
    });
    c.step += 1;
    true
}

/// Works through pending contacts, then new ones (if `new_ones`), until a step fails.
async fn commit_worker(s: Arc<Sockets>, ledger: Arc<Mutex<Ledger>>, new_ones: bool) {
    let admin = bsm_milter::admin::client::Client::new(bsm_milter::config::Socket::Unix(s.admin.clone()));
    let mut conn = None;
    loop {
        let next = {
            let mut l = ledger.lock().unwrap();
            match l.pending.pop() {
                Some(c) => c,
                None if new_ones => {
                    l.next += 1;
                    Contact { n: l.next, step: 0, pair: None, question: None, recorded_unacknowledged: None }
                }
                None => return,
            }
        };
        let mut c = next;
        while c.step < 3 {
            if !step(&s, &admin, &mut conn, &mut c, &ledger).await {
                ledger.lock().unwrap().pending.push(c);
                return;
            }
        }
    }
}

/// Opens the store and the archive the way a restarted daemon does and checks everything that
/// was acknowledged; notes which cut-off steps were recorded anyway.
fn verify_after_kill(dir: &Path, ledger: &Mutex<Ledger>, cycle: usize) {
    let archive = Arc::new(Archive::new(dir.join("archive")));
    let store = RedbStore::open(&dir.join("store.redb"), archive.clone())
        .unwrap_or_else(|e| panic!("cycle {cycle}: the store does not open after SIGKILL: {e}"));
    let mut l = ledger.lock().unwrap();
    for (id, email) in &l.buyers {
        let b = store.buyer(id).unwrap().unwrap_or_else(|| panic!("cycle {cycle}: acknowledged buyer {id} lost"));
        assert_eq!(b.email.as_str(), email);
    }
    for m in &l.messages {
        let what = format!("cycle {cycle}: acknowledged {}", m.marker);
        let r = store.message(&m.relay_id).unwrap().unwrap_or_else(|| panic!("{what}: record lost"));
        assert_eq!(
            (r.seller.as_str(), r.buyer.as_str(), r.sender, r.decision),
            ("S1", m.buyer.as_str(), m.sender, Decision::Delivered),
            "{what}"
        );
        assert_eq!(r.alias, m.pair, "{what}");
        let owner = AliasOwner::Pair { seller: "S1".into(), buyer: m.buyer.clone() };
        assert_eq!(store.alias_owner(&m.pair).unwrap(), Some(owner), "{what}: pair alias lost");
        assert_eq!(store.pair_alias("S1", &m.buyer).unwrap(), m.pair, "{what}: the pair alias changed");
        let by_original = store.recorded("S1", &m.buyer, m.sender, &m.original_id).unwrap();
        assert_eq!(by_original.map(|r| r.relay_id), Some(m.relay_id.clone()), "{what}: Message-ID map lost");
        let at = r.archive.unwrap_or_else(|| panic!("{what}: no archive reference"));
        let original = archive.read(r.at, &at, Copy::Original).unwrap_or_else(|e| panic!("{what}: original: {e}"));
        assert!(String::from_utf8_lossy(&original).contains(&m.marker), "{what}: wrong original copy");
        let delivered = archive.read(r.at, &at, Copy::Delivered).unwrap_or_else(|e| panic!("{what}: delivered: {e}"));
        assert!(String::from_utf8_lossy(&delivered).contains(&m.relay_id), "{what}: wrong delivered copy");
    }
    let mut cut_off = 0;
    for c in l.pending.iter_mut().filter(|c| c.step > 0) {
        let sender = if c.step == 1 { Party::Buyer } else { Party::Seller };
        if let Some(r) = store.recorded("S1", &c.buyer(), sender, &c.original_id(sender)).unwrap() {
            c.recorded_unacknowledged = Some(r.relay_id);
            cut_off += 1;
        }
    }
    l.unacknowledged_commits += cut_off;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_store_commits_loses_nothing_acknowledged() {
    const CYCLES: usize = 20;
    const WORKERS: usize = 6;
    use rand::Rng;
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    // Every contact ends with a reply of seller S1's: how many there are depends on the machine's
    // speed, and the default daily limit (600) would refuse the replies after that many.
    let config = write_config(&dir, "[policy]\ndaily_limit_base = 1000000\n");
    let start = || tokio::task::block_in_place(|| Served::start_with(&dir, config.clone()));
    let daemon = start();
    let sockets = Arc::new(Sockets {
        admin: daemon.admin_socket.clone(),
        milter: daemon.milter_socket.clone(),
        seller_alias: {
            let s1 = json(&ok(
                &config,
                &[
                    "seller",
                    "add",
                    "S1",
                    "--name",
                    "Shop One",
                    "--service-address",
                    "cs@shop1.example",
                    "--approve",
                    "sales@shop1.example",
                    "--json",
                ],
            ));
            s1["alias"].as_str().unwrap().to_string()
        },
    });
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut daemon = Some(daemon);
    let mut kill_after = Vec::new();
    for cycle in 0..CYCLES {
        let d = daemon.take().unwrap_or_else(start);
        let workers: Vec<_> =
            (0..WORKERS).map(|_| tokio::spawn(commit_worker(sockets.clone(), ledger.clone(), true))).collect();
        let ms = rand::rng().random_range(50..400);
        kill_after.push(ms);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        tokio::task::block_in_place(|| d.kill());
        for w in workers {
            tokio::time::timeout(Duration::from_secs(20), w).await.expect("a worker hung after the kill").unwrap();
        }
        tokio::task::block_in_place(|| verify_after_kill(&dir, &ledger, cycle));
    }
    // Last round, no kill: every cut-off step is retried to completion, then a clean stop.
    let d = start();
    let workers: Vec<_> =
        (0..WORKERS).map(|_| tokio::spawn(commit_worker(sockets.clone(), ledger.clone(), false))).collect();
    for w in workers {
        w.await.unwrap();
    }
    assert!(ledger.lock().unwrap().pending.is_empty(), "steps still failing without a fault");
    assert!(tokio::task::block_in_place(|| d.stop()).success());
    tokio::task::block_in_place(|| verify_after_kill(&dir, &ledger, CYCLES));
    // Exactly one record per message, whatever the number of attempts.
    let archive = Arc::new(Archive::new(dir.join("archive")));
    let store = RedbStore::open(&dir.join("store.redb"), archive.clone()).unwrap();
    let l = ledger.lock().unwrap();
    assert_eq!(store.messages(&MessageFilter::default()).unwrap().len(), l.messages.len());
    eprintln!(
        "sigkill during commits: {CYCLES} kills after {kill_after:?} ms; {} buyers, {} messages acknowledged and \
         found; {} commits recorded but cut off before their answer (retried: same ids); {:.1}s",
        l.buyers.len(),
        l.messages.len(),
        l.unacknowledged_commits,
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// (c) a full archive, a store that cannot write
// ---------------------------------------------------------------------------------------------

fn question(w: &World, n: u32) -> Vec<u8> {
    message(
        &[
            ("From", "bob@buyer-mail.example"),
            ("To", &w.seller_alias),
            ("Subject", &format!("Is there room? FM-{n:03}")),
            ("Message-ID", &format!("<room-{n}@buyer-mail.example>")),
        ],
        &format!("Is there room for FM-{n:03}?\r\n"),
    )
}

fn answer(w: &World, n: u32) -> Vec<u8> {
    message(
        &[
            ("From", "alice@seller-corp.example"),
            ("To", &w.s1b1),
            ("Subject", &format!("Re: room FM-{n:03}")),
            ("Message-ID", &format!("<room-{n}@seller-corp.example>")),
        ],
        &format!("There is room, FM-{n:03}.\r\n"),
    )
}

/// Sends the question (buyer -> seller) and the answer (seller -> buyer); their final replies.
fn send_both(w: &World, n: u32) -> [(u16, String); 2] {
    let (_, r1, d1) = send(w.port(), "bob@buyer-mail.example", &[&w.seller_alias], &question(w, n));
    let (m2, r2, d2) = send(w.port(), "alice@seller-corp.example", &[&w.s1b1], &answer(w, n + 1));
    let log = w.milter.as_ref().map(|m| m.log_text()).unwrap_or_default();
    assert_eq!((r1[0].code, r2[0].code), (250, 250), "{m2} / {}\n{log}", r2[0]);
    [d1, d2].map(|d| d.map(|d| (d.code, d.text)).unwrap())
}

fn assert_tempfails(replies: [(u16, String); 2]) {
    for r in replies {
        assert_eq!((r.0, r.1.as_str()), TEMPFAIL);
    }
}

/// After the fault: the same process still serves, nothing more was delivered; then, the fault
/// fixed, the same messages (Postfix's retries) are delivered once each and archived readably.
fn recovers(w: &mut World, n: u32, fix: impl FnOnce()) {
    let milter = w.milter.as_mut().unwrap();
    assert!(milter.is_running(), "the milter died: {}", milter.log_text());
    let before = w.postfix.delivered().len();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(w.postfix.delivered().len(), before, "delivered during the fault");
    fix();
    for (code, text) in send_both(w, n) {
        let log = w.milter.as_ref().unwrap().log_text();
        assert_eq!(code, 250, "after the fault: {code} {text}\n{log}");
    }
    w.postfix.wait_delivered(before + 2, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));
    let got = w.postfix.delivered().split_off(before);
    let mut markers: Vec<String> = got.iter().map(marker_of).collect();
    markers.sort();
    assert_eq!(markers, [format!("FM-{n:03}"), format!("FM-{:03}", n + 1)], "delivered more than once?");
    for m in &got {
        let secrets: &[&str] =
            if m.rcpt_to == ["bob@buyer-mail.example"] { &["alice", "seller-corp"] } else { &["bob@", "buyer-mail"] };
        assert_no_trace(m, secrets);
    }
    // One record each, and each archived copy reads back whole: what was sent, no more.
    let listed = json(&ok(&w.config, &["archive", "list", "--json"]));
    for (k, sent) in [(n, question(w, n)), (n + 1, answer(w, n + 1))] {
        let marker = format!("FM-{k:03}");
        let records: Vec<_> = listed
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["subject"].as_str().is_some_and(|s| s.contains(&marker)))
            .collect();
        assert_eq!(records.len(), 1, "{marker}: {listed}");
        let id = records[0]["id"].as_str().unwrap();
        let original = ok(&w.config, &["archive", "show", id, "--original"]);
        let sent = String::from_utf8(sent).unwrap();
        let (sent_head, sent_body) = sent.split_once("\r\n\r\n").unwrap();
        let whole = original.matches("Subject:").count() == 1
            && original.starts_with(sent_head.lines().next().unwrap())
            && original.ends_with(sent_body);
        assert!(whole, "archived original of {marker} is not what was sent:\n{original:?}");
        let delivered = ok(&w.config, &["archive", "show", id, "--delivered"]);
        assert!(delivered.contains(sent_body.trim_end()), "archived delivered copy of {marker}:\n{delivered}");
    }
}

#[test]
fn a_full_archive_tempfails_and_the_milter_recovers() {
    let started = Instant::now();
    let mut w = World::start();
    let archive = w.config.parent().unwrap().join("archive");
    std::fs::create_dir_all(&archive).unwrap();
    // Today's segment on a device that is always full: every append fails with ENOSPC.
    let segments = segments_around(&archive, now());
    for s in &segments {
        std::os::unix::fs::symlink("/dev/full", s).unwrap();
    }
    assert_tempfails(send_both(&w, 1));
    assert_tempfails(send_both(&w, 1)); // Postfix's retry, still full
    let log = w.milter.as_ref().unwrap().log_text();
    assert!(log.contains("archive") && log.contains("No space left on device"), "{log}");
    recovers(&mut w, 1, || {
        for s in &segments {
            std::fs::remove_file(s).unwrap();
        }
    });
    eprintln!("full archive: 4 tempfails, 0 delivered, then 2 delivered; {:.1}s", started.elapsed().as_secs_f64());
}

#[test]
fn an_archive_append_cut_short_by_a_full_disk_tempfails_and_later_copies_stay_whole() {
    let started = Instant::now();
    let mut w = World::start();
    let pid = w.milter.as_ref().unwrap().pid();
    let archive = w.config.parent().unwrap().join("archive");
    // The disk fills up 100 bytes into the next append: part of it is written, then ENOSPC
    // (here EFBIG, from a file-size limit on the daemon).
    for (code, text) in send_both(&w, 90) {
        assert_eq!(code, 250, "{text}");
    }
    w.postfix.wait_delivered(2, Duration::from_secs(30));
    let segment = segments_around(&archive, now()).into_iter().find(|s| s.exists()).unwrap();
    let end = frames_end(&segment);
    assert!(std::fs::metadata(&segment).unwrap().len() > end, "no zeros written ahead of the frames");
    set_file_size_limit(pid, Some(end + 100));
    assert_tempfails(send_both(&w, 1));
    let log = w.milter.as_ref().unwrap().log_text();
    assert!(log.contains("archive") && log.contains("File too large"), "{log}");
    // What the append wrote was cut off again, with the zeros after it: frames follow each other.
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), end, "the cut-short append was left in the segment");
    recovers(&mut w, 1, || set_file_size_limit(pid, None));
    eprintln!("archive append cut short: 2 tempfails, then 2 delivered whole; {:.1}s", started.elapsed().as_secs_f64());
}

/// Sends question `q` and answer `a`: each is refused with a tempfail, at whatever stage.
fn tempfail_both(w: &World, q: u32, a: u32) {
    for (from, rcpt, msg) in [
        ("bob@buyer-mail.example", &w.seller_alias, question(w, q)),
        ("alice@seller-corp.example", &w.s1b1, answer(w, a)),
    ] {
        let (mail, rcpts, data) = send(w.port(), from, &[rcpt], &msg);
        let refused = match &data {
            Some(d) => d,
            None if rcpts[0].is_transient() => &rcpts[0],
            None => &mail,
        };
        assert_eq!((refused.code, refused.text.as_str()), TEMPFAIL, "{mail} / {} / {data:?}", rcpts[0]);
    }
}

/// Longer than the store's checkpoint interval (1 s).
const CHECKPOINT: Duration = Duration::from_millis(1_200);

#[test]
fn a_store_that_cannot_write_tempfails_and_the_milter_recovers() {
    let started = Instant::now();
    let mut w = World::start();
    let pid = w.milter.as_ref().unwrap().pid();
    let store = w.config.parent().unwrap().join("store.redb");
    // Every write past the first 16 KiB of a file fails (EFBIG, as ENOSPC would on a full disk):
    // today's archive segment (a few KiB) is still written, the store's commits are not.
    const LIMIT: u64 = 16 * 1024;
    let store_len = std::fs::metadata(&store).unwrap().len();
    assert!(store_len > 4 * LIMIT, "the store file is only {store_len} bytes: the limit would not bite");
    set_file_size_limit(pid, Some(LIMIT));
    // Messages are journaled in the archive; the store writes its own file at a checkpoint, at
    // most a second after the last one, and a message whose commit carries it tempfails.
    std::thread::sleep(CHECKPOINT);
    // The failed commit closes the database; while it cannot be reopened, later messages
    // tempfail as early as MAIL FROM.
    tempfail_both(&w, 1, 2);
    // The admin API fails cleanly too, and applies nothing.
    let err = support::process::fails(&w.config, &["buyer", "add", "B9", "--email", "dana@dana-mail.example"]);
    assert!(err.contains("store"), "{err}");
    let log = w.milter.as_ref().unwrap().log_text();
    assert!(log.contains(": store: ") && log.contains("temporary failure"), "{log}");
    recovers(&mut w, 1, || set_file_size_limit(pid, None));
    // The store is writable again, for the admin API as well (the failed add applied nothing).
    ok(&w.config, &["buyer", "add", "B9", "--email", "dana@dana-mail.example"]);

    // Unwritable: the store file made immutable. The failed commit closes the database, and it
    // cannot be reopened for writing: later messages tempfail as early as MAIL FROM.
    let Some(immutable) = Immutable::set(&store) else {
        eprintln!("store cannot write: no immutable flag on this file system, unwritable case skipped");
        return;
    };
    std::thread::sleep(CHECKPOINT);
    tempfail_both(&w, 3, 4);
    recovers(&mut w, 3, || drop(immutable));
    eprintln!(
        "store cannot write: full: 2 tempfails, then 2 delivered; immutable: 2 tempfails, then 2 delivered; {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// (d) SIGTERM under load
// ---------------------------------------------------------------------------------------------

#[test]
fn sigterm_under_load_finishes_every_message_in_flight_and_exits_0() {
    const SESSIONS: usize = 20;
    let started = Instant::now();
    let mut w = World::start();
    let ready = Arc::new(Barrier::new(SESSIONS + 1));
    let go = Arc::new(Barrier::new(SESSIONS + 1));
    let sessions: Vec<_> = (0..SESSIONS)
        .map(|i| {
            let (from, rcpt) = if i % 2 == 0 {
                ("bob@buyer-mail.example", w.seller_alias.clone())
            } else {
                ("alice@seller-corp.example", w.s1b1.clone())
            };
            let msg = message(
                &[
                    ("From", from),
                    ("To", &rcpt),
                    ("Subject", &format!("In flight FM-{i:03}")),
                    ("Message-ID", &format!("<term-{i}@{}>", from.split('@').nth(1).unwrap())),
                ],
                &format!("First half of FM-{i:03}.\r\n{}Second half.\r\n", "Some more text.\r\n".repeat(50)),
            );
            let (port, ready, go) = (w.port(), ready.clone(), go.clone());
            std::thread::spawn(move || {
                let mut smtp = Smtp::connect(port);
                assert_eq!(smtp.mail_from(from).code, 250);
                assert_eq!(smtp.rcpt_to(&rcpt).code, 250);
                assert_eq!(smtp.command("DATA").code, 354);
                // The headers and part of the body now, the rest once SIGTERM has arrived.
                let cut = msg.windows(12).position(|w| w == b"Second half.").unwrap();
                smtp.send_raw(&msg[..cut]);
                ready.wait();
                go.wait();
                smtp.send_raw(&msg[cut..]);
                smtp.send_raw(b".\r\n");
                let reply = smtp.reply("end of data");
                smtp.quit();
                reply
            })
        })
        .collect();
    ready.wait();
    std::thread::sleep(Duration::from_millis(300));
    let milter = w.milter.take().unwrap();
    milter.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !milter.log_text().contains("shutting down") {
        assert!(Instant::now() < deadline, "no shutdown: {}", milter.log_text());
        std::thread::sleep(Duration::from_millis(10));
    }
    // A new session now: the milter takes no new connection, Postfix tempfails before DATA.
    let late = message(&[("From", "carol@carol-mail.example"), ("Subject", "late")], "late\r\n");
    let (mail, rcpts, data) = send(w.port(), "carol@carol-mail.example", &[&w.seller_alias], &late);
    assert!(mail.is_transient() || rcpts[0].is_transient(), "a new session was let in: {mail} / {}", rcpts[0]);
    assert!(data.is_none());
    go.wait();
    for (i, s) in sessions.into_iter().enumerate() {
        let reply = s.join().unwrap();
        assert_eq!(reply.code, 250, "session {i}: {reply}");
    }
    let log = milter.log_text();
    let status = milter.wait(Duration::from_secs(40));
    assert_eq!(status.code(), Some(0), "{status:?}\n{log}");
    assert!(log.contains(&format!("shutting down: {SESSIONS} message(s) in flight")), "{log}");
    let got = w.postfix.wait_delivered(SESSIONS, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(w.postfix.delivered().len(), SESSIONS);
    let mut markers: Vec<String> = got.iter().map(marker_of).collect();
    markers.sort();
    markers.dedup();
    assert_eq!(markers.len(), SESSIONS);
    for m in &got {
        let secrets: &[&str] =
            if m.rcpt_to == ["bob@buyer-mail.example"] { &["alice", "seller-corp"] } else { &["bob@", "buyer-mail"] };
        assert_no_trace(m, secrets);
    }
    eprintln!(
        "sigterm under load: {SESSIONS} sessions mid-DATA, {SESSIONS} x 250 and delivered, 1 late session \
         tempfailed ({}), exit 0; {:.1}s",
        mail.code,
        started.elapsed().as_secs_f64()
    );
}
