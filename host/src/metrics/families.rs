//! The Prometheus families: every series of every pipeline of the process, registered
//! once, and their labels.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PipelineLabels {
    pub pipeline: String,
}

/// A plugin stage: `stage` is `transform` or `window`, `plugin` its name in the
/// pipeline, `version` the first 12 hex digits of the component's SHA-256.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    pub pipeline: String,
    pub stage: String,
    pub plugin: String,
    pub version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabels {
    pub pipeline: String,
    pub sink: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub pipeline: String,
    pub partition: String,
}

/// A plugin swap: both versions and what came of it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SwapLabels {
    pub pipeline: String,
    pub stage: String,
    pub plugin: String,
    pub from: String,
    pub to: String,
    pub outcome: String,
}

/// Dead letters by the stage that refused them and the class of reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeadLabels {
    pub pipeline: String,
    pub stage: String,
    pub reason: String,
}

/// An HTTP ingest source's answers, by status code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IngestStatusLabels {
    pub pipeline: String,
    pub status: String,
}

/// An HTTP ingest source's records: `accepted` (handed on) or `refused` (answered
/// 400/422, never handed on).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IngestRecordLabels {
    pub pipeline: String,
    pub outcome: String,
}

/// Records handed to the sinks of a route (`default`: records naming none).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub pipeline: String,
    pub route: String,
}

/// A lookup table of a pipeline (`[[tables]]`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabels {
    pub pipeline: String,
    pub table: String,
}

/// A family of histograms, all with the same buckets.
type Hist<L> = Family<L, Histogram, fn() -> Histogram>;

fn seconds() -> Histogram {
    // 50 µs .. ~105 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 22))
}

fn sizes() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

/// Every series of every pipeline in one process, registered once: several pipelines
/// share the families (told apart by their `pipeline` label), as Prometheus wants
/// one family per name.
pub struct Families {
    pub(super) registry: Registry,
    pub(super) records_in: Family<PipelineLabels, Counter>,
    pub(super) records_out: Family<PipelineLabels, Counter>,
    pub(super) batches: Family<PipelineLabels, Counter>,
    pub(super) batch_size: Hist<PipelineLabels>,
    pub(super) stage_in: Family<StageLabels, Counter>,
    pub(super) stage_out: Family<StageLabels, Counter>,
    pub(super) stage_errors: Family<StageLabels, Counter>,
    pub(super) plugin_seconds: Hist<StageLabels>,
    pub(super) plugin_failures: Family<StageLabels, Counter>,
    pub(super) plugin_log_dropped: Family<StageLabels, Counter>,
    pub(super) plugin_info: Family<StageLabels, Gauge>,
    pub(super) swaps: Family<SwapLabels, Counter>,
    pub(super) dead_letters: Family<DeadLabels, Counter>,
    pub(super) latency: Hist<SinkLabels>,
    pub(super) sink_write: Hist<SinkLabels>,
    pub(super) sink_records: Family<SinkLabels, Counter>,
    pub(super) sink_retries: Family<SinkLabels, Counter>,
    pub(super) lag: Family<PartitionLabels, Gauge>,
    pub(super) watermark: Family<PartitionLabels, Gauge>,
    pub(super) open_windows: Family<PipelineLabels, Gauge>,
    pub(super) state_keys: Family<PipelineLabels, Gauge>,
    pub(super) state_bytes: Family<PipelineLabels, Gauge>,
    pub(super) windows_closed: Family<PipelineLabels, Counter>,
    pub(super) late_dropped: Family<PipelineLabels, Counter>,
    pub(super) checkpoints: Family<PipelineLabels, Counter>,
    pub(super) checkpoint_seconds: Hist<PipelineLabels>,
    pub(super) checkpoint_bytes: Family<PipelineLabels, Gauge>,
    pub(super) checkpoint_age: Family<PipelineLabels, Gauge<f64, AtomicU64>>,
    pub(super) restores: Family<PipelineLabels, Counter>,
    pub(super) commits: Family<PipelineLabels, Counter>,
    pub(super) up: Family<PipelineLabels, Gauge>,
    pub(super) ingest_requests: Family<IngestStatusLabels, Counter>,
    pub(super) ingest_seconds: Hist<PipelineLabels>,
    pub(super) ingest_records: Family<IngestRecordLabels, Counter>,
    pub(super) routed: Family<RouteLabels, Counter>,
    pub(super) table_rows: Family<TableLabels, Gauge>,
    pub(super) table_bytes: Family<TableLabels, Gauge>,
    pub(super) table_loaded: Family<TableLabels, Gauge>,
    pub(super) table_reload_failures: Family<TableLabels, Gauge>,
}

impl Default for Families {
    fn default() -> Self {
        Self::new()
    }
}

