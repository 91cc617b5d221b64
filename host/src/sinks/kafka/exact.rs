//! What makes a Kafka sink exact across a crash without transactions (`exact = true`):
//! every message carries the source position of the record it came from (the
//! `sluice.position` header), and at every checkpoint, once every delivery is back,
//! the sink notes in the pipeline's state folder how far each partition of its topics
//! reached (from its delivery reports: a broker's high watermark may lag, Tansu's
//! does) and, per source partition, the newest record it has written.
//!
//! At the next start the sink reads its topics from those ends to their ends (the
//! broker's end-of-partition events: what it wrote after the last checkpoint, before
//! the crash), and the records the
//! source sends again that are at or before what it noted, or that it finds there,
//! are not produced again: they are in the topic already. What it finds is kept as a
//! set of positions, not a newest one: deliveries to several partitions complete in
//! any order, so a crash can leave a later record in the topic and an earlier one
//! not. What the file sink does with its length, this does with the topic's tail.
//! One host per state folder: on several hosts of a group, each knows what it wrote.

use crate::position::{Origin, PartitionId, Partitions, Position};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The header naming the source position a message came from.
pub const POSITION_HEADER: &str = "sluice.position";

const FORMAT: u32 = 1;
const TIMEOUT: Duration = Duration::from_secs(30);

/// Per topic, per partition: the offset after the last message at a checkpoint.
type Ends = BTreeMap<String, BTreeMap<i32, i64>>;

#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    format: u32,
    ends: Ends,
    /// Per source partition: every record at or before this is in the topics (or
    /// never reached the sink).
    written_through: Vec<(Origin, u64)>,
    /// Records found in the topics past `written_through` (read back at a start and
    /// not passed yet): before `ends`, so not read back again.
    #[serde(default)]
    found: Vec<(Origin, u64)>,
}

/// The header's value.
#[derive(Serialize, Deserialize)]
struct Stamp {
    o: Origin,
    n: u64,
}

pub struct Exact {
    state: PathBuf,
    topics: Vec<String>,
    client: ClientConfig,
    partitions: Arc<Partitions>,
    /// Per source partition: records at or before this are in the topics (as saved
    /// at the last checkpoint before the start).
    replayed_through: BTreeMap<PartitionId, u64>,
    /// Records past that, found in the topics.
    found: HashSet<(PartitionId, u64)>,
    /// Per source partition, the newest record produced since the start: the sink
    /// sees a partition's records in order, so at a checkpoint (every delivery back)
    /// each one before it is in the topics too.
    produced: BTreeMap<PartitionId, u64>,
    /// Per topic and partition, the offset after the newest message delivered (or
    /// as saved): where a read-back after the next crash starts.
    ends: Ends,
    skipped: u64,
}

