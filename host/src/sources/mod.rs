//! Sources: where records come from. One module per connector, each a config struct
//! (deserialized from `[source]`) and a `run` that emits records until it is done or
//! told to stop.
//!
//! A source numbers its own records ([`Position`]: a partition and an offset in it),
//! and gets [`Ack`]s back on its [`SourceContext`] after each checkpoint, saying which
//! positions are now durable everywhere: the Kafka source commits them, the file
//! source saves them. A source that can replay (Kafka, file) asks for a checkpoint
//! with a barrier before it lets partitions go or stops, so that what it read is
//! finished, made durable and acknowledged first.

pub mod dead_letters;
pub mod event_time;
pub mod file;
pub mod generator;
pub mod http;
pub mod http_server;
pub mod kafka;
pub mod postgres;

pub use crate::connector::ConnectorError as SourceError;
pub use crate::rng::SplitMix64;

use crate::dead_letter::DeadLetter;
use crate::field_error::FieldError;
use crate::metrics::Metrics;
use crate::position::{Ack, AckReceiver, Origin, PartitionId, Partitions, Position};
use crate::record::Record;
use crate::window_state::{SnapshotStore, StateBackend, StateError};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// `[source]`, chosen by its `type` key. Adding a source is its module (a config
/// with one [`SourceConnector`] impl), a line here and a line in [`each_source`].
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceConfig {
    /// Offline randomuser.me-shaped users (quickstart, tests, benchmarks).
    Generator(generator::GeneratorConfig),
    /// Poll an HTTP endpoint such as `https://randomuser.me/api/?results=5`.
    Http(http::HttpConfig),
    /// Take records clients POST (`POST http://127.0.0.1:5000/api/data`), answering
    /// each request once its records are stored.
    HttpServer(http_server::HttpServerConfig),
    /// Consume Kafka topics in a consumer group, committing offsets once durable.
    Kafka(kafka::KafkaSourceConfig),
    /// JSON lines from a file or a folder of files, resuming at the saved byte offset.
    File(file::FileSourceConfig),
    /// The failed records of a dead-letter file (`sluice dead-letters replay`).
    DeadLetters(dead_letters::DeadLettersConfig),
    /// A PostgreSQL table, read in the order of a growing column, resuming after the
    /// saved value.
    Postgres(postgres::PostgresSourceConfig),
}

/// `$body` with `$c` bound to the source's config, whichever it is.
macro_rules! each_source {
    ($value:expr, $c:ident => $body:expr) => {
        match $value {
            SourceConfig::Generator($c) => $body,
            SourceConfig::Http($c) => $body,
            SourceConfig::HttpServer($c) => $body,
            SourceConfig::Kafka($c) => $body,
            SourceConfig::File($c) => $body,
            SourceConfig::DeadLetters($c) => $body,
            SourceConfig::Postgres($c) => $body,
        }
    };
}

/// What a source is, as far as the engine cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// It resumes from what was acknowledged (Kafka offsets, a file's byte offset, a
    /// table's column value), on a thread of its own that sends chunks of up to
    /// [`CHUNK`] events: what a restart reads again need not be emitted half-full,
    /// and window state and file sinks can be exact across a crash.
    Resumable,
    /// It starts afresh each run (generator, http, dead letters), one record at a time.
    Fresh,
}

/// What the engine asks of a source connector's config: one impl per connector, in
/// its module.
pub trait SourceConnector: Sized {
    /// Its `type` key, for names and messages.
    fn type_name(&self) -> &'static str;

    /// Whether it resumes from what was acknowledged.
    fn kind(&self) -> SourceKind;

    /// Field-level checks.
    fn validate(&self) -> Result<(), FieldError> {
        Ok(())
    }

