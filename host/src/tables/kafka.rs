//! A table from a compacted Kafka topic, followed: each message's key is a row's key,
//! its value the row (a tombstone deletes it). Read from the beginning at start (the
//! start waits until every partition's end as it was then is read), then followed on
//! a thread of its own, the changes applied a few hundred milliseconds at a time. No
//! consumer group: nothing is committed, every host reads the whole topic.

use super::{default_max_mb, now_ms, Reporter};
use crate::field_error::FieldError;
use crate::kafka::{client_config, Properties};
use crate::plugin::lookup::Rows;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Deserialize;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaTable {
    pub name: String,
    pub brokers: String,
    pub topic: String,
    /// librdkafka settings (security, TLS, SASL...).
    #[serde(default)]
    pub properties: Properties,
    #[serde(default = "default_max_mb")]
    pub max_mb: u64,
}

const TIMEOUT: Duration = Duration::from_secs(30);
/// How long changes gather before they are applied.
const APPLY_EVERY: Duration = Duration::from_millis(200);

impl KafkaTable {
    pub fn validate(&self) -> Result<(), FieldError> {
        crate::kafka::validate(&self.brokers, &self.properties)?;
        if self.topic.is_empty() {
            return Err(FieldError::new("topic", "must name the compacted topic"));
        }
        Ok(())
    }

    /// Read the topic to its end now (an error stops the start), then follow it.
    pub async fn start(
        &self,
        max_bytes: usize,
        reporter: Reporter,
        stop: CancellationToken,
    ) -> Result<tokio::task::JoinHandle<()>, String> {
        let me = self.clone();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let thread =
            tokio::task::spawn_blocking(move || me.follow(max_bytes, reporter, stop, ready_tx));
        match ready_rx.await {
            Ok(Ok(())) => Ok(tokio::spawn(async move {
                let _ = thread.await;
            })),
            Ok(Err(why)) => Err(why),
            Err(_) => Err(thread
                .await
                .err()
                .map_or("the reader stopped".into(), |e| e.to_string())),
        }
    }

    fn follow(
        &self,
        max_bytes: usize,
        reporter: Reporter,
        stop: CancellationToken,
        ready: tokio::sync::oneshot::Sender<Result<(), String>>,
    ) {
        let consumer = match self.open() {
            Ok(c) => c,
            Err(why) => {
                let _ = ready.send(Err(why));
                return;
            }
        };
        // First the topic as it is: every partition up to its end now.
        let mut ends = match self.ends(&consumer) {
            Ok(ends) => ends,
            Err(why) => {
                let _ = ready.send(Err(why));
                return;
            }
        };
        let mut rows = Rows::default();
        let deadline = Instant::now() + Duration::from_secs(300);
        while !ends.is_empty() {
            if stop.is_cancelled() {
                let _ = ready.send(Err("stopped before the topic was read to its end".into()));
                return;
            }
            if Instant::now() > deadline {
                let _ = ready.send(Err(format!(
                    "the topic was not read to its end within 300 s ({} partition(s) short of the end they had at start)",
                    ends.len()
                )));
                return;
            }
            match consumer.poll(Duration::from_millis(100)) {
                None => {
                    // Offsets without a message to read (a transaction's marker,
                    // compacted away, aborted): read once the position passes the end.
                    if let Ok(at) = consumer.position() {
                        for e in at.elements() {
                            if let Offset::Offset(o) = e.offset() {
                                if ends.get(&e.partition()).is_some_and(|&end| o >= end) {
                                    ends.remove(&e.partition());
                                }
                            }
                        }
                    }
                }
                Some(Err(e)) => tracing::warn!("table `{}`: {e}", self.name),
                Some(Ok(m)) => {
                    if let Some(key) = m.key() {
                        rows.set(key.to_vec(), m.payload().map(<[u8]>::to_vec));
                    }
                    if rows.bytes() > max_bytes {
                        let _ = ready.send(Err(format!(
                            "the topic's rows pass the table's max_mb = {} (at {}[{}] offset {}, {} rows)",
                            max_bytes / (1024 * 1024),
                            self.topic,
                            m.partition(),
                            m.offset(),
                            rows.len()
                        )));
                        return;
                    }
                    if ends
                        .get(&m.partition())
                        .is_some_and(|&end| m.offset() + 1 >= end)
                    {
                        ends.remove(&m.partition());
                    }
                }
            }
        }
        reporter.table.replace(rows, now_ms());
        let _ = ready.send(Ok(()));
        // Then what comes after, a few hundred milliseconds of changes at a time.
        let mut changes = Vec::new();
        let mut since = Instant::now();
        while !stop.is_cancelled() {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    if let Some(key) = m.key() {
                        changes.push((key.to_vec(), m.payload().map(<[u8]>::to_vec)));
                    }
                }
                Some(Err(e)) => tracing::warn!("table `{}`: {e}", self.name),
                None => {}
            }
            if !changes.is_empty() && since.elapsed() >= APPLY_EVERY {
                let n = changes.len();
                match reporter.table.apply(std::mem::take(&mut changes), max_bytes, now_ms()) {
                    0 => reporter.report(),
                    refused => reporter.failed(&format!(
                        "{refused} of {n} change(s) from {} would take the table past its max_mb = {}: not applied (those rows are stale; the others, and every delete, are)",
                        self.topic,
                        max_bytes / (1024 * 1024)
                    )),
                }
                since = Instant::now();
            }
        }
    }

    fn open(&self) -> Result<BaseConsumer, String> {
        let ours = [
            ("group.id", format!("sluice-table-{}", self.name)),
            ("enable.auto.commit", "false".into()),
            ("enable.partition.eof", "false".into()),
        ];
        let consumer: BaseConsumer = client_config(&self.brokers, &ours, &self.properties)
            .create()
            .map_err(|e| format!("cannot create a Kafka consumer: {e}"))?;
        let partitions = crate::kafka::partitions_of(consumer.client(), &self.topic, TIMEOUT)?;
        if partitions.is_empty() {
            return Err(format!(
                "topic {} does not exist (or has no partitions)",
                self.topic
            ));
        }
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            tpl.add_partition_offset(&self.topic, p, Offset::Beginning)
                .map_err(|e| e.to_string())?;
        }
        consumer
            .assign(&tpl)
            .map_err(|e| format!("cannot assign {}: {e}", self.topic))?;
        Ok(consumer)
    }

    /// Per partition with messages, the offset after its last one now.
    fn ends(
        &self,
        consumer: &BaseConsumer,
    ) -> Result<std::collections::BTreeMap<i32, i64>, String> {
        let assigned = consumer.assignment().map_err(|e| e.to_string())?;
        let mut ends = std::collections::BTreeMap::new();
        for e in assigned.elements() {
            let (low, high) = consumer
                .fetch_watermarks(&self.topic, e.partition(), TIMEOUT)
                .map_err(|err| {
                    format!(
                        "cannot read {}[{}]'s offsets: {err}",
                        self.topic,
                        e.partition()
                    )
                })?;
            if high > low {
                ends.insert(e.partition(), high);
            }
        }
        Ok(ends)
    }
}
