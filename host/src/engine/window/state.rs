//! The window stage's state going out and coming back: each partition's share saved
//! at a checkpoint and taken up at a start or an assignment, and the open windows'
//! state handed to a new plugin version (migrated if it needs to be).

use super::{Share, WindowStage};
use crate::plugin::bindings::types::{Accumulator, WindowBounds};
use crate::plugin::WindowPlugin;
use crate::position::{PartitionId, Partitions};
use crate::window_state::{PartitionState, SavedWindow};
use std::collections::BTreeMap;
use std::sync::Arc;

impl WindowStage {
    /// Hand the open windows' state to `new` instead of the running plugin. Each state
    /// format version among the open (and kept) windows is tried once: if `new` can
    /// finish it as it is, it is kept; if not and `new` has a `migrate` export, every
    /// accumulator of that version is converted; otherwise (or if a conversion fails)
    /// the swap is refused with the plugin's message and nothing changes. Returns the
    /// plugin replaced.
    pub fn replace_plugin(&mut self, mut new: WindowPlugin) -> Result<WindowPlugin, String> {
        let mut readable = std::collections::BTreeMap::new();
        for (&start, window) in self.open.iter().chain(self.closed_state.iter()) {
            for share in window.values() {
                let version = share.acc.version;
                if readable.contains_key(&version) {
                    continue;
                }
                let bounds = WindowBounds {
                    start_ms: start,
                    end_ms: start.saturating_add(self.size_ms()),
                };
                let as_is = match new.finish(&share.acc, bounds) {
                    Ok(Ok(_)) => true,
                    Ok(Err(_)) => false,
                    Err(failure) => {
                        return Err(format!(
                            "the new plugin failed on the open windows' state (format version {version}): {failure}"
                        ))
                    }
                };
                readable.insert(version, as_is);
            }
        }
        // Convert on copies first: the running state changes only if every one does.
        let mut converted: Vec<(bool, i64, PartitionId, Accumulator)> = Vec::new();
        let windows = self
            .open
            .iter()
            .map(|w| (false, w))
            .chain(self.closed_state.iter().map(|w| (true, w)));
        for (closed, (&start, window)) in windows {
            for (&p, share) in window {
                if readable.get(&share.acc.version) != Some(&false) {
                    continue;
                }
                let version = share.acc.version;
                let acc = match new.migrate(version, &share.acc.data) {
                    None => {
                        return Err(format!(
                            "the new plugin cannot read the open windows' state (format version {version}) and has no `migrate` export to convert it"
                        ))
                    }
                    Some(Ok(Ok(acc))) => acc,
                    Some(Ok(Err(why))) => {
                        return Err(format!("the new plugin's migrate refused state version {version}: {why}"))
                    }
                    Some(Err(failure)) => {
                        return Err(format!("the new plugin's migrate failed on state version {version}: {failure}"))
                    }
                };
                converted.push((closed, start, p, acc));
            }
        }
        let migrated = converted.len();
        for (closed, start, p, acc) in converted {
            let windows = if closed {
                &mut self.closed_state
            } else {
                &mut self.open
            };
            if let Some(share) = windows.get_mut(&start).and_then(|w| w.get_mut(&p)) {
                share.acc = acc;
            }
        }
        if migrated > 0 {
            tracing::info!(
                "{migrated} open window share(s) migrated to the new plugin's state format"
            );
        }
        Ok(std::mem::replace(&mut self.plugin, new))
    }

