//! `type = "kafka"`: consume topics in a consumer group, at least once.
//!
//! Offsets are never auto-committed. After each checkpoint the engine acknowledges
//! what is durable in every sink and the dead letters, and only then is the offset
//! after it committed, per partition (Vector's Kafka source stores offsets only after
//! delivery in the same spirit). Before partitions are revoked in a rebalance, and
//! before the source stops, it sends a barrier through the pipeline and waits for its
//! acknowledgement, so what was read from them is finished, durable and committed
//! before they go. Per-partition order is kept: one thread reads, one processor
//! handles records in the order read.
//!
//! librdkafka blocks, and its rebalance callbacks run inside `poll`, so the source
//! runs on a thread of its own.

use super::event_time::EventTime;
use super::{Closed, SourceContext, SourceError, SourceEvent, CHUNK};
use crate::dead_letter::DeadLetter;
use crate::field_error::FieldError;
use crate::kafka::{self, Properties};
use crate::position::{Ack, Origin, PartitionId, Position};
use crate::record::{now_ms, Header, Record, NULL_VALUE_HEADER, ROUTE_HEADER};
use crate::registry::{Decoded, Decoder, Format, RegistryConfig};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Message, Offset, Statistics, TopicPartitionList};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// Bootstrap brokers, comma-separated: `"127.0.0.1:9092"`.
    pub brokers: String,
    pub topics: Vec<String>,
    /// The consumer group: hosts with the same group split the partitions.
    pub group_id: String,
    /// Where a group with no committed offset starts.
    #[serde(default)]
    pub start: Start,
    #[serde(default)]
    pub event_time: EventTime,
    /// Stop once every assigned partition has been read to its end (batch jobs,
    /// benchmarks). Default: keep consuming until stopped.
    #[serde(default)]
    pub stop_at_end: bool,
    /// How values are encoded: `json` (as they are), or Confluent-framed `avro` or
    /// `json_schema`, decoded with the schemas of `registry`.
    #[serde(default)]
    pub format: Format,
    /// The Confluent Schema Registry (`format = "avro"` or `"json_schema"`).
    pub registry: Option<RegistryConfig>,
    #[serde(default)]
    pub properties: Properties,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    /// From the oldest message kept: nothing already in the topic is missed.
    #[default]
    Earliest,
    /// Only messages produced from now on.
    Latest,
}

const POLL: Duration = Duration::from_millis(100);

impl KafkaSourceConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        kafka::validate(&self.brokers, &self.properties)?;
        if self.topics.is_empty() || self.topics.iter().any(|t| t.trim().is_empty()) {
            return Err(FieldError::new(
                "topics",
                "must list at least one topic name",
            ));
        }
        if self.group_id.trim().is_empty() {
            return Err(FieldError::new("group_id", "must not be empty"));
        }
        match (&self.registry, self.format.uses_registry()) {
            (Some(r), _) => r.validate()?,
            (None, true) => {
                return Err(FieldError::new(
                    "registry",
                    format!(
                        "is needed with format = \"{}\": the schemas are the registry's (registry = {{ url = \"http://127.0.0.1:8081\" }})",
                        self.format.name()
                    ),
                ))
            }
            (None, false) => {}
        }
        for key in ["enable.auto.commit", "enable.auto.offset.store"] {
            if self.properties.contains_key(key) {
                return Err(FieldError::new(
                    format!("properties.\"{key}\""),
                    "is Sluice's to set: offsets are committed only once the records are durable",
                ));
            }
        }
        Ok(())
    }

    fn client_config(&self) -> rdkafka::ClientConfig {
        let start = match self.start {
            Start::Earliest => "earliest",
            Start::Latest => "latest",
        };
        let ours = [
            ("group.id", self.group_id.clone()),
            ("enable.auto.commit", "false".to_owned()),
            ("enable.auto.offset.store", "false".to_owned()),
            ("auto.offset.reset", start.to_owned()),
            ("enable.partition.eof", self.stop_at_end.to_string()),
            // Per-partition consumer lag arrives in the statistics.
            ("statistics.interval.ms", "1000".to_owned()),
            // A topic created after the subscription is found within seconds, not
            // librdkafka's default five minutes.
            ("topic.metadata.refresh.interval.ms", "10000".to_owned()),
            // When the pipeline is slower than the fetches, librdkafka's queue fills
            // (64 MB) and it holds the next fetch back `fetch.queue.backoff.ms`:
            // 1 s by default, in which the pipeline drains the queue and then waits
            // with nothing to do (measured: Kafka -> format_user idle over half its
            // run). 20 ms refills it before it runs dry, for one check per partition.
            ("fetch.queue.backoff.ms", "20".to_owned()),
        ];
        kafka::client_config(&self.brokers, &ours, &self.properties)
    }
}

