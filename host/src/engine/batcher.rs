//! Groups the source's records into batches. A barrier from the source ends the batch
//! at once and travels with it, so the processor acts on it right after the records
//! sent before it, without waiting out the linger.
//!
//! Batching adapts to the load: while the processing side is busy, records gather
//! into batches (up to the size, or the linger); when it waits for work
//! ([`Demand`]), what has arrived goes at once, so a quiet stream's records are not
//! held back for a linger they do not need.

use crate::dead_letter::DeadLetter;
use crate::record::{Batch, PartitionId};
use crate::sources::SourceEvent;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
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

/// Whether the processing side waits for work: set by the processor, read by the
/// batcher.
#[derive(Debug, Default)]
pub struct Demand {
    idle: AtomicBool,
    wake: Notify,
}

impl Demand {
    pub fn set_idle(&self, idle: bool) {
        let was = self.idle.swap(idle, Ordering::AcqRel);
        if idle && !was {
            self.wake.notify_one();
        }
    }

    fn is_idle(&self) -> bool {
        self.idle.load(Ordering::Acquire)
    }
}

/// Groups events into work of at most `size` records, sending a partial batch once its
/// first record has waited `linger`, at once after a barrier, and as soon as `demand`
/// says the processing side waits with nothing queued. Ends (after sending what it
/// has) when the source side closes; stops early if the downstream side is gone.
pub async fn run(
    mut input: mpsc::Receiver<SourceEvent>,
    output: mpsc::Sender<Work>,
    size: usize,
    linger: Duration,
    demand: std::sync::Arc<Demand>,
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
            // What has arrived already joins the batch first.
            match input.try_recv() {
                Ok(event) => {
                    carry = work.add(event, size);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    continue;
                }
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            if demand.is_idle() && output.capacity() == output.max_capacity() {
                break; // nothing queued and the processor waits: go now
            }
            tokio::select! {
                event = tokio::time::timeout_at(deadline, input.recv()) => match event {
                    Ok(Some(event)) => carry = work.add(event, size),
                    Ok(None) => closed = true,
                    Err(_) => break,
                },
                _ = demand.wake.notified() => {}
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
        tokio::spawn(run(
            in_rx,
            out_tx,
            size,
            Duration::from_millis(linger_ms),
            Default::default(),
        ));
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
    async fn a_partial_batch_goes_at_once_when_the_processor_waits() {
        let (in_tx, in_rx) = mpsc::channel(100);
        let (out_tx, mut out_rx) = mpsc::channel(100);
        let demand = std::sync::Arc::new(Demand::default());
        let linger = Duration::from_millis(50);
        tokio::spawn(run(in_rx, out_tx, 100, linger, demand.clone()));
        // Busy: records gather until the linger.
        in_tx.send(rec(0)).await.unwrap();
        in_tx.send(rec(1)).await.unwrap();
        let started = tokio::time::Instant::now();
        assert_eq!(out_rx.recv().await.unwrap().batch.len(), 2);
        assert_eq!(started.elapsed(), linger);
        // Waiting: a record goes at once, and one sent while a batch gathers goes
        // when the processor says it waits.
        demand.set_idle(true);
        in_tx.send(rec(2)).await.unwrap();
        let started = tokio::time::Instant::now();
        assert_eq!(out_rx.recv().await.unwrap().batch.len(), 1);
        assert_eq!(started.elapsed(), Duration::ZERO);
        demand.set_idle(false);
        in_tx.send(rec(3)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        demand.set_idle(true);
        let work = out_rx.recv().await.unwrap();
        assert_eq!(work.batch.positions[0].offset, 3);
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(10),
            "not the linger"
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
