//! Host-owned event-time windows, tumbling or sliding. The host decides which windows a record is
//! in, tracks the watermark and closes windows; the plugin only sees one accumulator
//! at a time. Accumulators are opaque bytes here, which is what lets a checkpoint save
//! them ([`super::snapshot`]) and a newer plugin take them over.
//!
//! Each open window keeps one accumulator per source partition: a partition's share
//! can be saved, restored and moved on its own, and a closing window merges the
//! shares (the plugin's `merge`, which must be exact) before `finish`.

mod emit;
mod partial;
mod state;

pub use partial::{accumulate, Added, Replayed, Windowing};

use crate::dead_letter::DeadLetter;
use crate::plugin::bindings::types::Accumulator;
use crate::plugin::WindowPlugin;
use crate::position::{Origin, Partitions};
use crate::record::{Batch, PartitionId, Position, Record};
use partial::{members, replayed};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// One partition's share of an open window.
struct Share {
    acc: Accumulator,
    /// The oldest offset added: until the window is emitted (or saved in a snapshot),
    /// the source may not commit past it.
    first: u64,
    /// The newest offset added (results carry it).
    last: u64,
}

type OpenWindow = BTreeMap<PartitionId, Share>;

pub struct WindowStage {
    plugin: WindowPlugin,
    windowing: Windowing,
    /// What a late record becomes.
    late: Late,
    /// Closed windows kept for late updates (`Late::Update`), by start.
    closed_state: BTreeMap<i64, OpenWindow>,
    /// Late records dropped since the start.
    late_dropped: u64,
    lateness_ms: i64,
    /// By window start.
    open: BTreeMap<i64, OpenWindow>,
    /// Per source partition, the newest event time accepted from it.
    max_event_ms: BTreeMap<PartitionId, i64>,
    /// Per source partition, the newest offset pushed here (a snapshot covers it).
    seen: BTreeMap<PartitionId, u64>,
    /// Per partition restored from a snapshot: records at or before this offset are
    /// already in the state, so a replay of them is not added again. Shared with the
    /// workers that add batches up ([`Self::windowing`]).
    restored_through: Arc<Replayed>,
    /// The partitions the source reads, when it says (Kafka): the watermark waits
    /// for each. Otherwise the partitions seen so far count.
    assigned: Option<Vec<PartitionId>>,
    /// Windows closed since the start.
    closed: u64,
    /// Per partition, the end of the newest window closed while it was this host's:
    /// a record for a window ending at or before it is late, even when the watermark
    /// is behind it (windows closed because every partition went idle).
    closed_through: BTreeMap<PartitionId, i64>,
    /// After this long without a record, a partition no longer holds the watermark.
    idle_after: Option<std::time::Duration>,
    /// When each partition last had a record (or, for one that never did, when the
    /// stage started).
    last_arrival: BTreeMap<PartitionId, Instant>,
    started: Instant,
    /// One result per window and partition, tagged with [`PARTITION_HEADER`].
    partials: bool,
    /// Names partitions in partial results.
    partitions: Arc<Partitions>,
}

/// What a record for a window already emitted becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Late {
    DeadLetter,
    /// Dropped, and counted.
    Drop,
    /// Added to the closed window's kept state, and the window emitted again (its
    /// result is upserted by window key, so the corrected one replaces the first);
    /// kept until the watermark is `keep_ms` past the window's end.
    Update {
        keep_ms: i64,
    },
}

/// How far ahead of the host's clock an event time may be unless `[window]
/// max_future` says otherwise: a day.
pub const DEFAULT_MAX_FUTURE_MS: i64 = 24 * 3600 * 1000;

impl WindowStage {
    pub fn new(plugin: WindowPlugin, size_ms: i64, lateness_ms: i64) -> Self {
        assert!(size_ms > 0, "window size must be at least 1 ms");
        WindowStage {
            plugin,
            windowing: Windowing {
                size_ms,
                slide_ms: size_ms,
                max_future_ms: DEFAULT_MAX_FUTURE_MS,
                now_ms: 0,
            },
            late: Late::DeadLetter,
            closed_state: BTreeMap::new(),
            late_dropped: 0,
            lateness_ms,
            open: BTreeMap::new(),
            max_event_ms: BTreeMap::new(),
            seen: BTreeMap::new(),
            restored_through: Arc::default(),
            assigned: None,
            closed: 0,
            closed_through: BTreeMap::new(),
            idle_after: None,
            last_arrival: BTreeMap::new(),
            started: Instant::now(),
            partials: false,
            partitions: Arc::default(),
        }
    }

