use std::path::PathBuf;
use std::time::Duration;

/// Why a plugin could not be loaded or started. Each of these stops a pipeline from
/// starting (exit code 2): they are configuration problems, not data problems.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot read plugin {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a usable WebAssembly component: {reason}")]
    Compile { path: PathBuf, reason: String },
    #[error(
        "plugin {path} does not implement the `{world}` world of sluice:plugin@0.1.0: {reason}"
    )]
    WrongWorld {
        path: PathBuf,
        world: &'static str,
        reason: String,
    },
    #[error("plugin `{plugin}` refused its configuration: {message}")]
    Init { plugin: String, message: String },
    #[error("plugin `{plugin}` failed to start: {failure}")]
    Start {
        plugin: String,
        failure: CallFailure,
    },
    #[error("cannot start the WebAssembly runtime: {0}")]
    Runtime(String),
    /// The schema a stage's output must match did not load (it did at `validate`).
    #[error("transform `{stage}`: {message}")]
    Schema { stage: String, message: String },
}

/// Why one call into a plugin failed. The instance is gone after any of these; the
/// next call gets a fresh one. The records of the failed call go to the dead-letter
/// output with this as the reason.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum CallFailure {
    #[error("plugin exceeded its CPU deadline of {} ms", .0.as_millis())]
    Deadline(Duration),
    #[error("plugin exceeded its memory cap of {} MiB", .0 / (1024 * 1024))]
    Memory(usize),
    #[error("plugin trapped: {0}")]
    Trap(String),
    #[error("plugin tried to sleep or block, which the sandbox forbids")]
    Blocked,
    #[error("plugin broke the contract: {0}")]
    Contract(String),
    #[error("plugin output exceeded its cap of {} MiB", .0 / (1024 * 1024))]
    Output(usize),
}

/// A call that returned, with an answer the contract forbids, found inside a call
/// (so it travels as the call's error and is reported as [`CallFailure::Contract`]).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BrokenContract(pub String);