    /// A window state that moves with the source's partitions (`[window] state =
    /// "kafka"`), for a source that has one: `topic` as configured.
    fn moving_window_state(
        &self,
        _topic: Option<&str>,
        _windowing: (i64, i64),
    ) -> impl std::future::Future<Output = Result<Option<Box<dyn StateBackend>>, StateError>> + Send
    {
        async { Ok(None) }
    }

    /// How many events the engine's intake holds for about `records` records: a source
    /// on its own thread sends chunks of up to [`CHUNK`], the others one record each.
    fn intake_capacity(&self, records: usize) -> usize {
        match self.kind() {
            SourceKind::Resumable => records.div_ceil(CHUNK).max(2),
            SourceKind::Fresh => records.max(1),
        }
    }

    /// Emit records until done or told to stop.
    fn run(
        self,
        ctx: SourceContext,
    ) -> impl std::future::Future<Output = Result<(), SourceError>> + Send;
}

/// Run `f` (a source whose reads block: librdkafka, files, a database driver) on a
/// thread of its own; a panic there is the source's fatal error.
pub(crate) async fn on_own_thread(
    ctx: SourceContext,
    f: impl FnOnce(SourceContext) -> Result<(), SourceError> + Send + 'static,
) -> Result<(), SourceError> {
    let name = ctx.name.clone();
    tokio::task::spawn_blocking(move || f(ctx))
        .await
        .unwrap_or_else(|e| Err(SourceError::fatal(&name, format!("panicked: {e}"))))
}

impl SourceConfig {
    /// Field-level checks.
    pub fn validate(&self) -> Result<(), FieldError> {
        each_source!(self, c => SourceConnector::validate(c))
    }

    /// The source's type, for names and messages.
    pub fn type_name(&self) -> &'static str {
        each_source!(self, c => c.type_name())
    }

    /// Whether a restart resumes from what was acknowledged (so that records held in
    /// open windows at a stop are read again, and the windows need not be emitted
    /// half-full).
    pub fn resumes(&self) -> bool {
        self.kind() == SourceKind::Resumable
    }

    /// What this source is, for the engine.
    pub fn kind(&self) -> SourceKind {
        each_source!(self, c => SourceConnector::kind(c))
    }

    /// Where a window's state is kept at each checkpoint, when this source resumes
    /// from what was acknowledged (otherwise nowhere: nothing is read again): a file
    /// in `state_dir`, or, when the state should move with the partitions (`[window]
    /// state = "kafka"`: `moving` is `Some(topic)`), what the source offers for it
    /// (a Kafka source: a compacted topic on its brokers). `windowing`: the window's
    /// size and slide (ms), which the state must match.
    pub async fn window_state(
        &self,
        moving: Option<Option<&str>>,
        state_dir: &std::path::Path,
        windowing: (i64, i64),
    ) -> Result<Option<Box<dyn StateBackend>>, StateError> {
        if let Some(topic) = moving {
            let state = each_source!(self, c => c.moving_window_state(topic, windowing).await)?;
            if state.is_some() {
                return Ok(state);
            }
        }
        Ok(self
            .resumes()
            .then(|| Box::new(SnapshotStore::in_dir(state_dir)) as Box<dyn StateBackend>))
    }

    /// How many events the engine's intake holds for about `records` records.
    pub fn intake_capacity(&self, records: usize) -> usize {
        each_source!(self, c => SourceConnector::intake_capacity(c, records))
    }

    pub async fn run(self, ctx: SourceContext) -> Result<(), SourceError> {
        each_source!(self, c => c.run(ctx).await)
    }
}

/// Most records a source on a thread of its own hands over at once.
pub const CHUNK: usize = 256;

