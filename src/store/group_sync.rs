//! Group commit for fsync: many writers, one flush. A writer that has written
//! its data calls [`GroupSync::sync`]; if a flush that started after its write
//! completes, it is done; otherwise one waiting writer flushes for everyone
//! who wrote before it started. Durability per message, one fsync per batch.

use std::sync::{Condvar, Mutex};

#[derive(Default)]
struct State {
    /// Writes announced so far.
    written: u64,
    /// Every write up to this one is durable.
    synced: u64,
    syncing: bool,
    /// The last flush failed for writes up to this one.
    failed_through: u64,
}

#[derive(Default)]
pub struct GroupSync {
    state: Mutex<State>,
    done: Condvar,
}

impl GroupSync {
    /// Returns once everything written before the call is durable, flushing
    /// with `flush` if no one else is.
    pub fn sync(&self, flush: impl Fn() -> std::io::Result<()>) -> std::io::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.written += 1;
        let mine = st.written;
        loop {
            if st.synced >= mine {
                return Ok(());
            }
            if st.failed_through >= mine {
                return Err(std::io::Error::other("archive flush failed"));
            }
            if !st.syncing {
                st.syncing = true;
                let target = st.written;
                drop(st);
                let result = flush();
                st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                st.syncing = false;
                match &result {
                    Ok(()) => st.synced = st.synced.max(target),
                    Err(_) => st.failed_through = st.failed_through.max(target),
                }
                self.done.notify_all();
                result?;
            } else {
                st = self.done.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn concurrent_writers_share_flushes() {
        let g = Arc::new(GroupSync::default());
        let flushes = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..32)
            .map(|_| {
                let (g, flushes) = (g.clone(), flushes.clone());
                std::thread::spawn(move || {
                    g.sync(|| {
                        flushes.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        Ok(())
                    })
                    .unwrap()
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let n = flushes.load(Ordering::SeqCst);
        assert!((1..32).contains(&n), "{n} flushes for 32 writers");
    }

    #[test]
    fn a_failed_flush_fails_its_writers() {
        let g = GroupSync::default();
        assert!(g.sync(|| Err(std::io::Error::other("disk full"))).is_err());
        assert!(g.sync(|| Ok(())).is_ok());
    }
}