    /// Each partition's share of the state, covering what was handled up to
    /// `progress` (the newest offset per partition the pipeline has handled).
    pub fn snapshot(
        &self,
        progress: &BTreeMap<PartitionId, u64>,
        partitions: &Partitions,
    ) -> Vec<PartitionState> {
        let mut states: BTreeMap<PartitionId, PartitionState> = BTreeMap::new();
        let held = self
            .open
            .values()
            .chain(self.closed_state.values())
            .flat_map(|w| w.keys());
        for &p in self
            .seen
            .keys()
            .chain(self.restored_through.keys())
            .chain(held)
        {
            if states.contains_key(&p) {
                continue;
            }
            let Some(origin) = partitions.origin(p) else {
                continue;
            };
            let covered = [
                progress.get(&p),
                self.seen.get(&p),
                self.restored_through.get(&p),
            ]
            .into_iter()
            .flatten()
            .max();
            if let Some(&covered) = covered {
                states.insert(
                    p,
                    PartitionState {
                        origin,
                        covered,
                        max_event_ms: self.max_event_ms.get(&p).copied(),
                        closed_through_ms: self.closed_through.get(&p).copied(),
                        windows: Vec::new(),
                        keys: Vec::new(),
                        keys_newest_ms: None,
                    },
                );
            }
        }
        let open = self.open.iter().map(|w| (w, false));
        let kept = self.closed_state.iter().map(|w| (w, true));
        for ((&start_ms, window), closed) in open.chain(kept) {
            for (p, share) in window {
                if let Some(s) = states.get_mut(p) {
                    s.windows.push(SavedWindow {
                        start_ms,
                        version: share.acc.version,
                        data: share.acc.data.clone(),
                        first_offset: share.first,
                        last_offset: share.last,
                        closed,
                    });
                }
            }
        }
        states.into_values().collect()
    }

    /// Take up a partition's saved share of the state, after checking that the plugin
    /// reads every accumulator in it (a state version it refuses stops the pipeline
    /// here, before any data moves). Records of the partition at or before
    /// `state.covered` that arrive again are not added again.
    pub fn restore(&mut self, partition: PartitionId, state: PartitionState) -> Result<(), String> {
        for w in &state.windows {
            let acc = Accumulator {
                version: w.version,
                data: w.data.clone(),
            };
            let empty = self.plugin.create().map_err(|e| e.to_string())?;
            match self.plugin.merge(&empty, &acc) {
                Ok(Ok(_)) => {}
                Ok(Err(message)) => {
                    return Err(format!(
                        "the window plugin `{}` refuses the saved state of window {} of {} (state version {}, data {}): {message}",
                        self.plugin.name(),
                        w.start_ms,
                        state.origin.label(),
                        w.version,
                        crate::window_state::preview(&w.data)
                    ))
                }
                Err(failure) => {
                    return Err(format!(
                        "the window plugin `{}` failed on the saved state of window {} of {}: {failure}",
                        self.plugin.name(),
                        w.start_ms,
                        state.origin.label()
                    ))
                }
            }
            let windows = if w.closed {
                &mut self.closed_state
            } else {
                &mut self.open
            };
            windows.entry(w.start_ms).or_default().insert(
                partition,
                Share {
                    acc,
                    first: w.first_offset,
                    last: w.last_offset,
                },
            );
        }
        // State saved before event times were bounded may carry a time from a wrong
        // clock (the year 2100, say): taken up, it would keep every window closed.
        // A window closed because its partitions went idle ends up to a window's size
        // past the newest event time: its end may be that much further ahead.
        let now = self.windowing.at_now();
        let size = self.size_ms();
        let max_event = state.max_event_ms.filter(|&t| now.refuses(t).is_none());
        let closed_through = state
            .closed_through_ms
            .filter(|&end| now.refuses(end.saturating_sub(size)).is_none());
        if (max_event, closed_through) != (state.max_event_ms, state.closed_through_ms) {
            tracing::warn!(
                "the saved window state of {} has an event time beyond what windows take now (newest {:?} ms, closed through {:?} ms): left out, so it does not keep every window closed",
                state.origin.label(),
                state.max_event_ms,
                state.closed_through_ms
            );
        }
        if let Some(m) = max_event {
            self.max_event_ms.insert(partition, m);
        }
        if let Some(c) = closed_through {
            self.closed_through.insert(partition, c);
        }
        Arc::make_mut(&mut self.restored_through).insert(partition, state.covered);
        Ok(())
    }
}
