//! The embedded store: redb, one file, fsync on every commit.

use super::*;
use crate::alias::{ALIAS_LEN, mint_message_id, random_local};
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};
use serde::de::DeserializeOwned;
use std::path::Path;

// Values are JSON: small records, readable with any redb tool, and tolerant of
// added fields.
const SELLERS: TableDefinition<&str, &str> = TableDefinition::new("sellers");
const BUYERS: TableDefinition<&str, &str> = TableDefinition::new("buyers");
const ORDERS: TableDefinition<&str, &str> = TableDefinition::new("orders");
/// approved sending address -> seller id
const APPROVED: TableDefinition<&str, &str> = TableDefinition::new("approved_addresses");
/// buyer address -> buyer id
const BUYER_EMAILS: TableDefinition<&str, &str> = TableDefinition::new("buyer_emails");
/// alias local part -> AliasOwner
const ALIASES: TableDefinition<&str, &str> = TableDefinition::new("aliases");
/// "seller\x1fbuyer" -> pair alias local part
const PAIRS: TableDefinition<&str, &str> = TableDefinition::new("pairs");
/// "seller\x1fbuyer\x1forder" -> ""
const PAIR_ORDERS: TableDefinition<&str, &str> = TableDefinition::new("pair_orders");
/// relay Message-ID -> MessageLink
const MSG_BY_RELAY: TableDefinition<&str, &str> = TableDefinition::new("msg_by_relay_id");
/// "seller\x1fbuyer\x1fsender\x1foriginal id" -> relay Message-ID
const MSG_BY_ORIGINAL: TableDefinition<&str, &str> = TableDefinition::new("msg_by_original_id");

const SEP: char = '\x1f';

pub struct RedbStore {
    db: Database,
}

fn backend(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Backend(e.into().to_string())
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("store records serialize: plain structs of strings and numbers")
}

fn from_json<T: DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Backend(format!("corrupt record: {e}")))
}

fn get<T: DeserializeOwned>(
    t: &impl ReadableTable<&'static str, &'static str>,
    key: &str,
) -> Result<Option<T>, StoreError> {
    match t.get(key).map_err(backend)? {
        Some(v) => from_json(v.value()).map(Some),
        None => Ok(None),
    }
}

fn get_str(
    t: &impl ReadableTable<&'static str, &'static str>,
    key: &str,
) -> Result<Option<String>, StoreError> {
    Ok(t.get(key).map_err(backend)?.map(|v| v.value().to_string()))
}

fn put<T: Serialize>(
    t: &mut Table<&'static str, &'static str>,
    key: &str,
    v: &T,
) -> Result<(), StoreError> {
    t.insert(key, to_json(v).as_str()).map_err(backend)?;
    Ok(())
}

fn pair_key(seller: &str, buyer: &str) -> String {
    format!("{seller}{SEP}{buyer}")
}

