//! A pipeline built from its config: plugins loaded and started up front (so every
//! configuration problem shows before data flows), then run until the source is done
//! or shutdown is asked for.

use super::processor::{ProcessError, Processor, Route, SinkMessage};
use super::window::WindowStage;
use super::{batcher, Metrics};
use crate::config::PipelineConfig;
use crate::dead_letter;
use crate::plugin::{PluginError, Runtime, TransformPlugin, WindowPlugin};
use crate::sinks::{Input, Sink, SinkError};
use crate::sources::{SourceContext, SourceError};
use crate::transforms::{config_json, TransformStage};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub struct Pipeline {
    config: PipelineConfig,
    transforms: Vec<TransformStage>,
    window: Option<WindowStage>,
    metrics: Arc<Metrics>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Pipeline {
    /// Load, type-check and `init` every plugin.
    pub fn build(config: PipelineConfig, runtime: &Runtime) -> Result<Self, PluginError> {
        let mut transforms = Vec::new();
        for t in &config.transforms {
            let loaded = runtime.load(&config.resolve(&t.plugin))?;
            let plugin = TransformPlugin::start(
                runtime,
                &loaded,
                &t.name(),
                config_json(&t.config),
                t.sandbox.sandbox(),
            )?;
            transforms.push(TransformStage::new(plugin));
        }
        let window = match &config.window {
            None => None,
            Some(w) => {
                let loaded = runtime.load(&config.resolve(&w.plugin))?;
                let plugin = WindowPlugin::start(
                    runtime,
                    &loaded,
                    &w.name(),
                    config_json(&w.config),
                    w.sandbox.sandbox(),
                )?;
                Some(WindowStage::new(
                    plugin,
                    w.size.as_millis_i64(),
                    w.allowed_lateness.as_millis_i64(),
                ))
            }
        };
        Ok(Pipeline {
            config,
            transforms,
            window,
            metrics: Arc::new(Metrics::default()),
        })
    }

    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// Live counters, for a progress display.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Run to the end of the source, or until `shutdown` is cancelled; either way,
    /// every batch already taken is processed and every sink flushed before this
    /// returns.
    pub async fn run(self, shutdown: CancellationToken) -> Result<super::Snapshot, RunError> {
        let Pipeline {
            config,
            transforms,
            window,
            metrics,
        } = self;
        let p = &config.pipeline;
        let queue = p.queue_batches;

        // Sinks first: a sink that cannot open (bad path) fails before any reading.
        let mut sink_tasks = Vec::new();
        let mut routes = Vec::new();
        for (i, sc) in config.sinks.iter().enumerate() {
            let sink = sc.open(&config).await?;
            let name = format!("sinks[{i}] ({})", sink.describe());
            let (tx, rx) = mpsc::channel(queue);
            routes.push(Route {
                input: sc.input(),
                name,
                tx,
            });
            sink_tasks.push(tokio::spawn(run_sink(sink, rx)));
        }
        let dlq = dead_letter::open(&config).await?;
        let (dlq_tx, dlq_rx) = mpsc::channel(queue);
        let dead_letter = Route {
            input: Input::Records,
            name: format!("dead letters ({})", dlq.describe()),
            tx: dlq_tx,
        };
        sink_tasks.push(tokio::spawn(run_sink(dlq, dlq_rx)));

        let (record_tx, record_rx) = mpsc::channel(p.batch_size);
        let (batch_tx, batch_rx) = mpsc::channel(queue);
        let ctx = SourceContext::new(record_tx, shutdown.clone(), metrics.clone());
        let source = tokio::spawn(config.source.clone().run(ctx));
        let batcher = tokio::spawn(batcher::run(record_rx, batch_tx, p.batch_size, *p.linger));

        let processor = Processor {
            transforms,
            window,
            sinks: routes,
            dead_letter,
            metrics: metrics.clone(),
            checkpoint_interval: *p.checkpoint_interval,
        };
        let rt = tokio::runtime::Handle::current();
        // A panic in the processor is treated like its errors: stop the source and let
        // the sinks flush what they already have before reporting it.
        let processed = tokio::task::spawn_blocking(move || processor.run(batch_rx, rt))
            .await
            .unwrap_or_else(|e| Err(ProcessError::Panicked(e.to_string())));
        if processed.is_err() {
            // Unblock the source if it is waiting on a full queue.
            shutdown.cancel();
        }
        let sourced = source
            .await
            .map_err(|e| RunError::Internal(format!("source: {e}")))?;
        let _ = batcher.await;

        // A sink's own error explains a processor that found the sink gone.
        let mut sink_error = None;
        for task in sink_tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => sink_error = sink_error.or(Some(e)),
                Err(e) => return Err(RunError::Internal(format!("sink: {e}"))),
            }
        }
        if let Some(e) = sink_error {
            return Err(e.into());
        }
        match processed {
            Ok(()) => {}
            Err(ProcessError::Sink(e)) => return Err(e.into()),
            Err(e) => return Err(RunError::Internal(e.to_string())),
        }
        sourced?;
        Ok(metrics.snapshot())
    }
}

async fn run_sink(mut sink: Sink, mut rx: mpsc::Receiver<SinkMessage>) -> Result<(), SinkError> {
    while let Some(message) = rx.recv().await {
        match message {
            SinkMessage::Write(records) => sink.write(&records).await?,
            SinkMessage::Checkpoint(ack) => {
                let result = sink.checkpoint().await;
                let failure = result
                    .as_ref()
                    .err()
                    .map(|e| SinkError::io(sink.describe(), e));
                let _ = ack.send(result);
                if let Some(e) = failure {
                    return Err(e);
                }
            }
        }
    }
    sink.checkpoint().await
}
