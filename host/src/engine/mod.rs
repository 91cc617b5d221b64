//! The engine: source -> batcher -> processor (transforms, window) -> sinks, joined by
//! bounded channels so a slow sink slows the source and memory stays bounded; and
//! acknowledgements back to the source once a checkpoint has made records durable.
//!
//! ```text
//!  source ──events──▶ batcher ──work──▶ processor thread ──▶ sink tasks
//!  (async or         (async)  bounded  (WASM, blocking)     bounded (one each,
//!   own thread) ◀────────── acks ─────────  ▲ control          dead letters too)
//! ```
//!
//! Everything between two batches happens on the processor thread, in order:
//! checkpoints (every sink flushed and synced, then the source acknowledged), barriers
//! a source sends before a rebalance or a stop, and control messages (checkpoint now;
//! plugin swaps and status queries next), without reshaping the pipeline.
//!
//! Positions and acknowledgements are per source partition, and records of one
//! partition stay in order from source to sinks: that is what lets several processing
//! workers, each owning some partitions, share the work later.

pub mod batcher;
mod checkpoint;
mod dead_run;
mod dispatch;

mod dead_letter_queue;
mod keyed;
mod pipeline;
mod processor;
mod rollout;
mod routing;
mod sink_fit;
mod sink_task;
mod stage_info;
/// The window state types and backends (a leaf, [`crate::window_state`]), by their
/// old name.
pub use crate::window_state as snapshot;
mod swap;
mod watch;
mod window;
mod window_hooks;
mod workers;

pub use crate::metrics::{
    Counters, Families, Metrics, PipelineStatus, RunState, StageInfo, SwapEvent,
};
pub use crate::record::PARTITION_HEADER;
pub use pipeline::{Pipeline, RunError};
pub use processor::Control;
pub use swap::{NewPlugin, SwapReport, SwapRequest};
pub use watch::watch_plugin;
pub use window::{Late, WindowStage};
