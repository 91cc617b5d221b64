//! Groups the source's records into batches. A barrier from the source ends the batch
//! at once and travels with it, so the processor acts on it right after the records
//! sent before it, without waiting out the linger.

use crate::dead_letter::DeadLetter;
use crate::record::Batch;
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
}

impl Work {
    fn len(&self) -> usize {
        self.batch.len() + self.dead.len()
    }

    fn add(&mut self, event: SourceEvent) {
        match event {
            SourceEvent::Record(r, p) => self.batch.push(r, p),
            SourceEvent::Dead(d) => self.dead.push(d),
            SourceEvent::Barrier { id, end_of_input } => self.barrier = Some((id, end_of_input)),
        }
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
    let mut pending: Vec<SourceEvent> = Vec::with_capacity(size);
    loop {
        let Some(first) = input.recv().await else {
            return;
        };
        let mut work = Work {
            batch: Batch::with_capacity(size),
            ..Work::default()
        };
        work.add(first);
        let deadline = Instant::now() + linger;
        let mut closed = false;
        while work.len() < size && work.barrier.is_none() {
            match tokio::time::timeout_at(
                deadline,
                input.recv_many(&mut pending, size - work.len()),
            )
            .await
            {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(_) => {
                    for event in pending.drain(..) {
                        if work.barrier.is_some() {
                            // What follows a barrier starts the next work.
                            if output.send(std::mem::take(&mut work)).await.is_err() {
                                return;
                            }
                        }
                        work.add(event);
                    }
                }
                Err(_) => break,
            }
        }
        if output.send(work).await.is_err() || closed {
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
