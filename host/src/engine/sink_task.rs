//! A sink's task: its writes and checkpoints in order, retries with the pipeline's
//! policy, records off the sink's schema and records the store refused to the dead
//! letters.

use super::dead_letter_queue::DeadLetterQueue;
use super::processor::SinkMessage;
use crate::dead_letter::DeadLetter;
use crate::metrics::SinkMetrics;
use crate::record::Batch;
use crate::retry::RetryPolicy;
use crate::schema::{Mismatch, Schema};
use crate::sinks::{Delivery, Sink, SinkContext, SinkError};
use std::sync::Arc;
use tokio::sync::mpsc;

/// A sink's task: writes and checkpoints in order. A retryable error is retried with
/// the pipeline's backoff (each retry logged and counted), for the records still
/// pending; a fatal one, or the last retry's, ends the task and so the pipeline.
/// Records the store refused for good go to `refused` (the dead letters) before the
/// next message is taken, so a checkpoint answered here covers them.
pub(super) async fn run_sink(
    mut sink: Box<dyn Sink>,
    mut rx: mpsc::Receiver<SinkMessage>,
    ctx: SinkContext,
    metrics: SinkMetrics,
    retry: RetryPolicy,
    refused: Option<DeadLetterQueue>,
    schema: Option<Arc<Schema>>,
) -> Result<(), SinkError> {
    while let Some(message) = rx.recv().await {
        match message {
            SinkMessage::Write(batch) => {
                let batch = match (&schema, &refused) {
                    (Some(schema), Some(dead_letters)) => {
                        let (kept, dead) = match_schema(batch, schema, &ctx.name);
                        if !dead.is_empty() {
                            dead_letters
                                .send(dead)
                                .await
                                .map_err(|e| SinkError::fatal(&ctx.name, e))?;
                        }
                        kept
                    }
                    _ => batch,
                };
                if batch.is_empty() {
                    continue;
                }
                let mut delivery = Delivery::new(batch.len());
                let mut backoff = retry.start();
                let started = std::time::Instant::now();
                loop {
                    match sink.write(&batch, &mut delivery).await {
                        Ok(()) => break,
                        Err(e) if e.is_retryable() => match backoff.next_wait() {
                            Some(wait) => {
                                metrics.retry();
                                tracing::warn!(
                                    "{e}; {} record(s) of the batch still to write: retry {}/{} in {wait:?}",
                                    delivery.pending().len(),
                                    backoff.retries(),
                                    backoff.max_retries()
                                );
                                tokio::time::sleep(wait).await;
                                delivery.next_attempt();
                            }
                            None => return Err(e),
                        },
                        Err(e) => return Err(e),
                    }
                }
                metrics.written(batch.len(), started.elapsed(), batch.read_at);
                let rejected = delivery.take_rejected();
                if !rejected.is_empty() {
                    let Some(dead_letters) = &refused else {
                        return Err(SinkError::fatal(
                            &ctx.name,
                            format!("refused {} record(s): {}", rejected.len(), rejected[0].1),
                        ));
                    };
                    let dead = rejected
                        .into_iter()
                        .map(|(i, reason)| {
                            let record = batch.records[i].clone();
                            DeadLetter::now("sink", &ctx.name, record, batch.positions[i], reason)
                        })
                        .collect();
                    dead_letters
                        .send(dead)
                        .await
                        .map_err(|e| SinkError::fatal(&ctx.name, e))?;
                }
            }
            SinkMessage::Checkpoint(ack) => {
                let result = sink.checkpoint().await;
                let failure = result.as_ref().err().cloned();
                let _ = ack.send(result);
                if let Some(e) = failure {
                    return Err(e);
                }
            }
        }
    }
    sink.checkpoint().await
}

/// The records of `batch` that match `schema`, and dead letters for the others (the
/// batch is copied only when some fail).
fn match_schema(batch: Arc<Batch>, schema: &Schema, sink: &str) -> (Arc<Batch>, Vec<DeadLetter>) {
    let verdicts: Vec<Result<(), Mismatch>> = batch
        .records
        .iter()
        .map(|r| schema.check(&r.value))
        .collect();
    if verdicts.iter().all(Result::is_ok) {
        return (batch, Vec::new());
    }
    let mut kept = Batch::with_capacity(batch.len());
    kept.read_at = batch.read_at;
    let mut dead = Vec::new();
    for ((record, position), verdict) in batch.records.iter().zip(&batch.positions).zip(verdicts) {
        match verdict {
            Ok(()) => kept.push(record.clone(), *position),
            Err(reason) => dead.push(DeadLetter::now(
                "sink",
                sink,
                record.clone(),
                *position,
                format!("the record {reason}"),
            )),
        }
    }
    (Arc::new(kept), dead)
}
