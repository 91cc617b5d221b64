//! Host-owned tumbling event-time windows. The host decides which window a record is
//! in, tracks the watermark and closes windows; the plugin only sees one window's
//! accumulator at a time. Accumulators are opaque bytes here, which is what lets a
//! checkpoint save them and a newer plugin take them over.

use crate::dead_letter::DeadLetter;
use crate::plugin::bindings::types::{Accumulator, WindowBounds};
use crate::plugin::{isolate, Isolated, WindowPlugin};
use crate::record::{record, Batch, PartitionId, Position, Record};
use base64::Engine as _;
use std::collections::BTreeMap;

struct OpenWindow {
    acc: Accumulator,
    /// Per source partition, the oldest offset whose effect is held only here: until
    /// the window is emitted, the source may not commit past it.
    held: BTreeMap<PartitionId, u64>,
    /// The newest position added (results carry it).
    last: Position,
}

impl OpenWindow {
    fn accept(&mut self, position: Position) {
        let held = self
            .held
            .entry(position.partition)
            .or_insert(position.offset);
        *held = (*held).min(position.offset);
        self.last = self.last.max(position);
    }
}

pub struct WindowStage {
    plugin: WindowPlugin,
    size_ms: i64,
    lateness_ms: i64,
    open: BTreeMap<i64, OpenWindow>,
    /// Per source partition, the newest event time accepted from it.
    max_event_ms: BTreeMap<PartitionId, i64>,
    /// The partitions the source reads, when it says (Kafka): the watermark waits
    /// for each. Otherwise the partitions seen so far count.
    assigned: Option<Vec<PartitionId>>,
    /// Windows closed since the start.
    closed: u64,
}

impl WindowStage {
    pub fn new(plugin: WindowPlugin, size_ms: i64, lateness_ms: i64) -> Self {
        assert!(size_ms > 0, "window size must be at least 1 ms");
        WindowStage {
            plugin,
            size_ms,
            lateness_ms,
            open: BTreeMap::new(),
            max_event_ms: BTreeMap::new(),
            assigned: None,
            closed: 0,
        }
    }

    /// Windows ending at or before this are closed; records for them are late.
    ///
    /// Tracked per source partition (its newest event time less the allowed
    /// lateness) and the least of them taken, so a partition read ahead of another
    /// (Kafka fetches partition by partition) cannot make the other's records late.
    ///
    /// When the source names its partitions ([`set_assignment`](Self::set_assignment)),
    /// there is no watermark until each has had a record: the first partition read
    /// cannot close windows another has records for. (A partition that never gets one
    /// holds windows open; idle partitions are the next step.)
    pub fn watermark(&self) -> Option<i64> {
        let newest = match &self.assigned {
            None => self.max_event_ms.values().min().copied(),
            Some(partitions) => partitions
                .iter()
                .map(|p| self.max_event_ms.get(p).copied())
                .min()
                .flatten(),
        };
        newest.map(|m| m.saturating_sub(self.lateness_ms))
    }

    /// The source's partitions changed: the watermark follows these from now on.
    pub fn set_assignment(&mut self, partitions: Vec<PartitionId>) {
        self.max_event_ms.retain(|p, _| partitions.contains(p));
        self.assigned = Some(partitions);
    }

    pub fn open_windows(&self) -> usize {
        self.open.len()
    }

    pub fn windows_closed(&self) -> u64 {
        self.closed
    }

    pub fn plugin_failures(&self) -> u64 {
        self.plugin.failures()
    }

    fn start_of(&self, ts: i64) -> i64 {
        ts.div_euclid(self.size_ms) * self.size_ms
    }

    /// Per source partition, the oldest offset held in any open window.
    pub fn held(&self) -> BTreeMap<PartitionId, u64> {
        let mut held = BTreeMap::new();
        for w in self.open.values() {
            for (&p, &o) in &w.held {
                let h = held.entry(p).or_insert(o);
                *h = (*h).min(o);
            }
        }
        held
    }

    fn dead(&self, record: Record, position: Position, reason: String) -> DeadLetter {
        DeadLetter::now("window", self.plugin.name(), record, position, reason)
    }

