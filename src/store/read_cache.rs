//! Reads of what only the store's write transactions change (sellers, buyers,
//! orders, aliases), kept between messages: every message reads them at MAIL,
//! RCPT and end of message, and each read was a read transaction, table opens
//! and JSON. Every write transaction empties the cache once it has committed,
//! and a read that overlapped a write does not fill it, so a value served from
//! here is never older than the last write that returned.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Entries at most, of all kinds together: a full cache is emptied (a few MiB
/// at most; a marketplace with more parties writing at once reads again).
const MAX_ENTRIES: usize = 4096;

#[derive(Default)]
pub(super) struct ReadCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Moves on with every write: a read that began before it is not kept.
    generation: u64,
    entries: usize,
    /// kind -> key -> value (of the kind's one type).
    kinds: HashMap<&'static str, HashMap<String, Arc<dyn Any + Send + Sync>>>,
}

impl ReadCache {
    /// The cached `kind` value for `key`, else `load`'s, kept if `keep` says so
    /// (a value that a message's own write may still change is not).
    pub(super) fn get_or_load<T, E>(
        &self,
        kind: &'static str,
        key: &str,
        load: impl FnOnce() -> Result<T, E>,
        keep: impl FnOnce(&T) -> bool,
    ) -> Result<T, E>
    where
        T: Clone + Send + Sync + 'static,
    {
        let generation = {
            let inner = self.lock();
            if let Some(v) = inner.kinds.get(kind).and_then(|k| k.get(key)).and_then(|v| v.downcast_ref::<T>()) {
                return Ok(v.clone());
            }
            inner.generation
        };
        let value = load()?;
        if keep(&value) {
            let mut inner = self.lock();
            if inner.generation == generation {
                if inner.entries >= MAX_ENTRIES {
                    inner.kinds.clear();
                    inner.entries = 0;
                }
                let previous = inner.kinds.entry(kind).or_default().insert(key.to_string(), Arc::new(value.clone()));
                inner.entries += usize::from(previous.is_none());
            }
        }
        Ok(value)
    }

    /// Forgets everything; called after every write transaction, committed or not.
    pub(super) fn invalidate(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.kinds.clear();
        inner.entries = 0;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn load(cache: &ReadCache, key: &str, value: u32, loads: &Cell<u32>) -> u32 {
        cache
            .get_or_load::<_, ()>(
                "n",
                key,
                || {
                    loads.set(loads.get() + 1);
                    Ok(value)
                },
                |_| true,
            )
            .unwrap()
    }

    #[test]
    fn a_value_is_loaded_once_until_a_write() {
        let (cache, loads) = (ReadCache::default(), Cell::new(0));
        assert_eq!(load(&cache, "a", 1, &loads), 1);
        assert_eq!(load(&cache, "a", 2, &loads), 1, "served from the cache");
        assert_eq!(loads.get(), 1);
        cache.invalidate();
        assert_eq!(load(&cache, "a", 2, &loads), 2, "read again after the write");
        assert_eq!(loads.get(), 2);
    }

    #[test]
    fn a_read_that_overlapped_a_write_is_not_kept() {
        let cache = ReadCache::default();
        // The write commits and empties the cache while the read is under way.
        let stale = cache.get_or_load::<_, ()>(
            "n",
            "a",
            || {
                cache.invalidate();
                Ok(1u32)
            },
            |_| true,
        );
        assert_eq!(stale, Ok(1));
        let loads = Cell::new(0);
        assert_eq!(load(&cache, "a", 2, &loads), 2);
        assert_eq!(loads.get(), 1, "the stale value was not kept");
    }

    #[test]
    fn unkept_values_errors_and_kinds_stay_apart() {
        let cache = ReadCache::default();
        let none: Result<Option<u32>, ()> = cache.get_or_load("n", "a", || Ok(None), Option::is_some);
        assert_eq!(none, Ok(None));
        let loads = Cell::new(0);
        assert_eq!(load(&cache, "a", 3, &loads), 3, "None was not kept");
        let err: Result<u32, &str> = cache.get_or_load("m", "a", || Err("io"), |_| true);
        assert_eq!(err, Err("io"));
        // Another kind under the same key is its own entry.
        let other: Result<String, ()> = cache.get_or_load("m", "a", || Ok("x".to_string()), |_| true);
        assert_eq!(other.as_deref(), Ok("x"));
        assert_eq!(load(&cache, "a", 4, &loads), 3);
    }

    #[test]
    fn a_full_cache_starts_again() {
        let (cache, loads) = (ReadCache::default(), Cell::new(0));
        for k in 0..MAX_ENTRIES {
            load(&cache, &k.to_string(), 0, &loads);
        }
        load(&cache, "0", 0, &loads);
        assert_eq!(loads.get() as usize, MAX_ENTRIES, "all kept");
        load(&cache, "one more", 0, &loads);
        load(&cache, "0", 0, &loads);
        assert_eq!(loads.get() as usize, MAX_ENTRIES + 2, "emptied when full");
        assert!(cache.lock().entries <= MAX_ENTRIES);
    }
}
