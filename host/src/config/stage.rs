//! The processing stages' config, in one place: `[[transforms]]` and `[window]`, each
//! a WASM plugin with its own config and sandbox.

use crate::duration::Duration;
use crate::field_error::FieldError;
use crate::plugin::{
    LoadedPlugin, PluginError, Runtime, StatefulPlugin, TransformPlugin, WindowPlugin,
};
use serde::Deserialize;
use std::path::PathBuf;

/// A `[[transforms]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformConfig {
    /// Path to the `.wasm` component (relative to the pipeline file).
    pub plugin: PathBuf,
    /// Name used in logs and dead letters; defaults to the file stem.
    pub name: Option<String>,
    /// Handed to the plugin's `init`, as a JSON object.
    #[serde(default)]
    pub config: toml::Table,
    #[serde(default)]
    pub sandbox: SandboxConfig,
    /// How a new version swapped in is watched (`sluice plugin swap`).
    #[serde(default)]
    pub swap: SwapConfig,
    /// Swap in each new version written to `plugin` (once the file has stopped
    /// changing); one that fails to load is reported and ignored.
    #[serde(default)]
    pub watch: bool,
    /// A JSON Schema file every record the plugin emits must match (e.g.
    /// `schemas/user.json`). An input record whose output does not is a dead letter
    /// naming the path and rule broken; a new version swapped in is judged by it too
    /// (its canary's and probation's failures count those records).
    #[serde(default)]
    pub schema: Option<PathBuf>,
}

/// `[stateful]`: a plugin of the `stateful` world after the transforms (and before a
/// window), with a state per key that the host keeps, checkpoints with the source's
/// positions and takes up after a restart or a move.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatefulConfig {
    /// Path to the `.wasm` component (relative to the pipeline file).
    pub plugin: PathBuf,
    /// Name used in logs and dead letters; defaults to the file stem.
    pub name: Option<String>,
    /// Handed to the plugin's `init`, as a JSON object.
    #[serde(default)]
    pub config: toml::Table,
    #[serde(default)]
    pub sandbox: SandboxConfig,
    /// The state key: this field of each record's JSON value (a top-level name, or a
    /// JSON pointer such as `/location/country`), which becomes the record's key.
    /// Without it, the record's key (the Kafka message key, an ingest `key_field`).
    pub key_field: Option<String>,
    /// Keys not changed for this long in event time (behind the newest record of
    /// their partition) are forgotten. Without it, keys are kept until deleted.
    pub ttl: Option<Duration>,
    /// Most MiB of state held, over every partition: past it the pipeline stops
    /// with an error naming the stage (after forgetting what `ttl` lets it).
    #[serde(default = "default_state_max_mb")]
    pub state_max_mb: u64,
    /// Where the state is saved at each checkpoint (with a source that resumes), as
    /// for `[window] state`: `local` (default), the pipeline's `state_dir`, for one
    /// host; or `kafka`, a compacted topic on the Kafka source's brokers, so each
    /// partition's keys move with it between the hosts of a group. With a window too,
    /// both say the same: the pipeline keeps one store.
    #[serde(default)]
    pub state: WindowState,
    /// With `state = "kafka"`: the topic (default `<group_id>-windows`, the name the
    /// window's state had first, with a window or without).
    pub state_topic: Option<String>,
}

fn default_state_max_mb() -> u64 {
    256
}

impl StatefulConfig {
    fn parts(&self) -> Parts<'_> {
        Parts {
            plugin: &self.plugin,
            name: &self.name,
            config: &self.config,
            sandbox: &self.sandbox,
        }
    }

    pub fn name(&self) -> String {
        self.parts().name()
    }

    pub fn config_json(&self) -> String {
        config_json(&self.config)
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        self.sandbox.validate().map_err(|e| e.within("sandbox"))?;
        if !(1..=65_536).contains(&self.state_max_mb) {
            return Err(FieldError::new(
                "state_max_mb",
                "must be between 1 and 65536",
            ));
        }
        if self.ttl.is_some_and(|t| t.is_zero()) {
            return Err(FieldError::new("ttl", "must be more than 0"));
        }
        if self.state_topic.is_some() && self.state != WindowState::Kafka {
            return Err(FieldError::new("state_topic", "needs state = \"kafka\""));
        }
        if self.key_field.as_deref().is_some_and(str::is_empty) {
            return Err(FieldError::new(
                "key_field",
                "must name a field (or a JSON pointer such as /location/country)",
            ));
        }
        Ok(())
    }

    /// Start `loaded` as the stage's plugin, as [`TransformConfig::start`] does.
    pub fn start(
        &self,
        runtime: &Runtime,
        loaded: &LoadedPlugin,
        pipeline: &str,
    ) -> Result<StatefulPlugin, PluginError> {
        self.parts().start(runtime, loaded, pipeline, "stateful")
    }
}

