//! Transforms: every record passes through WASM plugins of the `transform` world, in
//! the order the pipeline lists them. This module holds the stage that runs one
//! plugin over a batch and sorts the results from the failures; the config is
//! [`crate::config::TransformConfig`].

mod stage;

pub use stage::TransformStage;
