//! Archive retention: records and files older than `retention_days` go,
//! whole UTC days at a time; younger ones stay.

use bsm_milter::SharedConfig;
use bsm_milter::address::Address;
use bsm_milter::admin::api::ApiState;
use bsm_milter::admin::messages::run_purge;
use bsm_milter::config::Config;
use bsm_milter::metrics::ops::OpsMetrics;
use bsm_milter::store::archive::{Archive, Copy};
use bsm_milter::store::{Decision, MessageFilter, NewBuyer, NewMessage, NewSeller, Party, Recorded, RedbStore, Store};
use std::sync::Arc;

const DAY: u64 = 86_400;
const NOW: u64 = 20_780 * DAY + 3600;

#[tokio::test]
async fn purge_removes_whole_days_older_than_retention() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::parse(&format!(
        "[relay]\ndomain = \"m.example.com\"\n[store]\npath = \"{0}/s.redb\"\n[archive]\ndir = \"{0}/archive\"\nretention_days = 90\n",
        dir.path().display()
    ))
    .unwrap();
    let archive = Arc::new(Archive::new(config.archive.dir.clone()));
    let store = Arc::new(RedbStore::open(&config.store.path, archive.clone()).unwrap());
    let a = |s: &str| Address::parse(s).unwrap();
    store
        .add_seller(NewSeller {
            id: "S1".into(),
            name: "S".into(),
            service_address: a("cs@s.example"),
            approved_addresses: vec![],
        })
        .unwrap();
    store.add_buyer(NewBuyer { id: "B1".into(), email: a("b@b.example"), name: None }).unwrap();
    // Retention keeps today and the 90 UTC days before it: 91 and 90.5 days old
    // fall on earlier days and go; 89 days old stays.
    let mut locations = Vec::new();
    for (i, age) in [(0, 91 * DAY), (1, 90 * DAY + DAY / 2), (2, 89 * DAY), (3, 0)] {
        let at = NOW - age;
        let located = archive.write(at, &[b"x"], None).unwrap();
        locations.push((at, located));

        let id = format!("m{i}@b.example");
        let r = store
            .record_message(&NewMessage {
                seller: "S1",
                buyer: "B1",
                sender: Party::Buyer,
                original_id: Some(&id),
                relay_domain: "m.example.com",
                at,
                decision: Decision::Delivered,
                order: None,
                subject: None,
                allowance: None,
                archive: Some(located),
                auto_submitted: false,
                answers: &[],
                relay_id: None,
                token: None,
                removed: Default::default(),
                reason: None,
                notice: false,
            })
            .unwrap();
        assert!(matches!(r, Recorded::Done { .. }));
    }
    let st = ApiState {
        store: store.clone(),
        config: SharedConfig::new(config, None),
        ops: Arc::new(OpsMetrics::default()),
        archive: archive.clone(),
    };
    let (records, files) = run_purge(&st, 90, NOW).await.map_err(|e| e.1).unwrap();
    // Two records, one day segment (both fall on the same UTC day).
    assert_eq!((records, files), (2, 1));
    let left: Vec<u64> =
        store.messages(&MessageFilter::default()).unwrap().iter().map(|r| (NOW - r.at) / 3600).collect();
    assert_eq!(left, [89 * 24, 0]);
    assert!(archive.read(locations[0].0, &locations[0].1, Copy::Original).is_err());
    assert!(archive.read(locations[2].0, &locations[2].1, Copy::Original).is_ok());
    // Retention 0 keeps everything.
    assert_eq!(run_purge(&st, 0, NOW + 1000 * DAY).await.map_err(|e| e.1).unwrap(), (0, 0));
}
