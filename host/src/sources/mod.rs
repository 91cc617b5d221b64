//! Sources: where records come from. One module per connector, each a config struct
//! (deserialized from `[source]`) and a `run` that emits records until it is done or
//! told to stop.

pub mod generator;
pub mod http;
mod rng;

pub use rng::SplitMix64;

use crate::engine::Metrics;
use crate::record::Record;
use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// `[source]`, chosen by its `type` key.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceConfig {
    /// Offline randomuser.me-shaped users (quickstart, tests, benchmarks).
    Generator(generator::GeneratorConfig),
    /// Poll an HTTP endpoint such as `https://randomuser.me/api/?results=5`.
    Http(http::HttpConfig),
}

/// An error that stops a source (and so the pipeline, once in-flight data is flushed).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("http source: {0}")]
    Http(String),
}

impl SourceConfig {
    /// Field-level checks; `Err((field, message))`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        match self {
            SourceConfig::Generator(c) => c.validate(),
            SourceConfig::Http(c) => c.validate(),
        }
    }

    pub async fn run(self, ctx: SourceContext) -> Result<(), SourceError> {
        match self {
            SourceConfig::Generator(c) => {
                generator::run(c, ctx).await;
                Ok(())
            }
            SourceConfig::Http(c) => http::run(c, ctx).await,
        }
    }
}

/// What a running source talks to: the engine's intake, and the stop signal.
pub struct SourceContext {
    out: mpsc::Sender<(Record, u64)>,
    next_offset: u64,
    pub shutdown: CancellationToken,
    metrics: Arc<Metrics>,
}

/// The engine has stopped taking records (it is shutting down).
#[derive(Debug)]
pub struct Closed;

impl SourceContext {
    pub fn new(
        out: mpsc::Sender<(Record, u64)>,
        shutdown: CancellationToken,
        metrics: Arc<Metrics>,
    ) -> Self {
        SourceContext {
            out,
            next_offset: 0,
            shutdown,
            metrics,
        }
    }

    /// Hand one record to the engine, waiting while the pipeline is full
    /// (backpressure). Each record gets the next source offset.
    pub async fn emit(&mut self, record: Record) -> Result<(), Closed> {
        let offset = self.next_offset;
        self.out.send((record, offset)).await.map_err(|_| Closed)?;
        self.next_offset += 1;
        self.metrics.add_in(1);
        Ok(())
    }

    pub fn is_stopping(&self) -> bool {
        self.shutdown.is_cancelled()
    }
}
