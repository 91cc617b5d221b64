//! Window state in a compacted Kafka topic, so it moves with the partitions: whichever
//! host is assigned a source partition next takes up that partition's open windows
//! where its last owner saved them (as Kafka Streams' changelog topics do).
//!
//! One message per source partition and checkpoint, keyed `<topic>/<n>` (the
//! changelog topic is the consumer group's, so every host of the group finds it),
//! in changelog partition `n % partitions` (the topic has as many partitions as the
//! widest source topic, so each host reads only the changelog partitions of the
//! source partitions it is given). Compaction keeps the newest message per key. Every
//! message of a checkpoint is delivered (idempotent producer, `acks=all`) before the
//! source is acknowledged.

use super::{client_config, create_topic, CreateTopic, Properties};
use crate::position::Origin;
use crate::window_state::{PartitionState, Snapshot, StateBackend, StateError, FORMAT};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

/// The largest partition share written as one message: librdkafka's and a broker's
/// default message size (`message.max.bytes`, 1,000,000) less room for the headers.
const MAX_ENTRY_BYTES: usize = 990_000;

/// One partition's state as a changelog message.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    format: u32,
    window_size_ms: i64,
    #[serde(default)]
    window_slide_ms: Option<i64>,
    state: PartitionState,
}

pub struct Changelog {
    topic: String,
    partitions: i32,
    window_size_ms: i64,
    window_slide_ms: i64,
    reader: ClientConfig,
    producer: FutureProducer,
}