    /// One result per window and source partition.
    pub fn partials(mut self, partials: bool) -> Self {
        self.partials = partials;
        self
    }

    /// The pipeline's partition registry (partial results name their partition).
    pub fn set_partitions(&mut self, partitions: Arc<Partitions>) {
        self.partitions = partitions;
    }

    /// Sliding windows: one starts every `slide_ms` (at most the size).
    pub fn sliding(mut self, slide_ms: i64) -> Self {
        assert!(
            slide_ms > 0 && slide_ms <= self.windowing.size_ms,
            "0 < slide <= size"
        );
        self.windowing.slide_ms = slide_ms;
        self
    }

    /// Records whose event time is further ahead of the host's clock than this are
    /// dead letters: one record from a wrong clock would otherwise move the watermark
    /// past every open window.
    pub fn max_future(mut self, max_future_ms: i64) -> Self {
        self.windowing.max_future_ms = max_future_ms.max(0);
        self
    }

    /// What late records become.
    pub fn late(mut self, late: Late) -> Self {
        self.late = late;
        self
    }

    pub fn slide_ms(&self) -> i64 {
        self.windowing.slide_ms
    }

    pub fn late_dropped(&self) -> u64 {
        self.late_dropped
    }

    /// Partitions with no record for `timeout` stop holding the watermark back.
    pub fn idle_after(mut self, timeout: Option<std::time::Duration>) -> Self {
        self.idle_after = timeout;
        self
    }

    /// Drop a partition's share of everything (it moved to another host, which takes
    /// it up from the saved state).
    pub fn forget(&mut self, partition: PartitionId) {
        for windows in [&mut self.open, &mut self.closed_state] {
            windows.retain(|_, w| {
                w.remove(&partition);
                !w.is_empty()
            });
        }
        self.seen.remove(&partition);
        Arc::make_mut(&mut self.restored_through).remove(&partition);
        self.max_event_ms.remove(&partition);
        self.last_arrival.remove(&partition);
        self.closed_through.remove(&partition);
    }

    pub fn has_idle_timeout(&self) -> bool {
        self.idle_after.is_some()
    }

    pub fn size_ms(&self) -> i64 {
        self.windowing.size_ms
    }

    pub fn plugin_name(&self) -> &str {
        self.plugin.name()
    }

    /// Windows ending at or before this are closed; records for them are late.
    ///
    /// Tracked per source partition (its newest event time less the allowed
    /// lateness) and the least of them taken, so a partition read ahead of another
    /// (Kafka fetches partition by partition) cannot make the other's records late.
    ///
    /// When the source names its partitions ([`set_assignment`](Self::set_assignment)),
    /// there is no watermark until each has had a record: the first partition read
    /// cannot close windows another has records for. With an idle timeout, a
    /// partition without records for that long is left out; when every partition is
    /// idle the watermark is past every window.
    pub fn watermark(&self) -> Option<i64> {
        let known: Vec<PartitionId> = match &self.assigned {
            None => self.max_event_ms.keys().copied().collect(),
            Some(partitions) => partitions.clone(),
        };
        let now = Instant::now();
        let active: Vec<PartitionId> = known
            .iter()
            .copied()
            .filter(|p| {
                self.idle_after.is_none_or(|idle| {
                    let last = self.last_arrival.get(p).copied().unwrap_or(self.started);
                    now.duration_since(last) < idle
                })
            })
            .collect();
        if active.is_empty() && !known.is_empty() {
            // Every partition is idle: nothing more is coming for the open windows.
            return Some(i64::MAX);
        }
        let newest = active
            .iter()
            .map(|p| self.max_event_ms.get(p).copied())
            .min()
            .flatten();
        newest.map(|m| m.saturating_sub(self.lateness_ms))
    }

