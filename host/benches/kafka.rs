//! Kafka throughput, printed side by side (never asserted):
//!
//! - `bare rdkafka consumer`: a librdkafka consumer reading the topic and doing
//!   nothing with the messages: the floor.
//! - `sluice kafka -> format_user -> null`: the same topic through a whole pipeline
//!   (consumer thread, batching, the WASM transform, the sink task, checkpoints and
//!   offset commits).
//!
//! The gap is Sluice's own cost. Both are timed from their first message to their
//! last, so the consumer-group join (seconds on the test broker) is not counted; the
//! bare read is the median of five reads, each pipeline the median of three runs.
//!
//! Needs a broker: `SLUICE_TEST_KAFKA=host:port`, else `scripts/servers.sh start
//! kafka` is run. `cargo bench -p sluice --bench kafka` (after
//! `scripts/build-plugins.sh`); `SLUICE_BENCH_RECORDS` sets the count (default 200000).

mod common;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::path::Path;
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 4;

fn broker() -> String {
    common::server("SLUICE_TEST_KAFKA", "kafka")
}

fn fill(broker: &str, topic: &str, n: u64) -> u64 {
    common::fill_topic(broker, topic, PARTITIONS, n, |value| value.to_vec())
}

/// Read every message with a plain consumer; seconds from the first to the last.
fn bare(broker: &str, topic: &str, n: u64) -> f64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("group.id", "sluice-bench-bare")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut seen = 0u64;
    let mut first = None;
    while seen < n {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            std::hint::black_box(rdkafka::Message::payload(&m));
            first.get_or_insert_with(Instant::now);
            seen += 1;
        }
    }
    first.unwrap().elapsed().as_secs_f64()
}

/// The same topic through `sluice`: seconds from the first record in to the last
/// record out, and the seconds the stop took after that (end detected, last
/// checkpoint and commit, the consumer leaving its group).
fn through_sluice(broker: &str, topic: &str, n: u64, transform: bool, run: u32) -> (f64, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let plugin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist/format_user.wasm");
    assert!(plugin.exists(), "run scripts/build-plugins.sh first");
    let text = format!(
        r#"
[pipeline]
batch_size = 1024
linger = "20ms"
checkpoint_interval = "1s"
[source]
type = "kafka"
brokers = "{broker}"
topics = ["{topic}"]
group_id = "sluice-bench-{topic}-{transform}-{run}"
stop_at_end = true
properties = {{ "session.timeout.ms" = 6000, "heartbeat.interval.ms" = 2000 }}
{}
[[sinks]]
type = "null"
[dead_letter]
type = "stderr"
"#,
        if transform {
            format!("[[transforms]]\nplugin = \"{}\"", plugin.display())
        } else {
            String::new()
        }
    );
    let path = dir.path().join("bench.toml");
    std::fs::write(&path, text).unwrap();
    let timed = common::run_timed(&path, n);
    assert_eq!(timed.counters.records_in, n, "every message read");
    (
        timed.run_s,
        timed.stop_s,
        timed.counters.records_in as f64 / timed.counters.batches.max(1) as f64,
    )
}

fn main() {
    // `cargo bench` passes flags such as --bench; this benchmark takes none.
    let n: u64 = std::env::var("SLUICE_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let broker = broker();
    let topic = format!(
        "bench-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let bytes = fill(&broker, &topic, n);
    println!(
        "kafka: {n} randomuser.me users ({:.0} bytes each) in {topic} ({PARTITIONS} partitions) on {broker}",
        bytes as f64 / n as f64
    );
    // The bare read lasts well under a second, so one run swings by half: the median
    // of five (no group join: it assigns the partitions itself).
    let mut bares: Vec<f64> = (0..5).map(|_| bare(&broker, &topic, n)).collect();
    bares.sort_by(f64::total_cmp);
    let bare_s = bares[2];
    // A pipeline's run is as short, and as noisy: the median of three too (each in a
    // group of its own, so each reads the whole topic; the join is not timed).
    let median_of_3 = |transform| {
        let mut runs: Vec<_> = (0..3)
            .map(|run| through_sluice(&broker, &topic, n, transform, run))
            .collect();
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        runs[1]
    };
    let (plain_s, _, plain_batch) = median_of_3(false);
    let (sluice_s, stop_s, batch) = median_of_3(true);
    let rate = |s: f64| n as f64 / s;
    println!(
        "  bare rdkafka consumer (reads, does nothing): {:>9.0} records/s (median of 5: {:.0}..{:.0})",
        rate(bare_s),
        rate(bares[4]),
        rate(bares[0])
    );
    println!(
        "  sluice kafka -> null (no transform):        {:>9.0} records/s (median of 3; batches of {plain_batch:.0} on average)",
        rate(plain_s)
    );
    println!(
        "  sluice kafka -> format_user -> null:        {:>9.0} records/s (median of 3; batches of {batch:.0} on average)",
        rate(sluice_s)
    );
    println!(
        "  sluice / bare time: {:.2}x without the transform, {:.2}x with it; stopping took {:.2}s",
        plain_s / bare_s,
        sluice_s / bare_s,
        stop_s
    );
    println!(
        "  kafka -> format_user -> null: {:.2}x the bare consumer's rate",
        bare_s / sluice_s
    );
}