/// `swap = { ... }` on a transform: after a swap, the new version is on probation
/// for `rollback_window` records; their results are held back, and if more than
/// `rollback_error_rate` of them fail (dead letters, traps) the old version takes
/// over again and processes them instead: nothing lost, nothing doubled.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SwapConfig {
    /// Records the new version is watched for (0: no probation).
    pub rollback_window: u64,
    /// The share of those records that may fail before it is rolled back.
    pub rollback_error_rate: f64,
}

impl Default for SwapConfig {
    fn default() -> Self {
        SwapConfig {
            rollback_window: 1000,
            rollback_error_rate: 0.1,
        }
    }
}

/// The most windows one record may be counted in (`size / slide`, rounded up): each
/// is a copy of the record and an accumulator, so a sliding window of `1h` every
/// `1ms` would hold 3.6 million copies of every record.
pub const MAX_WINDOWS_PER_RECORD: i64 = 1000;

/// `[window]`: event-time windows (tumbling, or sliding), aggregated by a `window`-world plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Path to the `.wasm` component.
    pub plugin: PathBuf,
    /// Name used in logs and dead letters; defaults to the file stem.
    pub name: Option<String>,
    /// Window length, e.g. `"1m"`.
    pub size: Duration,
    /// Sliding windows: a new window starts every `slide` (at most `size`), and a
    /// record counts in every window that covers it. Default: `size` (tumbling).
    pub slide: Option<Duration>,
    /// What a record for a window already emitted becomes: a dead letter (default,
    /// reason "late record"), dropped (counted in the summary), or an update: added
    /// to the closed window's kept state and the window emitted again.
    #[serde(default)]
    pub late: LatePolicy,
    /// With `late = "update"`: how long past a window's end (in event time) its state
    /// is kept for late records. Default: the window's size.
    pub update_within: Option<Duration>,
    /// Emit running results of the open windows this often (wall-clock time), keyed
    /// like the final ones, so that upserting sinks show them until it replaces them.
    pub emit_every: Option<Duration>,
    /// How far behind the newest event time a record may arrive and still be counted.
    /// A window closes once the newest event time passes its end by this much.
    #[serde(default)]
    pub allowed_lateness: Duration,
    /// How far ahead of the host's clock an event time may be (default `"1d"`). A
    /// record further ahead is a dead letter saying so: without a bound, one record
    /// from a wrong clock (the year 2100) would move the watermark past every open
    /// window and make nearly every later record late. Records outside the years 1 to
    /// 9999 are dead letters whatever this says.
    pub max_future: Option<Duration>,
    /// A source partition with no record for this long stops holding the watermark
    /// back; when every partition is idle, every open window closes (so the last
    /// window of a quiet stream is emitted). Default: partitions never count as idle.
    pub idle_timeout: Option<Duration>,
    /// One result per window (`merged`, default), or one per window and source
    /// partition (`partials`, tagged with a `sluice.partition` header), which a
    /// MongoDB sink with `partials = true` sums into one document per window: exact
    /// however the partitions are spread over hosts.
    #[serde(default)]
    pub output: WindowOutput,
    /// Where the window state is saved at each checkpoint (with a source that
    /// resumes): `local` (default), the pipeline's `state_dir`, for one host; or
    /// `kafka`, a compacted topic on the Kafka source's brokers, so the state moves
    /// with the partitions between hosts.
    #[serde(default)]
    pub state: WindowState,
    /// With `state = "kafka"`: the topic (default `<group_id>-windows`).
    pub state_topic: Option<String>,
    /// Passed to the plugin's `init` as JSON.
    #[serde(default)]
    pub config: toml::Table,
    #[serde(default)]
    pub sandbox: SandboxConfig,
}

/// What happens to a late record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatePolicy {
    #[default]
    DeadLetter,
    Drop,
    Update,
}

/// Where window state is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowState {
    #[default]
    Local,
    Kafka,
}