/// What the read loop and the rebalance callback share.
struct State {
    ctx: SourceContext,
    event_time: EventTime,
    ids: HashMap<String, HashMap<i32, PartitionId>>,
    /// The last message's topic, partition and id: messages come in runs of one
    /// partition, so most need no map lookup at all.
    last_id: Option<(String, i32, PartitionId)>,
    /// Partitions assigned to this host now.
    owned: HashMap<PartitionId, (String, i32)>,
    /// Per owned partition, the offset the group's commit is known to be at (the
    /// first offset read after assignment, then each commit): never committed below.
    committed: FxHashMap<PartitionId, i64>,
    /// The newest durable offsets the engine acknowledged.
    durable: BTreeMap<PartitionId, u64>,
    /// Partitions librdkafka reported read to their end (by partition number).
    at_end: FxHashSet<i32>,
    /// Leaving the group: the final flush is done.
    closing: bool,
    /// Read and not yet handed to the engine (sent in chunks: one wake-up each).
    chunk: Vec<SourceEvent>,
    /// Per partition ever read, the offset after the last message read. Kept across
    /// revocations: when a partition comes back while an open window still holds its
    /// records (so its commit stayed behind them), reading resumes here, not at the
    /// commit, or the window would count those records twice.
    next_read: FxHashMap<PartitionId, i64>,
    /// The assignment changed since the read loop last looked (it then checks whether
    /// other hosts share the group).
    reassigned: bool,
    /// Decodes registry-framed values (`format = "avro"`/`"json_schema"`).
    registry: Option<Registry>,
}

/// The registry's decoder, and the runtime its requests run on (this thread blocks).
struct Registry {
    decoder: Decoder,
    runtime: tokio::runtime::Handle,
}

/// A message the source cannot go on past: the registry stays unreachable through a
/// shutdown, or refuses the credentials.
enum Halt {
    Stopping,
    Failed(String),
}

impl Registry {
    /// The value as plugins read it (JSON text), or why it is a dead letter. A schema
    /// id not seen before is fetched; while the registry is unavailable, this waits
    /// and asks again (nothing read after this message is handed on meanwhile).
    fn decode(
        &mut self,
        value: &[u8],
        name: &str,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> Result<Result<Vec<u8>, String>, Halt> {
        // Made at the first failure: a message whose schema is known (nearly all)
        // reads no clock here.
        let mut waits: Option<crate::retry::Backoff> = None;
        loop {
            let id = match self.decoder.decode(value) {
                Decoded::Value(v) => return Ok(Ok(v)),
                Decoded::Dead(why) => return Ok(Err(why)),
                Decoded::Unknown(id) => id,
            };
            match self.runtime.block_on(self.decoder.learn(id)) {
                Ok(()) => {}
                Err(e) if e.is_retryable() => {
                    let waits = waits.get_or_insert_with(|| {
                        crate::retry::RetryPolicy {
                            backoff: crate::duration::Duration::from_millis(200),
                            max_backoff: crate::duration::Duration::from_millis(5_000),
                            max_retries: u32::MAX,
                        }
                        .start()
                    });
                    let wait = waits
                        .next_wait()
                        .unwrap_or(std::time::Duration::from_secs(5));
                    tracing::warn!(source = %name, "fetching schema id {id}: {e}; asking again in {wait:?} (retry {})", waits.retries());
                    let until = std::time::Instant::now() + wait;
                    while std::time::Instant::now() < until {
                        if shutdown.is_cancelled() {
                            return Err(Halt::Stopping);
                        }
                        std::thread::sleep(
                            std::time::Duration::from_millis(50)
                                .min(until - std::time::Instant::now()),
                        );
                    }
                }
                Err(e) => return Err(Halt::Failed(format!("fetching schema id {id}: {e}"))),
            }
        }
    }
}

impl State {
    /// The engine's id of a topic-partition; looked up without allocating, since it
    /// is asked for every message.
    fn id(&mut self, topic: &str, partition: i32) -> PartitionId {
        if let Some((t, p, id)) = &self.last_id {
            if *p == partition && t == topic {
                return *id;
            }
        }
        let id = self.id_of(topic, partition);
        self.last_id = Some((topic.to_owned(), partition, id));
        id
    }

