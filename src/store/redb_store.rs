//! The embedded store: redb, one file.
//!
//! Messages are recorded without a flush of their own: each group commit
//! writes its records to the archive journal ([`Archive`], the file the
//! messages' copies go to) and commits to redb non-durably; one `fdatasync` of
//! the journal then makes both the copies and the records durable. About once a
//! second, and with every other write (sellers, buyers, orders, marks), the
//! store commits durably and notes how far the journal is applied; opening the
//! store replays the journal's records after that point (recording a message is
//! idempotent, so a record applied twice is applied once).
//!
//! After an I/O error (disk full, a file-size limit, EIO) redb fails every
//! later call on that `Database` ("close and re-open"): the store then reopens
//! the file on its next call, so the relay serves again once the fault is gone
//! instead of tempfailing every message until a restart.

use super::archive::{Applied, Archive, day_dir};
use super::read_cache::ReadCache;
use super::*;
use crate::alias::{ALIAS_LEN, mint_message_id, random_local};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};
use serde::de::DeserializeOwned;
use std::cell::Cell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

// Values are JSON: small records, readable with any redb tool, and tolerant of
// added fields.
const SELLERS: TableDefinition<&str, &str> = TableDefinition::new("sellers");
const BUYERS: TableDefinition<&str, &str> = TableDefinition::new("buyers");
const ORDERS: TableDefinition<&str, &str> = TableDefinition::new("orders");
/// approved sending address -> seller id
const APPROVED: TableDefinition<&str, &str> = TableDefinition::new("approved_addresses");
/// SMTP AUTH login -> seller id
const LOGINS: TableDefinition<&str, &str> = TableDefinition::new("seller_logins");
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

/// relay Message-ID -> MessageRecord
const MESSAGES: TableDefinition<&str, &str> = TableDefinition::new("messages");
/// command token -> relay Message-ID of a buyer message
const TOKENS: TableDefinition<&str, &str> = TableDefinition::new("command_tokens");
/// counters: "message_seq"; "journal_seq" (the last index record applied durably);
/// "journal_initialized"
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// archive day -> (segment inode, offset of the first journal frame not yet durably applied)
const JOURNAL: TableDefinition<&str, (u64, u64)> = TableDefinition::new("journal_applied");
/// "seller\x1f{day:08}" -> orders created that UTC day
const SELLER_DAY_ORDERS: TableDefinition<&str, u64> = TableDefinition::new("seller_day_orders");
/// "seller\x1f{day:08}" -> seller messages delivered that UTC day
const SELLER_DAY_SENT: TableDefinition<&str, u64> = TableDefinition::new("seller_day_sent");

const SEP: char = '\x1f';

fn day_key(seller: &str, day: u64) -> String {
    format!("{seller}{SEP}{day:08}")
}

fn side(p: Party) -> &'static str {
    match p {
        Party::Buyer => "buyer",
        Party::Seller => "seller",
    }
}

fn original_key(seller: &str, buyer: &str, sender: Party, id: &str) -> String {
    format!("{seller}{SEP}{buyer}{SEP}{}{SEP}{id}", side(sender))
}

pub struct RedbStore {
    path: PathBuf,
    cache_bytes: usize,
    /// `None` once closed after an I/O error, until a reopen succeeds. Every
    /// call holds the read lock while it uses the database, so a reopen (write
    /// lock) closes it with no transaction alive.
    db: RwLock<Option<Database>>,
    /// An I/O error latched the database: the next call reopens it.
    failed: AtomicBool,
    /// When the last reopen was tried: while the fault lasts, at most one try
    /// (a repair of the file) per `REOPEN_INTERVAL`.
    last_reopen: Mutex<Option<Instant>>,
    batch: std::sync::Mutex<Batch>,
    batch_done: std::sync::Condvar,
    /// Where message records are journaled: the archive.
    journal: Arc<Archive>,
    /// The last index record written to the journal.
    journal_seq: AtomicU64,
    last_checkpoint: Mutex<Instant>,
    /// `record_message` leaves the journal's flush to its caller.
    deferred_sync: bool,
    /// Sellers, buyers, orders and aliases as last read; emptied by `write`.
    cache: ReadCache,
}

const REOPEN_INTERVAL: Duration = Duration::from_millis(500);
/// How long message records may stay applied non-durably (journaled only).
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

impl Drop for RedbStore {
    /// A last checkpoint, so that closing (which makes pending non-durable
    /// commits durable) leaves nothing to replay.
    fn drop(&mut self) {
        if let Err(e) = self.write(|_| Ok(())) {
            tracing::warn!("store: no checkpoint at close ({e}); the next start replays the journal");
        }
    }
}

thread_local! {
    /// Set by [`backend`] when a redb call on this thread failed with an I/O
    /// error; store calls run on one thread, so the call that saw it knows.
    static IO_FAILED: Cell<bool> = const { Cell::new(false) };
}

#[derive(Default)]
struct Batch {
    next_id: u64,
    queue: Vec<(u64, OwnedMessage)>,
    results: std::collections::HashMap<u64, Result<Recorded, StoreError>>,
    leader: bool,
}

/// A `NewMessage` that can wait in the group-commit queue; as journaled.
#[derive(Serialize, Deserialize)]
struct OwnedMessage {
    seller: String,
    buyer: String,
    sender: Party,
    original_id: Option<String>,
    relay_domain: String,
    at: u64,
    decision: Decision,
    order: Option<String>,
    subject: Option<String>,
    allowance: Option<DailyAllowance>,
    archive: Option<super::archive::ArchiveRef>,
    auto_submitted: bool,
    answers: Vec<String>,
    relay_id: Option<String>,
    token: Option<String>,
    removed: Removed,
    reason: Option<String>,
    #[serde(default)]
    notice: bool,
}

impl From<&NewMessage<'_>> for OwnedMessage {
    fn from(m: &NewMessage<'_>) -> Self {
        let own = |s: Option<&str>| s.map(String::from);
        OwnedMessage {
            seller: m.seller.into(),
            buyer: m.buyer.into(),
            sender: m.sender,
            original_id: own(m.original_id),
            relay_domain: m.relay_domain.into(),
            at: m.at,
            decision: m.decision,
            order: own(m.order),
            subject: own(m.subject),
            allowance: m.allowance,
            archive: m.archive,
            auto_submitted: m.auto_submitted,
            answers: m.answers.to_vec(),
            relay_id: own(m.relay_id),
            token: own(m.token),
            removed: m.removed.clone(),
            reason: own(m.reason),
            notice: m.notice,
        }
    }
}

impl OwnedMessage {
    fn as_new(&self) -> NewMessage<'_> {
        NewMessage {
            seller: &self.seller,
            buyer: &self.buyer,
            sender: self.sender,
            original_id: self.original_id.as_deref(),
            relay_domain: &self.relay_domain,
            at: self.at,
            decision: self.decision,
            order: self.order.as_deref(),
            subject: self.subject.as_deref(),
            allowance: self.allowance,
            archive: self.archive,
            auto_submitted: self.auto_submitted,
            answers: &self.answers,
            relay_id: self.relay_id.as_deref(),
            token: self.token.as_deref(),
            removed: self.removed.clone(),
            reason: self.reason.as_deref(),
            notice: self.notice,
        }
    }
}