impl RedbStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Backend(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let db = Database::create(path)
            .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
        let txn = db.begin_write().map_err(backend)?;
        for t in [
            SELLERS,
            BUYERS,
            ORDERS,
            APPROVED,
            BUYER_EMAILS,
            ALIASES,
            PAIRS,
            PAIR_ORDERS,
            MSG_BY_RELAY,
            MSG_BY_ORIGINAL,
        ] {
            txn.open_table(t).map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        Ok(RedbStore { db })
    }

    fn read<R>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        f(&txn)
    }

    /// Runs `f` in a write transaction and commits (durably) only if it succeeds:
    /// an error leaves nothing half-applied.
    fn write<R>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        let r = f(&txn)?;
        txn.commit().map_err(backend)?;
        Ok(r)
    }

    fn load_seller(txn: &WriteTransaction, id: &str) -> Result<Seller, StoreError> {
        get(&txn.open_table(SELLERS).map_err(backend)?, id)?.ok_or_else(|| StoreError::NotFound {
            kind: "seller",
            id: id.into(),
        })
    }

    fn load_buyer(txn: &WriteTransaction, id: &str) -> Result<Buyer, StoreError> {
        get(&txn.open_table(BUYERS).map_err(backend)?, id)?.ok_or_else(|| StoreError::NotFound {
            kind: "buyer",
            id: id.into(),
        })
    }

    /// Draws an alias local part not yet used by any alias, and records its owner.
    fn new_alias(txn: &WriteTransaction, owner: &AliasOwner) -> Result<String, StoreError> {
        let mut aliases = txn.open_table(ALIASES).map_err(backend)?;
        loop {
            let local = random_local(ALIAS_LEN);
            if aliases.get(local.as_str()).map_err(backend)?.is_none() {
                put(&mut aliases, &local, owner)?;
                return Ok(local);
            }
        }
    }

    fn ensure_pair(
        txn: &WriteTransaction,
        seller: &str,
        buyer: &str,
    ) -> Result<String, StoreError> {
        let key = pair_key(seller, buyer);
        if let Some(alias) = get_str(&txn.open_table(PAIRS).map_err(backend)?, &key)? {
            return Ok(alias);
        }
        Self::load_seller(txn, seller)?;
        Self::load_buyer(txn, buyer)?;
        let owner = AliasOwner::Pair {
            seller: seller.into(),
            buyer: buyer.into(),
        };
        let alias = Self::new_alias(txn, &owner)?;
        txn.open_table(PAIRS)
            .map_err(backend)?
            .insert(key.as_str(), alias.as_str())
            .map_err(backend)?;
        Ok(alias)
    }

    fn check_approvable(
        txn: &WriteTransaction,
        seller: &str,
        addr: &Address,
    ) -> Result<(), StoreError> {
        match get_str(&txn.open_table(APPROVED).map_err(backend)?, addr.as_str())? {
            Some(owner) if owner != seller => Err(StoreError::Conflict(format!(
                "address {addr} is already approved for seller {owner:?}"
            ))),
            _ => Ok(()),
        }
    }
}

impl Store for RedbStore {
    fn add_seller(&self, new: NewSeller) -> Result<Seller, StoreError> {
        self.write(|txn| {
            if txn
                .open_table(SELLERS)
                .map_err(backend)?
                .get(new.id.as_str())
                .map_err(backend)?
                .is_some()
            {
                return Err(StoreError::Duplicate {
                    kind: "seller",
                    id: new.id.clone(),
                });
            }
            let mut approved_addresses: Vec<Address> = Vec::new();
            for a in &new.approved_addresses {
                Self::check_approvable(txn, &new.id, a)?;
                if !approved_addresses.contains(a) {
                    approved_addresses.push(a.clone());
                }
            }
            let alias = Self::new_alias(
                txn,
                &AliasOwner::Seller {
                    seller: new.id.clone(),
                },
            )?;
            let seller = Seller {
                id: new.id,
                name: new.name,
                service_address: new.service_address,
                approved_addresses,
                alias,
                opt_out_notices: true,
            };
            let mut approved = txn.open_table(APPROVED).map_err(backend)?;
            for a in &seller.approved_addresses {
                approved
                    .insert(a.as_str(), seller.id.as_str())
                    .map_err(backend)?;
            }
            put(
                &mut txn.open_table(SELLERS).map_err(backend)?,
                &seller.id,
                &seller,
            )?;
            Ok(seller)
        })
    }

    fn update_seller(&self, id: &str, update: SellerUpdate) -> Result<Seller, StoreError> {
        self.write(|txn| {
            let mut seller = Self::load_seller(txn, id)?;
            if let Some(name) = update.name {
                seller.name = name;
            }
            if let Some(addr) = update.service_address {
                seller.service_address = addr;
            }
            if let Some(on) = update.opt_out_notices {
                seller.opt_out_notices = on;
            }
            put(&mut txn.open_table(SELLERS).map_err(backend)?, id, &seller)?;
            Ok(seller)
        })
    }