    fn id_of(&mut self, topic: &str, partition: i32) -> PartitionId {
        if let Some(&id) = self.ids.get(topic).and_then(|ps| ps.get(&partition)) {
            return id;
        }
        let id = self.ctx.partition(Origin::Kafka {
            topic: topic.to_owned(),
            partition,
        });
        self.ids
            .entry(topic.to_owned())
            .or_default()
            .insert(partition, id);
        id
    }

    fn take(&mut self, ack: Ack) {
        tracing::trace!(source = %self.ctx.name, "acknowledged: {ack:?}");
        // Only partitions owned now: an ack may still name one revoked since.
        for (p, offset) in ack
            .durable
            .into_iter()
            .filter(|(p, _)| self.owned.contains_key(p))
        {
            let d = self.durable.entry(p).or_insert(offset);
            *d = (*d).max(offset);
        }
    }

    /// Commit, per owned partition, the offset after the newest durable one.
    fn commit(&mut self, consumer: &BaseConsumer<Ctx>) {
        let mut tpl = TopicPartitionList::new();
        let mut next_offsets = Vec::new();
        for (p, &durable) in &self.durable {
            let Some((topic, n)) = self.owned.get(p) else {
                continue;
            };
            let next = durable as i64 + 1;
            if self.committed.get(p).is_some_and(|&c| next <= c) {
                continue;
            }
            if tpl
                .add_partition_offset(topic, *n, Offset::Offset(next))
                .is_ok()
            {
                next_offsets.push((*p, next));
            }
        }
        if next_offsets.is_empty() {
            return;
        }
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => {
                tracing::debug!(source = %self.ctx.name, "committed {tpl:?}");
                self.ctx.metrics.add_commit();
                self.committed.extend(next_offsets);
            }
            Err(e) => tracing::warn!(
                source = %self.ctx.name,
                "committing offsets failed (tried again at the next checkpoint): {e}"
            ),
        }
    }

    /// Hand what was read to the engine.
    fn send(&mut self) -> Result<(), Closed> {
        self.ctx.blocking_emit_many(std::mem::take(&mut self.chunk))
    }

    /// Make everything read so far durable (a barrier through the pipeline), then
    /// commit it. `end_of_input`: every partition was read to its end (`stop_at_end`),
    /// so open windows are closed and emitted first.
    fn flush(&mut self, consumer: &BaseConsumer<Ctx>, end_of_input: bool) {
        let chunk = std::mem::take(&mut self.chunk);
        for ack in self.ctx.blocking_flush(chunk, end_of_input) {
            self.take(ack);
        }
        self.commit(consumer);
    }

