//! The daemon's own counters, exposed in Prometheus text format on the admin
//! API (`GET /metrics`). Plain atomics: a handful of counters and one
//! histogram do not need a metrics framework.

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// End-of-message latency buckets, seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Default)]
pub struct OpsMetrics {
    /// (direction, decision) -> count
    messages: Mutex<Vec<((&'static str, &'static str), u64)>>,
    /// reason -> count
    refusals: Mutex<Vec<(&'static str, u64)>>,
    eom_buckets: [AtomicU64; BUCKETS.len()],
    eom_count: AtomicU64,
    eom_sum_micros: AtomicU64,
}

fn bump<K: PartialEq + Copy>(v: &Mutex<Vec<(K, u64)>>, key: K) {
    let mut v = v.lock().unwrap_or_else(|e| e.into_inner());
    match v.iter_mut().find(|(k, _)| *k == key) {
        Some((_, n)) => *n += 1,
        None => v.push((key, 1)),
    }
}

impl OpsMetrics {
    pub fn message(&self, direction: &'static str, decision: &'static str) {
        bump(&self.messages, (direction, decision));
    }

    pub fn refusal(&self, reason: &'static str) {
        bump(&self.refusals, reason);
    }

    pub fn eom_latency(&self, secs: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.eom_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.eom_count.fetch_add(1, Ordering::Relaxed);
        self.eom_sum_micros.fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self, store_bytes: u64, archive_bytes: u64, archive_flushes: u64) -> String {
        let mut out = String::new();
        out.push_str("# HELP bsm_messages_total Messages decided at end of message, by direction and decision.\n");
        out.push_str("# TYPE bsm_messages_total counter\n");
        let mut messages = self.messages.lock().unwrap_or_else(|e| e.into_inner()).clone();
        messages.sort();
        for ((direction, decision), n) in messages {
            let _ = writeln!(out, "bsm_messages_total{{direction=\"{direction}\",decision=\"{decision}\"}} {n}");
        }
        out.push_str("# HELP bsm_refusals_total Recipients and messages refused, by reason.\n");
        out.push_str("# TYPE bsm_refusals_total counter\n");
        let mut refusals = self.refusals.lock().unwrap_or_else(|e| e.into_inner()).clone();
        refusals.sort();
        for (reason, n) in refusals {
            let _ = writeln!(out, "bsm_refusals_total{{reason=\"{}\"}} {n}", reason.replace(' ', "_"));
        }
        out.push_str(
            "# HELP bsm_eom_duration_seconds End-of-message handling time (decide, record, archive, rewrite).\n",
        );
        out.push_str("# TYPE bsm_eom_duration_seconds histogram\n");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "bsm_eom_duration_seconds_bucket{{le=\"{b}\"}} {}",
                self.eom_buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.eom_count.load(Ordering::Relaxed);
        let _ = writeln!(out, "bsm_eom_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ =
            writeln!(out, "bsm_eom_duration_seconds_sum {}", self.eom_sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "bsm_eom_duration_seconds_count {count}");
        out.push_str("# HELP bsm_store_bytes Size of the store file.\n# TYPE bsm_store_bytes gauge\n");
        let _ = writeln!(out, "bsm_store_bytes {store_bytes}");
        out.push_str(
            "# HELP bsm_archive_bytes Bytes the archive's day segments take on disk.\n# TYPE bsm_archive_bytes gauge\n",
        );
        let _ = writeln!(out, "bsm_archive_bytes {archive_bytes}");
        out.push_str(
            "# HELP bsm_archive_flushes_total Flushes of the archive (its journal), each shared by the messages \
             waiting for it.\n# TYPE bsm_archive_flushes_total counter\n",
        );
        let _ = writeln!(out, "bsm_archive_flushes_total {archive_flushes}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = OpsMetrics::default();
        m.message("buyer_to_seller", "delivered");
        m.message("buyer_to_seller", "delivered");
        m.message("seller_to_buyer", "blocked");
        m.refusal("unknown recipient");
        m.eom_latency(0.003);
        m.eom_latency(0.2);
        let text = m.render(4096, 10, 3);
        assert!(
            text.contains("bsm_messages_total{direction=\"buyer_to_seller\",decision=\"delivered\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("bsm_refusals_total{reason=\"unknown_recipient\"} 1\n"));
        assert!(text.contains("bsm_eom_duration_seconds_bucket{le=\"0.0025\"} 0\n"));
        assert!(text.contains("bsm_eom_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("bsm_eom_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("bsm_store_bytes 4096\n"));
        assert!(text.contains("bsm_archive_flushes_total 3\n"));
    }
}
