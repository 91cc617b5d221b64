//! A batch added up per (window, source partition) into fresh accumulators: the part
//! of the window stage that needs only the plugin and the batch, so that it runs on
//! the worker threads beside the transforms. The window stage then merges these
//! partials into its shares, in source order, with the plugin's `merge` (exact, by
//! the WIT contract), and decides there what is late.

use crate::plugin::bindings::types::Accumulator;
use crate::plugin::{isolate, Isolated, WindowPlugin};
use crate::record::{Batch, PartitionId, Record};
use std::collections::BTreeMap;

/// Which windows a record is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windowing {
    pub size_ms: i64,
    /// A window starts every `slide_ms` (= `size_ms`: tumbling).
    pub slide_ms: i64,
}

impl Windowing {
    /// The newest window start at or before `ts`.
    pub fn start_of(&self, ts: i64) -> i64 {
        ts.div_euclid(self.slide_ms) * self.slide_ms
    }

    /// Every window covering `ts`, oldest first (one, for tumbling windows).
    pub fn starts_of(&self, ts: i64) -> impl Iterator<Item = i64> {
        let (newest, size, slide) = (self.start_of(ts), self.size_ms, self.slide_ms);
        let oldest = newest - (size - 1).div_euclid(slide) * slide;
        (0..)
            .map(move |k| oldest + k * slide)
            .take_while(move |&s| s <= newest)
            .filter(move |&s| s + size > ts)
    }

    pub fn tumbling(&self) -> bool {
        self.slide_ms == self.size_ms
    }
}

/// Per source partition, the offset through which records are in restored state
/// already: a replay of them is not added again.
pub type Replayed = BTreeMap<PartitionId, u64>;

/// One (window, partition)'s part of a batch.
#[derive(Debug, Clone)]
pub struct Partial {
    pub start: i64,
    pub partition: PartitionId,
    /// The records the plugin accepted, added into a fresh accumulator (none if it
    /// accepted none).
    pub acc: Option<Accumulator>,
    /// The oldest and newest offsets accepted.
    pub first: u64,
    pub last: u64,
    /// The newest event time accepted.
    pub max_event_ms: i64,
    /// Records (by index in the batch) the plugin refused, and why.
    pub refused: Vec<(usize, String)>,
}

/// Whether `batch.positions[i]` is a replay of restored state.
pub fn replayed(replayed: &Replayed, batch: &Batch, i: usize) -> bool {
    let p = batch.positions[i];
    replayed
        .get(&p.partition)
        .is_some_and(|&through| p.offset <= through)
}

/// The records of `batch` that `accumulate` put in the partial of (`start`, `partition`).
pub fn members(
    windowing: Windowing,
    batch: &Batch,
    restored: &Replayed,
    start: i64,
    partition: PartitionId,
) -> Vec<usize> {
    (0..batch.len())
        .filter(|&i| {
            batch.positions[i].partition == partition
                && !replayed(restored, batch, i)
                && windowing
                    .starts_of(batch.records[i].timestamp_ms)
                    .any(|s| s == start)
        })
        .collect()
}

/// Add `batch` up per (window, partition), leaving out replays of restored state.
pub fn accumulate(
    plugin: &mut WindowPlugin,
    windowing: Windowing,
    batch: &Batch,
    restored: &Replayed,
) -> Vec<Partial> {
    if batch.is_empty() {
        return Vec::new();
    }
    let key = |i: usize| {
        (
            windowing.start_of(batch.records[i].timestamp_ms),
            batch.positions[i].partition,
        )
    };
    if windowing.tumbling() {
        let k = key(0);
        let uniform = (1..batch.len()).all(|i| key(i) == k);
        if uniform && !(0..batch.len()).any(|i| replayed(restored, batch, i)) {
            // The common case, one window and one partition for the whole batch: no
            // copies.
            let indices: Vec<usize> = (0..batch.len()).collect();
            return vec![add(plugin, k.0, k.1, &batch.records, &indices, batch)];
        }
    }
    let mut groups: BTreeMap<(i64, PartitionId), (Vec<Record>, Vec<usize>)> = BTreeMap::new();
    for (i, r) in batch.records.iter().enumerate() {
        if replayed(restored, batch, i) {
            continue;
        }
        for start in windowing.starts_of(r.timestamp_ms) {
            let group = groups
                .entry((start, batch.positions[i].partition))
                .or_default();
            group.0.push(r.clone());
            group.1.push(i);
        }
    }
    groups
        .into_iter()
        .map(|((start, partition), (records, indices))| {
            add(plugin, start, partition, &records, &indices, batch)
        })
        .collect()
}

/// `records` (the batch's records at `indices`) into a fresh accumulator. A call that
/// fails as a whole is retried a record at a time on a fresh instance, each record
/// adding to the accumulator the one before left ([`isolate`]).
fn add(
    plugin: &mut WindowPlugin,
    start: i64,
    partition: PartitionId,
    records: &[Record],
    indices: &[usize],
    batch: &Batch,
) -> Partial {
    let mut partial = Partial {
        start,
        partition,
        acc: None,
        first: u64::MAX,
        last: 0,
        max_event_ms: i64::MIN,
        refused: Vec::new(),
    };
    let mut acc = match plugin.create() {
        Ok(acc) => acc,
        Err(failure) => {
            let reason = format!("creating the accumulator: {failure}");
            partial.refused = indices.iter().map(|&i| (i, reason.clone())).collect();
            return partial;
        }
    };
    let name = plugin.name().to_owned();
    let added = isolate(&name, records, |rs| {
        let result = plugin.add(&acc, rs)?;
        if let Ok(added) = &result {
            acc = added.accumulator.clone();
        }
        Ok(result)
    });
    // Per record: accepted, or why not.
    let outcomes: Vec<Result<(), String>> = match added {
        Isolated::Whole(Ok(added)) => {
            let mut outcomes = vec![Ok(()); records.len()];
            for rejected in added.rejected {
                if let Some(o) = outcomes.get_mut(rejected.index as usize) {
                    *o = Err(rejected.reason);
                }
            }
            outcomes
        }
        Isolated::Whole(Err(message)) => vec![Err(message); records.len()],
        Isolated::Each(each) => each
            .into_iter()
            .map(|r| match r {
                Ok(Ok(added)) => match added.rejected.into_iter().next() {
                    None => Ok(()),
                    Some(rejected) => Err(rejected.reason),
                },
                Ok(Err(message)) | Err(message) => Err(message),
            })
            .collect(),
    };
    let mut accepted = false;
    for ((r, &i), outcome) in records.iter().zip(indices).zip(outcomes) {
        match outcome {
            Ok(()) => {
                let offset = batch.positions[i].offset;
                partial.first = partial.first.min(offset);
                partial.last = partial.last.max(offset);
                partial.max_event_ms = partial.max_event_ms.max(r.timestamp_ms);
                accepted = true;
            }
            Err(reason) => partial.refused.push((i, reason)),
        }
    }
    // A share no record made it into is not a share: it would finish as zeros.
    if accepted {
        partial.acc = Some(acc);
    }
    partial
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_windows_cover_a_time_once_each() {
        let w = Windowing {
            size_ms: 60_000,
            slide_ms: 20_000,
        };
        let starts: Vec<i64> = w.starts_of(65_000).collect();
        assert_eq!(starts, [20_000, 40_000, 60_000]);
        let tumbling = Windowing {
            size_ms: 60_000,
            slide_ms: 60_000,
        };
        assert_eq!(tumbling.starts_of(-1).collect::<Vec<_>>(), [-60_000]);
    }
}