    /// Add a message to the chunk.
    fn take_message(&mut self, m: &BorrowedMessage<'_>) -> Result<(), Halt> {
        // Decoded first: a message the source halts on is not taken (it is read
        // again after a restart).
        let decoded = match (&mut self.registry, m.payload()) {
            (Some(r), Some(payload)) => {
                Some(r.decode(payload, &self.ctx.name, &self.ctx.shutdown)?)
            }
            _ => None,
        };
        let id = self.id(m.topic(), m.partition());
        self.committed.entry(id).or_insert(m.offset());
        self.next_read.insert(id, m.offset() + 1);
        if !self.at_end.is_empty() {
            self.at_end.remove(&m.partition());
        }
        let (mut headers, unnamed) = headers_of(m);
        // Only this source says what was null: a producer's header of that name is not
        // taken at its word.
        // Nor is a route: a record routed upstream is not routed again here.
        headers.retain(|h| h.name != NULL_VALUE_HEADER && h.name != ROUTE_HEADER);
        let payload = m.payload();
        if payload.is_none() {
            // A tombstone: marked, so that a dead letter or a Kafka sink keeps it null.
            headers.push(Header {
                name: NULL_VALUE_HEADER.into(),
                value: Vec::new(),
            });
        }
        let mut record = Record {
            key: m.key().map(<[u8]>::to_vec),
            value: payload.map(<[u8]>::to_vec).unwrap_or_default(),
            timestamp_ms: m.timestamp().to_millis().unwrap_or_else(now_ms),
            headers,
        };
        let position = Position::new(id, m.offset().max(0) as u64);
        let time = match (unnamed, decoded) {
            (Some(why), _) => Err(why),
            // The dead letter keeps the bytes as they came.
            (None, Some(Err(why))) => Err(why),
            (None, Some(Ok(json))) => {
                record.value = json;
                self.event_time.of(&record.value, record.timestamp_ms)
            }
            (None, None) => self.event_time.of(&record.value, record.timestamp_ms),
        };
        let event = match time {
            Ok(ts) => {
                record.timestamp_ms = ts;
                SourceEvent::Record(record, position)
            }
            Err(reason) => {
                SourceEvent::Dead(DeadLetter::now("source", "kafka", record, position, reason))
            }
        };
        self.chunk.push(event);
        Ok(())
    }
}

/// A message's headers, their names read as bytes (rdkafka's `Headers::get` panics on
/// a name that is not UTF-8, and any producer may send one). librdkafka hands names
/// over NUL-terminated, so a name with a NUL in it arrives cut at the NUL. A record's header names
/// are text, so such a message cannot be handed on as it is: the second value says
/// why, and the message becomes a dead letter (its names made readable, the bytes
/// that were not UTF-8 replaced) rather than stopping the source.
fn headers_of(m: &BorrowedMessage<'_>) -> (Vec<Header>, Option<String>) {
    use rdkafka::bindings as rd;
    let mut native: *mut rd::rd_kafka_headers_t = std::ptr::null_mut();
    // SAFETY: the message outlives this call; librdkafka keeps ownership of the
    // headers, which we only read, and a message without headers leaves `native` null.
    let err = unsafe { rd::rd_kafka_message_headers(m.ptr(), &mut native) };
    if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR || native.is_null() {
        return (Vec::new(), None);
    }
    // SAFETY: as above; `native` is valid while the message is.
    let count = unsafe { rd::rd_kafka_header_cnt(native) };
    let mut headers = Vec::with_capacity(count);
    let mut unnamed = None;
    for i in 0..count {
        let (mut name, mut value, mut size) = (std::ptr::null(), std::ptr::null(), 0);
        // SAFETY: `i` < count; the pointers written are librdkafka's, valid while the
        // message is, and copied out below before it goes.
        let err =
            unsafe { rd::rd_kafka_header_get_all(native, i, &mut name, &mut value, &mut size) };
        if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
            continue;
        }
        // SAFETY: librdkafka's header names are NUL-terminated.
        let name = unsafe { std::ffi::CStr::from_ptr(name) }.to_bytes();
        let value = if value.is_null() {
            Vec::new()
        } else {
            // SAFETY: `value` points at `size` bytes owned by the message.
            unsafe { std::slice::from_raw_parts(value.cast::<u8>(), size) }.to_vec()
        };
        let name = match std::str::from_utf8(name) {
            Ok(name) => name.to_owned(),
            Err(_) => {
                let hex: String = name.iter().map(|b| format!("{b:02x}")).collect();
                unnamed.get_or_insert_with(|| {
                    format!(
                        "header {i}'s name is not UTF-8 (bytes {hex}): header names must be text"
                    )
                });
                String::from_utf8_lossy(name).into_owned()
            }
        };
        headers.push(Header { name, value });
    }
    (headers, unnamed)
}