    fn approve(&self, id: &str, addr: &Address) -> Result<Seller, StoreError> {
        self.write(|txn| {
            let mut seller = Self::load_seller(txn, id)?;
            Self::check_approvable(txn, id, addr)?;
            if !seller.approves(addr) {
                seller.approved_addresses.push(addr.clone());
                txn.open_table(APPROVED)
                    .map_err(backend)?
                    .insert(addr.as_str(), id)
                    .map_err(backend)?;
                put(&mut txn.open_table(SELLERS).map_err(backend)?, id, &seller)?;
            }
            Ok(seller)
        })
    }

    fn revoke(&self, id: &str, addr: &Address) -> Result<Seller, StoreError> {
        self.write(|txn| {
            let mut seller = Self::load_seller(txn, id)?;
            if !seller.approves(addr) {
                return Err(StoreError::NotFound {
                    kind: "approved address",
                    id: addr.to_string(),
                });
            }
            seller.approved_addresses.retain(|a| a != addr);
            txn.open_table(APPROVED)
                .map_err(backend)?
                .remove(addr.as_str())
                .map_err(backend)?;
            put(&mut txn.open_table(SELLERS).map_err(backend)?, id, &seller)?;
            Ok(seller)
        })
    }

    fn seller(&self, id: &str) -> Result<Option<Seller>, StoreError> {
        self.read(|txn| get(&txn.open_table(SELLERS).map_err(backend)?, id))
    }

    fn seller_by_approved(&self, addr: &Address) -> Result<Option<Seller>, StoreError> {
        self.read(|txn| {
            match get_str(&txn.open_table(APPROVED).map_err(backend)?, addr.as_str())? {
                Some(id) => get(&txn.open_table(SELLERS).map_err(backend)?, &id),
                None => Ok(None),
            }
        })
    }

    fn add_buyer(&self, new: NewBuyer) -> Result<Buyer, StoreError> {
        self.write(|txn| {
            let mut buyers = txn.open_table(BUYERS).map_err(backend)?;
            if buyers.get(new.id.as_str()).map_err(backend)?.is_some() {
                return Err(StoreError::Duplicate {
                    kind: "buyer",
                    id: new.id,
                });
            }
            let mut emails = txn.open_table(BUYER_EMAILS).map_err(backend)?;
            if let Some(other) = get_str(&emails, new.email.as_str())? {
                return Err(StoreError::Conflict(format!(
                    "address {} is already registered for buyer {other:?}",
                    new.email
                )));
            }
            let buyer = Buyer {
                id: new.id,
                email: new.email,
                name: new.name,
                opted_out: false,
            };
            emails
                .insert(buyer.email.as_str(), buyer.id.as_str())
                .map_err(backend)?;
            put(&mut buyers, &buyer.id, &buyer)?;
            Ok(buyer)
        })
    }

    fn set_opted_out(&self, id: &str, opted_out: bool) -> Result<Buyer, StoreError> {
        self.write(|txn| {
            let mut buyer = Self::load_buyer(txn, id)?;
            buyer.opted_out = opted_out;
            put(&mut txn.open_table(BUYERS).map_err(backend)?, id, &buyer)?;
            Ok(buyer)
        })
    }

    fn buyer(&self, id: &str) -> Result<Option<Buyer>, StoreError> {
        self.read(|txn| get(&txn.open_table(BUYERS).map_err(backend)?, id))
    }

    fn buyer_by_email(&self, addr: &Address) -> Result<Option<Buyer>, StoreError> {
        self.read(|txn| {
            match get_str(
                &txn.open_table(BUYER_EMAILS).map_err(backend)?,
                addr.as_str(),
            )? {
                Some(id) => get(&txn.open_table(BUYERS).map_err(backend)?, &id),
                None => Ok(None),
            }
        })
    }

