//! What the relay remembers: sellers, buyers, orders, aliases and the
//! Message-ID map. Behind a trait so that relay hosts can later share one
//! PostgreSQL; the embedded default is redb.

pub mod archive;
pub mod group_sync;
mod read_cache;
mod redb_store;

pub use redb_store::RedbStore;

use crate::address::Address;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seller {
    pub id: String,
    pub name: String,
    pub service_address: Address,
    pub approved_addresses: Vec<Address>,
    /// Local part of the seller's own alias on the relay domain.
    pub alias: String,
    pub opt_out_notices: bool,
    /// SMTP AUTH logins that submit as this seller (Postfix `{auth_authen}`).
    #[serde(default)]
    pub logins: Vec<String>,
}

impl Seller {
    pub fn approves(&self, addr: &Address) -> bool {
        self.approved_addresses.contains(addr)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buyer {
    pub id: String,
    pub email: Address,
    pub name: Option<String>,
    pub opted_out: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: String,
    pub seller: String,
    pub buyer: String,
    pub category: Option<String>,
    /// Unix seconds.
    pub created_at: u64,
}

/// Who an alias local part stands for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AliasOwner {
    Seller { seller: String },
    Pair { seller: String, buyer: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    Buyer,
    Seller,
}

impl Party {
    pub fn other(self) -> Party {
        match self {
            Party::Buyer => Party::Seller,
            Party::Seller => Party::Buyer,
        }
    }
}

/// One relayed message's identity: the id its author gave it and the id the
/// relay minted for the other side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageLink {
    pub relay_id: String,
    pub original_id: Option<String>,
    pub seller: String,
    pub buyer: String,
    pub sender: Party,
    pub at: u64,
}

pub struct NewSeller {
    pub id: String,
    pub name: String,
    pub service_address: Address,
    pub approved_addresses: Vec<Address>,
}

#[derive(Default)]
pub struct SellerUpdate {
    pub name: Option<String>,
    pub service_address: Option<Address>,
    pub opt_out_notices: Option<bool>,
}

pub struct NewBuyer {
    pub id: String,
    pub email: Address,
    pub name: Option<String>,
}

pub struct NewOrder {
    pub id: String,
    pub seller: String,
    pub buyer: String,
    pub category: Option<String>,
    pub created_at: u64,
}

/// What the relay decided about a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Delivered,
    /// Refused at end of message because the buyer opted out.
    Blocked,
    /// Accepted and dropped silently (opt-out with the seller's notices off).
    Discarded,
    /// Refused at end of message for another reason.
    Refused,
}

/// The record of one decided message (the archive's index grows from this).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// Recording order (ties in `at` are common).
    pub seq: u64,
    pub relay_id: String,
    pub at: u64,
    pub seller: String,
    pub buyer: String,
    pub sender: Party,
    pub decision: Decision,
    pub order: Option<String>,
    pub subject: Option<String>,
    /// Local part of the pair alias.
    #[serde(default)]
    pub alias: String,
    /// Where the archived copies lie (in the segment of the day of `at`).
    #[serde(default)]
    pub archive: Option<archive::ArchiveRef>,
    /// An automatic message (`Auto-Submitted:`): never a response, never awaiting one.
    #[serde(default)]
    pub auto_submitted: bool,
    /// When the seller first answered this buyer message.
    #[serde(default)]
    pub answered_at: Option<u64>,
    #[serde(default)]
    pub no_response_needed: bool,
    #[serde(default)]
    pub reported: bool,
    /// The buyer message's mail-client command token (`no-response-needed+TOKEN@…`).
    #[serde(default)]
    pub token: Option<String>,
    /// What the content policy removed from the delivered copy.
    #[serde(default)]
    pub removed: Removed,
    /// Why a message was not delivered, beyond its decision (e.g. the sender
    /// authentication result).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A delivery report (or another null-sender message) that the relay
    /// replaced by its own notice: the delivered copy is the notice.
    #[serde(default, skip_serializing_if = "is_false")]
    pub notice: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[cfg(test)]
