//! The pipeline TOML: one config struct per section (and per connector, in the
//! connector's own module), deserialized with `deny_unknown_fields` and validated once
//! at load, so a running pipeline never meets a config error.

pub mod admin;
mod error;
mod interpolate;
mod keys;
mod load;
mod stage;

pub use crate::duration::Duration;
pub use crate::retry::RetryPolicy;
pub use error::ConfigError;
pub use load::{load, parse};
pub use stage::{
    config_json, LatePolicy, SandboxConfig, StatefulConfig, SwapConfig, TransformConfig,
    WindowConfig, WindowOutput, WindowState,
};

use crate::field_error::FieldError;
use crate::sinks::dead_letter::DeadLetterConfig;
use crate::sinks::{Input, SinkConfig, SinkType};
use crate::sources::SourceConfig;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A whole pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    #[serde(default)]
    pub pipeline: PipelineSection,
    pub source: SourceConfig,
    /// Applied in order to every record.
    #[serde(default)]
    pub transforms: Vec<TransformConfig>,
    /// A transform with a state per key, after `transforms`.
    pub stateful: Option<StatefulConfig>,
    /// Lookup tables the plugins read (`lookup.get(table, key)`).
    #[serde(default)]
    pub tables: Vec<crate::tables::TableConfig>,
    /// An event-time window over the transformed records.
    pub window: Option<WindowConfig>,
    pub sinks: Vec<SinkConfig>,
    #[serde(default)]
    pub dead_letter: DeadLetterConfig,
    /// The host's admin listener (metrics, status, page). One per process: with
    /// several pipeline files, at most one may have it.
    pub admin: Option<admin::AdminConfig>,
    /// The file this was read from (for messages) and the directory relative paths
    /// resolve from.
    #[serde(skip)]
    pub file: PathBuf,
}

/// `[pipeline]`: engine settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSection {
    /// Shown in logs; defaults to the file's stem.
    pub name: Option<String>,
    /// Most records per batch handed to plugins and sinks.
    pub batch_size: usize,
    /// Longest a partial batch waits for more records before it is sent anyway.
    pub linger: Duration,
    /// Batches that may wait between two stages. With `batch_size` it bounds memory:
    /// a slow sink fills these queues and then slows the source.
    pub queue_batches: usize,
    /// How often sinks are flushed and synced (files: `fsync`), after which the
    /// source is told what is safe (Kafka commits its offsets then).
    pub checkpoint_interval: Duration,
    /// Where the pipeline keeps what must outlive it (the file source's read
    /// positions), relative to the pipeline file. Default `.sluice/<pipeline name>`.
    pub state_dir: Option<PathBuf>,
    /// How sources and sinks retry temporary errors (exponential backoff, full jitter).
    pub retry: RetryPolicy,
    /// The most of a record's value a dead-letter line keeps, in KiB; a longer one
    /// keeps its start, its length and its SHA-256.
    pub dead_letter_max_kb: usize,
    /// Threads that run the plugins, each with instances of its own, batches side by
    /// side (results still go on in source order). Default: the machine's cores. 1:
    /// the pipeline's one processing thread runs them.
    pub workers: Option<usize>,
    /// Dead letters in a row, with no record getting through to the sinks, after
    /// which the pipeline stops with an error (0: never). It caps what an input that
    /// is all garbage writes to the dead letters; a stream with poison in it never
    /// trips it, as one good record starts the count again.
    pub max_dead_letter_run: u64,
}

impl PipelineSection {
    /// `workers`, or the machine's cores.
    pub fn workers(&self) -> usize {
        self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }
}

impl Default for PipelineSection {
    fn default() -> Self {
        PipelineSection {
            name: None,
            batch_size: 256,
            linger: Duration::from_millis(100),
            queue_batches: 4,
            checkpoint_interval: Duration::from_millis(5_000),
            state_dir: None,
            retry: RetryPolicy::default(),
            dead_letter_max_kb: 4096,
            workers: None,
            max_dead_letter_run: 10_000,
        }
    }
}

impl PipelineConfig {
    /// The pipeline's name: `[pipeline].name`, else the file stem.
    pub fn name(&self) -> String {
        self.pipeline.name.clone().unwrap_or_else(|| {
            self.file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
    }

    /// The folder relative paths resolve from: the pipeline file's.
    pub fn base_dir(&self) -> PathBuf {
        self.file.parent().unwrap_or(Path::new(".")).to_owned()
    }

    /// `[pipeline].state_dir`, resolved.
    pub fn state_dir(&self) -> PathBuf {
        match &self.pipeline.state_dir {
            Some(dir) => self.resolve(dir),
            None => self.resolve(&Path::new(".sluice").join(self.name())),
        }
    }

    /// Resolve a path from the config against the pipeline file's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            return path.to_owned();
        }
        self.file.parent().unwrap_or(Path::new(".")).join(path)
    }

