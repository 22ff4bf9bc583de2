//! The daily limit against an injected clock: the UTC day boundary and the
//! order-based allowance, driven over the milter protocol.

mod support;

use indymilter_test::{MacroStage, Status, TestConnection};
use serde_json::json;
use std::sync::Arc;
use support::daemon::{TestClock, TestDaemon};

const DAY: u64 = 86_400;
/// 2026-11-23 00:00:00 UTC.
const TODAY: u64 = 20_780 * DAY;

/// One seller message to B1 through the milter; the RCPT status if refused there, else the EOM status.
async fn seller_message(d: &TestDaemon, pair_alias: &str, n: u32) -> Status {
    let mut conn = TestConnection::configure().open_tcp(d.milter).await.unwrap();
    conn.macros(MacroStage::Mail, [("i", "Q")]).await.unwrap();
    conn.mail(["<sales@shop1.example>"]).await.unwrap();
    let rcpt = conn.rcpt([format!("<{pair_alias}>")]).await.unwrap();
    if rcpt != Status::Continue {
        return rcpt;
    }
    conn.header("From", "sales@shop1.example").await.unwrap();
    conn.header("Message-ID", format!("<n{n}@shop1.example>")).await.unwrap();
    let (_, status) = conn.eom().await.unwrap();
    conn.close().await.unwrap();
    status
}

fn message(status: &Status) -> String {
    match status {
        Status::Tempfail { message: Some(m) } => m.to_string_lossy().into_owned(),
        other => panic!("expected a 4xx reply, got {other:?}"),
    }
}

#[tokio::test]
async fn limit_resets_at_utc_midnight() {
    let clock = TestClock::at(TODAY + DAY - 90); // 23:58:30
    let d =
        TestDaemon::start_with("[policy]\ndaily_limit_base = 2\ndaily_limit_per_order = 0\n", clock.clone() as Arc<_>)
            .await;
    let p = d.parties().await;
    assert_eq!(seller_message(&d, &p.s1b1, 1).await, Status::Continue);
    assert_eq!(seller_message(&d, &p.s1b1, 2).await, Status::Continue);
    let refused = seller_message(&d, &p.s1b1, 3).await;
    assert_eq!(
        message(&refused),
        "450 4.7.1 Daily limit of 2 messages to buyers reached for your seller account; it resets at 00:00 UTC (in 0h 01m). Your mail server will retry."
    );
    // One second before midnight: still the same day.
    clock.set(TODAY + DAY - 1);
    assert!(matches!(seller_message(&d, &p.s1b1, 3).await, Status::Tempfail { .. }));
    // Midnight: a new day, a fresh allowance.
    clock.set(TODAY + DAY);
    assert_eq!(seller_message(&d, &p.s1b1, 3).await, Status::Continue);
    assert_eq!(seller_message(&d, &p.s1b1, 4).await, Status::Continue);
    assert!(matches!(seller_message(&d, &p.s1b1, 5).await, Status::Tempfail { .. }));
    // Another seller has its own allowance.
    d.stop().await;
}

#[tokio::test]
async fn orders_in_the_window_raise_the_limit() {
    let clock = TestClock::at(TODAY + 3600);
    // limit = 1 + 30 × orders / 30 days = 1 + orders in the last 30 full days.
    let d = TestDaemon::start_with(
        "[policy]\ndaily_limit_base = 1\ndaily_limit_per_order = 30\ndaily_limit_window_days = 30\n",
        clock.clone() as Arc<_>,
    )
    .await;
    let p = d.parties().await;
    for (id, created) in [("O1", TODAY - DAY), ("O2", TODAY - 30 * DAY), ("O3", TODAY - 31 * DAY), ("O4", TODAY + 60)] {
        d.post("/v1/orders", json!({"id": id, "seller": "S1", "buyer": "B1", "created_at": created})).await;
    }
    // O1 and O2 are in the window; O3 is too old; O4 is today's and counts from tomorrow.
    for n in 0..3 {
        assert_eq!(seller_message(&d, &p.s1b1, n).await, Status::Continue, "message {n}");
    }
    assert!(message(&seller_message(&d, &p.s1b1, 3).await).contains("Daily limit of 3 messages"));
    d.stop().await;
}
