//! The keyed stage's state: per source partition, each key's state as the plugin
//! last returned it, with the event time it was last changed at. Held in memory under
//! a cap counted in bytes (keys, data and a fixed cost per entry), so a stream of new
//! keys ends in a clear error instead of the host running out of memory; keys not
//! changed for `ttl` of event time (behind their partition's newest) are forgotten.
//!
//! Per partition because the partition is what moves: a checkpoint saves each
//! partition's share beside its offsets, and a host that takes a partition over
//! takes its share up.

use crate::plugin::bindings::types::Accumulator;
use crate::position::PartitionId;
use crate::window_state::SavedKey;
use std::collections::{BTreeMap, HashMap};

/// What an entry costs beyond its key and data: the map's slot, the vectors'
/// headers, the allocator's rounding (measured roughly; it is a cap, not a gauge).
const ENTRY_OVERHEAD: usize = 96;

struct Entry {
    acc: Accumulator,
    updated_ms: i64,
}

#[derive(Default)]
struct Keys {
    map: HashMap<Vec<u8>, Entry>,
    /// The newest event time seen in the partition: the clock `ttl` is read by.
    newest_ms: Option<i64>,
}

pub struct KeyedStore {
    parts: BTreeMap<PartitionId, Keys>,
    bytes: usize,
    max_bytes: usize,
    ttl_ms: Option<i64>,
}

fn cost(key: &[u8], acc: &Accumulator) -> usize {
    key.len() + acc.data.len() + ENTRY_OVERHEAD
}

impl KeyedStore {
    pub fn new(max_bytes: usize, ttl_ms: Option<i64>) -> Self {
        KeyedStore {
            parts: BTreeMap::new(),
            bytes: 0,
            max_bytes,
            ttl_ms,
        }
    }

    /// A key's state, unless it has none or it has expired.
    pub fn get(&self, p: PartitionId, key: &[u8]) -> Option<&Accumulator> {
        let keys = self.parts.get(&p)?;
        let entry = keys.map.get(key)?;
        (!self.expired(keys.newest_ms, entry.updated_ms)).then_some(&entry.acc)
    }

    fn expired(&self, newest_ms: Option<i64>, updated_ms: i64) -> bool {
        match (self.ttl_ms, newest_ms) {
            (Some(ttl), Some(newest)) => updated_ms < newest.saturating_sub(ttl),
            _ => false,
        }
    }

    /// The partition has seen a record of event time `ms`.
    pub fn saw(&mut self, p: PartitionId, ms: i64) {
        let keys = self.parts.entry(p).or_default();
        keys.newest_ms = Some(keys.newest_ms.map_or(ms, |n| n.max(ms)));
    }

    /// Set (or, with `None`, delete) a key's state, changed by records up to `at_ms`.
    pub fn set(&mut self, p: PartitionId, key: Vec<u8>, state: Option<Accumulator>, at_ms: i64) {
        let keys = self.parts.entry(p).or_default();
        let old = match state {
            Some(acc) => {
                self.bytes += cost(&key, &acc);
                let entry = Entry {
                    acc,
                    updated_ms: at_ms,
                };
                keys.map.insert(key.clone(), entry)
            }
            None => keys.map.remove(&key),
        };
        if let Some(old) = old {
            self.bytes -= cost(&key, &old.acc);
        }
    }

    /// Whether the state is over its cap.
    pub fn over_cap(&self) -> bool {
        self.bytes > self.max_bytes
    }

    /// Forget the keys whose `ttl` has run out; how many.
    pub fn expire(&mut self) -> usize {
        let Some(ttl) = self.ttl_ms else { return 0 };
        let mut gone = 0;
        for keys in self.parts.values_mut() {
            let Some(newest) = keys.newest_ms else {
                continue;
            };
            let before = newest.saturating_sub(ttl);
            keys.map.retain(|key, e| {
                let keep = e.updated_ms >= before;
                if !keep {
                    self.bytes -= cost(key, &e.acc);
                    gone += 1;
                }
                keep
            });
        }
        gone
    }

    pub fn keys(&self) -> usize {
        self.parts.values().map(|k| k.map.len()).sum()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The partitions with state (or an event time).
    pub fn partitions(&self) -> impl Iterator<Item = PartitionId> + '_ {
        self.parts.keys().copied()
    }

    /// The newest event time of a partition.
    pub fn newest_ms(&self, p: PartitionId) -> Option<i64> {
        self.parts.get(&p).and_then(|k| k.newest_ms)
    }