    fn add_order(&self, new: NewOrder) -> Result<Order, StoreError> {
        self.write(|txn| {
            let mut orders = txn.open_table(ORDERS).map_err(backend)?;
            if orders.get(new.id.as_str()).map_err(backend)?.is_some() {
                return Err(StoreError::Duplicate {
                    kind: "order",
                    id: new.id,
                });
            }
            Self::load_seller(txn, &new.seller)?;
            Self::load_buyer(txn, &new.buyer)?;
            let order = Order {
                id: new.id,
                seller: new.seller,
                buyer: new.buyer,
                category: new.category,
                created_at: new.created_at,
            };
            put(&mut orders, &order.id, &order)?;
            let key = format!("{}{SEP}{}", pair_key(&order.seller, &order.buyer), order.id);
            txn.open_table(PAIR_ORDERS)
                .map_err(backend)?
                .insert(key.as_str(), "")
                .map_err(backend)?;
            Ok(order)
        })
    }

    fn orders_of_pair(&self, seller: &str, buyer: &str) -> Result<Vec<Order>, StoreError> {
        self.read(|txn| {
            let prefix = format!("{}{SEP}", pair_key(seller, buyer));
            let index = txn.open_table(PAIR_ORDERS).map_err(backend)?;
            let orders = txn.open_table(ORDERS).map_err(backend)?;
            let mut out = Vec::new();
            for entry in index.range(prefix.as_str()..).map_err(backend)? {
                let (k, _) = entry.map_err(backend)?;
                let Some(order_id) = k.value().strip_prefix(prefix.as_str()) else {
                    break;
                };
                if let Some(o) = get::<Order>(&orders, order_id)? {
                    out.push(o);
                }
            }
            out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
            Ok(out)
        })
    }

    fn pair_alias(&self, seller: &str, buyer: &str) -> Result<String, StoreError> {
        let existing = self.read(|txn| {
            get_str(
                &txn.open_table(PAIRS).map_err(backend)?,
                &pair_key(seller, buyer),
            )
        })?;
        match existing {
            Some(alias) => Ok(alias),
            None => self.write(|txn| Self::ensure_pair(txn, seller, buyer)),
        }
    }

    fn alias_owner(&self, local_part: &str) -> Result<Option<AliasOwner>, StoreError> {
        self.read(|txn| get(&txn.open_table(ALIASES).map_err(backend)?, local_part))
    }

