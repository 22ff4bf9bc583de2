//! Routing and sender authorization at RCPT and end of message (DESIGN §2.1, §2.2, §2.4).

use super::Refusal;
use crate::address::Address;
use crate::store::{AliasOwner, Buyer, Mark, MessageRecord, Party, Seller, Store, StoreError};

/// What the relay knows about the envelope sender.
#[derive(Clone, Debug, Default)]
pub struct Sender {
    /// `None` for the null sender `<>` (delivery status notifications).
    pub address: Option<Address>,
    pub buyer: Option<Buyer>,
    /// The seller this address is approved for.
    pub seller: Option<Seller>,
    /// The SMTP AUTH login the message was submitted with (`{auth_authen}`).
    pub login: Option<String>,
}

impl Sender {
    pub fn resolve(store: &dyn Store, address: Option<Address>, login: Option<String>) -> Result<Sender, StoreError> {
        let Some(addr) = address else {
            return Ok(Sender { login, ..Sender::default() });
        };
        Ok(Sender {
            buyer: store.buyer_by_email(&addr)?,
            seller: store.seller_by_approved(&addr)?,
            address: Some(addr),
            login,
        })
    }

    /// Whether the message was submitted with a login mapped to `seller`.
    pub fn logged_in_as(&self, seller: &Seller) -> bool {
        self.login.as_ref().is_some_and(|l| seller.logins.contains(l))
    }
}

/// What a recipient address stands for.
#[derive(Clone, Debug)]
pub enum Recipient {
    /// Not on the relay domain.
    Outside,
    /// On the relay domain but no alias.
    Unknown,
    SellerAlias(Seller),
    PairAlias {
        seller: Seller,
        buyer: Buyer,
    },
    /// A mail-client command address (`no-response-needed+TOKEN@…`, `report+TOKEN@…`)
    /// naming a buyer message.
    Command {
        mark: Mark,
        message: Box<MessageRecord>,
    },
}

/// The command in a relay-domain local part, and its token.
pub fn command(local: &str) -> Option<(Mark, &str)> {
    if let Some(t) = local.strip_prefix("no-response-needed+") {
        Some((Mark::NoResponseNeeded, t))
    } else {
        local.strip_prefix("report+").map(|t| (Mark::Reported, t))
    }
}

impl Recipient {
    pub fn resolve(store: &dyn Store, relay_domain: &str, rcpt: &Address) -> Result<Recipient, StoreError> {
        if rcpt.domain() != relay_domain {
            return Ok(Recipient::Outside);
        }
        if let Some((mark, token)) = command(rcpt.local_part()) {
            return Ok(match store.message_by_token(token)? {
                Some(message) => Recipient::Command { mark, message: Box::new(message) },
                None => Recipient::Unknown,
            });
        }
        let seller = |id: &str| store.seller(id);
        Ok(match store.alias_owner(rcpt.local_part())? {
            Some(AliasOwner::Seller { seller: s }) => seller(&s)?.map_or(Recipient::Unknown, Recipient::SellerAlias),
            Some(AliasOwner::Pair { seller: s, buyer: b }) => match (seller(&s)?, store.buyer(&b)?) {
                (Some(seller), Some(buyer)) => Recipient::PairAlias { seller, buyer },
                _ => Recipient::Unknown,
            },
            None => Recipient::Unknown,
        })
    }
}

/// Where an accepted recipient takes the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Mail with no relay-domain recipient: passes untouched.
    Outside,
    /// A conversation message between one seller and one buyer.
    Conversation { from: Party, seller: String, buyer: String },
    /// A delivery failure addressed to an alias: replaced by a notice to `to`.
    Bounce { to: Party, seller: String, buyer: Option<String> },
    /// A seller's mail-client command about one buyer message: acted on, not delivered.
    Command { mark: Mark, relay_id: String, seller: String },
}

