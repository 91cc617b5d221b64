//! The WASM plugin runtime: one wasmtime `Engine` for the process, components compiled
//! once and cached on disk, and sandboxed instances (memory cap, CPU deadline, WASI
//! that grants nothing but clocks and random) that are re-created after a trap.
//!
//! Separate from the engine and from the connectors: the engine hands it batches and
//! gets back outcomes or a [`CallFailure`], and decides what to do with them.

pub mod bindings;
mod cache;
mod capped;
mod error;
mod inspect;
mod instance;
mod isolate;
pub mod lookup;
mod migrator;
mod projection;
mod runtime;
mod state;
mod stateful;
mod transform;
mod window;

pub use cache::ComponentCache;
pub use error::{CallFailure, PluginError};
pub use inspect::{inspect, Inspection, WorldKind};
pub use instance::{Plugin, World};
pub use isolate::{isolate, Isolated, GIVE_UP_AFTER};
pub use projection::Projection;
pub use runtime::{default_name, version_of, LoadedPlugin, Runtime, Sandbox};
pub use state::{PluginLog, LOG_BURST, LOG_RATE};
pub use stateful::{Processed, StatefulInstance, StatefulPlugin};
pub use transform::{Outcome, TransformInstance, TransformPlugin};
pub use window::{WindowInstance, WindowPlugin};
