//! Sluice: a streaming-pipeline host whose transforms run as WebAssembly components.
//!
//! The crate is laid out by architecture, in layers (docs/architecture.md draws them,
//! and `scripts/check-layers.py` keeps the drawing true): a module uses only modules of
//! the layers below it.
//! - [`engine`]: batching, backpressure, windows, checkpoints, acknowledgements and
//!   shutdown; knows nothing about any particular connector (state comes in through
//!   [`window_state::StateBackend`], sources and sinks through their configs).
//! - [`config`]: the pipeline TOML, parsed and validated once.
//! - [`sources`], [`transforms`], [`sinks`]: one module per connector, each a config
//!   struct plus its implementation; [`tables`]: the lookup tables' loaders; [`kafka`] and [`postgres`]: clients they share.
//! - [`plugin`]: the WASM plugin runtime (wasmtime component model, sandbox, cache).
//! - Leaves: [`record`], [`position`], [`duration`], [`retry`], [`connector`], [`rng`],
//!   [`durable`], [`metrics`], [`window_state`], [`dead_letter`], [`schema`], [`tls`].

pub mod admin;
pub mod bearer;
pub mod config;
pub mod connector;
pub mod dead_letter;
pub mod durable;
pub mod duration;
pub mod engine;
pub mod field_error;
pub mod json;
pub mod kafka;
pub mod metrics;
pub mod plugin;
pub mod position;
pub mod postgres;
pub mod record;
pub mod registry;
pub mod retry;
pub mod rng;
pub mod schema;
pub mod sinks;
pub mod sources;
pub mod tables;
pub mod tls;
pub mod transforms;
pub mod window_state;

pub use config::{ConfigError, PipelineConfig};
pub use record::{Batch, Record};