impl MessageRecord {
    /// A delivered record for tests; adjust fields with struct update syntax.
    pub(crate) fn sample(relay_id: &str, sender: Party, at: u64) -> MessageRecord {
        MessageRecord {
            seq: 0,
            relay_id: relay_id.into(),
            at,
            seller: "S1".into(),
            buyer: "B1".into(),
            sender,
            decision: Decision::Delivered,
            order: None,
            subject: None,
            alias: String::new(),
            archive: None,
            auto_submitted: false,
            answered_at: None,
            no_response_needed: false,
            reported: false,
            token: None,
            removed: Removed::default(),
            reason: None,
            notice: false,
        }
    }
}

/// What the content policy removed, by kind (recorded with the message).
pub use crate::content::Removed;

#[derive(Clone, Debug, Default)]
pub struct MessageFilter {
    pub seller: Option<String>,
    pub buyer: Option<String>,
    pub order: Option<String>,
    /// Unix seconds, inclusive.
    pub since: Option<u64>,
    /// Unix seconds, exclusive.
    pub until: Option<u64>,
    pub reported_only: bool,
}

impl MessageFilter {
    pub fn matches(&self, r: &MessageRecord) -> bool {
        self.seller.as_ref().is_none_or(|s| *s == r.seller)
            && self.buyer.as_ref().is_none_or(|b| *b == r.buyer)
            && self.order.as_ref().is_none_or(|o| r.order.as_ref() == Some(o))
            && self.since.is_none_or(|t| r.at >= t)
            && self.until.is_none_or(|t| r.at < t)
            && (!self.reported_only || r.reported)
    }
}

/// A flag a seller sets on a buyer message from the mail client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    NoResponseNeeded,
    Reported,
}

/// A seller's daily allowance, checked and counted in the recording transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyAllowance {
    /// UTC day number (unix seconds / 86400).
    pub day: u64,
    pub limit: u64,
}

/// What end-of-message needs written before Postfix may answer 250.
pub struct NewMessage<'a> {
    pub seller: &'a str,
    pub buyer: &'a str,
    pub sender: Party,
    /// The author's Message-ID, without angle brackets.
    pub original_id: Option<&'a str>,
    pub relay_domain: &'a str,
    pub at: u64,
    pub decision: Decision,
    pub order: Option<&'a str>,
    pub subject: Option<&'a str>,
    /// For a seller's delivered message: counted against this allowance.
    pub allowance: Option<DailyAllowance>,
    pub archive: Option<archive::ArchiveRef>,
    pub auto_submitted: bool,
    /// Relay ids of the buyer messages this (seller) message answers.
    pub answers: &'a [String],
    /// The relay id (and, for a buyer message, the command token) the rewrite
    /// already uses; `None` mints them here. A retry that finds the message
    /// recorded under another id fails with a conflict (tempfail, retried).
    pub relay_id: Option<&'a str>,
    pub token: Option<&'a str>,
    pub removed: Removed,
    pub reason: Option<&'a str>,
    /// A null-sender message replaced by the relay's notice (see
    /// [`MessageRecord::notice`]); `buyer` may then be empty (unknown).
    pub notice: bool,
}

/// Length of a command token: 24 characters of `[a-z0-9]` (≈124 bits).
pub const TOKEN_LEN: usize = 24;