impl Changelog {
    /// Open (and create, compacted, if missing) the changelog topic of a consumer
    /// group reading `source_topics`.
    pub async fn open(
        brokers: &str,
        properties: &Properties,
        topic: &str,
        group: &str,
        source_topics: &[String],
        (window_size_ms, window_slide_ms): (i64, i64),
    ) -> Result<Changelog, StateError> {
        // The source's connection settings (security, TLS, SASL...), not its
        // consumer settings, which a producer would warn about.
        let properties: Properties = properties
            .iter()
            .filter(|(k, _)| {
                [
                    "security.",
                    "ssl.",
                    "sasl.",
                    "socket.",
                    "client.",
                    "broker.",
                ]
                .iter()
                .any(|p| k.starts_with(p))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let properties = &properties;
        let base = client_config(brokers, &[], properties);
        let probe: BaseConsumer = base
            .create()
            .map_err(|e| StateError::Store(format!("cannot create a Kafka client: {e}")))?;
        let count = |t: &str| -> Result<i32, StateError> {
            super::partitions_of(probe.client(), t, TIMEOUT)
                .map(|ids| ids.len() as i32)
                .map_err(StateError::Store)
        };
        let mut partitions = count(topic)?;
        if partitions == 0 {
            let widest = source_topics
                .iter()
                .map(|t| count(t))
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .max()
                .unwrap_or(1)
                .max(1);
            let create = CreateTopic {
                partitions: widest,
                replication_factor: 1,
            };
            create_topic(&base, topic, create, &[("cleanup.policy", "compact")])
                .await
                .map_err(StateError::Store)?;
            partitions = count(topic)?.max(widest);
        }
        let ours = [
            ("enable.idempotence", "true".to_owned()),
            ("acks", "all".to_owned()),
            ("linger.ms", "0".to_owned()),
        ];
        let producer: FutureProducer = client_config(brokers, &ours, properties)
            .create()
            .map_err(|e| StateError::Store(format!("cannot create a Kafka producer: {e}")))?;
        let reader = client_config(
            brokers,
            &[
                // Assigned partitions only, no group membership: never committed.
                ("group.id", format!("{group}-changelog-reader")),
                ("enable.auto.commit", "false".into()),
            ],
            properties,
        );
        Ok(Changelog {
            topic: topic.to_owned(),
            partitions,
            window_size_ms,
            window_slide_ms,
            reader,
            producer,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    fn key(&self, topic: &str, partition: i32) -> String {
        format!("{topic}/{partition}")
    }

    fn changelog_partition(&self, partition: i32) -> i32 {
        partition.rem_euclid(self.partitions)
    }

    /// Write each partition's state and wait until every message is delivered;
    /// returns the bytes written.
    pub async fn save(&self, states: Vec<PartitionState>) -> Result<u64, StateError> {
        let mut deliveries = Vec::new();
        let mut size = 0u64;
        for state in states {
            let Origin::Kafka { topic, partition } = &state.origin else {
                continue;
            };
            let key = self.key(topic, *partition);
            let cp = self.changelog_partition(*partition);
            let entry = Entry {
                format: FORMAT,
                window_size_ms: self.window_size_ms,
                window_slide_ms: Some(self.window_slide_ms),
                state,
            };
            let value = serde_json::to_vec(&entry).expect("an entry always serializes");
            if value.len() > MAX_ENTRY_BYTES {
                return Err(StateError::Store(format!(
                    "the state of {} is {} bytes ({} key(s), {} window share(s)), more than one message of {} takes ({MAX_ENTRY_BYTES} bytes): set a ttl, spread the keys over more source partitions, or use state = \"local\"",
                    key,
                    value.len(),
                    entry.state.keys.len(),
                    entry.state.windows.len(),
                    self.topic
                )));
            }
            size += value.len() as u64;
            let record = FutureRecord::to(&self.topic)
                .key(&key)
                .payload(&value)
                .partition(cp);
            let delivery = self.producer.send_result(record).map_err(|(e, _)| {
                StateError::Store(format!("cannot write window state to {}: {e}", self.topic))
            })?;
            deliveries.push(delivery);
        }
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    return Err(StateError::Store(format!(
                        "writing window state to {} failed: {e}",
                        self.topic
                    )))
                }
                Err(_) => return Err(StateError::Store("the state producer went away".into())),
            }
        }
        Ok(size)
    }

    /// The newest saved state of each of these source partitions (blocking: reads
    /// the changelog partitions to their ends).
    pub fn load(&self, wanted: &[(String, i32)]) -> Result<Vec<PartitionState>, StateError> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let consumer: BaseConsumer = self
            .reader
            .create()
            .map_err(|e| StateError::Store(format!("cannot create a Kafka consumer: {e}")))?;
        let keys: BTreeMap<String, ()> =
            wanted.iter().map(|(t, p)| (self.key(t, *p), ())).collect();
        let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
        let mut tpl = TopicPartitionList::new();
        for (_, p) in wanted {
            let cp = self.changelog_partition(*p);
            if ends.contains_key(&cp) {
                continue;
            }
            let (low, high) = consumer
                .fetch_watermarks(&self.topic, cp, TIMEOUT)
                .map_err(|e| {
                    StateError::Store(format!("cannot read the ends of {}[{cp}]: {e}", self.topic))
                })?;
            if high > low {
                ends.insert(cp, high);
                tpl.add_partition_offset(&self.topic, cp, Offset::Beginning)
                    .map_err(|e| StateError::Store(e.to_string()))?;
            }
        }
        let mut newest: BTreeMap<String, Entry> = BTreeMap::new();
        if !ends.is_empty() {
            consumer
                .assign(&tpl)
                .map_err(|e| StateError::Store(e.to_string()))?;
            let deadline = std::time::Instant::now() + TIMEOUT * 4;
            while !ends.is_empty() {
                if std::time::Instant::now() > deadline {
                    return Err(StateError::Store(format!(
                        "reading the window state from {} took over {:?}",
                        self.topic,
                        TIMEOUT * 4
                    )));
                }
                let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                    continue;
                };
                let m = message
                    .map_err(|e| StateError::Store(format!("reading {}: {e}", self.topic)))?;
                if ends
                    .get(&m.partition())
                    .is_some_and(|&end| m.offset() + 1 >= end)
                {
                    ends.remove(&m.partition());
                }
                let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                    continue;
                };
                if !keys.contains_key(key) {
                    continue;
                }
                let Some(payload) = m.payload() else {
                    newest.remove(key); // a tombstone
                    continue;
                };
                let entry: Entry = serde_json::from_slice(payload).map_err(|e| {
                    StateError::Unreadable(format!(
                        "{}[{}] offset {}: not window state ({e})",
                        self.topic,
                        m.partition(),
                        m.offset()
                    ))
                })?;
                if entry.format != FORMAT {
                    return Err(StateError::Unreadable(format!(
                        "{}[{}] offset {}: window state in format {}, which this sluice (format {FORMAT}) cannot read",
                        self.topic,
                        m.partition(),
                        m.offset(),
                        entry.format
                    )));
                }
                let slide = entry.window_slide_ms.unwrap_or(entry.window_size_ms);
                // Size 0 on either side: no window then or now (keyed state alone).
                let windowed = entry.window_size_ms != 0 && self.window_size_ms != 0;
                if windowed
                    && (entry.window_size_ms, slide) != (self.window_size_ms, self.window_slide_ms)
                {
                    return Err(StateError::Unreadable(format!(
                        "{}[{}] offset {}: window state saved with windows of {} ms sliding by {slide} ms, but [window] is now {} ms sliding by {} ms",
                        self.topic,
                        m.partition(),
                        m.offset(),
                        entry.window_size_ms,
                        self.window_size_ms,
                        self.window_slide_ms
                    )));
                }
                newest.insert(key.to_owned(), entry);
            }
        }
        Ok(newest.into_values().map(|e| e.state).collect())
    }
}

/// The changelog as the engine's state backend: shares saved per source partition and
/// taken up as partitions are assigned.
impl StateBackend for Changelog {
    fn save(&self, snapshot: &Snapshot) -> Result<u64, StateError> {
        // The processor's thread, off the async workers: wait here for the deliveries.
        let partitions = snapshot.partitions.clone();
        tokio::runtime::Handle::current().block_on(Changelog::save(self, partitions))
    }

    fn follows_assignment(&self) -> bool {
        true
    }

    fn load_all(&self) -> Result<Option<Snapshot>, StateError> {
        Ok(None) // taken up partition by partition, as they are assigned
    }

    fn load(&self, partitions: &[Origin]) -> Result<Vec<PartitionState>, StateError> {
        let wanted: Vec<(String, i32)> = partitions
            .iter()
            .filter_map(|o| match o {
                Origin::Kafka { topic, partition } => Some((topic.clone(), *partition)),
                _ => None,
            })
            .collect();
        Changelog::load(self, &wanted)
    }

    fn describe(&self) -> String {
        format!("topic {}", self.topic)
    }
}
