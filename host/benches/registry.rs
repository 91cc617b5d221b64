//! Kafka -> format_user -> Kafka with a Schema Registry, printed beside plain JSON
//! (never asserted):
//!
//! - `json`: randomuser.me users as JSON in, the 12-field rows as JSON out;
//! - `avro`: the same users as Avro of schemas/randomuser_user.avsc in Confluent's
//!   wire format in (`format = "avro"`), the rows as Avro of schemas/user.avsc out.
//!
//! Each is timed from its first record in to its last record written (the group join
//! is not counted), the median of three runs; then the codec alone, per record.
//!
//! Needs a broker and a registry: `SLUICE_TEST_KAFKA` / `SLUICE_TEST_REGISTRY`, else
//! `scripts/servers.sh start kafka registry`. `cargo bench -p sluice --bench registry`
//! (after `scripts/build-plugins.sh`); `SLUICE_BENCH_RECORDS` sets the count (default
//! 200000).

mod common;

use sluice::registry::{AvroSchema, Client, RegistryConfig};
use std::path::{Path, PathBuf};
use std::time::Instant;

const PARTITIONS: i32 = 4;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn schema(name: &str) -> (String, AvroSchema) {
    let text = std::fs::read_to_string(repo().join("schemas").join(name)).unwrap();
    let parsed = AvroSchema::parse(&text).unwrap();
    (text, parsed)
}

/// Seconds from the first record in to the last record out, one run.
fn run(broker: &str, registry: &str, from: &str, format: &str, n: u64, run: u32) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let plugin = repo().join("plugins/dist/format_user.wasm");
    assert!(plugin.exists(), "run scripts/build-plugins.sh first");
    let (out_format, out_schema) = match format {
        "avro" => (
            "avro",
            format!(
                "value_schema = \"{}\"",
                repo().join("schemas/user.avsc").display()
            ),
        ),
        _ => ("json", String::new()),
    };
    let text = format!(
        r#"
[pipeline]
batch_size = 1024
linger = "20ms"
checkpoint_interval = "1s"
[source]
type = "kafka"
brokers = "{broker}"
topics = ["{from}"]
group_id = "sluice-bench-{from}-{run}"
stop_at_end = true
format = "{format}"
registry = {{ url = "{registry}" }}
properties = {{ "session.timeout.ms" = 6000, "heartbeat.interval.ms" = 2000 }}
[[transforms]]
plugin = "{plugin}"
[[sinks]]
type = "kafka"
brokers = "{broker}"
topic = "{from}-out-{run}"
create_topic = {{ partitions = {PARTITIONS} }}
format = "{out_format}"
registry = {{ url = "{registry}" }}
{out_schema}
[dead_letter]
type = "stderr"
"#,
        plugin = plugin.display()
    );
    let path = dir.path().join("bench.toml");
    std::fs::write(&path, text).unwrap();
    let timed = common::run_timed(&path, n);
    assert_eq!(timed.counters.records_in, n, "every message read");
    assert_eq!(timed.counters.dead_letters, 0, "nothing refused");
    timed.run_s
}

fn main() {
    let n: u64 = std::env::var("SLUICE_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let broker = common::server("SLUICE_TEST_KAFKA", "kafka");
    let registry = std::env::var("SLUICE_TEST_REGISTRY").unwrap_or_else(|_| {
        format!(
            "http://{}",
            common::server("SLUICE_TEST_REGISTRY", "registry")
        )
    });
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let (json_topic, avro_topic) = (format!("bench-json-{stamp}"), format!("bench-avro-{stamp}"));

    // The raw users' schema, registered as a producer's serializer would.
    let (raw_text, raw) = schema("randomuser_user.avsc");
    let client = Client::new(
        &toml::from_str::<RegistryConfig>(&format!("url = \"{registry}\"")).unwrap(),
        Path::new("."),
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = rt
        .block_on(client.register(&format!("{avro_topic}-value"), "AVRO", &raw_text))
        .unwrap();
    let json_bytes = common::fill_topic(&broker, &json_topic, PARTITIONS, n, |v| v.to_vec());
    let mut avro_bytes = 0u64;
    common::fill_topic(&broker, &avro_topic, PARTITIONS, n, |v| {
        let mut out = Vec::new();
        sluice::registry::frame(id, &mut out);
        raw.from_json(&serde_json::from_slice(v).unwrap(), &mut out)
            .unwrap();
        avro_bytes += out.len() as u64;
        out
    });
    println!(
        "registry: {n} randomuser.me users in {PARTITIONS} partitions on {broker}: {:.0} bytes each as JSON, {:.0} as framed Avro",
        json_bytes as f64 / n as f64,
        avro_bytes as f64 / n as f64
    );
    let median = |topic: &str, format: &str| {
        let mut runs: Vec<f64> = (0..3)
            .map(|r| run(&broker, &registry, topic, format, n, r))
            .collect();
        runs.sort_by(f64::total_cmp);
        runs[1]
    };
    let json_s = median(&json_topic, "json");
    let avro_s = median(&avro_topic, "avro");
    let rate = |s: f64| n as f64 / s;
    println!(
        "  kafka (json) -> format_user -> kafka (json): {:>9.0} records/s (median of 3)",
        rate(json_s)
    );
    println!(
        "  kafka (avro) -> format_user -> kafka (avro): {:>9.0} records/s (median of 3): {:.2}x JSON's rate",
        rate(avro_s),
        json_s / avro_s
    );

    // The codec alone, on one thread: decode a raw user to JSON, encode a row.
    let (_, row) = schema("user.avsc");
    let config: sluice::sources::generator::GeneratorConfig = toml::from_str("seed = 3").unwrap();
    let mut rng = sluice::sources::SplitMix64::new(3);
    let sample: Vec<Vec<u8>> = (0..10_000u64)
        .map(|i| {
            let v = sluice::sources::generator::value(&config, &mut rng, i);
            let mut out = Vec::new();
            raw.from_json(&serde_json::from_slice(&v).unwrap(), &mut out)
                .unwrap();
            out
        })
        .collect();
    let started = Instant::now();
    let mut text = Vec::new();
    for bytes in &sample {
        text.clear();
        raw.to_json(bytes, &mut text).unwrap();
    }
    let decode_us = started.elapsed().as_secs_f64() * 1e6 / sample.len() as f64;
    let formatted = common::users(10_000, 3);
    let started = Instant::now();
    let mut out = Vec::new();
    for r in &formatted {
        out.clear();
        row.from_json(&serde_json::from_slice(&r.value).unwrap(), &mut out)
            .unwrap();
    }
    let encode_us = started.elapsed().as_secs_f64() * 1e6 / formatted.len() as f64;
    println!(
        "  codec alone: Avro -> JSON text {decode_us:.2} µs per raw user, JSON -> Avro {encode_us:.2} µs per row (one thread)"
    );
}