/// What a referenced id is known as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    pub id: String,
    /// The id is one the relay minted.
    pub by_relay_id: Option<MessageLink>,
    /// The id is an original id of the given sender in this pair.
    pub by_original_id: Option<MessageLink>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recorded {
    Done {
        /// Local part of the pair's alias (created if the pair is new).
        pair_alias: String,
        link: MessageLink,
    },
    /// The seller's allowance for the day is used up: nothing was written.
    OverLimit { sent: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {id:?} not found")]
    NotFound { kind: &'static str, id: String },
    #[error("{kind} {id:?} already exists")]
    Duplicate { kind: &'static str, id: String },
    #[error("{0}")]
    Conflict(String),
    #[error("store failure: {0}")]
    Backend(String),
}

/// The relay's records. Every write method is durable when it returns.
pub trait Store: Send + Sync + 'static {
    fn add_seller(&self, new: NewSeller) -> Result<Seller, StoreError>;
    fn update_seller(&self, id: &str, update: SellerUpdate) -> Result<Seller, StoreError>;
    fn approve(&self, id: &str, addr: &Address) -> Result<Seller, StoreError>;
    fn revoke(&self, id: &str, addr: &Address) -> Result<Seller, StoreError>;
    fn seller(&self, id: &str) -> Result<Option<Seller>, StoreError>;
    /// Every seller, by id.
    fn sellers(&self) -> Result<Vec<Seller>, StoreError>;
    /// The seller that approved this sending address, if any.
    fn seller_by_approved(&self, addr: &Address) -> Result<Option<Seller>, StoreError>;
    /// Maps an SMTP AUTH login to a seller (a login belongs to one seller).
    fn map_login(&self, id: &str, login: &str) -> Result<Seller, StoreError>;
    fn unmap_login(&self, id: &str, login: &str) -> Result<Seller, StoreError>;

    fn add_buyer(&self, new: NewBuyer) -> Result<Buyer, StoreError>;
    fn set_opted_out(&self, id: &str, opted_out: bool) -> Result<Buyer, StoreError>;
    fn buyer(&self, id: &str) -> Result<Option<Buyer>, StoreError>;
    fn buyer_by_email(&self, addr: &Address) -> Result<Option<Buyer>, StoreError>;

    fn add_order(&self, new: NewOrder) -> Result<Order, StoreError>;
    fn orders_of_pair(&self, seller: &str, buyer: &str) -> Result<Vec<Order>, StoreError>;

    /// The pair's alias local part, created (durably) if the pair is new.
    fn pair_alias(&self, seller: &str, buyer: &str) -> Result<String, StoreError>;
    fn alias_owner(&self, local_part: &str) -> Result<Option<AliasOwner>, StoreError>;

    /// What the ids a message names (In-Reply-To, References) are known as in
    /// this pair, `sender` being the side that wrote the message.
    fn references(
        &self,
        seller: &str,
        buyer: &str,
        sender: Party,
        ids: &[String],
    ) -> Result<Vec<Reference>, StoreError>;

    /// Ensures the pair alias and the Message-ID mapping exist, records the
    /// decision and counts a seller's delivered message, in one durable
    /// transaction; the message's archive copies, appended before the call,
    /// become durable with it. (A [`RedbStore::with_deferred_sync`] store
    /// leaves the last step, the archive's flush, to the caller.) Idempotent: the same original id in the same pair from the
    /// same side gets the same relay id back and is counted once (Postfix
    /// retries after tempfail).
    fn record_message(&self, msg: &NewMessage<'_>) -> Result<Recorded, StoreError>;

    fn message(&self, relay_id: &str) -> Result<Option<MessageRecord>, StoreError>;

    /// Decided messages matching every given filter, oldest first.
    fn messages(&self, filter: &MessageFilter) -> Result<Vec<MessageRecord>, StoreError>;

    /// The record of a message already recorded under this original id in
    /// this pair from this side (a retry).
    fn recorded(
        &self,
        seller: &str,
        buyer: &str,
        sender: Party,
        original_id: &str,
    ) -> Result<Option<MessageRecord>, StoreError>;

    /// The buyer message a command token belongs to.
    fn message_by_token(&self, token: &str) -> Result<Option<MessageRecord>, StoreError>;

    /// Sets a flag on a message record; the record as it is now.
    fn mark(&self, relay_id: &str, mark: Mark) -> Result<MessageRecord, StoreError>;

    /// Removes the records of messages decided before `cutoff` (unix seconds).
    fn purge_messages_before(&self, cutoff: u64) -> Result<usize, StoreError>;

    /// Orders of a seller created on UTC days `from_day..=to_day`.
    fn orders_in_days(&self, seller: &str, from_day: u64, to_day: u64) -> Result<u64, StoreError>;

    /// Seller messages delivered on a UTC day.
    fn sent_on_day(&self, seller: &str, day: u64) -> Result<u64, StoreError>;
}