impl Families {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sluice");
        macro_rules! reg {
            ($name:literal, $help:literal, $family:expr) => {{
                let family = $family;
                registry.register($name, $help, family.clone());
                family
            }};
        }
        fn hist<L: Clone + std::hash::Hash + Eq>() -> Hist<L> {
            Family::new_with_constructor(seconds)
        }
        Families {
            records_in: reg!("records_in", "Records the source read", Family::default()),
            records_out: reg!(
                "records_out",
                "Records and window results handed to sinks",
                Family::default()
            ),
            batches: reg!("batches", "Batches processed", Family::default()),
            batch_size: reg!(
                "batch_size_records",
                "Records per batch taken from the source",
                Family::new_with_constructor(sizes as fn() -> Histogram)
            ),
            stage_in: reg!(
                "stage_records_in",
                "Records into a plugin stage",
                Family::default()
            ),
            stage_out: reg!(
                "stage_records_out",
                "Records out of a plugin stage",
                Family::default()
            ),
            stage_errors: reg!(
                "stage_errors",
                "Records a plugin stage sent to the dead letters",
                Family::default()
            ),
            plugin_seconds: reg!(
                "plugin_call_seconds",
                "Time in a plugin stage per batch",
                hist()
            ),
            plugin_failures: reg!(
                "plugin_failures",
                "Plugin calls that trapped, ran out of time or memory, or tried to block",
                Family::default()
            ),
            plugin_log_dropped: reg!(
                "plugin_log_dropped",
                "Plugin log lines dropped by the per-plugin rate limit",
                Family::default()
            ),
            plugin_info: reg!(
                "plugin_info",
                "The plugins running, by name and version (1; 0 once swapped out)",
                Family::default()
            ),
            swaps: reg!(
                "plugin_swaps",
                "Plugin swaps by outcome: swapped, kept (probation passed), rolled_back, refused",
                Family::default()
            ),
            dead_letters: reg!(
                "dead_letters",
                "Records sent to the dead letters, by stage and reason class",
                Family::default()
            ),
            latency: reg!(
                "end_to_end_latency_seconds",
                "From the source read to the sink's acknowledged write, per batch",
                hist()
            ),
            sink_write: reg!(
                "sink_write_seconds",
                "Time a sink takes to write a batch, retries included",
                hist()
            ),
            sink_records: reg!("sink_records", "Records a sink wrote", Family::default()),
            sink_retries: reg!(
                "sink_retries",
                "Sink writes retried after a temporary error",
                Family::default()
            ),
            lag: reg!(
                "consumer_lag_records",
                "Records behind the partition's end (Kafka)",
                Family::default()
            ),
            watermark: reg!(
                "watermark_seconds",
                "Event-time watermark per source partition (Unix seconds)",
                Family::default()
            ),
            open_windows: reg!(
                "open_windows",
                "Windows open (not yet emitted)",
                Family::default()
            ),
            state_keys: reg!(
                "state_keys",
                "Keys the [stateful] stage holds state for",
                Family::default()
            ),
            state_bytes: reg!(
                "state_bytes",
                "Bytes of state the [stateful] stage holds, as counted against state_max_mb",
                Family::default()
            ),
            windows_closed: reg!(
                "windows_closed",
                "Windows closed and emitted",
                Family::default()
            ),
            late_dropped: reg!(
                "late_dropped",
                "Late records dropped (late = \"drop\")",
                Family::default()
            ),
            checkpoints: reg!(
                "checkpoints",
                "Checkpoints taken (every sink durable, the source told)",
                Family::default()
            ),
            checkpoint_seconds: reg!(
                "checkpoint_duration_seconds",
                "Time to take a checkpoint",
                hist()
            ),
            checkpoint_bytes: reg!(
                "checkpoint_size_bytes",
                "Size of the last window-state snapshot",
                Family::default()
            ),
            checkpoint_age: reg!(
                "checkpoint_age_seconds",
                "Time since the last checkpoint",
                Family::default()
            ),
            restores: reg!(
                "snapshot_restores",
                "Window-state shares taken up from a snapshot or changelog",
                Family::default()
            ),
            commits: reg!(
                "commits",
                "Offset commits the source made",
                Family::default()
            ),
            up: reg!(
                "pipeline_up",
                "1 while the pipeline runs",
                Family::default()
            ),
            ingest_requests: reg!(
                "ingest_requests",
                "Requests the HTTP ingest source answered, by status code",
                Family::default()
            ),
            ingest_seconds: reg!(
                "ingest_request_seconds",
                "From a request's headers to its answer (durable: once stored everywhere)",
                hist()
            ),
            ingest_records: reg!(
                "ingest_records",
                "Records the HTTP ingest source accepted or refused",
                Family::default()
            ),
            routed: reg!(
                "route_records",
                "Records handed to the sinks of a route (default: records naming none)",
                Family::default()
            ),
            table_rows: reg!("table_rows", "Rows a lookup table holds", Family::default()),
            table_bytes: reg!(
                "table_bytes",
                "Bytes a lookup table holds, as counted against its max_mb",
                Family::default()
            ),
            table_loaded: reg!(
                "table_loaded_timestamp_seconds",
                "When a lookup table's rows were last loaded (Unix seconds; age = time() - this)",
                Family::default()
            ),
            table_reload_failures: reg!(
                "table_reload_failures",
                "Reloads of a lookup table that failed (its rows before them kept)",
                Family::default()
            ),
            registry,
        }
    }

    /// The Prometheus text exposition (OpenMetrics) of every series.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