/// Decides one RCPT. Pure: every fact comes from the resolved sender and
/// recipient. With `require_sasl`, a seller acts only when logged in (SMTP
/// AUTH) with one of its mapped logins.
pub fn decide_rcpt(sender: &Sender, rcpt: &Recipient, require_sasl: bool) -> Result<Target, Refusal> {
    match rcpt {
        Recipient::Outside => Ok(Target::Outside),
        Recipient::Unknown => Err(Refusal::UnknownRecipient),
        // Only the message's seller may act on it; anyone else learns nothing.
        Recipient::Command { mark, message } => match &sender.seller {
            Some(s) if s.id == message.seller && require_sasl && !sender.logged_in_as(s) => {
                Err(Refusal::NotAuthenticated)
            }
            Some(s) if s.id == message.seller => {
                Ok(Target::Command { mark: *mark, relay_id: message.relay_id.clone(), seller: s.id.clone() })
            }
            _ => Err(Refusal::UnknownRecipient),
        },
        Recipient::SellerAlias(seller) => {
            if sender.address.is_none() {
                Ok(Target::Bounce { to: Party::Seller, seller: seller.id.clone(), buyer: None })
            } else if let Some(buyer) = &sender.buyer {
                Ok(Target::Conversation { from: Party::Buyer, seller: seller.id.clone(), buyer: buyer.id.clone() })
            } else if sender.seller.is_some() {
                Err(Refusal::SellerToSeller)
            } else {
                Err(Refusal::UnknownRecipient)
            }
        }
        Recipient::PairAlias { seller, buyer } => {
            let Some(addr) = &sender.address else {
                return Ok(Target::Bounce {
                    to: Party::Buyer,
                    seller: seller.id.clone(),
                    buyer: Some(buyer.id.clone()),
                });
            };
            match &sender.seller {
                Some(s) if s.id == seller.id && require_sasl && !sender.logged_in_as(s) => {
                    Err(Refusal::NotAuthenticated)
                }
                Some(s) if s.id == seller.id => {
                    Ok(Target::Conversation { from: Party::Seller, seller: seller.id.clone(), buyer: buyer.id.clone() })
                }
                Some(_) => Err(Refusal::OtherSellersBuyer),
                None if seller.approved_addresses.iter().any(|a| a.domain() == addr.domain()) => {
                    Err(Refusal::UnapprovedSellerAddress)
                }
                None => Err(Refusal::UnknownRecipient),
            }
        }
    }
}

/// One counterpart per message: every accepted recipient must lead to the same
/// target as the first one.
pub fn admit(first: Option<&Target>, next: &Target) -> Result<(), Refusal> {
    match first {
        Some(t) if t != next => Err(Refusal::OneCounterpart),
        _ => Ok(()),
    }
}