/// How long a rebalance or a stop waits for the pipeline to make what was read
/// durable before it goes ahead without it (it is then read again).
pub const FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// What a source sends the engine.
pub enum SourceEvent {
    Record(Record, Position),
    /// A record the source itself could not make sense of (e.g. no event time).
    Dead(DeadLetter),
    /// Make everything sent before this durable, then answer with an [`Ack`] whose
    /// `barrier` is `id`. `end_of_input`: the source has read everything there is, so
    /// open windows are closed (and their records acknowledged) first.
    Barrier {
        id: u64,
        end_of_input: bool,
    },
    /// The partitions this source reads now (after a rebalance): a window's watermark
    /// waits for each of them, so the first partition read cannot close windows the
    /// others still have records for.
    Assignment(Vec<PartitionId>),
    /// Several records and dead letters at once, in order: a source on a thread of
    /// its own sends in chunks, since each send may wake the engine.
    Many(Vec<SourceEvent>),
}

/// Records (and the source's own dead letters) among `events`, for the counters.
fn records_in(events: &[SourceEvent]) -> u64 {
    events
        .iter()
        .filter(|e| matches!(e, SourceEvent::Record(..) | SourceEvent::Dead(_)))
        .count() as u64
}

/// What a running source talks to: the engine's intake, the acknowledgements coming
/// back, the stop signal, and where it may keep state.
pub struct SourceContext {
    /// `source (kafka)`, for messages.
    pub name: String,
    out: mpsc::Sender<SourceEvent>,
    pub shutdown: CancellationToken,
    pub metrics: Arc<Metrics>,
    partitions: Arc<Partitions>,
    /// In a mutex only so the context is `Sync` (async sources hold it across awaits).
    acks: std::sync::Mutex<AckReceiver>,
    next_barrier: u64,
    /// Where the source may keep what must outlive the process.
    pub state_dir: PathBuf,
    /// The folder relative paths resolve from.
    pub base_dir: PathBuf,
    /// What a source read by several hosts (a shared Kafka group) should warn of:
    /// set when the pipeline's window results are exact only on one host.
    pub shared_group_note: Option<String>,
}

/// The engine has stopped taking records (it is shutting down, or failed).
#[derive(Debug)]
pub struct Closed;

