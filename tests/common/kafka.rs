//! The Kafka test broker, and the bare rdkafka clients the tests use to set up topics
//! and look at what Sluice did. Never a mock: a real broker speaking the protocol.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The broker's address: `SLUICE_TEST_KAFKA` (e.g. Apache Kafka from docker-compose),
/// else the local one `scripts/servers.sh` starts (idempotent: every test binary asks,
/// the first one starts it; `scripts/test.sh` starts and stops it around the tests).
pub fn broker() -> String {
    static BROKER: OnceLock<String> = OnceLock::new();
    BROKER
        .get_or_init(|| {
            if let Ok(b) = std::env::var("SLUICE_TEST_KAFKA") {
                return b;
            }
            let out = Command::new(super::repo().join("scripts/servers.sh"))
                .args(["start", "kafka"])
                .output()
                .expect("running scripts/servers.sh");
            assert!(
                out.status.success(),
                "could not start the test broker (set SLUICE_TEST_KAFKA=host:port to use another): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let stdout = String::from_utf8(out.stdout).unwrap();
            stdout.lines().last().unwrap().trim().to_owned()
        })
        .clone()
}

/// A name no other test (or earlier run against the same broker) uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Consumer settings that make group joins take seconds, not tens of seconds, on the
/// test broker (its join wait is about half the session timeout).
pub const FAST_GROUP: &str =
    r#"properties = { "session.timeout.ms" = 6000, "heartbeat.interval.ms" = 2000 }"#;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

pub fn create_topic(topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .create()
        .unwrap();
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = block_on(admin.create_topics([&new], &AdminOptions::new())).unwrap();
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
}

/// A raw message: key, value (`None`: a null message).
pub type Raw = (Option<Vec<u8>>, Option<Vec<u8>>);

/// A message as read back: value, headers as text.
pub type Read = (Vec<u8>, Vec<(String, String)>);

/// Produce raw messages to partition 0 and wait for every delivery.
pub fn produce(topic: &str, messages: &[Raw]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("message.max.bytes", "4000000")
        .create()
        .unwrap();
    for (key, value) in messages {
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).partition(0);
        if let Some(k) = key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = value {
            record = record.payload(v.as_slice());
        }
        producer.send(record).map_err(|(e, _)| e).unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// Produce one message to partition 0 with a header whose name is any bytes (not
/// UTF-8, say), as a producer in another language may send it; rdkafka's safe API
/// only takes names that are text, so the header goes in through librdkafka's own.
pub fn produce_with_raw_header(topic: &str, name: &[u8], value: &[u8], payload: &[u8]) {
    use rdkafka::bindings as rd;
    use rdkafka::message::{BorrowedHeaders, OwnedHeaders};
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .create()
        .unwrap();
    let headers = OwnedHeaders::new_with_capacity(1);
    // SAFETY: rdkafka's borrowed headers are librdkafka's `rd_kafka_headers_t`
    // behind a reference (that is how rdkafka itself reads them); `headers` owns it.
    let native = headers.as_borrowed() as *const BorrowedHeaders as *mut rd::rd_kafka_headers_t;
    let err = unsafe {
        rd::rd_kafka_header_add(
            native,
            name.as_ptr().cast(),
            name.len() as isize,
            value.as_ptr().cast(),
            value.len() as isize,
        )
    };
    assert_eq!(err, rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR);
    let record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic)
        .partition(0)
        .payload(payload)
        .headers(headers);
    producer.send(record).map_err(|(e, _)| e).unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// Every message of partition 0 of `topic` as (value, headers), read with a bare
/// consumer (no group) until `count` arrive or a minute passes.
pub fn read_all(topic: &str, count: usize) -> Vec<Read> {
    let consumer = from_the_start(topic, 1);
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < count && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            let headers = m
                .headers()
                .map(|hs| {
                    use rdkafka::message::Headers;
                    hs.iter()
                        .map(|h| {
                            let v = h.value.map(|v| String::from_utf8_lossy(v).into_owned());
                            (h.key.to_owned(), v.unwrap_or_default())
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push((m.payload().unwrap_or_default().to_vec(), headers));
        }
    }
    out
}

/// The payloads of partition 0 of `topic`, a null one as `None` (a tombstone), read
/// until `count` arrive or a minute passes.
pub fn read_payloads(topic: &str, count: usize) -> Vec<Option<Vec<u8>>> {
    let consumer = from_the_start(topic, 1);
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < count && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            out.push(m.unwrap().payload().map(<[u8]>::to_vec));
        }
    }
    out
}

/// The group's committed offset per partition of `topic` (`None`: nothing committed).
pub fn committed(group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = consumer
        .committed_offsets(tpl, Duration::from_secs(30))
        .unwrap();
    (0..partitions)
        .map(|p| match got.find_partition(topic, p).unwrap().offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        })
        .collect()
}

/// A message as the broker has it: partition, offset, timestamp (ms), value.
pub type Stored = (i32, i64, i64, Vec<u8>);

/// Every message of the `partitions` partitions of `topic`, read with a bare consumer
/// (no group) until `count` arrive or a minute passes.
pub fn read_topic(topic: &str, partitions: i32, count: usize) -> Vec<Stored> {
    let consumer = from_the_start(topic, partitions);
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < count && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            let ts = m.timestamp().to_millis().unwrap_or(-1);
            let value = m.payload().unwrap_or_default().to_vec();
            out.push((m.partition(), m.offset(), ts, value));
        }
    }
    out
}

/// As [`read_topic`], reading on until no message has come for `quiet` after `count`
/// arrived (so a message too many is seen too).
pub fn read_topic_to_quiet(
    topic: &str,
    partitions: i32,
    count: usize,
    quiet: Duration,
) -> Vec<Stored> {
    let consumer = from_the_start(topic, partitions);
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = Instant::now();
    while Instant::now() < deadline && (out.len() < count || last.elapsed() < quiet) {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            let ts = m.timestamp().to_millis().unwrap_or(-1);
            let value = m.payload().unwrap_or_default().to_vec();
            out.push((m.partition(), m.offset(), ts, value));
            last = Instant::now();
        }
    }
    out
}

/// Generated users (seed 11, `source` lines added to the generator's table) ->
/// format_user -> `topic` (4 partitions, created if missing), and the same rows to
/// `produced.jsonl` in `dir` as the expected set.
pub fn producer(dir: &Path, topic: &str, count: u64, rate: Option<u64>, source: &str) -> PathBuf {
    let rate = rate.map(|r| format!("rate = {r}")).unwrap_or_default();
    super::pipeline(
        dir,
        &format!("produce-{topic}.toml"),
        &format!(
            r#"
[pipeline]
checkpoint_interval = "500ms"
[source]
type = "generator"
seed = 11
count = {count}
{rate}
{source}
[[transforms]]
plugin = "{{FORMAT_USER}}"
[[sinks]]
type = "kafka"
brokers = "{broker}"
topic = "{topic}"
create_topic = {{ partitions = 4 }}
[[sinks]]
type = "file"
path = "produced.jsonl"
[dead_letter]
type = "file"
path = "produce-dead.jsonl"
"#,
            broker = broker()
        ),
    )
}

/// A bare consumer (no group) assigned partitions 0..`partitions` of `topic` from
/// their beginning.
fn from_the_start(topic: &str, partitions: i32) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker())
        .set("group.id", unique("reader"))
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    consumer
}
