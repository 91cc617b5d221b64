//! Sluice: a streaming-pipeline host whose transforms run as WebAssembly components.
//!
//! The crate is laid out by architecture:
//! - [`config`]: the pipeline TOML, parsed and validated once at load.
//! - [`engine`]: batching, backpressure, windows, checkpoints, acknowledgements and
//!   shutdown; knows nothing about any particular connector.
//! - [`plugin`]: the WASM plugin runtime (wasmtime component model, sandbox, cache).
//! - [`sources`], [`transforms`], [`sinks`]: one module per connector, each a config
//!   struct plus its implementation.
//! - Leaves that import nothing above them: [`record`], [`position`], [`duration`],
//!   [`retry`], [`connector`], [`rng`], [`durable`], and the engine's `Metrics`.

pub mod admin;
pub mod config;
pub mod connector;
pub mod dead_letter;
pub mod durable;
pub mod duration;
pub mod engine;
pub mod kafka;
pub mod plugin;
pub mod position;
pub mod record;
pub mod retry;
pub mod rng;
pub mod schema;
pub mod sinks;
pub mod sources;
pub mod tls;
pub mod transforms;

pub use config::{ConfigError, PipelineConfig};
pub use record::{Batch, Record};