/// A seller's message must also show an approved address in `From:`.
pub fn check_from_header(target: &Target, seller: &Seller, from: &[Address]) -> Result<(), Refusal> {
    match target {
        Target::Conversation { from: Party::Seller, .. }
            if from.is_empty() || !from.iter().all(|a| seller.approves(a)) =>
        {
            Err(Refusal::FromNotApproved)
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    fn seller(id: &str, approved: &[&str]) -> Seller {
        Seller {
            id: id.into(),
            name: format!("Shop {id}"),
            service_address: addr(&format!("cs@{}.example", id.to_lowercase())),
            approved_addresses: approved.iter().map(|a| addr(a)).collect(),
            alias: format!("{:0>15}", id.to_lowercase()),
            opt_out_notices: true,
            logins: vec![format!("{}-login", id.to_lowercase())],
        }
    }

    fn buyer(id: &str, email: &str) -> Buyer {
        Buyer { id: id.into(), email: addr(email), name: None, opted_out: false }
    }

    fn from(address: &str, buyer: Option<Buyer>, seller: Option<Seller>) -> Sender {
        Sender { address: Some(addr(address)), buyer, seller, login: None }
    }

    fn decide_rcpt_t(sender: &Sender, rcpt: &Recipient) -> Result<Target, Refusal> {
        decide_rcpt(sender, rcpt, false)
    }

    #[test]
    fn with_sasl_required_a_seller_must_be_logged_in_as_itself() {
        let s1 = seller("S1", &["sales@s1.example"]);
        let mut sender = from("sales@s1.example", None, Some(s1));
        assert_eq!(decide_rcpt(&sender, &pair(), true), Err(Refusal::NotAuthenticated));
        sender.login = Some("s2-login".into());
        assert_eq!(decide_rcpt(&sender, &pair(), true), Err(Refusal::NotAuthenticated));
        sender.login = Some("s1-login".into());
        assert!(decide_rcpt(&sender, &pair(), true).is_ok());
        // Not required: the approved address is enough.
        sender.login = None;
        assert!(decide_rcpt(&sender, &pair(), false).is_ok());
        // Buyers are never asked to log in.
        let b = from("bob@b.example", Some(buyer("B1", "bob@b.example")), None);
        assert!(decide_rcpt(&b, &Recipient::SellerAlias(seller("S1", &[])), true).is_ok());
    }

    fn pair() -> Recipient {
        Recipient::PairAlias { seller: seller("S1", &["sales@s1.example"]), buyer: buyer("B1", "bob@b.example") }
    }

    #[test]
    fn registered_buyer_writes_to_seller_alias() {
        let s = from("bob@b.example", Some(buyer("B1", "bob@b.example")), None);
        assert_eq!(
            decide_rcpt_t(&s, &Recipient::SellerAlias(seller("S1", &[]))),
            Ok(Target::Conversation { from: Party::Buyer, seller: "S1".into(), buyer: "B1".into() })
        );
    }

    #[test]
    fn approved_seller_writes_to_own_pair_alias() {
        let s = from("sales@s1.example", None, Some(seller("S1", &["sales@s1.example"])));
        assert_eq!(
            decide_rcpt_t(&s, &pair()),
            Ok(Target::Conversation { from: Party::Seller, seller: "S1".into(), buyer: "B1".into() })
        );
    }

    #[test]
    fn strangers_and_unknown_aliases_get_the_same_refusal() {
        let stranger = from("eve@evil.example", None, None);
        assert_eq!(decide_rcpt_t(&stranger, &pair()), Err(Refusal::UnknownRecipient));
        assert_eq!(
            decide_rcpt_t(&stranger, &Recipient::SellerAlias(seller("S1", &[]))),
            Err(Refusal::UnknownRecipient)
        );
        assert_eq!(decide_rcpt_t(&stranger, &Recipient::Unknown), Err(Refusal::UnknownRecipient));
        let buyer_b1 = from("bob@b.example", Some(buyer("B1", "bob@b.example")), None);
        assert_eq!(decide_rcpt_t(&buyer_b1, &Recipient::Unknown), Err(Refusal::UnknownRecipient));
        // A buyer has no business writing to a pair alias either.
        assert_eq!(decide_rcpt_t(&buyer_b1, &pair()), Err(Refusal::UnknownRecipient));
        assert_eq!(Refusal::UnknownRecipient.reply().code, "550");
        assert_eq!(Refusal::UnknownRecipient.reply().xcode, "5.1.1");
    }

    #[test]
    fn recognisable_sellers_are_told_why() {
        let unapproved_same_domain = from("intern@s1.example", None, None);
        assert_eq!(decide_rcpt_t(&unapproved_same_domain, &pair()), Err(Refusal::UnapprovedSellerAddress));
        let other_seller = from("sales@s2.example", None, Some(seller("S2", &["sales@s2.example"])));
        assert_eq!(decide_rcpt_t(&other_seller, &pair()), Err(Refusal::OtherSellersBuyer));
        assert_eq!(
            decide_rcpt_t(&other_seller, &Recipient::SellerAlias(seller("S1", &[]))),
            Err(Refusal::SellerToSeller)
        );
        for r in [Refusal::UnapprovedSellerAddress, Refusal::OtherSellersBuyer, Refusal::SellerToSeller] {
            assert_eq!((r.reply().code, r.reply().xcode), ("550", "5.7.1"));
        }
    }

    #[test]
    fn null_sender_to_an_alias_is_a_bounce() {
        let dsn = Sender::default();
        assert_eq!(
            decide_rcpt_t(&dsn, &Recipient::SellerAlias(seller("S1", &[]))),
            Ok(Target::Bounce { to: Party::Seller, seller: "S1".into(), buyer: None })
        );
        assert_eq!(
            decide_rcpt_t(&dsn, &pair()),
            Ok(Target::Bounce { to: Party::Buyer, seller: "S1".into(), buyer: Some("B1".into()) })
        );
        assert_eq!(decide_rcpt_t(&dsn, &Recipient::Unknown), Err(Refusal::UnknownRecipient));
    }

    #[test]
    fn one_counterpart_per_message() {
        let a = Target::Conversation { from: Party::Seller, seller: "S1".into(), buyer: "B1".into() };
        let b = Target::Conversation { from: Party::Seller, seller: "S1".into(), buyer: "B2".into() };
        assert_eq!(admit(None, &a), Ok(()));
        assert_eq!(admit(Some(&a), &a), Ok(()));
        assert_eq!(admit(Some(&a), &b), Err(Refusal::OneCounterpart));
        assert_eq!(admit(Some(&a), &Target::Outside), Err(Refusal::OneCounterpart));
        assert_eq!(admit(Some(&Target::Outside), &a), Err(Refusal::OneCounterpart));
        assert_eq!(admit(Some(&Target::Outside), &Target::Outside), Ok(()));
        assert_eq!((Refusal::OneCounterpart.reply().code, Refusal::OneCounterpart.reply().xcode), ("452", "4.5.3"));
    }

    #[test]
    fn seller_from_header_must_be_approved() {
        let s1 = seller("S1", &["sales@s1.example"]);
        let t = Target::Conversation { from: Party::Seller, seller: "S1".into(), buyer: "B1".into() };
        assert_eq!(check_from_header(&t, &s1, &[addr("sales@s1.example")]), Ok(()));
        assert_eq!(check_from_header(&t, &s1, &[addr("boss@s1.example")]), Err(Refusal::FromNotApproved));
        assert_eq!(check_from_header(&t, &s1, &[]), Err(Refusal::FromNotApproved));
        assert_eq!(
            check_from_header(&t, &s1, &[addr("sales@s1.example"), addr("x@y.example")]),
            Err(Refusal::FromNotApproved)
        );
        let buyer_msg = Target::Conversation { from: Party::Buyer, seller: "S1".into(), buyer: "B1".into() };
        assert_eq!(check_from_header(&buyer_msg, &s1, &[]), Ok(()));
    }

    #[test]
    fn only_the_messages_seller_may_use_its_command_address() {
        use crate::store::MessageRecord;
        let message = MessageRecord {
            seq: 1,
            token: Some("t".into()),
            ..MessageRecord::sample("r1@m.example.com", Party::Buyer, 0)
        };
        let rcpt = Recipient::Command { mark: Mark::Reported, message: Box::new(message) };
        let s1 = from("sales@s1.example", None, Some(seller("S1", &["sales@s1.example"])));
        assert_eq!(
            decide_rcpt_t(&s1, &rcpt),
            Ok(Target::Command { mark: Mark::Reported, relay_id: "r1@m.example.com".into(), seller: "S1".into() })
        );
        let s2 = from("sales@s2.example", None, Some(seller("S2", &["sales@s2.example"])));
        assert_eq!(decide_rcpt_t(&s2, &rcpt), Err(Refusal::UnknownRecipient));
        assert_eq!(
            decide_rcpt_t(&from("bob@b.example", Some(buyer("B1", "bob@b.example")), None), &rcpt),
            Err(Refusal::UnknownRecipient)
        );
        assert_eq!(command("no-response-needed+abc"), Some((Mark::NoResponseNeeded, "abc")));
        assert_eq!(command("report+abc"), Some((Mark::Reported, "abc")));
        assert_eq!(command("reportabc"), None);
    }
}
