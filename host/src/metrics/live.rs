//! The live handles: one pipeline's series, taken once, added to on the hot path.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::families::*;
use super::status::*;

/// The latest window results and dead letters kept for `/status`.
const RECENT: usize = 20;

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Metrics({})", self.pipeline)
    }
}

/// One pipeline's series, and what `/status` shows beside them.
pub struct Metrics {
    pub(super) families: Arc<Families>,
    pipeline: String,
    detailed: AtomicBool,
    records_in: Counter,
    records_out: Counter,
    /// Of `records_out`, window results.
    window_results_out: AtomicU64,
    batches: Counter,
    checkpoints: Counter,
    commits: Counter,
    retries: AtomicU64,
    dead_total: AtomicU64,
    windows_closed: Counter,
    late_dropped: Counter,
    plugin_failures: AtomicU64,
    restores: Counter,
    state: AtomicU8,
    connected: AtomicBool,
    started: Instant,
    /// Consumer lag per partition (`topic[partition]`), as the source last saw it.
    lag: Mutex<BTreeMap<String, i64>>,
    watermarks: Mutex<BTreeMap<String, i64>>,
    open_windows: AtomicU64,
    /// Handles to this pipeline's series that are set every batch (no lookup then).
    batch_size: Histogram,
    open_windows_gauge: Gauge,
    /// The keyed stage's state: keys and bytes.
    state_keys: AtomicU64,
    state_bytes: AtomicU64,
    state_keys_gauge: Gauge,
    state_bytes_gauge: Gauge,
    tables: Mutex<BTreeMap<String, super::status::TableStatus>>,
    last_checkpoint: Mutex<Option<(Instant, Duration, Option<u64>)>>,
    stages: Mutex<Vec<StageInfo>>,
    sinks: Mutex<Vec<String>>,
    recent_dead: Mutex<VecDeque<DeadNote>>,
    recent_windows: Mutex<VecDeque<serde_json::Value>>,
    swaps: Mutex<VecDeque<SwapEvent>>,
    /// Every batch's end-to-end latency, when asked for ([`Metrics::keep_latencies`]).
    latencies: Mutex<Option<Vec<(u32, Duration)>>>,
    /// The HTTP ingest source's status, when the source is one.
    ingest: Mutex<Option<Arc<super::ingest::Shown>>>,
    /// A polling source's schedule, when it has one.
    schedule: Mutex<Option<ScheduleStatus>>,
}