    /// Add a batch; returns the results of the windows it closed.
    pub fn push(&mut self, batch: &Batch, dead: &mut Vec<DeadLetter>) -> Batch {
        let watermark = self.watermark();
        let starts: Vec<i64> = batch
            .records
            .iter()
            .map(|r| self.start_of(r.timestamp_ms))
            .collect();
        let is_late =
            |start: i64| watermark.is_some_and(|w| start.saturating_add(self.size_ms) <= w);

        if let Some(&first) = starts.first() {
            if starts.iter().all(|&s| s == first) && !is_late(first) {
                // The common case, one window for the whole batch: no copies.
                self.add(first, &batch.records, &batch.positions, dead);
                return self.close(false, dead);
            }
        }
        let mut groups: BTreeMap<i64, (Vec<Record>, Vec<Position>)> = BTreeMap::new();
        for ((r, &position), &start) in batch.records.iter().zip(&batch.positions).zip(&starts) {
            if is_late(start) {
                let reason = format!(
                    "late record: its window [{start}, {}) closed when event time passed {} ms",
                    start.saturating_add(self.size_ms),
                    watermark.unwrap_or_default()
                );
                dead.push(self.dead(r.clone(), position, reason));
                continue;
            }
            let group = groups.entry(start).or_default();
            group.0.push(r.clone());
            group.1.push(position);
        }
        for (start, (records, positions)) in groups {
            self.add(start, &records, &positions, dead);
        }
        self.close(false, dead)
    }

    fn add(
        &mut self,
        start: i64,
        records: &[Record],
        positions: &[Position],
        dead: &mut Vec<DeadLetter>,
    ) {
        let existed = self.open.contains_key(&start);
        let mut window = match self.open.remove(&start) {
            Some(w) => w,
            None => match self.plugin.create() {
                Ok(acc) => OpenWindow {
                    acc,
                    held: BTreeMap::new(),
                    last: Position::default(),
                },
                Err(failure) => {
                    for (r, &p) in records.iter().zip(positions) {
                        let reason = format!("creating the accumulator: {failure}");
                        dead.push(self.dead(r.clone(), p, reason));
                    }
                    return;
                }
            },
        };
        // Each call that runs moves the accumulator on, so that when a failed batch
        // is retried a record at a time each record adds to the one before.
        let name = self.plugin.name().to_owned();
        let plugin = &mut self.plugin;
        let acc = &mut window.acc;
        let added = isolate(&name, records, |rs| {
            let result = plugin.add(acc, rs)?;
            if let Ok(added) = &result {
                *acc = added.accumulator.clone();
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
        for ((r, &p), outcome) in records.iter().zip(positions).zip(outcomes) {
            match outcome {
                Ok(()) => {
                    window.accept(p);
                    accepted = true;
                    let newest = self
                        .max_event_ms
                        .entry(p.partition)
                        .or_insert(r.timestamp_ms);
                    *newest = (*newest).max(r.timestamp_ms);
                }
                Err(reason) => dead.push(self.dead(r.clone(), p, reason)),
            }
        }
        // A window no record made it into is not a window: it would finish as zeros.
        if existed || accepted {
            self.open.insert(start, window);
        }
    }

    /// Emit and forget windows that have closed (`all`: every open window, at the end
    /// of the input).
    pub fn close(&mut self, all: bool, dead: &mut Vec<DeadLetter>) -> Batch {
        let mut out = Batch::default();
        let watermark = self.watermark();
        while let Some(entry) = self.open.first_entry() {
            let start = *entry.key();
            let end = start.saturating_add(self.size_ms);
            if !all && watermark.is_none_or(|w| end > w) {
                break;
            }
            let window = entry.remove();
            self.closed += 1;
            let bounds = WindowBounds {
                start_ms: start,
                end_ms: end,
            };
            match self.plugin.finish(&window.acc, bounds) {
                Ok(Ok(records)) => records.into_iter().for_each(|r| out.push(r, window.last)),
                Ok(Err(message)) => dead.push(self.unfinished(&window, bounds, message)),
                Err(failure) => dead.push(self.unfinished(&window, bounds, failure.to_string())),
            }
        }
        out
    }

    /// A window whose `finish` failed, as a dead letter carrying its state, so the
    /// counts can still be recovered.
    fn unfinished(&self, window: &OpenWindow, bounds: WindowBounds, reason: String) -> DeadLetter {
        let value = serde_json::json!({
            "window_start_ms": bounds.start_ms,
            "window_end_ms": bounds.end_ms,
            "accumulator_version": window.acc.version,
            "accumulator_base64": base64::engine::general_purpose::STANDARD.encode(&window.acc.data),
        });
        let rec = record(value.to_string(), bounds.start_ms);
        self.dead(rec, window.last, format!("finishing the window: {reason}"))
    }
}
