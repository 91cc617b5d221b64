//! The processor thread: runs plugins (synchronous wasmtime calls) over each batch,
//! routes the results to the sinks, and takes checkpoints between batches.

use super::window::WindowStage;
use super::Metrics;
use crate::dead_letter::DeadLetter;
use crate::record::{Batch, Record};
use crate::sinks::{Input, SinkError};
use crate::transforms::TransformStage;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

/// What the processor sends a sink task.
pub enum SinkMessage {
    Write(Arc<Vec<Record>>),
    /// Make everything written so far durable, then answer.
    Checkpoint(oneshot::Sender<Result<(), SinkError>>),
}

/// A sink's queue and the stream it takes.
pub struct Route {
    pub input: Input,
    pub name: String,
    pub tx: mpsc::Sender<SinkMessage>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The sink task has ended (its own error is reported from its task).
    #[error("{0} stopped taking records")]
    SinkGone(String),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("the processor panicked: {0}")]
    Panicked(String),
}

pub struct Processor {
    pub transforms: Vec<TransformStage>,
    pub window: Option<WindowStage>,
    pub sinks: Vec<Route>,
    pub dead_letter: Route,
    pub metrics: Arc<Metrics>,
    pub checkpoint_interval: Duration,
}

impl Processor {
    pub fn run(mut self, mut input: mpsc::Receiver<Batch>, rt: Handle) -> Result<(), ProcessError> {
        let mut last_checkpoint = Instant::now();
        loop {
            let wait = self
                .checkpoint_interval
                .saturating_sub(last_checkpoint.elapsed());
            match rt.block_on(tokio::time::timeout(wait, input.recv())) {
                Ok(Some(batch)) => self.process(batch, &rt)?,
                Ok(None) => break,
                Err(_) => {}
            }
            if last_checkpoint.elapsed() >= self.checkpoint_interval {
                self.checkpoint(&rt)?;
                last_checkpoint = Instant::now();
            }
        }
        // End of input (source finished, or shutdown): close every open window so
        // nothing accepted is left unreported, then make it all durable.
        if let Some(window) = &mut self.window {
            let mut dead = Vec::new();
            let results = window.close(true, &mut dead);
            self.publish_stage_counts();
            self.send(Input::Windows, results.records, &rt)?;
            self.send_dead(dead, &rt)?;
        }
        self.checkpoint(&rt)
    }

    /// The stages keep their own totals (failed plugin calls, windows closed); copy
    /// them into the shared metrics.
    fn publish_stage_counts(&self) {
        let transforms: u64 = self
            .transforms
            .iter()
            .map(TransformStage::plugin_failures)
            .sum();
        let window = self.window.as_ref();
        let window_failures = window.map_or(0, WindowStage::plugin_failures);
        self.metrics
            .set_plugin_failures(transforms + window_failures);
        self.metrics
            .set_windows_closed(window.map_or(0, WindowStage::windows_closed));
    }

    fn process(&mut self, batch: Batch, rt: &Handle) -> Result<(), ProcessError> {
        let result = self.process_batch(batch, rt);
        self.publish_stage_counts();
        result
    }

    fn process_batch(&mut self, mut batch: Batch, rt: &Handle) -> Result<(), ProcessError> {
        self.metrics.add_batch();
        let mut dead = Vec::new();
        for stage in &mut self.transforms {
            if batch.is_empty() {
                break;
            }
            batch = stage.apply(batch, &mut dead);
        }
        let windows = match &mut self.window {
            Some(w) if !batch.is_empty() => Some(w.push(&batch, &mut dead)),
            _ => None,
        };
        self.send(Input::Records, batch.records, rt)?;
        if let Some(results) = windows {
            self.send(Input::Windows, results.records, rt)?;
        }
        self.send_dead(dead, rt)
    }

    /// Hand records to every sink on `input`, waiting while a sink's queue is full.
    fn send(&self, input: Input, records: Vec<Record>, rt: &Handle) -> Result<(), ProcessError> {
        if records.is_empty() {
            return Ok(());
        }
        let routes: Vec<&Route> = self.sinks.iter().filter(|r| r.input == input).collect();
        if !routes.is_empty() {
            self.metrics.add_out(records.len() as u64);
        }
        let records = Arc::new(records);
        for route in routes {
            rt.block_on(route.tx.send(SinkMessage::Write(records.clone())))
                .map_err(|_| ProcessError::SinkGone(route.name.clone()))?;
        }
        Ok(())
    }

    fn send_dead(&self, dead: Vec<DeadLetter>, rt: &Handle) -> Result<(), ProcessError> {
        if dead.is_empty() {
            return Ok(());
        }
        self.metrics.add_dead(dead.len() as u64);
        for d in &dead {
            tracing::debug!(stage = d.stage, plugin = %d.plugin, offset = d.offset, "dead letter: {}", d.reason);
        }
        let records: Vec<Record> = dead.into_iter().map(DeadLetter::into_record).collect();
        rt.block_on(
            self.dead_letter
                .tx
                .send(SinkMessage::Write(Arc::new(records))),
        )
        .map_err(|_| ProcessError::SinkGone(self.dead_letter.name.clone()))
    }

    /// Every sink (dead letters included) makes what it has durable.
    fn checkpoint(&self, rt: &Handle) -> Result<(), ProcessError> {
        let mut acks = Vec::new();
        for route in self.sinks.iter().chain(std::iter::once(&self.dead_letter)) {
            let (tx, rx) = oneshot::channel();
            rt.block_on(route.tx.send(SinkMessage::Checkpoint(tx)))
                .map_err(|_| ProcessError::SinkGone(route.name.clone()))?;
            acks.push((route, rx));
        }
        for (route, rx) in acks {
            rt.block_on(rx)
                .map_err(|_| ProcessError::SinkGone(route.name.clone()))??;
        }
        Ok(())
    }
}