    /// Each state format version held, with one key's state of it.
    pub fn versions(&self) -> Vec<(u32, Accumulator)> {
        let mut found: BTreeMap<u32, Accumulator> = BTreeMap::new();
        for e in self.parts.values().flat_map(|k| k.map.values()) {
            found.entry(e.acc.version).or_insert_with(|| e.acc.clone());
        }
        found.into_iter().collect()
    }

    /// Every key whose state is in format `version`: partition, key, data (copies).
    pub fn of_version(&self, version: u32) -> Vec<(PartitionId, Vec<u8>, Vec<u8>)> {
        let mut all = Vec::new();
        for (&p, keys) in &self.parts {
            for (key, e) in keys.map.iter().filter(|(_, e)| e.acc.version == version) {
                all.push((p, key.clone(), e.acc.data.clone()));
            }
        }
        all
    }

    /// Put a converted state in place of a key's (its `ttl` clock unchanged).
    pub fn replace(&mut self, p: PartitionId, key: Vec<u8>, acc: Accumulator) {
        let updated_ms = self
            .parts
            .get(&p)
            .and_then(|k| k.map.get(&key))
            .map_or(i64::MIN, |e| e.updated_ms);
        self.set(p, key, Some(acc), updated_ms);
    }

    /// A partition left this host: its share goes (the next owner takes it up).
    pub fn forget(&mut self, p: PartitionId) {
        if let Some(keys) = self.parts.remove(&p) {
            for (key, e) in &keys.map {
                self.bytes -= cost(key, &e.acc);
            }
        }
    }

    /// A partition's share as a checkpoint saves it (sorted by key, so two saves of
    /// the same state are the same bytes).
    pub fn save(&self, p: PartitionId) -> Vec<SavedKey> {
        let Some(keys) = self.parts.get(&p) else {
            return Vec::new();
        };
        let mut saved: Vec<SavedKey> = keys
            .map
            .iter()
            .filter(|(_, e)| !self.expired(keys.newest_ms, e.updated_ms))
            .map(|(key, e)| SavedKey {
                key: key.clone(),
                version: e.acc.version,
                data: e.acc.data.clone(),
                updated_ms: e.updated_ms,
            })
            .collect();
        saved.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        saved
    }

    /// Take a partition's saved share up (in place of what it held).
    pub fn restore(&mut self, p: PartitionId, saved: Vec<SavedKey>, newest_ms: Option<i64>) {
        self.forget(p);
        for k in saved {
            let acc = Accumulator {
                version: k.version,
                data: k.data,
            };
            self.set(p, k.key, Some(acc), k.updated_ms);
        }
        if let Some(ms) = newest_ms {
            self.saw(p, ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(data: &[u8]) -> Option<Accumulator> {
        Some(Accumulator {
            version: 1,
            data: data.to_vec(),
        })
    }

    #[test]
    fn bytes_follow_sets_deletes_and_expiry() {
        let p = PartitionId(0);
        let mut s = KeyedStore::new(1000, Some(100));
        s.saw(p, 1_000);
        s.set(p, b"a".to_vec(), acc(b"1234"), 1_000);
        assert_eq!(s.bytes(), 1 + 4 + ENTRY_OVERHEAD);
        s.set(p, b"a".to_vec(), acc(b"12"), 1_000);
        assert_eq!(
            s.bytes(),
            1 + 2 + ENTRY_OVERHEAD,
            "a replaced state is not counted twice"
        );
        s.set(p, b"b".to_vec(), acc(b"x"), 1_050);
        s.saw(p, 1_120);
        assert!(
            s.get(p, b"a").is_none(),
            "a is 120 ms behind the newest, past ttl 100"
        );
        assert!(s.get(p, b"b").is_some());
        assert_eq!(s.save(p).len(), 1, "expired keys are not saved");
        assert_eq!(s.expire(), 1);
        assert_eq!(s.keys(), 1);
        assert_eq!(s.bytes(), 1 + 1 + ENTRY_OVERHEAD);
        s.set(p, b"b".to_vec(), None, 1_120);
        assert_eq!((s.keys(), s.bytes()), (0, 0));
        for i in 0..20u8 {
            s.set(p, vec![i], acc(b"0123456789"), 1_120);
        }
        assert!(s.over_cap(), "20 entries of ~107 bytes are past 1000");
        let saved = s.save(p);
        s.forget(p);
        assert_eq!((s.keys(), s.bytes()), (0, 0));
        s.restore(p, saved, Some(1_120));
        assert_eq!(s.keys(), 20);
        assert_eq!(s.get(p, &[3]).unwrap().data, b"0123456789".to_vec());
    }
}