/// librdkafka's callbacks: statistics (lag), errors, rebalances.
struct Ctx {
    state: Mutex<State>,
    name: String,
}

impl Ctx {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn list(tpl: &TopicPartitionList) -> String {
    let names: Vec<String> = tpl
        .elements()
        .iter()
        .map(|e| format!("{}[{}]", e.topic(), e.partition()))
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

impl ClientContext for Ctx {
    fn stats(&self, statistics: Statistics) {
        let mut lag = BTreeMap::new();
        for (topic, t) in &statistics.topics {
            for (&p, part) in &t.partitions {
                if p >= 0 && part.consumer_lag >= 0 {
                    lag.insert(format!("{topic}[{p}]"), part.consumer_lag);
                }
            }
        }
        self.lock().ctx.metrics.set_lag(lag);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(source = %self.name, "librdkafka: {error}: {reason}");
    }
}

impl Ctx {
    /// Partitions read before start where reading stopped, unless the group's commit
    /// is further on (another host read them meanwhile).
    fn resume_where_read(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let mut state = self.lock();
        let mut known = Vec::new();
        for e in tpl.elements() {
            let id = state.id(e.topic(), e.partition());
            if let Some(&next) = state.next_read.get(&id) {
                known.push((e.topic().to_owned(), e.partition(), next));
            }
        }
        drop(state);
        if known.is_empty() {
            return;
        }
        let mut ask = TopicPartitionList::new();
        for (t, p, _) in &known {
            ask.add_partition(t, *p);
        }
        let committed = consumer
            .committed_offsets(ask, Duration::from_secs(30))
            .ok();
        for (t, p, next) in known {
            let group = committed
                .as_ref()
                .and_then(|c| c.find_partition(&t, p))
                .and_then(|e| match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                });
            let at = group.map_or(next, |g| g.max(next));
            let _ = tpl.set_partition_offset(&t, p, Offset::Offset(at));
        }
    }
}

impl ConsumerContext for Ctx {
    /// librdkafka's rebalance, as rdkafka does it, except that partitions this host
    /// read before are assigned at the offset after what it read
    /// ([`Ctx::resume_where_read`]).
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let assign = err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
        if assign {
            self.resume_where_read(consumer, tpl);
        }
        let rebalance = match err {
            _ if assign => Rebalance::Assign(tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => Rebalance::Revoke(tpl),
            other => Rebalance::Error(KafkaError::Rebalance(other.into())),
        };
        self.pre_rebalance(consumer, &rebalance);
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let done = match (&rebalance, cooperative) {
            (Rebalance::Assign(tpl), true) => consumer.incremental_assign(tpl),
            (Rebalance::Assign(tpl), false) => consumer.assign(tpl),
            (_, true) => consumer.incremental_unassign(tpl),
            (_, false) => consumer.unassign(),
        };
        if let Err(e) = done {
            tracing::warn!(source = %self.name, "applying the rebalance failed: {e}");
        }
        self.post_rebalance(consumer, &rebalance);
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let mut state = self.lock();
        match rebalance {
            Rebalance::Revoke(tpl) => {
                if !state.closing {
                    // Finish, make durable and commit what was read before they go.
                    state.flush(consumer, false);
                }
                for e in tpl.elements() {
                    let id = state.id(e.topic(), e.partition());
                    state.owned.remove(&id);
                    state.committed.remove(&id);
                    state.durable.remove(&id);
                }
                state.at_end.clear();
                let remaining = state.owned.keys().copied().collect();
                state.chunk.push(SourceEvent::Assignment(remaining));
                tracing::info!(source = %self.name, "partitions revoked: {}", list(tpl));
            }
            Rebalance::Assign(tpl) => {
                for e in tpl.elements() {
                    let id = state.id(e.topic(), e.partition());
                    state
                        .owned
                        .insert(id, (e.topic().to_owned(), e.partition()));
                    state.durable.remove(&id);
                }
                let owned = state.owned.keys().copied().collect();
                state.chunk.push(SourceEvent::Assignment(owned));
                state.reassigned = true;
                // In the group (even with no partitions of its own): connected.
                state.ctx.metrics.set_connected();
                tracing::info!(source = %self.name, "partitions assigned: {}", list(tpl));
            }
            Rebalance::Error(e) => {
                // rdkafka then unassigns everything: nothing is ours to commit.
                tracing::warn!(source = %self.name, "rebalance failed: {e}; partitions released");
                state.owned.clear();
                state.committed.clear();
                state.durable.clear();
                state.at_end.clear();
                state.chunk.push(SourceEvent::Assignment(Vec::new()));
            }
        }
    }
}

pub fn run(config: KafkaSourceConfig, ctx: SourceContext) -> Result<(), SourceError> {
    let name = ctx.name.clone();
    let registry = match (&config.registry, config.format.uses_registry()) {
        (Some(r), true) => Some(Registry {
            decoder: Decoder::new(
                config.format,
                crate::registry::Client::new(r, &ctx.base_dir)
                    .map_err(|e| SourceError::fatal(&name, e))?,
            ),
            runtime: tokio::runtime::Handle::current(),
        }),
        _ => None,
    };
    let shutdown = ctx.shutdown.clone();
    let context = Ctx {
        name: name.clone(),
        state: Mutex::new(State {
            ctx,
            event_time: config.event_time.clone(),
            ids: HashMap::new(),
            last_id: None,
            owned: HashMap::new(),
            committed: FxHashMap::default(),
            durable: BTreeMap::new(),
            at_end: FxHashSet::default(),
            closing: false,
            chunk: Vec::with_capacity(CHUNK),
            next_read: FxHashMap::default(),
            reassigned: false,
            registry,
        }),
    };
    let consumer: BaseConsumer<Ctx> = config
        .client_config()
        .create_with_context(context)
        .map_err(|e| SourceError::fatal(&name, format!("cannot create a Kafka consumer: {e}")))?;
    let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|e| SourceError::fatal(&name, format!("cannot subscribe to {topics:?}: {e}")))?;
    tracing::info!(source = %name, "joining consumer group `{}` for {}", config.group_id, topics.join(", "));