    /// The source's partitions changed: the watermark follows these from now on.
    /// (Their shares of open windows stay: a partition revoked and assigned back to
    /// this host goes on where it was.)
    pub fn set_assignment(&mut self, partitions: Vec<PartitionId>) {
        self.max_event_ms.retain(|p, _| partitions.contains(p));
        // A partition just assigned is not idle yet: its records have not had time
        // to arrive.
        let now = Instant::now();
        let before = self.assigned.take().unwrap_or_default();
        for &p in partitions.iter().filter(|p| !before.contains(p)) {
            self.last_arrival.insert(p, now);
        }
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

    pub fn plugin(&self) -> &WindowPlugin {
        &self.plugin
    }

    /// The plugin's log lines dropped by its rate limit.
    pub fn log_dropped(&self) -> u64 {
        self.plugin.log_dropped()
    }

    /// Per partition seen, its own watermark (newest event time less the allowed
    /// lateness), by the partition's label.
    pub fn watermarks(&self, partitions: &Partitions) -> BTreeMap<String, i64> {
        self.max_event_ms
            .iter()
            .map(|(&p, &m)| {
                let label = partitions
                    .origin(p)
                    .map_or_else(|| p.0.to_string(), |o| o.label());
                (label, m.saturating_sub(self.lateness_ms))
            })
            .collect()
    }

    /// Per source partition, the oldest offset held in any open window.
    pub fn held(&self) -> BTreeMap<PartitionId, u64> {
        let mut held = BTreeMap::new();
        for w in self.open.values() {
            for (&p, share) in w {
                let h = held.entry(p).or_insert(share.first);
                *h = (*h).min(share.first);
            }
        }
        held
    }

    fn dead(&self, record: Record, position: Position, reason: String) -> DeadLetter {
        DeadLetter::now("window", self.plugin.name(), record, position, reason)
    }

    /// Add a batch; returns the results of the windows it closed.
    pub fn push(&mut self, batch: &Batch, dead: &mut Vec<DeadLetter>) -> Batch {
        let added = accumulate(
            &mut self.plugin,
            self.windowing.at_now(),
            batch,
            &self.restored_through,
        );
        self.take(batch, added, dead)
    }

    /// The stage's state for a worker that adds batches up ([`accumulate`]) while
    /// this one runs: which windows a record is in, and which records are replays.
    pub fn windowing(&self) -> (Windowing, Arc<Replayed>) {
        (self.windowing.at_now(), self.restored_through.clone())
    }

    /// Take in a batch added up by [`accumulate`] (here or on a worker, from the state
    /// [`Self::windowing`] gave, in source order): its partials merged into the open
    /// windows, what is late sorted out, and the windows it closes emitted.
    pub fn take(&mut self, batch: &Batch, added: Added, dead: &mut Vec<DeadLetter>) -> Batch {
        let Added {
            windowing,
            partials,
        } = added;
        let now = Instant::now();
        for &Position { partition, offset } in &batch.positions {
            let seen = self.seen.entry(partition).or_insert(offset);
            *seen = (*seen).max(offset);
            self.last_arrival.insert(partition, now);
        }
        let watermark = self.watermark();
        let closed_by =
            |this: &Self, p: PartitionId| watermark.max(this.closed_through.get(&p).copied());
        let is_late = |this: &Self, start: i64, p: PartitionId| {
            closed_by(this, p).is_some_and(|w| start.saturating_add(this.size_ms()) <= w)
        };
        let update = matches!(self.late, Late::Update { .. });

        // Records in no open window (nor, with late updates, a kept closed one).
        let mut late_records = Vec::new();
        for (i, r) in batch.records.iter().enumerate() {
            if replayed(&self.restored_through, batch, i) {
                continue;
            }
            if let Some(why) = windowing.refuses(r.timestamp_ms) {
                dead.push(self.dead(r.clone(), batch.positions[i], why));
                continue;
            }
            let p = batch.positions[i].partition;
            let counted = windowing.starts_of(r.timestamp_ms).any(|start| {
                !is_late(self, start, p) || (update && self.closed_state.contains_key(&start))
            });
            if !counted {
                late_records.push(i);
            }
        }
        for &i in &late_records {
            let (r, position) = (&batch.records[i], batch.positions[i]);
            let start = windowing.start_of(r.timestamp_ms);
            let reason = format!(
                "late record: its window [{start}, {}) closed when event time passed {} ms (records this far out of order count with a larger [window] allowed_lateness, or late = \"update\")",
                start.saturating_add(self.size_ms()),
                closed_by(self, position.partition).unwrap_or_default()
            );
            match self.late {
                Late::DeadLetter => dead.push(self.dead(r.clone(), position, reason)),
                Late::Drop => self.late_dropped += 1,
                Late::Update { .. } => {
                    let why = format!("{reason}, longer ago than late updates are kept");
                    dead.push(self.dead(r.clone(), position, why));
                }
            }
        }

        let mut updated = Vec::new();
        for partial in partials {
            let (start, p) = (partial.start, partial.partition);
            let late = is_late(self, start, p);
            if late && !(update && self.closed_state.contains_key(&start)) {
                continue; // late for this window: counted elsewhere, or above
            }
            for (i, reason) in &partial.refused {
                let (r, position) = (batch.records[*i].clone(), batch.positions[*i]);
                dead.push(self.dead(r, position, reason.clone()));
            }
            let Some(acc) = partial.acc else { continue };
            let windows = if late {
                &mut self.closed_state
            } else {
                &mut self.open
            };
            let window = windows.entry(start).or_default();
            let merged = match window.remove(&p) {
                None => Ok(Share {
                    acc,
                    first: partial.first,
                    last: partial.last,
                }),
                Some(share) => match self.plugin.merge(&share.acc, &acc) {
                    Ok(Ok(merged)) => Ok(Share {
                        acc: merged,
                        first: share.first.min(partial.first),
                        last: share.last.max(partial.last),
                    }),
                    Ok(Err(message)) => Err((share, message)),
                    Err(failure) => Err((share, failure.to_string())),
                },
            };
            let windows = if late {
                &mut self.closed_state
            } else {
                &mut self.open
            };
            let window = windows.entry(start).or_default();
            match merged {
                Ok(share) => {
                    window.insert(p, share);
                    let newest = self.max_event_ms.entry(p).or_insert(partial.max_event_ms);
                    *newest = (*newest).max(partial.max_event_ms);
                    if late && !updated.contains(&start) {
                        updated.push(start);
                    }
                }
                Err((share, message)) => {
                    window.insert(p, share);
                    // The records the partial held are not in the window: dead letters.
                    let refused: Vec<usize> = partial.refused.iter().map(|r| r.0).collect();
                    for i in members(windowing, batch, &self.restored_through, start, p) {
                        if !refused.contains(&i) {
                            let reason = format!("merging into the window: {message}");
                            let (r, position) = (batch.records[i].clone(), batch.positions[i]);
                            dead.push(self.dead(r, position, reason));
                        }
                    }
                }
            }
        }
        let mut out = self.close(false, dead);
        // Windows corrected by late records, emitted again.
        for start in updated {
            if let Some(window) = self.closed_state.remove(&start) {
                self.emit(start, &window, &mut out, dead);
                self.closed_state.insert(start, window);
            }
        }
        out
    }

    /// Emit and forget windows that have closed (`all`: every open window, at the end
    /// of the input).
    pub fn close(&mut self, all: bool, dead: &mut Vec<DeadLetter>) -> Batch {
        let mut out = Batch::default();
        let watermark = self.watermark();
        let size = self.size_ms();
        while let Some(entry) = self.open.first_entry() {
            let start = *entry.key();
            let end = start.saturating_add(size);
            if !all && watermark.is_none_or(|w| end > w) {
                break;
            }
            let window = entry.remove();
            self.closed += 1;
            // Closed for every partition of this host's, not only those in it.
            let known: Vec<PartitionId> = match &self.assigned {
                Some(a) => a.clone(),
                None => self.seen.keys().copied().collect(),
            };
            for p in known.into_iter().chain(window.keys().copied()) {
                let c = self.closed_through.entry(p).or_insert(end);
                *c = (*c).max(end);
            }
            self.emit(start, &window, &mut out, dead);
            if matches!(self.late, Late::Update { .. }) {
                // Kept for late records, until the watermark leaves it behind.
                self.closed_state.insert(start, window);
            }
        }
        self.forget_expired();
        out
    }

    /// Closed windows kept for late updates that the watermark has left behind.
    fn forget_expired(&mut self) {
        let (Late::Update { keep_ms }, Some(w)) = (self.late, self.watermark()) else {
            return;
        };
        if w == i64::MAX {
            return; // every partition idle: no event time has passed
        }
        let size = self.size_ms();
        self.closed_state
            .retain(|&start, _| start.saturating_add(size).saturating_add(keep_ms) > w);
    }

    /// Running results of the open windows (`emit_every`): the same records `finish`
    /// gives at the close, keyed by window, so the final result overwrites them.
    pub fn early(&mut self, dead: &mut Vec<DeadLetter>) -> Batch {
        let mut out = Batch::default();
        let open = std::mem::take(&mut self.open);
        for (&start, window) in &open {
            self.emit(start, window, &mut out, dead);
        }
        self.open = open;
        out
    }
}

/// A partition's name in partial results (`topic-3`, a file's path, or the source): a
/// stored key (a MongoDB document's, a Cassandra row's), so it keeps this form; messages
/// name partitions with [`Origin::label`] (`topic[3]`).
pub fn label(origin: &Origin) -> String {
    match origin {
        Origin::Kafka { topic, partition } => format!("{topic}-{partition}"),
        Origin::File { path } => path.display().to_string(),
        Origin::Sequence { source } => source.clone(),
        Origin::Table { table } => table.clone(),
    }
}
