//! Which of the records handed on are stored: offsets in the order the engine sees
//! them, the acknowledgements that say how far they are durable, and checkpoints asked
//! for while clients wait. One checkpoint is asked at a time; every request that
//! arrives meanwhile is covered by the next (a group commit), so a thousand waiting
//! clients cost a checkpoint or two, not a thousand.

use crate::position::{PartitionId, Position};
use crate::record::Record;
use crate::sources::{SourceContext, SourceEvent};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Mutex, Notify};
use tokio_util::sync::CancellationToken;

/// The barrier a stop asks for last, with the end of input.
pub const FINAL: u64 = u64::MAX;

/// What came of handing a request's records to the engine.
#[derive(Debug, PartialEq, Eq)]
pub enum Handed {
    /// In; their offsets end before `end`.
    In { end: u64 },
    /// The pipeline had no room within the wait.
    Full,
    /// The engine has stopped.
    Closed,
}

/// How far the records handed on are stored.
#[derive(Debug, Clone, Copy, Default)]
struct Stored {
    /// Every offset below this is durable everywhere.
    below: u64,
    /// The engine sends no more acknowledgements.
    closed: bool,
}

pub struct Ledger {
    ctx: Arc<SourceContext>,
    partition: PartitionId,
    /// The next offset; held while a request's records are handed over, so that
    /// offsets rise in the order the engine takes them.
    next: Mutex<u64>,
    stored: watch::Sender<Stored>,
    /// The newest barrier acknowledged.
    barrier: watch::Sender<u64>,
    /// A client waits for a checkpoint.
    wanted: Notify,
    /// The acknowledgement reader may end.
    done: AtomicBool,
}

impl Ledger {
    pub fn new(ctx: Arc<SourceContext>, partition: PartitionId) -> Arc<Ledger> {
        Arc::new(Ledger {
            ctx,
            partition,
            next: Mutex::new(0),
            stored: watch::Sender::new(Stored::default()),
            barrier: watch::Sender::new(0),
            wanted: Notify::new(),
            done: AtomicBool::new(false),
        })
    }

    /// Hand `records` to the engine in one piece, waiting up to `wait` in all for
    /// room (the wait for the requests ahead included: a full pipeline answers each
    /// waiting client within `wait`, not one after another).
    pub async fn hand_over(&self, records: Vec<Record>, wait: Duration) -> Handed {
        let deadline = tokio::time::Instant::now() + wait;
        let Ok(mut next) = tokio::time::timeout_at(deadline, self.next.lock()).await else {
            return Handed::Full;
        };
        let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
        let first = *next;
        let n = records.len() as u64;
        let events = records
            .into_iter()
            .zip(first..)
            .map(|(r, offset)| SourceEvent::Record(r, Position::new(self.partition, offset)))
            .collect();
        match self.ctx.emit_within(events, wait).await {
            Ok(true) => {
                *next += n;
                Handed::In { end: first + n }
            }
            Ok(false) => Handed::Full,
            Err(_) => Handed::Closed,
        }
    }

    /// Wait up to `timeout` until every offset below `end` is stored, asking for a
    /// checkpoint; false if that did not happen (the engine stopped, or was slow).
    pub async fn stored(&self, end: u64, timeout: Duration) -> bool {
        let mut rx = self.stored.subscribe();
        if rx.borrow().below >= end {
            return true;
        }
        self.wanted.notify_one();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|s| s.below >= end || s.closed));
        let below = match reached.await {
            Ok(Ok(s)) => s.below,
            _ => 0,
        };
        below >= end
    }

    /// Ask for a checkpoint whenever a client waits, one at a time, until `stop`.
    pub async fn ask_for_checkpoints(self: Arc<Self>, stop: CancellationToken) {
        let mut acked = self.barrier.subscribe();
        let mut id = 0;
        loop {
            tokio::select! {
                _ = self.wanted.notified() => {}
                _ = stop.cancelled() => return,
            }
            id += 1;
            tokio::select! {
                sent = self.ctx.barrier(id, false) => if sent.is_err() { return },
                _ = stop.cancelled() => return,
            }
            // Its acknowledgement, or a minute (the engine may be busy with a retry):
            // the next waiting client asks again either way.
            let answered = acked.wait_for(|&b| b >= id);
            tokio::select! {
                _ = tokio::time::timeout(Duration::from_secs(60), answered) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// The last checkpoint, with the end of input (open windows close): what a stop
    /// asks once nothing more is handed on. False if it was not answered in `timeout`.
    pub async fn finish(&self, timeout: Duration) -> bool {
        let mut acked = self.barrier.subscribe();
        let finished = async {
            // Sending waits for room too: a stalled pipeline must not hold the stop.
            self.ctx.barrier(FINAL, true).await.is_ok()
                && acked.wait_for(|&b| b == FINAL).await.is_ok()
        };
        tokio::time::timeout(timeout, finished)
            .await
            .unwrap_or(false)
    }

    /// Read acknowledgements until [`Self::stop_reading`] or the engine's end (a thread
    /// of its own: the acknowledgement queue blocks).
    pub fn read_acks(&self) {
        loop {
            match self.ctx.recv_ack(Duration::from_millis(100)) {
                Ok(Some(ack)) => {
                    if let Some(&offset) = ack.durable.get(&self.partition) {
                        self.stored.send_if_modified(|s| {
                            let grew = offset + 1 > s.below;
                            s.below = s.below.max(offset + 1);
                            grew
                        });
                    }
                    if let Some(id) = ack.barrier {
                        self.barrier.send_if_modified(|b| {
                            let newer = id > *b;
                            *b = (*b).max(id);
                            newer
                        });
                    }
                }
                Ok(None) if self.done.load(Ordering::Relaxed) => break,
                Ok(None) => {}
                Err(_) => break,
            }
        }
        self.stored.send_modify(|s| s.closed = true);
    }

    pub fn stop_reading(&self) {
        self.done.store(true, Ordering::Relaxed);
    }
}