    let mut at_end = false;
    let result = loop {
        if shutdown.is_cancelled() {
            break Ok(());
        }
        {
            let mut state = consumer.context().lock();
            let acks = state.ctx.try_acks();
            if !acks.is_empty() {
                acks.into_iter().for_each(|a| state.take(a));
                state.commit(&consumer);
            }
        }
        // Wait for a message, then take what else is there at once, up to a chunk.
        let mut timeout = POLL;
        let mut failed = None;
        let mut halted = None;
        loop {
            match consumer.poll(timeout) {
                None => break,
                Some(Ok(message)) => {
                    // One lock a message: taken, and whether the chunk is full.
                    let mut state = consumer.context().lock();
                    if let Err(halt) = state.take_message(&message) {
                        halted = Some(halt);
                        break;
                    }
                    if state.chunk.len() >= CHUNK {
                        break;
                    }
                    timeout = Duration::ZERO;
                    continue;
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    consumer.context().lock().at_end.insert(p);
                }
                Some(Err(e)) if is_fatal(&e) => {
                    failed = Some(e);
                    break;
                }
                Some(Err(e)) => tracing::warn!(source = %name, "{e} (librdkafka retries)"),
            }
            timeout = Duration::ZERO;
            if consumer.context().lock().chunk.len() >= CHUNK {
                break;
            }
        }
        let reassigned = std::mem::take(&mut consumer.context().lock().reassigned);
        if reassigned {
            note_shared_group(&consumer, &topics, &config.group_id);
        }
        if consumer.context().lock().send().is_err() {
            break Ok(()); // the engine is shutting down
        }
        if let Some(e) = failed {
            break Err(SourceError::fatal(&name, format!("consumer failed: {e}")));
        }
        match halted {
            Some(Halt::Stopping) => break Ok(()),
            Some(Halt::Failed(e)) => break Err(SourceError::fatal(&name, e)),
            None => {}
        }
        if config.stop_at_end && read_to_end(&consumer, topics.len() == 1) {
            tracing::info!(source = %name, "every assigned partition is read to its end; stopping");
            at_end = true;
            break Ok(());
        }
    };
    // Leaving: what was read is finished, made durable and committed first (at the
    // end of the input, open windows too).
    {
        let mut state = consumer.context().lock();
        state.flush(&consumer, at_end);
        state.closing = true;
    }
    drop(consumer); // leaves the group
    result
}

