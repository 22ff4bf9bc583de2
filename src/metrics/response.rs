//! Sellers' response-time metrics (DESIGN §2.6, seeds 002 and 004): over 7, 30
//! and 90 days, how many buyer messages were answered within 24 hours (target:
//! over 90 %), late (target ≤ 10 %), marked "no response needed", or left
//! unanswered past 24 hours.

use crate::store::{Decision, MessageRecord, Party};
use serde::Serialize;

pub const DAY: u64 = 86_400;
pub const WINDOWS: [(&str, u64); 3] = [("7d", 7), ("30d", 30), ("90d", 90)];

/// One window's figures. `received` counts every buyer message (automatic ones
/// excluded); each is exactly one of the four outcomes or still `open` (under
/// 24 hours old and unanswered).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Window {
    pub received: u64,
    pub answered_within_24h: u64,
    pub answered_late: u64,
    pub no_response_needed: u64,
    pub unanswered_over_24h: u64,
    pub open: u64,
    /// Mean time to the first reply over answered messages; `None` if none.
    pub avg_response_secs: Option<u64>,
}

/// The figures for buyer messages received in `(now - days, now]`.
pub fn window(records: &[MessageRecord], now: u64, days: u64) -> Window {
    let since = now.saturating_sub(days * DAY);
    let mut w = Window::default();
    let mut total_response = 0u64;
    let buyer_messages = records.iter().filter(|r| {
        r.sender == Party::Buyer
            && r.decision == Decision::Delivered
            && !r.auto_submitted
            && r.at > since
            && r.at <= now
    });
    for r in buyer_messages {
        w.received += 1;
        match r.answered_at {
            Some(t) => {
                let secs = t.saturating_sub(r.at);
                total_response += secs;
                if secs <= DAY {
                    w.answered_within_24h += 1;
                } else {
                    w.answered_late += 1;
                }
            }
            None if r.no_response_needed => w.no_response_needed += 1,
            None if now - r.at > DAY => w.unanswered_over_24h += 1,
            None => w.open += 1,
        }
    }
    let answered = w.answered_within_24h + w.answered_late;
    w.avg_response_secs = (answered > 0).then(|| (total_response + answered / 2) / answered);
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 20_780 * DAY + 12 * 3600;

    fn buyer_msg(age: u64, answered_after: Option<u64>) -> MessageRecord {
        MessageRecord {
            answered_at: answered_after.map(|a| NOW - age + a),
            ..MessageRecord::sample(&format!("r{age}"), Party::Buyer, NOW - age)
        }
    }

    #[test]
    fn the_24_hour_boundary_is_inclusive() {
        let records = [buyer_msg(3 * DAY, Some(DAY)), buyer_msg(3 * DAY, Some(DAY + 1))];
        let w = window(&records, NOW, 7);
        assert_eq!((w.answered_within_24h, w.answered_late), (1, 1));
        assert_eq!(w.avg_response_secs, Some(DAY + 1)); // (86400 + 86401) / 2, rounded
    }

    #[test]
    fn every_message_lands_in_exactly_one_bucket() {
        let mut nrn = buyer_msg(2 * DAY, None);
        nrn.no_response_needed = true;
        let mut answered_and_marked = buyer_msg(2 * DAY, Some(3600));
        answered_and_marked.no_response_needed = true;
        let records = vec![
            buyer_msg(5 * DAY, Some(600)),     // within
            buyer_msg(5 * DAY, Some(2 * DAY)), // late
            nrn,                               // no response needed
            answered_and_marked,               // an answer counts as an answer
            buyer_msg(DAY + 1, None),          // unanswered over 24 h
            buyer_msg(DAY, None),              // exactly 24 h old: still open
            buyer_msg(3600, None),             // open
        ];
        let w = window(&records, NOW, 7);
        assert_eq!(w.received, 7);
        assert_eq!(
            (w.answered_within_24h, w.answered_late, w.no_response_needed, w.unanswered_over_24h, w.open),
            (2, 1, 1, 1, 2)
        );
        let sum = w.answered_within_24h + w.answered_late + w.no_response_needed + w.unanswered_over_24h + w.open;
        assert_eq!(sum, w.received);
        assert_eq!(w.avg_response_secs, Some((600 + 2 * DAY + 3600) / 3));
    }

    #[test]
    fn windows_and_exclusions() {
        let mut auto = buyer_msg(DAY, None);
        auto.auto_submitted = true;
        let mut seller_msg = buyer_msg(DAY, None);
        seller_msg.sender = Party::Seller;
        let mut blocked = buyer_msg(DAY, None);
        blocked.decision = Decision::Blocked;
        let records = vec![
            buyer_msg(6 * DAY, None),
            buyer_msg(20 * DAY, None),
            buyer_msg(60 * DAY, None),
            buyer_msg(91 * DAY, None),
            auto,
            seller_msg,
            blocked,
        ];
        let received: Vec<u64> = WINDOWS.iter().map(|(_, d)| window(&records, NOW, *d).received).collect();
        assert_eq!(received, [1, 2, 3]);
        assert_eq!(window(&[], NOW, 7), Window::default());
        assert_eq!(window(&records, NOW, 7).avg_response_secs, None);
    }
}
