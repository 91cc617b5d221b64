//! Checkpoints: what the processor has handled ([`Progress`]), and the checkpoint
//! itself. A checkpoint asks every sink and the dead-letter output to make what it has
//! durable, waits for all of them, saves the window state (when there is a backend),
//! and then acknowledges to the source, per partition, the newest offset handled,
//! except where an open window (not saved) still holds older records of that
//! partition: those must be read again after a crash, so the acknowledgement stops
//! just before the oldest of them.

use super::batcher::Work;
use super::processor::{ProcessError, Processor, SinkMessage};
use super::snapshot::{self, PartitionState, Snapshot};
use crate::dead_letter::DeadLetter;
use crate::position::{Ack, PartitionId, Position};
use crate::record::Batch;
use std::collections::BTreeMap;
use std::time::Instant;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

/// Per source partition, the newest offset handled. Records of a partition arrive in
/// order, so every one before it is handled too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress(BTreeMap<PartitionId, u64>);

impl Progress {
    /// Raise each partition's handled offset to the newest of `positions`.
    pub fn note<'a>(&mut self, positions: impl IntoIterator<Item = &'a Position>) {
        for &Position { partition, offset } in positions {
            self.raise(partition, offset);
        }
    }

    /// A partition is handled through `offset`.
    pub fn raise(&mut self, partition: PartitionId, offset: u64) {
        let p = self.0.entry(partition).or_insert(offset);
        *p = (*p).max(offset);
    }

    /// A batch's records and its dead letters are handled.
    pub fn note_handled(&mut self, batch: &Batch, dead: &[DeadLetter]) {
        let dead = dead.iter().map(|d| &d.position);
        self.note(batch.positions.iter().chain(dead));
    }

    /// What a source's work brought is handled.
    pub fn handled(&mut self, work: &Work) {
        self.note_handled(&work.batch, &work.dead);
    }

    /// Everything `other` covers is handled.
    pub fn take(&mut self, other: &Progress) {
        for (&p, &offset) in &other.0 {
            self.raise(p, offset);
        }
    }

    /// Only these partitions are this host's now.
    pub fn keep(&mut self, partitions: &[PartitionId]) {
        self.0.retain(|p, _| partitions.contains(p));
    }

    /// Per partition, the newest offset handled.
    pub fn offsets(&self) -> &BTreeMap<PartitionId, u64> {
        &self.0
    }

    /// What a checkpoint makes safe: per partition, the newest handled offset, but
    /// never at or past the oldest one an open window holds.
    pub fn durable(&self, held: &BTreeMap<PartitionId, u64>) -> BTreeMap<PartitionId, u64> {
        self.0
            .iter()
            .filter_map(|(&p, &done)| match held.get(&p) {
                None => Some((p, done)),
                Some(&h) => h.checked_sub(1).map(|before| (p, done.min(before))),
            })
            .collect()
    }
}

impl Processor {
    /// Every sink (dead letters included) makes what it has durable; then the source
    /// hears which positions that covers.
    pub(super) fn checkpoint(
        &mut self,
        progress: &Progress,
        barrier: Option<u64>,
        rt: &Handle,
    ) -> Result<(), ProcessError> {
        // The sinks first, all at once: a sink queues the records it refuses as dead
        // letters before it answers, so the dead-letter output's checkpoint, asked
        // after, covers them too.
        let started = Instant::now();
        let sinks = self.sinks.iter().map(|r| (&r.name, &r.tx));
        checkpoint_all(sinks, rt)?;
        let dead_letters = (&self.dead_letter.name, &self.dead_letter.tx);
        checkpoint_all(std::iter::once(dead_letters), rt)?;
        let mut snapshot_bytes = None;
        // With the window state saved, what it holds is safe too; without, the
        // acknowledgement stops before the oldest record an open window holds.
        if let Some(k) = &mut self.keyed {
            k.expire();
        }
        // With the state saved, what an open window holds is safe too; without, the
        // acknowledgement stops before the oldest record an open window holds.
        let held = match (&self.snapshots, &self.window) {
            (Some(store), _) if self.window.is_some() || self.keyed.is_some() => {
                let saved = store.save(&self.snapshot(progress));
                snapshot_bytes = Some(saved?);
                BTreeMap::new()
            }
            (_, Some(w)) => w.held(),
            (_, None) => BTreeMap::new(),
        };
        self.metrics
            .add_checkpoint(started.elapsed(), snapshot_bytes);
        let ack = Ack {
            barrier,
            durable: progress.durable(&held),
        };
        // Acks are cumulative: when a source does not read them (generator, http) the
        // queue fills and a plain one is dropped, since the next says as much. A
        // barrier's is awaited, so it waits for room. A source that is gone (it
        // finished) needs to hear nothing.
        match self.acks.try_send(ack) {
            Err(std::sync::mpsc::TrySendError::Full(ack)) if ack.barrier.is_some() => {
                let _ = self.acks.send(ack);
            }
            _ => {}
        }
        Ok(())
    }
}

