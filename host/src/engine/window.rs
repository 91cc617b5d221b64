//! Host-owned tumbling event-time windows. The host decides which window a record is
//! in, tracks the watermark and closes windows; the plugin only sees one window's
//! accumulator at a time. Accumulators are opaque bytes here, which is what lets a
//! checkpoint save them and a newer plugin take them over.

use super::GIVE_UP_AFTER;
use crate::dead_letter::DeadLetter;
use crate::plugin::bindings::types::{Accumulator, WindowBounds};
use crate::plugin::WindowPlugin;
use crate::record::{record, Batch, Record};
use base64::Engine as _;
use std::collections::BTreeMap;

struct OpenWindow {
    acc: Accumulator,
    /// Highest source offset added: the window is fully handled once it is emitted.
    last_offset: u64,
}

pub struct WindowStage {
    plugin: WindowPlugin,
    size_ms: i64,
    lateness_ms: i64,
    open: BTreeMap<i64, OpenWindow>,
    /// Newest event time accepted so far.
    max_event_ms: Option<i64>,
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
            max_event_ms: None,
            closed: 0,
        }
    }

    /// Windows ending at or before this are closed; records for them are late.
    pub fn watermark(&self) -> Option<i64> {
        self.max_event_ms
            .map(|m| m.saturating_sub(self.lateness_ms))
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

    fn dead(&self, record: Record, offset: u64, reason: String) -> DeadLetter {
        DeadLetter::now("window", self.plugin.name(), record, offset, reason)
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
                self.add(first, &batch.records, &batch.offsets, dead);
                return self.close(false, dead);
            }
        }
        let mut groups: BTreeMap<i64, (Vec<Record>, Vec<u64>)> = BTreeMap::new();
        for ((r, &offset), &start) in batch.records.iter().zip(&batch.offsets).zip(&starts) {
            if is_late(start) {
                let reason = format!(
                    "late record: its window [{start}, {}) closed when event time passed {} ms",
                    start.saturating_add(self.size_ms),
                    watermark.unwrap_or_default()
                );
                dead.push(self.dead(r.clone(), offset, reason));
                continue;
            }
            let group = groups.entry(start).or_default();
            group.0.push(r.clone());
            group.1.push(offset);
        }
        for (start, (records, offsets)) in groups {
            self.add(start, &records, &offsets, dead);
        }
        self.close(false, dead)
    }

    fn add(&mut self, start: i64, records: &[Record], offsets: &[u64], dead: &mut Vec<DeadLetter>) {
        let existed = self.open.contains_key(&start);
        let mut window = match self.open.remove(&start) {
            Some(w) => w,
            None => match self.plugin.create() {
                Ok(acc) => OpenWindow {
                    acc,
                    last_offset: 0,
                },
                Err(failure) => {
                    for (r, &o) in records.iter().zip(offsets) {
                        let reason = format!("creating the accumulator: {failure}");
                        dead.push(self.dead(r.clone(), o, reason));
                    }
                    return;
                }
            },
        };
        let mut accepted_max: Option<i64> = None;
        let mut accept = |window: &mut OpenWindow, rs: &[Record], os: &[u64], skip: &[u32]| {
            for (i, (r, &o)) in rs.iter().zip(os).enumerate() {
                if !skip.contains(&(i as u32)) {
                    window.last_offset = window.last_offset.max(o);
                    accepted_max =
                        Some(accepted_max.map_or(r.timestamp_ms, |m| m.max(r.timestamp_ms)));
                }
            }
        };
        match self.plugin.add(&window.acc, records) {
            Ok(Ok(added)) => {
                window.acc = added.accumulator;
                let skip: Vec<u32> = added.rejected.iter().map(|r| r.index).collect();
                accept(&mut window, records, offsets, &skip);
                for rej in added.rejected {
                    let i = rej.index as usize;
                    dead.push(self.dead(records[i].clone(), offsets[i], rej.reason));
                }
            }
            Ok(Err(message)) => {
                for (r, &o) in records.iter().zip(offsets) {
                    dead.push(self.dead(r.clone(), o, message.clone()));
                }
            }
            Err(failure) => {
                // As for transforms: find the record to blame, keep the rest.
                tracing::warn!(
                    plugin = self.plugin.name(),
                    "{failure}; adding records one at a time"
                );
                let mut failed_in_a_row = 0;
                let mut last_failure = failure;
                for (r, &o) in records.iter().zip(offsets) {
                    if failed_in_a_row >= GIVE_UP_AFTER {
                        let reason = format!("not retried: {GIVE_UP_AFTER} records of this batch failed in a row ({last_failure})");
                        dead.push(self.dead(r.clone(), o, reason));
                        continue;
                    }
                    let one = std::slice::from_ref(r);
                    let reason = match self.plugin.add(&window.acc, one) {
                        Ok(Ok(added)) if added.rejected.is_empty() => {
                            window.acc = added.accumulator;
                            accept(&mut window, one, &[o], &[]);
                            failed_in_a_row = 0;
                            continue;
                        }
                        Ok(Ok(added)) => added
                            .rejected
                            .into_iter()
                            .next()
                            .map(|r| r.reason)
                            .unwrap_or_default(),
                        Ok(Err(message)) => message,
                        Err(failure) => {
                            failed_in_a_row += 1;
                            let reason = failure.to_string();
                            last_failure = failure;
                            reason
                        }
                    };
                    dead.push(self.dead(r.clone(), o, reason));
                }
            }
        }
        if let Some(m) = accepted_max {
            self.max_event_ms = Some(self.max_event_ms.map_or(m, |old| old.max(m)));
        }
        // A window no record made it into is not a window: it would finish as zeros.
        if existed || accepted_max.is_some() {
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
                Ok(Ok(records)) => records
                    .into_iter()
                    .for_each(|r| out.push(r, window.last_offset)),
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
        self.dead(
            rec,
            window.last_offset,
            format!("finishing the window: {reason}"),
        )
    }
}
