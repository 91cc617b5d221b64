//! What `/status`, the progress line and the summary line show: plain data.

use serde::Serialize;
use std::collections::BTreeMap;

/// One entry of a pipeline's swap history (`/status`).
#[derive(Debug, Clone, Serialize)]
pub struct SwapEvent {
    pub time_ms: i64,
    pub stage: String,
    pub plugin: String,
    pub from: String,
    pub to: String,
    /// `swapped`, `kept` (its probation passed), `rolled_back`, `refused`.
    pub outcome: String,
    /// Per partition, the first position processed by `to`.
    pub switch: BTreeMap<String, u64>,
    pub detail: String,
}

/// Where a pipeline is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Starting,
    Running,
    Finished,
    Failed,
}

/// A plugin stage as `/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StageInfo {
    pub stage: String,
    pub plugin: String,
    pub version: String,
    pub file: String,
}

/// A dead letter's gist, for `/status`.
#[derive(Debug, Clone, Serialize)]
pub struct DeadNote {
    pub time_ms: i64,
    pub stage: String,
    pub plugin: String,
    pub position: serde_json::Value,
    pub reason: String,
}

/// A consistent-enough copy of the counters.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Records the source emitted.
    pub records_in: u64,
    /// Records (and window results) handed to sinks.
    pub records_out: u64,
    /// Of `records_out`, window results.
    pub window_results_out: u64,
    /// Records sent to the dead-letter output.
    pub dead_letters: u64,
    pub windows_closed: u64,
    /// Late records dropped (`[window] late = "drop"`).
    pub late_dropped: u64,
    /// Plugin calls that trapped, ran out of time or memory, or tried to block.
    pub plugin_failures: u64,
    pub batches: u64,
    /// Checkpoints taken (every sink durable, the source told).
    pub checkpoints: u64,
    /// Offset commits the source made.
    pub commits: u64,
    /// Sink writes retried after a temporary error.
    pub retries: u64,
    pub lag: BTreeMap<String, i64>,
}

impl Counters {
    /// Total consumer lag over every partition.
    pub fn total_lag(&self) -> i64 {
        self.lag.values().sum()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckpointStatus {
    pub age_ms: u64,
    pub duration_ms: f64,
    pub snapshot_bytes: Option<u64>,
}

/// A lookup table in `/status`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TableStatus {
    pub name: String,
    /// Where its rows come from (a file, a query, a topic).
    pub source: String,
    pub rows: u64,
    pub bytes: u64,
    /// When its rows were last loaded (ms since the epoch).
    pub loaded_ms: i64,
    pub reloads: u64,
    pub reload_failures: u64,
}

/// One pipeline in `/status`.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineStatus {
    pub name: String,
    pub state: RunState,
    pub ready: bool,
    pub source_connected: bool,
    pub uptime_ms: u64,
    pub counters: Counters,
    pub open_windows: u64,
    /// The `[stateful]` stage's state: keys held, and bytes against its cap.
    pub state_keys: u64,
    pub state_bytes: u64,
    /// Its lookup tables (`[[tables]]`).
    pub tables: Vec<TableStatus>,
    pub watermarks_ms: BTreeMap<String, i64>,
    pub checkpoint: Option<CheckpointStatus>,
    pub plugins: Vec<StageInfo>,
    pub sinks: Vec<String>,
    pub recent_dead_letters: Vec<DeadNote>,
    pub recent_windows: Vec<serde_json::Value>,
    pub swaps: Vec<SwapEvent>,
    /// A polling source's schedule, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleStatus>,
    /// The HTTP ingest source's requests and records, when the source is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingest: Option<super::IngestStatus>,
}

/// A polling source's schedule, as `/status` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScheduleStatus {
    /// As configured: `* * * * *`.
    pub schedule: String,
    pub timezone: String,
    /// The next tick in the schedule's zone (RFC 3339); none once past `end`.
    pub next_tick: Option<String>,
    pub last_tick: Option<String>,
    /// What the last tick's run came to: `3 record(s)`, `nothing (see the log)`.
    pub last_outcome: Option<String>,
}
