//! Counters shared by every stage. A leaf: imports nothing of the crate.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Counters shared by every stage; read by the progress line (and, later, by the
/// metrics endpoint). Relaxed atomics: these are statistics, not synchronisation.
#[derive(Debug, Default)]
pub struct Metrics {
    records_in: AtomicU64,
    records_out: AtomicU64,
    dead_letters: AtomicU64,
    windows_closed: AtomicU64,
    late_dropped: AtomicU64,
    plugin_failures: AtomicU64,
    batches: AtomicU64,
    checkpoints: AtomicU64,
    commits: AtomicU64,
    retries: AtomicU64,
    /// Consumer lag per partition (`topic[partition]`), as the source last saw it.
    lag: Mutex<BTreeMap<String, i64>>,
}

/// A consistent-enough copy of [`Metrics`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Records the source emitted.
    pub records_in: u64,
    /// Records (and window results) handed to sinks.
    pub records_out: u64,
    /// Records sent to the dead-letter output.
    pub dead_letters: u64,
    pub windows_closed: u64,
    /// Late records dropped (`[window] late = "drop"`).
    pub late_dropped: u64,
    /// Plugin calls that trapped, ran out of time or memory, or tried to block.
    pub plugin_failures: u64,
    pub batches: u64,
    /// Checkpoints taken (every sink durable, the source told).
    pub checkpoints: u64,
    /// Offset commits the source made.
    pub commits: u64,
    /// Sink writes retried after a temporary error.
    pub retries: u64,
    pub lag: BTreeMap<String, i64>,
}

impl Snapshot {
    /// Total consumer lag over every partition.
    pub fn total_lag(&self) -> i64 {
        self.lag.values().sum()
    }
}

impl Metrics {
    pub fn add_in(&self, n: u64) {
        self.records_in.fetch_add(n, Relaxed);
    }
    pub fn add_out(&self, n: u64) {
        self.records_out.fetch_add(n, Relaxed);
    }
    pub fn add_dead(&self, n: u64) {
        self.dead_letters.fetch_add(n, Relaxed);
    }
    /// Totals the processor reads off its stages (it is their only writer).
    pub fn set_windows_closed(&self, total: u64) {
        self.windows_closed.store(total, Relaxed);
    }
    pub fn set_late_dropped(&self, total: u64) {
        self.late_dropped.store(total, Relaxed);
    }
    pub fn set_plugin_failures(&self, total: u64) {
        self.plugin_failures.store(total, Relaxed);
    }
    pub fn add_batch(&self) {
        self.batches.fetch_add(1, Relaxed);
    }
    pub fn add_checkpoint(&self) {
        self.checkpoints.fetch_add(1, Relaxed);
    }
    pub fn add_commit(&self) {
        self.commits.fetch_add(1, Relaxed);
    }
    pub fn add_retry(&self) {
        self.retries.fetch_add(1, Relaxed);
    }
    pub fn set_lag(&self, lag: BTreeMap<String, i64>) {
        *self.lag.lock().unwrap_or_else(|e| e.into_inner()) = lag;
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            records_in: self.records_in.load(Relaxed),
            records_out: self.records_out.load(Relaxed),
            dead_letters: self.dead_letters.load(Relaxed),
            windows_closed: self.windows_closed.load(Relaxed),
            late_dropped: self.late_dropped.load(Relaxed),
            plugin_failures: self.plugin_failures.load(Relaxed),
            batches: self.batches.load(Relaxed),
            checkpoints: self.checkpoints.load(Relaxed),
            commits: self.commits.load(Relaxed),
            retries: self.retries.load(Relaxed),
            lag: self.lag.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }
}
