//! Message-ID translation: each side sees only its own ids and relay-minted ids.

use crate::store::{Party, Reference};

/// Translates the ids a message names (`In-Reply-To`, `References`) into the
/// ids its recipient knows: a relay id of a message the recipient wrote becomes
/// the recipient's original id; the sender's own original id becomes the relay
/// id the recipient was shown. Anything else is dropped — an unknown id can
/// carry the sender's real domain.
pub fn translate(ids: &[String], refs: &[Reference], recipient: Party, seller: &str, buyer: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in ids {
        let Some(r) = refs.iter().find(|r| &r.id == id) else {
            continue;
        };
        let same_pair = |l: &crate::store::MessageLink| l.seller == seller && l.buyer == buyer;
        let translated = match (&r.by_relay_id, &r.by_original_id) {
            (Some(l), _) if same_pair(l) && l.sender == recipient => l.original_id.clone(),
            (_, Some(l)) if same_pair(l) && l.sender == recipient.other() => Some(l.relay_id.clone()),
            _ => None,
        };
        if let Some(t) = translated.filter(|t| !out.contains(t)) {
            out.push(t);
        }
    }
    out
}

/// The ids inside a `Message-ID`-style header value, without angle brackets.
pub fn parse_ids(value: &str) -> Vec<String> {
    value
        .split('<')
        .skip(1)
        .filter_map(|s| s.split_once('>').map(|(id, _)| id.trim()))
        .filter(|id| !id.is_empty() && !id.contains(char::is_whitespace))
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MessageLink;

    fn link(relay: &str, original: &str, sender: Party) -> MessageLink {
        MessageLink {
            relay_id: relay.into(),
            original_id: Some(original.into()),
            seller: "S1".into(),
            buyer: "B1".into(),
            sender,
            at: 0,
        }
    }

    #[test]
    fn both_sides_thread_on_their_own_ids() {
        let buyer_msg = link("r1@m.example", "b1@buyer.example", Party::Buyer);
        let seller_msg = link("r2@m.example", "s1@shop.example", Party::Seller);
        // The seller replies to r1 and also names its own s1: the buyer gets b1 and r2.
        let refs = vec![
            Reference { id: "r1@m.example".into(), by_relay_id: Some(buyer_msg.clone()), by_original_id: None },
            Reference { id: "s1@shop.example".into(), by_relay_id: None, by_original_id: Some(seller_msg.clone()) },
            Reference { id: "junk@shop.example".into(), by_relay_id: None, by_original_id: None },
        ];
        let ids: Vec<String> = refs.iter().map(|r| r.id.clone()).collect();
        assert_eq!(translate(&ids, &refs, Party::Buyer, "S1", "B1"), ["b1@buyer.example", "r2@m.example"]);
    }

    #[test]
    fn other_pairs_ids_are_dropped() {
        let mut foreign = link("r9@m.example", "x@other.example", Party::Buyer);
        foreign.buyer = "B2".into();
        let refs = vec![Reference { id: "r9@m.example".into(), by_relay_id: Some(foreign), by_original_id: None }];
        assert!(translate(&["r9@m.example".into()], &refs, Party::Buyer, "S1", "B1").is_empty());
    }

    #[test]
    fn parses_id_lists() {
        assert_eq!(parse_ids("<a@b> <c@d>\r\n\t<e@f>"), ["a@b", "c@d", "e@f"]);
        assert_eq!(parse_ids(" <a@b> (comment)"), ["a@b"]);
        assert!(parse_ids("garbage").is_empty());
    }
}
