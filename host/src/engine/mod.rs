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

/// When a batch failed as a whole and is retried a record at a time to find the
/// record to blame: after this many failures in a row the rest of the batch goes to
/// the dead letters untried, so a plugin that fails everything costs a few deadlines
/// per batch, not one per record.
pub const GIVE_UP_AFTER: usize = 3;
pub use pipeline::{Pipeline, RunError};
pub use window::WindowStage;
