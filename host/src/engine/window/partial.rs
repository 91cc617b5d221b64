//! A batch added up per (window, source partition) into fresh accumulators: the part
//! of the window stage that needs only the plugin and the batch, so that it runs on
//! the worker threads beside the transforms. The window stage then merges these
//! partials into its shares, in source order, with the plugin's `merge` (exact, by
//! the WIT contract), and decides there what is late.

use crate::plugin::bindings::types::Accumulator;
use crate::plugin::{isolate, Isolated, WindowPlugin};
use crate::record::{Batch, PartitionId, Record};
use std::collections::BTreeMap;

/// The event times a window stage takes at all: the years 1 to 9999 (what an
/// RFC 3339 time can say). Outside them the window arithmetic (`start + k * slide`)
/// could overflow, and no real event is there: such a record is a dead letter.
pub const EARLIEST_EVENT_MS: i64 = -62_135_596_800_000; // 0001-01-01T00:00:00Z
pub const LATEST_EVENT_MS: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z

/// Which windows a record is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windowing {
    pub size_ms: i64,
    /// A window starts every `slide_ms` (= `size_ms`: tumbling).
    pub slide_ms: i64,
    /// How far ahead of the host's clock an event time may be (`max_future`).
    pub max_future_ms: i64,
    /// The host's clock when this batch was given its windows: records past
    /// `now_ms + max_future_ms` are dead letters. Fixed per batch, so the worker that
    /// adds a batch up and the stage that takes it in decide alike.
    pub now_ms: i64,
}

impl Windowing {
    /// The same windows, with the host's clock read now.
    pub fn at_now(self) -> Self {
        Windowing {
            now_ms: crate::record::now_ms(),
            ..self
        }
    }

    /// Why a record with this event time is in no window, if it is not.
    pub fn refuses(&self, ts: i64) -> Option<String> {
        let latest = self.now_ms.saturating_add(self.max_future_ms);
        if !(EARLIEST_EVENT_MS..=LATEST_EVENT_MS).contains(&ts) {
            Some(format!(
                "event time {ts} ms is outside the years 1 to 9999 that windows take ({EARLIEST_EVENT_MS} to {LATEST_EVENT_MS} ms)"
            ))
        } else if ts > latest {
            Some(format!(
                "event time {ts} ms ({}) is more than [window] max_future ({}) ahead of the host's clock ({}): a record this far ahead would close every open window",
                iso(ts),
                crate::duration::Duration::from_millis(self.max_future_ms as u64),
                iso(self.now_ms)
            ))
        } else {
            None
        }
    }

    /// The newest window start at or before `ts`.
    pub fn start_of(&self, ts: i64) -> i64 {
        ts.saturating_sub(ts.rem_euclid(self.slide_ms))
    }

    /// Every window covering `ts`, oldest first (one, for tumbling windows).
    ///
    /// Only for event times the stage takes ([`Self::refuses`] says `None`); the
    /// arithmetic saturates all the same, so no time can make it loop or overflow.
    pub fn starts_of(&self, ts: i64) -> impl Iterator<Item = i64> {
        let (newest, size, slide) = (self.start_of(ts), self.size_ms, self.slide_ms);
        let back = (size - 1).div_euclid(slide);
        let oldest = newest.saturating_sub(back.saturating_mul(slide));
        (0..=back)
            .map(move |k| oldest.saturating_add(k * slide))
            .take_while(move |&s| s <= newest)
            .filter(move |&s| s.saturating_add(size) > ts)
    }

    pub fn tumbling(&self) -> bool {
        self.slide_ms == self.size_ms
    }
}

/// An ISO 8601 time for messages (the milliseconds as they are when out of range).
fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || format!("{ms} ms"),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
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

/// A batch added up ([`accumulate`]): its partials, and the windowing it was added up
/// with (the stage decides with the same one which records were in no window).
#[derive(Debug, Clone)]
pub struct Added {
    pub windowing: Windowing,
    pub partials: Vec<Partial>,
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
                && windowing.refuses(batch.records[i].timestamp_ms).is_none()
                && windowing
                    .starts_of(batch.records[i].timestamp_ms)
                    .any(|s| s == start)
        })
        .collect()
}

/// Add `batch` up per (window, partition), leaving out replays of restored state and
/// records whose event time no window takes ([`Windowing::refuses`]).
pub fn accumulate(
    plugin: &mut WindowPlugin,
    windowing: Windowing,
    batch: &Batch,
    restored: &Replayed,
) -> Added {
    Added {
        windowing,
        partials: partials(plugin, windowing, batch, restored),
    }
}

