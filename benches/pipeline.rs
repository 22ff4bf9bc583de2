//! The end-of-message pipeline as the milter runs it (parse, decide, sanitize,
//! rewrite, archive, record — durably, so each iteration pays its fsyncs), and
//! the store operations it leans on. `cargo bench --bench pipeline`.

use base64::Engine as _;
use bsm_milter::address::Address;
use bsm_milter::clock::SystemClock;
use bsm_milter::config::Config;
use bsm_milter::metrics::ops::OpsMetrics;
use bsm_milter::policy::Target;
use bsm_milter::relay::{Incoming, Relay, Verdict};
use bsm_milter::rewrite::RawHeader;
use bsm_milter::store::archive::Archive;
use bsm_milter::store::{NewBuyer, NewSeller, Party, RedbStore, Store};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Arc;

fn split(raw: &[u8]) -> (Vec<RawHeader>, Vec<u8>) {
    let at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..at]).into_owned();
    let mut headers: Vec<RawHeader> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            let last = headers.last_mut().unwrap();
            last.value.push('\n');
            last.value.push_str(line);
        } else if let Some((n, v)) = line.split_once(':') {
            headers.push(RawHeader::new(n, v.trim_start()));
        }
    }
    // Seller mail: From must be an approved address.
    for h in headers.iter_mut().filter(|h| h.name.eq_ignore_ascii_case("from")) {
        h.value = "sales@shop.example".into();
    }
    headers.retain(|h| !h.name.eq_ignore_ascii_case("message-id"));
    (headers, raw[at + 4..].to_vec())
}

fn corpus(name: &str) -> Vec<u8> {
    let raw = std::fs::read(format!("{}/tests/corpus/{name}.eml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    // CRLF, as over SMTP.
    String::from_utf8_lossy(&raw).replace("\r\n", "\n").replace('\n', "\r\n").into_bytes()
}

fn with_5mb_attachment() -> Vec<u8> {
    let mut data = b"%PDF-1.7\n".to_vec();
    data.resize(5 * 1024 * 1024, b'x');
    let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
    let wrapped: String = b64.as_bytes().chunks(76).map(|c| format!("{}\r\n", String::from_utf8_lossy(c))).collect();
    format!(
        "From: sales@shop.example\r\nSubject: catalogue\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nThe catalogue.\r\n--b\r\nContent-Type: application/pdf; name=\"catalogue.pdf\"\r\n\
         Content-Disposition: attachment; filename=\"catalogue.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{wrapped}--b--\r\n"
    )
    .into_bytes()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::parse(&format!(
        "[relay]\ndomain = \"m.example.com\"\n[store]\npath = \"{0}/s.redb\"\n[archive]\ndir = \"{0}/archive\"\n\
         [policy]\ndaily_limit_base = 1000000000\n",
        dir.path().display()
    ))
    .unwrap();
    let archive = Arc::new(Archive::new(config.archive.dir.clone()));
    let store = Arc::new(RedbStore::open(&config.store.path, archive.clone()).unwrap());
    let a = |s: &str| Address::parse(s).unwrap();
    store
        .add_seller(NewSeller {
            id: "S1".into(),
            name: "Shop".into(),
            service_address: a("cs@shop.example"),
            approved_addresses: vec![a("sales@shop.example")],
        })
        .unwrap();
    store.add_buyer(NewBuyer { id: "B1".into(), email: a("bob@buyer.example"), name: None }).unwrap();
    let pair = store.pair_alias("S1", "B1").unwrap();
    let relay = Relay {
        archive,
        config: Arc::new(config),
        store: store.clone(),
        clock: Arc::new(SystemClock),
        ops: Arc::new(OpsMetrics::default()),
        dkim: None,
        verifier: None,
        authres_marker: "bench".into(),
    };
    let seller_to_buyer = Target::Conversation { from: Party::Seller, seller: "S1".into(), buyer: "B1".into() };
    let rcpts = vec![format!("<{pair}@m.example.com>")];

    let mut g = c.benchmark_group("end_of_message");
    g.sample_size(20);
    for (name, raw) in [
        ("text_2kb", corpus("clean_text")),
        ("html_20kb_trackers", corpus("marketing")),
        ("attachment_5mb", with_5mb_attachment()),
    ] {
        let (headers, body) = split(&raw);
        let pairs: Vec<(&str, &str)> = headers.iter().map(|h| (h.name.as_str(), h.value.as_str())).collect();
        let mut buffer = bsm_milter::content::prelude(&pairs);
        let prelude_len = buffer.len();
        buffer.extend_from_slice(&body);
        g.throughput(Throughput::Bytes(raw.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let v = relay
                    .end_of_message(&Incoming {
                        target: &seller_to_buyer,
                        rcpts: &rcpts,
                        headers: &headers,
                        body: &buffer[prelude_len..],
                        raw: &buffer,
                        prelude_len,
                        auth: None,
                    })
                    .unwrap();
                assert!(matches!(v, Verdict::Deliver { .. }), "{v:?}");
                black_box(v)
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("store");
    g.bench_function("alias_lookup", |b| b.iter(|| black_box(store.alias_owner(&pair).unwrap())));
    g.bench_function("daily_limit_check", |b| b.iter(|| black_box(relay.check_daily_limit("S1").unwrap())));
    let mut n = 0u64;
    g.sample_size(20);
    g.bench_function("pair_creation", |b| {
        b.iter(|| {
            n += 1;
            let id = format!("PB{n}");
            store.add_buyer(NewBuyer { id: id.clone(), email: a(&format!("p{n}@b.example")), name: None }).unwrap();
            black_box(store.pair_alias("S1", &id).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