impl Processor {
    /// What the window and the keyed stage hold, per source partition, covering what
    /// was handled up to `progress`.
    fn snapshot(&self, progress: &Progress) -> Snapshot {
        let partitions = &self.dead_letter.partitions;
        let mut states: BTreeMap<PartitionId, PartitionState> = match &self.window {
            Some(w) => w
                .snapshot(progress.offsets(), partitions)
                .into_iter()
                .map(|s| (partitions.register(s.origin.clone()), s))
                .collect(),
            None => BTreeMap::new(),
        };
        if let Some(k) = &self.keyed {
            for p in k.partitions() {
                let covered = [progress.offsets().get(&p).copied(), k.restored_through(p)]
                    .into_iter()
                    .flatten()
                    .max();
                let (Some(origin), Some(covered)) = (partitions.origin(p), covered) else {
                    continue;
                };
                let state = states.entry(p).or_insert_with(|| PartitionState {
                    origin,
                    covered,
                    max_event_ms: None,
                    closed_through_ms: None,
                    windows: Vec::new(),
                    keys: Vec::new(),
                    keys_newest_ms: None,
                });
                k.save_into(p, state);
            }
        }
        let (size_ms, slide_ms) = self
            .window
            .as_ref()
            .map_or((0, None), |w| (w.size_ms(), Some(w.slide_ms())));
        let plugin = match (&self.window, &self.keyed) {
            (Some(w), _) => w.plugin_name(),
            (None, Some(k)) => k.plugin_name(),
            (None, None) => "",
        };
        Snapshot {
            format: snapshot::FORMAT,
            window_size_ms: size_ms,
            window_slide_ms: slide_ms,
            plugin: plugin.to_owned(),
            partitions: states.into_values().collect(),
        }
    }
}

/// Ask each sink to make what it has durable, then wait for every answer.
fn checkpoint_all<'a>(
    sinks: impl Iterator<Item = (&'a String, &'a mpsc::Sender<SinkMessage>)>,
    rt: &Handle,
) -> Result<(), ProcessError> {
    let mut answers = Vec::new();
    for (name, tx) in sinks {
        let (answer, rx) = oneshot::channel();
        rt.block_on(tx.send(SinkMessage::Checkpoint(answer)))
            .map_err(|_| ProcessError::SinkGone(name.clone()))?;
        answers.push((name, rx));
    }
    for (name, rx) in answers {
        rt.block_on(rx)
            .map_err(|_| ProcessError::SinkGone(name.clone()))??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_hold_back_what_is_durable() {
        let (a, b, c) = (PartitionId(0), PartitionId(1), PartitionId(2));
        let mut progress = Progress::default();
        for (p, o) in [(a, 100), (b, 50), (c, 7), (a, 60)] {
            progress.raise(p, o);
        }
        let held = BTreeMap::from([(a, 40), (c, 0)]);
        assert_eq!(
            progress.durable(&held),
            BTreeMap::from([(a, 39), (b, 50)]),
            "a stops before its held record, b is free, c has nothing safe yet"
        );
    }
}