impl Exact {
    /// Read back what was written since the last checkpoint. Blocking (a consumer
    /// reads the tail).
    pub fn open(
        name: &str,
        client: ClientConfig,
        topics: Vec<String>,
        state_dir: &std::path::Path,
        partitions: Arc<Partitions>,
    ) -> Result<Exact, String> {
        let digest = {
            use sha2::{Digest, Sha256};
            let key = format!("{name}\n{}", topics.join("\n"));
            let d = Sha256::digest(key.as_bytes());
            d.iter()
                .take(8)
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let state = state_dir.join("kafka_sinks").join(format!("{digest}.json"));
        let saved: Option<Saved> = match std::fs::read(&state) {
            Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| {
                format!(
                    "{} is damaged ({e}); move it away to start afresh",
                    state.display()
                )
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("cannot read {}: {e}", state.display())),
        };
        let mut me = Exact {
            state,
            topics,
            client,
            partitions,
            replayed_through: BTreeMap::new(),
            found: HashSet::new(),
            produced: BTreeMap::new(),
            ends: Ends::new(),
            skipped: 0,
        };
        match saved {
            // The file stays as it is until the next checkpoint: a crash before it
            // reads the same tail back again.
            Some(saved) => {
                for (origin, offset) in saved.written_through {
                    let p = me.partitions.register(origin);
                    me.replayed_through.insert(p, offset);
                }
                for (origin, offset) in saved.found {
                    let p = me.partitions.register(origin);
                    me.found.insert((p, offset));
                }
                me.ends = saved.ends;
                let found = me.read_back()?;
                if found > 0 {
                    tracing::info!(
                        "{name}: {found} message(s) written after the last checkpoint found in the topic: the records they came from are not produced again"
                    );
                }
            }
            // A first start: where the topics end now, so that a crash before the
            // first checkpoint reads back from here.
            None => {
                me.ends = me.watermarks()?;
                me.save()?;
            }
        }
        Ok(me)
    }

    /// The header value for a record at `position`.
    pub fn stamp(&self, position: Position) -> Option<Vec<u8>> {
        let o = self.partitions.origin(position.partition)?;
        serde_json::to_vec(&Stamp {
            o,
            n: position.offset,
        })
        .ok()
    }

    /// Whether a record at `position` is in the topic already (written before the
    /// start); counted.
    pub fn written(&mut self, position: Position) -> bool {
        let (p, o) = (position.partition, position.offset);
        let done =
            self.replayed_through.get(&p).is_some_and(|&t| o <= t) || self.found.contains(&(p, o));
        self.skipped += u64::from(done);
        done
    }

    /// A record at `position` was produced.
    pub fn wrote(&mut self, position: Position) {
        let t = self
            .produced
            .entry(position.partition)
            .or_insert(position.offset);
        *t = (*t).max(position.offset);
    }

    /// A message was delivered to `topic`'s `partition` at `offset`.
    pub fn delivered(&mut self, topic: &str, partition: i32, offset: i64) {
        let end = self
            .ends
            .entry(topic.to_owned())
            .or_default()
            .entry(partition)
            .or_insert(0);
        *end = (*end).max(offset + 1);
    }

    /// Every delivery is back: note where the topics end and what is in them.
    pub fn checkpoint(&mut self) -> Result<(), String> {
        self.save()
    }

    fn save(&self) -> Result<(), String> {
        let mut through = self.replayed_through.clone();
        for (&p, &o) in &self.produced {
            let t = through.entry(p).or_insert(o);
            *t = (*t).max(o);
        }
        let name = |p: PartitionId| self.partitions.origin(p);
        let saved = Saved {
            format: FORMAT,
            ends: self.ends.clone(),
            written_through: through
                .iter()
                .filter_map(|(&p, &o)| Some((name(p)?, o)))
                .collect(),
            found: self
                .found
                .iter()
                .filter(|(p, o)| through.get(p).is_none_or(|&t| *o > t))
                .filter_map(|&(p, o)| Some((name(p)?, o)))
                .collect(),
        };
        let bytes = serde_json::to_vec(&saved).expect("always serializes");
        crate::durable::write_atomically(&self.state, &bytes)
            .map_err(|e| format!("cannot save {}: {e}", self.state.display()))
    }

    /// A consumer with no group to commit to; `eof`: end-of-partition events on.
    fn consumer(&self, eof: bool) -> Result<BaseConsumer, String> {
        let mut client = self.client.clone();
        client
            .set("group.id", "sluice-kafka-sink-read-back")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", eof.to_string());
        client
            .create()
            .map_err(|e| format!("cannot create a Kafka consumer: {e}"))
    }

    /// Where each partition of the topics ends now, by the broker's high watermarks
    /// (at a first start; one that lags only makes a later read-back start earlier).
    fn watermarks(&self) -> Result<Ends, String> {
        let consumer = self.consumer(false)?;
        let mut ends = Ends::new();
        for topic in &self.topics {
            let ids = crate::kafka::partitions_of(consumer.client(), topic, TIMEOUT)?;
            let per = ends.entry(topic.clone()).or_default();
            for p in ids {
                let (_, high) = consumer
                    .fetch_watermarks(topic, p, TIMEOUT)
                    .map_err(|e| format!("cannot read {topic}[{p}]'s offsets: {e}"))?;
                per.insert(p, high);
            }
        }
        Ok(ends)
    }

    /// The messages from the saved ends to the end of each partition: each one's
    /// source position noted as written. One topic at a time (an end-of-partition
    /// event names the partition, not its topic).
    fn read_back(&mut self) -> Result<u64, String> {
        let mut found = 0;
        for topic in self.topics.clone() {
            found += self.read_back_topic(&topic)?;
        }
        Ok(found)
    }

    fn read_back_topic(&mut self, topic: &str) -> Result<u64, String> {
        let consumer = self.consumer(true)?;
        let ids = crate::kafka::partitions_of(consumer.client(), topic, TIMEOUT)?;
        let mut tpl = TopicPartitionList::new();
        for &p in &ids {
            // A partition with no saved end (new since): from its beginning.
            let start = match self.ends.get(topic).and_then(|e| e.get(&p)) {
                Some(&end) => Offset::Offset(end),
                None => Offset::Beginning,
            };
            tpl.add_partition_offset(topic, p, start)
                .map_err(|e| e.to_string())?;
        }
        consumer
            .assign(&tpl)
            .map_err(|e| format!("cannot assign {topic}: {e}"))?;
        let mut left: HashSet<i32> = ids.into_iter().collect();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut found = 0;
        while !left.is_empty() {
            if Instant::now() > deadline {
                return Err(format!(
                    "reading {topic} back from the last checkpoint took over 120 s ({} partition(s) not at their end)",
                    left.len()
                ));
            }
            let m = match consumer.poll(Duration::from_millis(200)) {
                None => continue,
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    left.remove(&p);
                    continue;
                }
                Some(Err(e)) => return Err(format!("reading {topic} back: {e}")),
                Some(Ok(m)) => m,
            };
            let stamp = m.headers().and_then(|hs| {
                hs.iter()
                    .find(|h| h.key == POSITION_HEADER)
                    .and_then(|h| h.value)
                    .and_then(|v| serde_json::from_slice::<Stamp>(v).ok())
            });
            if let Some(Stamp { o, n }) = stamp {
                let p = self.partitions.register(o);
                self.found.insert((p, n));
                found += 1;
            }
            // Later writes go after what is there now.
            self.delivered(topic, m.partition(), m.offset());
        }
        Ok(found)
    }

    /// Records sent again after the start and not produced again.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}
