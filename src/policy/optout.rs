//! Buyer opt-out (DESIGN §2.2, seeds 000–002): a seller's message to a buyer
//! who opted out is blocked unless it is critical to completing the order.

use crate::store::{Order, Party, Reference};
use regex::Regex;

/// Why a seller's message reaches an opted-out buyer anyway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exemption {
    /// A reply in a thread the buyer started.
    BuyerThread,
    /// The subject carries a critical marker such as `[Important]`.
    CriticalMarker,
    /// The order concerned is in an exempt category (handmade, wine, custom…).
    ExemptCategory,
}

impl Exemption {
    pub fn reason(self) -> &'static str {
        match self {
            Exemption::BuyerThread => "reply in the buyer's thread",
            Exemption::CriticalMarker => "critical marker",
            Exemption::ExemptCategory => "exempt order category",
        }
    }
}

/// The facts the rule looks at; nothing else the sender controls counts.
pub struct Facts<'a> {
    /// The decoded subject.
    pub subject: Option<&'a str>,
    /// The message replies to (or references) a message this buyer sent this seller.
    pub in_buyer_thread: bool,
    /// Category of the order concerned.
    pub category: Option<&'a str>,
}

/// `Some(exemption)` lets the message through; `None` blocks it.
pub fn decide(facts: &Facts<'_>, markers: &[String], exempt_categories: &[String]) -> Option<Exemption> {
    if facts.in_buyer_thread {
        Some(Exemption::BuyerThread)
    } else if facts.subject.is_some_and(|s| has_critical_marker(s, markers)) {
        Some(Exemption::CriticalMarker)
    } else if facts.category.is_some_and(|c| exempt_categories.iter().any(|e| e.eq_ignore_ascii_case(c))) {
        Some(Exemption::ExemptCategory)
    } else {
        None
    }
}

/// Case-insensitive (Unicode) search for any marker, anywhere in the subject.
pub fn has_critical_marker(subject: &str, markers: &[String]) -> bool {
    let subject = subject.to_lowercase();
    markers.iter().any(|m| subject.contains(&m.to_lowercase()))
}

/// Whether any referenced id is a relay id of a message this buyer sent this seller.
pub fn in_buyer_thread(refs: &[Reference], seller: &str, buyer: &str) -> bool {
    refs.iter()
        .filter_map(|r| r.by_relay_id.as_ref())
        .any(|l| l.sender == Party::Buyer && l.seller == seller && l.buyer == buyer)
}

/// The order a message concerns: the first order id in the subject that belongs
/// to this pair, else the pair's most recent order. `orders` are the pair's,
/// oldest first.
pub fn order_concerned<'a>(subject: Option<&str>, orders: &'a [Order], pattern: &Regex) -> Option<&'a Order> {
    subject
        .into_iter()
        .flat_map(|s| pattern.find_iter(s))
        .find_map(|m| orders.iter().find(|o| o.id == m.as_str()))
        .or_else(|| orders.last())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MessageLink;

    fn markers() -> Vec<String> {
        ["[Important]", "[중요]", "[重要]"].map(String::from).to_vec()
    }

    fn facts(subject: &str) -> Facts<'_> {
        Facts { subject: Some(subject), in_buyer_thread: false, category: None }
    }

    #[test]
    fn critical_markers_anywhere_any_case() {
        let exempt = ["handmade".to_string()];
        for s in [
            "[Important] delivery date",
            "Re: [IMPORTANT] address",
            "주문 [중요] 배송",
            "ご注文 [重要]",
            "x [important]",
        ] {
            assert_eq!(decide(&facts(s), &markers(), &exempt), Some(Exemption::CriticalMarker), "{s}");
        }
        for s in ["Important: new products", "[Imp0rtant]", "중요", "Sale! 50% off", ""] {
            assert_eq!(decide(&facts(s), &markers(), &exempt), None, "{s}");
        }
        // Unicode case folding, not just ASCII.
        assert!(has_critical_marker("[ÉTÉ] soldes", &["[été]".to_string()]));
    }

    #[test]
    fn buyer_thread_and_exempt_category_let_messages_through() {
        let f = Facts { subject: Some("Thanks!"), in_buyer_thread: true, category: None };
        assert_eq!(decide(&f, &markers(), &[]), Some(Exemption::BuyerThread));
        let f = Facts { subject: Some("Your order"), in_buyer_thread: false, category: Some("Wine") };
        assert_eq!(decide(&f, &markers(), &["wine".into()]), Some(Exemption::ExemptCategory));
        let f = Facts { subject: Some("Your order"), in_buyer_thread: false, category: Some("books") };
        assert_eq!(decide(&f, &markers(), &["wine".into()]), None);
    }

    fn link(sender: Party, buyer: &str) -> Reference {
        let l = MessageLink {
            relay_id: "r".into(),
            original_id: None,
            seller: "S1".into(),
            buyer: buyer.into(),
            sender,
            at: 0,
        };
        Reference { id: "r".into(), by_relay_id: Some(l), by_original_id: None }
    }

    #[test]
    fn only_the_buyers_own_messages_start_a_thread() {
        assert!(in_buyer_thread(&[link(Party::Buyer, "B1")], "S1", "B1"));
        assert!(!in_buyer_thread(&[link(Party::Seller, "B1")], "S1", "B1"));
        assert!(!in_buyer_thread(&[link(Party::Buyer, "B2")], "S1", "B1"));
        assert!(!in_buyer_thread(&[], "S1", "B1"));
    }

    #[test]
    fn order_from_subject_if_it_is_the_pairs_else_latest() {
        let order = |id: &str, at| Order {
            id: id.into(),
            seller: "S1".into(),
            buyer: "B1".into(),
            category: None,
            created_at: at,
        };
        let orders = vec![order("114-0000001-0000001", 1), order("114-0000002-0000002", 2)];
        let re = Regex::new(r"\b\d{3}-\d{7}-\d{7}\b").unwrap();
        let pick = |s| order_concerned(Some(s), &orders, &re).map(|o| o.id.as_str());
        assert_eq!(pick("About 114-0000001-0000001"), Some("114-0000001-0000001"));
        assert_eq!(pick("No order id"), Some("114-0000002-0000002"));
        // Another pair's order id in the subject does not count.
        assert_eq!(pick("About 999-9999999-9999999"), Some("114-0000002-0000002"));
        assert_eq!(order_concerned(Some("x"), &[], &re), None);
    }
}