impl Default for Metrics {
    /// A pipeline's metrics in a registry of their own (tests, `validate`).
    fn default() -> Self {
        Metrics::new("pipeline", Arc::new(Families::new()))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Hands to a plugin stage's series, taken once at start.
#[derive(Clone)]
pub struct StageMetrics {
    records_in: Counter,
    records_out: Counter,
    errors: Counter,
    failures: Counter,
    log_dropped: Counter,
    seconds: Histogram,
}

impl StageMetrics {
    /// One batch through the stage.
    pub fn batch(&self, records_in: usize, records_out: usize, errors: usize) {
        self.records_in.inc_by(records_in as u64);
        self.records_out.inc_by(records_out as u64);
        self.errors.inc_by(errors as u64);
    }
    /// The stage's own totals (it counts them), brought up to date.
    pub fn set_totals(&self, failures: u64, log_dropped: u64) {
        raise(&self.failures, failures);
        raise(&self.log_dropped, log_dropped);
    }
}

/// Bring a counter up to a total counted elsewhere.
fn raise(counter: &Counter, total: u64) {
    let now = counter.get();
    if total > now {
        counter.inc_by(total - now);
    }
}

/// Hands to a sink's series.
#[derive(Clone)]
pub struct SinkMetrics {
    metrics: Arc<Metrics>,
    latency: Histogram,
    write: Histogram,
    records: Counter,
    retries: Counter,
}

impl SinkMetrics {
    /// A batch written: how long it took, and (records) since its first was read.
    pub fn written(&self, records: usize, took: Duration, read_at: Option<Instant>) {
        self.records.inc_by(records as u64);
        if self.metrics.detailed() {
            self.write.observe(took.as_secs_f64());
            if let Some(at) = read_at {
                let latency = at.elapsed();
                self.latency.observe(latency.as_secs_f64());
                self.metrics.keep_latency(records, latency);
            }
        }
    }
    pub fn retry(&self) {
        self.retries.inc();
        self.metrics.retries.fetch_add(1, Relaxed);
    }
}

impl Metrics {
    pub fn new(pipeline: &str, families: Arc<Families>) -> Self {
        let p = || PipelineLabels {
            pipeline: pipeline.to_owned(),
        };
        let f = families.clone();
        let metrics = Metrics {
            records_in: f.records_in.get_or_create(&p()).clone(),
            records_out: f.records_out.get_or_create(&p()).clone(),
            batches: f.batches.get_or_create(&p()).clone(),
            checkpoints: f.checkpoints.get_or_create(&p()).clone(),
            commits: f.commits.get_or_create(&p()).clone(),
            windows_closed: f.windows_closed.get_or_create(&p()).clone(),
            late_dropped: f.late_dropped.get_or_create(&p()).clone(),
            restores: f.restores.get_or_create(&p()).clone(),
            retries: AtomicU64::new(0),
            window_results_out: AtomicU64::new(0),
            dead_total: AtomicU64::new(0),
            plugin_failures: AtomicU64::new(0),
            detailed: AtomicBool::new(true),
            state: AtomicU8::new(RunState::Starting as u8),
            connected: AtomicBool::new(false),
            started: Instant::now(),
            lag: Mutex::default(),
            watermarks: Mutex::default(),
            open_windows: AtomicU64::new(0),
            batch_size: f.batch_size.get_or_create(&p()).clone(),
            open_windows_gauge: f.open_windows.get_or_create(&p()).clone(),
            state_keys: AtomicU64::new(0),
            state_bytes: AtomicU64::new(0),
            state_keys_gauge: f.state_keys.get_or_create(&p()).clone(),
            state_bytes_gauge: f.state_bytes.get_or_create(&p()).clone(),
            tables: Mutex::default(),
            last_checkpoint: Mutex::default(),
            stages: Mutex::default(),
            sinks: Mutex::default(),
            recent_dead: Mutex::default(),
            recent_windows: Mutex::default(),
            swaps: Mutex::default(),
            latencies: Mutex::default(),
            ingest: Mutex::default(),
            schedule: Mutex::default(),
            pipeline: pipeline.to_owned(),
            families,
        };
        metrics
    }

    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    fn labels(&self) -> PipelineLabels {
        PipelineLabels {
            pipeline: self.pipeline.clone(),
        }
    }

    /// Histograms and the clock reads behind them on (default) or off.
    pub fn set_detailed(&self, on: bool) {
        self.detailed.store(on, Relaxed);
    }
    pub fn detailed(&self) -> bool {
        self.detailed.load(Relaxed)
    }

    /// Keep every written batch's end-to-end latency (benchmarks: exact percentiles
    /// rather than histogram buckets).
    pub fn keep_latencies(&self) {
        *self.latencies.lock().unwrap_or_else(|e| e.into_inner()) = Some(Vec::new());
    }

    fn keep_latency(&self, records: usize, latency: Duration) {
        if let Some(kept) = self
            .latencies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            kept.push((records as u32, latency));
        }
    }

    /// The latencies kept: per batch written, its records and the time from its
    /// first record's read to the write (an upper bound for each of its records).
    pub fn latencies(&self) -> Vec<(u32, Duration)> {
        self.latencies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default()
    }

    pub fn add_in(&self, n: u64) {
        self.records_in.inc_by(n);
    }
    /// Records handed to the sinks of `route` (per batch, not per record).
    pub fn add_routed(&self, route: &str, n: u64) {
        self.families
            .routed
            .get_or_create(&RouteLabels {
                pipeline: self.pipeline.clone(),
                route: route.to_owned(),
            })
            .inc_by(n);
    }

    /// Window results handed to sinks (counted in `add_out` too).
    pub fn add_window_results(&self, n: u64) {
        self.window_results_out.fetch_add(n, Relaxed);
    }
    pub fn add_out(&self, n: u64) {
        self.records_out.inc_by(n);
    }
    pub fn add_batch(&self, size: usize) {
        self.batches.inc();
        if self.detailed() {
            self.batch_size.observe(size as f64);
        }
    }
    /// Dead letters of one `stage`, with the class of their reason, and the gist of
    /// the newest for `/status`.
    pub fn add_dead(&self, stage: &str, reason_class: &str, n: u64, newest: Option<DeadNote>) {
        self.dead_total.fetch_add(n, Relaxed);
        self.families
            .dead_letters
            .get_or_create(&DeadLabels {
                pipeline: self.pipeline.clone(),
                stage: stage.to_owned(),
                reason: reason_class.to_owned(),
            })
            .inc_by(n);
        if let Some(note) = newest {
            let mut recent = lock(&self.recent_dead);
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(note);
        }
    }
    /// Totals the processor reads off its stages (it is their only writer).
    pub fn set_windows_closed(&self, total: u64) {
        raise(&self.windows_closed, total);
    }
    pub fn set_late_dropped(&self, total: u64) {
        raise(&self.late_dropped, total);
    }
    pub fn set_plugin_failures(&self, total: u64) {
        self.plugin_failures.store(total, Relaxed);
    }
    pub fn set_open_windows(&self, open: usize) {
        self.open_windows.store(open as u64, Relaxed);
        self.open_windows_gauge.set(open as i64);
    }
    /// What the keyed stage holds: keys, and bytes against its cap.
    pub fn set_keyed_state(&self, keys: usize, bytes: usize) {
        self.state_keys.store(keys as u64, Relaxed);
        self.state_bytes.store(bytes as u64, Relaxed);
        self.state_keys_gauge.set(keys as i64);
        self.state_bytes_gauge.set(bytes as i64);
    }
    /// A lookup table after a load (or a failed one).
    pub fn set_table(&self, table: super::status::TableStatus) {
        let labels = super::families::TableLabels {
            pipeline: self.pipeline.clone(),
            table: table.name.clone(),
        };
        let f = &self.families;
        f.table_rows.get_or_create(&labels).set(table.rows as i64);
        f.table_bytes.get_or_create(&labels).set(table.bytes as i64);
        f.table_loaded
            .get_or_create(&labels)
            .set(table.loaded_ms / 1000);
        f.table_reload_failures
            .get_or_create(&labels)
            .set(table.reload_failures as i64);
        lock(&self.tables).insert(table.name.clone(), table);
    }
    /// Per source partition, the event-time watermark (ms since the epoch).
    pub fn set_watermarks(&self, watermarks: BTreeMap<String, i64>) {
        let family = &self.families.watermark;
        let mut old = lock(&self.watermarks);
        for gone in old.keys().filter(|k| !watermarks.contains_key(*k)) {
            family.remove(&self.partition_labels(gone));
        }
        for (partition, ms) in &watermarks {
            family
                .get_or_create(&self.partition_labels(partition))
                .set(ms.div_euclid(1000));
        }
        *old = watermarks;
    }
    fn partition_labels(&self, partition: &str) -> PartitionLabels {
        PartitionLabels {
            pipeline: self.pipeline.clone(),
            partition: partition.to_owned(),
        }
    }
    pub fn add_checkpoint(&self, took: Duration, snapshot_bytes: Option<u64>) {
        self.checkpoints.inc();
        let labels = self.labels();
        if self.detailed() {
            self.families
                .checkpoint_seconds
                .get_or_create(&labels)
                .observe(took.as_secs_f64());
        }
        if let Some(bytes) = snapshot_bytes {
            self.families
                .checkpoint_bytes
                .get_or_create(&labels)
                .set(bytes as i64);
        }
        *lock(&self.last_checkpoint) = Some((Instant::now(), took, snapshot_bytes));
    }
    pub fn add_restores(&self, shares: u64) {
        self.restores.inc_by(shares);
    }
    pub fn add_commit(&self) {
        self.commits.inc();
    }
    pub fn set_lag(&self, lag: BTreeMap<String, i64>) {
        let family = &self.families.lag;
        let mut old = lock(&self.lag);
        for gone in old.keys().filter(|k| !lag.contains_key(*k)) {
            family.remove(&self.partition_labels(gone));
        }
        for (partition, n) in &lag {
            family
                .get_or_create(&self.partition_labels(partition))
                .set(*n);
        }
        *old = lag;
    }

    pub fn set_state(&self, state: RunState) {
        self.state.store(state as u8, Relaxed);
        self.families
            .up
            .get_or_create(&self.labels())
            .set(i64::from(state == RunState::Running));
    }
    pub fn state(&self) -> RunState {
        match self.state.load(Relaxed) {
            0 => RunState::Starting,
            1 => RunState::Running,
            2 => RunState::Finished,
            _ => RunState::Failed,
        }
    }
    /// The source has reached what it reads from (a Kafka group joined, a first
    /// HTTP response, a file opened).
    pub fn set_connected(&self) {
        self.connected.store(true, Relaxed);
    }
    pub fn connected(&self) -> bool {
        self.connected.load(Relaxed)
    }
    /// Running, with its source connected.
    pub fn ready(&self) -> bool {
        self.state() == RunState::Running && self.connected()
    }

    /// A plugin stage's series (and its `plugin_info`), for the stage to feed.
    pub fn stage(&self, info: StageInfo) -> StageMetrics {
        let labels = StageLabels {
            pipeline: self.pipeline.clone(),
            stage: info.stage.clone(),
            plugin: info.plugin.clone(),
            version: info.version.clone(),
        };
        let f = &self.families;
        f.plugin_info.get_or_create(&labels).set(1);
        lock(&self.stages).push(info);
        StageMetrics {
            records_in: f.stage_in.get_or_create(&labels).clone(),
            records_out: f.stage_out.get_or_create(&labels).clone(),
            errors: f.stage_errors.get_or_create(&labels).clone(),
            failures: f.plugin_failures.get_or_create(&labels).clone(),
            log_dropped: f.plugin_log_dropped.get_or_create(&labels).clone(),
            seconds: f.plugin_seconds.get_or_create(&labels).clone(),
        }
    }
    /// A new version of a stage's plugin from now on: its series, the old version's
    /// `plugin_info` set to 0, and `/status`'s list updated.
    pub fn replace_stage(&self, info: StageInfo) -> StageMetrics {
        let mut stages = lock(&self.stages);
        let at = stages
            .iter()
            .position(|s| s.stage == info.stage && s.plugin == info.plugin);
        if let Some(i) = at {
            let old = stages.remove(i);
            self.families
                .plugin_info
                .get_or_create(&StageLabels {
                    pipeline: self.pipeline.clone(),
                    stage: old.stage,
                    plugin: old.plugin,
                    version: old.version,
                })
                .set(0);
        }
        drop(stages);
        let metrics = self.stage(info);
        // In its old place in the list.
        let mut stages = lock(&self.stages);
        if let (Some(i), Some(last)) = (at, stages.pop()) {
            let at = i.min(stages.len());
            stages.insert(at, last);
        }
        metrics
    }

    /// A swap, rollback or refusal: counted, and kept for `/status`.
    pub fn swap_event(&self, event: SwapEvent) {
        self.families
            .swaps
            .get_or_create(&SwapLabels {
                pipeline: self.pipeline.clone(),
                stage: event.stage.clone(),
                plugin: event.plugin.clone(),
                from: event.from.clone(),
                to: event.to.clone(),
                outcome: event.outcome.clone(),
            })
            .inc();
        let mut swaps = lock(&self.swaps);
        if swaps.len() == RECENT {
            swaps.pop_front();
        }
        swaps.push_back(event);
    }

    /// Time a stage spent on a batch (only with detail on: see [`Self::clock`]).
    pub fn observe_stage(&self, stage: &StageMetrics, took: Duration) {
        stage.seconds.observe(took.as_secs_f64());
    }
    /// The time now if detail is on: what timed sections start from.
    pub fn clock(&self) -> Option<Instant> {
        self.detailed().then(Instant::now)
    }

    /// A sink's series.
    pub fn sink(self: &Arc<Self>, name: &str) -> SinkMetrics {
        let labels = SinkLabels {
            pipeline: self.pipeline.clone(),
            sink: name.to_owned(),
        };
        lock(&self.sinks).push(name.to_owned());
        let f = &self.families;
        SinkMetrics {
            metrics: self.clone(),
            latency: f.latency.get_or_create(&labels).clone(),
            write: f.sink_write.get_or_create(&labels).clone(),
            records: f.sink_records.get_or_create(&labels).clone(),
            retries: f.sink_retries.get_or_create(&labels).clone(),
        }
    }

    /// A window result emitted (kept for `/status`, the newest [`RECENT`]).
    pub fn window_result(&self, result: serde_json::Value) {
        let mut recent = lock(&self.recent_windows);
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(result);
    }

    /// Gauges that depend on the time they are read at.
    pub fn refresh(&self) {
        if let Some((at, _, _)) = *lock(&self.last_checkpoint) {
            self.families
                .checkpoint_age
                .get_or_create(&self.labels())
                .set(at.elapsed().as_secs_f64());
        }
    }

    pub fn snapshot(&self) -> Counters {
        Counters {
            records_in: self.records_in.get(),
            records_out: self.records_out.get(),
            window_results_out: self.window_results_out.load(Relaxed),
            dead_letters: self.dead_total.load(Relaxed),
            windows_closed: self.windows_closed.get(),
            late_dropped: self.late_dropped.get(),
            plugin_failures: self.plugin_failures.load(Relaxed),
            batches: self.batches.get(),
            checkpoints: self.checkpoints.get(),
            commits: self.commits.get(),
            retries: self.retries.load(Relaxed),
            lag: lock(&self.lag).clone(),
        }
    }

    /// The series of an HTTP ingest source at `url` (`ack`: `durable` or `accepted`),
    /// shown on `/status` from now on.
    pub fn ingest(&self, url: &str, ack: &str) -> super::IngestMetrics {
        let m = super::IngestMetrics::new(self.families.clone(), &self.pipeline, url, ack);
        *lock(&self.ingest) = Some(m.shown());
        m
    }

    /// Change what `/status` shows of the source's schedule.
    pub fn update_schedule(&self, f: impl FnOnce(&mut ScheduleStatus)) {
        f(lock(&self.schedule).get_or_insert_with(ScheduleStatus::default));
    }

    /// Everything `/status` shows of this pipeline but the rates.
    pub fn status(&self) -> PipelineStatus {
        let checkpoint = lock(&self.last_checkpoint).map(|(at, took, bytes)| CheckpointStatus {
            age_ms: at.elapsed().as_millis() as u64,
            duration_ms: took.as_secs_f64() * 1000.0,
            snapshot_bytes: bytes,
        });
        PipelineStatus {
            name: self.pipeline.clone(),
            state: self.state(),
            ready: self.ready(),
            source_connected: self.connected(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            counters: self.snapshot(),
            open_windows: self.open_windows.load(Relaxed),
            state_keys: self.state_keys.load(Relaxed),
            state_bytes: self.state_bytes.load(Relaxed),
            tables: lock(&self.tables).values().cloned().collect(),
            watermarks_ms: lock(&self.watermarks).clone(),
            checkpoint,
            plugins: lock(&self.stages).clone(),
            sinks: lock(&self.sinks).clone(),
            recent_dead_letters: lock(&self.recent_dead).iter().cloned().collect(),
            recent_windows: lock(&self.recent_windows).iter().cloned().collect(),
            swaps: lock(&self.swaps).iter().cloned().collect(),
            ingest: lock(&self.ingest).as_ref().map(|s| s.status()),
            schedule: lock(&self.schedule).clone(),
        }
    }
}
