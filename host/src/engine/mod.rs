//! The engine: source -> batcher -> processor (transforms, window) -> sinks, joined by
//! bounded channels so a slow sink slows the source and memory stays bounded.
//!
//! ```text
//!  source task ──records──▶ batcher task ──batches──▶ processor thread ──▶ sink tasks
//!     (async)     bounded      (async)      bounded     (WASM, blocking)  bounded (one each)
//! ```
//!
//! Everything between two batches happens on the processor thread, in order: that is
//! where checkpoints are taken now (sinks flushed and synced), and where offset
//! commits, state snapshots and plugin swaps will go, without reshaping the pipeline.

pub mod batcher;
mod metrics;
mod pipeline;
mod processor;
mod window;

pub use metrics::{Metrics, Snapshot};
pub use pipeline::{Pipeline, RunError};
pub use window::WindowStage;
