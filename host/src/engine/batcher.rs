//! Groups the source's records into batches. A barrier from the source ends the batch
//! at once and travels with it, so the processor acts on it right after the records
//! sent before it, without waiting out the linger.

use crate::dead_letter::DeadLetter;
use crate::record::{Batch, PartitionId};
use crate::sources::SourceEvent;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What the processor gets: records, the source's own dead letters, and maybe a
/// barrier to checkpoint after them.
#[derive(Default)]
pub struct Work {
    pub batch: Batch,
    pub dead: Vec<DeadLetter>,
    /// `(id, end_of_input)` of a barrier that ends this work.
    pub barrier: Option<(u64, bool)>,
    /// The source's partitions changed after this work's records (ends the work).
    pub assignment: Option<Vec<PartitionId>>,
}

impl Work {
    fn new(size: usize) -> Self {
        Work {
            batch: Batch::with_capacity(size),
            ..Work::default()
        }
    }

    fn len(&self) -> usize {
        self.batch.len() + self.dead.len()
    }

    /// Whether nothing more goes into this work.
    fn is_done(&self, size: usize) -> bool {
        self.len() >= size || self.barrier.is_some() || self.assignment.is_some()
    }

    /// Add what fits; what does not (the rest of a chunk once the work is full or a
    /// barrier ended it) comes back.
    fn add(&mut self, event: SourceEvent, size: usize) -> Option<SourceEvent> {
        match event {
            SourceEvent::Record(r, p) => self.batch.push(r, p),
            SourceEvent::Dead(d) => self.dead.push(d),
            SourceEvent::Barrier { id, end_of_input } => self.barrier = Some((id, end_of_input)),
            SourceEvent::Assignment(partitions) => self.assignment = Some(partitions),
            SourceEvent::Many(events) => {
                let mut events = events.into_iter();
                while !self.is_done(size) {
                    let e = events.next()?;
                    if let Some(rest) = self.add(e, size) {
                        let mut rest = vec![rest];
                        rest.extend(events);
                        return Some(SourceEvent::Many(rest));
                    }
                }
                let rest: Vec<SourceEvent> = events.collect();
                return (!rest.is_empty()).then_some(SourceEvent::Many(rest));
            }
        }
        None
    }
}

/// Groups events into work of at most `size` records, sending a partial batch once its
/// first record has waited `linger`, and at once after a barrier. Ends (after sending
/// what it has) when the source side closes; stops early if the downstream side is
/// gone.
pub async fn run(
    mut input: mpsc::Receiver<SourceEvent>,
    output: mpsc::Sender<Work>,
    size: usize,
    linger: Duration,
) {
    // The rest of a chunk that did not fit into the last work.
    let mut carry: Option<SourceEvent> = None;
    let mut closed = false;
    loop {
        let first = match carry.take() {
            Some(e) => e,
            None if closed => return,
            None => match input.recv().await {
                Some(e) => e,
                None => return,
            },
        };
        let mut work = Work::new(size);
        work.batch.read_at = Some(std::time::Instant::now());
        carry = work.add(first, size);
        let deadline = Instant::now() + linger;
        while carry.is_none() && !closed && !work.is_done(size) {
            match tokio::time::timeout_at(deadline, input.recv()).await {
                Ok(Some(event)) => carry = work.add(event, size),
                Ok(None) => closed = true,
                Err(_) => break,
            }
        }
        if output.send(work).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{record, PartitionId, Position};

    fn spawn(size: usize, linger_ms: u64) -> (mpsc::Sender<SourceEvent>, mpsc::Receiver<Work>) {
        let (in_tx, in_rx) = mpsc::channel(100);
        let (out_tx, out_rx) = mpsc::channel(100);
        tokio::spawn(run(in_rx, out_tx, size, Duration::from_millis(linger_ms)));
        (in_tx, out_rx)
    }

    fn rec(i: u64) -> SourceEvent {
        SourceEvent::Record(record(vec![i as u8], 0), Position::new(PartitionId(0), i))
    }

    #[tokio::test]
    async fn full_batches_go_at_once_and_the_rest_when_the_source_ends() {
        let (tx, mut rx) = spawn(4, 60_000);
        for i in 0..10 {
            tx.send(rec(i)).await.unwrap();
        }
        drop(tx);
        let mut sizes = Vec::new();
        let mut offsets = Vec::new();
        while let Some(w) = rx.recv().await {
            sizes.push(w.batch.len());
            offsets.extend(w.batch.positions.iter().map(|p| p.offset));
        }
        assert_eq!(sizes, [4, 4, 2]);
        assert_eq!(offsets, (0..10).collect::<Vec<u64>>());
    }

    #[tokio::test(start_paused = true)]
    async fn a_partial_batch_goes_after_the_linger() {
        let (tx, mut rx) = spawn(100, 50);
        tx.send(rec(0)).await.unwrap();
        tx.send(rec(1)).await.unwrap();
        // The clock is paused: it only moves when every task waits, so this is exact.
        let started = tokio::time::Instant::now();
        let work = rx.recv().await.unwrap();
        assert_eq!(work.batch.len(), 2);
        assert_eq!(started.elapsed(), Duration::from_millis(50));
        assert!(!tx.is_closed(), "the batcher keeps running");
    }

    #[tokio::test]
    async fn chunks_are_split_at_the_batch_size_in_order() {
        let (tx, mut rx) = spawn(4, 60_000);
        tx.send(SourceEvent::Many((0..6).map(rec).collect()))
            .await
            .unwrap();
        tx.send(SourceEvent::Many(vec![
            rec(6),
            SourceEvent::Barrier {
                id: 1,
                end_of_input: true,
            },
            rec(7),
        ]))
        .await
        .unwrap();
        drop(tx);
        let mut got = Vec::new();
        while let Some(w) = rx.recv().await {
            let offsets: Vec<u64> = w.batch.positions.iter().map(|p| p.offset).collect();
            got.push((offsets, w.barrier));
        }
        assert_eq!(
            got,
            [
                (vec![0, 1, 2, 3], None),
                (vec![4, 5, 6], Some((1, true))),
                (vec![7], None)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_barrier_ends_the_batch_at_once_and_keeps_its_place() {
        let (tx, mut rx) = spawn(100, 60_000);
        tx.send(rec(0)).await.unwrap();
        tx.send(SourceEvent::Barrier {
            id: 7,
            end_of_input: false,
        })
        .await
        .unwrap();
        tx.send(rec(1)).await.unwrap();
        let started = tokio::time::Instant::now();
        let first = rx.recv().await.unwrap();
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "no linger before a barrier"
        );
        assert_eq!(first.batch.len(), 1);
        assert_eq!(first.barrier, Some((7, false)));
        drop(tx);
        let second = rx.recv().await.unwrap();
        assert_eq!(second.batch.positions[0].offset, 1);
        assert_eq!(second.barrier, None);
    }
}