    fn record_message(&self, msg: &NewMessage<'_>) -> Result<RecordedMessage, StoreError> {
        self.write(|txn| {
            let pair_alias = Self::ensure_pair(txn, msg.seller, msg.buyer)?;
            let mut by_relay = txn.open_table(MSG_BY_RELAY).map_err(backend)?;
            let mut by_original = txn.open_table(MSG_BY_ORIGINAL).map_err(backend)?;
            let side = match msg.sender {
                Party::Buyer => "buyer",
                Party::Seller => "seller",
            };
            let original_key = msg
                .original_id
                .map(|id| format!("{}{SEP}{side}{SEP}{id}", pair_key(msg.seller, msg.buyer)));
            let known = match &original_key {
                Some(k) => match get_str(&by_original, k)? {
                    Some(relay_id) => get::<MessageLink>(&by_relay, &relay_id)?,
                    None => None,
                },
                None => None,
            };
            let link = match known {
                Some(link) => link,
                None => {
                    let link = MessageLink {
                        relay_id: mint_message_id(msg.relay_domain),
                        original_id: msg.original_id.map(String::from),
                        seller: msg.seller.into(),
                        buyer: msg.buyer.into(),
                        sender: msg.sender,
                        at: msg.at,
                    };
                    put(&mut by_relay, &link.relay_id, &link)?;
                    if let Some(k) = &original_key {
                        by_original
                            .insert(k.as_str(), link.relay_id.as_str())
                            .map_err(backend)?;
                    }
                    link
                }
            };
            let mut references = Vec::with_capacity(msg.referenced.len());
            for id in msg.referenced {
                // Only the other side's originals can be named by a relay id the
                // sender saw; only the sender's own originals by their real id.
                let own_key = format!("{}{SEP}{side}{SEP}{id}", pair_key(msg.seller, msg.buyer));
                let by_original_id = match get_str(&by_original, &own_key)? {
                    Some(relay_id) => get(&by_relay, &relay_id)?,
                    None => None,
                };
                references.push(Reference {
                    id: id.clone(),
                    by_relay_id: get(&by_relay, id)?,
                    by_original_id,
                });
            }
            Ok(RecordedMessage {
                pair_alias,
                link,
                references,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    fn fixture() -> (tempfile::TempDir, RedbStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("store.redb")).unwrap();
        store
            .add_seller(NewSeller {
                id: "S1".into(),
                name: "Shop One".into(),
                service_address: addr("cs@shop1.example"),
                approved_addresses: vec![addr("sales@shop1.example")],
            })
            .unwrap();
        store
            .add_buyer(NewBuyer {
                id: "B1".into(),
                email: addr("bob@buyer.example"),
                name: None,
            })
            .unwrap();
        (dir, store)
    }

    #[test]
    fn pair_alias_is_stable_and_survives_reopening() {
        let (dir, store) = fixture();
        let a = store.pair_alias("S1", "B1").unwrap();
        assert_eq!(store.pair_alias("S1", "B1").unwrap(), a);
        assert_eq!(
            store.alias_owner(&a).unwrap(),
            Some(AliasOwner::Pair {
                seller: "S1".into(),
                buyer: "B1".into()
            })
        );
        drop(store);
        let store = RedbStore::open(&dir.path().join("store.redb")).unwrap();
        assert_eq!(store.pair_alias("S1", "B1").unwrap(), a);
    }

    #[test]
    fn pair_needs_known_parties() {
        let (_d, store) = fixture();
        assert!(matches!(
            store.pair_alias("S1", "nobody"),
            Err(StoreError::NotFound { kind: "buyer", .. })
        ));
    }

    #[test]
    fn approved_address_belongs_to_one_seller_and_failed_changes_apply_nothing() {
        let (_d, store) = fixture();
        let err = store
            .add_seller(NewSeller {
                id: "S2".into(),
                name: "Two".into(),
                service_address: addr("cs@two.example"),
                approved_addresses: vec![addr("new@two.example"), addr("sales@shop1.example")],
            })
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)));
        assert_eq!(store.seller("S2").unwrap(), None);
        assert_eq!(
            store.seller_by_approved(&addr("new@two.example")).unwrap(),
            None
        );
        assert_eq!(
            store
                .seller_by_approved(&addr("sales@shop1.example"))
                .unwrap()
                .unwrap()
                .id,
            "S1"
        );
        store.revoke("S1", &addr("sales@shop1.example")).unwrap();
        assert_eq!(
            store
                .seller_by_approved(&addr("sales@shop1.example"))
                .unwrap(),
            None
        );
    }

    #[test]
    fn record_message_is_idempotent_per_original_id() {
        let (_d, store) = fixture();
        let msg = NewMessage {
            seller: "S1",
            buyer: "B1",
            sender: Party::Buyer,
            original_id: Some("b1@buyer.example"),
            referenced: &[],
            relay_domain: "m.example.com",
            at: 1,
        };
        let first = store.record_message(&msg).unwrap();
        let again = store.record_message(&msg).unwrap();
        assert_eq!(first, again);
        assert!(first.link.relay_id.ends_with("@m.example.com"));
        let reply = store
            .record_message(&NewMessage {
                sender: Party::Seller,
                original_id: Some("s1@shop1.example"),
                referenced: &[first.link.relay_id.clone(), "b1@buyer.example".into()],
                ..msg
            })
            .unwrap();
        assert_eq!(reply.references[0].by_relay_id.as_ref(), Some(&first.link));
        // The buyer's own original id is not the seller's to name.
        assert_eq!(reply.references[1].by_original_id, None);
    }
}
