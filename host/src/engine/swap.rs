//! Swapping a plugin in a running pipeline, between batches: what is asked, what is
//! answered, and what the processor keeps while a new version is watched (a canary
//! beside the old one, or a probation whose results are held back).

use crate::config::PipelineConfig;
use crate::dead_letter::DeadLetter;
use crate::metrics::StageMetrics;
use crate::plugin::Runtime;
use crate::plugin::{StatefulPlugin, TransformPlugin, WindowPlugin};
use crate::record::Batch;
use crate::transforms::TransformStage;
use serde::Serialize;
use std::collections::BTreeMap;
use tokio::sync::oneshot;

/// The longest a canary or a probation waits for its records.
pub const WATCH_AT_MOST: std::time::Duration = std::time::Duration::from_secs(30);

/// The canary a transform's swap gets when none is asked for and a sink writes with a
/// registry's schema (the new version's output is checked against it first).
pub const DEFAULT_SCHEMA_CANARY: u64 = 100;

/// A new version, compiled, checked against its world and `init`ed off the hot path.
pub enum NewPlugin {
    Transform(TransformPlugin),
    Stateful(StatefulPlugin),
    Window(WindowPlugin),
}

impl NewPlugin {
    /// Compile `wasm` (named `file` in messages) and start it as the pipeline's stage
    /// `stage`, with that stage's config and sandbox: what the admin listener and the
    /// file watcher do before asking for a swap. Blocking (compiling takes a while).
    pub fn build(
        runtime: &Runtime,
        config: &PipelineConfig,
        stage: &str,
        file: &std::path::Path,
        wasm: Vec<u8>,
    ) -> Result<NewPlugin, String> {
        let loaded = runtime.load_bytes(file, wasm).map_err(|e| e.to_string())?;
        let pipeline = config.name();
        if let Some(t) = config.transforms.iter().find(|t| t.name() == stage) {
            let p = t
                .start(runtime, &loaded, &pipeline)
                .map_err(|e| e.to_string())?;
            return Ok(NewPlugin::Transform(p));
        }
        if let Some(st) = config.stateful.as_ref().filter(|st| st.name() == stage) {
            let p = st
                .start(runtime, &loaded, &pipeline)
                .map_err(|e| e.to_string())?;
            return Ok(NewPlugin::Stateful(p));
        }
        if let Some(w) = config.window.as_ref().filter(|w| w.name() == stage) {
            let p = w
                .start(runtime, &loaded, &pipeline)
                .map_err(|e| e.to_string())?;
            return Ok(NewPlugin::Window(p));
        }
        let mut names: Vec<String> = config.transforms.iter().map(|t| t.name()).collect();
        names.extend(config.stateful.iter().map(|st| st.name()));
        names.extend(config.window.iter().map(|w| w.name()));
        Err(format!(
            "no transform, stateful stage or window named `{stage}` in pipeline `{pipeline}` (it has: {})",
            names.join(", ")
        ))
    }
}

/// Asked of the processor: run `plugin` for the stage named `stage` from the next
/// batch on.
pub struct SwapRequest {
    /// The transform's or the window's name in the pipeline.
    pub stage: String,
    pub plugin: NewPlugin,
    /// First run the new version beside the old on this many records (transforms).
    pub canary: Option<u64>,
    pub reply: oneshot::Sender<Result<SwapReport, String>>,
}

/// What a swap did.
#[derive(Debug, Clone, Serialize)]
pub struct SwapReport {
    /// `transform`, `stateful` or `window`.
    pub stage: String,
    pub plugin: String,
    pub from: String,
    pub to: String,
    /// Per source partition, the first position the new version processes (the
    /// old processed every one before it).
    pub switch: BTreeMap<String, u64>,
    /// How long the processor stood still for the swap itself.
    pub pause_us: u64,
    /// Records the new version is on probation for (0: none).
    pub probation_records: u64,
    pub canary: Option<CanaryReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CanaryReport {
    pub records: u64,
    pub old_errors: u64,
    pub new_errors: u64,
    /// Output records that do not fit a registry-backed sink's value schema.
    pub old_misfits: u64,
    pub new_misfits: u64,
}

/// A batch taken while a new version is on probation: its input (to run again on
/// the old version if the new one is rolled back) and what the transforms made of it
/// (sent on if it is kept).
pub(super) struct Held {
    /// Every source position of the batch as it came (what it covers once released).
    pub positions: Vec<crate::position::Position>,
    /// The input of the stage on probation (after the stages before it).
    pub input: Batch,
    pub input_dead: Vec<DeadLetter>,
    pub output: Batch,
    pub output_dead: Vec<DeadLetter>,
}

/// A transform's new version on probation.
pub(super) struct Probation {
    pub started: std::time::Instant,
    pub stage: usize,
    pub old: TransformPlugin,
    pub old_metrics: StageMetrics,
    pub window: u64,
    pub max_rate: f64,
    /// Records into the stage so far, and how many of them failed there.
    pub seen: u64,
    pub errors: u64,
    pub held: Vec<Held>,
    pub report: SwapReport,
}

impl Probation {
    pub fn error_rate(&self) -> f64 {
        if self.seen == 0 {
            0.0
        } else {
            self.errors as f64 / self.seen as f64
        }
    }

    /// Per partition, the first position held (where a rollback switches back).
    pub fn first_held(&self) -> BTreeMap<crate::position::PartitionId, u64> {
        let mut first = BTreeMap::new();
        for p in self.held.iter().flat_map(|h| &h.positions) {
            let o = first.entry(p.partition).or_insert(p.offset);
            *o = (*o).min(p.offset);
        }
        first
    }
}

/// A transform's new version running beside the old one on copies of its input.
pub(super) struct Canary {
    pub started: std::time::Instant,
    pub stage: usize,
    pub plugin: TransformStage,
    pub target: u64,
    pub seen: u64,
    pub old_errors: u64,
    pub new_errors: u64,
    /// Output records a registry-backed sink could not write ([`super::sink_fit`]),
    /// of the running version and of the new one, and the new one's first reason.
    pub old_misfits: u64,
    pub new_misfits: u64,
    pub misfit: Option<String>,
    pub reply: oneshot::Sender<Result<SwapReport, String>>,
}

impl Canary {
    pub fn report(&self) -> CanaryReport {
        CanaryReport {
            records: self.seen,
            old_errors: self.old_errors,
            new_errors: self.new_errors,
            old_misfits: self.old_misfits,
            new_misfits: self.new_misfits,
        }
    }
}
