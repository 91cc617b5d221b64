//! Sluice: a streaming-pipeline host whose transforms run as WebAssembly components.
//!
//! The crate is laid out by architecture:
//! - [`config`]: the pipeline TOML, parsed and validated once at load.
//! - [`engine`]: batching, backpressure, windows, checkpoints and shutdown; knows
//!   nothing about any particular connector.
//! - [`plugin`]: the WASM plugin runtime (wasmtime component model, sandbox, cache).
//! - [`sources`], [`transforms`], [`sinks`]: one module per connector, each a config
//!   struct plus its implementation.

pub mod config;
pub mod dead_letter;
pub mod engine;
pub mod plugin;
pub mod record;
pub mod sinks;
pub mod sources;
pub mod transforms;

pub use config::{ConfigError, PipelineConfig};
pub use record::{Batch, Record};