impl SourceContext {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        out: mpsc::Sender<SourceEvent>,
        acks: AckReceiver,
        partitions: Arc<Partitions>,
        shutdown: CancellationToken,
        metrics: Arc<Metrics>,
        state_dir: PathBuf,
        base_dir: PathBuf,
    ) -> Self {
        SourceContext {
            name,
            out,
            shutdown,
            metrics,
            partitions,
            acks: std::sync::Mutex::new(acks),
            next_barrier: 0,
            state_dir,
            base_dir,
            shared_group_note: None,
        }
    }

    /// The id of a partition, registering it on first sight.
    pub fn partition(&self, origin: Origin) -> PartitionId {
        self.partitions.register(origin)
    }

    /// Hand one record to the engine, waiting while the pipeline is full
    /// (backpressure).
    pub async fn emit(&self, record: Record, position: Position) -> Result<(), Closed> {
        self.out
            .send(SourceEvent::Record(record, position))
            .await
            .map_err(|_| Closed)?;
        self.metrics.add_in(1);
        Ok(())
    }

    /// Records and dead letters (the source could not use), in order, from a
    /// source's own thread.
    pub fn blocking_emit_many(&self, events: Vec<SourceEvent>) -> Result<(), Closed> {
        if events.is_empty() {
            return Ok(());
        }
        let n = records_in(&events);
        self.out
            .blocking_send(SourceEvent::Many(events))
            .map_err(|_| Closed)?;
        self.metrics.add_in(n);
        Ok(())
    }

    fn receiver(&self) -> std::sync::MutexGuard<'_, AckReceiver> {
        self.acks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hand over `events`, then a barrier, and wait up to [`FLUSH_TIMEOUT`] for its
    /// acknowledgement: what a replayable source does before partitions go or it stops.
    /// Returns every ack that arrived meanwhile (none if the engine has stopped).
    pub fn blocking_flush(&mut self, events: Vec<SourceEvent>, end_of_input: bool) -> Vec<Ack> {
        let mut acks = Vec::new();
        // The whole flush, handing over included, keeps to FLUSH_TIMEOUT: a stalled
        // sink must not hold a rebalance past the group's patience.
        let deadline = std::time::Instant::now() + FLUSH_TIMEOUT;
        let records = records_in(&events);
        let handed = events.is_empty() || self.send_by(SourceEvent::Many(events), deadline).is_ok();
        if handed {
            self.metrics.add_in(records);
        }
        let id = self.next_barrier;
        let barrier = SourceEvent::Barrier { id, end_of_input };
        if handed && self.send_by(barrier, deadline).is_ok() {
            self.next_barrier += 1;
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if !self.wait_for_barrier(id, left, |a| acks.push(a)) {
                tracing::warn!(source = %self.name, "the pipeline did not make what was read durable within {FLUSH_TIMEOUT:?}; what it did not acknowledge is read again next time");
            }
        }
        acks
    }

    /// Send, waiting for room until `deadline` at the most.
    fn send_by(&self, mut event: SourceEvent, deadline: std::time::Instant) -> Result<(), Closed> {
        loop {
            match self.out.try_send(event) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(Closed),
                Err(mpsc::error::TrySendError::Full(back)) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(Closed);
                    }
                    event = back;
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
            }
        }
    }

    /// Acks that have arrived, without waiting.
    pub fn try_acks(&self) -> Vec<Ack> {
        self.receiver().try_iter().collect()
    }

    /// Wait up to `timeout` for the ack of barrier `id`, handing every ack that
    /// arrives meanwhile (that one included) to `on_ack`. False if it did not come
    /// (the engine stopped, or took too long).
    pub fn wait_for_barrier(
        &self,
        id: u64,
        timeout: std::time::Duration,
        mut on_ack: impl FnMut(Ack),
    ) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let received = self.receiver().recv_timeout(left);
            match received {
                Ok(ack) => {
                    let done = ack.barrier == Some(id);
                    on_ack(ack);
                    if done {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    /// Hand `events` over as one (in order), waiting up to `wait` for room:
    /// `Ok(false)` if the pipeline stayed full, for an async source that answers its
    /// clients "busy" rather than buffering what it cannot hand on.
    pub async fn emit_within(
        &self,
        events: Vec<SourceEvent>,
        wait: std::time::Duration,
    ) -> Result<bool, Closed> {
        let n = records_in(&events);
        match tokio::time::timeout(wait, self.out.reserve()).await {
            Err(_) => Ok(false),
            Ok(Err(_)) => Err(Closed),
            Ok(Ok(permit)) => {
                permit.send(SourceEvent::Many(events));
                self.metrics.add_in(n);
                Ok(true)
            }
        }
    }

    /// Ask for a checkpoint now, answered by an [`Ack`] whose `barrier` is `id` (an
    /// async source whose clients wait for their records to be stored).
    pub async fn barrier(&self, id: u64, end_of_input: bool) -> Result<(), Closed> {
        self.out
            .send(SourceEvent::Barrier { id, end_of_input })
            .await
            .map_err(|_| Closed)
    }

    /// The next acknowledgement, waiting up to `timeout` (`None`: none came);
    /// `Err(Closed)` once the engine sends no more.
    pub fn recv_ack(&self, timeout: std::time::Duration) -> Result<Option<Ack>, Closed> {
        match self.receiver().recv_timeout(timeout) {
            Ok(ack) => Ok(Some(ack)),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(Closed),
        }
    }

    /// Whether the engine has stopped taking records.
    pub fn is_closed(&self) -> bool {
        self.out.is_closed()
    }

    pub fn is_stopping(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Sleep up to `wait` (a source on a thread of its own, between polls), waking
    /// early on a stop; true if stopping.
    pub fn sleep_unless_stopping(&self, wait: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + wait;
        while std::time::Instant::now() < deadline {
            if self.is_stopping() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(20).min(wait));
        }
        self.is_stopping()
    }
}
