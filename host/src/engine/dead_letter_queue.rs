//! The dead-letter output's queue: each dead letter counted by stage and class of
//! reason, encoded in the output's format and queued, for the processor and for the
//! sinks that refuse records.

use super::processor::{ProcessError, SinkMessage};
use crate::dead_letter::{DeadLetter, Encoding};
use crate::metrics::{DeadNote, Metrics};
use crate::position::Partitions;
use crate::record::Batch;
use std::sync::Arc;
use tokio::sync::mpsc;

/// The dead-letter output's queue, for the processor and for sinks that refuse
/// records: each dead letter is encoded in the output's format and queued.
#[derive(Clone)]
pub struct DeadLetterQueue {
    pub name: String,
    pub tx: mpsc::Sender<SinkMessage>,
    pub encoding: Encoding,
    /// Names partitions in dead letters.
    pub partitions: Arc<Partitions>,
    pub metrics: Arc<Metrics>,
}

impl DeadLetterQueue {
    /// Queue `dead`, waiting while the output's queue is full.
    pub async fn send(&self, dead: Vec<DeadLetter>) -> Result<(), ProcessError> {
        if dead.is_empty() {
            return Ok(());
        }
        // Counted by stage and class of reason; the newest of each kind noted for
        // `/status`.
        let mut kinds: Vec<(&'static str, &'static str, u64, &DeadLetter)> = Vec::new();
        for d in &dead {
            let class = d.reason_class();
            match kinds.iter_mut().find(|k| k.0 == d.stage && k.1 == class) {
                Some(k) => {
                    k.2 += 1;
                    k.3 = d;
                }
                None => kinds.push((d.stage, class, 1, d)),
            }
        }
        for (stage, class, n, newest) in kinds {
            let note = DeadNote {
                time_ms: newest.time_ms,
                stage: stage.to_owned(),
                plugin: newest.plugin.clone(),
                position: self.partitions.describe(newest.position),
                reason: newest.reason.clone(),
            };
            self.metrics.add_dead(stage, class, n, Some(note));
        }
        let mut batch = Batch::with_capacity(dead.len());
        for d in dead {
            tracing::debug!(stage = d.stage, plugin = %d.plugin, position = %self.partitions.describe(d.position), "dead letter: {}", d.reason);
            let position = d.position;
            batch.push(d.encode(self.encoding, &self.partitions), position);
        }
        self.tx
            .send(SinkMessage::Write(Arc::new(batch)))
            .await
            .map_err(|_| ProcessError::SinkGone(self.name.clone()))
    }
}