/// When other hosts read some of the topics' partitions (the group is shared), say so,
/// with the pipeline's warning if it has one (window results that are exact only on
/// one host).
fn note_shared_group(consumer: &BaseConsumer<Ctx>, topics: &[&str], group: &str) {
    let (owned, note) = {
        let state = consumer.context().lock();
        let owned: Vec<(String, i32)> = state.owned.values().cloned().collect();
        (owned, state.ctx.shared_group_note.clone())
    };
    let mut total = 0;
    for topic in topics {
        match consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            Ok(m) => {
                total += m
                    .topics()
                    .iter()
                    .map(|t| t.partitions().len())
                    .sum::<usize>()
            }
            Err(_) => return, // unknown: say nothing rather than something wrong
        }
    }
    if owned.len() >= total {
        return;
    }
    let name = &consumer.context().name;
    tracing::info!(source = %name, "this host reads {} of the {total} partitions; other members of group `{group}` read the rest", owned.len());
    if let Some(note) = note {
        tracing::warn!(source = %name, "{note}");
    }
}

fn is_fatal(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::Fatal
                | RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
        )
    )
}

/// Every assigned partition has reported its end, and its position is at the high
/// watermark (the end reports name a partition number, not its topic, so with several
/// topics a partition not read since its assignment counts only if it is empty).
fn read_to_end(consumer: &BaseConsumer<Ctx>, one_topic: bool) -> bool {
    let owned: Vec<(String, i32)> = {
        let state = consumer.context().lock();
        if state.owned.is_empty() || state.owned.values().any(|(_, p)| !state.at_end.contains(p)) {
            return false;
        }
        state.owned.values().cloned().collect()
    };
    let Ok(positions) = consumer.position() else {
        return false;
    };
    owned.iter().all(|(topic, p)| {
        let Ok((low, high)) = consumer.fetch_watermarks(topic, *p, Duration::from_secs(5)) else {
            return false;
        };
        match positions.find_partition(topic, *p).map(|e| e.offset()) {
            Some(Offset::Offset(at)) => at >= high,
            // Nothing read since the assignment: the end report is this partition's
            // when there is one topic; otherwise only an empty partition is at its end.
            _ => one_topic || low == high,
        }
    })
}

impl super::SourceConnector for KafkaSourceConfig {
    fn type_name(&self) -> &'static str {
        "kafka"
    }

    fn kind(&self) -> super::SourceKind {
        super::SourceKind::Resumable
    }

    fn validate(&self) -> Result<(), FieldError> {
        KafkaSourceConfig::validate(self)
    }

    async fn moving_window_state(
        &self,
        topic: Option<&str>,
        windowing: (i64, i64),
    ) -> Result<Option<Box<dyn crate::window_state::StateBackend>>, crate::window_state::StateError>
    {
        // One default whether or not a window is there (keyed state alone too): adding
        // or removing a window must not leave the state on another topic.
        let topic = topic.map_or_else(|| format!("{}-windows", self.group_id), str::to_owned);
        let changelog = crate::kafka::changelog::Changelog::open(
            &self.brokers,
            &self.properties,
            &topic,
            &self.group_id,
            &self.topics,
            windowing,
        )
        .await?;
        Ok(Some(Box::new(changelog)))
    }

    async fn run(self, ctx: SourceContext) -> Result<(), SourceError> {
        // librdkafka blocks: on a thread of its own.
        super::on_own_thread(ctx, move |ctx| run(self, ctx)).await
    }
}
