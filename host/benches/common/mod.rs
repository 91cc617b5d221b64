//! What the benchmarks share: finding the servers they need, the users they write,
//! and writing them through a sink.

use sluice::engine::Metrics;
use sluice::record::{Batch, Record};
use sluice::sinks::{Delivery, SinkConfig, SinkContext};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The address in `var` (an external server), else that of the local `name` server,
/// started by `scripts/servers.sh` if it is not running.
pub fn server(var: &str, name: &str) -> String {
    if let Ok(v) = std::env::var(var) {
        return v;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new(repo.join("scripts/servers.sh"))
        .args(["start", name])
        .output()
        .expect("scripts/servers.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_owned()
}

/// `n` formatted users (format_user's output) as JSON records, ids of their own per
/// `seed`: what the store benchmarks write.
#[allow(dead_code)] // not every benchmark writes users
pub fn users(n: usize, seed: u64) -> Vec<sluice::record::Record> {
    use sluice::sources::generator::{self, GeneratorConfig};
    let config: GeneratorConfig = toml::from_str(&format!("seed = {seed}")).unwrap();
    let mut rng = sluice::sources::SplitMix64::new(seed);
    let mut out = Vec::with_capacity(n);
    let mut i = 0;
    while out.len() < n {
        let raw = generator::value(&config, &mut rng, i);
        i += 1;
        for row in format_user::format(&raw).unwrap() {
            out.push(sluice::record::record(row.json, 0));
        }
    }
    out.truncate(n);
    out
}

/// Write `records` through a sink opened from `toml`, `batch` at a time, one batch
/// after another as the sink task does: how long the writes took (opening the sink
/// and building the batches not counted).
#[allow(dead_code)] // not every benchmark writes to a sink
pub async fn through_sink(toml: &str, records: &[Record], batch: usize) -> Duration {
    let config: SinkConfig = toml::from_str(toml).unwrap();
    config.validate().unwrap();
    let ctx = SinkContext {
        name: "bench".into(),
        input: config.input,
        base_dir: ".".into(),
        metrics: Arc::new(Metrics::default()),
        state_dir: None,
        partitions: Default::default(),
        retry: Default::default(),
    };
    let mut sink = config.open(&ctx).await.unwrap();
    let batches: Vec<Batch> = records
        .chunks(batch)
        .map(|chunk| {
            let mut b = Batch::with_capacity(chunk.len());
            chunk
                .iter()
                .for_each(|r| b.push(r.clone(), Default::default()));
            b
        })
        .collect();
    let started = Instant::now();
    for b in &batches {
        let mut delivery = Delivery::new(b.len());
        sink.write(b, &mut delivery).await.unwrap();
        assert!(delivery.take_rejected().is_empty());
    }
    started.elapsed()
}

/// Create `topic` and fill it with `n` generated randomuser.me users (seed 3), each
/// value as `encode` makes it of the user's JSON: the bytes of the JSON written.
#[allow(dead_code)] // the Kafka benchmarks'
pub fn fill_topic(
    broker: &str,
    topic: &str,
    partitions: i32,
    n: u64,
    mut encode: impl FnMut(&[u8]) -> Vec<u8>,
) -> u64 {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    use rdkafka::ClientConfig;
    use sluice::sources::generator::{self, GeneratorConfig};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .create()
        .unwrap();
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    rt.block_on(admin.create_topics([&new], &AdminOptions::new()))
        .unwrap();
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("linger.ms", "20")
        .set("compression.type", "lz4")
        .create()
        .unwrap();
    let config: GeneratorConfig = toml::from_str("seed = 3").unwrap();
    let mut rng = sluice::sources::SplitMix64::new(3);
    let mut bytes = 0;
    for i in 0..n {
        let json = generator::value(&config, &mut rng, i);
        bytes += json.len() as u64;
        let value = encode(&json);
        let key = i.to_string();
        let mut record = BaseRecord::to(topic).key(&key).payload(&value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    bytes
}

/// A pipeline file run to its end, timed from its first record in to its `n`th
/// record out (what precedes the first record, a group join, is not counted).
#[allow(dead_code)] // the Kafka benchmarks'
pub struct Timed {
    /// Seconds from the first record in to the last out.
    pub run_s: f64,
    /// Seconds the stop took after that.
    pub stop_s: f64,
    /// What the run counted.
    pub counters: sluice::engine::Counters,
}

#[allow(dead_code)] // the Kafka benchmarks'
pub fn run_timed(path: &Path, n: u64) -> Timed {
    use sluice::plugin::{ComponentCache, Runtime};
    let config = sluice::config::load(path).unwrap();
    let runtime = Runtime::new(ComponentCache::from_env()).unwrap();
    let pipeline = sluice::engine::Pipeline::build(config, &runtime).unwrap();
    let metrics = pipeline.metrics();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let watcher = std::thread::spawn(move || {
        while metrics.snapshot().records_in == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
        let first = Instant::now();
        while metrics.snapshot().records_out < n {
            std::thread::sleep(Duration::from_micros(200));
        }
        (first, Instant::now())
    });
    let counters = rt
        .block_on(pipeline.run(tokio_util::sync::CancellationToken::new()))
        .unwrap();
    let end = Instant::now();
    let (first, last) = watcher.join().unwrap();
    Timed {
        run_s: last.duration_since(first).as_secs_f64(),
        stop_s: end.duration_since(last).as_secs_f64(),
        counters,
    }
}