/// What a closed window emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowOutput {
    /// The partitions' shares merged: one result per window.
    #[default]
    Merged,
    /// One result per window and source partition.
    Partials,
}

impl TransformConfig {
    fn parts(&self) -> Parts<'_> {
        Parts {
            plugin: &self.plugin,
            name: &self.name,
            config: &self.config,
            sandbox: &self.sandbox,
        }
    }

    pub fn name(&self) -> String {
        self.parts().name()
    }

    /// The config as the JSON text the plugin's `init` takes.
    pub fn config_json(&self) -> String {
        config_json(&self.config)
    }

    /// Start `loaded` as this stage (its name, config and sandbox), its log lines
    /// tagged with `pipeline`: at build, and for a new version to swap in.
    pub fn start(
        &self,
        runtime: &Runtime,
        loaded: &LoadedPlugin,
        pipeline: &str,
    ) -> Result<TransformPlugin, PluginError> {
        self.parts().start(runtime, loaded, pipeline, "transform")
    }
}

impl WindowConfig {
    fn parts(&self) -> Parts<'_> {
        Parts {
            plugin: &self.plugin,
            name: &self.name,
            config: &self.config,
            sandbox: &self.sandbox,
        }
    }

    pub fn name(&self) -> String {
        self.parts().name()
    }

    pub fn config_json(&self) -> String {
        config_json(&self.config)
    }

    /// Start `loaded` as the window's plugin, as [`TransformConfig::start`] does.
    pub fn start(
        &self,
        runtime: &Runtime,
        loaded: &LoadedPlugin,
        pipeline: &str,
    ) -> Result<WindowPlugin, PluginError> {
        self.parts().start(runtime, loaded, pipeline, "window")
    }
}

/// `sandbox = { memory_mb = 64, deadline = "1s" }`: the limits of one plugin.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    /// Linear memory cap per instance, MiB.
    pub memory_mb: u64,
    /// CPU time one call (one batch) may take.
    pub deadline: Duration,
    /// Most MiB of records a transform may return for one batch, retries included.
    pub max_output_mb: u64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        let d = crate::plugin::Sandbox::default();
        SandboxConfig {
            memory_mb: (d.memory_bytes / (1024 * 1024)) as u64,
            deadline: Duration(d.deadline),
            max_output_mb: (d.max_output_bytes / (1024 * 1024)) as u64,
        }
    }
}

impl SandboxConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        if !(1..=4096).contains(&self.memory_mb) {
            return Err(FieldError::new("memory_mb", "must be between 1 and 4096"));
        }
        if self.deadline.is_zero() {
            return Err(FieldError::new("deadline", "must be more than 0"));
        }
        if !(1..=4096).contains(&self.max_output_mb) {
            return Err(FieldError::new(
                "max_output_mb",
                "must be between 1 and 4096",
            ));
        }
        Ok(())
    }

    pub fn sandbox(&self) -> crate::plugin::Sandbox {
        crate::plugin::Sandbox {
            memory_bytes: (self.memory_mb * 1024 * 1024) as usize,
            deadline: *self.deadline,
            max_output_bytes: (self.max_output_mb * 1024 * 1024) as usize,
        }
    }
}

/// What every plugin stage's table has: the component, its name, config and sandbox.
struct Parts<'a> {
    plugin: &'a std::path::Path,
    name: &'a Option<String>,
    config: &'a toml::Table,
    sandbox: &'a SandboxConfig,
}

impl Parts<'_> {
    /// The stage's name: as given, or the file stem.
    fn name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| crate::plugin::default_name(self.plugin))
    }

    /// Start `loaded` as this stage (its name, config and sandbox), its log lines
    /// tagged with `pipeline` and `stage`.
    fn start<W: crate::plugin::World>(
        &self,
        runtime: &Runtime,
        loaded: &LoadedPlugin,
        pipeline: &str,
        stage: &'static str,
    ) -> Result<crate::plugin::Plugin<W>, PluginError> {
        let sandbox = self.sandbox.sandbox();
        let plugin = crate::plugin::Plugin::<W>::start(
            runtime,
            loaded,
            &self.name(),
            config_json(self.config),
            sandbox,
        )?;
        plugin.set_log_context(pipeline, stage);
        Ok(plugin)
    }
}

/// A TOML table as the JSON text a plugin's `init` takes.
pub fn config_json(table: &toml::Table) -> String {
    serde_json::to_string(table).expect("TOML values always convert to JSON")
}