/// Each queued message's own result, by its place in the queue.
type BatchResults = Vec<(u64, Result<Recorded, StoreError>)>;

/// One group commit's records in the journal, in the order they were applied.
#[derive(Serialize)]
struct IndexRecord<'a> {
    seq: u64,
    messages: Vec<&'a OwnedMessage>,
}

#[derive(Deserialize)]
struct ReadIndexRecord {
    seq: u64,
    messages: Vec<OwnedMessage>,
}

fn journal_io(journal: &Archive) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |e| StoreError::Backend(format!("archive journal {}: {e}", journal.dir().display()))
}

fn backend(e: impl Into<redb::Error>) -> StoreError {
    let e = e.into();
    if matches!(e, redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::DatabaseClosed) {
        IO_FAILED.set(true);
    }
    StoreError::Backend(e.to_string())
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

fn get_str(t: &impl ReadableTable<&'static str, &'static str>, key: &str) -> Result<Option<String>, StoreError> {
    Ok(t.get(key).map_err(backend)?.map(|v| v.value().to_string()))
}

fn put<T: Serialize>(t: &mut Table<&'static str, &'static str>, key: &str, v: &T) -> Result<(), StoreError> {
    t.insert(key, to_json(v).as_str()).map_err(backend)?;
    Ok(())
}

fn pair_key(seller: &str, buyer: &str) -> String {
    format!("{seller}{SEP}{buyer}")
}

impl RedbStore {
    /// Opens (or creates) the store with redb's default page cache (1 GiB),
    /// journaling message records into `journal` (the archive their copies go to).
    pub fn open(path: &Path, journal: Arc<Archive>) -> Result<Self, StoreError> {
        Self::open_with_cache(path, 1 << 30, journal)
    }

    /// Opens the store with a bounded page cache: redb's cache grows with the
    /// store up to this size, and so does the daemon's memory. Replays what the
    /// journal holds beyond the store's last durable commit.
    pub fn open_with_cache(path: &Path, cache_bytes: usize, journal: Arc<Archive>) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", dir.display())))?;
        }
        let db = Self::open_db(path, cache_bytes)?;
        let seq = Self::replay(&db, &journal)?;
        Ok(RedbStore {
            path: path.to_path_buf(),
            cache_bytes,
            db: RwLock::new(Some(db)),
            failed: AtomicBool::new(false),
            last_reopen: Mutex::new(None),
            batch: Default::default(),
            batch_done: Default::default(),
            journal,
            journal_seq: AtomicU64::new(seq),
            last_checkpoint: Mutex::new(Instant::now()),
            deferred_sync: false,
            cache: ReadCache::default(),
        })
    }

    /// `record_message` returns once the record is applied and journaled, not
    /// flushed: the caller must await [`Archive::durable`] (for a mark taken
    /// after the call) before it lets the message be acknowledged. The daemon's
    /// milter does, so the flush does not block its thread.
    pub fn with_deferred_sync(mut self) -> Self {
        self.deferred_sync = true;
        self
    }

    /// Applies the journal's records beyond the store's last durable commit,
    /// durably; returns the last index record's number. A store that has never
    /// journaled into this archive takes what the archive holds as applied.
    fn replay(db: &Database, journal: &Archive) -> Result<u64, StoreError> {
        let txn = db.begin_write().map_err(backend)?;
        let (seq, initialized) = {
            let meta = txn.open_table(META).map_err(backend)?;
            let value = |k: &str| meta.get(k).map(|v| v.map(|v| v.value()));
            (value("journal_seq").map_err(backend)?.unwrap_or(0), value("journal_initialized").map_err(backend)?)
        };
        if initialized.is_none() {
            let mut applied = txn.open_table(JOURNAL).map_err(backend)?;
            for (day, a) in journal.existing().map_err(journal_io(journal))? {
                applied.insert(day.as_str(), (a.ino, a.offset)).map_err(backend)?;
            }
            drop(applied);
            txn.open_table(META).map_err(backend)?.insert("journal_initialized", 1).map_err(backend)?;
            txn.commit().map_err(backend)?;
            return Ok(seq);
        }
        let applied: HashMap<String, Applied> = {
            let t = txn.open_table(JOURNAL).map_err(backend)?;
            let mut applied = HashMap::new();
            for entry in t.iter().map_err(backend)? {
                let (k, v) = entry.map_err(backend)?;
                let (ino, offset) = v.value();
                applied.insert(k.value().to_string(), Applied { ino, offset });
            }
            applied
        };
        let super::archive::Recovered { index: frames, ends } =
            journal.recover(&applied).map_err(journal_io(journal))?;
        let mut batches = Vec::with_capacity(frames.len());
        for f in &frames {
            match serde_json::from_slice::<ReadIndexRecord>(&f.payload) {
                Ok(batch) => batches.push(batch),
                // Whole and checked, so written by another version: said, and skipped.
                Err(e) => tracing::warn!(day = f.day, offset = f.offset, "journal: unreadable index record: {e}"),
            }
        }
        batches.sort_by_key(|b| b.seq);
        let (mut replayed, mut last) = (0usize, seq);
        for batch in &batches {
            last = last.max(batch.seq);
            for m in &batch.messages {
                match Self::record_in(&txn, &m.as_new()) {
                    Ok(Recorded::Done { .. }) => replayed += 1,
                    Err(e @ StoreError::Backend(_)) => return Err(e),
                    other => tracing::warn!(batch = batch.seq, "journal: a record did not apply again: {other:?}"),
                }
            }
        }
        {
            let mut t = txn.open_table(JOURNAL).map_err(backend)?;
            let gone: Vec<String> = applied.keys().filter(|d| !ends.iter().any(|(e, _)| e == *d)).cloned().collect();
            for day in gone {
                t.remove(day.as_str()).map_err(backend)?;
            }
            for (day, a) in &ends {
                t.insert(day.as_str(), (a.ino, a.offset)).map_err(backend)?;
            }
        }
        txn.open_table(META).map_err(backend)?.insert("journal_seq", last).map_err(backend)?;
        txn.commit().map_err(backend)?;
        if replayed > 0 {
            tracing::info!(
                "store: applied {replayed} message record(s) from the journal ({} group commits)",
                batches.len()
            );
        }
        Ok(last)
    }

    /// Inside a durable write transaction: makes the journal durable up to
    /// where it ends now and notes that it is applied that far.
    fn checkpoint(&self, txn: &WriteTransaction) -> Result<(), StoreError> {
        // Index records are appended only inside write transactions, so every one up to
        // these ends is applied once this transaction commits.
        let ends = self.journal.ends();
        self.journal.sync().map_err(journal_io(&self.journal))?;
        let mut t = txn.open_table(JOURNAL).map_err(backend)?;
        for (day, a) in &ends {
            t.insert(day.as_str(), (a.ino, a.offset)).map_err(backend)?;
        }
        drop(t);
        let seq = self.journal_seq.load(Ordering::SeqCst);
        txn.open_table(META).map_err(backend)?.insert("journal_seq", seq).map_err(backend)?;
        *self.last_checkpoint.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        Ok(())
    }

    /// Opens (creates, repairs) the file and makes sure every table exists.
    fn open_db(path: &Path, cache_bytes: usize) -> Result<Database, StoreError> {
        let db = redb::Builder::new()
            .set_cache_size(cache_bytes)
            .create(path)
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
            MESSAGES,
            TOKENS,
            LOGINS,
        ] {
            txn.open_table(t).map_err(backend)?;
        }
        for t in [SELLER_DAY_ORDERS, SELLER_DAY_SENT, META] {
            txn.open_table(t).map_err(backend)?;
        }
        txn.open_table(JOURNAL).map_err(backend)?;
        txn.commit().map_err(backend)?;
        Ok(db)
    }

    /// Runs `f` on the database, reopening it first if an I/O error latched
    /// it; notes an I/O error `f` runs into. The call that fails returns its
    /// error (the message tempfails); the next one gets a fresh database.
    fn with_db<R>(&self, f: impl FnOnce(&Database) -> Result<R, StoreError>) -> Result<R, StoreError> {
        if self.failed.load(Ordering::Acquire) {
            self.reopen()?;
        }
        IO_FAILED.set(false);
        let result = {
            let db = self.db.read().unwrap_or_else(|e| e.into_inner());
            match db.as_ref() {
                Some(db) => f(db),
                None => Err(StoreError::Backend("the store is closed after an I/O error".into())),
            }
        };
        if result.is_err() && IO_FAILED.get() {
            self.failed.store(true, Ordering::Release);
        }
        result
    }

    fn reopen(&self) -> Result<(), StoreError> {
        let mut db = self.db.write().unwrap_or_else(|e| e.into_inner());
        if !self.failed.load(Ordering::Acquire) {
            return Ok(()); // another call reopened it meanwhile
        }
        {
            let mut last = self.last_reopen.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < REOPEN_INTERVAL) {
                return Err(StoreError::Backend("the store failed with an I/O error; reopening it shortly".into()));
            }
            *last = Some(Instant::now());
        }
        if let Some(old) = db.take() {
            // Releases the file; the error is the latched one.
            let _ = old.close();
        }
        let reopened = Self::open_db(&self.path, self.cache_bytes)?;
        // What was committed non-durably is gone with the old handle; the journal has it.
        let seq = Self::replay(&reopened, &self.journal)?;
        self.journal_seq.fetch_max(seq, Ordering::SeqCst);
        *db = Some(reopened);
        self.cache.invalidate();
        self.failed.store(false, Ordering::Release);
        tracing::warn!("store reopened after an I/O error");
        Ok(())
    }

    fn read<R>(&self, f: impl FnOnce(&redb::ReadTransaction) -> Result<R, StoreError>) -> Result<R, StoreError> {
        self.with_db(|db| {
            let txn = db.begin_read().map_err(backend)?;
            f(&txn)
        })
    }

    /// Runs `f` in a write transaction and commits (durably, with a journal
    /// checkpoint) only if it succeeds: an error leaves nothing half-applied.
    /// Every change to what [`ReadCache`] holds goes through here.
    fn write<R>(&self, f: impl FnOnce(&WriteTransaction) -> Result<R, StoreError>) -> Result<R, StoreError> {
        let result = self.with_db(|db| {
            let txn = db.begin_write().map_err(backend)?;
            let r = f(&txn)?;
            // This commit makes the earlier non-durable ones durable: their journal first.
            self.checkpoint(&txn)?;
            txn.commit().map_err(backend)?;
            Ok(r)
        });
        self.cache.invalidate();
        result
    }

    /// The orders of the pair `key` ([`pair_key`]), oldest first.
    fn orders_of_pair_uncached(&self, key: &str) -> Result<Vec<Order>, StoreError> {
        self.read(|txn| {
            let prefix = format!("{key}{SEP}");
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

    fn load_seller(txn: &WriteTransaction, id: &str) -> Result<Seller, StoreError> {
        get(&txn.open_table(SELLERS).map_err(backend)?, id)?
            .ok_or_else(|| StoreError::NotFound { kind: "seller", id: id.into() })
    }

    fn load_buyer(txn: &WriteTransaction, id: &str) -> Result<Buyer, StoreError> {
        get(&txn.open_table(BUYERS).map_err(backend)?, id)?
            .ok_or_else(|| StoreError::NotFound { kind: "buyer", id: id.into() })
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

    fn ensure_pair(txn: &WriteTransaction, seller: &str, buyer: &str) -> Result<String, StoreError> {
        let key = pair_key(seller, buyer);
        if let Some(alias) = get_str(&txn.open_table(PAIRS).map_err(backend)?, &key)? {
            return Ok(alias);
        }
        Self::load_seller(txn, seller)?;
        Self::load_buyer(txn, buyer)?;
        let owner = AliasOwner::Pair { seller: seller.into(), buyer: buyer.into() };
        let alias = Self::new_alias(txn, &owner)?;
        txn.open_table(PAIRS).map_err(backend)?.insert(key.as_str(), alias.as_str()).map_err(backend)?;
        Ok(alias)
    }

    fn check_approvable(txn: &WriteTransaction, seller: &str, addr: &Address) -> Result<(), StoreError> {
        match get_str(&txn.open_table(APPROVED).map_err(backend)?, addr.as_str())? {
            Some(owner) if owner != seller => {
                Err(StoreError::Conflict(format!("address {addr} is already approved for seller {owner:?}")))
            }
            _ => Ok(()),
        }
    }
}

impl RedbStore {
    /// Records one message in `txn`. A refusal (over limit, unknown party,
    /// conflict) is decided before this message writes anything.
    fn record_in(txn: &WriteTransaction, msg: &NewMessage<'_>) -> Result<Recorded, StoreError> {
        // A notice about a report whose buyer is unknown belongs to no pair.
        let pair_alias = match msg.buyer {
            "" if msg.notice => String::new(),
            buyer => Self::ensure_pair(txn, msg.seller, buyer)?,
        };
        let key = msg.original_id.map(|id| original_key(msg.seller, msg.buyer, msg.sender, id));
        let known: Option<MessageLink> = {
            let by_original = txn.open_table(MSG_BY_ORIGINAL).map_err(backend)?;
            let by_relay = txn.open_table(MSG_BY_RELAY).map_err(backend)?;
            match key.as_deref().map(|k| get_str(&by_original, k)).transpose()?.flatten() {
                Some(relay_id) => get(&by_relay, &relay_id)?,
                // A message recorded under the relay id it brings (a replayed journal record,
                // or a message without Message-ID) is not counted again.
                None => msg.relay_id.map(|id| get(&by_relay, id)).transpose()?.flatten(),
            }
        };
        if let (None, Some(allowance), Decision::Delivered) = (&known, msg.allowance, msg.decision) {
            // Counted at acceptance, exactly: write transactions are serialised.
            let mut sent = txn.open_table(SELLER_DAY_SENT).map_err(backend)?;
            let k = day_key(msg.seller, allowance.day);
            let n = sent.get(k.as_str()).map_err(backend)?.map_or(0, |v| v.value());
            if n >= allowance.limit {
                // Nothing of this message is written; the batch goes on.
                return Ok(Recorded::OverLimit { sent: n });
            }
            sent.insert(k.as_str(), n + 1).map_err(backend)?;
        }
        if let (Some(link), Some(wanted)) = (&known, msg.relay_id)
            && link.relay_id != wanted
        {
            return Err(StoreError::Conflict(format!("message recorded concurrently as {}", link.relay_id)));
        }
        let link = match known {
            Some(link) => link,
            None => {
                let link = MessageLink {
                    relay_id: msg.relay_id.map_or_else(|| mint_message_id(msg.relay_domain), String::from),
                    original_id: msg.original_id.map(String::from),
                    seller: msg.seller.into(),
                    buyer: msg.buyer.into(),
                    sender: msg.sender,
                    at: msg.at,
                };
                put(&mut txn.open_table(MSG_BY_RELAY).map_err(backend)?, &link.relay_id, &link)?;
                if let Some(k) = &key {
                    txn.open_table(MSG_BY_ORIGINAL)
                        .map_err(backend)?
                        .insert(k.as_str(), link.relay_id.as_str())
                        .map_err(backend)?;
                }
                link
            }
        };
        let mut messages = txn.open_table(MESSAGES).map_err(backend)?;
        let previous: Option<MessageRecord> = get(&messages, &link.relay_id)?;
        let seq = match &previous {
            Some(p) => p.seq,
            None => {
                let mut meta = txn.open_table(META).map_err(backend)?;
                let next = meta.get("message_seq").map_err(backend)?.map_or(0, |v| v.value()) + 1;
                meta.insert("message_seq", next).map_err(backend)?;
                next
            }
        };
        let record = MessageRecord {
            seq,
            relay_id: link.relay_id.clone(),
            at: msg.at,
            seller: msg.seller.into(),
            buyer: msg.buyer.into(),
            sender: msg.sender,
            decision: msg.decision,
            order: msg.order.map(String::from),
            subject: msg.subject.map(String::from),
            alias: pair_alias.clone(),
            archive: msg.archive,
            auto_submitted: msg.auto_submitted,
            // What happened to the message since (a retry keeps it).
            answered_at: previous.as_ref().and_then(|p| p.answered_at),
            no_response_needed: previous.as_ref().is_some_and(|p| p.no_response_needed),
            reported: previous.as_ref().is_some_and(|p| p.reported),
            token: match previous.as_ref().and_then(|p| p.token.clone()) {
                Some(t) => Some(t),
                // Buyer messages get a token the seller's mail client can act on.
                None if msg.sender == Party::Buyer && msg.decision == Decision::Delivered && !msg.notice => {
                    let token = msg.token.map_or_else(|| random_local(TOKEN_LEN), String::from);
                    txn.open_table(TOKENS)
                        .map_err(backend)?
                        .insert(token.as_str(), link.relay_id.as_str())
                        .map_err(backend)?;
                    Some(token)
                }
                None => None,
            },
            removed: msg.removed.clone(),
            reason: msg.reason.map(String::from),
            notice: msg.notice,
        };
        put(&mut messages, &record.relay_id, &record)?;
        // A seller's (human) reply answers the buyer messages it names; the first reply counts.
        if msg.sender == Party::Seller && msg.decision == Decision::Delivered && !msg.auto_submitted {
            for id in msg.answers {
                if let Some(mut asked) = get::<MessageRecord>(&messages, id)? {
                    let same_pair = asked.seller == msg.seller && asked.buyer == msg.buyer;
                    if same_pair && asked.sender == Party::Buyer && asked.answered_at.is_none() {
                        asked.answered_at = Some(msg.at);
                        put(&mut messages, id, &asked)?;
                    }
                }
            }
        }
        drop(messages);
        Ok(Recorded::Done { pair_alias, link })
    }

    /// Group commit: concurrent callers queue their messages; one of them
    /// records the whole queue in one write transaction with one fsync, and
    /// hands each caller its own result. A store failure fails the batch (each
    /// caller tempfails and Postfix retries); per-message refusals do not.
    fn group_commit(&self, msg: OwnedMessage) -> Result<Recorded, StoreError> {
        let mut b = self.batch.lock().unwrap_or_else(|e| e.into_inner());
        let id = b.next_id;
        b.next_id += 1;
        b.queue.push((id, msg));
        loop {
            if let Some(r) = b.results.remove(&id) {
                return r;
            }
            if b.leader {
                b = self.batch_done.wait(b).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            b.leader = true;
            let mut jobs = std::mem::take(&mut b.queue);
            drop(b);
            let results = self.commit_batch(&mut jobs);
            b = self.batch.lock().unwrap_or_else(|e| e.into_inner());
            b.leader = false;
            b.results.extend(results);
            self.batch_done.notify_all();
        }
    }

    /// Records a batch in one write transaction and journals what it recorded.
    /// The commit is non-durable (the journal's flush, after this, is what
    /// makes the batch durable), but for a checkpoint about once a second.
    fn commit_batch(&self, jobs: &mut [(u64, OwnedMessage)]) -> BatchResults {
        let checkpoint =
            self.last_checkpoint.lock().unwrap_or_else(|e| e.into_inner()).elapsed() >= CHECKPOINT_INTERVAL;
        let mut run = || -> Result<BatchResults, StoreError> {
            self.with_db(|db| {
                let mut txn = db.begin_write().map_err(backend)?;
                if !checkpoint {
                    txn.set_durability(Durability::None).map_err(backend)?;
                }
                let mut results = Vec::with_capacity(jobs.len());
                for (id, job) in jobs.iter_mut() {
                    match Self::record_in(&txn, &job.as_new()) {
                        Err(e @ StoreError::Backend(_)) => return Err(e),
                        Ok(Recorded::Done { pair_alias, link }) => {
                            // Replayed, it finds itself under this id.
                            job.relay_id = Some(link.relay_id.clone());
                            results.push((*id, Ok(Recorded::Done { pair_alias, link })));
                        }
                        r => results.push((*id, r)),
                    }
                }
                let recorded: Vec<&OwnedMessage> = jobs
                    .iter()
                    .zip(&results)
                    .filter(|(_, (_, r))| matches!(r, Ok(Recorded::Done { .. })))
                    .map(|((_, job), _)| job)
                    .collect();
                if let Some(first) = recorded.first() {
                    let seq = self.journal_seq.fetch_add(1, Ordering::SeqCst) + 1;
                    let day = day_dir(first.at);
                    let payload = serde_json::to_vec(&IndexRecord { seq, messages: recorded })
                        .expect("message records serialize: plain structs of strings and numbers");
                    // Appended before the commit: a failed append rolls the batch back.
                    self.journal.append_index(&day, &payload).map_err(journal_io(&self.journal))?;
                }
                if checkpoint {
                    self.checkpoint(&txn)?;
                }
                txn.commit().map_err(backend)?;
                Ok(results)
            })
        };
        match run() {
            Ok(results) => results,
            Err(StoreError::Backend(e)) => {
                jobs.iter().map(|(id, _)| (*id, Err(StoreError::Backend(e.clone())))).collect()
            }
            Err(e) => jobs.iter().map(|(id, _)| (*id, Err(StoreError::Backend(e.to_string())))).collect(),
        }
    }
}

impl Store for RedbStore {
    fn add_seller(&self, new: NewSeller) -> Result<Seller, StoreError> {
        self.write(|txn| {
            if txn.open_table(SELLERS).map_err(backend)?.get(new.id.as_str()).map_err(backend)?.is_some() {
                return Err(StoreError::Duplicate { kind: "seller", id: new.id.clone() });
            }
            let mut approved_addresses: Vec<Address> = Vec::new();
            for a in &new.approved_addresses {
                Self::check_approvable(txn, &new.id, a)?;
                if !approved_addresses.contains(a) {
                    approved_addresses.push(a.clone());
                }
            }
            let alias = Self::new_alias(txn, &AliasOwner::Seller { seller: new.id.clone() })?;
            let seller = Seller {
                id: new.id,
                name: new.name,
                service_address: new.service_address,
                approved_addresses,
                alias,
                opt_out_notices: true,
                logins: Vec::new(),
            };
            let mut approved = txn.open_table(APPROVED).map_err(backend)?;
            for a in &seller.approved_addresses {
                approved.insert(a.as_str(), seller.id.as_str()).map_err(backend)?;
            }
            put(&mut txn.open_table(SELLERS).map_err(backend)?, &seller.id, &seller)?;
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
                txn.open_table(APPROVED).map_err(backend)?.insert(addr.as_str(), id).map_err(backend)?;
                put(&mut txn.open_table(SELLERS).map_err(backend)?, id, &seller)?;
            }
            Ok(seller)
        })
    }

    fn revoke(&self, id: &str, addr: &Address) -> Result<Seller, StoreError> {
        self.write(|txn| {
            let mut seller = Self::load_seller(txn, id)?;
            if !seller.approves(addr) {
                return Err(StoreError::NotFound { kind: "approved address", id: addr.to_string() });
            }
            seller.approved_addresses.retain(|a| a != addr);
            txn.open_table(APPROVED).map_err(backend)?.remove(addr.as_str()).map_err(backend)?;
            put(&mut txn.open_table(SELLERS).map_err(backend)?, id, &seller)?;
            Ok(seller)
        })
    }

    fn map_login(&self, id: &str, login: &str) -> Result<Seller, StoreError> {
        self.write(|txn| {
            let mut seller = Self::load_seller(txn, id)?;
            let mut logins = txn.open_table(LOGINS).map_err(backend)?;
            match get_str(&logins, login)? {
                Some(owner) if owner != id => {
                    return Err(StoreError::Conflict(format!("login {login:?} is already mapped to seller {owner:?}")));
                }
                Some(_) => return Ok(seller),
                None => {}
            }
            logins.insert(login, id).map_err(backend)?;
            seller.logins.push(login.to_string());
            put(&mut txn.open_table(SELLERS).map_err(backend)?, id, &seller)?;
            Ok(seller)
        })
    }

    fn unmap_login(&self, id: &str, login: &str) -> Result<Seller, StoreError> {
        self.write(|txn| {
            let mut seller = Self::load_seller(txn, id)?;
            if !seller.logins.iter().any(|l| l == login) {
                return Err(StoreError::NotFound { kind: "login", id: login.into() });
            }
            seller.logins.retain(|l| l != login);
            txn.open_table(LOGINS).map_err(backend)?.remove(login).map_err(backend)?;
            put(&mut txn.open_table(SELLERS).map_err(backend)?, id, &seller)?;
            Ok(seller)
        })
    }

    fn seller(&self, id: &str) -> Result<Option<Seller>, StoreError> {
        self.cache.get_or_load(
            "seller",
            id,
            || self.read(|txn| get(&txn.open_table(SELLERS).map_err(backend)?, id)),
            |_| true,
        )
    }

    fn sellers(&self) -> Result<Vec<Seller>, StoreError> {
        self.read(|txn| {
            let t = txn.open_table(SELLERS).map_err(backend)?;
            let mut out = Vec::new();
            for entry in t.iter().map_err(backend)? {
                out.push(from_json(entry.map_err(backend)?.1.value())?);
            }
            Ok(out)
        })
    }

    fn seller_by_approved(&self, addr: &Address) -> Result<Option<Seller>, StoreError> {
        let load = || {
            self.read(|txn| match get_str(&txn.open_table(APPROVED).map_err(backend)?, addr.as_str())? {
                Some(id) => get(&txn.open_table(SELLERS).map_err(backend)?, &id),
                None => Ok(None),
            })
        };
        self.cache.get_or_load("seller_by_approved", addr.as_str(), load, |_| true)
    }

    fn add_buyer(&self, new: NewBuyer) -> Result<Buyer, StoreError> {
        self.write(|txn| {
            let mut buyers = txn.open_table(BUYERS).map_err(backend)?;
            if buyers.get(new.id.as_str()).map_err(backend)?.is_some() {
                return Err(StoreError::Duplicate { kind: "buyer", id: new.id });
            }
            let mut emails = txn.open_table(BUYER_EMAILS).map_err(backend)?;
            if let Some(other) = get_str(&emails, new.email.as_str())? {
                return Err(StoreError::Conflict(format!(
                    "address {} is already registered for buyer {other:?}",
                    new.email
                )));
            }
            let buyer = Buyer { id: new.id, email: new.email, name: new.name, opted_out: false };
            emails.insert(buyer.email.as_str(), buyer.id.as_str()).map_err(backend)?;
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
        self.cache.get_or_load(
            "buyer",
            id,
            || self.read(|txn| get(&txn.open_table(BUYERS).map_err(backend)?, id)),
            |_| true,
        )
    }

    fn buyer_by_email(&self, addr: &Address) -> Result<Option<Buyer>, StoreError> {
        let load = || {
            self.read(|txn| match get_str(&txn.open_table(BUYER_EMAILS).map_err(backend)?, addr.as_str())? {
                Some(id) => get(&txn.open_table(BUYERS).map_err(backend)?, &id),
                None => Ok(None),
            })
        };
        self.cache.get_or_load("buyer_by_email", addr.as_str(), load, |_| true)
    }

    fn add_order(&self, new: NewOrder) -> Result<Order, StoreError> {
        self.write(|txn| {
            let mut orders = txn.open_table(ORDERS).map_err(backend)?;
            if orders.get(new.id.as_str()).map_err(backend)?.is_some() {
                return Err(StoreError::Duplicate { kind: "order", id: new.id });
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
            txn.open_table(PAIR_ORDERS).map_err(backend)?.insert(key.as_str(), "").map_err(backend)?;
            let mut per_day = txn.open_table(SELLER_DAY_ORDERS).map_err(backend)?;
            let key = day_key(&order.seller, order.created_at / 86_400);
            let n = per_day.get(key.as_str()).map_err(backend)?.map_or(0, |v| v.value());
            per_day.insert(key.as_str(), n + 1).map_err(backend)?;
            drop(per_day);
            Ok(order)
        })
    }

    fn orders_of_pair(&self, seller: &str, buyer: &str) -> Result<Vec<Order>, StoreError> {
        let key = pair_key(seller, buyer);
        self.cache.get_or_load("orders_of_pair", &key, || self.orders_of_pair_uncached(&key), |_| true)
    }

    fn pair_alias(&self, seller: &str, buyer: &str) -> Result<String, StoreError> {
        let key = pair_key(seller, buyer);
        // A pair's alias never changes once made; one made by a message's record is read then.
        let load = || self.read(|txn| get_str(&txn.open_table(PAIRS).map_err(backend)?, &key));
        match self.cache.get_or_load("pair_alias", &key, load, Option::is_some)? {
            Some(alias) => Ok(alias),
            None => self.write(|txn| Self::ensure_pair(txn, seller, buyer)),
        }
    }

    fn alias_owner(&self, local_part: &str) -> Result<Option<AliasOwner>, StoreError> {
        // An unknown alias may be made by a message's record, which does not empty the cache.
        let load = || self.read(|txn| get(&txn.open_table(ALIASES).map_err(backend)?, local_part));
        self.cache.get_or_load("alias_owner", local_part, load, Option::is_some)
    }

    fn references(
        &self,
        seller: &str,
        buyer: &str,
        sender: Party,
        ids: &[String],
    ) -> Result<Vec<Reference>, StoreError> {
        self.read(|txn| {
            let by_relay = txn.open_table(MSG_BY_RELAY).map_err(backend)?;
            let by_original = txn.open_table(MSG_BY_ORIGINAL).map_err(backend)?;
            let mut refs = Vec::with_capacity(ids.len());
            for id in ids {
                // A relay id names the other side's message; a real id only the sender's own.
                let by_original_id = match get_str(&by_original, &original_key(seller, buyer, sender, id))? {
                    Some(relay_id) => get(&by_relay, &relay_id)?,
                    None => None,
                };
                refs.push(Reference { id: id.clone(), by_relay_id: get(&by_relay, id)?, by_original_id });
            }
            Ok(refs)
        })
    }

    fn record_message(&self, msg: &NewMessage<'_>) -> Result<Recorded, StoreError> {
        let mut msg = OwnedMessage::from(msg);
        // Minted here rather than in the transaction, so that a replayed record gets the same.
        if msg.token.is_none() && msg.sender == Party::Buyer && msg.decision == Decision::Delivered {
            msg.token = Some(random_local(TOKEN_LEN));
        }
        let recorded = self.group_commit(msg)?;
        if let (Recorded::Done { .. }, false) = (&recorded, self.deferred_sync) {
            // The record and the message's copies, appended before it, become durable together.
            self.journal.sync().map_err(journal_io(&self.journal))?;
        }
        Ok(recorded)
    }

    fn message(&self, relay_id: &str) -> Result<Option<MessageRecord>, StoreError> {
        self.read(|txn| get(&txn.open_table(MESSAGES).map_err(backend)?, relay_id))
    }

    fn messages(&self, filter: &MessageFilter) -> Result<Vec<MessageRecord>, StoreError> {
        self.read(|txn| {
            let t = txn.open_table(MESSAGES).map_err(backend)?;
            let mut out = Vec::new();
            for entry in t.iter().map_err(backend)? {
                let record: MessageRecord = from_json(entry.map_err(backend)?.1.value())?;
                if filter.matches(&record) {
                    out.push(record);
                }
            }
            out.sort_by_key(|r| r.seq);
            Ok(out)
        })
    }

    fn recorded(
        &self,
        seller: &str,
        buyer: &str,
        sender: Party,
        original_id: &str,
    ) -> Result<Option<MessageRecord>, StoreError> {
        self.read(|txn| {
            match get_str(
                &txn.open_table(MSG_BY_ORIGINAL).map_err(backend)?,
                &original_key(seller, buyer, sender, original_id),
            )? {
                Some(relay_id) => get(&txn.open_table(MESSAGES).map_err(backend)?, &relay_id),
                None => Ok(None),
            }
        })
    }

    fn message_by_token(&self, token: &str) -> Result<Option<MessageRecord>, StoreError> {
        self.read(|txn| match get_str(&txn.open_table(TOKENS).map_err(backend)?, token)? {
            Some(relay_id) => get(&txn.open_table(MESSAGES).map_err(backend)?, &relay_id),
            None => Ok(None),
        })
    }

    fn mark(&self, relay_id: &str, mark: Mark) -> Result<MessageRecord, StoreError> {
        self.write(|txn| {
            let mut t = txn.open_table(MESSAGES).map_err(backend)?;
            let mut r: MessageRecord =
                get(&t, relay_id)?.ok_or_else(|| StoreError::NotFound { kind: "message", id: relay_id.into() })?;
            match mark {
                Mark::NoResponseNeeded => r.no_response_needed = true,
                Mark::Reported => r.reported = true,
            }
            put(&mut t, relay_id, &r)?;
            Ok(r)
        })
    }

    fn purge_messages_before(&self, cutoff: u64) -> Result<usize, StoreError> {
        self.write(|txn| {
            let mut t = txn.open_table(MESSAGES).map_err(backend)?;
            let mut old = Vec::new();
            for entry in t.iter().map_err(backend)? {
                let (k, v) = entry.map_err(backend)?;
                if from_json::<MessageRecord>(v.value())?.at < cutoff {
                    old.push(k.value().to_string());
                }
            }
            for k in &old {
                t.remove(k.as_str()).map_err(backend)?;
            }
            Ok(old.len())
        })
    }

    fn orders_in_days(&self, seller: &str, from_day: u64, to_day: u64) -> Result<u64, StoreError> {
        if from_day > to_day {
            return Ok(0);
        }
        self.read(|txn| {
            let t = txn.open_table(SELLER_DAY_ORDERS).map_err(backend)?;
            let (lo, hi) = (day_key(seller, from_day), day_key(seller, to_day));
            let mut total = 0;
            for entry in t.range(lo.as_str()..=hi.as_str()).map_err(backend)? {
                total += entry.map_err(backend)?.1.value();
            }
            Ok(total)
        })
    }

    fn sent_on_day(&self, seller: &str, day: u64) -> Result<u64, StoreError> {
        self.read(|txn| {
            let t = txn.open_table(SELLER_DAY_SENT).map_err(backend)?;
            Ok(t.get(day_key(seller, day).as_str()).map_err(backend)?.map_or(0, |v| v.value()))
        })
    }
}

#[cfg(test)]
mod tests_support {
    use super::*;

    pub fn addr(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    /// Seller S1 and buyer B1.
    pub fn add_parties(store: &RedbStore) {
        store
            .add_seller(NewSeller {
                id: "S1".into(),
                name: "Shop One".into(),
                service_address: addr("cs@shop1.example"),
                approved_addresses: vec![addr("sales@shop1.example")],
            })
            .unwrap();
        store.add_buyer(NewBuyer { id: "B1".into(), email: addr("bob@buyer.example"), name: None }).unwrap();
    }

    pub fn new_message<'a>(sender: Party, original_id: Option<&'a str>) -> NewMessage<'a> {
        NewMessage {
            seller: "S1",
            buyer: "B1",
            sender,
            original_id,
            relay_domain: "m.example.com",
            at: 1,
            decision: Decision::Delivered,
            order: None,
            subject: None,
            allowance: None,
            archive: None,
            auto_submitted: false,
            answers: &[],
            relay_id: None,
            token: None,
            removed: Removed::default(),
            reason: None,
            notice: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::*;
    use super::*;

    /// The store as the daemon opens it, its journal in `dir/archive`.
    fn open(dir: &Path) -> RedbStore {
        RedbStore::open(&dir.join("store.redb"), Arc::new(Archive::new(dir.join("archive")))).unwrap()
    }

    fn fixture() -> (tempfile::TempDir, RedbStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        add_parties(&store);
        (dir, store)
    }

    #[test]
    fn pair_alias_is_stable_and_survives_reopening() {
        let (dir, store) = fixture();
        let a = store.pair_alias("S1", "B1").unwrap();
        assert_eq!(store.pair_alias("S1", "B1").unwrap(), a);
        assert_eq!(store.alias_owner(&a).unwrap(), Some(AliasOwner::Pair { seller: "S1".into(), buyer: "B1".into() }));
        drop(store);
        let store = open(dir.path());
        assert_eq!(store.pair_alias("S1", "B1").unwrap(), a);
    }

    /// The reads a message makes are served from the read cache once read;
    /// every change the admin API makes is seen by the next read all the same.
    #[test]
    fn every_change_is_seen_by_the_next_read() {
        let (_d, store) = fixture();
        let bob = addr("bob@buyer.example");
        let read_all = |store: &RedbStore| {
            (
                store.seller("S1").unwrap().unwrap(),
                store.buyer("B1").unwrap().unwrap(),
                store.buyer_by_email(&bob).unwrap(),
                store.seller_by_approved(&addr("new@shop1.example")).unwrap(),
                store.orders_of_pair("S1", "B1").unwrap(),
                store.seller("S2").unwrap(),
            )
        };
        let before = read_all(&store);
        assert_eq!(read_all(&store), before, "the same twice");
        store.set_opted_out("B1", true).unwrap();
        assert!(store.buyer("B1").unwrap().unwrap().opted_out);
        assert!(store.buyer_by_email(&bob).unwrap().unwrap().opted_out);
        store.update_seller("S1", SellerUpdate { name: Some("Shop Renamed".into()), ..Default::default() }).unwrap();
        assert_eq!(store.seller("S1").unwrap().unwrap().name, "Shop Renamed");
        store.approve("S1", &addr("new@shop1.example")).unwrap();
        assert_eq!(store.seller_by_approved(&addr("new@shop1.example")).unwrap().unwrap().id, "S1");
        store
            .add_order(NewOrder {
                id: "114-1".into(),
                seller: "S1".into(),
                buyer: "B1".into(),
                category: Some("wine".into()),
                created_at: 5,
            })
            .unwrap();
        assert_eq!(store.orders_of_pair("S1", "B1").unwrap().len(), 1);
        store
            .add_seller(NewSeller {
                id: "S2".into(),
                name: "Two".into(),
                service_address: addr("cs@two.example"),
                approved_addresses: vec![],
            })
            .unwrap();
        assert!(store.seller("S2").unwrap().is_some());
        // The pair alias a message's record makes (no admin write) is found by the next reads.
        assert_eq!(store.alias_owner("0000000000000000").unwrap(), None);
        let link = done(store.record_message(&new_message(Party::Buyer, Some("<m1@buyer.example>"))).unwrap());
        assert_eq!(link.seller, "S1");
        let alias = store.pair_alias("S1", "B1").unwrap();
        assert_eq!(store.pair_alias("S1", "B1").unwrap(), alias);
        assert_eq!(
            store.alias_owner(&alias).unwrap(),
            Some(AliasOwner::Pair { seller: "S1".into(), buyer: "B1".into() })
        );
    }

    #[test]
    fn pair_needs_known_parties() {
        let (_d, store) = fixture();
        assert!(matches!(store.pair_alias("S1", "nobody"), Err(StoreError::NotFound { kind: "buyer", .. })));
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
        assert_eq!(store.seller_by_approved(&addr("new@two.example")).unwrap(), None);
        assert_eq!(store.seller_by_approved(&addr("sales@shop1.example")).unwrap().unwrap().id, "S1");
        store.revoke("S1", &addr("sales@shop1.example")).unwrap();
        assert_eq!(store.seller_by_approved(&addr("sales@shop1.example")).unwrap(), None);
    }

    fn done(r: Recorded) -> MessageLink {
        match r {
            Recorded::Done { link, .. } => link,
            other => panic!("not recorded: {other:?}"),
        }
    }

    #[test]
    fn record_message_is_idempotent_per_original_id() {
        let (_d, store) = fixture();
        let first = done(store.record_message(&new_message(Party::Buyer, Some("b1@buyer.example"))).unwrap());
        assert_eq!(first, done(store.record_message(&new_message(Party::Buyer, Some("b1@buyer.example"))).unwrap()));
        assert!(first.relay_id.ends_with("@m.example.com"));
        done(store.record_message(&new_message(Party::Seller, Some("s1@shop1.example"))).unwrap());
        let ids = [first.relay_id.clone(), "b1@buyer.example".to_string(), "s1@shop1.example".to_string()];
        let refs = store.references("S1", "B1", Party::Seller, &ids).unwrap();
        assert_eq!(refs[0].by_relay_id.as_ref(), Some(&first));
        // The buyer's own original id is not the seller's to name; the seller's own is.
        assert_eq!(refs[1].by_original_id, None);
        assert_eq!(refs[2].by_original_id.as_ref().unwrap().sender, Party::Seller);
        assert_eq!(store.message(&first.relay_id).unwrap().unwrap().decision, Decision::Delivered);
    }

    #[test]
    fn allowance_is_counted_once_per_message_and_never_exceeded() {
        let (_d, store) = fixture();
        let allowance = Some(DailyAllowance { day: 20_000, limit: 2 });
        let send = |id: &'static str, decision| {
            store.record_message(&NewMessage { allowance, decision, ..new_message(Party::Seller, Some(id)) }).unwrap()
        };
        done(send("a@s", Decision::Delivered));
        done(send("a@s", Decision::Delivered)); // a retry: not counted again
        done(send("x@s", Decision::Blocked)); // blocked: not counted
        done(send("b@s", Decision::Delivered));
        assert_eq!(send("c@s", Decision::Delivered), Recorded::OverLimit { sent: 2 });
        assert_eq!(store.sent_on_day("S1", 20_000).unwrap(), 2);
        assert_eq!(store.sent_on_day("S1", 20_001).unwrap(), 0);
        // Nothing of the refused one was written.
        assert!(store.references("S1", "B1", Party::Seller, &["c@s".into()]).unwrap()[0].by_original_id.is_none());
    }

    #[test]
    fn orders_are_counted_per_day() {
        let (_d, store) = fixture();
        for (i, day) in [(1, 100), (2, 100), (3, 101), (4, 130)] {
            store
                .add_order(NewOrder {
                    id: format!("O{i}"),
                    seller: "S1".into(),
                    buyer: "B1".into(),
                    category: None,
                    created_at: day * 86_400 + 5,
                })
                .unwrap();
        }
        assert_eq!(store.orders_in_days("S1", 100, 101).unwrap(), 3);
        assert_eq!(store.orders_in_days("S1", 101, 129).unwrap(), 1);
        assert_eq!(store.orders_in_days("S1", 100, 130).unwrap(), 4);
        assert_eq!(store.orders_in_days("S2", 0, 999).unwrap(), 0);
    }

    #[test]
    fn group_commit_keeps_each_message_its_own_result() {
        let (_d, store) = fixture();
        let store = std::sync::Arc::new(store);
        let allowance = Some(DailyAllowance { day: 7, limit: 10 });
        let threads: Vec<_> = (0..32)
            .map(|i| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let id = format!("m{i}@s");
                    let msg = NewMessage { allowance, ..new_message(Party::Seller, Some(&id)) };
                    store.record_message(&msg).unwrap()
                })
            })
            .collect();
        let results: Vec<Recorded> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let done: Vec<&MessageLink> = results
            .iter()
            .filter_map(|r| match r {
                Recorded::Done { link, .. } => Some(link),
                Recorded::OverLimit { .. } => None,
            })
            .collect();
        assert_eq!(done.len(), 10);
        let ids: std::collections::HashSet<&str> = done.iter().map(|l| l.relay_id.as_str()).collect();
        assert_eq!(ids.len(), 10);
        assert_eq!(store.sent_on_day("S1", 7).unwrap(), 10);
        assert_eq!(store.messages(&MessageFilter::default()).unwrap().len(), 10);
    }

    #[test]
    fn the_first_human_reply_answers_a_buyer_message() {
        let (_d, store) = fixture();
        let asked = done(store.record_message(&new_message(Party::Buyer, Some("q@b"))).unwrap());
        let answers = [asked.relay_id.clone()];
        let reply = |id: &'static str, at: u64, auto: bool| {
            let msg =
                NewMessage { at, auto_submitted: auto, answers: &answers, ..new_message(Party::Seller, Some(id)) };
            done(store.record_message(&msg).unwrap());
        };
        reply("auto@s", 50, true); // an out-of-office reply answers nothing
        assert_eq!(store.message(&asked.relay_id).unwrap().unwrap().answered_at, None);
        reply("r1@s", 100, false);
        reply("r2@s", 200, false); // a second reply does not move the first answer
        assert_eq!(store.message(&asked.relay_id).unwrap().unwrap().answered_at, Some(100));
    }
}

#[cfg(test)]
mod journal_tests {
    use super::tests_support::*;
    use super::*;
    use crate::store::archive::Copy;

    const CHILD: &str = "BSM_JOURNAL_TEST_CHILD";
    const AT: u64 = 20_780 * 86_400 + 3_600; // 2026-11-23 01:00 UTC

    /// The child's part: records messages (with copies) and dies at once, as by SIGKILL:
    /// no close, no checkpoint, redb's non-durable commits never reach its file.
    fn record_and_die(dir: &Path) -> ! {
        let archive = Arc::new(Archive::new(dir.join("archive")));
        let store = RedbStore::open(&dir.join("store.redb"), archive.clone()).unwrap();
        add_parties(&store);
        let allowance = Some(DailyAllowance { day: AT / 86_400, limit: 10 });
        for i in 0..6 {
            let (sender, id) = match i % 3 {
                0 => (Party::Buyer, Some(format!("q{i}@buyer.example"))),
                1 => (Party::Seller, Some(format!("a{i}@shop1.example"))),
                _ => (Party::Seller, None), // no Message-ID: found again by its relay id
            };
            let body = format!("copy of message {i}");
            let location = archive.append_copies(AT, &[body.as_bytes()], Some(&[b"delivered"])).unwrap();
            let msg = NewMessage {
                at: AT,
                archive: Some(location),
                allowance: (sender == Party::Seller).then_some(allowance).flatten(),
                ..new_message(sender, id.as_deref())
            };
            let link = match store.record_message(&msg).unwrap() {
                Recorded::Done { link, .. } => link,
                other => panic!("{other:?}"),
            };
            eprintln!("recorded {} {i}", link.relay_id);
        }
        std::process::abort();
    }

    #[test]
    fn replaying_records_the_store_already_has_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("store.redb"), Arc::new(Archive::new(dir.path().join("archive"))))
            .unwrap();
        add_parties(&store);
        let allowance = Some(DailyAllowance { day: AT / 86_400, limit: 10 });
        for id in [Some("a@shop1.example"), None, None] {
            let msg = NewMessage { at: AT, allowance, ..new_message(Party::Seller, id) };
            store.record_message(&msg).unwrap();
        }
        let before = store.messages(&MessageFilter::default()).unwrap();
        drop(store);
        // As if the store had made its records durable without noting the journal applied.
        {
            let db = Database::create(dir.path().join("store.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            txn.delete_table(JOURNAL).unwrap();
            txn.commit().unwrap();
        }
        let store = RedbStore::open(&dir.path().join("store.redb"), Arc::new(Archive::new(dir.path().join("archive"))))
            .unwrap();
        assert_eq!(store.messages(&MessageFilter::default()).unwrap(), before);
        assert_eq!(store.sent_on_day("S1", AT / 86_400).unwrap(), 3, "each counted once");
    }

    #[test]
    fn records_acknowledged_before_a_crash_are_replayed_from_the_journal_once() {
        if let Ok(dir) = std::env::var(CHILD) {
            record_and_die(Path::new(&dir));
        }
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "store::redb_store::journal_tests::records_acknowledged_before_a_crash_are_replayed_from_the_journal_once", "--nocapture", "--test-threads=1"])
            .env(CHILD, dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "the child aborts");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let recorded: Vec<(String, usize)> = stderr
            .lines()
            .filter_map(|l| l.strip_prefix("recorded "))
            .map(|l| {
                let (id, i) = l.split_once(' ').unwrap();
                (id.to_string(), i.parse().unwrap())
            })
            .collect();
        assert_eq!(recorded.len(), 6, "child output: {stderr}");

        // The redb file alone does not have them: the journal is what keeps them.
        {
            let db = Database::open(dir.path().join("store.redb")).unwrap();
            let txn = db.begin_read().unwrap();
            let t = txn.open_table(MESSAGES).unwrap();
            assert_eq!(t.iter().unwrap().count(), 0, "recorded non-durably");
        }
        for reopening in 0..2 {
            let archive = Arc::new(Archive::new(dir.path().join("archive")));
            let store = RedbStore::open(&dir.path().join("store.redb"), archive.clone()).unwrap();
            let all = store.messages(&MessageFilter::default()).unwrap();
            assert_eq!(all.len(), 6, "reopening {reopening}");
            for (seq, (relay_id, i)) in recorded.iter().enumerate() {
                let r = store.message(relay_id).unwrap().unwrap();
                assert_eq!(r.seq, seq as u64 + 1, "recorded in order");
                let copy = archive.read(r.at, &r.archive.unwrap(), Copy::Original).unwrap();
                assert_eq!(copy, format!("copy of message {i}").as_bytes());
                assert_eq!(r.token.is_some(), r.sender == Party::Buyer);
                if let Some(token) = &r.token {
                    assert_eq!(store.message_by_token(token).unwrap().unwrap().relay_id, *relay_id);
                }
            }
            // Four seller messages, each counted once however often the journal is replayed.
            assert_eq!(store.sent_on_day("S1", AT / 86_400).unwrap(), 4, "reopening {reopening}");
        }
    }
}