    fn invalid(&self, field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.file.clone(),
            line: None,
            field: field.into(),
            message: message.into(),
        }
    }

    /// A connector's or section's [`FieldError`], its field under `table`.
    fn invalid_field(&self, table: &str, e: FieldError) -> ConfigError {
        let e = e.within(table);
        self.invalid(e.field, e.message)
    }

    /// A store sink of window results must key them the way `[window] output` emits
    /// them: merged results one row or document per window, partials one per window
    /// and partition (summed by MongoDB, kept apart by Cassandra's partition column).
    /// Otherwise every result would be refused, or one partition's would overwrite
    /// another's.
    fn check_window_sink(&self, sink: &SinkConfig) -> Result<(), FieldError> {
        let partials = self
            .window
            .as_ref()
            .is_some_and(|w| w.output == WindowOutput::Partials);
        let err = |f: &str, m: &str| Err(FieldError::new(f, m));
        if sink.input != Input::Windows {
            return Ok(());
        }
        match &sink.connector {
            SinkType::Mongodb(m) => {
                match (partials, m.partials) {
                    (true, false) => err(
                        "partials",
                        "is needed: [window] output = \"partials\" emits one result per window and source partition, and without partials = true each would replace the last in the window's document",
                    ),
                    (false, true) => err(
                        "partials",
                        "needs [window] output = \"partials\" (the window emits one merged result per window, with no partition to sum over)",
                    ),
                    _ => Ok(()),
                }
            }
            SinkType::Cassandra(c) => {
                if c.columns.is_none() {
                    return err(
                        "columns",
                        "are needed with input = \"windows\": the default layout is the users table (id and eleven text columns), which window results do not fill; name the result's columns, e.g. { window_start = \"text\", total_count = \"bigint\" }, and primary_key = \"window_start\"",
                    );
                }
                match (partials, c.partition_column.is_some()) {
                    (true, false) => err(
                        "partition_column",
                        "is needed: [window] output = \"partials\" emits one result per window and source partition, which would overwrite each other in a row keyed by window alone",
                    ),
                    (false, true) => err(
                        "partition_column",
                        "needs [window] output = \"partials\" (merged results carry no partition)",
                    ),
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// Checks that span sections; each connector checks its own fields.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let p = &self.pipeline;
        if !(1..=1_000_000).contains(&p.batch_size) {
            return Err(self.invalid("pipeline.batch_size", "must be between 1 and 1000000"));
        }
        if !(1..=1000).contains(&p.queue_batches) {
            return Err(self.invalid("pipeline.queue_batches", "must be between 1 and 1000"));
        }
        if p.workers.is_some_and(|n| !(1..=256).contains(&n)) {
            return Err(self.invalid("pipeline.workers", "must be between 1 and 256"));
        }
        if p.checkpoint_interval.is_zero() {
            return Err(self.invalid("pipeline.checkpoint_interval", "must be more than 0"));
        }
        if !(1..=1_048_576).contains(&p.dead_letter_max_kb) {
            return Err(self.invalid(
                "pipeline.dead_letter_max_kb",
                "must be between 1 and 1048576",
            ));
        }
        p.retry
            .validate()
            .map_err(|e| self.invalid_field("pipeline.retry", e))?;
        self.source
            .validate()
            .map_err(|e| self.invalid_field("source", e))?;
        if self.sinks.is_empty() {
            return Err(self.invalid("sinks", "at least one [[sinks]] table is needed"));
        }
        for (i, sink) in self.sinks.iter().enumerate() {
            let field = format!("sinks[{i}].input");
            if sink.input() == Input::Windows && self.window.is_none() {
                return Err(self.invalid(field, "is \"windows\" but the pipeline has no [window]"));
            }
            sink.validate()
                .map_err(|e| self.invalid_field(&format!("sinks[{i}]"), e))?;
            self.check_window_sink(sink)
                .map_err(|e| self.invalid_field(&format!("sinks[{i}]"), e))?;
        }
        self.dead_letter
            .validate()
            .map_err(|e| self.invalid_field("dead_letter", e))?;
        // Schema files compile now, so a broken one stops `validate`, not a run.
        let schema = |key: String, file: Option<&Path>| match file {
            Some(file) => crate::schema::Schema::load(file, &self.base_dir())
                .map(drop)
                .map_err(|e| self.invalid(key, e.to_string())),
            None => Ok(()),
        };
        for (i, sink) in self.sinks.iter().enumerate() {
            schema(format!("sinks[{i}].schema"), sink.schema())?;
        }
        for (i, t) in self.transforms.iter().enumerate() {
            schema(format!("transforms[{i}].schema"), t.schema.as_deref())?;
        }
        if let Some(admin) = &self.admin {
            admin
                .validate()
                .map_err(|e| self.invalid_field("admin", e))?;
        }
        let mut names = std::collections::HashSet::new();
        for (i, t) in self.transforms.iter().enumerate() {
            t.sandbox
                .validate()
                .map_err(|e| self.invalid_field(&format!("transforms[{i}].sandbox"), e))?;
            if !(0.0..=1.0).contains(&t.swap.rollback_error_rate) {
                return Err(self.invalid(
                    format!("transforms[{i}].swap.rollback_error_rate"),
                    "must be between 0 and 1 (a share of the records)",
                ));
            }
            if t.swap.rollback_window > 1_000_000 {
                return Err(self.invalid(
                    format!("transforms[{i}].swap.rollback_window"),
                    "must be at most 1000000 records (they are held in memory)",
                ));
            }
            if !names.insert(t.name()) {
                return Err(self.invalid(
                    format!("transforms[{i}].name"),
                    format!(
                        "`{}` is used twice; give each transform its own name",
                        t.name()
                    ),
                ));
            }
        }
        for (i, t) in self.tables.iter().enumerate() {
            t.validate()
                .map_err(|e| self.invalid_field(&format!("tables[{i}]"), e))?;
            if self.tables[..i]
                .iter()
                .any(|other| other.name() == t.name())
            {
                return Err(self.invalid(
                    format!("tables[{i}].name"),
                    format!("`{}` names two tables", t.name()),
                ));
            }
        }
        if let Some(st) = &self.stateful {
            st.validate()
                .map_err(|e| self.invalid_field("stateful", e))?;
            if st.state == WindowState::Kafka && !matches!(self.source, SourceConfig::Kafka(_)) {
                return Err(self.invalid(
                    "stateful.state",
                    "is \"kafka\", which needs a Kafka source (its brokers keep the state)",
                ));
            }
            if let Some(w) = &self.window {
                if (w.state, &w.state_topic) != (st.state, &st.state_topic) {
                    return Err(self.invalid(
                        "stateful.state",
                        "and [window] state (and state_topic) must say the same: the pipeline keeps its window and keyed state in one store",
                    ));
                }
            }
        }
        if let Some(w) = &self.window {
            if w.size.as_millis() < 1 {
                return Err(self.invalid("window.size", "must be at least 1ms"));
            }
            if w.update_within.is_some() && w.late != LatePolicy::Update {
                return Err(self.invalid("window.update_within", "needs late = \"update\""));
            }
            if w.emit_every.is_some_and(|d| d.is_zero()) {
                return Err(self.invalid("window.emit_every", "must be more than 0"));
            }
            if let Some(slide) = w.slide {
                if slide.as_millis() < 1 || slide > w.size {
                    return Err(self.invalid(
                        "window.slide",
                        "must be at least 1ms and at most the window's size",
                    ));
                }
                let (size_ms, slide_ms) = (w.size.as_millis_i64(), slide.as_millis_i64());
                let per_record = (size_ms + slide_ms - 1) / slide_ms;
                let most = stage::MAX_WINDOWS_PER_RECORD;
                if per_record > most {
                    return Err(self.invalid(
                        "window.slide",
                        format!(
                            "`{slide}` with window.size `{}` puts every record in {per_record} windows (a copy and an accumulator each); at most {most} are allowed: make slide at least {} (size / {most})",
                            w.size,
                            crate::duration::Duration::from_millis(((size_ms + most - 1) / most) as u64)
                        ),
                    ));
                }
            }
            if w.state == WindowState::Kafka && !matches!(self.source, SourceConfig::Kafka(_)) {
                return Err(self.invalid(
                    "window.state",
                    "is \"kafka\", which needs a Kafka source (its brokers keep the state)",
                ));
            }
            if w.state_topic.is_some() && w.state != WindowState::Kafka {
                return Err(self.invalid("window.state_topic", "needs state = \"kafka\""));
            }
            if w.idle_timeout.is_some_and(|d| d.is_zero()) {
                return Err(self.invalid("window.idle_timeout", "must be more than 0"));
            }
            w.sandbox
                .validate()
                .map_err(|e| self.invalid_field("window.sandbox", e))?;
        }
        Ok(())
    }
}