fn partials(
    plugin: &mut WindowPlugin,
    windowing: Windowing,
    batch: &Batch,
    restored: &Replayed,
) -> Vec<Partial> {
    if batch.is_empty() {
        return Vec::new();
    }
    let taken = |i: usize| {
        !replayed(restored, batch, i) && windowing.refuses(batch.records[i].timestamp_ms).is_none()
    };
    let key = |i: usize| {
        (
            windowing.start_of(batch.records[i].timestamp_ms),
            batch.positions[i].partition,
        )
    };
    if windowing.tumbling() {
        let k = key(0);
        let uniform = (1..batch.len()).all(|i| key(i) == k);
        if uniform && (0..batch.len()).all(taken) {
            // The common case, one window and one partition for the whole batch: no
            // copies.
            let indices: Vec<usize> = (0..batch.len()).collect();
            return vec![add(plugin, k.0, k.1, &batch.records, &indices, batch)];
        }
    }
    let mut groups: BTreeMap<(i64, PartitionId), Vec<usize>> = BTreeMap::new();
    for (i, r) in batch.records.iter().enumerate() {
        if !taken(i) {
            continue;
        }
        for start in windowing.starts_of(r.timestamp_ms) {
            let group = groups
                .entry((start, batch.positions[i].partition))
                .or_default();
            group.push(i);
        }
    }
    groups
        .into_iter()
        .map(|((start, partition), indices)| match contiguous(&indices) {
            // A batch across a window's end, in time order: each window's records are
            // a run of the batch, handed over as they lie (copying every record of such
            // batches was 1-4% of the seeds' job, where half the batches cross one).
            Some(run) => add(
                plugin,
                start,
                partition,
                &batch.records[run],
                &indices,
                batch,
            ),
            None => {
                let records: Vec<Record> =
                    indices.iter().map(|&i| batch.records[i].clone()).collect();
                add(plugin, start, partition, &records, &indices, batch)
            }
        })
        .collect()
}

/// The range `indices` (rising, as `partials` collects them) cover when they leave no
/// gap, so the records they name are one slice of the batch.
fn contiguous(indices: &[usize]) -> Option<std::ops::Range<usize>> {
    let (&first, &last) = (indices.first()?, indices.last()?);
    (last - first + 1 == indices.len()).then_some(first..last + 1)
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
        let w = windowing(60_000, 20_000);
        let starts: Vec<i64> = w.starts_of(65_000).collect();
        assert_eq!(starts, [20_000, 40_000, 60_000]);
        let tumbling = windowing(60_000, 60_000);
        assert_eq!(tumbling.starts_of(-1).collect::<Vec<_>>(), [-60_000]);
    }

    fn windowing(size_ms: i64, slide_ms: i64) -> Windowing {
        Windowing {
            size_ms,
            slide_ms,
            max_future_ms: 3_600_000,
            now_ms: 1_767_225_600_000, // 2026-01-01
        }
    }

    #[test]
    fn extreme_event_times_are_refused_and_never_loop() {
        let w = windowing(3_600_000, 60_000);
        for ts in [
            i64::MIN,
            i64::MIN + 1,
            i64::MAX,
            i64::MAX - 1,
            LATEST_EVENT_MS + 1,
        ] {
            let why = w.refuses(ts).expect("refused");
            assert!(why.contains("years 1 to 9999"), "{why}");
            // Even asked, the assignment ends at once with at most size/slide windows.
            assert!(w.starts_of(ts).count() <= 60, "{ts}");
        }
        assert!(w.refuses(EARLIEST_EVENT_MS).is_none());
        let ahead = w.refuses(w.now_ms + 3_600_001).expect("past max_future");
        assert!(
            ahead.contains("max_future (1h)") && ahead.contains("2026-01-01T01:00:00.001Z"),
            "{ahead}"
        );
        assert!(w.refuses(w.now_ms + 3_600_000).is_none());
    }

    #[test]
    fn only_a_gapless_run_of_indices_is_handed_over_as_a_slice() {
        assert_eq!(contiguous(&[3, 4, 5]), Some(3..6));
        assert_eq!(contiguous(&[0]), Some(0..1));
        assert_eq!(contiguous(&[]), None);
        assert_eq!(contiguous(&[3, 5]), None);
        assert_eq!(contiguous(&[0, 1, 3, 4]), None);
    }
}
