//! The tables plugins read through the `lookup` import: per pipeline, each declared
//! table's rows in memory, replaced whole when a reload has built the next version
//! (readers never see half a reload), or changed a few rows at a time (a followed
//! topic). The loaders (files, PostgreSQL, Kafka) are `crate::tables`; this is only
//! what a plugin call reads, so that the runtime names no connector.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};

/// What an entry costs beyond its key and value (the map's slot, two vectors'
/// headers, the allocator's rounding): roughly, it is a cap, not a gauge.
pub const ROW_OVERHEAD: usize = 80;

/// A table's rows: key -> value (bytes; JSON for the shipped loaders).
#[derive(Debug, Default, Clone)]
pub struct Rows {
    map: HashMap<Vec<u8>, Vec<u8>>,
    bytes: usize,
}

impl Rows {
    pub fn with_capacity(n: usize) -> Self {
        Rows {
            map: HashMap::with_capacity(n),
            bytes: 0,
        }
    }

    /// Set (or, with `None`, delete) a row.
    pub fn set(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        let cost = |k: &[u8], v: &[u8]| k.len() + v.len() + ROW_OVERHEAD;
        let old = match value {
            Some(v) => {
                self.bytes += cost(&key, &v);
                self.map.insert(key.clone(), v)
            }
            None => self.map.remove(&key),
        };
        if let Some(old) = old {
            self.bytes -= cost(&key, &old);
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// What the rows count for against a table's cap.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn get(&self, key: &[u8]) -> Option<&Vec<u8>> {
        self.map.get(key)
    }
}

/// One declared table: its rows and what its loader last did.
#[derive(Debug, Default)]
pub struct Table {
    rows: RwLock<Rows>,
    /// When the rows now held were loaded (ms since the epoch; 0: never).
    loaded_ms: AtomicI64,
    reloads: AtomicU64,
    /// Reloads that failed (the rows before them kept).
    failures: AtomicU64,
}

impl Table {
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.rows
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// Put a whole new version in place (built beside the old, swapped in at once).
    pub fn replace(&self, rows: Rows, now_ms: i64) {
        let old = std::mem::replace(
            &mut *self.rows.write().unwrap_or_else(|e| e.into_inner()),
            rows,
        );
        drop(old); // outside the lock
        self.loaded_ms.store(now_ms, Relaxed);
        self.reloads.fetch_add(1, Relaxed);
    }

    /// Change some rows in place, in order (`None` deletes). A change that would take
    /// the table past `max_bytes` is refused (the row stays as it was) and the others
    /// still apply, deletes first among them; returns how many were refused.
    pub fn apply(
        &self,
        changes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        max_bytes: usize,
        now_ms: i64,
    ) -> usize {
        let mut rows = self.rows.write().unwrap_or_else(|e| e.into_inner());
        let mut refused = 0;
        for (key, value) in changes {
            let old = rows.get(&key).cloned();
            rows.set(key.clone(), value);
            if rows.bytes() > max_bytes {
                rows.set(key, old);
                refused += 1;
            }
        }
        self.loaded_ms.store(now_ms, Relaxed);
        refused
    }

    /// A reload failed: the rows before it stay.
    pub fn failed(&self) {
        self.failures.fetch_add(1, Relaxed);
    }

    /// Rows, bytes, when loaded (ms since the epoch), reloads, failed reloads.
    pub fn stats(&self) -> TableStats {
        let rows = self.rows.read().unwrap_or_else(|e| e.into_inner());
        TableStats {
            rows: rows.len() as u64,
            bytes: rows.bytes() as u64,
            loaded_ms: self.loaded_ms.load(Relaxed),
            reloads: self.reloads.load(Relaxed),
            failures: self.failures.load(Relaxed),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableStats {
    pub rows: u64,
    pub bytes: u64,
    pub loaded_ms: i64,
    pub reloads: u64,
    pub failures: u64,
}

/// One pipeline's tables, by name.
pub type Tables = HashMap<String, Arc<Table>>;

/// Every running pipeline's tables, by pipeline name: what the `lookup` import reads
/// (a plugin knows its pipeline by its log context).
#[derive(Debug, Default)]
pub struct Lookup {
    pipelines: RwLock<HashMap<String, Arc<Tables>>>,
}

impl Lookup {
    /// The tables of `pipeline`, from now until [`Self::unregister`].
    pub fn register(&self, pipeline: &str, tables: Arc<Tables>) {
        self.write().insert(pipeline.to_owned(), tables);
    }

    pub fn unregister(&self, pipeline: &str) {
        self.write().remove(pipeline);
    }

    pub fn tables(&self, pipeline: &str) -> Option<Arc<Tables>> {
        self.pipelines
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(pipeline)
            .cloned()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Tables>>> {
        self.pipelines.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_count_their_bytes_and_a_change_past_the_cap_is_refused_alone() {
        let mut rows = Rows::default();
        rows.set(b"FR".to_vec(), Some(b"europe".to_vec()));
        assert_eq!(rows.bytes(), 2 + 6 + ROW_OVERHEAD);
        rows.set(b"FR".to_vec(), Some(b"eu".to_vec()));
        assert_eq!(rows.bytes(), 2 + 2 + ROW_OVERHEAD);
        let table = Table::default();
        table.replace(rows, 1);
        let cap = 2 * (2 + 2 + ROW_OVERHEAD);
        assert_eq!(
            table.apply(vec![(b"US".to_vec(), Some(b"am".to_vec()))], cap, 2),
            0
        );
        let past = vec![
            (b"BR".to_vec(), Some(b"am".to_vec())),
            (b"FR".to_vec(), None),
            (b"MX".to_vec(), Some(b"am".to_vec())),
            (b"NZ".to_vec(), Some(b"oc".to_vec())),
        ];
        assert_eq!(
            table.apply(past, cap, 3),
            2,
            "BR (full then) and NZ refused"
        );
        assert_eq!(table.get(b"FR"), None, "the delete applied");
        assert_eq!(
            table.get(b"MX"),
            Some(b"am".to_vec()),
            "room after the delete"
        );
        assert_eq!(table.get(b"BR"), None);
        let stats = table.stats();
        assert_eq!((stats.rows, stats.loaded_ms), (2, 3));
    }
}
